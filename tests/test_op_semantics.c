/* What the ops compute, beyond their gradients (the registry checks those):
 * forward values against double-precision references written from the
 * definitions, the conventions at kinks and ties, and the errors on bad
 * shapes and arguments. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka's assert_float_equal passes when a value is NaN; this one fails. */
#undef assert_float_equal
#define assert_float_equal(a, b, eps)                                                    \
    do {                                                                                 \
        double a_ = (a), b_ = (b);                                                       \
        if (!(fabs(a_ - b_) <= (double)(eps)))                                           \
            fail_msg("%s = %.9g, want %.9g within %g", #a, a_, b_, (double)(eps));       \
    } while (0)

static tg_tensor *filled(tg_tape *t, const int *shape, int ndim, float start, float step)
{
    tg_tensor *x = tg_tape_tensor(t, ndim, shape);
    assert_non_null(x);
    for (size_t i = 0; i < x->size; i++)
        x->data[i] = start + step * (float)i;
    return x;
}

#define TENSOR(t, start, step, ...) filled(t, TU_SHAPE(__VA_ARGS__), start, step)

static void expect_error(tg_tape *t, tg_status s, const char *a, const char *b)
{
    assert_int_equal(tg_tape_status(t), s);
    const char *msg = tg_tape_error(t);
    if (!strstr(msg, a) || (b && !strstr(msg, b)))
        fail_msg("message \"%s\" does not name \"%s\"%s%s", msg, a, b ? " and " : "", b ? b : "");
    tg_tape_reset(t);
}

/* Broadcast forward values of all four binary ops, against the output
 * element's coordinates mapped back into each input by hand. */
static void test_broadcast_values(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *a = TENSOR(t, 1.0f, 0.5f, 3, 1, 5); /* [3,1,5] */
    tg_tensor *b = TENSOR(t, 2.0f, 0.25f, 4, 1);   /* [4,1] */
    tg_tensor *y[4] = {tg_add(t, a, b), tg_sub(t, a, b), tg_mul(t, a, b), tg_div(t, a, b)};
    assert_int_equal(tg_tape_status(t), TG_OK);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(y[k]->ndim, 3);
        assert_int_equal(y[k]->shape[0], 3);
        assert_int_equal(y[k]->shape[1], 4);
        assert_int_equal(y[k]->shape[2], 5);
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < 5; l++) {
                    double av = a->data[i * 5 + l], bv = b->data[j];
                    double want = k == 0 ? av + bv : k == 1 ? av - bv : k == 2 ? av * bv : av / bv;
                    assert_float_equal(y[k]->data[(i * 4 + j) * 5 + l], want, 1e-6 * fabs(want));
                }
    }
    /* a stretched on the left: [5] - [2,5] */
    tg_tensor *row = TENSOR(t, 0.0f, 1.0f, 5), *m = TENSOR(t, 10.0f, 1.0f, 2, 5);
    tg_tensor *d = tg_sub(t, row, m);
    assert_int_equal(d->shape[0], 2);
    for (int i = 0; i < 10; i++)
        assert_float_equal(d->data[i], (float)(i % 5) - (10.0f + (float)i), 0.0f);
    tg_tape_free(t);
}

/* Gradients summed over the stretched dimensions: for y = a * b with a
 * [2,1,3] and b [4,1] and dy = 1, da[i,0,l] = sum over j of b[j] and db[j] =
 * sum over i, l of a[i,0,l]. */
static void test_broadcast_reduces_gradient(void **s)
{
    (void)s;
    int sa[] = {2, 1, 3}, sb[] = {4, 1};
    tg_tensor *a = tg_param_new(3, sa, "a"), *b = tg_param_new(2, sb, "b");
    for (int i = 0; i < 6; i++)
        a->data[i] = (float)(i + 1);
    for (int j = 0; j < 4; j++)
        b->data[j] = 0.5f * (float)(j + 1);
    tg_tape *t = tg_tape_new(0);
    assert_int_equal(tg_backward(t, tg_sum(t, tg_mul(t, a, b))), TG_OK);
    for (int i = 0; i < 6; i++)
        assert_float_equal(a->grad[i], 0.5f + 1.0f + 1.5f + 2.0f, 0.0f);
    for (int j = 0; j < 4; j++)
        assert_float_equal(b->grad[j], 21.0f, 0.0f);
    tg_tape_free(t);
    tg_param_free(a);
    tg_param_free(b);
}

