/* The residual-path study's library features: the gated residual, the
 * DeepNorm and ReZero blocks, finding tensors by name, the gradient report
 * and the LayerNorm Jacobian. These are the exact facts (ReZero at init,
 * eigenvalues, how a residual add splits its gradient), not the statistical
 * trends the example measures. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect_failure(tg_tape *t, tg_status status, const char *message)
{
    assert_int_equal(tg_tape_status(t), status);
    if (!strstr(tg_tape_error(t), message))
        fail_msg("expected \"%s\" in \"%s\"", message, tg_tape_error(t));
}

static void expect_text(const char *got, const char *want)
{
    if (!strstr(got, want))
        fail_msg("expected \"%s\" in \"%s\"", want, got);
}

/* ---- the gated residual ------------------------------------------------ */

typedef struct gate_ctx {
    tg_tensor *x, *f, *a, *w;
} gate_ctx;

/* sum((x + a * f) * w): the branch f is x-independent here; the chain
 * through a branch is covered by the GPT checks below. */
static tg_tensor *gated_loss(tg_tape *t, void *p)
{
    gate_ctx *c = p;
    return tg_sum(t, tg_mul(t, tg_residual_gated(t, c->x, c->f, c->a), c->w));
}

static void test_gated_residual_gradcheck(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 11);
    const float gates[] = {0.0f, 0.7f, -1.3f};
    for (int g = 0; g < 3; g++) {
        gate_ctx c = {tu_param(&r, TU_SHAPE(5, 7), 1.0f), tu_param(&r, TU_SHAPE(5, 7), 1.0f),
                      tg_param_new(1, (int[]){1}, "a"), tu_param(&r, TU_SHAPE(5, 7), 1.0f)};
        c.a->data[0] = gates[g];
        c.w->requires_grad = false;
        tu_gradcheck("gated residual", gated_loss, &c, (tg_tensor *[]){c.x, c.f, c.a}, 3, 2e-2);
        /* the closed form: dx = w, df = a w, da = sum(w f) */
        double da = 0;
        for (size_t i = 0; i < c.x->size; i++) {
            assert_float_equal(c.x->grad[i], c.w->data[i], 0.0f);
            assert_float_equal(c.f->grad[i], gates[g] * c.w->data[i], 0.0f);
            da += (double)c.w->data[i] * c.f->data[i];
        }
        assert_float_equal(c.a->grad[0], (float)da, 1e-5f * (float)fmax(1.0, fabs(da)));
        tg_param_free(c.x);
        tg_param_free(c.f);
        tg_param_free(c.a);
        tg_param_free(c.w);
    }
}

static void test_gated_residual_errors(void **s)
{
    (void)s;
    tg_tape *t = tg_tape_new(0);
    tg_tensor *x = tg_param_new(2, (int[]){4, 3}, "x"), *f = tg_param_new(2, (int[]){3, 4}, "f");
    tg_tensor *a2 = tg_param_new(1, (int[]){2}, "a2"), *a = tg_param_new(1, (int[]){1}, "a");
    assert_null(tg_residual_gated(t, x, x, a2));
    expect_failure(t, TG_ERR_SHAPE, "tg_residual_gated: the gate a must have one element, got [2]");
    tg_tape_reset(t);
    assert_null(tg_residual_gated(t, x, f, a));
    expect_failure(t, TG_ERR_SHAPE, "tg_residual_gated: shapes differ: x is [4,3], f is [3,4]");
    tg_tape_reset(t);
    assert_null(tg_residual_gated(t, x, x, NULL));
    expect_failure(t, TG_ERR_ARG, "tg_residual_gated: input 2 is NULL");
    assert_null(tg_residual_gated(NULL, x, x, a));
    tg_tape_free(t);
    tg_param_free(x);
    tg_param_free(f);
    tg_param_free(a2);
    tg_param_free(a);
}

/* ---- DeepNorm and ReZero GPTs ------------------------------------------ */

static tg_gpt *gpt_new_ok(int layers, tg_norm_place norm, float residual_scale, uint64_t seed)
{
    tg_gpt_config cfg = {.vocab = 7, .ctx = 5, .layers = layers, .heads = 2, .dim = 8, .norm = norm,
                         .residual_scale = residual_scale};
    char err[256] = "";
    tg_gpt *m = tg_gpt_new(&cfg, seed, err, sizeof err);
    if (!m)
        fail_msg("tg_gpt_new failed: %s", err);
    return m;
}

