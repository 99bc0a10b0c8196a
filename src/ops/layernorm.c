/* LayerNorm over the last dimension (length N), fused.
 *
 * Forward, per row:  mean = sum(x)/N,  var = sum((x - mean)^2)/N (in passes
 * over the row, never E[x^2] - mean^2, which cancels for rows with a large
 * mean; the float mean is corrected by the sum of the deviations from it, see
 * row_moments),
 * rstd = 1/sqrt(var + eps),  xhat = (x - mean) * rstd,  y = gamma*xhat + beta.
 * mean and rstd are cached per row for the backward. A row whose squared
 * deviations could overflow a float sum (values beyond about 1e16) is
 * normalised scaled by a power of two near 1/max|x| (exact), its moments
 * scaled back; beyond 2^125 (4e37), where x - mean itself could overflow,
 * the op fails the tape instead of returning inf.
 *
 * Backward, the closed-form LayerNorm backward, with g = dy * gamma:
 *   dx     = rstd * (g - mean(g) - xhat * mean(g * xhat))
 *   dgamma = sum over rows of dy * xhat,   dbeta = sum over rows of dy
 * gamma and beta may be NULL (no affine part). */
#include "tapegrad_internal.h"

#include <math.h>

/* What the kernels need besides the tensors. gamma and beta point at ones and
 * zeros when the op has no affine part, so the loops carry no branches.
 * Rows are cut into chunks of CHUNK_ROWS by shape alone; partial holds
 * per-chunk dgamma/dbeta sums, added up in chunk order, so the result is the
 * same for any thread count. */
typedef struct ln_aux {
    tg_tape *tape; /* failed by the forward for a row beyond LN_MAX_ABS */
    float *stats;  /* mean, rstd per row */
    const float *gamma, *beta;
    float *partial;
    int chunks;
} ln_aux;

static float *filled(tg_tape *t, int c, float v)
{
    float *p = tg_arena_alloc(t, (size_t)c * sizeof(float));
    for (int j = 0; p && j < c; j++)
        p[j] = v;
    return p;
}

static bool check_affine(tg_tape *t, const tg_tensor *x, tg_tensor *gamma, tg_tensor *beta)
{
    char sx[48], sp[48];
    tg_tensor *affine[2] = {gamma, beta};
    for (int i = 0; i < 2; i++)
        if (affine[i] && !tg_tape_owns(t, "tg_layernorm", affine[i], i + 1))
            return false;
    for (int i = 0; i < 2; i++) {
        tg_tensor *p = affine[i];
        if (p && (p->ndim != 1 || p->shape[0] != tg_cols(x))) {
            tg_tape_fail(t, TG_ERR_SHAPE, "tg_layernorm: %s must be [%d] for x of %s, got %s",
                         i ? "beta" : "gamma", tg_cols(x), tg_shape_str(x, sx, sizeof sx),
                         tg_shape_str(p, sp, sizeof sp));
            return false;
        }
    }
    return true;
}

enum { CHUNK_ROWS = 64 };

/* Small inputs are one chunk: not worth handing out. */
static int chunk_count(size_t rows, int c)
{
    return rows * (size_t)c > 32768 ? (int)((rows + CHUNK_ROWS - 1) / CHUNK_ROWS) : 1;
}

static void chunk_rows(const tg_node *n, long ch, long *r0, long *r1)
{
    const ln_aux *aux = n->aux;
    long rows = (long)tg_rows(n->in[0]);
    *r0 = aux->chunks == 1 ? 0 : ch * CHUNK_ROWS;
    *r1 = aux->chunks == 1 || (ch + 1) * CHUNK_ROWS > rows ? rows : (ch + 1) * CHUNK_ROWS;
}

