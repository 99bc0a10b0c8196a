/* Every misuse fails the tape with a message naming the op and the values,
 * and nothing after it runs. */
#include "test_util.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static tg_tensor *param2(int r, int c) { return tg_param_new(2, (int[]){r, c}, "p"); }

static void expect_failure(tg_tape *t, tg_status status, const char *message)
{
    assert_int_equal(tg_tape_status(t), status);
    if (!strstr(tg_tape_error(t), message))
        fail_msg("expected \"%s\" in \"%s\"", message, tg_tape_error(t));
}

static void test_matmul_inner_dims(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *a = param2(4, 3), *b = param2(5, 2);
    assert_null(tg_matmul(t, a, b, false, false));
    expect_failure(t, TG_ERR_SHAPE, "tg_matmul: inner dimensions differ: a is [4,3], b is [5,2]");
    tg_tape_reset(t);
    assert_null(tg_matmul(t, a, b, true, false));
    expect_failure(t, TG_ERR_SHAPE, "tg_matmul: inner dimensions differ: a^T is [4,3], b is [5,2]");
    tg_tape_reset(t);
    tg_tensor *v = tg_param_new(1, (int[]){3}, "v");
    assert_null(tg_matmul(t, a, v, false, false));
    expect_failure(t, TG_ERR_SHAPE, "b must be 2-D");
    tg_tape_free(t);
    tg_param_free(a);
    tg_param_free(b);
    tg_param_free(v);
}

static void test_elementwise_shapes(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *a = param2(4, 3), *b = param2(3, 4);
    assert_null(tg_add(t, a, b));
    expect_failure(t, TG_ERR_SHAPE, "tg_add: shapes differ: a is [4,3], b is [3,4]");
    tg_tape_reset(t);
    assert_null(tg_mul(t, a, b));
    expect_failure(t, TG_ERR_SHAPE, "tg_mul: shapes differ: a is [4,3], b is [3,4]");
    tg_tape_reset(t);
    assert_null(tg_residual(t, a, b));
    expect_failure(t, TG_ERR_SHAPE, "tg_residual: shapes differ: x is [4,3], f is [3,4]");
    tg_tape_reset(t);
    assert_null(tg_residual_scaled(t, a, a, NAN));
    expect_failure(t, TG_ERR_ARG, "tg_residual: alpha is nan");
    tg_tape_reset(t);
    assert_null(tg_scale(t, a, INFINITY));
    expect_failure(t, TG_ERR_ARG, "tg_scale: factor is inf");
    tg_tape_free(t);
    tg_param_free(a);
    tg_param_free(b);
}

static void test_layernorm_args(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *x = param2(2, 8), *g = tg_param_new(1, (int[]){7}, "g");
    assert_null(tg_layernorm(t, x, g, NULL, 1e-5f));
    expect_failure(t, TG_ERR_SHAPE, "tg_layernorm: gamma must be [8] for x of [2,8], got [7]");
    tg_tape_reset(t);
    assert_null(tg_layernorm(t, x, NULL, NULL, -1.0f));
    expect_failure(t, TG_ERR_ARG, "tg_layernorm: eps must be finite and >= 0, got -1");
    tg_tape_free(t);
    tg_param_free(x);
    tg_param_free(g);
}

/* The first failure sticks: later ops return NULL without touching the
 * message, backward reports the status, and a reset clears it. */
static void test_failure_is_sticky(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *a = param2(4, 3), *b = param2(5, 2);
    tg_tensor *y = tg_matmul(t, a, b, false, false);
    tg_tensor *z = tg_add(t, y, a);
    tg_tensor *loss = tg_sum(t, tg_scale(t, z, 2.0f));
    assert_null(y);
    assert_null(z);
    assert_null(loss);
    assert_int_equal(tg_backward(t, loss), TG_ERR_SHAPE);
    expect_failure(t, TG_ERR_SHAPE, "tg_matmul: inner dimensions differ");
    assert_int_equal(tg_tape_length(t), 0);
    tg_tape_reset(t);
    assert_int_equal(tg_tape_status(t), TG_OK);
    assert_string_equal(tg_tape_error(t), "");
    assert_non_null(tg_add(t, a, a));
    tg_tape_free(t);
    tg_param_free(a);
    tg_param_free(b);
}

