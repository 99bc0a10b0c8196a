/* The tape itself: the op table, arena reuse across steps, gradients of
 * activations, and backward's accumulate-only contract. */
#include "test_util.h"
#include "tapegrad_internal.h"

#include <math.h>
#include <string.h>

static void test_op_table_complete(void **s)
{
    (void)s;
    for (int i = 0; i < TG_OP_COUNT; i++) {
        assert_non_null(tg_op_table[i].name);
        assert_non_null(tg_op_table[i].forward);
        assert_non_null(tg_op_table[i].backward);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(tg_op_table[i].name, tg_op_table[j].name);
    }
}

typedef struct model {
    tg_tensor *w, *g, *b;
} model;

static tg_tensor *step(tg_tape *t, model *m, float shift)
{
    tg_tensor *x = tg_tape_tensor(t, 2, (int[]){8, 16});
    for (size_t i = 0; x && i < x->size; i++)
        x->data[i] = sinf((float)i + shift);
    tg_tensor *h = tg_matmul(t, x, m->w, false, true);
    tg_tensor *z = tg_residual(t, h, tg_layernorm(t, h, m->g, m->b, 1e-5f));
    return tg_mean(t, tg_mul(t, z, z));
}

/* After the first step, the same ops land in the same memory: no growth, and
 * the addresses of two steps before, which is what "no malloc in the steady
 * state" means. Consecutive steps are one alignment unit apart, so that a
 * tensor kept across a reset is not mistaken for its successor (see
 * test_stale_tensor_rejected). */
static void test_arena_reused_after_first_step(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 1);
    model m = {tu_param(&r, TU_SHAPE(16, 16), 0.3f), tg_param_new(1, (int[]){16}, "g"),
               tg_param_new(1, (int[]){16}, "b")};
    tg_fill(m.g, 1.0f);
    tg_tape *t = tg_tape_new(4096); /* small, so the first step must grow it */
    float *data[5] = {0};
    size_t bytes = 0;
    for (int it = 0; it < 5; it++) {
        tg_tape_reset(t);
        tg_tensor *loss = step(t, &m, (float)it);
        assert_int_equal(tg_backward(t, loss), TG_OK);
        data[it] = loss->data;
        if (it == 0) {
            bytes = tg_tape_arena_bytes(t);
            assert_true(bytes > 4096);
        } else {
            assert_int_equal(tg_tape_arena_bytes(t), bytes);
            assert_ptr_not_equal(data[it], data[it - 1]);
        }
        if (it >= 2)
            assert_ptr_equal(data[it], data[it - 2]);
    }
    tg_tape_free(t);
    tg_param_free(m.w);
    tg_param_free(m.g);
    tg_param_free(m.b);
}

/* Backward only accumulates: running it twice doubles parameter gradients,
 * zeroing between runs gives identical results, and intermediate gradients
 * stay readable until the tape is reset. */
static void test_backward_accumulates_and_repeats(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 2);
    model m = {tu_param(&r, TU_SHAPE(16, 16), 0.3f), tg_param_new(1, (int[]){16}, "g"),
               tg_param_new(1, (int[]){16}, "b")};
    tg_fill(m.g, 1.0f);
    tg_tape *t = tg_tape_new(0);
    tg_tensor *loss = step(t, &m, 0.0f);
    tg_zero_grad(&m.w, 1);
    assert_int_equal(tg_backward(t, loss), TG_OK);
    float once[256];
    memcpy(once, m.w->grad, sizeof once);
    assert_true(tu_max_abs_diff(once, (float[256]){0}, 256) > 0.0);
    assert_int_equal(tg_backward(t, loss), TG_OK);
    for (int i = 0; i < 256; i++)
        assert_float_equal(m.w->grad[i], 2.0f * once[i], 1e-6f * (1.0f + fabsf(once[i])));
    tg_zero_grad(&m.w, 1);
    assert_int_equal(tg_backward(t, loss), TG_OK);
    assert_memory_equal(m.w->grad, once, sizeof once);
    tg_tape_free(t);
    tg_param_free(m.w);
    tg_param_free(m.g);
    tg_param_free(m.b);
}

/* Intermediate tensors keep their gradients after backward: for
 * loss = mean(z*z), dL/dz = 2z/n exactly. */
static void test_intermediate_gradient(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *p = tg_param_new(2, (int[]){2, 3}, "p");
    for (int i = 0; i < 6; i++)
        p->data[i] = (float)i - 2.5f;
    tg_tensor *z = tg_name(tg_scale(t, p, 3.0f), "z");
    tg_tensor *loss = tg_mean(t, tg_mul(t, z, z));
    assert_int_equal(tg_backward(t, loss), TG_OK);
    assert_string_equal(z->name, "z");
    for (int i = 0; i < 6; i++) {
        assert_float_equal(z->grad[i], 2.0f * z->data[i] / 6.0f, 1e-6f);
        assert_float_equal(p->grad[i], 3.0f * z->grad[i], 1e-6f);
    }
    tg_tape_free(t);
    tg_param_free(p);
}