tg_tensor *tg_layernorm(tg_tape *t, tg_tensor *x, tg_tensor *gamma, tg_tensor *beta, float eps)
{
    if (!tg_tape_check_inputs(t, "tg_layernorm", &x, 1) || !check_affine(t, x, gamma, beta))
        return NULL;
    if (!(eps >= 0.0f) || !isfinite(eps)) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_layernorm: eps must be finite and >= 0, got %g", (double)eps);
        return NULL;
    }
    tg_node n = {.op = TG_OP_LAYERNORM, .n_in = 3, .in = {x, gamma, beta}, .f = {eps}};
    int c = tg_cols(x);
    if (!tg_node_output(t, &n, x->ndim, x->shape))
        return NULL;
    ln_aux *aux = tg_arena_alloc(t, sizeof *aux);
    if (!aux)
        return NULL;
    aux->tape = t;
    aux->chunks = chunk_count(tg_rows(x), c);
    aux->stats = tg_arena_alloc(t, 2 * tg_rows(x) * sizeof(float));
    aux->partial = tg_arena_alloc(t, 2 * (size_t)aux->chunks * c * sizeof(float));
    aux->gamma = gamma ? gamma->data : filled(t, c, 1.0f);
    aux->beta = beta ? beta->data : filled(t, c, 0.0f);
    n.aux = aux;
    tg_tensor *y = tg_tape_record(t, &n);
    return tg_tape_status(t) == TG_OK ? y : NULL; /* the forward fails rows beyond LN_MAX_ABS */
}

/* sum((x - m)^power) for power 1 or 2, in independent lanes. row_moments
 * takes the two sums in separate loops: fused into one loop, GCC vectorises
 * it with permutes and the forward ran 3x slower (Clang 2.5x). */
static float row_dev_sum(const float *x, float m, int c, int power)
{
    float acc[TG_LANES] = {0}, s = 0.0f;
    int j = 0;
    if (power == 1) {
        for (; j + TG_LANES <= c; j += TG_LANES)
            for (int l = 0; l < TG_LANES; l++)
                acc[l] += x[j + l] - m;
        for (; j < c; j++)
            s += x[j] - m;
    } else {
        for (; j + TG_LANES <= c; j += TG_LANES)
            for (int l = 0; l < TG_LANES; l++)
                acc[l] += (x[j + l] - m) * (x[j + l] - m);
        for (; j < c; j++)
            s += (x[j] - m) * (x[j] - m);
    }
    for (int l = 0; l < TG_LANES; l++)
        s += acc[l];
    return s;
}

/* The mean and variance of a row. The first estimate m0 = sum(x)/N can be an
 * ulp or more off the true mean for a row with a large mean (a float sum of N
 * values near 1e4 rounds at the sum's ulp), and a variance taken about m0
 * alone gains (mean - m0)^2: 1-2% of the variance for mean 1e4, std 1e-2. So
 * the deviations d = x - m0 are summed too (the corrected two-pass
 * algorithm): mean = m0 + sum(d)/N (correctly rounded in practice), and
 * var = sum(d^2)/N - (sum(d)/N)^2, the variance about the true mean. No
 * cancellation there: sum(d)/N is tiny next to the spread, and d is exact for
 * x within a factor 2 of m0. */
static void row_moments(const float *x, int c, float *mean, float *var)
{
    float m0 = tg_vsum(x, c) / (float)c;
    float dm = row_dev_sum(x, m0, c, 1) / (float)c;
    *mean = m0 + dm;
    *var = fmaxf(row_dev_sum(x, m0, c, 2) / (float)c - dm * dm, 0.0f);
}

/* 2^125: x - mean stays below FLT_MAX, and rstd (about 1/max|x| or more)
 * stays a normal float. */
#define LN_MAX_ABS 0x1p125f

