/* The GPT model (src/nn/gpt.c) end to end: loss and every parameter gradient
 * against PyTorch, against finite differences, its parameter names and init,
 * and its argument checks.
 *
 * The PyTorch references are tests/fixtures/gpt_pre.safetensors and
 * gpt_post.safetensors, written by tests/fixtures/make_gpt_fixtures.py (a
 * from-scratch PyTorch model of the architecture documented in gpt.c, with
 * nanoGPT's parameter names; see that script). Each holds the weights, a
 * batch [3, 8] with two ignored targets, PyTorch's float32 loss and the
 * gradient of every parameter, for vocab 11, ctx 8, layers 2, heads 2,
 * dim 16. The weights there are deliberately large (std 0.2, random biases,
 * gammas 1 +- 0.1) so that every parameter has a gradient of size 0.04..0.4
 * and no path is numerically dead. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PER_BLOCK 12

/* ---- shared helpers ------------------------------------------------------ */

static const char *const block_names[PER_BLOCK] = {
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
    "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"};

/* Shape of block tensor k for width d: {rows, cols}, cols 0 for a vector. */
static void block_shape(int k, int d, int out[2])
{
    static const int mul[PER_BLOCK][2] = {{1, 0}, {1, 0}, {3, 1}, {3, 0}, {1, 1}, {1, 0},
                                          {1, 0}, {1, 0}, {4, 1}, {4, 0}, {1, 4}, {1, 0}};
    out[0] = mul[k][0] * d;
    out[1] = mul[k][1] * d;
}

static tg_gpt *gpt_new_ok(int vocab, int ctx, int layers, int heads, int dim, tg_norm_place norm, uint64_t seed)
{
    tg_gpt_config cfg = {.vocab = vocab, .ctx = ctx, .layers = layers, .heads = heads, .dim = dim, .norm = norm,
                         .residual_scale = 1.0f};
    char err[256] = "";
    tg_gpt *m = tg_gpt_new(&cfg, seed, err, sizeof err);
    if (!m)
        fail_msg("tg_gpt_new failed: %s", err);
    return m;
}

static bool is_ln_gamma(const tg_tensor *p)
{
    size_t len = strlen(p->name);
    return strstr(p->name, "ln_") && len > 7 && !strcmp(p->name + len - 7, ".weight");
}

/* ---- against PyTorch ------------------------------------------------------ */

/* Tolerances against the PyTorch fixtures.
 *
 * The fixture generator reruns PyTorch's computation in float64 on the same
 * float32 weights: PyTorch's float32 loss is within 8e-8 (relative) of it and
 * every float32 gradient within 5.2e-7 of the tensor's largest entry (and
 * 5e-7 in relative L2 norm). tapegrad sums in another order, so it carries
 * float32 noise of the same size: measured against the fixtures, the loss
 * within 9.3e-8 and every gradient within 8e-7 (max|diff| / max|ref| and
 * relative L2), with OpenBLAS or the built-in GEMM, 1 to 4 threads. This
 * test prints its measured errors.
 *
 * LOSS_RTOL: |loss - ref| <= 1e-6 |ref|.
 * GRAD_TOL, per parameter tensor, both:
 *     max|g - ref| <= GRAD_TOL * max|ref|        (the worst element)
 *     ||g - ref||  <= GRAD_TOL * ||ref||          (the tensor as a whole)
 * with GRAD_TOL = 1e-5, ~12x the worst measured difference. The scale is the
 * tensor's own largest gradient (0.04 .. 0.37 here), not max(1, max|ref|),
 * so a small gradient is held to the same relative standard as a large one.
 *
 * That is tight enough to catch the subtle mistakes, not only the gross
 * ones. `make_gpt_fixtures.py --sensitivity` recomputes the fixtures with
 * deliberate errors; the worst gradient moves by (Pre-LN / Post-LN):
 * LayerNorm eps 1e-6 instead of 1e-5: 3e-4 / 7.5e-5; erf GELU instead of
 * tanh: 5.5e-4 / 4.6e-4; the mean counting ignored rows: 8.3e-2; a dropped
 * c_attn bias: 0.39 / 0.84; softmax scale 1/D: 0.68 / 0.4; q and k
 * swapped, heads interleaved, no causal mask: 0.6 .. 1.4. The smallest of
 * these is 7.5x GRAD_TOL. (The loss alone is a weak witness: erf GELU moves
 * it by 1e-5, the eps mistake by 3.5e-6 and, in Post-LN, not at all.) */
