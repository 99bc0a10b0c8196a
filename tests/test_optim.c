/* Optimizers, gradient clipping and the learning-rate schedule. AdamW and SGD
 * are checked against PyTorch runs (tests/fixtures/make_optim_fixtures.py). */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keep in step with make_optim_fixtures.py. */
#define STEPS 5
#define ADAMW_LR 1e-2f
#define BETA1 0.9f
#define BETA2 0.95f
#define EPS 1e-8f
#define ADAMW_WD 0.1f
#define SGD_LR 0.05f
#define MOMENTUM 0.9f
#define SGD_WD 0.1f

/* The fixture's two parameters, a matrix w [3,4] and a vector b [4], and
 * their gradients for each step. */
typedef struct fixture {
    tg_tensor *p[2];
    float *grads[2];
} fixture;

static const char *const FIX_NAMES[2] = {"w", "b"};

static float *load(const char *what, const char *name, size_t want)
{
    char file[128];
    snprintf(file, sizeof file, "optim_%s%s.txt", what, name);
    size_t n;
    float *v = tu_fixture(file, &n);
    if (n != want)
        fail_msg("%s holds %zu values, expected %zu", file, n, want);
    return v;
}

static fixture fixture_load(void)
{
    fixture f;
    f.p[0] = tg_param_new(2, (const int[]){3, 4}, "w");
    f.p[1] = tg_param_new(1, (const int[]){4}, "b");
    for (int i = 0; i < 2; i++) {
        assert_non_null(f.p[i]);
        float *init = load(FIX_NAMES[i], "_init", f.p[i]->size);
        memcpy(f.p[i]->data, init, f.p[i]->size * sizeof(float));
        free(init);
        f.grads[i] = load(FIX_NAMES[i], "_grads", STEPS * f.p[i]->size);
    }
    return f;
}

static void fixture_set_grads(fixture *f, int step)
{
    for (int i = 0; i < 2; i++)
        memcpy(f->p[i]->grad, f->grads[i] + (size_t)step * f->p[i]->size,
               f->p[i]->size * sizeof(float));
}

static void fixture_free(fixture *f)
{
    for (int i = 0; i < 2; i++) {
        tg_param_free(f->p[i]);
        free(f->grads[i]);
    }
}

/* Fails unless |got - want| <= rel * max(|want|, 1e-3) everywhere; returns
 * the largest |got - want| / max(|want|, 1e-3) for the log. */
static double expect_close(const char *what, const float *got, const float *want, size_t n, double rel)
{
    double worst = 0.0;
    for (size_t j = 0; j < n; j++) {
        double scale = fmax(fabs((double)want[j]), 1e-3);
        double d = fabs((double)got[j] - (double)want[j]) / scale;
        if (!(d <= rel))
            fail_msg("%s[%zu]: %.9g, PyTorch %.9g (relative %.3g > %.3g)", what, j, got[j], want[j], d, rel);
        worst = fmax(worst, d);
    }
    return worst;
}

/* Compares p (w or b) and, when given, the named optimizer state with the
 * fixture; returns the worst relative deviation. */
static double expect_fixture(const char *opt, int i, const float *got, const char *suffix, double rel)
{
    char what[64], name[32];
    snprintf(name, sizeof name, "%s_%s", opt, FIX_NAMES[i]);
    snprintf(what, sizeof what, "%s%s", name, suffix);
    size_t n = i == 0 ? 12 : 4;
    float *want = load(name, suffix, n);
    double worst = expect_close(what, got, want, n, rel);
    free(want);
    return worst;
}

/* PyTorch's kernels fuse some multiply-adds (vectorised add_ with alpha is
 * an FMA) where the C code rounds twice, so the two differ by an ulp or so
 * per operation; over 5 steps that stays within a few float32 ulps (~1e-7
 * relative). 1e-6 leaves room for that and still catches any formula error
 * (a wrong bias correction or decay order is off by 1e-4 or more). Values
 * below 1e-3 are compared on an absolute 1e-9 scale instead. */