enum { B = 2, T = 5 };
static const int ids[B * T] = {1, 4, 0, 6, 2, 3, 3, 5, 1, 0};
static const int targets[B * T] = {4, 0, 6, 2, -1, 3, 5, 1, 0, 6};

typedef struct gc_ctx {
    const tg_gpt *m;
} gc_ctx;

static tg_tensor *gpt_loss(tg_tape *t, void *p)
{
    return tg_gpt_loss(t, ((gc_ctx *)p)->m, ids, targets, B, T);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Weights redrawn large (as in test_gpt.c, whose comment explains the
 * scales) so no path is numerically dead; ReZero's gates are drawn away from
 * 0 so the branches carry gradient. */
static void test_gpt_variants_gradcheck(void **s)
{
    (void)s;
    const tg_norm_place norms[] = {TG_DEEPNORM, TG_REZERO};
    for (int k = 0; k < 2; k++) {
        tg_gpt *m = gpt_new_ok(2, norms[k], 0, 21 + (uint64_t)k);
        tg_rng r;
        tg_rng_seed(&r, 5 + (uint64_t)k);
        for (int i = 0; i < m->n_params; i++) {
            tg_tensor *p = m->params[i];
            if (strstr(p->name, "ln_") && ends_with(p->name, ".weight"))
                tg_fill_normal(p, &r, 1.0f, 0.2f);
            else if (strstr(p->name, "rezero"))
                tg_fill_normal(p, &r, 0.6f, 0.2f);
            else
                tg_fill_normal(p, &r, 0.0f, i < 2 ? 0.5f : 0.2f);
        }
        gc_ctx c = {m};
        tu_gradcheck(k ? "tiny GPT, ReZero" : "tiny GPT, DeepNorm", gpt_loss, &c, m->params, m->n_params, 1e-2);
        tg_gpt_free(m);
    }
}

/* DeepNorm is Post-LN with alpha = (2N)^(1/4): same names and order, and
 * with the same weights the same logits, bit for bit. */
static void test_deepnorm_is_scaled_post_ln(void **s)
{
    (void)s;
    const int layers = 3;
    tg_gpt *dn = gpt_new_ok(layers, TG_DEEPNORM, 1.0f, 3);
    float alpha = powf(2.0f * layers, 0.25f);
    assert_float_equal(dn->cfg.residual_scale, alpha, 0.0f); /* the override */
    assert_float_equal(tg_deepnorm_alpha(layers), alpha, 0.0f);
    assert_float_equal(tg_deepnorm_beta(layers), powf(8.0f * layers, -0.25f), 0.0f);
    assert_float_equal(tg_deepnorm_alpha(0), 0.0f, 0.0f);
    tg_gpt *post = gpt_new_ok(layers, TG_POST_LN, alpha, 4);
    assert_int_equal(dn->n_params, post->n_params);
    for (int i = 0; i < dn->n_params; i++) {
        assert_string_equal(dn->params[i]->name, post->params[i]->name);
        memcpy(post->params[i]->data, dn->params[i]->data, dn->params[i]->size * sizeof(float));
    }
    tg_tape *t = tg_tape_new(0);
    tg_tensor *a = tg_gpt_logits(t, dn, ids, B, T), *b = tg_gpt_logits(t, post, ids, B, T);
    assert_int_equal(tg_tape_status(t), TG_OK);
    assert_memory_equal(a->data, b->data, a->size * sizeof(float));
    tg_tape_free(t);
    tg_gpt_free(dn);
    tg_gpt_free(post);
}

static double sample_std(const float *x, size_t n)
{
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i], s2 += (double)x[i] * x[i];
    return sqrt(s2 / (double)n - (s / (double)n) * (s / (double)n));
}

static void expect_std(const char *what, const float *x, size_t n, double want)
{
    double got = sample_std(x, n);
    if (fabs(got / want - 1) > 0.04)
        fail_msg("%s: init std %.5f, want %.5f", what, got, want);
}

/* beta = (8N)^(-1/4) scales v, attn.c_proj, mlp.c_fc and mlp.c_proj (std
 * 0.02 beta); q and k keep 0.02. Samples of >= 4096 draws. */
