/* Every core op's gradient against finite differences, over awkward shapes:
 * row lengths 1, 3, 7, 33 and 769, a single row and many rows. The loss is
 * sum(op(...) * w) for a fixed random w, so dL/dy = w exercises every output
 * element (a plain sum would hide errors that cancel). Tolerance: 2e-2
 * relative with the four-point stencil; a wrong formula gives O(1). */
#include "test_util.h"

#include <stdio.h>

#define TOL 2e-2

typedef struct ctx {
    tg_tensor *a, *b, *w;
    int kind;
    bool ta, tb;
} ctx;

enum { ADD, ADD_ROW, MUL, SCALE, MATMUL, RESIDUAL, RESIDUAL_SCALED, SUM, MEAN };

static tg_tensor *build(tg_tape *t, void *p)
{
    ctx *c = p;
    tg_tensor *y = NULL;
    switch (c->kind) {
    case ADD:
    case ADD_ROW: y = tg_add(t, c->a, c->b); break;
    case MUL: y = tg_mul(t, c->a, c->b); break;
    case SCALE: y = tg_scale(t, c->a, -1.7f); break;
    case MATMUL: y = tg_matmul(t, c->a, c->b, c->ta, c->tb); break;
    case RESIDUAL: y = tg_residual(t, c->a, c->b); break;
    case RESIDUAL_SCALED: y = tg_residual_scaled(t, c->a, c->b, 2.5f); break;
    case SUM: return tg_sum(t, tg_mul(t, c->a, c->a));
    case MEAN: return tg_mean(t, tg_mul(t, c->a, c->w));
    }
    return tg_sum(t, tg_mul(t, y, c->w));
}

static const int row_lengths[] = {1, 3, 7, 33, 769};
static const int row_counts[] = {1, 5, 64};

static void check_elementwise(int kind, const char *name)
{
    tg_rng r;
    tg_rng_seed(&r, 42);
    for (size_t i = 0; i < sizeof row_lengths / sizeof *row_lengths; i++) {
        for (size_t k = 0; k < sizeof row_counts / sizeof *row_counts; k++) {
            int rows = row_counts[k], cols = row_lengths[i];
            ctx c = {.kind = kind};
            c.a = tu_param(&r, TU_SHAPE(rows, cols), 1.0f);
            c.b = kind == ADD_ROW ? tu_param(&r, TU_SHAPE(cols), 1.0f)
                                  : tu_param(&r, TU_SHAPE(rows, cols), 1.0f);
            c.w = tu_param(&r, TU_SHAPE(rows, cols), 1.0f);
            c.w->requires_grad = false;
            char what[96];
            snprintf(what, sizeof what, "%s [%d,%d]", name, rows, cols);
            tu_gradcheck(what, build, &c, (tg_tensor *[]){c.a, c.b}, kind == SUM || kind == MEAN || kind == SCALE ? 1 : 2, TOL);
            tg_param_free(c.a);
            tg_param_free(c.b);
            tg_param_free(c.w);
        }
    }
}

static void test_add(void **s) { (void)s; check_elementwise(ADD, "add"); }
static void test_add_bias_row(void **s) { (void)s; check_elementwise(ADD_ROW, "add bias row"); }
static void test_mul(void **s) { (void)s; check_elementwise(MUL, "mul"); }
static void test_scale(void **s) { (void)s; check_elementwise(SCALE, "scale"); }
static void test_residual(void **s) { (void)s; check_elementwise(RESIDUAL, "residual"); }
static void test_residual_scaled(void **s) { (void)s; check_elementwise(RESIDUAL_SCALED, "residual alpha"); }
static void test_sum(void **s) { (void)s; check_elementwise(SUM, "sum"); }
static void test_mean(void **s) { (void)s; check_elementwise(MEAN, "mean"); }

/* A [T,C] table added to each entry of a [B,T,C] batch (position embeddings). */
static void test_add_broadcast_table(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 7);
    ctx c = {.kind = ADD};
    c.a = tu_param(&r, TU_SHAPE(3, 4, 5), 1.0f);
    c.b = tu_param(&r, TU_SHAPE(4, 5), 1.0f);
    c.w = tu_param(&r, TU_SHAPE(3, 4, 5), 1.0f);
    tu_gradcheck("add [3,4,5] + [4,5]", build, &c, (tg_tensor *[]){c.a, c.b}, 2, TOL);
    tg_param_free(c.a);
    tg_param_free(c.b);
    tg_param_free(c.w);
}