static void test_broadcast_errors(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *a = TENSOR(t, 0, 1, 3, 4), *b = TENSOR(t, 0, 1, 3);
    assert_null(tg_add(t, a, b));
    expect_error(t, TG_ERR_SHAPE, "tg_add", "a is [3,4], b is [3]");
    a = TENSOR(t, 0, 1, 2, 3, 4);
    b = TENSOR(t, 0, 1, 3, 3, 4);
    assert_null(tg_div(t, a, b));
    expect_error(t, TG_ERR_SHAPE, "tg_div", "a is [2,3,4], b is [3,3,4]");
    a = TENSOR(t, 0, 1, 2);
    assert_null(tg_mul(t, a, NULL));
    expect_error(t, TG_ERR_ARG, "tg_mul", "NULL");
    tg_tape_free(t);
}

/* Each unary op at a few points against libm in double. */
static void test_unary_values(void **s)
{
    (void)s;
    static const float xs[] = {-3.0f, -1.0f, -0.25f, 0.0f, 0.5f, 2.0f, 9.0f};
    enum { N = sizeof xs / sizeof *xs };
    tg_tape *t = tg_tape_new(0);
    tg_tensor *x = tg_tape_tensor(t, 1, (int[]){N});
    memcpy(x->data, xs, sizeof xs);
    tg_tensor *y[] = {tg_neg(t, x), tg_abs(t, x), tg_tanh(t, x), tg_sigmoid(t, x), tg_relu(t, x),
                      tg_silu(t, x), tg_gelu_erf(t, x), tg_clamp(t, x, -0.5f, 1.0f), tg_exp(t, x),
                      tg_pow(t, x, 3.0f)};
    assert_int_equal(tg_tape_status(t), TG_OK);
    for (int i = 0; i < N; i++) {
        double v = xs[i], sig = 1.0 / (1.0 + exp(-v));
        double want[] = {-v, fabs(v), tanh(v), sig, v > 0 ? v : 0, v * sig, 0.5 * v * (1 + erf(v / sqrt(2.0))),
                         fmin(fmax(v, -0.5), 1.0), exp(v), v * v * v};
        for (size_t k = 0; k < sizeof y / sizeof *y; k++)
            if (fabs(y[k]->data[i] - want[k]) > 2e-6 * fmax(1.0, fabs(want[k])))
                fail_msg("op %zu at x = %g: %.9g, want %.9g", k, v, (double)y[k]->data[i], want[k]);
    }
    tg_tape_free(t);
}

/* log and sqrt on positive inputs; sigmoid at +-100 stays finite and exact
 * at its limits; a NaN stays NaN through relu and clamp. */
static void test_unary_edges(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *p = tg_tape_tensor(t, 1, (int[]){3});
    p->data[0] = 0.25f;
    p->data[1] = 1.0f;
    p->data[2] = 100.0f;
    tg_tensor *l = tg_log(t, p), *r = tg_sqrt(t, p);
    for (int i = 0; i < 3; i++) {
        assert_float_equal(l->data[i], log(p->data[i]), 1e-6);
        assert_float_equal(r->data[i], sqrt(p->data[i]), 1e-6);
    }
    tg_tensor *big = tg_tape_tensor(t, 1, (int[]){3});
    big->data[0] = -100.0f;
    big->data[1] = 100.0f;
    big->data[2] = NAN;
    tg_tensor *sg = tg_sigmoid(t, big), *re = tg_relu(t, big), *cl = tg_clamp(t, big, -1.0f, 1.0f);
    assert_true(sg->data[0] >= 0.0f && sg->data[0] < 1e-40f);
    assert_float_equal(sg->data[1], 1.0f, 0.0f);
    assert_true(isnan(re->data[2]) && isnan(cl->data[2]));
    assert_float_equal(re->data[0], 0.0f, 0.0f);
    assert_float_equal(cl->data[0], -1.0f, 0.0f);
    assert_float_equal(cl->data[1], 1.0f, 0.0f);
    tg_tape_free(t);
}

/* The gradient at the kinks is PyTorch's: relu'(0) = abs'(0) = 0, clamp
 * passes it at its bounds. */