static float row_max_abs(const float *x, int c)
{
    float acc[TG_LANES] = {0}, m = 0.0f;
    int j = 0;
    for (; j + TG_LANES <= c; j += TG_LANES)
        for (int l = 0; l < TG_LANES; l++)
            acc[l] = fabsf(x[j + l]) > acc[l] ? fabsf(x[j + l]) : acc[l];
    for (; j < c; j++)
        m = fabsf(x[j]) > m ? fabsf(x[j]) : m;
    for (int l = 0; l < TG_LANES; l++)
        m = acc[l] > m ? acc[l] : m;
    return m;
}

/* A row too large for row_moments as it is: y takes x * 2^-e, exactly (up
 * to values below 2^-149 of that, which vanish), with 2^e > max|x|; the
 * moments of the scaled row give mean = mean_s 2^e and rstd = 2^-e /
 * sqrt(var_s + eps 2^-2e), the latter in double where 2^-2e would underflow
 * a float. */
static void scaled_row(const float *x, float *y, int c, float max_abs, float eps, float *mean, float *rstd)
{
    int e;
    frexpf(max_abs, &e);
    for (int j = 0; j < c; j++)
        y[j] = ldexpf(x[j], -e);
    float mean_s, var_s;
    row_moments(y, c, &mean_s, &var_s);
    double s = ldexp(1.0, -e);
    *mean = ldexpf(mean_s, e);
    *rstd = (float)(s / sqrt((double)var_s + (double)eps * s * s));
}

/* mean and rstd of a row. c (2 max|x|)^2 bounds the sum of squared
 * deviations: below 2^120 the plain moments cannot overflow, and ordinary
 * rows stay bit for bit what they were. A row that cannot be normalised
 * gets rstd 0, which no other row has, and its max|x| as mean, for the
 * message. */
static void row_stats(const float *x, float *y, int c, float eps, float *mean, float *rstd)
{
    float var, max_abs = row_max_abs(x, c);
    if (4.0 * c * (double)max_abs * (double)max_abs < 0x1p120) {
        row_moments(x, c, mean, &var);
        *rstd = 1.0f / sqrtf(var + eps);
    } else if (max_abs <= LN_MAX_ABS) {
        scaled_row(x, y, c, max_abs, eps, mean, rstd);
    } else {
        *mean = max_abs;
        *rstd = 0.0f;
    }
}

/* A row that cannot be normalised comes out NaN, never a plausible value;
 * its stats (max|x|, 0) let the op name it. */
void tg_layernorm_row(const float *x, int c, const float *gamma, const float *beta, float eps, float *y,
                      float *stats)
{
    float mean, rstd;
    row_stats(x, y, c, eps, &mean, &rstd);
    for (int j = 0; j < c; j++)
        y[j] = rstd == 0.0f ? NAN : gamma[j] * ((x[j] - mean) * rstd) + beta[j];
    if (stats) {
        stats[0] = mean;
        stats[1] = rstd;
    }
}

static void forward_chunk(void *ctx, long ch)
{
    const tg_node *n = ctx;
    const tg_tensor *xt = n->in[0];
    const ln_aux *aux = n->aux;
    const float *gamma = aux->gamma, *beta = aux->beta;
    int c = tg_cols(xt);
    float eps = n->f[0];
    long r0, r1;
    chunk_rows(n, ch, &r0, &r1);
    for (long r = r0; r < r1; r++)
        tg_layernorm_row(xt->data + r * c, c, gamma, beta, eps, n->out->data + r * c, aux->stats + 2 * r);
}

void tg_layernorm_forward(tg_node *n)
{
    const ln_aux *aux = n->aux;
    tg_parallel_for(aux->chunks, forward_chunk, n);
    for (size_t r = 0; r < tg_rows(n->in[0]); r++)
        if (aux->stats[2 * r + 1] == 0.0f) {
            tg_tape_fail(aux->tape, TG_ERR_ARG, "tg_layernorm: row %zu of x holds %g, beyond the %g it can normalise",
                         r, (double)aux->stats[2 * r], (double)LN_MAX_ABS);
            return;
        }
}