static void check_matmul(int m, int k, int n, bool ta, bool tb)
{
    tg_rng r;
    tg_rng_seed(&r, (uint64_t)(m * 1000 + k * 10 + n));
    ctx c = {.kind = MATMUL, .ta = ta, .tb = tb};
    c.a = ta ? tu_param(&r, TU_SHAPE(k, m), 1.0f) : tu_param(&r, TU_SHAPE(m, k), 1.0f);
    c.b = tb ? tu_param(&r, TU_SHAPE(n, k), 1.0f) : tu_param(&r, TU_SHAPE(k, n), 1.0f);
    c.w = tu_param(&r, TU_SHAPE(m, n), 1.0f);
    char what[96];
    snprintf(what, sizeof what, "matmul m=%d k=%d n=%d ta=%d tb=%d", m, k, n, ta, tb);
    tu_gradcheck(what, build, &c, (tg_tensor *[]){c.a, c.b}, 2, TOL);
    tg_param_free(c.a);
    tg_param_free(c.b);
    tg_param_free(c.w);
}

static void test_matmul(void **s)
{
    (void)s;
    static const int dims[][3] = {{1, 1, 1}, {1, 7, 3}, {5, 3, 7}, {4, 33, 2}, {2, 769, 3}, {64, 7, 5}, {3, 5, 769}};
    for (size_t i = 0; i < sizeof dims / sizeof *dims; i++)
        for (int f = 0; f < 4; f++)
            check_matmul(dims[i][0], dims[i][1], dims[i][2], f & 1, f & 2);
}

/* [B,T,K] @ [N,K]^T: a linear layer on a batch of sequences. */
static void test_matmul_batched(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 3);
    ctx c = {.kind = MATMUL, .tb = true};
    c.a = tu_param(&r, TU_SHAPE(2, 3, 7), 1.0f);
    c.b = tu_param(&r, TU_SHAPE(5, 7), 1.0f);
    c.w = tu_param(&r, TU_SHAPE(2, 3, 5), 1.0f);
    tu_gradcheck("matmul [2,3,7] @ [5,7]^T", build, &c, (tg_tensor *[]){c.a, c.b}, 2, TOL);
    tg_param_free(c.a);
    tg_param_free(c.b);
    tg_param_free(c.w);
}

/* The same tensor on both sides: x * x and x @ x^T must receive both shares. */
static tg_tensor *self_product(tg_tape *t, void *p)
{
    ctx *c = p;
    return tg_sum(t, tg_mul(t, tg_add(t, tg_mul(t, c->a, c->a), tg_scale(t, c->a, 0.3f)), c->w));
}

static tg_tensor *gram(tg_tape *t, void *p)
{
    ctx *c = p;
    return tg_sum(t, tg_mul(t, tg_matmul(t, c->a, c->a, false, true), c->w));
}

static void test_tensor_used_twice(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 11);
    ctx c = {0};
    c.a = tu_param(&r, TU_SHAPE(4, 6), 1.0f);
    c.w = tu_param(&r, TU_SHAPE(4, 6), 1.0f);
    tu_gradcheck("x*x + 0.3x", self_product, &c, &c.a, 1, TOL);
    tg_param_free(c.w);
    c.w = tu_param(&r, TU_SHAPE(4, 4), 1.0f);
    tu_gradcheck("x @ x^T", gram, &c, &c.a, 1, TOL);
    tg_param_free(c.a);
    tg_param_free(c.w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_add_bias_row),
        cmocka_unit_test(test_add_broadcast_table),
        cmocka_unit_test(test_mul),
        cmocka_unit_test(test_scale),
        cmocka_unit_test(test_residual),
        cmocka_unit_test(test_residual_scaled),
        cmocka_unit_test(test_sum),
        cmocka_unit_test(test_mean),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_matmul_batched),
        cmocka_unit_test(test_tensor_used_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
