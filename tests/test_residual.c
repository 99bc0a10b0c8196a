/* The residual z = alpha * x + f(x): the gradient reaching x is the skip
 * path's alpha * dz plus whatever flows back through f. */
#include "test_util.h"

#include <string.h>

typedef struct ctx {
    tg_tensor *x, *w, *g, *b, *u;
    float alpha;
    bool post_ln;
} ctx;

/* Hand-computed: x = [1,2,3], f(x) = x W^T, loss = sum(z * u), u = [1,2,3].
 * Skip path: alpha * u.  Branch: W^T u = [-2, 5, 5]. */
static void check_hand_case(float alpha, const float expect[3])
{
    tg_tape *t = tg_tape_new(0);
    tg_tensor *x = tg_param_new(2, (int[]){1, 3}, "x");
    tg_tensor *w = tg_param_new(2, (int[]){3, 3}, "W");
    tg_tensor *u = tg_tape_tensor(t, 2, (int[]){1, 3});
    memcpy(x->data, (float[]){1, 2, 3}, sizeof(float[3]));
    memcpy(w->data, (float[]){1, 0, 2, 0, 1, 0, -1, 1, 1}, sizeof(float[9]));
    memcpy(u->data, (float[]){1, 2, 3}, sizeof(float[3]));
    tg_tensor *f = tg_matmul(t, x, w, false, true);
    tg_tensor *z = tg_residual_scaled(t, x, f, alpha);
    assert_int_equal(tg_backward(t, tg_sum(t, tg_mul(t, z, u))), TG_OK);
    for (int i = 0; i < 3; i++) {
        assert_float_equal(z->grad[i], u->data[i], 0.0f);
        assert_float_equal(f->grad[i], u->data[i], 0.0f); /* the branch gets dz */
        assert_float_equal(x->grad[i], expect[i], 1e-6f);  /* skip + branch */
    }
    tg_tape_free(t);
    tg_param_free(x);
    tg_param_free(w);
}

static void test_hand_computed(void **s)
{
    (void)s;
    check_hand_case(1.0f, (float[]){-1, 7, 8});
    check_hand_case(0.5f, (float[]){-1.5f, 6, 6.5f});
}

/* Pre-LN: x + LN(x) W^T.  Post-LN: LN(x + x W^T). */
static tg_tensor *block(tg_tape *t, void *p)
{
    ctx *c = p;
    tg_tensor *z;
    if (c->post_ln)
        z = tg_layernorm(t, tg_residual_scaled(t, c->x, tg_matmul(t, c->x, c->w, false, true), c->alpha),
                         c->g, c->b, 1e-5f);
    else
        z = tg_residual_scaled(t, c->x,
                               tg_matmul(t, tg_layernorm(t, c->x, c->g, c->b, 1e-5f), c->w, false, true),
                               c->alpha);
    return tg_sum(t, tg_mul(t, z, c->u));
}

static void test_finite_differences(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 5);
    for (int post = 0; post < 2; post++) {
        for (int a = 0; a < 2; a++) {
            ctx c = {.alpha = a ? 1.0f : 2.0f, .post_ln = post};
            c.x = tu_param(&r, TU_SHAPE(6, 7), 1.0f);
            c.w = tu_param(&r, TU_SHAPE(7, 7), 0.5f);
            c.g = tu_param(&r, TU_SHAPE(7), 0.3f);
            c.b = tu_param(&r, TU_SHAPE(7), 0.3f);
            c.u = tu_param(&r, TU_SHAPE(6, 7), 1.0f);
            for (int i = 0; i < 7; i++)
                c.g->data[i] += 1.0f;
            tu_gradcheck(post ? "post-LN residual" : "pre-LN residual", block, &c,
                         (tg_tensor *[]){c.x, c.w, c.g, c.b}, 4, 2e-2);
            tg_param_free(c.x);
            tg_param_free(c.w);
            tg_param_free(c.g);
            tg_param_free(c.b);
            tg_param_free(c.u);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_computed),
        cmocka_unit_test(test_finite_differences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