static void test_deepnorm_init(void **s)
{
    (void)s;
    const int layers = 6, d = 64;
    tg_gpt_config cfg = {.vocab = 50, .ctx = 16, .layers = layers, .heads = 4, .dim = d, .norm = TG_DEEPNORM};
    tg_gpt *m = tg_gpt_new(&cfg, 9, NULL, 0);
    assert_non_null(m);
    double beta = pow(8.0 * layers, -0.25);
    for (int l = 0; l < layers; l++) {
        char name[64];
        snprintf(name, sizeof name, "transformer.h.%d.attn.c_attn.weight", l);
        const tg_tensor *qkv = tg_gpt_param(m, name);
        size_t third = qkv->size / 3;
        expect_std("q and k", qkv->data, 2 * third, 0.02);
        expect_std("v", qkv->data + 2 * third, third, 0.02 * beta);
        const char *scaled[] = {"attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"};
        for (int k = 0; k < 3; k++) {
            snprintf(name, sizeof name, "transformer.h.%d.%s", l, scaled[k]);
            const tg_tensor *p = tg_gpt_param(m, name);
            expect_std(name, p->data, p->size, 0.02 * beta);
        }
    }
    tg_gpt_free(m);
}

static void test_rezero_params(void **s)
{
    (void)s;
    tg_gpt *m = gpt_new_ok(2, TG_REZERO, 0, 1);
    static const char *const block[] = {"rezero.attn", "attn.c_attn.weight", "attn.c_attn.bias",
                                        "attn.c_proj.weight", "attn.c_proj.bias", "rezero.mlp",
                                        "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight",
                                        "mlp.c_proj.bias"};
    assert_int_equal(m->n_params, 2 + 10 * 2 + 2);
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 10; k++) {
            char want[64];
            snprintf(want, sizeof want, "transformer.h.%d.%s", l, block[k]);
            assert_string_equal(m->params[2 + 10 * l + k]->name, want);
        }
    const tg_tensor *g = tg_gpt_param(m, "transformer.h.1.rezero.mlp");
    assert_non_null(g);
    assert_int_equal(g->ndim, 1);
    assert_int_equal(g->shape[0], 1);
    assert_true(g->data[0] == 0.0f);
    assert_null(tg_gpt_param(m, "transformer.h.0.ln_1.weight"));
    assert_string_equal(m->params[m->n_params - 2]->name, "transformer.ln_f.weight");
    tg_gpt_free(m);
}

static void test_variant_config_errors(void **s)
{
    (void)s;
    char err[256] = "";
    tg_gpt_config cfg = {.vocab = 7, .ctx = 5, .layers = 2, .heads = 2, .dim = 8, .norm = TG_REZERO,
                         .residual_scale = 2.0f};
    assert_null(tg_gpt_new(&cfg, 1, err, sizeof err));
    expect_text(err, "residual_scale must be 0 or 1 with TG_REZERO");
    cfg.norm = (tg_norm_place)(TG_REZERO + 1);
    cfg.residual_scale = 1;
    assert_null(tg_gpt_new(&cfg, 1, err, sizeof err));
    expect_text(err, "norm must be TG_PRE_LN, TG_POST_LN, TG_DEEPNORM or TG_REZERO");
    cfg.norm = (tg_norm_place)-1;
    assert_null(tg_gpt_new(&cfg, 1, err, sizeof err));
    expect_text(err, "norm must be");
}

static bool is_branch_param(const char *name)
{
    return strstr(name, ".attn.c_") || strstr(name, ".mlp.c_");
}

/* At init (gates 0) every ReZero block is the identity, exactly: the stream
 * leaves each add as it entered, the logits are ln_f(emb) wte^T, every branch
 * parameter's gradient is exactly 0 (df = a dz = 0), and the gates' are not. */
