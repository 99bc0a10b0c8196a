/* A GPT-2 shaped Transformer, parameters named as nanoGPT's model:
 *
 *   x = wte[ids] + wpe[0..T-1]
 *   each block, Pre-LN:   x = a*x + attn(ln_1(x));      x = a*x + mlp(ln_2(x))
 *               Post-LN:  x = ln_1(a*x + attn(x));      x = ln_2(a*x + mlp(x))
 *               DeepNorm: Post-LN with a = (2 layers)^(1/4)
 *               ReZero:   x = x + g_attn * attn(x);     x = x + g_mlp * mlp(x)
 *   logits = ln_f(x) wte^T          (the head is tied to the embedding)
 *
 *   attn(x) = c_proj(attention(c_attn(x)))    causal, heads split from c_attn
 *   mlp(x)  = c_proj(gelu(c_fc(x)))           4x width, tanh GELU
 *
 * Linear weights are [out, in]; every Linear has a bias; LayerNorm eps 1e-5.
 * a is cfg.residual_scale (1 for GPT-2). */
#include "tapegrad_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-5f
#define PER_BLOCK 12
#define PER_REZERO_BLOCK 10

/* The tensors a block may hold; a variant's layout lists the ones it has in
 * named_parameters() order. */
enum slot { LN1_W, LN1_B, ATTN_W, ATTN_B, APROJ_W, APROJ_B, LN2_W, LN2_B, FC_W, FC_B, MPROJ_W, MPROJ_B,
            GATE_ATTN, GATE_MLP, N_SLOTS };

static const char *const slot_names[N_SLOTS] = {
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
    "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
    "rezero.attn", "rezero.mlp"};

static const enum slot ln_layout[PER_BLOCK] = {LN1_W, LN1_B, ATTN_W, ATTN_B, APROJ_W, APROJ_B,
                                               LN2_W, LN2_B, FC_W, FC_B, MPROJ_W, MPROJ_B};
/* The gates take the places of the LayerNorms they replace. */
static const enum slot rezero_layout[PER_REZERO_BLOCK] = {GATE_ATTN, ATTN_W, ATTN_B, APROJ_W, APROJ_B,
                                                          GATE_MLP, FC_W, FC_B, MPROJ_W, MPROJ_B};

static int block_size(tg_norm_place norm) { return norm == TG_REZERO ? PER_REZERO_BLOCK : PER_BLOCK; }
static const enum slot *block_layout(tg_norm_place norm) { return norm == TG_REZERO ? rezero_layout : ln_layout; }

float tg_deepnorm_alpha(int layers) { return layers < 1 ? 0.0f : powf(2.0f * (float)layers, 0.25f); }
float tg_deepnorm_beta(int layers) { return layers < 1 ? 0.0f : powf(8.0f * (float)layers, -0.25f); }

tg_status tg_gpt_config_check(const tg_gpt_config *c, char *err, size_t errlen)
{
    const char *bad = NULL;
    if (!c) {
        if (err && errlen)
            snprintf(err, errlen, "tg_gpt_config_check: cfg is NULL");
        return TG_ERR_ARG;
    }
    if (c->vocab < 1 || c->vocab > TG_GPT_MAX_VOCAB) bad = "vocab must be in [1, TG_GPT_MAX_VOCAB]";
    else if (c->ctx < 1 || c->ctx > TG_GPT_MAX_CTX) bad = "ctx must be in [1, TG_GPT_MAX_CTX]";
    else if (c->layers < 1 || c->layers > TG_GPT_MAX_LAYERS) bad = "layers must be in [1, TG_GPT_MAX_LAYERS]";
    else if (c->dim < 1 || c->dim > TG_GPT_MAX_DIM) bad = "dim must be in [1, TG_GPT_MAX_DIM]";
    else if (c->heads < 1 || c->dim % c->heads) bad = "heads must divide dim";
    else if ((unsigned)c->norm > (unsigned)TG_REZERO) bad = "norm must be TG_PRE_LN, TG_POST_LN, TG_DEEPNORM or TG_REZERO";
    else if (!isfinite(c->residual_scale) || c->residual_scale < 0) bad = "residual_scale must be finite and >= 0";
    else if (c->norm == TG_REZERO && c->residual_scale != 0 && c->residual_scale != 1)
        bad = "residual_scale must be 0 or 1 with TG_REZERO";
    if (bad && err && errlen)
        snprintf(err, errlen, "tg_gpt_new: %s (vocab %d, ctx %d, layers %d, heads %d, dim %d)", bad,
                 c->vocab, c->ctx, c->layers, c->heads, c->dim);
    return bad ? TG_ERR_ARG : TG_OK;
}

int tg_gpt_config_params(const tg_gpt_config *c)
{
    if (tg_gpt_config_check(c, NULL, 0) != TG_OK)
        return -1;
    return 2 + block_size(c->norm) * c->layers + 2;
}

