/* Generation with a key/value cache, and sampling from logits.
 *
 * The generator runs the model of gpt.c without a tape, a batch of new
 * rows at positions p0 .. p0+n-1 of its window at a time:
 *
 *   x = wte[token] + wpe[position]       (RoPE: wte[token] alone)
 *   per block, the variant's order of norm, residual add and branch;
 *   RoPE turns each row's q and k by its position in the window;
 *   attention for the row at position t reads the keys and values of
 *   positions 0 .. t from the cache, where each row's own are stored first
 *   logits = ln_f(x) wte^T, for the last row only
 *
 * The products go through tg_gemm, whose result for an element does not
 * depend on how many rows the product has, the norms, GELU and SwiGLU
 * through the ops' own row kernels, and attention sums in the order of the attention op
 * (scaled q times k over the head, tg_vexp, tg_vsum, then p times v over the
 * positions), so the logits agree with tg_gpt_logits on the same window. */
#include "tapegrad_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/vmath.h"

#define LN_EPS 1e-5f

/* Messages go through the library's error record (tg_last_error too); the
 * callers return their own status. err may be NULL. */
#define set_err(err, errlen, ...) ((void)tg_error(err, errlen, TG_ERR_ARG, __VA_ARGS__))

/* One block's parameters; the LayerNorms are NULL for ReZero, the gates for
 * the others. */
typedef struct block_params {
    const tg_tensor *ln1_w, *ln1_b, *attn_w, *attn_b, *aproj_w, *aproj_b;
    const tg_tensor *ln2_w, *ln2_b, *fc_w, *fc_b, *mproj_w, *mproj_b;
    const tg_tensor *gate_attn, *gate_mlp;
} block_params;

struct tg_generator {
    const tg_gpt *m;
    int ctx, dim, vocab;
    int len;      /* tokens in the window */
    int cached;   /* of those, the ones whose keys and values are cached */
    int *window;  /* [ctx] */
    const tg_tensor *wte, *wpe, *lnf_w, *lnf_b;
    block_params *blocks;
    float *keys, *values;         /* [layers][ctx][dim] */
    float *x, *h, *qkv, *y;       /* rows: [ctx][dim], dim, 3 dim, dim */
    float *fc, *act;              /* rows: [ctx][c_fc rows], [ctx][hidden] */
    float *rope;                  /* [head size]: cos and sin of one position */
    float *scores;                /* [ctx] */
    float *logits;                /* [vocab] */
};

static const tg_tensor *find(const tg_gpt *m, int layer, const char *what, bool *ok, char *missing, size_t len)
{
    char name[96];
    if (layer >= 0)
        snprintf(name, sizeof name, "transformer.h.%d.%s", layer, what);
    else
        snprintf(name, sizeof name, "transformer.%s", what);
    const tg_tensor *p = tg_gpt_param(m, name);
    if (!p && *ok) {
        *ok = false;
        snprintf(missing, len, "%s", name);
    }
    return p;
}

/* Looks up every parameter the variant needs; false (naming the first
 * missing one) when the model lacks one. */
static bool bind_params(tg_generator *g, char *missing, size_t len)
{
    const tg_gpt *m = g->m;
    bool ok = true, ln = m->cfg.norm != TG_REZERO;
    bool rms = m->cfg.normtype == TG_RMSNORM;
    g->wte = find(m, -1, "wte.weight", &ok, missing, len);
    g->wpe = m->cfg.pos == TG_POS_LEARNED ? find(m, -1, "wpe.weight", &ok, missing, len) : NULL;
    g->lnf_w = find(m, -1, "ln_f.weight", &ok, missing, len);
    g->lnf_b = rms ? NULL : find(m, -1, "ln_f.bias", &ok, missing, len);
    for (int l = 0; l < m->cfg.layers; l++) {
        block_params *b = &g->blocks[l];
        b->attn_w = find(m, l, "attn.c_attn.weight", &ok, missing, len);
        b->attn_b = find(m, l, "attn.c_attn.bias", &ok, missing, len);
        b->aproj_w = find(m, l, "attn.c_proj.weight", &ok, missing, len);
        b->aproj_b = find(m, l, "attn.c_proj.bias", &ok, missing, len);
        b->fc_w = find(m, l, "mlp.c_fc.weight", &ok, missing, len);
        b->fc_b = find(m, l, "mlp.c_fc.bias", &ok, missing, len);
        b->mproj_w = find(m, l, "mlp.c_proj.weight", &ok, missing, len);
        b->mproj_b = find(m, l, "mlp.c_proj.bias", &ok, missing, len);
        if (ln) {
            b->ln1_w = find(m, l, "ln_1.weight", &ok, missing, len);
            b->ln1_b = rms ? NULL : find(m, l, "ln_1.bias", &ok, missing, len);
            b->ln2_w = find(m, l, "ln_2.weight", &ok, missing, len);
            b->ln2_b = rms ? NULL : find(m, l, "ln_2.bias", &ok, missing, len);
        } else {
            b->gate_attn = find(m, l, "rezero.attn", &ok, missing, len);
            b->gate_mlp = find(m, l, "rezero.mlp", &ok, missing, len);
        }
    }
    return ok;
}

