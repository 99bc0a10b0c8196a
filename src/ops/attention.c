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
 * With dropout p on the weights, y_t = sum_s P'[t,s] v_s where P' = P * M
 * and M[t,s] is 0 (dropped) or 1/(1-p), drawn when the op is recorded. Then
 * dv_s uses P', dP = dP' * M, and since P dP = P' dP' the softmax backward
 * becomes dS = P' dP' - P sum_s P' dP'. P' is kept beside P.
 *
 * Heads are read and written in place through strides; P [B, heads, T, T] is
 * kept from the forward, followed by (T + D)*tp floats of scratch per
 * (batch, head), tp = T rounded up to PAD: rows of scores (the forward uses
 * ROWS of them, the backward all T for dS) and K (forward) or V (backward)
 * transposed, so the scores of row t, q_t . k_s for every s, come from D
 * vector multiply-adds across s instead of t+1 short dot products, each
 * ending in a horizontal sum.
 * Each (batch, head) pair touches its own columns and scratch, so the pairs
 * are the chunks handed to threads, with no races and no reductions across
 * them: the result does not depend on the thread count. */
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
 * scalar remainder (for T = 64 the remainders were most of the work).
 * ROWS rows are processed at once, each with a PAD-wide accumulator: with
 * AVX-512 that is one of 32 registers per row, so 8 rows fit with room to
 * spare; with AVX2 it is two of 16, and 4 rows already take half. */
#ifdef __AVX512F__
enum { PAD = 16, ROWS = 8 };
#else
enum { PAD = 16, ROWS = 4 };
#endif

/* PAD floats, one AVX-512 register (two AVX2 ones). */
typedef float vf __attribute__((vector_size(PAD * sizeof(float))));

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

static float *pair_scratch(const tg_node *n, const attn_dims *a, int bh)
{
    size_t pairs = (size_t)a->b * a->heads, tt = (size_t)a->t;
    return (float *)n->aux + pairs * tt * tt + (size_t)bh * (size_t)(a->t + a->d) * a->tp;
}

/* P' of every pair (the dropout case), after the scratch of the last. */
static float *dropped_probs(const tg_node *n, const attn_dims *a)
{
    return pair_scratch(n, a, a->b * a->heads);
}

tg_tensor *tg_attention(tg_tape *t, tg_tensor *qkv, int heads)
{
    return tg_attention_dropout(t, qkv, heads, 0.0f, NULL);
}

/* M over the causal triangle of every (batch, head) pair in order, row by
 * row: an element is kept when its uniform draw is at least p. */
static void draw_mask(float *m, size_t pairs, int len, float p, tg_rng *rng)
{
    float keep = 1.0f / (1.0f - p);
    for (size_t bh = 0; bh < pairs; bh++)
        for (int t = 0; t < len; t++) {
            float *row = m + (bh * (size_t)len + (size_t)t) * (size_t)len;
            for (int s = 0; s < len; s++)
                row[s] = s <= t && tg_rng_uniform(rng) >= p ? keep : 0.0f;
        }
}

tg_tensor *tg_attention_dropout(tg_tape *t, tg_tensor *qkv, int heads, float p, tg_rng *rng)
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
    if (!(p >= 0.0f && p < 1.0f)) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_attention: dropout %g is outside [0, 1)", (double)p);
        return NULL;
    }
    bool drop = p > 0.0f && rng;
    tg_node n = {.op = TG_OP_ATTENTION, .n_in = 1, .in = {qkv}, .i = {heads, drop}};
    if (!tg_node_output(t, &n, 3, (int[]){qkv->shape[0], qkv->shape[1], c}))
        return NULL;
    size_t pairs = (size_t)qkv->shape[0] * heads, tt = (size_t)qkv->shape[1], d = (size_t)(c / heads);
    size_t tp = padded(qkv->shape[1]), masked = drop ? pairs * tt * tt : 0;
    if (!(n.aux = tg_arena_alloc(t, (pairs * (tt * tt + (tt + d) * tp) + masked) * sizeof(float))))
        return NULL;
    attn_dims a = dims_of(&n);
    if (drop)
        draw_mask(dropped_probs(&n, &a), pairs, (int)tt, p, rng);
    return tg_tape_record(t, &n);
}

