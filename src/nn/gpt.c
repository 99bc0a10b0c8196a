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
 * a is cfg.residual_scale (1 for GPT-2).
 *
 * The LLaMA-style options change parts, not the plan above:
 *   normtype TG_RMSNORM   every LN is RMSNorm (gain only, eps 1e-5)
 *   mlp TG_MLP_SWIGLU     mlp(x) = c_proj(silu(x Wg^T + bg) * (x Wu^T + bu)),
 *                         hidden H = round_up(8 dim / 3, 8), c_fc packing
 *                         [Wg; Wu] as [2H, dim] (gate rows first)
 *   pos TG_POS_ROPE       no wpe: q and k turned by RoPE (base 10000) after c_attn
 *   dropout p > 0         while m->training: on the embedding sum, on each
 *                         branch before its residual add, and on the
 *                         attention weights, drawn from m->dropout_rng */
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

static bool slot_present(const tg_gpt_config *c, enum slot sl)
{
    if (sl == GATE_ATTN || sl == GATE_MLP)
        return c->norm == TG_REZERO;
    if (sl == LN1_W || sl == LN2_W)
        return c->norm != TG_REZERO;
    if (sl == LN1_B || sl == LN2_B)
        return c->norm != TG_REZERO && c->normtype == TG_LAYERNORM;
    return true;
}

/* The slots a block of this configuration holds, in named_parameters()
 * order; returns how many. */
static int block_layout(const tg_gpt_config *c, enum slot *out)
{
    const enum slot *order = c->norm == TG_REZERO ? rezero_layout : ln_layout;
    int size = c->norm == TG_REZERO ? PER_REZERO_BLOCK : PER_BLOCK, n = 0;
    for (int k = 0; k < size; k++)
        if (slot_present(c, order[k]))
            out[n++] = order[k];
    return n;
}

/* Parameters before the first block: wte, and wpe unless RoPE. */
static int first_block_param(const tg_gpt_config *c) { return c->pos == TG_POS_ROPE ? 1 : 2; }

int tg_gpt_mlp_hidden(const tg_gpt_config *c)
{
    if (!c)
        return 0;
    return c->mlp == TG_MLP_SWIGLU ? (8 * c->dim / 3 + 7) / 8 * 8 : 4 * c->dim;
}

float tg_deepnorm_alpha(int layers) { return layers < 1 ? 0.0f : powf(2.0f * (float)layers, 0.25f); }
float tg_deepnorm_beta(int layers) { return layers < 1 ? 0.0f : powf(8.0f * (float)layers, -0.25f); }

/* Elements of every parameter together (the GELU layout; SwiGLU's is the
 * same to within rounding), in double: a configuration whose
 * count passes 2^40 is refused before it could surface as an out-of-memory
 * (or any int product wrap). */
static double param_count(const tg_gpt_config *c)
{
    double d = c->dim, per_block = 12.0 * d * d + 13.0 * d;
    return ((double)c->vocab + (double)c->ctx + 2.0) * d + (double)c->layers * per_block;
}