/* st: TG_ERR_ARG for a bad model, TG_ERR_NOMEM when memory runs out. */
static tg_generator *generator_new(const tg_gpt *m, tg_status *st, char *err, size_t errlen)
{
    *st = TG_ERR_ARG;
    if (!m) {
        set_err(err, errlen, "tg_generator_new: the model is NULL");
        return NULL;
    }
    tg_generator *g = calloc(1, sizeof *g);
    if (!g)
        goto oom;
    g->m = m;
    g->ctx = m->cfg.ctx;
    g->dim = m->cfg.dim;
    g->vocab = m->cfg.vocab;
    size_t rows = (size_t)g->ctx, d = (size_t)g->dim, cache = (size_t)m->cfg.layers * rows * d;
    size_t hidden = (size_t)tg_gpt_mlp_hidden(&m->cfg), fc = m->cfg.mlp == TG_MLP_SWIGLU ? 2 * hidden : hidden;
    g->window = malloc(rows * sizeof *g->window);
    g->blocks = calloc((size_t)m->cfg.layers, sizeof *g->blocks);
    g->keys = malloc(cache * sizeof(float));
    g->values = malloc(cache * sizeof(float));
    g->x = malloc(rows * d * sizeof(float));
    g->h = malloc(rows * d * sizeof(float));
    g->qkv = malloc(3 * rows * d * sizeof(float));
    g->y = malloc(rows * d * sizeof(float));
    g->fc = malloc(rows * fc * sizeof(float));
    g->act = malloc(rows * hidden * sizeof(float));
    g->rope = malloc((d / (size_t)m->cfg.heads) * sizeof(float));
    g->scores = malloc(rows * sizeof(float));
    g->logits = malloc((size_t)g->vocab * sizeof(float));
    if (!g->window || !g->blocks || !g->keys || !g->values || !g->x || !g->h || !g->qkv || !g->y || !g->fc || !g->act ||
        !g->scores || !g->logits || !g->rope)
        goto oom;
    char missing[96];
    if (!bind_params(g, missing, sizeof missing)) {
        set_err(err, errlen, "tg_generator_new: the model has no parameter %s", missing);
        tg_generator_free(g);
        return NULL;
    }
    *st = TG_OK;
    return g;
oom:
    tg_generator_free(g);
    *st = TG_ERR_NOMEM;
    set_err(err, errlen, "tg_generator_new: out of memory");
    return NULL;
}

tg_generator *tg_generator_new(const tg_gpt *m, char *err, size_t errlen)
{
    tg_status st;
    return generator_new(m, &st, err, errlen);
}

void tg_generator_free(tg_generator *g)
{
    if (!g)
        return;
    free(g->window);
    free(g->blocks);
    free(g->keys);
    free(g->values);
    free(g->x);
    free(g->h);
    free(g->qkv);
    free(g->y);
    free(g->fc);
    free(g->act);
    free(g->scores);
    free(g->logits);
    free(g->rope);
    free(g);
}

void tg_generator_reset(tg_generator *g)
{
    if (g)
        g->len = g->cached = 0;
}

int tg_generator_length(const tg_generator *g)
{
    return g ? g->len : 0;
}

/* out[n][w->shape[0]] = in[n][w->shape[1]] w^T + b, as tg_linear. */
static void linear(const float *in, int n, const tg_tensor *w, const tg_tensor *b, float *out)
{
    int nout = w->shape[0], nin = w->shape[1];
    tg_gemm_bias(false, true, n, nout, nin, in, nin, w->data, nin, b->data, out, nout);
}