static void test_kink_gradients(void **s)
{
    (void)s;
    tg_tensor *x = tg_param_new(1, (int[]){3}, "x");
    x->data[0] = 0.0f;
    x->data[1] = -0.5f;
    x->data[2] = 1.0f;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *loss = tg_sum(t, tg_add(t, tg_add(t, tg_relu(t, x), tg_abs(t, x)),
                                       tg_scale(t, tg_clamp(t, x, -0.5f, 1.0f), 10.0f)));
    assert_int_equal(tg_backward(t, loss), TG_OK);
    assert_float_equal(x->grad[0], 0.0f + 0.0f + 10.0f, 0.0f);
    assert_float_equal(x->grad[1], 0.0f - 1.0f + 10.0f, 0.0f);
    assert_float_equal(x->grad[2], 1.0f + 1.0f + 10.0f, 0.0f);
    tg_tape_free(t);
    tg_param_free(x);
}

static void test_unary_errors(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *x = TENSOR(t, 0, 1, 4);
    assert_null(tg_clamp(t, x, 1.0f, -1.0f));
    expect_error(t, TG_ERR_ARG, "tg_clamp", "lo 1, hi -1");
    x = TENSOR(t, 0, 1, 4);
    assert_null(tg_clamp(t, x, NAN, 1.0f));
    expect_error(t, TG_ERR_ARG, "tg_clamp", NULL);
    x = TENSOR(t, 0, 1, 4);
    assert_null(tg_pow(t, x, INFINITY));
    expect_error(t, TG_ERR_ARG, "tg_pow", "exponent");
    assert_null(tg_exp(t, NULL));
    expect_error(t, TG_ERR_ARG, "tg_exp", "NULL");
    /* one-sided clamps are fine (x anew: the resets rewound the arena) */
    x = TENSOR(t, 0, 1, 4);
    assert_non_null(tg_clamp(t, x, 0.0f, INFINITY));
    assert_non_null(tg_clamp(t, x, -INFINITY, 0.0f));
    tg_tape_free(t);
}

/* Along the middle dimension of [2,5,3]: sum, mean, max and logsumexp
 * against double loops, keepdim's shape, and logsumexp finite at 1e4. */
static void test_reduce_dim_values(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *x = TENSOR(t, -3.0f, 0.37f, 2, 5, 3);
    for (size_t i = 0; i < x->size; i++)
        x->data[i] = sinf(3.0f * (float)i) * 4.0f;
    tg_tensor *y[4] = {tg_sum_dim(t, x, 1, false), tg_mean_dim(t, x, -2, true), tg_max_dim(t, x, 1, false),
                       tg_logsumexp(t, x, 1, true)};
    assert_int_equal(tg_tape_status(t), TG_OK);
    assert_int_equal(y[0]->ndim, 2);
    assert_int_equal(y[1]->ndim, 3);
    assert_int_equal(y[1]->shape[1], 1);
    assert_int_equal(y[3]->shape[2], 3);
    for (int o = 0; o < 2; o++)
        for (int i = 0; i < 3; i++) {
            double sum = 0, mx = -INFINITY, lse = 0;
            for (int j = 0; j < 5; j++) {
                double v = x->data[(o * 5 + j) * 3 + i];
                sum += v;
                mx = fmax(mx, v);
            }
            for (int j = 0; j < 5; j++)
                lse += exp(x->data[(o * 5 + j) * 3 + i] - mx);
            lse = mx + log(lse);
            assert_float_equal(y[0]->data[o * 3 + i], sum, 1e-5);
            assert_float_equal(y[1]->data[o * 3 + i], sum / 5, 1e-6);
            assert_float_equal(y[2]->data[o * 3 + i], mx, 0.0);
            assert_float_equal(y[3]->data[o * 3 + i], lse, 1e-5);
        }
    tg_tensor *big = TENSOR(t, 1e4f, 1.0f, 3);
    tg_tensor *l = tg_logsumexp(t, big, 0, false);
    assert_int_equal(l->ndim, 1);
    assert_float_equal(l->data[0], 1e4 + 2 + log(1 + exp(-1.0) + exp(-2.0)), 1e-3);
    tg_tape_free(t);
}