#define TORCH_REL 1e-6

static void test_adamw_matches_pytorch(void **state)
{
    (void)state;
    fixture f = fixture_load();
    tg_adamw *o = tg_adamw_new(f.p, 2, BETA1, BETA2, EPS, ADAMW_WD);
    assert_non_null(o);
    for (int k = 0; k < STEPS; k++) {
        fixture_set_grads(&f, k);
        tg_adamw_step(o, ADAMW_LR);
    }
    double worst = 0.0;
    for (int i = 0; i < 2; i++) {
        worst = fmax(worst, expect_fixture("adamw", i, f.p[i]->data, "", TORCH_REL));
        worst = fmax(worst, expect_fixture("adamw", i, tg_adamw_m(o, i), "_m", TORCH_REL));
        worst = fmax(worst, expect_fixture("adamw", i, tg_adamw_v(o, i), "_v", TORCH_REL));
    }
    print_message("AdamW vs PyTorch: worst relative deviation %.3g\n", worst);
    tg_adamw_free(o);
    fixture_free(&f);
}

static void test_sgd_matches_pytorch(void **state)
{
    (void)state;
    fixture f = fixture_load();
    tg_sgd *o = tg_sgd_new(f.p, 2, MOMENTUM, SGD_WD);
    assert_non_null(o);
    for (int k = 0; k < STEPS; k++) {
        fixture_set_grads(&f, k);
        tg_sgd_step(o, SGD_LR);
    }
    double worst = 0.0;
    for (int i = 0; i < 2; i++)
        worst = fmax(worst, expect_fixture("sgd", i, f.p[i]->data, "", TORCH_REL));
    print_message("SGD vs PyTorch: worst relative deviation %.3g\n", worst);
    tg_sgd_free(o);
    fixture_free(&f);
}

/* With a zero gradient m and v stay 0 and the update is 0 / (0 + eps), so
 * one step is the decay alone: w * (1 - lr wd) for a matrix, nothing for a
 * vector. */
static void test_adamw_decays_matrices_only(void **state)
{
    (void)state;
    tg_rng r;
    tg_rng_seed(&r, 3);
    tg_tensor *p[2] = {tu_param(&r, TU_SHAPE(2, 3), 1.0f), tu_param(&r, TU_SHAPE(3), 1.0f)};
    float w0[6], b0[3];
    memcpy(w0, p[0]->data, sizeof w0);
    memcpy(b0, p[1]->data, sizeof b0);
    tg_adamw *o = tg_adamw_new(p, 2, BETA1, BETA2, EPS, 0.5f);
    tg_adamw_step(o, 0.1f);
    float decay = (float)(1.0 - (double)0.1f * (double)0.5f);
    for (int j = 0; j < 6; j++)
        assert_true(p[0]->data[j] == w0[j] * decay);
    assert_memory_equal(p[1]->data, b0, sizeof b0);
    tg_adamw_free(o);
    tg_param_free(p[0]);
    tg_param_free(p[1]);
}

/* A parameter without a gradient is skipped whole, decay included, as
 * PyTorch skips p.grad is None. */
static void test_adamw_skips_missing_grad(void **state)
{
    (void)state;
    tg_rng r;
    tg_rng_seed(&r, 4);
    tg_tensor *p = tu_param(&r, TU_SHAPE(4, 4), 1.0f);
    float w0[16];
    memcpy(w0, p->data, sizeof w0);
    float *grad = p->grad;
    p->grad = NULL;
    tg_adamw *o = tg_adamw_new(&p, 1, BETA1, BETA2, EPS, ADAMW_WD);
    tg_adamw_step(o, ADAMW_LR);
    assert_memory_equal(p->data, w0, sizeof w0);
    assert_int_equal(tg_adamw_steps(o), 1);
    p->grad = grad;
    tg_adamw_free(o);
    tg_param_free(p);
}