/* Column block `col` (0 q, 1 k, 2 v) of one head, transposed and padded
 * with zeros: out[j*tp + s]. */
static void transpose_head(const attn_dims *a, const float *base, int col, float *out)
{
    const int stride = 3 * a->c;
    /* The head's rows were just written by the projection, often on another
     * core: ask for all of them at once, or the strided stores below stall
     * the loads behind them one cache miss at a time. */
    for (int s = 0; s < a->t; s++)
        for (int j = 0; j < a->d; j += 16)
            __builtin_prefetch(base + (size_t)s * stride + (size_t)col * a->c + j);
    for (int j = 0; j < a->d; j++)
        memset(out + (size_t)j * a->tp + a->t, 0, (size_t)(a->tp - a->t) * sizeof(float));
    for (int s = 0; s < a->t; s++) {
        const float *row = base + (size_t)s * stride + (size_t)col * a->c;
        for (int j = 0; j < a->d; j++)
            out[(size_t)j * a->tp + s] = row[j];
    }
}

/* out[i*tp + s] = scale * sum_j x_i[j] mt[j*tp + s] for rows x_i = x + i*ldx,
 * i < r <= ROWS, and s < n (a multiple of PAD): rows against a transposed
 * head. ROWS rows at a time, so each load of mt feeds ROWS multiply-adds
 * into accumulators that stay in registers; rows past r repeat the last
 * one and are not stored. */
static void rows_times(const attn_dims *a, const float *x, size_t ldx, int r, const float *mt, float *out, int n,
                       float scale)
{
    const float *xi[ROWS];
    for (int i = 0; i < ROWS; i++)
        xi[i] = x + (size_t)(i < r ? i : r - 1) * ldx;
    for (int s = 0; s < n; s += PAD) {
        vf acc[ROWS] = {{0}};
        for (int j = 0; j < a->d; j++) {
            vf kv;
            memcpy(&kv, mt + (size_t)j * a->tp + s, sizeof kv);
            for (int i = 0; i < ROWS; i++)
                acc[i] += ((vf){0} + scale * xi[i][j]) * kv;
        }
        for (int i = 0; i < r; i++)
            memcpy(out + (size_t)i * a->tp + s, &acc[i], sizeof acc[i]);
    }
}

static float row_max(const float *x, int n)
{
    float m = x[0];
    for (int s = 1; s < n; s++)
        m = x[s] > m ? x[s] : m;
    return m;
}

/* out_i[j] += sum_{s<n} w[i*wi + s*ws] rows[s*ld + j] for i < r <= ROWS and
 * j < d: ROWS weighted sums of the same rows at once, so each row load
 * feeds ROWS multiply-adds into accumulators that stay in registers (one
 * sum at a time was bound by the loads). Outputs past r repeat the last
 * weights and are not stored. */
static void combine(float *out, size_t ldo, int r, const float *w, size_t wi, size_t ws, const float *rows,
                    size_t ld, int n, int d)
{
    size_t wo[ROWS];
    for (int i = 0; i < ROWS; i++)
        wo[i] = (size_t)(i < r ? i : r - 1) * wi;
    int j = 0;
    for (; j + PAD <= d; j += PAD) {
        vf acc[ROWS] = {{0}}, x, o;
        for (int s = 0; s < n; s++) {
            const float *wsn = w + (size_t)s * ws;
            memcpy(&x, rows + (size_t)s * ld + j, sizeof x);
            for (int i = 0; i < ROWS; i++)
                acc[i] += ((vf){0} + wsn[wo[i]]) * x;
        }
        for (int i = 0; i < r; i++) {
            memcpy(&o, out + (size_t)i * ldo + j, sizeof o);
            o += acc[i];
            memcpy(out + (size_t)i * ldo + j, &o, sizeof o);
        }
    }
    for (; j < d; j++)
        for (int i = 0; i < r; i++) {
            float acc = 0.0f;
            for (int s = 0; s < n; s++)
                acc += w[wo[i] + (size_t)s * ws] * rows[(size_t)s * ld + j];
            out[(size_t)i * ldo + j] += acc;
        }
}

