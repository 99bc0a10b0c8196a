/* The one GEMM every product goes through: C = alpha * op(A) op(B) + beta * C,
 * row-major, op a transpose chosen by flag (never materialised: packing and
 * the micro-kernel read either layout).
 *
 * The built-in backend follows the Goto/BLIS structure: a KC-deep slice of
 * op(B) is packed into NR-wide column strips, so the micro-kernel streams
 * them from contiguous, aligned memory and keeps an MR x NR tile of C in
 * registers; MR-tall strips of op(A) are read where they lie (see
 * block_rows). The kernel is written with GCC vector extensions; with
 * AVX-512 a vector is one zmm register, with AVX2 the compiler splits it in
 * two ymm, which is why the tile is smaller there.
 * The pool's threads take separate (MC rows x ng columns) chunks of C, each
 * summed over the whole depth in one order, so no two threads write the same
 * element and the result does not depend on the thread count.
 *
 * With OpenBLAS (Meson option blas), tg_gemm can send products of at least
 * TG_GEMM_BLAS_MIN_FLOPS multiply-adds to cblas_sgemm; by default it sends
 * none, because the built-in kernel measured faster at every shape (see
 * tapegrad_internal.h and bench/bench_gemm.c). */
#include "tapegrad_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef TG_HAVE_BLAS
#include <cblas.h>
#endif

#if defined(__AVX512F__)
#define MR 12
#else
#define MR 6
#endif
#define VL 16             /* floats per vector */
#define NV 2              /* vectors per tile row */
#define NR (VL * NV)
#define KC 256
#define MC (MR * 8)
#define NC 1024
#define NG_MAX 1024       /* columns of one work item, at most */

typedef float vf __attribute__((vector_size(VL * sizeof(float))));

/* x in every lane. Not (vf){0} + x: adding zero is not an identity for -0,
 * so GCC keeps a scalar add before each broadcast, and the micro-kernel's 12
 * broadcasts then queue on one shuffle port instead of loading straight from
 * memory. */
#define SPLAT(x) ((vf){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x})

/* acc[MR][NV] += a-strip (MR x kc, element (i, p) at a[p * ps + i * is])
 * times b-strip (kc x NR); narrow: its first VL columns only, for a last
 * strip that has no more (a vocabulary of 65 is 2 strips and 1 column).
 * Always inlined, so each caller's constant strides and width give a
 * kernel of their own. */
static inline __attribute__((always_inline)) void micro_kernel(int kc, const float *restrict a, size_t ps, size_t is,
                                                                const float *restrict b, vf acc[MR][NV], bool narrow)
{
    for (int p = 0; p < kc; p++) {
        const vf *bp = (const vf *)(b + (size_t)p * NR);
        vf b0 = bp[0], b1 = narrow ? b0 : bp[1];
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            vf ai = SPLAT(a[p * ps + i * is]);
            acc[i][0] += ai * b0;
            if (!narrow)
                acc[i][1] += ai * b1;
        }
    }
}

static inline __attribute__((always_inline)) void strip_kernel(int kc, const float *restrict a, size_t ps, size_t is,
                                                                const float *restrict b, vf acc[MR][NV], int width)
{
    if (width <= VL)
        micro_kernel(kc, a, ps, is, b, acc, true);
    else
        micro_kernel(kc, a, ps, is, b, acc, false);
}

/* C = alpha * acc + base for the tile's mr x nr elements, the base being
 * the bias row's elements when there is one, else beta * C (beta 0 ignores
 * what C held, NaN included, as BLAS does). */