/* The model's norm (LayerNorm, or RMSNorm without b) on n rows. */
static void norm(const tg_generator *g, const float *in, int n, const tg_tensor *w, const tg_tensor *b, float *out)
{
    int c = g->dim;
    for (int r = 0; r < n; r++) {
        size_t off = (size_t)r * c;
        if (g->m->cfg.normtype == TG_RMSNORM)
            tg_rmsnorm_row(in + off, c, w->data, LN_EPS, out + off);
        else
            tg_layernorm_row(in + off, c, w->data, b->data, LN_EPS, out + off, NULL);
    }
}

/* RoPE on the q and k heads of the rows in g->qkv (positions p0 ..). */
static void rotate_rows(tg_generator *g, int p0, int n)
{
    int d = g->dim, heads = g->m->cfg.heads, hd = d / heads;
    for (int r = 0; r < n; r++) {
        tg_rope_table(hd, p0 + r, 1, TG_ROPE_BASE, g->rope);
        for (int h = 0; h < 2 * heads; h++)
            tg_rope_rotate(g->qkv + (size_t)r * 3 * d + (size_t)h * hd, hd, g->rope, false);
    }
}

/* One head of one row at position t: y = softmax_s(scale q.k_s) v_s over
 * s <= t, with the sums in the attention op's order. */
static void attend_head(const float *q, const float *keys, const float *values, int t, int hd, int stride,
                        float scale, float *scores, float *y)
{
    for (int s = 0; s <= t; s++) {
        const float *k = keys + (size_t)s * stride;
        float acc = 0.0f;
        for (int j = 0; j < hd; j++)
            acc += scale * q[j] * k[j];
        scores[s] = acc;
    }
    float mx = scores[0];
    for (int s = 1; s <= t; s++)
        mx = scores[s] > mx ? scores[s] : mx;
    for (int s = 0; s <= t; s++)
        scores[s] = tg_vexp(scores[s] - mx);
    float inv = 1.0f / tg_vsum(scores, t + 1);
    for (int s = 0; s <= t; s++)
        scores[s] *= inv;
    for (int j = 0; j < hd; j++)
        y[j] = 0.0f;
    for (int s = 0; s <= t; s++) {
        const float *v = values + (size_t)s * stride;
        for (int j = 0; j < hd; j++)
            y[j] += scores[s] * v[j];
    }
}

/* g->y = attention for the rows in g->qkv (positions p0 ..), after their
 * keys and values join layer l's cache. */
static void attention(tg_generator *g, int l, int p0, int n)
{
    int d = g->dim, heads = g->m->cfg.heads, hd = d / heads;
    float *keys = g->keys + (size_t)l * g->ctx * d, *values = g->values + (size_t)l * g->ctx * d;
    for (int r = 0; r < n; r++) {
        memcpy(keys + (size_t)(p0 + r) * d, g->qkv + (size_t)r * 3 * d + d, (size_t)d * sizeof(float));
        memcpy(values + (size_t)(p0 + r) * d, g->qkv + (size_t)r * 3 * d + 2 * d, (size_t)d * sizeof(float));
    }
    float scale = 1.0f / sqrtf((float)hd);
    for (int r = 0; r < n; r++)
        for (int h = 0; h < heads; h++)
            attend_head(g->qkv + (size_t)r * 3 * d + (size_t)h * hd, keys + (size_t)h * hd,
                        values + (size_t)h * hd, p0 + r, hd, d, scale, g->scores,
                        g->y + (size_t)r * d + (size_t)h * hd);
}

/* The branches: g->h = c_proj(attention(c_attn(in))), c_proj(act(c_fc(in)))
 * with act GELU or SwiGLU's gate. */
static void attn_branch(tg_generator *g, const block_params *b, int l, const float *in, int p0, int n)
{
    linear(in, n, b->attn_w, b->attn_b, g->qkv);
    if (g->m->cfg.pos == TG_POS_ROPE)
        rotate_rows(g, p0, n);
    attention(g, l, p0, n);
    linear(g->y, n, b->aproj_w, b->aproj_b, g->h);
}

