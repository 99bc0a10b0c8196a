/* Softmax over the last dimension, and cross-entropy fused with its
 * log-softmax.
 *
 * softmax:  y = exp(x - max) / sum exp(x - max);   dx = y * (dy - sum(dy * y))
 * cross-entropy over the R rows whose target c_r is not -1 (ignored rows add
 * nothing and get no gradient):
 *   loss = (1/R) sum_r (lse_r - x[r, c_r]),  lse = max + log sum exp(x - max)
 *   dx[r, j] = dloss / R * (softmax(x_r)_j - [j == c_r])
 * Subtracting the row max keeps exp() finite for any logits (1e4 included).
 * The max and log-sum are cached per row, apart: lse - x[c] is formed as
 * (max - x[c]) + log-sum, so large logits lose nothing to rounding, and the
 * backward recomputes softmax without another pass for the max or the sum. */
#include "tapegrad_internal.h"
#include "vmath.h"

#include <math.h>
#include <string.h>

static float row_max(const float *x, int n)
{
    float m = x[0];
    for (int j = 1; j < n; j++)
        m = x[j] > m ? x[j] : m;
    return m;
}

tg_tensor *tg_softmax(tg_tape *t, tg_tensor *x)
{
    if (!tg_tape_check_inputs(t, "tg_softmax", &x, 1))
        return NULL;
    tg_node n = {.op = TG_OP_SOFTMAX, .n_in = 1, .in = {x}};
    return tg_tape_emit(t, &n, x->ndim, x->shape);
}

/* Rows are cut into chunks of about ROW_GRAIN floats, by shape alone, for
 * tg_parallel_for; each row is computed whole by one thread. */
enum { ROW_GRAIN = 32768 };

typedef struct row_job {
    tg_node *n;
    long rows, per; /* rows, and rows per chunk */
} row_job;

static void run_rows(tg_node *n, tg_chunk_fn chunk)
{
    long rows = (long)tg_rows(n->in[0]), c = tg_cols(n->in[0]);
    long per = ROW_GRAIN / c > 0 ? ROW_GRAIN / c : 1;
    row_job j = {n, rows, per};
    tg_parallel_for(tg_chunks(rows, per), chunk, &j);
}

/* A chunk function that calls fn on rows [i * per, (i + 1) * per). */
#define ROW_CHUNK(name, fn)                                          \
    static void name(void *ctx, long i)                              \
    {                                                                \
        const row_job *j = ctx;                                      \
        long end = tg_chunk_end(i, j->per, j->rows);                 \
        for (long r = i * j->per; r < end; r++)                      \
            fn(j->n, r);                                             \
    }

static void softmax_row(tg_node *n, long r)
{
    int c = tg_cols(n->out);
    const float *x = n->in[0]->data + r * c;
    float *y = n->out->data + r * c;
    float m = row_max(x, c);
    for (int j = 0; j < c; j++)
        y[j] = tg_vexp(x[j] - m);
    float inv = 1.0f / tg_vsum(y, c);
    for (int j = 0; j < c; j++)
        y[j] *= inv;
}
ROW_CHUNK(softmax_chunk, softmax_row)

void tg_softmax_forward(tg_node *n)
{
    run_rows(n, softmax_chunk);
}

static void softmax_back_row(tg_node *n, long r)
{
    int c = tg_cols(n->out);
    const float *y = n->out->data + r * c, *dy = n->out->grad + r * c;
    float *dx = n->in[0]->grad + r * c;
    float dot = tg_vdot(dy, y, c);
    for (int j = 0; j < c; j++)
        dx[j] += y[j] * (dy[j] - dot);
}
ROW_CHUNK(softmax_back_chunk, softmax_back_row)

void tg_softmax_backward(tg_node *n)
{
    if (n->in[0]->grad)
        run_rows(n, softmax_back_chunk);
}