static void test_null_inputs(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *a = param2(2, 2);
    assert_null(tg_add(t, a, NULL));
    expect_failure(t, TG_ERR_ARG, "tg_add: input 1 is NULL");
    tg_tape_reset(t);
    assert_null(tg_layernorm(t, NULL, NULL, NULL, 1e-5f));
    expect_failure(t, TG_ERR_ARG, "tg_layernorm: input 0 is NULL");
    assert_null(tg_add(NULL, a, a));
    assert_int_equal(tg_tape_status(NULL), TG_ERR_ARG);
    assert_int_equal(tg_backward(NULL, a), TG_ERR_ARG);
    tg_tape_free(t);
    tg_param_free(a);
}

static void test_backward_misuse(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *a = param2(2, 3);
    tg_tensor *y = tg_scale(t, a, 1.0f);
    assert_int_equal(tg_backward(t, y), TG_ERR_SHAPE);
    expect_failure(t, TG_ERR_SHAPE, "tg_backward: loss must have one element, got [2,3]");
    tg_tape_reset(t);
    tg_tensor *one = tg_param_new(1, (int[]){1}, "one");
    assert_int_equal(tg_backward(t, one), TG_ERR_ARG);
    expect_failure(t, TG_ERR_ARG, "tg_backward: loss was not recorded on this tape");
    tg_tape_reset(t);
    a->data[0] = NAN;
    assert_int_equal(tg_backward(t, tg_sum(t, a)), TG_ERR_ARG);
    expect_failure(t, TG_ERR_ARG, "tg_backward: loss is nan");
    tg_tape_free(t);
    tg_param_free(a);
    tg_param_free(one);
}

static void test_bad_shapes_and_allocation(void **s)
{
    (void)s;
    assert_null(tg_param_new(0, (int[]){1}, "p"));
    assert_null(tg_param_new(5, (int[]){1, 1, 1, 1, 1}, "p"));
    assert_null(tg_param_new(2, (int[]){3, -1}, "p"));
    tg_tape *t = tg_tape_new(0);
    assert_null(tg_tape_tensor(t, 2, (int[]){3, 0}));
    expect_failure(t, TG_ERR_SHAPE, "tg_tape_tensor: every dimension must be positive");
    tg_tape_reset(t);
    assert_null(tg_tape_tensor(t, 5, (int[]){1, 1, 1, 1, 1}));
    expect_failure(t, TG_ERR_SHAPE, "tg_tape_tensor: 5 dimensions (1 to 4 allowed)");
    tg_tape_reset(t);
    /* 2^39 floats (2 TiB): the allocation fails and the tape says so. */
    assert_null(tg_tape_tensor(t, 2, (int[]){1 << 20, 1 << 19}));
    expect_failure(t, TG_ERR_NOMEM, "out of memory");
    tg_tape_free(t);
}

static void test_optimizer_args(void **s)
{
    (void)s;
    tg_tensor *a = param2(2, 2);
    assert_null(tg_sgd_new(NULL, 1, 0.9f, 0.0f));
    assert_null(tg_sgd_new(&a, 1, 1.5f, 0.0f));
    assert_null(tg_sgd_new(&a, 1, 0.9f, -1.0f));
    tg_sgd *o = tg_sgd_new(&a, 1, 0.9f, 0.0f);
    assert_non_null(o);
    tg_sgd_free(o);
    tg_param_free(a);
}

static void expect_last_error(const char *message)
{
    if (!strstr(tg_last_error(), message))
        fail_msg("expected \"%s\" in tg_last_error() \"%s\"", message, tg_last_error());
}

static void test_status_names(void **s)
{
    (void)s;
    assert_string_equal(tg_status_str(TG_OK), "ok");
    assert_string_equal(tg_status_str(TG_ERR_NOMEM), "out of memory");
    assert_string_equal(tg_status_str(TG_ERR_FORMAT), "bad file format");
    assert_string_equal(tg_status_str((tg_status)99), "unknown status");
}

