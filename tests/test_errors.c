/* Every misuse fails the tape with a message naming the op and the values,
 * and nothing after it runs. */
#include "test_util.h"

#include <math.h>
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
