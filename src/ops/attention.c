/* Causal multi-head self-attention on packed projections qkv [B, T, 3C]
 * (q, k, v side by side, head h owning columns h*D .. h*D+D-1 of each, with
 * D = C / heads). For one batch entry and head, with scale = 1/sqrt(D):
 *
 *   S[t,s] = scale * q_t . k_s  (s <= t; later s masked out)
 *   P = softmax over s of S;    y_t = sum_s P[t,s] v_s
 *
 * Backward, with dy_t the gradient of y_t:
 *   dP[t,s] = dy_t . v_s;       dv_s += P[t,s] dy_t
 *   dS = P * (dP - sum_s P dP)  (the softmax backward)
 *   dq_t += scale * sum_s dS[t,s] k_s;   dk_s += scale * dS[t,s] q_t
 *
 * Heads are read and written in place through strides; P [B, heads, T, T] is
 * kept from the forward, followed by tp + D*tp floats of scratch per (batch,
 * head), tp = T rounded up to PAD. The scratch holds a row of scores and K
 * (forward) or V (backward) transposed, so the
 * scores of row t, q_t . k_s for every s, come from D vector multiply-adds
 * across s instead of t+1 short dot products, each ending in a horizontal sum.
 * Each (batch, head) pair touches its own columns and scratch, so the pairs
 * run in parallel with no races and no reductions across threads: the result
 * does not depend on the thread count. */
#include "tapegrad_internal.h"
#include "vmath.h"

#include <math.h>
#include <string.h>

typedef struct attn_dims {
    int b, t, c, heads, d;
    int tp; /* t rounded up to PAD: the row length of the transposed head */
} attn_dims;

/* Rows of scores are computed PAD at a time past the causal limit, into
 * zero-padded transposed heads, so the vector loops never fall back to a
 * scalar remainder (for T = 64 the remainders were most of the work). */
enum { PAD = 16 };

static int padded(int t)
{
    return (t + PAD - 1) / PAD * PAD;
}

static attn_dims dims_of(const tg_node *n)
{
    const tg_tensor *qkv = n->in[0];
    int heads = n->i[0], c = qkv->shape[2] / 3;
    return (attn_dims){qkv->shape[0], qkv->shape[1], c, heads, c / heads, padded(qkv->shape[1])};
}

tg_tensor *tg_attention(tg_tape *t, tg_tensor *qkv, int heads)
{
    if (!tg_tape_check_inputs(t, "tg_attention", &qkv, 1))
        return NULL;
    char s[48];
    if (qkv->ndim != 3 || qkv->shape[2] % 3) {
        tg_tape_fail(t, TG_ERR_SHAPE, "tg_attention: qkv must be [B,T,3C], got %s",
                     tg_shape_str(qkv, s, sizeof s));
        return NULL;
    }
    int c = qkv->shape[2] / 3;
    if (heads < 1 || c % heads) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_attention: %d heads do not divide C = %d", heads, c);
        return NULL;
    }
    tg_node n = {.op = TG_OP_ATTENTION, .n_in = 1, .in = {qkv}, .i = {heads}};
    n.out = tg_tape_output(t, 3, (int[]){qkv->shape[0], qkv->shape[1], c}, &qkv, 1);
    size_t pairs = (size_t)qkv->shape[0] * heads, tt = (size_t)qkv->shape[1], d = (size_t)(c / heads);
    size_t tp = padded(qkv->shape[1]);
    if (!(n.aux = tg_arena_alloc(t, pairs * (tt * tt + tp + d * tp) * sizeof(float))))
        return NULL;
    return tg_tape_record(t, &n);
}

/* y += a x. restrict spares the compiler a run-time overlap check on every
 * call, which for rows of D = 32 floats cost more than the arithmetic. */
static inline void axpy(float *restrict y, const float *restrict x, float a, int n)
{
    for (int j = 0; j < n; j++)
        y[j] += a * x[j];
}

/* Column block `col` (0 q, 1 k, 2 v) of one head, transposed and padded
 * with zeros: out[j*tp + s]. */
static void transpose_head(const attn_dims *a, const float *base, int col, float *out)
{
    const int stride = 3 * a->c;
    for (int j = 0; j < a->d; j++)
        memset(out + (size_t)j * a->tp + a->t, 0, (size_t)(a->tp - a->t) * sizeof(float));
    for (int s = 0; s < a->t; s++) {
        const float *row = base + (size_t)s * stride + (size_t)col * a->c;
        for (int j = 0; j < a->d; j++)
            out[(size_t)j * a->tp + s] = row[j];
    }
}

/* out[s] = scale * sum_j x[j] * mt[j*tp + s] for s < n: a row against a
 * transposed head. */