/* Constructors that fail say why in tg_last_error(). */
static void test_constructor_messages(void **s)
{
    (void)s;
    assert_null(tg_param_new(2, (int[]){3, 0}, "w"));
    expect_last_error("tg_param_new(\"w\"): a dimension below 1");
    assert_null(tg_param_new(2, NULL, "w"));
    expect_last_error("tg_param_new(\"w\"): needs 1 to 4 dimensions");
    assert_null(tg_tape_new(SIZE_MAX));
    expect_last_error("tg_tape_new: arena_hint");
    tg_tensor *a = param2(2, 2);
    assert_null(tg_adamw_new(&a, 1, 0.9f, 1.0f, 1e-8f, 0.0f));
    expect_last_error("tg_adamw_new: beta2 must be in [0, 1)");
    assert_null(tg_adamw_new(&a, 1, 0.9f, 0.95f, 1e-8f, NAN));
    expect_last_error("tg_adamw_new: weight_decay");
    assert_null(tg_sgd_new(&a, 1, 0.9f, INFINITY));
    expect_last_error("tg_sgd_new:");
    assert_null(tg_sgd_new((tg_tensor *[]){a, NULL}, 2, 0.9f, 0.0f));
    expect_last_error("tg_sgd_new:");
    /* tg_gpt_new without a message buffer still leaves its message. */
    assert_null(tg_gpt_new(&(tg_gpt_config){.vocab = 0, .ctx = 8, .layers = 1, .heads = 1, .dim = 8}, 1, NULL, 0));
    expect_last_error("tg_gpt_new: vocab must be in [1, TG_GPT_MAX_VOCAB]");
    tg_param_free(a);
}

/* Sizes that would wrap an int or a size_t are refused with a message. */
static void test_size_overflow(void **s)
{
    (void)s;
    assert_int_equal(tg_shape_size(4, (int[]){INT_MAX, INT_MAX, INT_MAX, INT_MAX}), 0);
    assert_int_equal(tg_shape_size(2, (int[]){1 << 20, 1 << 20}), (size_t)1 << 40);
    assert_int_equal(tg_shape_size(2, (int[]){(1 << 20) + 1, 1 << 20}), 0);
    char err[256] = "";
    /* 4 * dim or layers * 12 would overflow an int: refused by the bounds;
     * a model whose every dimension is within them but whose parameters
     * together pass 2^40 is refused as too large, not out of memory. */
    const tg_gpt_config big[] = {
        {.vocab = 8, .ctx = 8, .layers = 1, .heads = 1, .dim = INT_MAX / 2},
        {.vocab = 8, .ctx = 8, .layers = INT_MAX, .heads = 1, .dim = 8},
        {.vocab = TG_GPT_MAX_VOCAB, .ctx = 8, .layers = TG_GPT_MAX_LAYERS, .heads = 1, .dim = TG_GPT_MAX_DIM}};
    const char *why[] = {"dim must be in", "layers must be in", "too large"};
    for (int i = 0; i < 3; i++) {
        assert_null(tg_gpt_new(&big[i], 1, err, sizeof err));
        if (!strstr(err, why[i]))
            fail_msg("config %d: \"%s\"", i, err);
    }
    /* warmup + 1 and step + 1 at LONG_MAX: a rate in (0, lr], not a wrap. */
    float lr = tg_lr_schedule(LONG_MAX - 1, LONG_MAX, LONG_MAX, 1e-3f, 1e-4f);
    assert_true(lr > 0.0f && lr <= 1e-3f);
    assert_true(tg_lr_schedule(LONG_MAX, LONG_MAX, LONG_MAX, 1e-3f, 1e-4f) == 1e-4f);
    assert_true(tg_lr_schedule(LONG_MAX, 0, LONG_MAX, 1e-3f, 1e-4f) == 1e-4f);
}

/* A NaN, infinite or negative learning rate is refused and changes nothing;
 * 0 is a step that moves no weight. */
static void test_bad_learning_rate(void **s)
{
    (void)s;
    tg_tensor *a = param2(2, 2);
    tg_fill(a, 1.0f);
    for (size_t i = 0; i < a->size; i++)
        a->grad[i] = 0.5f;
    tg_adamw *o = tg_adamw_new(&a, 1, 0.9f, 0.95f, 1e-8f, 0.1f);
    tg_sgd *g = tg_sgd_new(&a, 1, 0.9f, 0.1f);
    const float bad[] = {NAN, INFINITY, -1e-3f, -INFINITY};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tg_adamw_step(o, bad[i]), TG_ERR_ARG);
        expect_last_error("tg_adamw_step: learning rate");
        assert_int_equal(tg_sgd_step(g, bad[i]), TG_ERR_ARG);
        expect_last_error("tg_sgd_step: learning rate");
    }
    assert_int_equal(tg_adamw_steps(o), 0);
    for (size_t i = 0; i < a->size; i++)
        assert_true(a->data[i] == 1.0f && tg_adamw_m(o, 0)[i] == 0.0f);
    assert_int_equal(tg_adamw_step(o, 0.0f), TG_OK);
    assert_int_equal(tg_adamw_steps(o), 1);
    assert_true(a->data[0] == 1.0f && tg_adamw_m(o, 0)[0] != 0.0f);
    assert_int_equal(tg_adamw_step(NULL, 1e-3f), TG_ERR_ARG);
    assert_int_equal(tg_sgd_step(NULL, 1e-3f), TG_ERR_ARG);
    tg_adamw_free(o);
    tg_sgd_free(g);
    tg_param_free(a);
}

