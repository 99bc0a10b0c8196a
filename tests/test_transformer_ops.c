/* The Transformer ops against finite differences: embedding (with repeated
 * ids), GELU, softmax, causal attention, cross-entropy (including a row of
 * logits all 1e4) and reshape. Loss = sum(op(...) * w) for a fixed random w,
 * or the cross-entropy itself. Tolerance 2e-2 relative (four-point stencil);
 * a wrong formula gives O(1). */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 2e-2

typedef struct ctx {
    tg_tensor *x, *w;
    int kind, heads;
    const int *ids;
    int ids_shape[3], ids_ndim;
} ctx;

enum { EMBED, GELU, SOFTMAX, ATTENTION, XENT, RESHAPE, ROPE, SWIGLU };

static tg_tensor *build(tg_tape *t, void *p)
{
    ctx *c = p;
    tg_tensor *y = NULL;
    switch (c->kind) {
    case EMBED: y = tg_embedding(t, c->x, c->ids, c->ids_ndim, c->ids_shape); break;
    case GELU: y = tg_gelu(t, c->x); break;
    case SOFTMAX: y = tg_softmax(t, c->x); break;
    case ATTENTION: y = tg_attention(t, c->x, c->heads); break;
    case XENT: return tg_cross_entropy(t, c->x, c->ids);
    case RESHAPE: y = tg_reshape(t, c->x, 2, (int[]){(int)c->x->size / 6, 6}); break;
    case ROPE: y = tg_rope(t, c->x, c->heads, 10000.0f); break;
    case SWIGLU: y = tg_swiglu(t, c->x); break;
    }
    return tg_sum(t, tg_mul(t, y, c->w));
}

static tg_tensor *weights(tg_rng *r, const tg_tensor *like)
{
    tg_tensor *w = tg_param_new(like->ndim, like->shape, "w");
    assert_non_null(w);
    tg_fill_normal(w, r, 0.0f, 1.0f);
    w->requires_grad = false;
    return w;
}

static void test_embedding(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 1);
    static const int ids[] = {3, 1, 3, 0, 3, 4, 1, 1};
    ctx c = {.kind = EMBED, .ids = ids, .ids_shape = {2, 4}, .ids_ndim = 2};
    c.x = tu_param(&r, TU_SHAPE(5, 7), 1.0f);
    tg_tape *t = tg_tape_new(0);
    tg_tensor *y = tg_embedding(t, c.x, ids, 2, c.ids_shape);
    assert_int_equal(y->ndim, 3);
    assert_int_equal(y->shape[2], 7);
    c.w = weights(&r, y);
    tg_tape_free(t);
    tu_gradcheck("embedding", build, &c, &c.x, 1, TOL);
    /* Row 2 is never picked: its gradient is exactly zero; row 3 (picked
     * three times) gets the sum of three slices of w. */
    for (int j = 0; j < 7; j++) {
        assert_float_equal(c.x->grad[2 * 7 + j], 0.0f, 0.0f);
        float expect = c.w->data[0 * 7 + j] + c.w->data[2 * 7 + j] + c.w->data[4 * 7 + j];
        assert_float_equal(c.x->grad[3 * 7 + j], expect, 1e-6f);
    }
    tg_param_free(c.x);
    tg_param_free(c.w);
}

static void check_unary(int kind, const char *name, int rows, int cols, float std)
{
    tg_rng r;
    tg_rng_seed(&r, (uint64_t)(rows * 31 + cols));
    ctx c = {.kind = kind};
    c.x = tu_param(&r, TU_SHAPE(rows, cols), std);
    c.w = weights(&r, c.x);
    char what[64];
    snprintf(what, sizeof what, "%s [%d,%d]", name, rows, cols);
    tu_gradcheck(what, build, &c, &c.x, 1, TOL);
    tg_param_free(c.x);
    tg_param_free(c.w);
}

static void test_gelu(void **s)
{
    (void)s;
    check_unary(GELU, "gelu", 4, 33, 2.0f);
    check_unary(GELU, "gelu", 1, 769, 1.0f);
}

/* Known values of the tanh approximation (computed with its formula in
 * double): GELU(0) = 0, GELU(1) = 0.841192, GELU(-3) = -0.00363739. */