bool tg_gpt_config_param(const tg_gpt_config *c, int i, char *name, size_t len, int *ndim, int *shape)
{
    int n = tg_gpt_config_params(c), d = c ? c->dim : 0, rows, cols;
    if (n < 0 || i < 0 || i >= n || !name || !ndim || !shape)
        return false;
    if (i < 2 || i >= n - 2) {
        static const char *const ends[4] = {"transformer.wte.weight", "transformer.wpe.weight",
                                            "transformer.ln_f.weight", "transformer.ln_f.bias"};
        int e = i < 2 ? i : i - n + 4;
        snprintf(name, len, "%s", ends[e]);
        rows = e == 0 ? c->vocab : e == 1 ? c->ctx : d;
        cols = e < 2 ? d : 0;
    } else {
        const int shapes[N_SLOTS][2] = {{d, 0}, {d, 0}, {3 * d, d}, {3 * d, 0}, {d, d}, {d, 0}, {d, 0},
                                        {d, 0}, {4 * d, d}, {4 * d, 0}, {d, 4 * d}, {d, 0}, {1, 0}, {1, 0}};
        int size = block_size(c->norm), l = (i - 2) / size;
        enum slot sl = block_layout(c->norm)[(i - 2) % size];
        snprintf(name, len, "transformer.h.%d.%s", l, slot_names[sl]);
        rows = shapes[sl][0];
        cols = shapes[sl][1];
    }
    *ndim = cols ? 2 : 1;
    shape[0] = rows;
    shape[1] = cols;
    return true;
}

/* Shapes in named_parameters() order, as tg_gpt_config_param lists them;
 * false when memory runs out. */
static bool alloc_params(tg_gpt *m)
{
    int n = tg_gpt_config_params(&m->cfg), ndim, shape[TG_MAX_DIMS];
    char name[64];
    for (int i = 0; i < n; i++) {
        tg_gpt_config_param(&m->cfg, i, name, sizeof name, &ndim, shape);
        tg_tensor *p = tg_param_new(ndim, shape, name);
        if (!p)
            return false;
        m->params[m->n_params++] = p;
    }
    return true;
}

/* The std a weight matrix is drawn from (see tg_gpt_new). */
static float weight_std(const tg_gpt *m, const char *name)
{
    float layers = (float)m->cfg.layers;
    if (m->cfg.norm == TG_DEEPNORM && (strstr(name, "c_proj.weight") || strstr(name, "c_fc.weight")))
        return 0.02f * tg_deepnorm_beta(m->cfg.layers);
    return strstr(name, "c_proj.weight") ? 0.02f / sqrtf(2.0f * layers) : 0.02f;
}

/* DeepNorm scales v, not q and k: the last third of c_attn's rows. */
static void scale_value_rows(const tg_gpt *m, tg_tensor *c_attn)
{
    float beta = tg_deepnorm_beta(m->cfg.layers);
    size_t third = c_attn->size / 3;
    for (size_t i = 2 * third; i < c_attn->size; i++)
        c_attn->data[i] *= beta;
}

static void init_params(tg_gpt *m, uint64_t seed)
{
    tg_rng r;
    tg_rng_seed(&r, seed);
    for (int i = 0; i < m->n_params; i++) {
        tg_tensor *p = m->params[i];
        size_t len = strlen(p->name);
        bool is_ln = strstr(p->name, "ln_") != NULL;
        bool is_weight = len > 7 && !strcmp(p->name + len - 7, ".weight");
        if (is_ln)
            tg_fill(p, is_weight ? 1.0f : 0.0f);
        else if (!is_weight)
            tg_fill(p, 0.0f); /* biases, and ReZero's gates */
        else
            tg_fill_normal(p, &r, 0.0f, weight_std(m, p->name));
        if (m->cfg.norm == TG_DEEPNORM && strstr(p->name, "c_attn.weight"))
            scale_value_rows(m, p);
    }
}

tg_gpt *tg_gpt_new(const tg_gpt_config *cfg, uint64_t seed, char *err, size_t errlen)
{
    if (tg_gpt_config_check(cfg, err, errlen) != TG_OK)
        return NULL;
    tg_gpt *m = calloc(1, sizeof *m);
    if (!m)
        goto oom;
    m->cfg = *cfg;
    if (m->cfg.residual_scale == 0.0f)
        m->cfg.residual_scale = 1.0f;
    if (m->cfg.norm == TG_DEEPNORM)
        m->cfg.residual_scale = tg_deepnorm_alpha(cfg->layers);
    m->params = calloc((size_t)(PER_BLOCK * cfg->layers + 4), sizeof *m->params);
    m->positions = malloc((size_t)cfg->ctx * sizeof *m->positions);
    if (!m->params || !m->positions || !alloc_params(m))
        goto oom;
    for (int i = 0; i < cfg->ctx; i++)
        m->positions[i] = i;
    init_params(m, seed);
    return m;
oom:
    tg_gpt_free(m);
    if (err && errlen)
        snprintf(err, errlen, "tg_gpt_new: out of memory");
    return NULL;
}