#define LOSS_RTOL 1e-6
#define GRAD_TOL 1e-5

static const tg_st_tensor *find_tensor(const tg_st_file *f, const char *name, tg_dtype dtype, int ndim,
                                       const int *shape)
{
    const tg_st_tensor *s = tg_safetensors_find(f, name);
    if (!s)
        fail_msg("fixture lacks tensor %s", name);
    if (s->dtype != dtype)
        fail_msg("%s: dtype %d, want %d", name, (int)s->dtype, (int)dtype);
    bool same = s->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = s->shape[i] == shape[i];
    if (!same) {
        char got[64] = "", want[64] = "";
        for (int i = 0; i < s->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%d", i ? "," : "", s->shape[i]);
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", i ? "," : "", shape[i]);
        fail_msg("%s: shape [%s] in the fixture, model wants [%s]", name, got, want);
    }
    assert_non_null(s->data);
    return s;
}

static int meta_int(const tg_st_file *f, const char *key)
{
    const char *v = tg_safetensors_meta(f, key);
    if (!v)
        fail_msg("fixture metadata lacks %s", key);
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end)
        fail_msg("fixture metadata %s = \"%s\" is not an integer", key, v);
    return (int)x;
}

/* Forward + backward of tg_gpt_loss on a fresh tape; returns the loss. */
static float loss_and_backward(tg_gpt *m, const int *ids, const int *targets, int batch, int len)
{
    tg_tape *t = tg_tape_new(0);
    assert_non_null(t);
    tg_zero_grad(m->params, m->n_params);
    tg_tensor *loss = tg_gpt_loss(t, m, ids, targets, batch, len);
    if (!loss || tg_tape_status(t) != TG_OK)
        fail_msg("tg_gpt_loss failed: %s", tg_tape_error(t));
    assert_int_equal(loss->size, 1);
    float v = loss->data[0];
    if (tg_backward(t, loss) != TG_OK)
        fail_msg("tg_backward failed: %s", tg_tape_error(t));
    tg_tape_free(t);
    return v;
}

/* cfg: the model the fixture holds; with cfg->dropout > 0 its masks come
 * from a generator seeded with the fixture's dropout_seed. */
