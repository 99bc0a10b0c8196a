/* SwiGLU's gate on packed projections h [..., 2H] (the gate's H columns,
 * then the up projection's H, as a [2H, C] weight produces them):
 *
 *   y_j = silu(a_j) * b_j,   a = h[..., :H],  b = h[..., H:]
 *   silu(a) = a * sigmoid(a),  silu'(a) = sigmoid(a) (1 + a (1 - sigmoid(a)))
 *   da_j += dy_j * b_j * silu'(a_j);   db_j += dy_j * silu(a_j)
 *
 * One fused op, so the halves are read in place instead of copied out. The
 * sigmoid is 1 / (1 + exp(-a)) with vmath.h's exp, which vectorises and
 * saturates cleanly at either end. */
#include "tapegrad_internal.h"
#include "vmath.h"

tg_tensor *tg_swiglu(tg_tape *t, tg_tensor *h)
{
    if (!tg_tape_check_inputs(t, "tg_swiglu", &h, 1))
        return NULL;
    if (tg_cols(h) % 2) {
        char s[48];
        tg_tape_fail(t, TG_ERR_SHAPE, "tg_swiglu: the last dimension must be even (gate and up halves), got %s",
                     tg_shape_str(h, s, sizeof s));
        return NULL;
    }
    int shape[TG_MAX_DIMS];
    for (int i = 0; i < h->ndim; i++)
        shape[i] = h->shape[i];
    shape[h->ndim - 1] /= 2;
    tg_node n = {.op = TG_OP_SWIGLU, .n_in = 1, .in = {h}};
    return tg_tape_emit(t, &n, h->ndim, shape);
}

void tg_swiglu_row(const float *restrict a, const float *restrict b, float *restrict y, int half)
{
    for (int j = 0; j < half; j++)
        y[j] = a[j] / (1.0f + tg_vexp(-a[j])) * b[j];
}

static void backward_row(const float *restrict a, const float *restrict b, const float *restrict dy,
                         float *restrict da, float *restrict db, int half)
{
    for (int j = 0; j < half; j++) {
        float sg = 1.0f / (1.0f + tg_vexp(-a[j])), silu = a[j] * sg;
        da[j] += dy[j] * b[j] * sg * (1.0f + a[j] * (1.0f - sg));
        db[j] += dy[j] * silu;
    }
}

/* Chunks of rows, about 32768 outputs each, by shape alone. */
static long rows_per_chunk(const tg_node *n)
{
    long per = 32768 / tg_cols(n->out);
    return per > 0 ? per : 1;
}

static void forward_chunk(void *ctx, long i)
{
    const tg_node *n = ctx;
    const tg_tensor *h = n->in[0];
    int half = tg_cols(n->out);
    long rows = (long)tg_rows(h), per = rows_per_chunk(n);
    for (long r = i * per, end = tg_chunk_end(i, per, rows); r < end; r++) {
        const float *row = h->data + (size_t)r * 2 * half;
        tg_swiglu_row(row, row + half, n->out->data + (size_t)r * half, half);
    }
}

void tg_swiglu_forward(tg_node *n)
{
    tg_parallel_for(tg_chunks((long)tg_rows(n->in[0]), rows_per_chunk(n)), forward_chunk, n);
}

static void backward_chunk(void *ctx, long i)
{
    const tg_node *n = ctx;
    const tg_tensor *h = n->in[0];
    int half = tg_cols(n->out);
    long rows = (long)tg_rows(h), per = rows_per_chunk(n);
    for (long r = i * per, end = tg_chunk_end(i, per, rows); r < end; r++) {
        const float *row = h->data + (size_t)r * 2 * half;
        float *g = h->grad + (size_t)r * 2 * half;
        backward_row(row, row + half, n->out->grad + (size_t)r * half, g, g + half, half);
    }
}

void tg_swiglu_backward(tg_node *n)
{
    if (n->in[0]->grad)
        tg_parallel_for(tg_chunks((long)tg_rows(n->in[0]), rows_per_chunk(n)), backward_chunk, n);
}