static void store_tile(vf acc[MR][NV], float alpha, float beta, const float *bias, float *c, int ldc, int mr,
                       int nr)
{
    if (mr == MR && nr == NR) {
        for (int i = 0; i < MR; i++)
            for (int v = 0; v < NV; v++) {
                vf cv = alpha * acc[i][v], base;
                if (bias || beta != 0.0f) {
                    memcpy(&base, bias ? bias + v * VL : c + (size_t)i * ldc + v * VL, sizeof base);
                    cv += bias || beta == 1.0f ? base : beta * base;
                }
                memcpy(c + (size_t)i * ldc + v * VL, &cv, sizeof cv);
            }
        return;
    }
    float tile[MR][NR];
    memcpy(tile, acc, sizeof tile);
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float *cij = c + (size_t)i * ldc + j;
            *cij = alpha * tile[i][j] + (bias ? bias[j] : beta == 0.0f ? 0.0f : beta == 1.0f ? *cij : beta * *cij);
        }
}

/* Strip js of op(B)[p0 .. p0+kc, j0 .. j0+nc], NR wide, zero-padded. */
static void pack_b_strip(bool tb, const float *b, int ldb, int p0, int kc, int j0, int nc, int js, float *out)
{
    float *strip = out + (size_t)js * kc;
    int w = nc - js < NR ? nc - js : NR;
    if (!tb) { /* rows of B: a copy of w floats per row */
        for (int p = 0; p < kc; p++) {
            float *row = strip + (size_t)p * NR;
            memcpy(row, b + (size_t)(p0 + p) * ldb + j0 + js, (size_t)w * sizeof(float));
            memset(row + w, 0, (size_t)(NR - w) * sizeof(float));
        }
        return;
    }
    /* Columns of op(B) are rows of B: read each one along its length. */
    for (int j = 0; j < w; j++) {
        const float *col = b + (size_t)(j0 + js + j) * ldb + p0;
        for (int p = 0; p < kc; p++)
            strip[(size_t)p * NR + j] = col[p];
    }
    for (int p = 0; w < NR && p < kc; p++)
        memset(strip + (size_t)p * NR + w, 0, (size_t)(NR - w) * sizeof(float));
}

/* op(A)[i0 .. i0+h, p0 .. p0+kc], h <= MR rows, into one k-major strip,
 * zero-padded to MR. */
static void pack_a_strip(bool ta, const float *a, int lda, int i0, int h, int p0, int kc, float *out)
{
    for (int p = 0; p < kc; p++) {
        float *col = out + (size_t)p * MR;
        for (int i = 0; i < h; i++)
            col[i] = ta ? a[(size_t)(p0 + p) * lda + i0 + i] : a[(size_t)(i0 + i) * lda + p0 + p];
        for (int i = h; i < MR; i++)
            col[i] = 0.0f;
    }
}

/* Packing buffers, grown once to the largest product seen and then reused,
 * so steady-state training does not allocate. Per thread: the caller's B
 * panel, which every thread reads, and each thread's own A block. */
typedef struct pack_buf {
    float *p;
    size_t cap;
} pack_buf;

static _Thread_local pack_buf b_buf;

static float *pack_space(pack_buf *b, size_t floats)
{
    if (floats > b->cap) {
        free(b->p);
        b->p = aligned_alloc(64, floats * sizeof(float));
        b->cap = b->p ? floats : 0;
    }
    return b->p;
}

void tg_gemm_thread_exit(void)
{
    free(b_buf.p);
    b_buf = (pack_buf){NULL, 0};
}

/* C = bias in every row, or beta * C: the GEMM's start when it cannot fold
 * that into its stores. */
static void init_c(int m, int n, float beta, const float *bias, float *c, int ldc)
{
    for (int i = 0; i < m; i++) {
        float *ci = c + (size_t)i * ldc;
        if (bias)
            memcpy(ci, bias, (size_t)n * sizeof(float));
        else if (beta == 0.0f)
            memset(ci, 0, (size_t)n * sizeof(float));
        else if (beta != 1.0f)
            for (int j = 0; j < n; j++)
                ci[j] *= beta;
    }
}