/* max: the gradient goes to the first of tied maxima, and a NaN wins. */
static void test_max_ties(void **s)
{
    (void)s;
    tg_tensor *x = tg_param_new(2, (int[]){2, 4}, "x");
    const float v[] = {1.0f, 3.0f, -2.0f, 3.0f, 0.0f, NAN, 5.0f, 1.0f};
    memcpy(x->data, v, sizeof v);
    tg_tape *t = tg_tape_new(0);
    tg_tensor *m = tg_max_dim(t, x, 1, false);
    assert_float_equal(m->data[0], 3.0f, 0.0f);
    assert_true(isnan(m->data[1]));
    tg_tensor *first = tg_slice(t, m, 0, 0, 1);
    assert_int_equal(tg_backward(t, tg_sum(t, first)), TG_OK);
    const float want[] = {0, 1, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 8; i++)
        assert_float_equal(x->grad[i], want[i], 0.0f);
    tg_tape_free(t);
    tg_param_free(x);
}

/* logsumexp of a run of -inf is -inf and passes back no gradient (not NaN:
 * exp(x - y) would be exp(-inf + inf)); a run holding +inf gives +inf. The
 * loss goes through a clamp, which makes it finite. */
static void test_logsumexp_infinite(void **s)
{
    (void)s;
    tg_tensor *x = tg_param_new(2, (int[]){1, 3}, "x");
    tg_fill(x, -INFINITY);
    tg_tape *t = tg_tape_new(0);
    tg_tensor *y = tg_logsumexp(t, x, 1, false);
    assert_true(isinf(y->data[0]) && y->data[0] < 0);
    assert_int_equal(tg_backward(t, tg_sum(t, tg_clamp(t, y, -10.0f, 10.0f))), TG_OK);
    for (int i = 0; i < 3; i++)
        assert_float_equal(x->grad[i], 0.0f, 0.0f);
    tg_tensor *big = TENSOR(t, 1.0f, 0.0f, 3);
    big->data[1] = INFINITY;
    tg_tensor *z = tg_logsumexp(t, big, 0, false);
    assert_true(isinf(z->data[0]) && z->data[0] > 0);
    tg_tape_free(t);
    tg_param_free(x);
}

/* permute, transpose, slice, concat and split move the right elements. */
static void test_shape_values(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *x = TENSOR(t, 0.0f, 1.0f, 2, 3, 4); /* x[a,b,c] = 12a + 4b + c */
    tg_tensor *p = tg_permute(t, x, (int[]){2, 0, 1}), *tr = tg_transpose(t, x, -1, 0);
    assert_int_equal(tg_tape_status(t), TG_OK);
    assert_int_equal(p->shape[0], 4);
    assert_int_equal(p->shape[2], 3);
    assert_int_equal(tr->shape[0], 4);
    assert_int_equal(tr->shape[2], 2);
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 4; c++) {
                float want = (float)(12 * a + 4 * b + c);
                assert_float_equal(p->data[(c * 2 + a) * 3 + b], want, 0.0f);
                assert_float_equal(tr->data[(c * 3 + b) * 2 + a], want, 0.0f);
            }
    tg_tensor *sl = tg_slice(t, x, 1, 1, 2);
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 4; c++)
                assert_float_equal(sl->data[(a * 2 + b) * 4 + c], (float)(12 * a + 4 * (b + 1) + c), 0.0f);
    tg_tensor *part[3];
    assert_int_equal(tg_split(t, x, -1, 3, (int[]){1, 2, 1}, part), TG_OK);
    assert_int_equal(part[1]->shape[2], 2);
    assert_float_equal(part[2]->data[5], 12.0f + 4.0f * 2 + 3.0f, 0.0f);
    tg_tensor *back = tg_concat(t, part, 3, 2);
    assert_int_equal(back->size, x->size);
    assert_memory_equal(back->data, x->data, x->size * sizeof(float));
    tg_tape_free(t);
}