/* Fills every gradient from a generator seeded by the step, so two runs see
 * the same gradients. */
static void synthetic_grads(tg_tensor *const *p, int n, int step)
{
    tg_rng r;
    tg_rng_seed(&r, 100 + (uint64_t)step);
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < p[i]->size; j++)
            p[i]->grad[j] = tg_rng_normal(&r) * (step % 2 ? 0.1f : 1.0f);
}

static void run_steps(tg_adamw *o, tg_tensor *const *p, int n, int from, int to)
{
    for (int k = from; k < to; k++) {
        synthetic_grads(p, n, k);
        tg_adamw_step(o, tg_lr_schedule(k, 2, 6, ADAMW_LR, ADAMW_LR / 10));
    }
}

static void test_adamw_state(void **state)
{
    (void)state;
    tg_rng r;
    tg_rng_seed(&r, 5);
    tg_tensor *p = tu_param(&r, TU_SHAPE(5), 1.0f);
    tg_adamw *o = tg_adamw_new(&p, 1, BETA1, BETA2, EPS, ADAMW_WD);
    assert_int_equal(tg_adamw_steps(o), 0);
    for (size_t j = 0; j < p->size; j++)
        assert_true(tg_adamw_m(o, 0)[j] == 0.0f && tg_adamw_v(o, 0)[j] == 0.0f);
    synthetic_grads(&p, 1, 0);
    tg_adamw_step(o, ADAMW_LR);
    assert_int_equal(tg_adamw_steps(o), 1);
    /* From zero moments, one step leaves m = (1-b1) g and v = (1-b2) g g. */
    float c1 = (float)(1.0 - (double)BETA1), c2 = (float)(1.0 - (double)BETA2);
    for (size_t j = 0; j < p->size; j++) {
        assert_true(tg_adamw_m(o, 0)[j] == c1 * p->grad[j]);
        assert_true(tg_adamw_v(o, 0)[j] == c2 * p->grad[j] * p->grad[j]);
    }
    tg_adamw_step(o, ADAMW_LR);
    assert_int_equal(tg_adamw_steps(o), 2);
    tg_adamw_set_steps(o, 7);
    assert_int_equal(tg_adamw_steps(o), 7);
    tg_adamw_set_steps(o, -1);
    assert_int_equal(tg_adamw_steps(o), 7);
    assert_null(tg_adamw_m(o, 1));
    assert_null(tg_adamw_v(o, -1));
    assert_null(tg_adamw_m(NULL, 0));
    assert_int_equal(tg_adamw_steps(NULL), 0);
    tg_adamw_free(o);
    tg_param_free(p);
}

static void two_params(tg_tensor *p[2])
{
    tg_rng r;
    tg_rng_seed(&r, 6);
    p[0] = tu_param(&r, TU_SHAPE(7, 9), 0.5f);
    p[1] = tu_param(&r, TU_SHAPE(9), 0.5f);
}

/* Stop after 3 of 6 steps, copy m, v and the step count into a new
 * optimizer, go on: the parameters must match an uninterrupted run bit for
 * bit. Without the step count they must not (the bias corrections differ),
 * which shows the counter is what carries them. */
static void resume(tg_tensor *p[2], bool keep_steps)
{
    tg_adamw *a = tg_adamw_new(p, 2, BETA1, BETA2, EPS, ADAMW_WD);
    run_steps(a, p, 2, 0, 3);
    tg_adamw *b = tg_adamw_new(p, 2, BETA1, BETA2, EPS, ADAMW_WD);
    for (int i = 0; i < 2; i++) {
        memcpy(tg_adamw_m(b, i), tg_adamw_m(a, i), p[i]->size * sizeof(float));
        memcpy(tg_adamw_v(b, i), tg_adamw_v(a, i), p[i]->size * sizeof(float));
    }
    if (keep_steps)
        tg_adamw_set_steps(b, tg_adamw_steps(a));
    tg_adamw_free(a);
    run_steps(b, p, 2, 3, 6);
    tg_adamw_free(b);
}