static void test_rezero_at_init(void **s)
{
    (void)s;
    const int layers = 3;
    tg_gpt *m = gpt_new_ok(layers, TG_REZERO, 0, 8);
    tg_tape *t = tg_tape_new(0);
    tg_zero_grad(m->params, m->n_params);
    tg_tensor *loss = tg_gpt_loss(t, m, ids, targets, B, T);
    assert_int_equal(tg_backward(t, loss), TG_OK);
    const tg_tensor *prev = tg_tape_find(t, "emb");
    assert_non_null(prev);
    for (int l = 0; l < layers; l++) {
        char name[64];
        for (int k = 0; k < 2; k++) {
            snprintf(name, sizeof name, "h.%d.%s", l, k ? "resid_mlp" : "resid_attn");
            const tg_tensor *x = tg_tape_find(t, name);
            assert_non_null(x);
            assert_memory_equal(x->data, prev->data, x->size * sizeof(float));
            prev = x;
        }
    }
    for (int i = 0; i < m->n_params; i++) {
        const tg_tensor *p = m->params[i];
        double ss = 0;
        for (size_t j = 0; j < p->size; j++)
            ss += (double)p->grad[j] * p->grad[j];
        if (is_branch_param(p->name) && ss != 0.0)
            fail_msg("%s: gradient norm %g at init, want exactly 0", p->name, sqrt(ss));
        if (strstr(p->name, "rezero") && !(ss > 0.0))
            fail_msg("%s: the gate has no gradient at init", p->name);
    }
    tg_tensor *logits = tg_tape_find(t, "logits");
    tg_tape *u = tg_tape_new(0);
    tg_tensor *emb = tg_add(u, tg_embedding(u, m->params[0], ids, 2, (int[]){B, T}),
                            tg_embedding(u, m->params[1], m->positions, 1, (int[]){T}));
    tg_tensor *ln = tg_layernorm(u, emb, m->params[m->n_params - 2], m->params[m->n_params - 1], 1e-5f);
    tg_tensor *direct = tg_matmul(u, ln, m->params[0], false, true);
    assert_int_equal(tg_tape_status(u), TG_OK);
    assert_memory_equal(direct->data, logits->data, logits->size * sizeof(float));
    tg_tape_free(u);
    tg_tape_free(t);
    tg_gpt_free(m);
}

/* ---- finding tensors by name -------------------------------------------- */

static void test_tape_find_stream_names(void **s)
{
    (void)s;
    const tg_norm_place norms[] = {TG_PRE_LN, TG_POST_LN, TG_DEEPNORM, TG_REZERO};
    for (int k = 0; k < 4; k++) {
        tg_gpt *m = gpt_new_ok(2, norms[k], 0, 2);
        tg_tape *t = tg_tape_new(0);
        tg_zero_grad(m->params, m->n_params);
        assert_int_equal(tg_backward(t, tg_gpt_loss(t, m, ids, targets, B, T)), TG_OK);
        bool post = norms[k] == TG_POST_LN || norms[k] == TG_DEEPNORM;
        const char *always[] = {"emb", "h.0.resid_attn", "h.1.resid_mlp", "ln_f", "logits"};
        for (int i = 0; i < 5; i++) {
            tg_tensor *x = tg_tape_find(t, always[i]);
            if (!x)
                fail_msg("norm %d: \"%s\" not found", k, always[i]);
            assert_non_null(x->grad); /* activation gradients stay after backward */
        }
        assert_true((tg_tape_find(t, "h.1.norm_mlp") != NULL) == post);
        assert_ptr_equal(tg_tape_find(t, "transformer.wte.weight"), m->params[0]);
        assert_null(tg_tape_find(t, "h.2.resid_attn"));
        assert_null(tg_tape_find(t, "no such tensor"));
        assert_null(tg_tape_find(t, NULL));
        assert_null(tg_tape_find(NULL, "emb"));
        tg_tape_free(t);
        tg_gpt_free(m);
    }
}

/* ---- the gradient report ---------------------------------------------------- */

static const tg_grad_stat *row_named(const tg_grad_stat *rows, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].name, name))
            return &rows[i];
    fail_msg("no report row named %s", name);
    return NULL;
}

static double norm_of(const float *g, size_t n)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)g[i] * g[i];
    return sqrt(ss);
}

/* z = alpha x + f with x, f independent parameters: what reaches x is the
 * skip part alone and what reaches f the branch part, so their norms are
 * the report's skip and branch norms. */