void tg_gpt_free(tg_gpt *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_params; i++)
        tg_param_free(m->params[i]);
    free(m->params);
    free(m->positions);
    free(m);
}

tg_tensor *tg_gpt_param(const tg_gpt *m, const char *name)
{
    for (int i = 0; m && name && i < m->n_params; i++)
        if (!strcmp(m->params[i]->name, name))
            return m->params[i];
    return NULL;
}

static tg_tensor *attn(tg_tape *t, tg_tensor *const *p, tg_tensor *x, int heads)
{
    tg_tensor *qkv = tg_linear(t, x, p[ATTN_W], p[ATTN_B]);
    return tg_linear(t, tg_attention(t, qkv, heads), p[APROJ_W], p[APROJ_B]);
}

static tg_tensor *mlp(tg_tape *t, tg_tensor *const *p, tg_tensor *x)
{
    return tg_linear(t, tg_gelu(t, tg_linear(t, x, p[FC_W], p[FC_B])), p[MPROJ_W], p[MPROJ_B]);
}

/* "h.<layer>.<what>" on x; returns x. */
static tg_tensor *name_at(tg_tensor *x, int layer, const char *what)
{
    char name[64];
    snprintf(name, sizeof name, "h.%d.%s", layer, what);
    return tg_name(x, name);
}

static tg_tensor *block(tg_tape *t, const tg_gpt *m, int layer, tg_tensor *x)
{
    int size = block_size(m->cfg.norm);
    const enum slot *layout = block_layout(m->cfg.norm);
    tg_tensor *p[N_SLOTS] = {0};
    for (int k = 0; k < size; k++)
        p[layout[k]] = m->params[2 + size * layer + k];
    float a = m->cfg.residual_scale;
    int heads = m->cfg.heads;
    if (m->cfg.norm == TG_PRE_LN) {
        tg_tensor *h = attn(t, p, tg_layernorm(t, x, p[LN1_W], p[LN1_B], LN_EPS), heads);
        x = name_at(tg_residual_scaled(t, x, h, a), layer, "resid_attn");
        h = mlp(t, p, tg_layernorm(t, x, p[LN2_W], p[LN2_B], LN_EPS));
        return name_at(tg_residual_scaled(t, x, h, a), layer, "resid_mlp");
    }
    if (m->cfg.norm == TG_REZERO) {
        x = name_at(tg_residual_gated(t, x, attn(t, p, x, heads), p[GATE_ATTN]), layer, "resid_attn");
        return name_at(tg_residual_gated(t, x, mlp(t, p, x), p[GATE_MLP]), layer, "resid_mlp");
    }
    x = name_at(tg_residual_scaled(t, x, attn(t, p, x, heads), a), layer, "resid_attn");
    x = name_at(tg_layernorm(t, x, p[LN1_W], p[LN1_B], LN_EPS), layer, "norm_attn");
    x = name_at(tg_residual_scaled(t, x, mlp(t, p, x), a), layer, "resid_mlp");
    return name_at(tg_layernorm(t, x, p[LN2_W], p[LN2_B], LN_EPS), layer, "norm_mlp");
}

tg_tensor *tg_gpt_logits(tg_tape *t, const tg_gpt *m, const int *ids, int batch, int len)
{
    if (!t || tg_tape_status(t) != TG_OK)
        return NULL;
    if (!m || batch < 1 || len < 1 || len > m->cfg.ctx) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_gpt_logits: batch %d and length %d must be positive, length at most ctx %d",
                     batch, len, m ? m->cfg.ctx : 0);
        return NULL;
    }
    tg_tensor *tok = tg_embedding(t, m->params[0], ids, 2, (int[]){batch, len});
    tg_tensor *pos = tg_embedding(t, m->params[1], m->positions, 1, (int[]){len});
    tg_tensor *x = tg_name(tg_add(t, tok, pos), "emb");
    for (int l = 0; l < m->cfg.layers; l++)
        x = block(t, m, l, x);
    tg_tensor *const *f = m->params + m->n_params - 2;
    tg_tensor *y = tg_name(tg_layernorm(t, x, f[0], f[1], LN_EPS), "ln_f");
    return tg_name(tg_matmul(t, y, m->params[0], false, true), "logits");
}

tg_tensor *tg_gpt_loss(tg_tape *t, const tg_gpt *m, const int *ids, const int *targets, int batch, int len)
{
    return tg_cross_entropy(t, tg_gpt_logits(t, m, ids, batch, len), targets);
}
