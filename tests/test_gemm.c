/* tg_gemm, sent to OpenBLAS for every product when the build links it
 * (TG_GEMM_BLAS_MIN_FLOPS=0), the built-in backend and tg_gemm_bias, all
 * against a double-precision reference, for every transpose combination,
 * alpha/beta and odd sizes. C starts as NaN where beta is 0 or a bias
 * replaces it, since C's old values must then be ignored. Tolerance 1e-4 relative to the row's magnitude:
 * float products over k <= 300 terms stay well inside it, a wrong index
 * does not. */
#include "test_util.h"
#include "tapegrad_internal.h"

#include <math.h>
#include <stdlib.h>

static void reference(bool ta, bool tb, int m, int n, int k, float alpha, const float *a,
                      const float *b, float beta, const float *bias, const float *c0, double *c)
{
    int lda = ta ? m : k, ldb = tb ? k : n;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int p = 0; p < k; p++)
                s += (double)(ta ? a[p * lda + i] : a[i * lda + p]) *
                     (double)(tb ? b[j * ldb + p] : b[p * ldb + j]);
            c[i * n + j] = alpha * s + (bias ? bias[j] : beta == 0.0f ? 0.0 : beta * (double)c0[i * n + j]);
        }
}

enum kind { GEMM, GEMM_BIAS, BUILTIN, BUILTIN_BIAS };
static const char *const kind_name[] = {"tg_gemm", "tg_gemm_bias", "builtin", "builtin with bias"};

/* GEMM_BIAS is alpha 1 and ignores beta. */
static void check(enum kind kind, int m, int n, int k, bool ta, bool tb, float alpha, float beta)
{
    bool biased = kind == GEMM_BIAS || kind == BUILTIN_BIAS;
    tg_rng r;
    tg_rng_seed(&r, (uint64_t)(m * 7 + n * 13 + k));
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
    float *c = malloc(sizeof(float) * m * n), *c0 = malloc(sizeof(float) * m * n);
    float *bias = malloc(sizeof(float) * n);
    double *ref = malloc(sizeof(double) * m * n);
    for (int i = 0; i < m * k; i++)
        a[i] = tg_rng_normal(&r);
    for (int i = 0; i < k * n; i++)
        b[i] = tg_rng_normal(&r);
    for (int j = 0; j < n; j++)
        bias[j] = tg_rng_normal(&r);
    for (int i = 0; i < m * n; i++)
        c[i] = c0[i] = biased || beta == 0.0f ? NAN : tg_rng_normal(&r);
    reference(ta, tb, m, n, k, alpha, a, b, beta, biased ? bias : NULL, c0, ref);
    int lda = ta ? m : k, ldb = tb ? k : n;
    if (kind == GEMM)
        tg_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, n);
    else if (kind == GEMM_BIAS)
        tg_gemm_bias(ta, tb, m, n, k, a, lda, b, ldb, bias, c, n);
    else
        tg_gemm_builtin(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, biased ? bias : NULL, c, n);
    for (int i = 0; i < m * n; i++) {
        double tol = 1e-4 * (sqrt((double)k) + fabs(ref[i]));
        if (!(fabs(c[i] - ref[i]) <= tol))
            fail_msg("%s m=%d n=%d k=%d ta=%d tb=%d: c[%d] = %g, expected %g", kind_name[kind], m, n, k, ta,
                     tb, i, (double)c[i], ref[i]);
    }
    free(a);
    free(b);
    free(c);
    free(c0);
    free(bias);
    free(ref);
}

static void test_gemm_all_flags(void **s)
{
    (void)s;
    static const int dims[][3] = {{1, 1, 1},    {3, 5, 7},   {17, 33, 9},   {64, 48, 130},
                                  {7, 129, 300}, {130, 3, 65}, {200, 70, 520}};
    for (size_t d = 0; d < sizeof dims / sizeof *dims; d++)
        for (int f = 0; f < 4; f++) {
            int m = dims[d][0], n = dims[d][1], k = dims[d][2];
            check(GEMM, m, n, k, f & 1, f & 2, 1.0f, 0.0f);
            check(GEMM, m, n, k, f & 1, f & 2, 0.5f, 1.0f);
            check(GEMM_BIAS, m, n, k, f & 1, f & 2, 1.0f, 0.0f);
            check(BUILTIN, m, n, k, f & 1, f & 2, 1.0f, 0.0f);
            check(BUILTIN, m, n, k, f & 1, f & 2, -2.0f, 0.25f);
            check(BUILTIN_BIAS, m, n, k, f & 1, f & 2, -2.0f, 0.0f);
        }
}

int main(void)
{
    /* Read once, at tg_gemm's first call. */
    setenv("TG_GEMM_BLAS_MIN_FLOPS", "0", 1);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_gemm_all_flags)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