static void test_adamw_resume_is_bit_identical(void **state)
{
    (void)state;
    tg_tensor *ref[2], *res[2], *bad[2];
    two_params(ref);
    two_params(res);
    two_params(bad);
    tg_adamw *o = tg_adamw_new(ref, 2, BETA1, BETA2, EPS, ADAMW_WD);
    run_steps(o, ref, 2, 0, 6);
    assert_int_equal(tg_adamw_steps(o), 6);
    tg_adamw_free(o);
    resume(res, true);
    resume(bad, false);
    for (int i = 0; i < 2; i++) {
        assert_memory_equal(res[i]->data, ref[i]->data, ref[i]->size * sizeof(float));
        assert_true(memcmp(bad[i]->data, ref[i]->data, ref[i]->size * sizeof(float)) != 0);
        tg_param_free(ref[i]);
        tg_param_free(res[i]);
        tg_param_free(bad[i]);
    }
}

/* A tensor big enough for the threaded loop updates each element exactly as
 * a small one holding the same elements does. */
static void test_adamw_large_matches_small(void **state)
{
    (void)state;
    tg_rng r;
    tg_rng_seed(&r, 7);
    tg_tensor *big = tu_param(&r, TU_SHAPE(300, 256), 1.0f);
    tg_tensor *small = tg_param_new(2, (const int[]){3, 256}, "small");
    assert_non_null(small);
    memcpy(small->data, big->data, small->size * sizeof(float));
    tg_adamw *ob = tg_adamw_new(&big, 1, BETA1, BETA2, EPS, ADAMW_WD);
    tg_adamw *os = tg_adamw_new(&small, 1, BETA1, BETA2, EPS, ADAMW_WD);
    for (int k = 0; k < 3; k++) {
        synthetic_grads(&big, 1, k);
        memcpy(small->grad, big->grad, small->size * sizeof(float));
        tg_adamw_step(ob, ADAMW_LR);
        tg_adamw_step(os, ADAMW_LR);
    }
    assert_memory_equal(small->data, big->data, small->size * sizeof(float));
    tg_adamw_free(ob);
    tg_adamw_free(os);
    tg_param_free(big);
    tg_param_free(small);
}

static void test_adamw_bad_arguments(void **state)
{
    (void)state;
    tg_rng r;
    tg_rng_seed(&r, 8);
    tg_tensor *p = tu_param(&r, TU_SHAPE(2, 2), 1.0f);
    tg_tensor *with_null[2] = {p, NULL};
    assert_null(tg_adamw_new(NULL, 1, BETA1, BETA2, EPS, ADAMW_WD));
    assert_null(tg_adamw_new(&p, 0, BETA1, BETA2, EPS, ADAMW_WD));
    assert_null(tg_adamw_new(&p, -1, BETA1, BETA2, EPS, ADAMW_WD));
    assert_null(tg_adamw_new(with_null, 2, BETA1, BETA2, EPS, ADAMW_WD));
    const float bad_beta[] = {-0.1f, 1.0f, 1.5f, NAN};
    for (size_t i = 0; i < sizeof bad_beta / sizeof *bad_beta; i++) {
        assert_null(tg_adamw_new(&p, 1, bad_beta[i], BETA2, EPS, ADAMW_WD));
        assert_null(tg_adamw_new(&p, 1, BETA1, bad_beta[i], EPS, ADAMW_WD));
    }
    const float bad_eps[] = {0.0f, -1e-8f, INFINITY, NAN};
    for (size_t i = 0; i < sizeof bad_eps / sizeof *bad_eps; i++)
        assert_null(tg_adamw_new(&p, 1, BETA1, BETA2, bad_eps[i], ADAMW_WD));
    const float bad_wd[] = {-0.1f, INFINITY, NAN};
    for (size_t i = 0; i < sizeof bad_wd / sizeof *bad_wd; i++)
        assert_null(tg_adamw_new(&p, 1, BETA1, BETA2, EPS, bad_wd[i]));
    /* The edges of the ranges are fine: beta 0, no decay. */
    tg_adamw *o = tg_adamw_new(&p, 1, 0.0f, 0.0f, EPS, 0.0f);
    assert_non_null(o);
    tg_adamw_free(o);
    tg_adamw_free(NULL);
    tg_adamw_step(NULL, ADAMW_LR);
    tg_param_free(p);
}