/* Row t of P from its scaled scores in row, zero past the causal limit so
 * that blocks of rows can be combined over a common length. */
static void softmax_row(const attn_dims *a, float *row, float *p, int t)
{
    const int n = padded(t + 1);
    float m = row_max(row, t + 1);
    for (int s = 0; s < n; s++)
        row[s] = tg_vexp(row[s] - m);
    float inv = 1.0f / tg_vsum(row, t + 1);
    for (int s = 0; s <= t; s++)
        p[s] = row[s] * inv;
    for (int s = t + 1; s < a->t; s++)
        p[s] = 0.0f;
}

/* One (batch, head) pair per chunk, or all of them in one when they are too
 * small to be worth handing out. */
static long pair_chunks(const attn_dims *a)
{
    return (long)a->t * a->t * a->c > 16384 ? (long)a->b * a->heads : 1;
}

static void pair_range(const attn_dims *a, long chunk, int *first, int *end)
{
    bool all = pair_chunks(a) == 1;
    *first = all ? 0 : (int)chunk;
    *end = all ? a->b * a->heads : (int)chunk + 1;
}

static void forward_chunk(void *ctx, long chunk)
{
    tg_node *n = ctx;
    attn_dims a = dims_of(n);
    float *probs = n->aux;
    int first, end;
    pair_range(&a, chunk, &first, &end);
    for (int bh = first; bh < end; bh++) {
        int b = bh / a.heads, h = bh % a.heads;
        const float *base = n->in[0]->data + (size_t)b * a.t * 3 * a.c + (size_t)h * a.d;
        float *p = probs + (size_t)bh * a.t * a.t, *rows = pair_scratch(n, &a, bh), *kt = rows + (size_t)a.t * a.tp;
        float *pd = n->i[1] ? dropped_probs(n, &a) + (size_t)bh * a.t * a.t : NULL;
        transpose_head(&a, base, 1, kt);
        float *y = n->out->data + (size_t)b * a.t * a.c + (size_t)h * a.d;
        for (int t0 = 0; t0 < a.t; t0 += ROWS) {
            int r = a.t - t0 < ROWS ? a.t - t0 : ROWS;
            rows_times(&a, base + (size_t)t0 * 3 * a.c, (size_t)3 * a.c, r, kt, rows, padded(t0 + r),
                       1.0f / sqrtf((float)a.d));
            for (int i = 0; i < r; i++) {
                softmax_row(&a, rows + (size_t)i * a.tp, p + (size_t)(t0 + i) * a.t, t0 + i);
                if (pd)
                    for (int s = 0; s <= t0 + i; s++)
                        pd[(size_t)(t0 + i) * a.t + s] *= p[(size_t)(t0 + i) * a.t + s];
            }
            for (int i = 0; i < r; i++)
                memset(y + (size_t)(t0 + i) * a.c, 0, (size_t)a.d * sizeof(float));
            combine(y + (size_t)t0 * a.c, (size_t)a.c, r, (pd ? pd : p) + (size_t)t0 * a.t, (size_t)a.t, 1,
                    base + 2 * a.c, (size_t)3 * a.c, t0 + r, a.d);
        }
    }
}

void tg_attention_forward(tg_node *n)
{
    attn_dims a = dims_of(n);
    tg_parallel_for(pair_chunks(&a), forward_chunk, n);
}

/* Row t of dS = scale * P * (dP - rowsum(P dP)) in place of its dP, zero
 * past the causal limit (where rows_times left dy_t . v_s). */
static void ds_row(const attn_dims *a, const float *p, const float *pd, float *ds, int t)
{
    const float scale = 1.0f / sqrtf((float)a->d);
    if (pd) {
        float dot = tg_vdot(pd, ds, t + 1);
        for (int s = 0; s <= t; s++)
            ds[s] = scale * (pd[s] * ds[s] - p[s] * dot);
    } else {
        float dot = tg_vdot(p, ds, t + 1);
        for (int s = 0; s <= t; s++)
            ds[s] = scale * p[s] * (ds[s] - dot);
    }
    for (int s = t + 1; s < a->t; s++)
        ds[s] = 0.0f;
}

