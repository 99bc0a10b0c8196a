/* Reductions: to a scalar, and along one dimension (below).
 *
 * To a scalar: sum and mean, accumulated in double so a loss over
 * many elements keeps its low bits (the gradient checker depends on that).
 *
 *   y = sum x    dx += dy
 *   y = mean x   dx += dy / |x| */
#include "dims.h"
#include "tapegrad_internal.h"

#include <math.h>

static tg_tensor *reduce(tg_tape *t, tg_op op, const char *who, tg_tensor *x)
{
    if (!tg_tape_check_inputs(t, who, &x, 1))
        return NULL;
    tg_node n = {.op = op, .n_in = 1, .in = {x}};
    if (!tg_node_output(t, &n, 1, (int[]){1}))
        return NULL;
    if (!(n.aux = tg_arena_alloc(t, sizeof(double))))
        return NULL;
    return tg_tape_record(t, &n);
}

tg_tensor *tg_sum(tg_tape *t, tg_tensor *x) { return reduce(t, TG_OP_SUM, "tg_sum", x); }
tg_tensor *tg_mean(tg_tape *t, tg_tensor *x) { return reduce(t, TG_OP_MEAN, "tg_mean", x); }

/* The double result stays in aux for tg_tape_value (the gradient checker). */
static void store(tg_node *n, double s)
{
    *(double *)n->aux = s;
    n->out->data[0] = (float)s;
}

static double sum_double(const tg_tensor *x)
{
    double s = 0.0;
    for (size_t i = 0; i < x->size; i++)
        s += x->data[i];
    return s;
}

static void spread(tg_node *n, float scale)
{
    float *dx = n->in[0]->grad, g = n->out->grad[0] * scale;
    if (dx)
        for (size_t i = 0; i < n->in[0]->size; i++)
            dx[i] += g;
}

void tg_sum_forward(tg_node *n) { store(n, sum_double(n->in[0])); }
void tg_sum_backward(tg_node *n) { spread(n, 1.0f); }
void tg_mean_forward(tg_node *n) { store(n, sum_double(n->in[0]) / (double)n->in[0]->size); }
void tg_mean_backward(tg_node *n) { spread(n, 1.0f / (float)n->in[0]->size); }

/* ---- reductions along one dimension --------------------------------------
 *
 * x seen as [outer, n, inner] (dims.h), reduced over n; the output keeps the
 * dimension as 1 with keepdim, and drops it otherwise (a 1-D x gives [1]).
 *   sum:        y = sum_j x_j                 dx_j += dy
 *   mean:       y = sum_j x_j / n             dx_j += dy / n
 *   max:        y = x_a, a the first index of the largest (a NaN counts as
 *               largest, so NaN propagates)   dx_a += dy, nothing elsewhere
 *   logsumexp:  y = m + log sum_j exp(x_j - m), m = max_j x_j (finite for any
 *               finite x)                     dx_j += dy exp(x_j - y)
 * The sums run in double. */

typedef struct dim_aux {
    size_t outer, n, inner;
    int *arg; /* max: the index picked, per output element */
} dim_aux;

static tg_tensor *reduce_dim(tg_tape *t, tg_op op, const char *who, tg_tensor *x, int dim, bool keepdim)
{
    if (!tg_tape_check_inputs(t, who, &x, 1) || !tg_norm_dim(t, who, x, &dim))
        return NULL;
    int shape[TG_MAX_DIMS], ndim = 0;
    for (int i = 0; i < x->ndim; i++)
        if (i != dim || keepdim)
            shape[ndim++] = i == dim ? 1 : x->shape[i];
    if (ndim == 0)
        shape[ndim++] = 1;
    tg_node n = {.op = op, .n_in = 1, .in = {x}};
    dim_aux *aux = tg_arena_alloc(t, sizeof *aux);
    if (!aux || !tg_node_output(t, &n, ndim, shape))
        return NULL;
    tg_dim_split(x->shape, x->ndim, dim, &aux->outer, &aux->n, &aux->inner);
    aux->arg = op == TG_OP_MAX_DIM ? tg_arena_alloc(t, n.out->size * sizeof(int)) : NULL;
    if (op == TG_OP_MAX_DIM && !aux->arg)
        return NULL;
    n.aux = aux;
    return tg_tape_record(t, &n);
}

tg_tensor *tg_sum_dim(tg_tape *t, tg_tensor *x, int dim, bool keepdim)
{
    return reduce_dim(t, TG_OP_SUM_DIM, "tg_sum_dim", x, dim, keepdim);
}

tg_tensor *tg_mean_dim(tg_tape *t, tg_tensor *x, int dim, bool keepdim)
{
    return reduce_dim(t, TG_OP_MEAN_DIM, "tg_mean_dim", x, dim, keepdim);
}