/* One panel of C, columns j0 .. j0+nc: op(B)'s panel is packed whole (one
 * chunk per KC-deep slice and NG-wide group of strips), then every chunk of
 * C (MC rows x NG columns) runs down the whole depth, so each element is
 * summed in the same order whichever thread computes it. */
typedef struct gemm_job {
    bool ta, tb;
    int m, n, k, lda, ldb, ldc, j0, nc, ng;
    float alpha, beta;
    const float *a, *b, *bias;
    float *c, *bp;
} gemm_job;

static int groups_of(const gemm_job *g)
{
    return (g->nc + g->ng - 1) / g->ng;
}

/* Rows i0 .. i0+mc of C against the packed B block, slice p0 .. p0+kc.
 * Full strips of op(A) are read where they lie (transposed A is already
 * k-major; plain A is read row by row, 12 rows at once): packing them would
 * be one more pass over A, which for the narrow products of a small model
 * cost a third of the time. Partial strips are packed, zero-padded, into
 * spare (MR x KC floats). The first slice (p0 0) stores onto beta * C or
 * the bias (its columns from c's first, `bias`), so C is started by the
 * thread that owns those rows rather than in a serial pass that would also
 * pull all of C into the calling thread's cache. */
static void block_rows(const gemm_job *g, int i0, int mc, int p0, int kc, const float *bp, int ng, float *c,
                       const float *bias, float *spare)
{
    for (int is = 0; is < mc; is += MR) {
        int h = mc - is < MR ? mc - is : MR;
        if (h < MR)
            pack_a_strip(g->ta, g->a, g->lda, i0 + is, h, p0, kc, spare);
        const float *a = g->ta ? g->a + (size_t)p0 * g->lda + i0 + is : g->a + (size_t)(i0 + is) * g->lda + p0;
        for (int js = 0; js < ng; js += NR) {
            vf acc[MR][NV];
            for (int i = 0; i < MR; i++) /* not memset: GCC then keeps acc in memory */
                for (int v = 0; v < NV; v++)
                    acc[i][v] = (vf){0};
            const float *b = bp + (size_t)js * kc;
            int w = ng - js < NR ? ng - js : NR;
            if (h < MR)
                strip_kernel(kc, spare, MR, 1, b, acc, w);
            else if (g->ta)
                strip_kernel(kc, a, (size_t)g->lda, 1, b, acc, w);
            else
                strip_kernel(kc, a, 1, (size_t)g->lda, b, acc, w);
            store_tile(acc, g->alpha, p0 == 0 ? g->beta : 1.0f, p0 == 0 && bias ? bias + js : NULL,
                       c + (size_t)is * g->ldc + js, g->ldc, h, w);
        }
    }
}

static void pack_chunk(void *ctx, long item)
{
    const gemm_job *g = ctx;
    int p0 = (int)(item / groups_of(g)) * KC, kc = g->k - p0 < KC ? g->k - p0 : KC;
    int g0 = (int)(item % groups_of(g)) * g->ng, end = g->nc - g0 < g->ng ? g->nc : g0 + g->ng;
    float *slice = g->bp + (size_t)p0 * ((g->nc + NR - 1) / NR * NR);
    for (int js = g0; js < end; js += NR)
        pack_b_strip(g->tb, g->b, g->ldb, p0, kc, g->j0, g->nc, js, slice);
}

static void compute_chunk(void *ctx, long item)
{
    const gemm_job *g = ctx;
    int i0 = (int)(item / groups_of(g)) * MC, mc = g->m - i0 < MC ? g->m - i0 : MC;
    int g0 = (int)(item % groups_of(g)) * g->ng, ng = g->nc - g0 < g->ng ? g->nc - g0 : g->ng;
    float spare[KC * MR] __attribute__((aligned(64)));
    size_t npad = (size_t)(g->nc + NR - 1) / NR * NR;
    const float *bias = g->bias ? g->bias + g->j0 + g0 : NULL;
    for (int p0 = 0; p0 < g->k; p0 += KC) {
        int kc = g->k - p0 < KC ? g->k - p0 : KC;
        block_rows(g, i0, mc, p0, kc, g->bp + (size_t)p0 * npad + (size_t)g0 * kc, ng,
                   g->c + (size_t)i0 * g->ldc + g->j0 + g0, bias, spare);
    }
}