static void test_reduce_shape_errors(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    assert_null(tg_sum_dim(t, TENSOR(t, 0, 1, 2, 3), 2, false));
    expect_error(t, TG_ERR_ARG, "tg_sum_dim", "dimension 2 is out of range for [2,3]");
    assert_null(tg_logsumexp(t, TENSOR(t, 0, 1, 2, 3), -3, false));
    expect_error(t, TG_ERR_ARG, "tg_logsumexp", "dimension -3");
    assert_null(tg_permute(t, TENSOR(t, 0, 1, 2, 3), (int[]){1, 1}));
    expect_error(t, TG_ERR_ARG, "tg_permute", "entry 1 is 1");
    assert_null(tg_slice(t, TENSOR(t, 0, 1, 2, 3), 1, 2, 2));
    expect_error(t, TG_ERR_ARG, "tg_slice", "start 2, length 2");
    tg_tensor *two[2] = {TENSOR(t, 0, 1, 2, 3), TENSOR(t, 0, 1, 3, 3)};
    assert_null(tg_concat(t, two, 2, 1));
    expect_error(t, TG_ERR_SHAPE, "tg_concat", "[2,3] and [3,3] differ outside dimension 1");
    tg_tensor *part[2];
    assert_int_equal(tg_split(t, TENSOR(t, 0, 1, 2, 3), 1, 2, (int[]){2, 2}, part), TG_ERR_ARG);
    expect_error(t, TG_ERR_ARG, "tg_split", "size 3");
    assert_int_equal(tg_split(t, TENSOR(t, 0, 1, 2, 3), 1, 2, (int[]){4, -1}, part), TG_ERR_ARG);
    expect_error(t, TG_ERR_ARG, "tg_split", "positive");
    tg_tape_free(t);
}

/* RMSNorm against double: ordinary rows with a gain, rows of 1e30 (their
 * squares overflow a float), a lone 3e38, and 1e-30s with eps 0 (their
 * squares underflow a float). */
static void check_rms_row(tg_tape *t, const float *v, int c, const float *g, float eps)
{
    tg_tensor *x = tg_tape_tensor(t, 2, (int[]){1, c}), *gain = tg_tape_tensor(t, 1, (int[]){c});
    memcpy(x->data, v, (size_t)c * sizeof(float));
    for (int j = 0; j < c; j++)
        gain->data[j] = g ? g[j] : 1.0f;
    tg_tensor *y = tg_rmsnorm(t, x, gain, eps);
    assert_int_equal(tg_tape_status(t), TG_OK);
    double ms = 0.0;
    for (int j = 0; j < c; j++)
        ms += (double)v[j] * v[j] / c;
    for (int j = 0; j < c; j++) {
        double want = v[j] / sqrt(ms + eps) * (g ? g[j] : 1.0);
        if (!isfinite(y->data[j]) || fabs(y->data[j] - want) > 1e-6 * fmax(1.0, fabs(want)))
            fail_msg("rmsnorm of %g (c = %d): %.9g, want %.9g", (double)v[j], c, (double)y->data[j], want);
    }
}

static void test_rmsnorm_values(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    check_rms_row(t, (float[]){0.5f, -1.25f, 2.0f, 0.0f, 3.5f}, 5, (float[]){1.0f, 0.5f, -2.0f, 3.0f, 1.5f}, 1e-5f);
    check_rms_row(t, (float[]){1e30f, -2e30f, 3e30f}, 3, NULL, 1e-5f);
    check_rms_row(t, (float[]){3e38f}, 1, NULL, 1e-6f);
    check_rms_row(t, (float[]){1e-30f, -3e-30f}, 2, NULL, 0.0f);
    tg_tape_free(t);
}

static void test_rmsnorm_errors(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    assert_null(tg_rmsnorm(t, TENSOR(t, 0, 1, 2, 3), TENSOR(t, 1, 0, 4), 1e-5f));
    expect_error(t, TG_ERR_SHAPE, "tg_rmsnorm", "must be [3] for x [2,3], got [4]");
    assert_null(tg_rmsnorm(t, TENSOR(t, 0, 1, 2, 3), TENSOR(t, 1, 0, 3), -1.0f));
    expect_error(t, TG_ERR_ARG, "tg_rmsnorm", "eps");
    tg_tape_free(t);
}

/* The Jacobian tool: J dy is the op's backward (gain 1), and the spectrum is
 * r eps/(ms + eps) once (along x) and r n-1 times; the all-ones vector is
 * not a null direction. eps 0.3 keeps the two eigenvalues apart. */