/* An input made on the tape is zeroed, takes no gradient, and ops on inputs
 * alone record outputs that take none either. */
static void test_tape_inputs_have_no_grad(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *x = tg_tape_tensor(t, 3, (int[]){2, 3, 4});
    assert_non_null(x);
    assert_int_equal(x->size, 24);
    for (int i = 0; i < 24; i++)
        assert_float_equal(x->data[i], 0.0f, 0.0f);
    tg_tensor *y = tg_scale(t, x, 2.0f);
    assert_false(y->requires_grad);
    assert_int_equal(tg_backward(t, tg_sum(t, y)), TG_OK);
    assert_null(x->grad);
    tg_tape_free(t);
}

static void expect_error(tg_tape *t, const char *message)
{
    assert_int_equal(tg_tape_status(t), TG_ERR_ARG);
    if (!strstr(tg_tape_error(t), message))
        fail_msg("expected \"%s\" in \"%s\"", message, tg_tape_error(t));
}

/* A tensor of one tape given to an op on another fails that op, naming it;
 * parameters belong to no tape and go anywhere. */
static void test_tensor_from_other_tape(void **s)
{
    (void)s;
    tg_tape *t1 = tg_tape_new(0), *t2 = tg_tape_new(0);
    tg_tensor *w = tg_param_new(2, (int[]){3, 3}, "w");
    tg_tensor *x = tg_tape_tensor(t1, 2, (int[]){3, 3});
    assert_null(tg_add(t2, w, x));
    expect_error(t2, "tg_add: input 1 is not on this tape");
    tg_tape_reset(t2);
    tg_tensor *y = tg_mul(t1, x, w); /* on its own tape: fine */
    assert_non_null(y);
    assert_null(tg_backward(t2, tg_sum(t2, y)) == TG_OK ? (void *)1 : NULL);
    expect_error(t2, "tg_sum: input 0 is not on this tape");
    tg_tape_reset(t2);
    /* Optional inputs too: a LayerNorm's beta, a Linear's bias. */
    tg_tensor *g = tg_param_new(1, (int[]){3}, "g"), *b = tg_tape_tensor(t1, 1, (int[]){3});
    assert_null(tg_layernorm(t2, w, g, b, 1e-5f));
    expect_error(t2, "tg_layernorm: input 2 is not on this tape");
    tg_tape_reset(t2);
    assert_null(tg_linear(t2, w, w, b));
    expect_error(t2, "tg_linear: input 2 is not on this tape");
    tg_tape_reset(t2);
    assert_int_equal(tg_backward(t2, tg_sum(t1, y)), TG_ERR_ARG);
    expect_error(t2, "tg_backward: input 0 is not on this tape");
    tg_tape_free(t1);
    tg_tape_free(t2);
    tg_param_free(w);
    tg_param_free(g);
}

/* A tensor kept across tg_tape_reset is refused by the next op, whether or
 * not the new step has already made a tensor where it lay. Its gradient
 * would otherwise be lost without a word. */
static void test_stale_tensor_rejected(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *w = tg_param_new(2, (int[]){4, 4}, "w");
    for (int k = 0; k < 3; k++) { /* both parities of the generation */
        tg_tensor *x = tg_tape_tensor(t, 2, (int[]){4, 4});
        tg_tape_reset(t);
        assert_null(tg_matmul(t, x, w, false, false));
        expect_error(t, "tg_matmul: input 0 was made before the tape's last tg_tape_reset");
        tg_tape_reset(t);
        x = tg_tape_tensor(t, 2, (int[]){4, 4});
        assert_non_null(tg_matmul(t, x, w, false, false)); /* the current one is fine */
        assert_int_equal(tg_tape_status(t), TG_OK);
        tg_tape_reset(t);
        /* The new step first makes tensors of x's shape, as a loop would. */
        tg_tensor *fresh = tg_tape_tensor(t, 2, (int[]){4, 4});
        tg_tensor *fresh2 = tg_tape_tensor(t, 2, (int[]){4, 4});
        assert_ptr_not_equal(fresh, x);
        assert_ptr_not_equal(fresh2, x);
        assert_null(tg_matmul(t, x, w, false, false));
        assert_int_equal(tg_tape_status(t), TG_ERR_ARG);
        assert_non_null(strstr(tg_tape_error(t), "tg_matmul: input 0"));
        tg_tape_reset(t);
    }
    tg_tape_free(t);
    tg_param_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_op_table_complete),
        cmocka_unit_test(test_arena_reused_after_first_step),
        cmocka_unit_test(test_backward_accumulates_and_repeats),
        cmocka_unit_test(test_intermediate_gradient),
        cmocka_unit_test(test_tape_inputs_have_no_grad),
        cmocka_unit_test(test_tensor_from_other_tape),
        cmocka_unit_test(test_stale_tensor_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