/* Columns per chunk for a panel of nc columns and `rows` row blocks: wide
 * (fewer passes over A, the B slice of KC x NG_MAX floats still in L2) unless
 * that leaves fewer than 16 chunks to share out. From the shape alone. */
static int group_width(int nc, long rows)
{
    int ng = nc < NG_MAX ? (nc + NR - 1) / NR * NR : NG_MAX;
    while (ng > 4 * NR && rows * ((nc + ng - 1) / ng) < 16)
        ng = (ng / 2 + NR - 1) / NR * NR;
    return ng;
}

void tg_gemm_builtin(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                     int ldb, float beta, const float *bias, float *c, int ldc)
{
    if (k == 0 || alpha == 0.0f) {
        init_c(m, n, beta, bias, c, ldc);
        return;
    }
    int panel = n < NC ? n : NC;
    float *bp = pack_space(&b_buf, (size_t)k * ((panel + NR - 1) / NR * NR));
    if (!bp) {
        init_c(m, n, beta, bias, c, ldc);
        tg_gemm_reference(ta, tb, m, n, k, alpha, a, lda, b, ldb, c, ldc);
        return;
    }
    /* Products too small to be worth handing out run as one chunk. */
    bool split = (long)m * n * k > 32768;
    long slices = (k + KC - 1) / KC, rows = (m + MC - 1) / MC;
    for (int j0 = 0; j0 < n; j0 += NC) {
        int nc = n - j0 < NC ? n - j0 : NC;
        gemm_job g = {ta, tb, m, n, k, lda, ldb, ldc, j0, nc, group_width(nc, rows), alpha, beta, a, b, bias, c, bp};
        if (split) {
            tg_parallel_for(slices * groups_of(&g), pack_chunk, &g);
            tg_parallel_for(rows * groups_of(&g), compute_chunk, &g);
        } else {
            for (long i = 0; i < slices * groups_of(&g); i++)
                pack_chunk(&g, i);
            for (long i = 0; i < rows * groups_of(&g); i++)
                compute_chunk(&g, i);
        }
    }
}

/* Unblocked loops: the fallback when packing space cannot be had. */
void tg_gemm_reference(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
                       const float *b, int ldb, float *c, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int p = 0; p < k; p++) {
            float s = alpha * (ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p]);
            for (int j = 0; j < n; j++)
                c[(size_t)i * ldc + j] += s * (tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j]);
        }
}

#ifdef TG_HAVE_BLAS
static double blas_min_flops(void)
{
    static double min = -1.0;
    if (min < 0.0) {
        const char *env = getenv("TG_GEMM_BLAS_MIN_FLOPS");
        char *end;
        double v = env ? strtod(env, &end) : -1.0;
        min = env && end != env && v >= 0.0 ? v : TG_GEMM_BLAS_MIN_FLOPS;
    }
    return min;
}
#endif

void tg_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
             int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
#ifdef TG_HAVE_BLAS
    if ((double)m * n * k >= blas_min_flops()) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#endif
    tg_gemm_builtin(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, NULL, c, ldc);
}

void tg_gemm_bias(bool trans_a, bool trans_b, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                  const float *bias, float *c, int ldc)
{
#ifdef TG_HAVE_BLAS
    if ((double)m * n * k >= blas_min_flops()) {
        init_c(m, n, 0.0f, bias, c, ldc);
        tg_gemm(trans_a, trans_b, m, n, k, 1.0f, a, lda, b, ldb, 1.0f, c, ldc);
        return;
    }
#endif
    tg_gemm_builtin(trans_a, trans_b, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, bias, c, ldc);
}
