/* The vectorisable exp and tanh of src/ops/vmath.h against libm in double,
 * over a dense grid of their whole working range. The bounds are the ones
 * vmath.h promises; the measured maxima are printed. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>

#include "ops/vmath.h"

static void test_exp_relative_error(void **s)
{
    (void)s;
    double worst = 0.0, at = 0.0;
    for (double x = -87.0; x <= 88.0; x += 1e-4) {
        float xf = (float)x;
        double want = exp((double)xf), err = fabs((double)tg_vexp(xf) - want) / want;
        if (err > worst) {
            worst = err;
            at = xf;
        }
    }
    print_message("tg_vexp: max relative error %.3g at x = %.6g\n", worst, at);
    assert_true(worst < 2e-7);
    assert_true(tg_vexp(0.0f) == 1.0f);
    /* Clamped, never inf, 0 or NaN-producing at the ends. */
    assert_true(isfinite(tg_vexp(1e4f)) && tg_vexp(1e4f) > 1e38f);
    assert_true(tg_vexp(-1e4f) > 0.0f && tg_vexp(-1e4f) < 1e-37f);
}

static void test_tanh_absolute_error(void **s)
{
    (void)s;
    double worst = 0.0, worst_small = 0.0, at = 0.0;
    for (double u = -12.0; u <= 12.0; u += 1e-5) {
        float uf = (float)u;
        double want = tanh((double)uf), err = fabs((double)tg_vtanh(uf) - want);
        if (err > worst) {
            worst = err;
            at = uf;
        }
        if (fabs(want) > 0 && fabs(uf) < 0.25)
            worst_small = fmax(worst_small, err / fabs(want));
    }
    print_message("tg_vtanh: max absolute error %.3g at u = %.6g; relative below |u| 0.25: %.3g\n", worst, at,
                  worst_small);
    assert_true(worst < 2e-7);
    assert_true(worst_small < 2e-7); /* the series keeps small arguments accurate */
    assert_true(tg_vtanh(0.0f) == 0.0f);
    assert_true(tg_vtanh(1e4f) == 1.0f && tg_vtanh(-1e4f) == -1.0f);
}

/* NaN in, NaN out, with no float-to-int conversion of NaN on the way (the
 * clang sanitizer build checks that with -fsanitize=float-cast-overflow).
 * Infinities saturate. volatile keeps the compiler from folding the calls. */
static void test_nan_and_inf(void **s)
{
    (void)s;
    volatile float nan = NAN, inf = INFINITY;
    assert_true(isnan(tg_vexp(nan)) && isnan(tg_vexp(-nan)));
    assert_true(isnan(tg_vtanh(nan)));
    assert_true(tg_vexp(inf) > 1e38f && isfinite(tg_vexp(inf)));
    assert_true(tg_vexp(-inf) > 0.0f && tg_vexp(-inf) < 1e-37f);
    assert_true(tg_vtanh(inf) == 1.0f && tg_vtanh(-inf) == -1.0f);
    float row[37];
    for (int i = 0; i < 37; i++)
        row[i] = i == 20 ? nan : (float)i - 18.0f;
    for (int i = 0; i < 37; i++) /* the vectorised loop, as softmax runs it */
        row[i] = tg_vexp(row[i]);
    for (int i = 0; i < 37; i++)
        assert_true(i == 20 ? isnan(row[i]) : isfinite(row[i]) && row[i] > 0.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp_relative_error),
        cmocka_unit_test(test_tanh_absolute_error),
        cmocka_unit_test(test_nan_and_inf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