static void check_against_torch(const char *file, const tg_gpt_config *cfg, const char *norm_name)
{
    enum { VOCAB = 11, CTX = 8, LAYERS = 2, HEADS = 2, DIM = 16, B = 3, T = 8 };
    char path[1024], err[512] = "";
    snprintf(path, sizeof path, "%s/%s", TG_FIXTURE_DIR, file);
    tg_st_file *f = tg_safetensors_read(path, err, sizeof err);
    if (!f)
        fail_msg("cannot read fixture: %s", err);

    assert_int_equal(meta_int(f, "vocab"), VOCAB);
    assert_int_equal(meta_int(f, "ctx"), CTX);
    assert_int_equal(meta_int(f, "layers"), LAYERS);
    assert_int_equal(meta_int(f, "heads"), HEADS);
    assert_int_equal(meta_int(f, "dim"), DIM);
    assert_non_null(tg_safetensors_meta(f, "norm"));
    assert_string_equal(tg_safetensors_meta(f, "norm"), norm_name);

    char err_new[256];
    tg_gpt *m = tg_gpt_new(cfg, 42, err_new, sizeof err_new);
    if (!m)
        fail_msg("%s", err_new);
    assert_int_equal(m->n_params, tg_gpt_config_params(cfg));
    tg_rng dropout_rng;
    if (cfg->dropout > 0) {
        tg_rng_seed(&dropout_rng, (uint64_t)meta_int(f, "dropout_seed"));
        m->dropout_rng = &dropout_rng;
    }
    /* params + grad.params + ids + targets + loss */
    assert_int_equal(tg_safetensors_count(f), 2 * m->n_params + 3);

    /* Every model parameter is in the file with its shape; copy it in. */
    for (int i = 0; i < m->n_params; i++) {
        tg_tensor *p = m->params[i];
        const tg_st_tensor *s = find_tensor(f, p->name, TG_F32, p->ndim, p->shape);
        memcpy(p->data, s->data, p->size * sizeof(float));
    }
    const tg_st_tensor *sid = find_tensor(f, "batch.ids", TG_I32, 2, (int[]){B, T});
    const tg_st_tensor *stg = find_tensor(f, "batch.targets", TG_I32, 2, (int[]){B, T});
    const tg_st_tensor *sloss = find_tensor(f, "loss", TG_F32, 1, (int[]){1});
    int ids[B * T], targets[B * T], ignored = 0;
    for (int i = 0; i < B * T; i++) {
        ids[i] = (int)((const int32_t *)sid->data)[i];
        targets[i] = (int)((const int32_t *)stg->data)[i];
        assert_true(ids[i] >= 0 && ids[i] < VOCAB);
        assert_true(targets[i] >= -1 && targets[i] < VOCAB);
        ignored += targets[i] == -1;
    }
    assert_true(ignored > 0 && ignored < B * T); /* the fixture exercises ignore_index */

    float loss = loss_and_backward(m, ids, targets, B, T);
    double ref_loss = ((const float *)sloss->data)[0];
    double loss_rel = fabs(loss - ref_loss) / fabs(ref_loss);
    if (!(loss_rel <= LOSS_RTOL))
        fail_msg("%s: loss %.9g, PyTorch %.9g (relative difference %.3g > %.3g)", file, loss, ref_loss, loss_rel,
                 LOSS_RTOL);

    double worst_max = 0, worst_norm = 0;
    int worst_max_i = 0, worst_norm_i = 0;
    for (int i = 0; i < m->n_params; i++) {
        tg_tensor *p = m->params[i];
        char gname[96];
        snprintf(gname, sizeof gname, "grad.%s", p->name);
        const float *ref = find_tensor(f, gname, TG_F32, p->ndim, p->shape)->data;
        if (!p->grad)
            fail_msg("%s: no gradient reached %s", file, p->name);
        double dmax = 0, rmax = 0, d2 = 0, r2 = 0;
        for (size_t j = 0; j < p->size; j++) {
            double d = (double)p->grad[j] - ref[j];
            dmax = fmax(dmax, fabs(d));
            rmax = fmax(rmax, fabs(ref[j]));
            d2 += d * d;
            r2 += (double)ref[j] * ref[j];
        }
        /* The fixture is built so that every tensor carries a real gradient. */
        if (!(rmax > 1e-2))
            fail_msg("%s: reference gradient of %s is only %.3g; the fixture is not sensitive", file, p->name,
                     rmax);
        double e_max = dmax / rmax, e_norm = sqrt(d2 / r2);
        if (!(e_max <= GRAD_TOL) || !(e_norm <= GRAD_TOL))
            fail_msg("%s: gradient of %s differs from PyTorch: max|diff| %.3g = %.3g x max|ref| %.3g, "
                     "relative L2 %.3g (tolerance %.3g)",
                     file, p->name, dmax, e_max, rmax, e_norm, GRAD_TOL);
        if (e_max > worst_max)
            worst_max = e_max, worst_max_i = i;
        if (e_norm > worst_norm)
            worst_norm = e_norm, worst_norm_i = i;
    }
    printf("  %s: loss %.9g vs PyTorch %.9g (rel %.2g); gradients: worst max|diff|/max|ref| %.2g (%s), "
           "worst relative L2 %.2g (%s)\n",
           file, loss, ref_loss, loss_rel, worst_max, m->params[worst_max_i]->name, worst_norm,
           m->params[worst_norm_i]->name);

    /* A second step on a new tape after tg_zero_grad gives the same numbers
     * bit for bit: gradients do not leak between steps and nothing depends
     * on leftover state. */
    float *g1[64];
    assert_true(m->n_params <= 64);
    for (int i = 0; i < m->n_params; i++) {
        g1[i] = malloc(m->params[i]->size * sizeof(float));
        assert_non_null(g1[i]);
        memcpy(g1[i], m->params[i]->grad, m->params[i]->size * sizeof(float));
    }
    if (cfg->dropout > 0) /* the same masks again */
        tg_rng_seed(&dropout_rng, (uint64_t)meta_int(f, "dropout_seed"));
    float loss2 = loss_and_backward(m, ids, targets, B, T);
    assert_memory_equal(&loss, &loss2, sizeof loss);
    for (int i = 0; i < m->n_params; i++) {
        if (memcmp(g1[i], m->params[i]->grad, m->params[i]->size * sizeof(float)))
            fail_msg("%s: second backward gave another gradient for %s", file, m->params[i]->name);
        free(g1[i]);
    }

    tg_gpt_free(m);
    tg_safetensors_close(f);
}