static void test_report_split_independent(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 3);
    tg_tensor *x = tu_param(&r, TU_SHAPE(4, 6), 1.0f), *f = tu_param(&r, TU_SHAPE(4, 6), 1.0f);
    tg_tensor *a = tg_param_new(1, (int[]){1}, "gate");
    tg_name(x, "x");
    tg_name(f, "f");
    a->data[0] = -0.3f;
    for (int gated = 0; gated < 2; gated++) {
        tg_tape *t = tg_tape_new(0);
        tg_tensor *u = tg_tape_tensor(t, 2, (int[]){4, 6});
        tg_fill_normal(u, &r, 0.0f, 1.0f);
        tg_tensor *params[] = {x, f, a};
        tg_zero_grad(params, 3);
        tg_tensor *z = gated ? tg_residual_gated(t, x, f, a) : tg_residual_scaled(t, x, f, 0.5f);
        tg_name(z, "z");
        assert_int_equal(tg_backward(t, tg_sum(t, tg_mul(t, z, u))), TG_OK);
        tg_grad_stat rows[8];
        int n = tg_grad_report(t, rows, 8);
        assert_int_equal(n, gated ? 4 : 3); /* x, f, (gate,) z */
        const tg_grad_stat *rz = row_named(rows, n, "z");
        assert_int_equal(rz->kind, TG_GRAD_RESIDUAL);
        double du = norm_of(u->data, u->size);
        assert_true(fabs(rz->norm - du) <= 1e-12 * du);
        assert_float_equal(rz->scale, gated ? -0.3f : 0.5f, 0.0f);
        const tg_grad_stat *rx = row_named(rows, n, "x"), *rf = row_named(rows, n, "f");
        assert_int_equal(rx->kind, TG_GRAD_PARAM);
        assert_true(fabs(rx->norm - rz->skip_norm) <= 1e-6 * rz->skip_norm);
        assert_true(fabs(rf->norm - rz->branch_norm) <= 1e-6 * rz->branch_norm);
        assert_true(fabs(rz->skip_norm - (gated ? 1.0 : 0.5) * du) <= 1e-6 * du);
        assert_true(fabs(rz->branch_norm - (gated ? 0.3 : 1.0) * du) <= 1e-6 * du);
        tg_tape_free(t);
    }
    tg_param_free(x);
    tg_param_free(f);
    tg_param_free(a);
}

/* z = alpha x + c x: the branch depends on x. The gradient reaching x is the
 * skip part plus the branch part carried back through f = c x; both are
 * parallel to dz here, so the norms add: ||dx|| = skip + c * branch. */
static void test_report_split_shared_input(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 4);
    tg_tensor *x = tu_param(&r, TU_SHAPE(3, 5), 1.0f);
    tg_name(x, "x");
    tg_tape *t = tg_tape_new(0);
    tg_tensor *u = tg_tape_tensor(t, 2, (int[]){3, 5});
    tg_fill_normal(u, &r, 0.0f, 1.0f);
    tg_zero_grad(&x, 1);
    tg_tensor *z = tg_residual_scaled(t, x, tg_name(tg_scale(t, x, 2.0f), "branch"), 0.75f);
    assert_int_equal(tg_backward(t, tg_sum(t, tg_mul(t, z, u))), TG_OK);
    tg_grad_stat rows[8];
    int n = tg_grad_report(t, rows, 8);
    assert_int_equal(n, 3); /* x, branch, the unnamed add */
    const tg_grad_stat *rz = &rows[2];
    assert_string_equal(rz->name, "residual@1");
    double want = rz->skip_norm + 2.0 * rz->branch_norm;
    assert_true(fabs(row_named(rows, n, "x")->norm - want) <= 1e-6 * want);
    assert_true(fabs(row_named(rows, n, "branch")->norm - rz->branch_norm) <= 1e-12 * want);
    tg_tape_free(t);
    tg_param_free(x);
}

/* Over a GPT: one row per parameter (wte is used twice, listed once), per
 * named activation and per residual add; rms and max_abs as defined; the
 * sizing call agrees; a short buffer is filled only as far as it goes. */