static void test_gelu_values(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *x = tg_tape_tensor(t, 1, (int[]){3});
    x->data[0] = 0.0f;
    x->data[1] = 1.0f;
    x->data[2] = -3.0f;
    tg_tensor *y = tg_gelu(t, x);
    assert_float_equal(y->data[0], 0.0f, 0.0f);
    assert_float_equal(y->data[1], 0.8411920f, 2e-6f);
    assert_float_equal(y->data[2], -0.0036373920f, 1e-7f);
    tg_tape_free(t);
}

static void test_softmax(void **s)
{
    (void)s;
    check_unary(SOFTMAX, "softmax", 1, 1, 1.0f);
    check_unary(SOFTMAX, "softmax", 5, 7, 2.0f);
    check_unary(SOFTMAX, "softmax", 3, 769, 1.0f);
}

static void check_attention(int b, int tt, int c3, int heads)
{
    tg_rng r;
    tg_rng_seed(&r, (uint64_t)(b * 100 + tt * 10 + heads));
    ctx cx = {.kind = ATTENTION, .heads = heads};
    cx.x = tu_param(&r, TU_SHAPE(b, tt, c3), 1.0f);
    cx.w = tu_param(&r, TU_SHAPE(b, tt, c3 / 3), 1.0f);
    char what[64];
    snprintf(what, sizeof what, "attention [%d,%d,%d] heads %d", b, tt, c3, heads);
    tu_gradcheck(what, build, &cx, &cx.x, 1, TOL);
    tg_param_free(cx.x);
    tg_param_free(cx.w);
}

static void test_attention(void **s)
{
    (void)s;
    check_attention(1, 1, 3, 1);
    check_attention(2, 5, 12, 2);
    check_attention(1, 7, 24, 4);
    check_attention(3, 4, 18, 3);
}

/* Attention for one (batch, head) in double, straight from the definition:
 * y and, for dy = w, the gradient of sum(y * w) with respect to qkv. */
static void naive_attention_pair(const float *qkv, const float *w, int tt, int c, int d, double *y, double *g)
{
    const double scale = 1.0 / sqrt((double)d);
    double p[128], dp[128];
    for (int t = 0; t < tt; t++) {
        const float *q = qkv + (size_t)t * 3 * c, *dy = w + (size_t)t * c;
        double m = -INFINITY, z = 0.0, dot = 0.0;
        for (int s = 0; s <= t; s++) {
            const float *k = qkv + (size_t)s * 3 * c + c;
            p[s] = 0.0;
            for (int j = 0; j < d; j++)
                p[s] += scale * q[j] * k[j];
            m = fmax(m, p[s]);
        }
        for (int s = 0; s <= t; s++)
            z += p[s] = exp(p[s] - m);
        for (int s = 0; s <= t; s++) {
            const float *v = qkv + (size_t)s * 3 * c + 2 * c;
            p[s] /= z;
            dp[s] = 0.0;
            for (int j = 0; j < d; j++) {
                y[(size_t)t * c + j] += p[s] * v[j];
                dp[s] += (double)dy[j] * v[j];
                g[(size_t)s * 3 * c + 2 * c + j] += p[s] * dy[j];
            }
            dot += p[s] * dp[s];
        }
        for (int s = 0; s <= t; s++) {
            const float *k = qkv + (size_t)s * 3 * c + c;
            double ds = scale * p[s] * (dp[s] - dot);
            for (int j = 0; j < d; j++) {
                g[(size_t)t * 3 * c + j] += ds * k[j];
                g[(size_t)s * 3 * c + c + j] += ds * q[j];
            }
        }
    }
}

/* The vectorised kernels (blocks of rows, PAD-wide columns, zero-padded
 * transposes) against naive_attention_pair on every element, at head sizes
 * that are a multiple of 16, not one, and under 16, and lengths that are
 * not multiples of the padding. */