tg_status tg_gpt_config_check(const tg_gpt_config *c, char *err, size_t errlen)
{
    const char *bad = NULL;
    if (!c)
        return tg_error(err, errlen, TG_ERR_ARG, "tg_gpt_config_check: cfg is NULL");
    if (c->vocab < 1 || c->vocab > TG_GPT_MAX_VOCAB) bad = "vocab must be in [1, TG_GPT_MAX_VOCAB]";
    else if (c->ctx < 1 || c->ctx > TG_GPT_MAX_CTX) bad = "ctx must be in [1, TG_GPT_MAX_CTX]";
    else if (c->layers < 1 || c->layers > TG_GPT_MAX_LAYERS) bad = "layers must be in [1, TG_GPT_MAX_LAYERS]";
    else if (c->dim < 1 || c->dim > TG_GPT_MAX_DIM) bad = "dim must be in [1, TG_GPT_MAX_DIM]";
    else if (c->heads < 1 || c->dim % c->heads) bad = "heads must divide dim";
    else if (param_count(c) > 0x1p40) bad = "the model is too large (more than 2^40 parameters)";
    else if ((unsigned)c->norm > (unsigned)TG_REZERO) bad = "norm must be TG_PRE_LN, TG_POST_LN, TG_DEEPNORM or TG_REZERO";
    else if (!isfinite(c->residual_scale) || c->residual_scale < 0) bad = "residual_scale must be finite and >= 0";
    else if (c->norm == TG_REZERO && c->residual_scale != 0 && c->residual_scale != 1)
        bad = "residual_scale must be 0 or 1 with TG_REZERO";
    else if ((unsigned)c->normtype > (unsigned)TG_RMSNORM) bad = "normtype must be TG_LAYERNORM or TG_RMSNORM";
    else if ((unsigned)c->mlp > (unsigned)TG_MLP_SWIGLU) bad = "mlp must be TG_MLP_GELU or TG_MLP_SWIGLU";
    else if ((unsigned)c->pos > (unsigned)TG_POS_ROPE) bad = "pos must be TG_POS_LEARNED or TG_POS_ROPE";
    else if (c->pos == TG_POS_ROPE && (c->dim / c->heads) % 2) bad = "RoPE needs an even head size (dim / heads)";
    else if (!(c->dropout >= 0.0f && c->dropout < 1.0f)) bad = "dropout must be in [0, 1)";
    if (bad)
        tg_error(err, errlen, TG_ERR_ARG, "tg_gpt_new: %s (vocab %d, ctx %d, layers %d, heads %d, dim %d)", bad,
                 c->vocab, c->ctx, c->layers, c->heads, c->dim);
    return bad ? TG_ERR_ARG : TG_OK;
}

/* Parameters after the blocks: ln_f's weight, and its bias unless RMSNorm. */
static int tail_params(const tg_gpt_config *c) { return c->normtype == TG_RMSNORM ? 1 : 2; }

int tg_gpt_config_params(const tg_gpt_config *c)
{
    enum slot layout[N_SLOTS];
    if (tg_gpt_config_check(c, NULL, 0) != TG_OK)
        return -1;
    return first_block_param(c) + block_layout(c, layout) * c->layers + tail_params(c);
}