/* One (batch, head), ROWS rows at a time: dP then dS, then dq_t = sum_s
 * dS[t,s] k_s; and ROWS columns at a time dk_s = sum_{t>=s} dS[t,s] q_t and
 * dv_s = sum_{t>=s} P[t,s] dy_t. The zeros above the diagonals of P and dS
 * let a block run over its longest row or column. */
static void backward_pair(const attn_dims *a, const float *base, float *dbase, const float *p, const float *pd,
                          const float *dy, float *ds, float *vt)
{
    const size_t stride = 3 * (size_t)a->c;
    transpose_head(a, base, 2, vt);
    for (int t0 = 0; t0 < a->t; t0 += ROWS) {
        int r = a->t - t0 < ROWS ? a->t - t0 : ROWS;
        rows_times(a, dy + (size_t)t0 * a->c, (size_t)a->c, r, vt, ds + (size_t)t0 * a->tp, padded(t0 + r), 1.0f);
        for (int t = t0; t < t0 + r; t++)
            ds_row(a, p + (size_t)t * a->t, pd ? pd + (size_t)t * a->t : NULL, ds + (size_t)t * a->tp, t);
        combine(dbase + t0 * stride, stride, r, ds + (size_t)t0 * a->tp, (size_t)a->tp, 1, base + a->c, stride,
                t0 + r, a->d);
    }
    for (int s0 = 0; s0 < a->t; s0 += ROWS) {
        int r = a->t - s0 < ROWS ? a->t - s0 : ROWS, n = a->t - s0;
        combine(dbase + s0 * stride + a->c, stride, r, ds + (size_t)s0 * a->tp + s0, 1, (size_t)a->tp,
                base + s0 * stride, stride, n, a->d);
        combine(dbase + s0 * stride + 2 * a->c, stride, r, (pd ? pd : p) + (size_t)s0 * a->t + s0, 1, (size_t)a->t,
                dy + (size_t)s0 * a->c, (size_t)a->c, n, a->d);
    }
}

/* When nothing has written dqkv yet (see tg_grad_claim), each pair zeroes
 * its own columns of it first: in parallel, and just before they are used. */
typedef struct backward_job {
    tg_node *n;
    bool zero;
} backward_job;

static void backward_chunk(void *ctx, long chunk)
{
    const backward_job *j = ctx;
    tg_node *n = j->n;
    attn_dims a = dims_of(n);
    const float *probs = n->aux;
    int first, end;
    pair_range(&a, chunk, &first, &end);
    for (int bh = first; bh < end; bh++) {
        int b = bh / a.heads, h = bh % a.heads;
        size_t off = (size_t)b * a.t * 3 * a.c + (size_t)h * a.d;
        for (int t = 0; j->zero && t < a.t; t++)
            for (int part = 0; part < 3; part++) {
                float *cols = n->in[0]->grad + off + (size_t)t * 3 * a.c + (size_t)part * a.c;
                memset(cols, 0, (size_t)a.d * sizeof(float));
            }
        float *ds = pair_scratch(n, &a, bh);
        const float *pd = n->i[1] ? dropped_probs(n, &a) + (size_t)bh * a.t * a.t : NULL;
        backward_pair(&a, n->in[0]->data + off, n->in[0]->grad + off, probs + (size_t)bh * a.t * a.t, pd,
                      n->out->grad + (size_t)b * a.t * a.c + (size_t)h * a.d, ds, ds + (size_t)a.t * a.tp);
    }
}

void tg_attention_backward(tg_node *n)
{
    attn_dims a = dims_of(n);
    if (!n->in[0]->grad)
        return;
    backward_job j = {n, tg_grad_claim(n->in[0])};
    tg_parallel_for(pair_chunks(&a), backward_chunk, &j);
}