static void test_pre_ln_matches_torch(void **s)
{
    (void)s;
    const tg_gpt_config cfg = {.vocab = 11, .ctx = 8, .layers = 2, .heads = 2, .dim = 16, .norm = TG_PRE_LN};
    check_against_torch("gpt_pre.safetensors", &cfg, "pre");
}

static void test_post_ln_matches_torch(void **s)
{
    (void)s;
    const tg_gpt_config cfg = {.vocab = 11, .ctx = 8, .layers = 2, .heads = 2, .dim = 16, .norm = TG_POST_LN};
    check_against_torch("gpt_post.safetensors", &cfg, "post");
}

/* RMSNorm, SwiGLU and RoPE (tests/fixtures/make_llama_fixtures.py), without
 * dropout and with dropout 0.1, its masks drawn from a fixed seed by a
 * Python copy of tapegrad's generator. */
static void test_llama_matches_torch(void **s)
{
    (void)s;
    tg_gpt_config cfg = {.vocab = 11, .ctx = 8, .layers = 2, .heads = 2, .dim = 16, .norm = TG_PRE_LN,
                         .normtype = TG_RMSNORM, .mlp = TG_MLP_SWIGLU, .pos = TG_POS_ROPE};
    check_against_torch("gpt_llama.safetensors", &cfg, "pre");
    cfg.dropout = 0.1f;
    check_against_torch("gpt_llama_dropout.safetensors", &cfg, "pre");
}

/* ---- against finite differences ------------------------------------------- */

typedef struct gc_ctx {
    const tg_gpt *m;
    const int *ids, *targets;
    int batch, len;
} gc_ctx;

static tg_tensor *gc_loss(tg_tape *t, void *p)
{
    const gc_ctx *c = p;
    return tg_gpt_loss(t, c->m, c->ids, c->targets, c->batch, c->len);
}

/* Every parameter of a tiny GPT (vocab 7, ctx 5, 2 layers, 2 heads, dim 8,
 * batch 2 of length 5 with one ignored target) for both norm placements,
 * against four-point central differences (tu_gradcheck: step 3e-2 times
 * max(1,|x|), up to 300 elements per tensor -- all of them here but the
 * 256-element c_fc / c_proj weights -- relative error with floor 1e-2).
 *
 * The weights are redrawn ten times larger than the init (std 0.2, biases
 * too; gammas 1 +- 0.2; embeddings std 0.5) so gradients are not tiny next
 * to the floor. The embeddings are drawn larger on purpose: with std 0.3
 * everywhere, one Post-LN row of width 8 reaches ln_1 with variance 0.017,
 * the loss curves so sharply there that the 3e-2 step misjudges a c_attn
 * bias gradient by 7% (the difference converges to the analytic value at
 * h = 1e-2, and that gradient matches PyTorch in the fixture tests). With
 * these scales the worst error over 12 random draws was 1.6e-3 for either
 * placement, the float32 rounding of the loss (~2e-7 / 3e-2 ~ 1e-5, i.e.
 * 1e-3 of the floor); TOL 1e-2 leaves room for that and still fails any
 * formula error, which shows as O(1). */
static void test_gradcheck_tiny_gpt(void **s)
{
    (void)s;
    enum { B = 2, T = 5 };
    const int ids[B * T] = {1, 4, 0, 6, 2, 3, 3, 5, 1, 0};
    const int targets[B * T] = {4, 0, 6, 2, -1, 3, 5, 1, 0, 6};
    for (int k = 0; k < 2; k++) {
        tg_norm_place norm = k ? TG_POST_LN : TG_PRE_LN;
        tg_gpt *m = gpt_new_ok(7, 5, 2, 2, 8, norm, 7 + (uint64_t)k);
        tg_rng r;
        tg_rng_seed(&r, 99 + (uint64_t)k);
        for (int i = 0; i < m->n_params; i++) {
            if (is_ln_gamma(m->params[i]))
                tg_fill_normal(m->params[i], &r, 1.0f, 0.2f);
            else
                tg_fill_normal(m->params[i], &r, 0.0f, i < 2 ? 0.5f : 0.2f);
        }
        gc_ctx c = {m, ids, targets, B, T};
        tu_gradcheck(k ? "tiny GPT, Post-LN" : "tiny GPT, Pre-LN", gc_loss, &c, m->params, m->n_params, 1e-2);
        tg_gpt_free(m);
    }
}