static void check_attention_exact(int b, int tt, int c, int heads)
{
    tg_rng r;
    tg_rng_seed(&r, (uint64_t)(tt * 1000 + c));
    tg_tensor *qkv = tu_param(&r, TU_SHAPE(b, tt, 3 * c), 1.0f);
    tg_tensor *w = tu_param(&r, TU_SHAPE(b, tt, c), 1.0f);
    tg_tape *t = tg_tape_new(0);
    tg_tensor *y = tg_attention(t, qkv, heads);
    assert_int_equal(tg_backward(t, tg_sum(t, tg_mul(t, y, w))), TG_OK);
    int d = c / heads;
    size_t ny = (size_t)b * tt * c, nq = 3 * ny;
    double *ry = calloc(ny, sizeof *ry), *rg = calloc(nq, sizeof *rg);
    assert_true(ry && rg && tt <= 128);
    for (int bi = 0; bi < b; bi++)
        for (int h = 0; h < heads; h++) {
            size_t oy = (size_t)bi * tt * c + (size_t)h * d, oq = 3 * (size_t)bi * tt * c + (size_t)h * d;
            naive_attention_pair(qkv->data + oq, w->data + oy, tt, c, d, ry + oy, rg + oq);
        }
    for (size_t i = 0; i < ny; i++)
        if (fabs(y->data[i] - ry[i]) > 1e-5 * (1.0 + fabs(ry[i])))
            fail_msg("attention [%d,%d,%d] heads %d: y[%zu] = %.7g, reference %.7g", b, tt, 3 * c, heads, i,
                     (double)y->data[i], ry[i]);
    for (size_t i = 0; i < nq; i++)
        if (fabs(qkv->grad[i] - rg[i]) > 1e-4 * (1.0 + fabs(rg[i])))
            fail_msg("attention [%d,%d,%d] heads %d: dqkv[%zu] = %.7g, reference %.7g", b, tt, 3 * c, heads,
                     i, (double)qkv->grad[i], rg[i]);
    free(ry);
    free(rg);
    tg_tape_free(t);
    tg_param_free(qkv);
    tg_param_free(w);
}

static void test_attention_exact(void **s)
{
    (void)s;
    check_attention_exact(2, 37, 64, 2);
    check_attention_exact(1, 70, 60, 3);
    check_attention_exact(2, 17, 48, 1);
    check_attention_exact(3, 16, 32, 4);
    check_attention_exact(1, 1, 32, 1);
}

/* Causality: the first position's output is its own v, whatever follows. */
static void test_attention_is_causal(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 9);
    tg_tape *t = tg_tape_new(0);
    tg_tensor *qkv = tg_tape_tensor(t, 3, (int[]){1, 4, 12});
    for (size_t i = 0; i < qkv->size; i++)
        qkv->data[i] = tg_rng_normal(&r);
    tg_tensor *y = tg_attention(t, qkv, 2);
    for (int j = 0; j < 4; j++)
        assert_float_equal(y->data[j], qkv->data[8 + j], 1e-6f);
    tg_tape_free(t);
}

static void test_cross_entropy(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 4);
    static const int targets[] = {0, 6, -1, 3, 1};
    ctx c = {.kind = XENT, .ids = targets};
    c.x = tu_param(&r, TU_SHAPE(5, 7), 3.0f);
    tu_gradcheck("cross-entropy [5,7]", build, &c, &c.x, 1, TOL);
    /* Row 2 is ignored: no gradient reaches it. */
    for (int j = 0; j < 7; j++)
        assert_float_equal(c.x->grad[2 * 7 + j], 0.0f, 0.0f);
    tg_param_free(c.x);
}

/* Every logit 1e4: loss is exactly log V, the gradient (1/V - onehot) / R,
 * and finite differences with an absolute step agree. */
static void test_cross_entropy_large_logits(void **s)
{
    (void)s;
    static const int targets[] = {2, 0};
    ctx c = {.kind = XENT, .ids = targets};
    c.x = tg_param_new(2, (int[]){2, 5}, "logits");
    tg_fill(c.x, 1e4f);
    tg_tape *t = tg_tape_new(0);
    tg_tensor *loss = tg_cross_entropy(t, c.x, targets);
    assert_int_equal(tg_backward(t, loss), TG_OK);
    assert_float_equal(loss->data[0], logf(5.0f), 1e-6f);
    for (int rr = 0; rr < 2; rr++)
        for (int j = 0; j < 5; j++)
            assert_float_equal(c.x->grad[rr * 5 + j], (0.2f - (j == targets[rr])) / 2.0f, 1e-6f);
    tg_tape_free(t);
    tg_gradcheck_opts o = {.step = 0.05, .absolute_step = true, .four_point = true, .abs_floor = 1e-2};
    tg_gradcheck_result res;
    assert_int_equal(tg_gradcheck(build, &c, &c.x, 1, &o, &res), TG_OK);
    if (res.max_rel_err > TOL)
        fail_msg("cross-entropy at 1e4: relative error %g", res.max_rel_err);
    tg_param_free(c.x);
}

