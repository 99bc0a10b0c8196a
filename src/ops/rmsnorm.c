/* RMSNorm over the last dimension (length N) with a gain g [N]:
 *
 *   r = 1 / sqrt(mean(x^2) + eps),  xhat = x r,  y = xhat * g
 *
 * Backward, the counterpart of LayerNorm's closed form without the mean
 * term. With u = dy * g, y_i depends on x_j through x_i and through r, and
 * dr/dx_j = -r^3 x_j / N, so
 *   dx_j = sum_i u_i (delta_ij r - x_i x_j r^3 / N)
 *        = r (u_j - xhat_j mean(u * xhat))
 *   dg   = sum over rows of dy * xhat
 * Unlike LayerNorm's, this dx is not orthogonal to the all-ones vector:
 * only to xhat scaled by eps (see tg_rmsnorm_jacobian).
 *
 * mean(x^2) is summed in double: for |x| near the float range (1e30) x^2
 * overflows float but not double, so r stays finite and y representable.
 * r is cached per row for the backward. Rows are cut into chunks of
 * CHUNK_ROWS by shape alone; dg is summed per chunk and the chunks added in
 * order, so the result does not depend on the thread count. */
#include "tapegrad_internal.h"

#include <math.h>

enum { CHUNK_ROWS = 64 };

typedef struct rms_aux {
    float *rstd;    /* per row */
    float *partial; /* dg per chunk [chunks, N] */
    long chunks;
} rms_aux;

tg_tensor *tg_rmsnorm(tg_tape *t, tg_tensor *x, tg_tensor *g, float eps)
{
    tg_tensor *in[2] = {x, g};
    if (!tg_tape_check_inputs(t, "tg_rmsnorm", in, 2))
        return NULL;
    char sx[48], sg[48];
    if (g->ndim != 1 || g->shape[0] != tg_cols(x)) {
        tg_tape_fail(t, TG_ERR_SHAPE, "tg_rmsnorm: gain must be [%d] for x %s, got %s", tg_cols(x),
                     tg_shape_str(x, sx, sizeof sx), tg_shape_str(g, sg, sizeof sg));
        return NULL;
    }
    if (!(eps >= 0.0f) || !isfinite(eps)) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_rmsnorm: eps must be finite and >= 0, got %g", (double)eps);
        return NULL;
    }
    tg_node n = {.op = TG_OP_RMSNORM, .n_in = 2, .in = {x, g}, .f = {eps}};
    if (!tg_node_output(t, &n, x->ndim, x->shape))
        return NULL;
    rms_aux *aux = tg_arena_alloc(t, sizeof *aux);
    if (!aux)
        return NULL;
    aux->chunks = tg_chunks((long)tg_rows(x), CHUNK_ROWS);
    aux->rstd = tg_arena_alloc(t, tg_rows(x) * sizeof(float));
    aux->partial = tg_arena_alloc(t, (size_t)aux->chunks * (size_t)tg_cols(x) * sizeof(float));
    if (!aux->rstd || !aux->partial)
        return NULL;
    n.aux = aux;
    return tg_tape_record(t, &n);
}

static double sum_squares(const float *x, int c)
{
    double acc[8] = {0};
    int j = 0;
    for (; j + 8 <= c; j += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += (double)x[j + l] * x[j + l];
    double s = 0.0;
    for (; j < c; j++)
        s += (double)x[j] * x[j];
    for (int l = 0; l < 8; l++)
        s += acc[l];
    return s;
}

double tg_rmsnorm_row(const float *x, int c, const float *g, float eps, float *y)
{
    double rstd = 1.0 / sqrt(sum_squares(x, c) / c + (double)eps);
    for (int j = 0; j < c; j++)
        y[j] = (float)(x[j] * rstd) * g[j];
    return rstd;
}

static void chunk_rows(const tg_node *n, long ch, long *r0, long *r1)
{
    *r0 = ch * CHUNK_ROWS;
    *r1 = tg_chunk_end(ch, CHUNK_ROWS, (long)tg_rows(n->out));
}

static void forward_chunk(void *ctx, long ch)
{
    tg_node *n = ctx;
    rms_aux *aux = n->aux;
    int c = tg_cols(n->out);
    const float *g = n->in[1]->data;
    long r0, r1;
    chunk_rows(n, ch, &r0, &r1);
    for (long r = r0; r < r1; r++) {
        size_t off = (size_t)r * c;
        aux->rstd[r] = (float)tg_rmsnorm_row(n->in[0]->data + off, c, g, n->f[0], n->out->data + off);
    }
}

void tg_rmsnorm_forward(tg_node *n)
{
    tg_parallel_for(((const rms_aux *)n->aux)->chunks, forward_chunk, n);
}

/* Rows of one chunk: dx, and the chunk's dg into its partial row. */
static void backward_chunk(void *ctx, long ch)
{
    tg_node *n = ctx;
    const rms_aux *aux = n->aux;
    int c = tg_cols(n->out);
    const float *g = n->in[1]->data;
    float *dx = n->in[0]->grad, *pg = aux->partial + (size_t)ch * c;
    long r0, r1;
    chunk_rows(n, ch, &r0, &r1);
    for (int j = 0; j < c; j++)
        pg[j] = 0.0f;
    for (long r = r0; r < r1; r++) {
        const float *x = n->in[0]->data + (size_t)r * c, *dy = n->out->grad + (size_t)r * c;
        float rstd = aux->rstd[r];
        float acc[TG_LANES] = {0}, dot = 0.0f;
        int j = 0;
        for (; j + TG_LANES <= c; j += TG_LANES)
            for (int l = 0; l < TG_LANES; l++)
                acc[l] += dy[j + l] * g[j + l] * (x[j + l] * rstd);
        for (; j < c; j++)
            dot += dy[j] * g[j] * (x[j] * rstd);
        for (int l = 0; l < TG_LANES; l++)
            dot += acc[l];
        float mean_dot = dot / (float)c;
        for (j = 0; j < c; j++) {
            float xhat = x[j] * rstd;
            pg[j] += dy[j] * xhat;
            if (dx)
                dx[(size_t)r * c + j] += rstd * (dy[j] * g[j] - xhat * mean_dot);
        }
    }
}

void tg_rmsnorm_backward(tg_node *n)
{
    const rms_aux *aux = n->aux;
    tg_parallel_for(aux->chunks, backward_chunk, n);
    float *dg = n->in[1]->grad;
    if (!dg)
        return;
    int c = tg_cols(n->out);
    for (long ch = 0; ch < aux->chunks; ch++)
        for (int j = 0; j < c; j++)
            dg[j] += aux->partial[(size_t)ch * c + j];
}