/* ---- names, order, shapes and init ----------------------------------------- */

static void test_param_names_and_shapes(void **s)
{
    (void)s;
    for (int layers = 1; layers <= 3; layers++) {
        const int d = 12, vocab = 9, ctx = 6;
        tg_gpt *m = gpt_new_ok(vocab, ctx, layers, 3, d, TG_PRE_LN, 1);
        assert_int_equal(m->n_params, 2 + PER_BLOCK * layers + 2);
        assert_string_equal(m->params[0]->name, "transformer.wte.weight");
        assert_string_equal(m->params[1]->name, "transformer.wpe.weight");
        assert_int_equal(m->params[0]->ndim, 2);
        assert_int_equal(m->params[0]->shape[0], vocab);
        assert_int_equal(m->params[0]->shape[1], d);
        assert_int_equal(m->params[1]->shape[0], ctx);
        assert_int_equal(m->params[1]->shape[1], d);
        for (int l = 0; l < layers; l++)
            for (int k = 0; k < PER_BLOCK; k++) {
                const tg_tensor *p = m->params[2 + PER_BLOCK * l + k];
                char want[64];
                snprintf(want, sizeof want, "transformer.h.%d.%s", l, block_names[k]);
                assert_string_equal(p->name, want);
                int shape[2];
                block_shape(k, d, shape);
                assert_int_equal(p->ndim, shape[1] ? 2 : 1);
                assert_int_equal(p->shape[0], shape[0]);
                if (shape[1])
                    assert_int_equal(p->shape[1], shape[1]);
                assert_ptr_equal(tg_gpt_param(m, want), p);
                assert_true(p->requires_grad);
            }
        assert_string_equal(m->params[m->n_params - 2]->name, "transformer.ln_f.weight");
        assert_string_equal(m->params[m->n_params - 1]->name, "transformer.ln_f.bias");
        assert_int_equal(m->params[m->n_params - 1]->shape[0], d);
        assert_ptr_equal(tg_gpt_param(m, "transformer.wte.weight"), m->params[0]);
        assert_null(tg_gpt_param(m, "lm_head.weight")); /* tied: not a separate parameter */
        assert_null(tg_gpt_param(m, "transformer.h.9.ln_1.weight"));
        assert_null(tg_gpt_param(m, NULL));
        tg_gpt_free(m);
    }
}

static double sample_std(const tg_tensor *p)
{
    double s = 0, s2 = 0;
    for (size_t i = 0; i < p->size; i++)
        s += p->data[i], s2 += (double)p->data[i] * p->data[i];
    double mean = s / (double)p->size;
    return sqrt(s2 / (double)p->size - mean * mean);
}

/* The init documented in tapegrad.h: weights N(0, 0.02), the residual output
 * projections (c_proj) N(0, 0.02 / sqrt(2 layers)), biases 0, LayerNorm
 * gamma 1 and beta 0; the same seed gives the same weights. The sample std
 * of >= 4096 draws is within 3% of the true one with overwhelming odds. */
static void test_init(void **s)
{
    (void)s;
    const int layers = 3, d = 64;
    tg_gpt *m = gpt_new_ok(100, 64, layers, 4, d, TG_POST_LN, 5);
    tg_gpt *same = gpt_new_ok(100, 64, layers, 4, d, TG_POST_LN, 5);
    tg_gpt *other = gpt_new_ok(100, 64, layers, 4, d, TG_POST_LN, 6);
    double proj_std = 0.02 / sqrt(2.0 * layers);
    for (int i = 0; i < m->n_params; i++) {
        const tg_tensor *p = m->params[i];
        size_t len = strlen(p->name);
        bool weight = len > 7 && !strcmp(p->name + len - 7, ".weight");
        assert_memory_equal(p->data, same->params[i]->data, p->size * sizeof(float));
        if (strstr(p->name, "ln_")) {
            for (size_t j = 0; j < p->size; j++)
                assert_true(p->data[j] == (weight ? 1.0f : 0.0f));
        } else if (!weight) {
            for (size_t j = 0; j < p->size; j++)
                assert_true(p->data[j] == 0.0f);
        } else {
            double want = strstr(p->name, "c_proj.weight") ? proj_std : 0.02;
            double got = sample_std(p);
            if (fabs(got / want - 1) > 0.03)
                fail_msg("%s: init std %.5f, want %.5f", p->name, got, want);
            assert_true(memcmp(p->data, other->params[i]->data, p->size * sizeof(float)) != 0);
        }
    }
    tg_gpt_free(m);
    tg_gpt_free(same);
    tg_gpt_free(other);
}