/* The kernels that store into a gradient nothing has written yet
 * (matmul, residual, GELU, attention; see tg_grad_claim), in a graph where
 * each is sometimes the first writer and sometimes not: a feeds two GELUs,
 * h is both inputs of one residual add (stored, then added), and the
 * attention's qkv comes through a reshape. Finite differences check the
 * whole. */
typedef struct claim_ctx {
    tg_tensor *p, *w, *w3;
} claim_ctx;

static tg_tensor *build_claims(tg_tape *t, void *vc)
{
    claim_ctx *c = vc;
    tg_tensor *a = tg_matmul(t, c->p, c->w, false, false);
    tg_tensor *h = tg_gelu(t, a);
    tg_tensor *z = tg_residual(t, h, h);
    tg_tensor *y = tg_residual(t, z, tg_gelu(t, a));
    tg_tensor *qkv = tg_reshape(t, tg_matmul(t, y, c->w3, false, false), 3, (int[]){1, 4, 18});
    tg_tensor *att = tg_attention(t, qkv, 2);
    return tg_mean(t, tg_mul(t, att, tg_residual(t, att, tg_gelu(t, att))));
}

static void test_unwritten_gradients(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 17);
    claim_ctx c = {tu_param(&r, TU_SHAPE(4, 6), 1.0f), tu_param(&r, TU_SHAPE(6, 6), 0.4f),
                   tu_param(&r, TU_SHAPE(6, 18), 0.4f)};
    /* Float rounding of the forward is the noise of a difference quotient:
     * at h = 1e-3 it reached 4% on the smallest gradients (0.012), at 1e-2
     * with four points 0.6%, converging on the analytic value. */
    tg_gradcheck_opts o = {.step = 1e-2, .four_point = true};
    tg_gradcheck_result res;
    assert_int_equal(tg_gradcheck(build_claims, &c, (tg_tensor *[]){c.p, c.w, c.w3}, 3, &o, &res), TG_OK);
    if (res.max_rel_err > TOL)
        fail_msg("store-or-add kernels: relative error %g at tensor %d index %zu (analytic %g, numeric %g)",
                 res.max_rel_err, res.worst_tensor, res.worst_index, res.worst_analytic, res.worst_numeric);
    /* A reset tape hands the same memory to the same ops, still holding the
     * first pass's gradients: a kernel that added where it should have
     * stored (or zeroed) would change the second pass's. */
    tg_tensor *params[] = {c.p, c.w, c.w3};
    float first[18 * 6];
    tg_tape *t = tg_tape_new(0);
    for (int pass = 0; pass < 2; pass++) {
        tg_tape_reset(t);
        tg_zero_grad(params, 3);
        assert_int_equal(tg_backward(t, build_claims(t, &c)), TG_OK);
        for (size_t i = 0; i < c.w3->size; i++)
            if (pass == 0)
                first[i] = c.w3->grad[i];
            else if (first[i] != c.w3->grad[i])
                fail_msg("second pass on a reset tape: dw3[%zu] = %g, first pass %g", i, (double)c.w3->grad[i],
                         (double)first[i]);
    }
    tg_tape_free(t);
    tg_param_free(c.p);
    tg_param_free(c.w);
    tg_param_free(c.w3);
}

static void test_reshape(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 5);
    ctx c = {.kind = RESHAPE};
    c.x = tu_param(&r, TU_SHAPE(2, 3, 4), 1.0f);
    c.w = tu_param(&r, TU_SHAPE(4, 6), 1.0f);
    tu_gradcheck("reshape", build, &c, &c.x, 1, TOL);
    tg_param_free(c.x);
    tg_param_free(c.w);
}

/* RoPE: finite differences at an odd length with two head sizes; then what
 * makes it a position code: position 0 is left alone, every head keeps its
 * norm, and q_m . k_n depends only on m - n. */