static void check_rms_jacobian(int n, float eps)
{
    tg_rng r;
    tg_rng_seed(&r, (uint64_t)n);
    tg_tensor *x = tu_param(&r, TU_SHAPE(1, n), 1.0f), *w = tu_param(&r, TU_SHAPE(1, n), 1.0f);
    tg_tensor *one = tg_param_new(1, (int[]){n}, "g");
    tg_fill(one, 1.0f);
    double *J = malloc((size_t)n * n * sizeof *J), *eig = malloc((size_t)n * sizeof *eig);
    char err[128];
    assert_int_equal(tg_rmsnorm_jacobian(x->data, n, eps, J, err, sizeof err), TG_OK);
    tg_tape *t = tg_tape_new(0);
    assert_int_equal(tg_backward(t, tg_sum(t, tg_mul(t, tg_rmsnorm(t, x, one, eps), w))), TG_OK);
    double ms = 0.0, ones = 0.0;
    for (int j = 0; j < n; j++)
        ms += (double)x->data[j] * x->data[j] / n;
    double rr = 1.0 / sqrt(ms + eps);
    for (int k = 0; k < n; k++) {
        double jdy = 0.0, j1 = 0.0;
        for (int j = 0; j < n; j++) {
            jdy += J[(size_t)k * n + j] * w->data[j];
            j1 += J[(size_t)k * n + j];
        }
        ones += j1 * j1;
        assert_float_equal(x->grad[k], jdy, 1e-5 * fmax(1.0, fabs(jdy)));
    }
    assert_true(sqrt(ones) > 0.1 * rr);
    assert_int_equal(tg_sym_eigenvalues(J, n, eig, err, sizeof err), TG_OK);
    assert_float_equal(eig[0], rr * eps / (ms + eps), 1e-9 * rr);
    for (int i = 1; i < n; i++)
        assert_float_equal(eig[i], rr, 1e-9 * rr);
    tg_tape_free(t);
    tg_param_free(x);
    tg_param_free(w);
    tg_param_free(one);
    free(J);
    free(eig);
}

static void test_rmsnorm_jacobian(void **s)
{
    (void)s;
    check_rms_jacobian(1, 0.3f);
    check_rms_jacobian(7, 0.3f);
    check_rms_jacobian(33, 0.3f);
    check_rms_jacobian(17, 1e-5f);
    char err[128];
    double J[4];
    assert_int_equal(tg_rmsnorm_jacobian((float[]){0.0f, 0.0f}, 2, 0.0f, J, err, sizeof err), TG_ERR_ARG);
    assert_non_null(strstr(err, "ms + eps is 0"));
    assert_int_equal(tg_rmsnorm_jacobian((float[]){1.0f, NAN}, 2, 0.1f, J, err, sizeof err), TG_ERR_ARG);
    assert_non_null(strstr(err, "x[1]"));
}

static void test_mse(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *a = TENSOR(t, 0.5f, 0.3f, 3, 5), *b = TENSOR(t, 1.0f, -0.2f, 3, 5);
    tg_tensor *l = tg_mse(t, a, b);
    double want = 0.0;
    for (int i = 0; i < 15; i++)
        want += ((double)a->data[i] - b->data[i]) * ((double)a->data[i] - b->data[i]) / 15;
    assert_int_equal(l->size, 1);
    assert_float_equal(l->data[0], want, 1e-6 * want);
    assert_null(tg_mse(t, a, TENSOR(t, 0, 1, 5, 3)));
    expect_error(t, TG_ERR_SHAPE, "tg_mse", "a is [3,5], b is [5,3]");
    tg_tape_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broadcast_values),
        cmocka_unit_test(test_broadcast_reduces_gradient),
        cmocka_unit_test(test_broadcast_errors),
        cmocka_unit_test(test_unary_values),
        cmocka_unit_test(test_unary_edges),
        cmocka_unit_test(test_kink_gradients),
        cmocka_unit_test(test_unary_errors),
        cmocka_unit_test(test_reduce_dim_values),
        cmocka_unit_test(test_max_ties),
        cmocka_unit_test(test_logsumexp_infinite),
        cmocka_unit_test(test_shape_values),
        cmocka_unit_test(test_reduce_shape_errors),
        cmocka_unit_test(test_rmsnorm_values),
        cmocka_unit_test(test_rmsnorm_errors),
        cmocka_unit_test(test_rmsnorm_jacobian),
        cmocka_unit_test(test_mse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