/* ---- argument checks --------------------------------------------------------- */

static void expect_bad_config(tg_gpt_config cfg, const char *needle)
{
    char err[256] = "";
    tg_gpt *m = tg_gpt_new(&cfg, 1, err, sizeof err);
    assert_null(m);
    if (!strstr(err, needle) || !strstr(err, "tg_gpt_new"))
        fail_msg("tg_gpt_new error \"%s\" does not mention \"%s\"", err, needle);
    assert_null(tg_gpt_new(&cfg, 1, NULL, 0)); /* no message buffer: still refused, no crash */
}

static void test_bad_configs(void **s)
{
    (void)s;
    const tg_gpt_config ok = {.vocab = 11, .ctx = 8, .layers = 2, .heads = 2, .dim = 16, .norm = TG_PRE_LN};
    tg_gpt_config c;
#define BAD(field, value, needle) (c = ok, c.field = value, expect_bad_config(c, needle))
    BAD(heads, 3, "heads must divide dim");
    BAD(heads, 0, "heads");
    BAD(layers, 0, "layers");
    BAD(vocab, 0, "vocab");
    BAD(ctx, 0, "ctx");
    BAD(dim, 0, "dim");
    BAD(norm, (tg_norm_place)7, "norm");
    BAD(residual_scale, -1, "residual_scale");
    BAD(residual_scale, NAN, "residual_scale");
    BAD(normtype, (tg_norm_type)2, "normtype");
    BAD(mlp, (tg_mlp_type)2, "mlp");
    BAD(pos, (tg_pos_type)2, "pos");
    BAD(dropout, 1.0f, "dropout");
    BAD(dropout, -0.1f, "dropout");
    BAD(dropout, NAN, "dropout");
    c = ok, c.pos = TG_POS_ROPE, c.heads = 16; /* head size 1 */
    expect_bad_config(c, "RoPE needs an even head size");
#undef BAD
    assert_null(tg_gpt_new(NULL, 1, NULL, 0));
    /* the error names the config */
    char err[256] = "";
    assert_null(tg_gpt_new(&(tg_gpt_config){.vocab = 11, .ctx = 8, .layers = 2, .heads = 3, .dim = 16, .norm = TG_PRE_LN}, 1, err, sizeof err));
    assert_non_null(strstr(err, "heads 3"));
    assert_non_null(strstr(err, "dim 16"));
}

static void test_sequence_too_long(void **s)
{
    (void)s;
    tg_gpt *m = gpt_new_ok(7, 5, 1, 2, 8, TG_PRE_LN, 3);
    int ids[12] = {0}, targets[12] = {0};
    tg_tape *t = tg_tape_new(0);
    assert_non_null(t);

    /* len 6 > ctx 5 */
    assert_null(tg_gpt_logits(t, m, ids, 2, 6));
    assert_int_equal(tg_tape_status(t), TG_ERR_ARG);
    const char *e = tg_tape_error(t);
    if (!strstr(e, "tg_gpt_logits") || !strstr(e, "ctx 5") || !strstr(e, "length 6"))
        fail_msg("unhelpful message for len > ctx: \"%s\"", e);
    /* the failure is sticky: the loss and backward refuse too */
    assert_null(tg_gpt_loss(t, m, ids, targets, 2, 5));
    assert_int_not_equal(tg_backward(t, NULL), TG_OK);

    /* after a reset the same tape works at len == ctx ... */
    tg_tape_reset(t);
    assert_int_equal(tg_tape_status(t), TG_OK);
    tg_tensor *lg = tg_gpt_logits(t, m, ids, 2, 5);
    assert_non_null(lg);
    assert_int_equal(lg->ndim, 3);
    assert_int_equal(lg->shape[0], 2);
    assert_int_equal(lg->shape[1], 5);
    assert_int_equal(lg->shape[2], 7);
    /* ... and at a shorter length */
    assert_non_null(tg_gpt_loss(t, m, ids, targets, 3, 4));
    assert_int_equal(tg_tape_status(t), TG_OK);

    /* zero or negative batch / length */
    tg_tape_reset(t);
    assert_null(tg_gpt_logits(t, m, ids, 0, 5));
    assert_int_equal(tg_tape_status(t), TG_ERR_ARG);
    tg_tape_reset(t);
    assert_null(tg_gpt_logits(t, m, ids, 2, 0));
    assert_int_equal(tg_tape_status(t), TG_ERR_ARG);
    tg_tape_reset(t);
    assert_null(tg_gpt_logits(t, NULL, ids, 2, 5));
    assert_int_equal(tg_tape_status(t), TG_ERR_ARG);

    tg_tape_free(t);
    tg_gpt_free(m);
}