static void test_report_over_gpt(void **s)
{
    (void)s;
    tg_gpt *m = gpt_new_ok(2, TG_POST_LN, 1.0f, 6);
    tg_tape *t = tg_tape_new(0);
    tg_zero_grad(m->params, m->n_params);
    assert_int_equal(tg_backward(t, tg_gpt_loss(t, m, ids, targets, B, T)), TG_OK);
    int n = tg_grad_report(t, NULL, 0);
    /* params + emb, 2 norm_* per layer, ln_f, logits + 2 adds per layer */
    assert_int_equal(n, m->n_params + 1 + 4 + 2 + 4);
    tg_grad_stat *rows = calloc((size_t)n + 1, sizeof *rows);
    assert_non_null(rows);
    rows[n].size = 12345; /* a guard past the end */
    assert_int_equal(tg_grad_report(t, rows, n), n);
    assert_int_equal(rows[n].size, 12345);
    int params = 0, residuals = 0;
    for (int i = 0; i < n; i++) {
        params += rows[i].kind == TG_GRAD_PARAM;
        residuals += rows[i].kind == TG_GRAD_RESIDUAL;
        assert_true(rows[i].has_grad);
    }
    assert_int_equal(params, m->n_params);
    assert_int_equal(residuals, 4);
    const tg_grad_stat *wte = row_named(rows, n, "transformer.wte.weight");
    double norm = norm_of(m->params[0]->grad, m->params[0]->size), mx = 0;
    for (size_t j = 0; j < m->params[0]->size; j++)
        mx = fmax(mx, fabs(m->params[0]->grad[j]));
    assert_true(fabs(wte->norm - norm) <= 1e-12 * norm);
    assert_true(fabs(wte->rms - norm / sqrt((double)m->params[0]->size)) <= 1e-12 * norm);
    assert_true(wte->max_abs == mx);
    const tg_grad_stat *h = row_named(rows, n, "h.1.resid_mlp");
    tg_tensor *ht = tg_tape_find(t, "h.1.resid_mlp");
    assert_true(fabs(h->norm - norm_of(ht->grad, ht->size)) <= 1e-12 * h->norm);
    assert_int_equal(tg_grad_report(t, rows, 3), n); /* cap 3: counts all, fills 3 */

    FILE *f = tmpfile();
    assert_non_null(f);
    tg_grad_report_print(f, rows, n);
    rewind(f);
    char buf[65536];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    buf[len] = '\0';
    fclose(f);
    expect_text(buf, "residual h.0.resid_attn");
    expect_text(buf, "param    transformer.h.1.mlp.c_proj.weight");
    expect_text(buf, "skip");
    free(rows);
    tg_tape_free(t);
    tg_gpt_free(m);
}

static void test_report_bad_args(void **s)
{
    (void)s;
    tg_grad_stat row;
    assert_int_equal(tg_grad_report(NULL, &row, 1), -1);
    tg_tape *t = tg_tape_new(0);
    assert_int_equal(tg_grad_report(t, NULL, 0), 0); /* an empty tape: no rows */
    assert_int_equal(tg_grad_report(t, NULL, 4), -1);
    assert_int_equal(tg_grad_report(t, &row, -1), -1);
    tg_tensor *x = tg_param_new(1, (int[]){3}, "x");
    assert_null(tg_residual_gated(t, x, x, x)); /* fails the tape */
    assert_int_equal(tg_grad_report(t, &row, 1), -1);
    tg_grad_report_print(NULL, &row, 1); /* no crash */
    tg_param_free(x);
    tg_tape_free(t);
}

/* Before backward activations have no gradient: the row says so. */
static void test_report_before_backward(void **s)
{
    (void)s;
    tg_tensor *x = tg_param_new(1, (int[]){3}, "x");
    tg_tape *t = tg_tape_new(0);
    tg_name(tg_scale(t, x, 2.0f), "y");
    tg_grad_stat rows[2];
    assert_int_equal(tg_grad_report(t, rows, 2), 2);
    assert_true(rows[0].has_grad); /* a parameter's (zeroed) gradient */
    assert_false(rows[1].has_grad);
    assert_true(rows[1].norm == 0.0);
    tg_param_free(x);
    tg_tape_free(t);
}

/* ---- the LayerNorm Jacobian ------------------------------------------------- */

/* mean, var and rstd of a row, in double, as the prediction's reference. */
static double row_rstd(const float *x, int n, double eps, double *var_out)
{
    double mean = 0, var = 0;
    for (int j = 0; j < n; j++)
        mean += x[j];
    mean /= n;
    for (int j = 0; j < n; j++)
        var += (x[j] - mean) * (x[j] - mean);
    var /= n;
    *var_out = var;
    return 1.0 / sqrt(var + eps);
}

/* Rows of several lengths, spreads and eps, a constant row included (there
 * xhat = 0 and eps rstd^3 = rstd, so the three values collapse to two). */