static void mlp_branch(tg_generator *g, const block_params *b, const float *in, int n)
{
    int hidden = tg_gpt_mlp_hidden(&g->m->cfg);
    linear(in, n, b->fc_w, b->fc_b, g->fc);
    if (g->m->cfg.mlp == TG_MLP_SWIGLU)
        for (int r = 0; r < n; r++) {
            const float *row = g->fc + (size_t)r * 2 * hidden;
            tg_swiglu_row(row, row + hidden, g->act + (size_t)r * hidden, hidden);
        }
    else
        tg_gelu_span(g->fc, g->act, (long)n * hidden);
    linear(g->act, n, b->mproj_w, b->mproj_b, g->h);
}

/* x = a x + h (tg_residual_scaled) or x + gate h (tg_residual_gated). */
static void residual(float *x, const float *h, size_t size, float a, const tg_tensor *gate)
{
    if (gate) {
        float w = gate->data[0];
        for (size_t i = 0; i < size; i++)
            x[i] = x[i] + w * h[i];
    } else {
        for (size_t i = 0; i < size; i++)
            x[i] = a * x[i] + h[i];
    }
}

static void block(tg_generator *g, int l, int p0, int n)
{
    const block_params *b = &g->blocks[l];
    size_t size = (size_t)n * g->dim;
    float a = g->m->cfg.residual_scale;
    switch (g->m->cfg.norm) {
    case TG_PRE_LN:
        norm(g, g->x, n, b->ln1_w, b->ln1_b, g->y);
        attn_branch(g, b, l, g->y, p0, n);
        residual(g->x, g->h, size, a, NULL);
        norm(g, g->x, n, b->ln2_w, b->ln2_b, g->y);
        mlp_branch(g, b, g->y, n);
        residual(g->x, g->h, size, a, NULL);
        break;
    case TG_REZERO:
        attn_branch(g, b, l, g->x, p0, n);
        residual(g->x, g->h, size, a, b->gate_attn);
        mlp_branch(g, b, g->x, n);
        residual(g->x, g->h, size, a, b->gate_mlp);
        break;
    default: /* TG_POST_LN, TG_DEEPNORM: LN(a x + f(x)) */
        attn_branch(g, b, l, g->x, p0, n);
        residual(g->x, g->h, size, a, NULL);
        norm(g, g->x, n, b->ln1_w, b->ln1_b, g->x);
        mlp_branch(g, b, g->x, n);
        residual(g->x, g->h, size, a, NULL);
        norm(g, g->x, n, b->ln2_w, b->ln2_b, g->x);
    }
}

/* Runs the window's uncached rows and leaves the last one's logits. */
static const float *run_pending(tg_generator *g)
{
    int p0 = g->cached, n = g->len - p0, d = g->dim;
    for (int r = 0; r < n; r++) {
        const float *tok = g->wte->data + (size_t)g->window[p0 + r] * d;
        float *x = g->x + (size_t)r * d;
        for (int j = 0; j < d; j++)
            x[j] = g->wpe ? tok[j] + g->wpe->data[(size_t)(p0 + r) * d + j] : tok[j];
    }
    for (int l = 0; l < g->m->cfg.layers; l++)
        block(g, l, p0, n);
    float *last = g->x + (size_t)(n - 1) * d;
    norm(g, last, 1, g->lnf_w, g->lnf_b, g->y);
    tg_gemm(false, true, 1, g->vocab, d, 1.0f, g->y, d, g->wte->data, d, 0.0f, g->logits, g->vocab);
    g->cached = g->len;
    return g->logits;
}

/* Appends a token to the window, starting a new one (the last ctx/2 tokens
 * of the full window, uncached) when it is full. */
static void append(tg_generator *g, int token)
{
    if (g->len == g->ctx) {
        int keep = g->ctx / 2;
        memmove(g->window, g->window + g->ctx - keep, (size_t)keep * sizeof *g->window);
        g->len = keep;
        g->cached = 0;
    }
    g->window[g->len++] = token;
}

const float *tg_generator_feed(tg_generator *g, const int *tokens, int n, char *err, size_t errlen)
{
    if (!g || !tokens || n < 1) {
        set_err(err, errlen, "tg_generator_feed: %s", !g ? "the generator is NULL" : !tokens ? "tokens is NULL" :
                 "the number of tokens must be at least 1");
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= g->vocab) {
            set_err(err, errlen, "tg_generator_feed: token %d (at %d) is outside [0, %d)", tokens[i], i, g->vocab);
            return NULL;
        }
    for (int i = 0; i < n; i++)
        append(g, tokens[i]);
    return run_pending(g);
}