bool tg_gpt_config_param(const tg_gpt_config *c, int i, char *name, size_t len, int *ndim, int *shape)
{
    int n = tg_gpt_config_params(c), first = c ? first_block_param(c) : 0, rows, cols;
    if (n < 0 || i < 0 || i >= n || !name || !ndim || !shape)
        return false;
    int d = c->dim, h = tg_gpt_mlp_hidden(c), fc = c->mlp == TG_MLP_SWIGLU ? 2 * h : h;
    if (i < first || i >= n - tail_params(c)) {
        static const char *const ends[4] = {"transformer.wte.weight", "transformer.wpe.weight",
                                            "transformer.ln_f.weight", "transformer.ln_f.bias"};
        int e = i < first ? i : 2 + i - (n - tail_params(c));
        snprintf(name, len, "%s", ends[e]);
        rows = e == 0 ? c->vocab : e == 1 ? c->ctx : d;
        cols = e < 2 ? d : 0;
    } else {
        const int shapes[N_SLOTS][2] = {{d, 0}, {d, 0}, {3 * d, d}, {3 * d, 0}, {d, d}, {d, 0}, {d, 0},
                                        {d, 0}, {fc, d}, {fc, 0}, {d, h}, {d, 0}, {1, 0}, {1, 0}};
        enum slot layout[N_SLOTS];
        int size = block_layout(c, layout), l = (i - first) / size;
        enum slot sl = layout[(i - first) % size];
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
    m->params = calloc((size_t)PER_BLOCK * (size_t)cfg->layers + 4, sizeof *m->params);
    m->positions = malloc((size_t)cfg->ctx * sizeof *m->positions);
    if (!m->params || !m->positions || !alloc_params(m))
        goto oom;
    for (int i = 0; i < cfg->ctx; i++)
        m->positions[i] = i;
    init_params(m, seed);
    return m;
oom:
    tg_gpt_free(m);
    tg_error(err, errlen, TG_ERR_NOMEM, "tg_gpt_new: out of memory");
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

static float dropout_p(const tg_gpt *m) { return m->dropout_rng ? m->cfg.dropout : 0.0f; }

static tg_tensor *attn(tg_tape *t, const tg_gpt *m, tg_tensor *const *p, tg_tensor *x)
{
    tg_tensor *qkv = tg_linear(t, x, p[ATTN_W], p[ATTN_B]);
    if (m->cfg.pos == TG_POS_ROPE)
        qkv = tg_rope(t, qkv, m->cfg.heads, TG_ROPE_BASE);
    tg_tensor *y = tg_attention_dropout(t, qkv, m->cfg.heads, dropout_p(m), m->dropout_rng);
    return tg_linear(t, y, p[APROJ_W], p[APROJ_B]);
}

static tg_tensor *mlp(tg_tape *t, const tg_gpt *m, tg_tensor *const *p, tg_tensor *x)
{
    tg_tensor *h = tg_linear(t, x, p[FC_W], p[FC_B]);
    h = m->cfg.mlp == TG_MLP_SWIGLU ? tg_swiglu(t, h) : tg_gelu(t, h);
    return tg_linear(t, h, p[MPROJ_W], p[MPROJ_B]);
}

static tg_tensor *norm(tg_tape *t, const tg_gpt *m, tg_tensor *x, tg_tensor *w, tg_tensor *b)
{
    return m->cfg.normtype == TG_RMSNORM ? tg_rmsnorm(t, x, w, LN_EPS) : tg_layernorm(t, x, w, b, LN_EPS);
}

/* A branch's output as the residual add sees it: dropped out while
 * training. */
static tg_tensor *branch(tg_tape *t, const tg_gpt *m, tg_tensor *h)
{
    return dropout_p(m) > 0.0f ? tg_dropout(t, h, dropout_p(m), m->dropout_rng) : h;
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
    enum slot layout[N_SLOTS];
    int size = block_layout(&m->cfg, layout);
    tg_tensor *p[N_SLOTS] = {0};
    for (int k = 0; k < size; k++)
        p[layout[k]] = m->params[first_block_param(&m->cfg) + size * layer + k];
    float a = m->cfg.residual_scale;
    if (m->cfg.norm == TG_PRE_LN) {
        tg_tensor *h = branch(t, m, attn(t, m, p, norm(t, m, x, p[LN1_W], p[LN1_B])));
        x = name_at(tg_residual_scaled(t, x, h, a), layer, "resid_attn");
        h = branch(t, m, mlp(t, m, p, norm(t, m, x, p[LN2_W], p[LN2_B])));
        return name_at(tg_residual_scaled(t, x, h, a), layer, "resid_mlp");
    }
    if (m->cfg.norm == TG_REZERO) {
        x = name_at(tg_residual_gated(t, x, branch(t, m, attn(t, m, p, x)), p[GATE_ATTN]), layer, "resid_attn");
        return name_at(tg_residual_gated(t, x, branch(t, m, mlp(t, m, p, x)), p[GATE_MLP]), layer, "resid_mlp");
    }
    x = name_at(tg_residual_scaled(t, x, branch(t, m, attn(t, m, p, x)), a), layer, "resid_attn");
    x = name_at(norm(t, m, x, p[LN1_W], p[LN1_B]), layer, "norm_attn");
    x = name_at(tg_residual_scaled(t, x, branch(t, m, mlp(t, m, p, x)), a), layer, "resid_mlp");
    return name_at(norm(t, m, x, p[LN2_W], p[LN2_B]), layer, "norm_mlp");
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
    tg_tensor *x = tg_embedding(t, m->params[0], ids, 2, (int[]){batch, len});
    if (m->cfg.pos == TG_POS_LEARNED)
        x = tg_add(t, x, tg_embedding(t, m->params[1], m->positions, 1, (int[]){len}));
    x = tg_name(branch(t, m, x), "emb");
    for (int l = 0; l < m->cfg.layers; l++)
        x = block(t, m, l, x);
    bool rms = m->cfg.normtype == TG_RMSNORM;
    tg_tensor *const *f = m->params + m->n_params - (rms ? 1 : 2);
    tg_tensor *y = tg_name(norm(t, m, x, f[0], rms ? NULL : f[1]), "ln_f");
    return tg_name(tg_matmul(t, y, m->params[0], false, true), "logits");
}

tg_tensor *tg_gpt_loss(tg_tape *t, const tg_gpt *m, const int *ids, const int *targets, int batch, int len)
{
    return tg_cross_entropy(t, tg_gpt_logits(t, m, ids, batch, len), targets);
}
