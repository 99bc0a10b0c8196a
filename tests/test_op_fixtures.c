/* Some of the newer ops against PyTorch: GELU with erf, SiLU, RMSNorm
 * forward and backward, logsumexp (with a row near 1e4) and a broadcast
 * division, from the files tests/fixtures/make_op_fixtures.py writes (see
 * there for how each reference is computed). Each output is compared
 * element by element within tol * max(1, |reference|). */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A fixture's values, checked to hold n of them. */
static float *load(const char *name, size_t n)
{
    char file[96];
    snprintf(file, sizeof file, "op_%s.txt", name);
    size_t got;
    float *v = tu_fixture(file, &got);
    if (got != n)
        fail_msg("%s holds %zu values, expected %zu", file, got, n);
    return v;
}

/* A parameter of the given shape holding the fixture's values. */
static tg_tensor *param(const char *name, int ndim, const int *shape)
{
    tg_tensor *p = tg_param_new(ndim, shape, name);
    float *v = load(name, p->size);
    memcpy(p->data, v, p->size * sizeof(float));
    free(v);
    return p;
}

static void expect(const char *name, const float *got, size_t n, double tol)
{
    float *want = load(name, n);
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= tol * fmax(1.0, fabs(want[i]))))
            fail_msg("%s[%zu]: %.9g, PyTorch %.9g", name, i, (double)got[i], (double)want[i]);
    free(want);
}

/* loss = sum(y * dy) on a fresh tape, then backward. */
static tg_tape *run(tg_tensor *y_of(tg_tape *, tg_tensor **), tg_tensor **in, const char *dy_name, tg_tensor **y)
{
    tg_tape *t = tg_tape_new(0);
    *y = y_of(t, in);
    assert_non_null(*y);
    tg_tensor *dy = param(dy_name, (*y)->ndim, (*y)->shape);
    dy->requires_grad = false;
    assert_int_equal(tg_backward(t, tg_sum(t, tg_mul(t, *y, dy))), TG_OK);
    tg_param_free(dy);
    return t;
}

static tg_tensor *gelu_erf(tg_tape *t, tg_tensor **in) { return tg_gelu_erf(t, in[0]); }
static tg_tensor *silu(tg_tape *t, tg_tensor **in) { return tg_silu(t, in[0]); }
static tg_tensor *rmsnorm(tg_tape *t, tg_tensor **in) { return tg_rmsnorm(t, in[0], in[1], 1e-5f); }
static tg_tensor *lse(tg_tape *t, tg_tensor **in) { return tg_logsumexp(t, in[0], 1, false); }
static tg_tensor *bdiv(tg_tape *t, tg_tensor **in) { return tg_div(t, in[0], in[1]); }

static void check_unary(const char *name, tg_tensor *fn(tg_tape *, tg_tensor **))
{
    char key[64];
    snprintf(key, sizeof key, "%s_x", name);
    tg_tensor *x = param(key, 1, (int[]){40}), *y;
    snprintf(key, sizeof key, "%s_dy", name);
    tg_tape *t = run(fn, &x, key, &y);
    snprintf(key, sizeof key, "%s_y", name);
    expect(key, y->data, 40, 2e-6);
    snprintf(key, sizeof key, "%s_dx", name);
    expect(key, x->grad, 40, 4e-6);
    tg_tape_free(t);
    tg_param_free(x);
}

static void test_gelu_erf(void **s) { (void)s; check_unary("gelu_erf", gelu_erf); }
static void test_silu(void **s) { (void)s; check_unary("silu", silu); }

static void test_rmsnorm(void **s)
{
    (void)s;
    tg_tensor *in[2] = {param("rmsnorm_x", 2, (int[]){3, 17}), param("rmsnorm_g", 1, (int[]){17})}, *y;
    tg_tape *t = run(rmsnorm, in, "rmsnorm_dy", &y);
    expect("rmsnorm_y", y->data, 51, 2e-6);
    expect("rmsnorm_dx", in[0]->grad, 51, 1e-5);
    expect("rmsnorm_dg", in[1]->grad, 17, 1e-5);
    tg_tape_free(t);
    tg_param_free(in[0]);
    tg_param_free(in[1]);
}

static void test_logsumexp(void **s)
{
    (void)s;
    tg_tensor *x = param("lse_x", 2, (int[]){4, 9}), *y;
    tg_tape *t = run(lse, &x, "lse_dy", &y);
    expect("lse_y", y->data, 4, 1e-6);
    expect("lse_dx", x->grad, 36, 2e-6);
    tg_tape_free(t);
    tg_param_free(x);
}

static void test_broadcast_div(void **s)
{
    (void)s;
    tg_tensor *in[2] = {param("bdiv_a", 3, (int[]){3, 1, 5}), param("bdiv_b", 2, (int[]){4, 1})}, *y;
    tg_tape *t = run(bdiv, in, "bdiv_dy", &y);
    assert_int_equal(y->size, 60);
    expect("bdiv_y", y->data, 60, 2e-6);
    expect("bdiv_da", in[0]->grad, 15, 1e-5);
    expect("bdiv_db", in[1]->grad, 4, 1e-5);
    tg_tape_free(t);
    tg_param_free(in[0]);
    tg_param_free(in[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gelu_erf),
        cmocka_unit_test(test_silu),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_logsumexp),
        cmocka_unit_test(test_broadcast_div),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