static void test_jacobian_eigenvalues(void **s)
{
    (void)s;
    const int lengths[] = {2, 7, 33, 64};
    const float spreads[] = {0.0f, 0.01f, 1.0f, 30.0f};
    const float epsilons[] = {1e-5f, 1e-2f, 1.0f};
    tg_rng r;
    tg_rng_seed(&r, 17);
    for (int li = 0; li < 4; li++)
        for (int si = 0; si < 4; si++)
            for (int ei = 0; ei < 3; ei++) {
                int n = lengths[li];
                float x[64], eps = epsilons[ei];
                for (int j = 0; j < n; j++)
                    x[j] = 3.0f + spreads[si] * tg_rng_normal(&r);
                double *J = malloc((size_t)n * n * sizeof *J), eig[64], var;
                assert_non_null(J);
                assert_int_equal(tg_layernorm_jacobian(x, n, eps, J, NULL, 0), TG_OK);
                assert_int_equal(tg_sym_eigenvalues(J, n, eig, NULL, 0), TG_OK);
                double rstd = row_rstd(x, n, eps, &var), tol = 1e-10 * rstd;
                double want_xhat = (double)eps * rstd * rstd * rstd;
                /* the xhat eigenvalue, eps rstd^3 = rstd eps / (var + eps), is the smallest nonzero one */
                if (fabs(eig[0]) > tol || fabs(eig[1] - want_xhat) > tol)
                    fail_msg("n %d spread %g eps %g: eigenvalues %.12g %.12g, want 0 and %.12g", n,
                             (double)spreads[si], (double)eps, eig[0], eig[1], want_xhat);
                for (int j = 2; j < n; j++)
                    if (fabs(eig[j] - rstd) > tol)
                        fail_msg("n %d: eigenvalue %d is %.12g, want rstd %.12g", n, j, eig[j], rstd);
                free(J);
            }
}

/* ||xhat||^2 = n var / (var + eps): the identity behind the xhat eigenvalue. */
static void test_xhat_norm_identity(void **s)
{
    (void)s;
    float x[16];
    tg_rng r;
    tg_rng_seed(&r, 2);
    for (int j = 0; j < 16; j++)
        x[j] = 0.05f * tg_rng_normal(&r);
    double var, eps = 1e-3, rstd = row_rstd(x, 16, eps, &var), mean = 0, nx = 0;
    for (int j = 0; j < 16; j++)
        mean += x[j] / 16.0;
    for (int j = 0; j < 16; j++)
        nx += (x[j] - mean) * (x[j] - mean) * rstd * rstd;
    assert_true(fabs(nx - 16 * var / (var + eps)) <= 1e-12 * nx);
    assert_true(nx < 16.0); /* eps > 0 keeps xhat short of norm^2 n */
}

/* J dy against tg_layernorm's closed-form backward (gamma = 1, beta = 0). */
static void test_jacobian_matches_backward(void **s)
{
    (void)s;
    enum { N = 48 };
    tg_rng r;
    tg_rng_seed(&r, 8);
    const float centres[] = {0.0f, 5.0f, -2.0f};
    const float spreads[] = {1.0f, 0.1f, 3.0f};
    for (int c = 0; c < 3; c++) {
        tg_tensor *x = tg_param_new(2, (int[]){1, N}, "x");
        for (int j = 0; j < N; j++)
            x->data[j] = centres[c] + spreads[c] * tg_rng_normal(&r);
        tg_tape *t = tg_tape_new(0);
        tg_tensor *dy = tg_tape_tensor(t, 2, (int[]){1, N});
        tg_fill_normal(dy, &r, 0.0f, 1.0f);
        tg_zero_grad(&x, 1);
        tg_tensor *y = tg_layernorm(t, x, NULL, NULL, 1e-5f);
        assert_int_equal(tg_backward(t, tg_sum(t, tg_mul(t, y, dy))), TG_OK);
        double J[N * N], worst = 0, scale = 0;
        assert_int_equal(tg_layernorm_jacobian(x->data, N, 1e-5f, J, NULL, 0), TG_OK);
        for (int i = 0; i < N; i++) {
            double jdy = 0;
            for (int k = 0; k < N; k++)
                jdy += J[i * N + k] * dy->data[k];
            worst = fmax(worst, fabs(jdy - x->grad[i]));
            scale = fmax(scale, fabs(jdy));
        }
        if (!(worst <= 1e-5 * scale))
            fail_msg("centre %g: J dy differs from the backward by %.3g (scale %.3g)", (double)centres[c], worst,
                     scale);
        tg_tape_free(t);
        tg_param_free(x);
    }
}