static void test_rope(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 11);
    const int shapes[][4] = {{2, 5, 3 * 12, 3}, {1, 7, 3 * 8, 1}};
    for (int i = 0; i < 2; i++) {
        ctx c = {.kind = ROPE, .heads = shapes[i][3]};
        c.x = tu_param(&r, TU_SHAPE(shapes[i][0], shapes[i][1], shapes[i][2]), 1.0f);
        c.w = weights(&r, c.x);
        tu_gradcheck("rope", build, &c, &c.x, 1, TOL);
        tg_param_free(c.x);
        tg_param_free(c.w);
    }
    enum { T = 9, D = 8 };
    tg_tensor *x = tu_param(&r, TU_SHAPE(1, T, 3 * D), 1.0f);
    for (int p = 0; p < T; p++) /* the same q and k at every position */
        for (int j = 0; j < 3 * D; j++)
            x->data[p * 3 * D + j] = x->data[j];
    tg_tape *t = tg_tape_new(0);
    tg_tensor *y = tg_rope(t, x, 1, 10000.0f);
    assert_non_null(y);
    for (int j = 0; j < 3 * D; j++)
        assert_float_equal(y->data[j], x->data[j], 0.0f);
    double dot[T][T];
    for (int m = 0; m < T; m++) {
        const float *q = y->data + m * 3 * D, *v = q + 2 * D;
        double nq = 0, nq0 = 0;
        for (int j = 0; j < D; j++) {
            nq += (double)q[j] * q[j];
            nq0 += (double)x->data[j] * x->data[j];
            assert_float_equal(v[j], x->data[2 * D + j], 0.0f);
        }
        assert_true(fabs(nq - nq0) < 1e-5 * nq0);
        for (int n = 0; n < T; n++) {
            const float *kn = y->data + n * 3 * D + D;
            dot[m][n] = 0;
            for (int j = 0; j < D; j++)
                dot[m][n] += (double)q[j] * kn[j];
        }
    }
    for (int m = 1; m < T; m++)
        for (int n = 1; n < T; n++)
            assert_true(fabs(dot[m][n] - dot[m - 1][n - 1]) < 1e-5);
    tg_tape_free(t);
    tg_param_free(x);
}

/* SwiGLU's gate: finite differences at an odd width, and values against
 * silu(a) * b in double, including saturated gates at +-100. */
static void test_swiglu(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 12);
    ctx c = {.kind = SWIGLU};
    c.x = tu_param(&r, TU_SHAPE(3, 2, 2 * 19), 2.0f);
    tg_tape *t = tg_tape_new(0);
    c.x->data[0] = 100.0f;
    c.x->data[1] = -100.0f;
    tg_tensor *y = tg_swiglu(t, c.x);
    assert_non_null(y);
    assert_int_equal(y->shape[2], 19);
    for (size_t i = 0; i < y->size; i++) {
        size_t row = i / 19, j = i % 19;
        double a = c.x->data[row * 38 + j], b = c.x->data[row * 38 + 19 + j];
        double want = a / (1.0 + exp(-a)) * b;
        assert_true(fabs(y->data[i] - want) <= 1e-6 * (1.0 + fabs(want)));
    }
    c.w = weights(&r, y);
    tg_tape_free(t);
    c.x->data[0] = 0.3f, c.x->data[1] = -0.2f; /* finite differences away from saturation */
    tu_gradcheck("swiglu", build, &c, &c.x, 1, TOL);
    t = tg_tape_new(0);
    assert_null(tg_swiglu(t, tg_tape_tensor(t, 2, (int[]){2, 5})));
    assert_non_null(strstr(tg_tape_error(t), "tg_swiglu: the last dimension must be even"));
    tg_tape_free(t);
    tg_param_free(c.x);
    tg_param_free(c.w);
}

/* RMSNorm: values against a double reference on ordinary rows and on rows
 * near the float range (where a float sum of squares overflows), with the
 * gradient staying finite; the gain gets sum(dy * xhat). */
static void test_rmsnorm_values(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 21);
    enum { R = 3, C = 37 };
    tg_tensor *x = tu_param(&r, TU_SHAPE(R, C), 1.0f), *g = tu_param(&r, TU_SHAPE(C), 0.5f);
    for (int j = 0; j < C; j++)
        x->data[2 * C + j] *= 3e30f; /* row 2: squares overflow float */
    tg_tape *t = tg_tape_new(0);
    tg_tensor *y = tg_rmsnorm(t, x, g, 1e-5f);
    assert_non_null(y);
    for (int i = 0; i < R; i++) {
        double ms = 0;
        for (int j = 0; j < C; j++)
            ms += (double)x->data[i * C + j] * x->data[i * C + j];
        double rstd = 1.0 / sqrt(ms / C + 1e-5);
        for (int j = 0; j < C; j++) {
            double want = x->data[i * C + j] * rstd * g->data[j];
            assert_true(isfinite(y->data[i * C + j]));
            assert_true(fabs(y->data[i * C + j] - want) <= 2e-6 * (1.0 + fabs(want)));
        }
    }
    tg_zero_grad(&x, 1);
    tg_zero_grad(&g, 1);
    assert_int_equal(tg_backward(t, tg_sum(t, y)), TG_OK);
    for (int j = 0; j < R * C; j++)
        assert_true(isfinite(x->grad[j]));
    for (int j = 0; j < C; j++)
        assert_true(isfinite(g->grad[j]));
    assert_null(tg_rmsnorm(t, x, x, 1e-5f));
    assert_non_null(strstr(tg_tape_error(t), "tg_rmsnorm: gain must be [37]"));
    tg_tape_free(t);
    tg_param_free(x);
    tg_param_free(g);
}