/* sum_j exp(x_j - m) in independent lanes, so the loop vectorises. */
static float sum_exp(const float *x, float m, int c)
{
    float acc[TG_LANES] = {0}, s = 0.0f;
    int j = 0;
    for (; j + TG_LANES <= c; j += TG_LANES)
        for (int l = 0; l < TG_LANES; l++)
            acc[l] += tg_vexp(x[j + l] - m);
    for (; j < c; j++)
        s += tg_vexp(x[j] - m);
    for (int l = 0; l < TG_LANES; l++)
        s += acc[l];
    return s;
}

tg_tensor *tg_cross_entropy(tg_tape *t, tg_tensor *logits, const int *targets)
{
    if (!tg_tape_check_inputs(t, "tg_cross_entropy", &logits, 1))
        return NULL;
    if (!targets) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_cross_entropy: targets are NULL");
        return NULL;
    }
    size_t rows = tg_rows(logits), counted = 0;
    int vocab = tg_cols(logits);
    for (size_t r = 0; r < rows; r++) {
        counted += targets[r] != -1;
        if (targets[r] < -1 || targets[r] >= vocab) {
            tg_tape_fail(t, TG_ERR_ARG, "tg_cross_entropy: target %d at row %zu is outside [0,%d)",
                         targets[r], r, vocab);
            return NULL;
        }
    }
    if (!counted) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_cross_entropy: every one of the %zu targets is -1 (ignored)", rows);
        return NULL;
    }
    tg_node n = {.op = TG_OP_CROSS_ENTROPY, .n_in = 1, .in = {logits}, .i = {(int)counted}};
    if (!tg_node_output(t, &n, 1, (int[]){1}))
        return NULL;
    /* aux: the targets, then (max, log-sum) per row. */
    if (!(n.aux = tg_arena_alloc(t, rows * (sizeof(int) + 2 * sizeof(float)))))
        return NULL;
    memcpy(n.aux, targets, rows * sizeof(int));
    return tg_tape_record(t, &n);
}

static void ce_row(tg_node *n, long r)
{
    const tg_tensor *lt = n->in[0];
    int c = tg_cols(lt);
    float *stats = (float *)((const int *)n->aux + tg_rows(lt));
    const float *x = lt->data + r * c;
    float m = row_max(x, c);
    stats[2 * r] = m;
    stats[2 * r + 1] = logf(sum_exp(x, m, c));
}
ROW_CHUNK(ce_chunk, ce_row)

void tg_cross_entropy_forward(tg_node *n)
{
    const tg_tensor *lt = n->in[0];
    int c = tg_cols(lt);
    long rows = (long)tg_rows(lt);
    const int *target = n->aux;
    const float *stats = (const float *)(target + rows);
    run_rows(n, ce_chunk);
    /* Summed in row order, so the loss is the same for any thread count. */
    double total = 0.0;
    for (long r = 0; r < rows; r++)
        if (target[r] >= 0)
            total += (double)(stats[2 * r] - lt->data[r * c + target[r]]) + (double)stats[2 * r + 1];
    n->out->data[0] = (float)(total / (double)n->i[0]);
}

static void ce_back_row(tg_node *n, long r)
{
    const tg_tensor *lt = n->in[0];
    int c = tg_cols(lt);
    const int *target = n->aux;
    if (target[r] < 0)
        return;
    const float *stats = (const float *)(target + tg_rows(lt));
    float g = n->out->grad[0] / (float)n->i[0];
    const float *x = lt->data + r * c;
    float *dx = lt->grad + r * c, m = stats[2 * r], logsum = stats[2 * r + 1];
    for (int j = 0; j < c; j++)
        dx[j] += g * tg_vexp((x[j] - m) - logsum);
    dx[target[r]] -= g;
}
ROW_CHUNK(ce_back_chunk, ce_back_row)

void tg_cross_entropy_backward(tg_node *n)
{
    if (n->in[0]->grad)
        run_rows(n, ce_back_chunk);
}