const float *tg_generator_push(tg_generator *g, int token, char *err, size_t errlen)
{
    if (!g) {
        set_err(err, errlen, "tg_generator_push: the generator is NULL");
        return NULL;
    }
    if (token < 0 || token >= g->vocab) {
        set_err(err, errlen, "tg_generator_push: token %d is outside [0, %d)", token, g->vocab);
        return NULL;
    }
    append(g, token);
    return run_pending(g);
}

/* ---- sampling ---- */

/* The k-th largest logit counting repeats (the value a descending sort puts
 * at index k-1), found without a copy: each pass takes the largest value
 * below the last one and counts its repeats. O(vocab) per distinct value. */
static float kth_largest(const float *logits, int vocab, int k)
{
    float below = INFINITY, v = -INFINITY;
    for (int seen = 0; seen < k;) {
        v = -INFINITY;
        for (int i = 0; i < vocab; i++)
            v = logits[i] < below && logits[i] > v ? logits[i] : v;
        if (v == -INFINITY)
            return v; /* the rest are -inf */
        for (int i = 0; i < vocab; i++)
            seen += logits[i] == v;
        below = v;
    }
    return v;
}

int tg_sample_logits(const float *logits, int vocab, float temperature, int top_k, tg_rng *r)
{
    if (!logits || !r || vocab < 1 || !(temperature > 0.0f) || !isfinite(temperature) || top_k < 0)
        return -1;
    double maxl = -INFINITY;
    for (int v = 0; v < vocab; v++) {
        if (isnan(logits[v]) || logits[v] == INFINITY)
            return -1;
        maxl = logits[v] > maxl ? logits[v] : maxl;
    }
    if (maxl == -INFINITY)
        return -1;
    float kth = top_k > 0 && top_k < vocab ? kth_largest(logits, vocab, top_k) : -INFINITY;
    /* The weights are computed twice, identically, rather than stored. */
    double total = 0.0;
    for (int v = 0; v < vocab; v++)
        total += logits[v] < kth ? 0.0 : exp((logits[v] - maxl) / temperature);
    double u = tg_rng_uniform(r) * total;
    int last = 0;
    for (int v = 0; v < vocab; v++) {
        double p = logits[v] < kth ? 0.0 : exp((logits[v] - maxl) / temperature);
        if (p > 0.0)
            last = v;
        if ((u -= p) < 0.0)
            return v;
    }
    return last; /* u ran past the total by rounding */
}

tg_status tg_gpt_generate(const tg_gpt *m, const int *prompt, int n_prompt, int n_new, float temperature,
                          int top_k, uint64_t seed, int *out, char *err, size_t errlen)
{
    const char *bad = !m ? "the model is NULL" : !prompt ? "prompt is NULL" : n_prompt < 1 ? "n_prompt must be at least 1"
                    : n_new < 0 ? "n_new must be >= 0" : !out && n_new > 0 ? "out is NULL"
                    : !(temperature > 0.0f) || !isfinite(temperature) ? "temperature must be finite and > 0"
                    : top_k < 0 ? "top_k must be >= 0 (0: all)" : NULL;
    if (bad) {
        set_err(err, errlen, "tg_gpt_generate: %s (n_prompt %d, n_new %d, temperature %g, top_k %d)", bad, n_prompt,
                n_new, (double)temperature, top_k);
        return TG_ERR_ARG;
    }
    tg_status st;
    tg_generator *g = generator_new(m, &st, err, errlen);
    if (!g)
        return st;
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    const float *logits = tg_generator_feed(g, prompt, n_prompt, err, errlen);
    for (int i = 0; logits && i < n_new; i++) {
        out[i] = tg_sample_logits(logits, m->cfg.vocab, temperature, top_k, &rng);
        if (out[i] < 0) {
            set_err(err, errlen, "tg_gpt_generate: the model gave a NaN or +inf logit at new token %d", i);
            st = TG_ERR_ARG;
            break;
        }
        if (i + 1 < n_new)
            logits = tg_generator_push(g, out[i], err, errlen);
    }
    if (!logits)
        st = TG_ERR_ARG;
    tg_generator_free(g);
    return st;
}