static void test_small_known_eigenvalues(void **s)
{
    (void)s;
    double A[9] = {2, 1, 0, 1, 2, 1, 0, 1, 2}, eig[3];
    assert_int_equal(tg_sym_eigenvalues(A, 3, eig, NULL, 0), TG_OK);
    assert_true(fabs(eig[0] - (2 - sqrt(2.0))) < 1e-14);
    assert_true(fabs(eig[1] - 2) < 1e-14);
    assert_true(fabs(eig[2] - (2 + sqrt(2.0))) < 1e-14);
    double one = -4.5;
    assert_int_equal(tg_sym_eigenvalues(&one, 1, eig, NULL, 0), TG_OK);
    assert_true(eig[0] == -4.5);
    double zero[4] = {0};
    assert_int_equal(tg_sym_eigenvalues(zero, 2, eig, NULL, 0), TG_OK);
    assert_true(eig[0] == 0 && eig[1] == 0);
}

static void test_jacobian_errors(void **s)
{
    (void)s;
    char err[256];
    float x[3] = {1, 2, 3}, flat[3] = {2, 2, 2};
    double J[9], eig[3];
    assert_int_equal(tg_layernorm_jacobian(x, 0, 1e-5f, J, err, sizeof err), TG_ERR_ARG);
    expect_text(err, "tg_layernorm_jacobian: x and J must be non-NULL and n >= 1 (n is 0)");
    assert_int_equal(tg_layernorm_jacobian(NULL, 3, 1e-5f, J, err, sizeof err), TG_ERR_ARG);
    assert_int_equal(tg_layernorm_jacobian(x, 3, -1.0f, J, err, sizeof err), TG_ERR_ARG);
    expect_text(err, "eps must be finite and >= 0, got -1");
    assert_int_equal(tg_layernorm_jacobian(x, 3, NAN, J, err, sizeof err), TG_ERR_ARG);
    x[1] = INFINITY;
    assert_int_equal(tg_layernorm_jacobian(x, 3, 1e-5f, J, err, sizeof err), TG_ERR_ARG);
    expect_text(err, "x[1] is inf");
    assert_int_equal(tg_layernorm_jacobian(flat, 3, 0.0f, J, err, sizeof err), TG_ERR_ARG);
    expect_text(err, "var + eps is 0");
    assert_int_equal(tg_layernorm_jacobian(flat, 3, 0.0f, J, NULL, 0), TG_ERR_ARG); /* no buffer */

    double A[4] = {1, 2, 3, 1};
    assert_int_equal(tg_sym_eigenvalues(A, 2, eig, err, sizeof err), TG_ERR_ARG);
    expect_text(err, "tg_sym_eigenvalues: A is not symmetric: A[1][0] = 3, A[0][1] = 2");
    A[2] = NAN;
    assert_int_equal(tg_sym_eigenvalues(A, 2, eig, err, sizeof err), TG_ERR_ARG);
    expect_text(err, "A[2] is nan");
    assert_int_equal(tg_sym_eigenvalues(A, 0, eig, err, sizeof err), TG_ERR_ARG);
    expect_text(err, "n >= 1");
    assert_int_equal(tg_sym_eigenvalues(NULL, 2, eig, err, sizeof err), TG_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gated_residual_gradcheck),
        cmocka_unit_test(test_gated_residual_errors),
        cmocka_unit_test(test_gpt_variants_gradcheck),
        cmocka_unit_test(test_deepnorm_is_scaled_post_ln),
        cmocka_unit_test(test_deepnorm_init),
        cmocka_unit_test(test_rezero_params),
        cmocka_unit_test(test_variant_config_errors),
        cmocka_unit_test(test_rezero_at_init),
        cmocka_unit_test(test_tape_find_stream_names),
        cmocka_unit_test(test_report_split_independent),
        cmocka_unit_test(test_report_split_shared_input),
        cmocka_unit_test(test_report_over_gpt),
        cmocka_unit_test(test_report_bad_args),
        cmocka_unit_test(test_report_before_backward),
        cmocka_unit_test(test_jacobian_eigenvalues),
        cmocka_unit_test(test_xhat_norm_identity),
        cmocka_unit_test(test_jacobian_matches_backward),
        cmocka_unit_test(test_small_known_eigenvalues),
        cmocka_unit_test(test_jacobian_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