static tg_tensor *sum_of(tg_tape *t, void *ctx) { return tg_sum(t, ctx); }

/* NULL where an object is expected: a status, a NULL or -1, never a crash. */
static void test_null_everywhere(void **s)
{
    (void)s;
    tg_tape_reset(NULL);
    tg_tape_free(NULL);
    tg_tape_profile(NULL, true);
    assert_int_equal(tg_tape_length(NULL), -1);
    assert_int_equal(tg_tape_arena_bytes(NULL), 0);
    assert_int_equal(tg_tape_status(NULL), TG_ERR_ARG);
    assert_true(tg_tape_profile_report(NULL, NULL, 100) > 0);
    assert_null(tg_tape_tensor(NULL, 1, (int[]){3}));
    assert_null(tg_tape_find(NULL, "x"));
    assert_int_equal(tg_backward(NULL, NULL), TG_ERR_ARG);
    assert_int_equal(tg_grad_report(NULL, NULL, 0), -1);
    tg_grad_report_print(NULL, NULL, 3);
    tg_zero_grad(NULL, 3);
    tg_zero_grad((tg_tensor *[]){NULL, NULL}, 2);
    tg_fill(NULL, 1.0f);
    tg_fill_normal(NULL, NULL, 0.0f, 1.0f);
    tg_rng_seed(NULL, 1);
    assert_int_equal(tg_rng_u32(NULL), 0);
    assert_true(isfinite(tg_rng_normal(NULL)));
    assert_null(tg_shape_str(NULL, NULL, 8));
    assert_int_equal(tg_rows(NULL), 0);
    assert_int_equal(tg_cols(NULL), 0);
    assert_null(tg_name(NULL, "x"));
    tg_param_free(NULL);
    tg_gpt_free(NULL);
    assert_null(tg_gpt_param(NULL, "x"));
    tg_adamw_free(NULL);
    tg_sgd_free(NULL);
    assert_null(tg_adamw_m(NULL, 0));
    tg_adamw_set_steps(NULL, 3);
    assert_int_equal(tg_safetensors_count(NULL), 0);
    assert_null(tg_safetensors_at(NULL, 0));
    assert_null(tg_safetensors_find(NULL, "x"));
    assert_null(tg_safetensors_meta(NULL, "x"));
    tg_safetensors_close(NULL);
    float before = tg_clip_grad_norm(NULL, 4, 1.0f);
    assert_true(before == 0.0f);
    /* gradcheck: a NULL result, a NULL entry in wrt, a frozen entry. */
    tg_tensor *p = param2(2, 2);
    assert_int_equal(tg_gradcheck(sum_of, p, &p, 1, NULL, NULL), TG_ERR_ARG);
    expect_last_error("tg_gradcheck: res is NULL");
    tg_gradcheck_result res;
    assert_int_equal(tg_gradcheck(sum_of, p, (tg_tensor *[]){NULL}, 1, NULL, &res), TG_ERR_ARG);
    assert_non_null(strstr(res.error, "every entry of wrt"));
    p->requires_grad = false;
    assert_int_equal(tg_gradcheck(sum_of, p, &p, 1, NULL, &res), TG_ERR_ARG);
    assert_non_null(strstr(res.error, "receives no gradient"));
    tg_param_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_inner_dims),
        cmocka_unit_test(test_elementwise_shapes),
        cmocka_unit_test(test_layernorm_args),
        cmocka_unit_test(test_failure_is_sticky),
        cmocka_unit_test(test_null_inputs),
        cmocka_unit_test(test_backward_misuse),
        cmocka_unit_test(test_bad_shapes_and_allocation),
        cmocka_unit_test(test_optimizer_args),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_constructor_messages),
        cmocka_unit_test(test_size_overflow),
        cmocka_unit_test(test_bad_learning_rate),
        cmocka_unit_test(test_null_everywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