tg_tensor *tg_max_dim(tg_tape *t, tg_tensor *x, int dim, bool keepdim)
{
    return reduce_dim(t, TG_OP_MAX_DIM, "tg_max_dim", x, dim, keepdim);
}

tg_tensor *tg_logsumexp(tg_tape *t, tg_tensor *x, int dim, bool keepdim)
{
    return reduce_dim(t, TG_OP_LOGSUMEXP, "tg_logsumexp", x, dim, keepdim);
}

/* Element j of the reduced run that output element (o, i) reads. */
#define AT(a, o, j, i) ((o) * a->n * a->inner + (j) * a->inner + (i))

static void sum_dim(tg_node *n, double scale)
{
    const dim_aux *a = n->aux;
    const float *x = n->in[0]->data;
    for (size_t o = 0; o < a->outer; o++)
        for (size_t i = 0; i < a->inner; i++) {
            double s = 0.0;
            for (size_t j = 0; j < a->n; j++)
                s += x[AT(a, o, j, i)];
            n->out->data[o * a->inner + i] = (float)(s * scale);
        }
}

static void spread_dim(tg_node *n, float scale)
{
    const dim_aux *a = n->aux;
    float *dx = n->in[0]->grad;
    if (dx)
        for (size_t o = 0; o < a->outer; o++)
            for (size_t j = 0; j < a->n; j++)
                for (size_t i = 0; i < a->inner; i++)
                    dx[AT(a, o, j, i)] += scale * n->out->grad[o * a->inner + i];
}

void tg_sum_dim_forward(tg_node *n) { sum_dim(n, 1.0); }
void tg_sum_dim_backward(tg_node *n) { spread_dim(n, 1.0f); }
void tg_mean_dim_forward(tg_node *n) { sum_dim(n, 1.0 / (double)((dim_aux *)n->aux)->n); }
void tg_mean_dim_backward(tg_node *n) { spread_dim(n, 1.0f / (float)((dim_aux *)n->aux)->n); }

/* The first index of the largest value of the run at (o, i); a NaN wins. */
static size_t arg_max(const dim_aux *a, const float *x, size_t o, size_t i)
{
    size_t best = 0;
    for (size_t j = 1; j < a->n; j++) {
        float v = x[AT(a, o, j, i)], b = x[AT(a, o, best, i)];
        if (b == b && !(v <= b))
            best = j;
    }
    return best;
}

void tg_max_dim_forward(tg_node *n)
{
    dim_aux *a = n->aux;
    const float *x = n->in[0]->data;
    for (size_t o = 0; o < a->outer; o++)
        for (size_t i = 0; i < a->inner; i++) {
            size_t j = arg_max(a, x, o, i), k = o * a->inner + i;
            a->arg[k] = (int)j;
            n->out->data[k] = x[AT(a, o, j, i)];
        }
}

void tg_max_dim_backward(tg_node *n)
{
    const dim_aux *a = n->aux;
    float *dx = n->in[0]->grad;
    if (dx)
        for (size_t o = 0; o < a->outer; o++)
            for (size_t i = 0; i < a->inner; i++) {
                size_t k = o * a->inner + i;
                dx[AT(a, o, (size_t)a->arg[k], i)] += n->out->grad[k];
            }
}

void tg_logsumexp_forward(tg_node *n)
{
    dim_aux *a = n->aux;
    const float *x = n->in[0]->data;
    for (size_t o = 0; o < a->outer; o++)
        for (size_t i = 0; i < a->inner; i++) {
            double m = x[AT(a, o, arg_max(a, x, o, i), i)], s = 0.0;
            if (isfinite(m)) {
                for (size_t j = 0; j < a->n; j++)
                    s += exp((double)x[AT(a, o, j, i)] - m);
                m += log(s);
            }
            n->out->data[o * a->inner + i] = (float)m;
        }
}

/* exp(x - y) is the softmax along the run; a run of -inf (y = -inf) gets no
 * gradient instead of NaN. */
void tg_logsumexp_backward(tg_node *n)
{
    const dim_aux *a = n->aux;
    const float *x = n->in[0]->data;
    float *dx = n->in[0]->grad;
    if (dx)
        for (size_t o = 0; o < a->outer; o++)
            for (size_t i = 0; i < a->inner; i++) {
                size_t k = o * a->inner + i;
                float y = n->out->data[k], g = n->out->grad[k];
                if (y == -INFINITY)
                    continue;
                for (size_t j = 0; j < a->n; j++)
                    dx[AT(a, o, j, i)] += g * expf(x[AT(a, o, j, i)] - y);
            }
}