/* sum(g) and sum(g * xhat) for one row, g = dy * gamma, in independent lanes. */
static void row_sums(const float *x, const float *dy, const float *gamma, float mean, float rstd,
                     int c, float *sum_g, float *sum_gx)
{
    float ag[TG_LANES] = {0}, agx[TG_LANES] = {0}, sg = 0.0f, sgx = 0.0f;
    int j = 0;
    for (; j + TG_LANES <= c; j += TG_LANES)
        for (int l = 0; l < TG_LANES; l++) {
            float g = dy[j + l] * gamma[j + l];
            ag[l] += g;
            agx[l] += g * (x[j + l] - mean) * rstd;
        }
    for (; j < c; j++) {
        sg += dy[j] * gamma[j];
        sgx += dy[j] * gamma[j] * (x[j] - mean) * rstd;
    }
    for (int l = 0; l < TG_LANES; l++) {
        sg += ag[l];
        sgx += agx[l];
    }
    *sum_g = sg;
    *sum_gx = sgx;
}

/* One row's dx and its share of dgamma and dbeta, in one pass over the row
 * instead of two (forward + backward at 2048 x 768: 0.71 -> 0.65 ms). */
static void row_dx(const float *restrict x, const float *restrict dy, const float *restrict gamma, float mean,
                   float rstd, float mg, float mgx, int c, float *restrict dx, float *restrict pg,
                   float *restrict pb)
{
    for (int j = 0; j < c; j++) {
        float xhat = (x[j] - mean) * rstd;
        dx[j] += rstd * (dy[j] * gamma[j] - mg - xhat * mgx);
        pg[j] += dy[j] * xhat;
        pb[j] += dy[j];
    }
}

/* Rows [r0, r1): dx, and this chunk's dgamma (pg) and dbeta (pb). */
static void backward_rows(const tg_node *n, long r0, long r1, float *pg, float *pb)
{
    const tg_tensor *xt = n->in[0];
    const ln_aux *aux = n->aux;
    const float *gamma = aux->gamma;
    int c = tg_cols(xt);
    for (long r = r0; r < r1; r++) {
        const float *x = xt->data + r * c, *dy = n->out->grad + r * c;
        float mean = aux->stats[2 * r], rstd = aux->stats[2 * r + 1];
        if (xt->grad) {
            float sg, sgx;
            row_sums(x, dy, gamma, mean, rstd, c, &sg, &sgx);
            row_dx(x, dy, gamma, mean, rstd, sg / (float)c, sgx / (float)c, c, xt->grad + r * c, pg, pb);
            continue;
        }
        for (int j = 0; j < c; j++) {
            pg[j] += dy[j] * (x[j] - mean) * rstd;
            pb[j] += dy[j];
        }
    }
}

static void backward_chunk(void *ctx, long ch)
{
    const tg_node *n = ctx;
    const ln_aux *aux = n->aux;
    int c = tg_cols(n->in[0]);
    float *pg = aux->partial + (size_t)ch * 2 * c, *pb = pg + c;
    for (int j = 0; j < 2 * c; j++)
        pg[j] = 0.0f;
    long r0, r1;
    chunk_rows(n, ch, &r0, &r1);
    backward_rows(n, r0, r1, pg, pb);
}

void tg_layernorm_backward(tg_node *n)
{
    const ln_aux *aux = n->aux;
    int c = tg_cols(n->in[0]), chunks = aux->chunks;
    tg_parallel_for(chunks, backward_chunk, n);
    float *dgamma = n->in[1] ? n->in[1]->grad : NULL, *dbeta = n->in[2] ? n->in[2]->grad : NULL;
    for (int ch = 0; ch < chunks; ch++) {
        const float *pg = aux->partial + (size_t)ch * 2 * c, *pb = pg + c;
        for (int j = 0; dgamma && j < c; j++)
            dgamma[j] += pg[j];
        for (int j = 0; dbeta && j < c; j++)
            dbeta[j] += pb[j];
    }
}
