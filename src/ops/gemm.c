/* The one GEMM every product goes through: C = alpha * op(A) op(B) + beta * C,
 * row-major, op a transpose chosen by flag (never materialised).
 *
 * With OpenBLAS (Meson option blas) it calls cblas_sgemm; otherwise the
 * built-in loops below, ordered so the innermost loop runs over contiguous
 * memory for every combination of flags. */
#include "tapegrad_internal.h"

#include <string.h>

#ifdef TG_HAVE_BLAS
#include <cblas.h>
#endif

#define TG_KCHUNK 512

/* C row i += alpha * sum_p A(i,p) B(p,:) with B rows contiguous. */
static void row_axpy(bool ta, int i, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float *c)
{
    for (int p = 0; p < k; p++) {
        float s = alpha * (ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p]);
        const float *bp = b + (size_t)p * ldb;
        for (int j = 0; j < n; j++)
            c[j] += s * bp[j];
    }
}

/* C row i += alpha * (A row i) . (B row j) for each j, B transposed. A column
 * i (when A is transposed) is gathered chunk by chunk into a stack buffer. */
static void row_dots(bool ta, int i, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float *c)
{
    float col[TG_KCHUNK];
    for (int p0 = 0; p0 < k; p0 += TG_KCHUNK) {
        int kc = k - p0 < TG_KCHUNK ? k - p0 : TG_KCHUNK;
        const float *ai = a + (size_t)i * lda + p0;
        if (ta) {
            for (int p = 0; p < kc; p++)
                col[p] = a[(size_t)(p0 + p) * lda + i];
            ai = col;
        }
        for (int j = 0; j < n; j++)
            c[j] += alpha * tg_vdot(ai, b + (size_t)j * ldb + p0, kc);
    }
}

void tg_gemm_builtin(bool ta, bool tb, int m, int n, int k, float alpha, const float *a,
                         int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
#pragma omp parallel for schedule(static) if ((long)m * n * k > 100000)
    for (int i = 0; i < m; i++) {
        float *ci = c + (size_t)i * ldc;
        if (beta == 0.0f)
            memset(ci, 0, (size_t)n * sizeof(float));
        else if (beta != 1.0f)
            for (int j = 0; j < n; j++)
                ci[j] *= beta;
        if (tb)
            row_dots(ta, i, n, k, alpha, a, lda, b, ldb, ci);
        else
            row_axpy(ta, i, n, k, alpha, a, lda, b, ldb, ci);
    }
}

void tg_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
             int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
#ifdef TG_HAVE_BLAS
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#else
    tg_gemm_builtin(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}