/* Dropout: off returns its input; on, the mask is 0 or 1/(1-p), keeps
 * about 1-p of the elements, and the same seed gives the same mask. */
static void test_dropout(void **s)
{
    (void)s;
    tg_rng r, a, b;
    tg_rng_seed(&r, 22);
    tg_tensor *x = tu_param(&r, TU_SHAPE(100, 50), 1.0f);
    tg_tape *t = tg_tape_new(0);
    tg_rng_seed(&a, 5);
    assert_ptr_equal(tg_dropout(t, x, 0.0f, &a), x);
    assert_ptr_equal(tg_dropout(t, x, 0.5f, NULL), x);
    assert_int_equal(tg_tape_length(t), 0);
    tg_rng_seed(&a, 5);
    tg_rng_seed(&b, 5);
    tg_tensor *y1 = tg_dropout(t, x, 0.3f, &a), *y2 = tg_dropout(t, x, 0.3f, &b);
    size_t kept = 0;
    for (size_t i = 0; i < x->size; i++) {
        float ratio = y1->data[i] / x->data[i];
        assert_true(y1->data[i] == 0.0f || fabsf(ratio - 1.0f / 0.7f) < 1e-6f);
        assert_float_equal(y1->data[i], y2->data[i], 0.0f);
        kept += y1->data[i] != 0.0f;
    }
    assert_true(kept > 3300 && kept < 3700); /* 3500 expected, sd 32 */
    assert_null(tg_dropout(t, x, 1.0f, &a));
    assert_non_null(strstr(tg_tape_error(t), "tg_dropout: p 1 is outside [0, 1)"));
    tg_tape_free(t);
    tg_param_free(x);
}

static void test_errors(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *table = tg_param_new(2, (int[]){5, 3}, "wte");
    tg_tensor *qkv = tg_param_new(3, (int[]){1, 2, 12}, "qkv");
    assert_null(tg_embedding(t, table, (int[]){1, 5}, 1, (int[]){2}));
    assert_string_equal(tg_tape_error(t), "tg_embedding: id 5 at position 1 is outside [0,5)");
    tg_tape_reset(t);
    assert_null(tg_attention(t, qkv, 3));
    assert_string_equal(tg_tape_error(t), "tg_attention: 3 heads do not divide C = 4");
    tg_tape_reset(t);
    assert_null(tg_attention(t, table, 1));
    assert_string_equal(tg_tape_error(t), "tg_attention: qkv must be [B,T,3C], got [5,3]");
    tg_tape_reset(t);
    assert_null(tg_cross_entropy(t, table, (int[]){0, 1, 2, 2, -2}));
    assert_string_equal(tg_tape_error(t), "tg_cross_entropy: target -2 at row 4 is outside [0,3)");
    tg_tape_reset(t);
    assert_null(tg_cross_entropy(t, table, (int[]){-1, -1, -1, -1, -1}));
    assert_string_equal(tg_tape_error(t), "tg_cross_entropy: every one of the 5 targets is -1 (ignored)");
    tg_tape_reset(t);
    assert_null(tg_reshape(t, table, 2, (int[]){4, 4}));
    assert_string_equal(tg_tape_error(t), "tg_reshape: [5,3] has 15 elements, the new shape 16");
    tg_tape_free(t);
    tg_param_free(table);
    tg_param_free(qkv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_gelu_values),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_attention_exact),
        cmocka_unit_test(test_attention_is_causal),
        cmocka_unit_test(test_cross_entropy),
        cmocka_unit_test(test_cross_entropy_large_logits),
        cmocka_unit_test(test_unwritten_gradients),
        cmocka_unit_test(test_reshape),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_rmsnorm_values),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