/* requires_grad false freezes a parameter through a whole training step:
 * backward writes nothing into its gradient buffer (here a sentinel that
 * must survive bit for bit), tg_zero_grad and clipping leave it, and AdamW
 * with weight decay moves neither it nor its moments, while the others
 * train. The frozen set mixes matrices (decayed), vectors and the position
 * embedding; Post-LN puts ln_1 on the residual stream itself. */
static void test_frozen_params_unchanged(void **s)
{
    (void)s;
    const char *frozen[] = {"transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight",
                            "transformer.h.1.mlp.c_fc.bias", "transformer.h.1.ln_1.weight",
                            "transformer.ln_f.bias"};
    enum { NF = sizeof frozen / sizeof *frozen, B = 2, T = 5 };
    for (int variant = 0; variant < 2; variant++) {
        tg_gpt *m = gpt_new_ok(7, T, 2, 2, 8, variant ? TG_POST_LN : TG_PRE_LN, 11);
        float *saved[NF];
        tg_tensor *f[NF];
        for (int i = 0; i < NF; i++) {
            f[i] = tg_gpt_param(m, frozen[i]);
            assert_non_null(f[i]);
            f[i]->requires_grad = false;
            for (size_t j = 0; j < f[i]->size; j++)
                f[i]->grad[j] = 7.0f; /* what a kernel's += would change */
            saved[i] = malloc(f[i]->size * sizeof(float));
            memcpy(saved[i], f[i]->data, f[i]->size * sizeof(float));
        }
        float *emb0 = malloc(m->params[0]->size * sizeof(float));
        memcpy(emb0, m->params[0]->data, m->params[0]->size * sizeof(float));
        tg_adamw *o = tg_adamw_new(m->params, m->n_params, 0.9f, 0.95f, 1e-8f, 0.1f);
        tg_tape *t = tg_tape_new(0);
        int ids[B * T], targets[B * T];
        for (int i = 0; i < B * T; i++) {
            ids[i] = (3 * i + 1) % 7;
            targets[i] = (5 * i + 2) % 7;
        }
        for (int it = 0; it < 4; it++) {
            tg_tape_reset(t);
            tg_zero_grad(m->params, m->n_params);
            tg_tensor *loss = tg_gpt_loss(t, m, ids, targets, B, T);
            assert_int_equal(tg_backward(t, loss), TG_OK);
            tg_clip_grad_norm(m->params, m->n_params, 1e-3f); /* small: every step scales */
            assert_int_equal(tg_adamw_step(o, 1e-2f), TG_OK);
        }
        for (int i = 0; i < NF; i++) {
            int p = 0;
            while (m->params[p] != f[i])
                p++;
            for (size_t j = 0; j < f[i]->size; j++) {
                if (memcmp(&f[i]->data[j], &saved[i][j], sizeof(float)) || f[i]->grad[j] != 7.0f ||
                    tg_adamw_m(o, p)[j] != 0.0f || tg_adamw_v(o, p)[j] != 0.0f)
                    fail_msg("%s[%zu] changed: %g (was %g), grad %g", frozen[i], j, (double)f[i]->data[j],
                             (double)saved[i][j], (double)f[i]->grad[j]);
            }
            free(saved[i]);
        }
        /* The rest trained: the token embedding moved. */
        assert_true(memcmp(emb0, m->params[0]->data, m->params[0]->size * sizeof(float)) != 0);
        free(emb0);
        tg_tape_free(t);
        tg_adamw_free(o);
        tg_gpt_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pre_ln_matches_torch),
        cmocka_unit_test(test_post_ln_matches_torch),
        cmocka_unit_test(test_llama_matches_torch),
        cmocka_unit_test(test_gradcheck_tiny_gpt),
        cmocka_unit_test(test_param_names_and_shapes),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_sequence_too_long),
        cmocka_unit_test(test_frozen_params_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