static tg_tensor *vector_with_grad(const float *g, int n)
{
    tg_tensor *p = tg_param_new(1, (const int[]){n}, "g");
    assert_non_null(p);
    memcpy(p->grad, g, (size_t)n * sizeof(float));
    return p;
}

static void test_clip_grad_norm(void **state)
{
    (void)state;
    tg_tensor *p = vector_with_grad((const float[]){3.0f, 4.0f}, 2);
    assert_true(tg_clip_grad_norm(&p, 1, 0.0f) == 5.0f);
    assert_true(p->grad[0] == 3.0f && p->grad[1] == 4.0f);
    assert_true(tg_clip_grad_norm(&p, 1, 10.0f) == 5.0f);
    assert_true(p->grad[0] == 3.0f && p->grad[1] == 4.0f);
    assert_true(tg_clip_grad_norm(&p, 1, 1.0f) == 5.0f);
    float coef = (float)(1.0 / (5.0 + 1e-6));
    assert_true(p->grad[0] == 3.0f * coef && p->grad[1] == 4.0f * coef);
    assert_float_equal(tg_clip_grad_norm(&p, 1, 0.0f), 1.0f, 1e-6);
    tg_param_free(p);
}

/* The norm is global over parameters (3 in one, 4 in the other), and a
 * parameter without a gradient is skipped. */
static void test_clip_grad_norm_global(void **state)
{
    (void)state;
    tg_tensor *p[3] = {vector_with_grad((const float[]){3.0f}, 1),
                       vector_with_grad((const float[]){1.0f}, 1),
                       vector_with_grad((const float[]){0.0f, 4.0f}, 2)};
    float *grad = p[1]->grad;
    p[1]->grad = NULL;
    assert_true(tg_clip_grad_norm(p, 3, 2.5f) == 5.0f);
    float coef = (float)(2.5 / (5.0 + 1e-6));
    assert_true(p[0]->grad[0] == 3.0f * coef && p[2]->grad[1] == 4.0f * coef);
    assert_true(tg_clip_grad_norm(NULL, 0, 1.0f) == 0.0f);
    p[1]->grad = grad;
    for (int i = 0; i < 3; i++)
        tg_param_free(p[i]);
}

/* Many elements: the norm agrees with a plain double sum to float precision
 * and is the same on every call. */
static void test_clip_grad_norm_large(void **state)
{
    (void)state;
    tg_rng r;
    tg_rng_seed(&r, 9);
    tg_tensor *p = tu_param(&r, TU_SHAPE(1001), 1.0f);
    tg_fill_normal(p, &r, 0.0f, 1.0f);
    memcpy(p->grad, p->data, p->size * sizeof(float));
    double ss = 0.0;
    for (size_t j = 0; j < p->size; j++)
        ss += (double)p->grad[j] * p->grad[j];
    float norm = tg_clip_grad_norm(&p, 1, 0.0f);
    assert_true(norm == (float)sqrt(ss));
    assert_true(tg_clip_grad_norm(&p, 1, 0.0f) == norm);
    tg_param_free(p);
}

/* nanoGPT's get_lr, transcribed from train.py on its own. */
static double nanogpt_get_lr(long it, long warmup_iters, long lr_decay_iters, double learning_rate,
                             double min_lr)
{
    if (it < warmup_iters)
        return learning_rate * (it + 1) / (warmup_iters + 1);
    if (it > lr_decay_iters)
        return min_lr;
    double decay_ratio = (double)(it - warmup_iters) / (double)(lr_decay_iters - warmup_iters);
    double coeff = 0.5 * (1.0 + cos(3.14159265358979323846 * decay_ratio));
    return min_lr + coeff * (learning_rate - min_lr);
}