static void row_times(const attn_dims *a, const float *x, const float *mt, float *out, int n, float scale)
{
    memset(out, 0, (size_t)n * sizeof(float));
    for (int j = 0; j < a->d; j++)
        axpy(out, mt + (size_t)j * a->tp, scale * x[j], n);
}

static float row_max(const float *x, int n)
{
    float m = x[0];
    for (int s = 1; s < n; s++)
        m = x[s] > m ? x[s] : m;
    return m;
}

/* Row t of P and y for one (batch, head); kt is K transposed, row scratch
 * of tp floats. */
static void forward_row(const attn_dims *a, const float *base, const float *kt, float *row, float *p, float *y,
                        int t)
{
    const int stride = 3 * a->c, n = padded(t + 1);
    row_times(a, base + (size_t)t * stride, kt, row, n, 1.0f / sqrtf((float)a->d));
    float m = row_max(row, t + 1);
    for (int s = 0; s < n; s++)
        row[s] = tg_exp(row[s] - m);
    float inv = 1.0f / tg_vsum(row, t + 1);
    memset(y, 0, (size_t)a->d * sizeof(float));
    for (int s = 0; s <= t; s++) {
        p[s] = row[s] * inv;
        axpy(y, base + (size_t)s * stride + 2 * a->c, p[s], a->d);
    }
    for (int s = t + 1; s < a->t; s++)
        p[s] = 0.0f;
}

static float *pair_scratch(const tg_node *n, const attn_dims *a, int bh)
{
    size_t pairs = (size_t)a->b * a->heads, tt = (size_t)a->t;
    return (float *)n->aux + pairs * tt * tt + (size_t)bh * ((size_t)a->tp + (size_t)a->d * a->tp);
}

void tg_attention_forward(tg_node *n)
{
    attn_dims a = dims_of(n);
    float *probs = n->aux;
    int pairs = a.b * a.heads;
#pragma omp parallel for schedule(static) if (pairs > 1 && (long)a.t * a.t * a.c > 16384)
    for (int bh = 0; bh < pairs; bh++) {
        int b = bh / a.heads, h = bh % a.heads;
        const float *base = n->in[0]->data + (size_t)b * a.t * 3 * a.c + (size_t)h * a.d;
        float *p = probs + (size_t)bh * a.t * a.t, *row = pair_scratch(n, &a, bh), *kt = row + a.tp;
        transpose_head(&a, base, 1, kt);
        for (int t = 0; t < a.t; t++)
            forward_row(&a, base, kt, row, p + (size_t)t * a.t,
                        n->out->data + ((size_t)b * a.t + t) * a.c + (size_t)h * a.d, t);
    }
}

/* Row t's share of the backward for one (batch, head); vt is V transposed,
 * dp scratch. */
static void backward_row(const attn_dims *a, const float *base, float *dbase, const float *vt, const float *p,
                         const float *dy, float *dp, int t)
{
    const int stride = 3 * a->c;
    const float scale = 1.0f / sqrtf((float)a->d);
    row_times(a, dy, vt, dp, padded(t + 1), 1.0f);
    float dot = tg_vdot(p, dp, t + 1);
    for (int s = 0; s <= t; s++)
        axpy(dbase + (size_t)s * stride + 2 * a->c, dy, p[s], a->d);
    const float *q = base + (size_t)t * stride;
    float *dq = dbase + (size_t)t * stride;
    for (int s = 0; s <= t; s++) {
        float ds = scale * p[s] * (dp[s] - dot);
        axpy(dq, base + (size_t)s * stride + a->c, ds, a->d);
        axpy(dbase + (size_t)s * stride + a->c, q, ds, a->d);
    }
}

void tg_attention_backward(tg_node *n)
{
    if (!n->in[0]->grad)
        return;
    attn_dims a = dims_of(n);
    const float *probs = n->aux;
    int pairs = a.b * a.heads;
#pragma omp parallel for schedule(static) if (pairs > 1 && (long)a.t * a.t * a.c > 16384)
    for (int bh = 0; bh < pairs; bh++) {
        int b = bh / a.heads, h = bh % a.heads;
        size_t off = (size_t)b * a.t * 3 * a.c + (size_t)h * a.d;
        float *dp = pair_scratch(n, &a, bh), *vt = dp + a.tp;
        transpose_head(&a, n->in[0]->data + off, 2, vt);
        for (int t = 0; t < a.t; t++)
            backward_row(&a, n->in[0]->data + off, n->in[0]->grad + off, vt,
                         probs + ((size_t)bh * a.t + t) * a.t,
                         n->out->grad + ((size_t)b * a.t + t) * a.c + (size_t)h * a.d, dp, t);
    }
}