static void test_lr_schedule(void **state)
{
    (void)state;
    const float lr = 6e-4f, min_lr = 6e-5f;
    const double tol = 1e-7 * lr;
    /* Warm-up: (step + 1) / (warmup + 1) of lr. */
    assert_float_equal(tg_lr_schedule(0, 10, 110, lr, min_lr), lr / 11.0, tol);
    assert_float_equal(tg_lr_schedule(4, 10, 110, lr, min_lr), lr * 5.0 / 11.0, tol);
    assert_float_equal(tg_lr_schedule(9, 10, 110, lr, min_lr), lr * 10.0 / 11.0, tol);
    /* End of warm-up: the cosine starts at lr. */
    assert_float_equal(tg_lr_schedule(10, 10, 110, lr, min_lr), lr, tol);
    /* Halfway through the decay, cos(pi/2) = 0. */
    assert_float_equal(tg_lr_schedule(60, 10, 110, lr, min_lr), (lr + min_lr) / 2.0, tol);
    /* A quarter of the way: (1 + cos(pi/4)) / 2 of the span. */
    assert_float_equal(tg_lr_schedule(35, 10, 110, lr, min_lr),
                       min_lr + (lr - min_lr) * (1.0 + sqrt(0.5)) / 2.0, tol);
    assert_float_equal(tg_lr_schedule(110, 10, 110, lr, min_lr), min_lr, tol);
    assert_true(tg_lr_schedule(111, 10, 110, lr, min_lr) == min_lr);
    assert_true(tg_lr_schedule(1000000, 10, 110, lr, min_lr) == min_lr);
    /* Every step against the transcription, and never rising after warm-up. */
    for (long s = 0; s < 130; s++) {
        float got = tg_lr_schedule(s, 10, 110, lr, min_lr);
        assert_float_equal(got, nanogpt_get_lr(s, 10, 110, lr, min_lr), tol);
        if (s > 10)
            assert_true(got <= tg_lr_schedule(s - 1, 10, 110, lr, min_lr));
    }
}

/* No decay phase (total <= warmup): warm-up, then min_lr. No warm-up: the
 * cosine from step 0. */
static void test_lr_schedule_edges(void **state)
{
    (void)state;
    const float lr = 1.0f, min_lr = 0.1f;
    assert_float_equal(tg_lr_schedule(9, 10, 10, lr, min_lr), 10.0 / 11.0, 1e-7);
    assert_true(tg_lr_schedule(10, 10, 10, lr, min_lr) == min_lr);
    assert_true(tg_lr_schedule(10, 10, 5, lr, min_lr) == min_lr);
    assert_true(tg_lr_schedule(0, 0, 100, lr, min_lr) == lr);
    assert_float_equal(tg_lr_schedule(50, 0, 100, lr, min_lr), 0.55, 1e-7);
    assert_true(tg_lr_schedule(-5, 10, 100, lr, min_lr) == tg_lr_schedule(0, 10, 100, lr, min_lr));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw_matches_pytorch),
        cmocka_unit_test(test_sgd_matches_pytorch),
        cmocka_unit_test(test_adamw_decays_matrices_only),
        cmocka_unit_test(test_adamw_skips_missing_grad),
        cmocka_unit_test(test_adamw_state),
        cmocka_unit_test(test_adamw_resume_is_bit_identical),
        cmocka_unit_test(test_adamw_large_matches_small),
        cmocka_unit_test(test_adamw_bad_arguments),
        cmocka_unit_test(test_clip_grad_norm),
        cmocka_unit_test(test_clip_grad_norm_global),
        cmocka_unit_test(test_clip_grad_norm_large),
        cmocka_unit_test(test_lr_schedule),
        cmocka_unit_test(test_lr_schedule_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
