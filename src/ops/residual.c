/* The residual stream z = alpha * x + f, where f = Sublayer(x).
 *
 *   dz/dx = alpha * I (the skip path),  dz/df = I (the branch)
 *
 * So dx += alpha * dz and df += dz. When f was computed from x, the branch's
 * own backward later adds its share into dx too: x receives the sum of both
 * paths, the explicit Jacobian's (dx/dy + I), with no special casing. */
#include "tapegrad_internal.h"

#include <math.h>

static bool same_shape(tg_tape *t, const char *who, const tg_tensor *x, const tg_tensor *f)
{
    bool same = x->ndim == f->ndim;
    for (int i = 0; same && i < x->ndim; i++)
        same = x->shape[i] == f->shape[i];
    if (!same) {
        char sx[48], sf[48];
        tg_tape_fail(t, TG_ERR_SHAPE, "%s: shapes differ: x is %s, f is %s", who,
                     tg_shape_str(x, sx, sizeof sx), tg_shape_str(f, sf, sizeof sf));
    }
    return same;
}

tg_tensor *tg_residual_scaled(tg_tape *t, tg_tensor *x, tg_tensor *f, float alpha)
{
    tg_tensor *in[2] = {x, f};
    if (!tg_tape_check_inputs(t, "tg_residual", in, 2) || !same_shape(t, "tg_residual", x, f))
        return NULL;
    if (!isfinite(alpha)) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_residual: alpha is %f", (double)alpha);
        return NULL;
    }
    tg_node n = {.op = TG_OP_RESIDUAL, .n_in = 2, .in = {x, f}, .f = {alpha}};
    return tg_tape_emit(t, &n, x->ndim, x->shape);
}

tg_tensor *tg_residual(tg_tape *t, tg_tensor *x, tg_tensor *f)
{
    return tg_residual_scaled(t, x, f, 1.0f);
}

/* Spans of a fixed length, handed to the pool: elementwise, so any split
 * gives the same bits. */
enum { SPAN = 16384 };

static void forward_span(void *ctx, long s)
{
    const tg_node *n = ctx;
    const float *x = n->in[0]->data, *f = n->in[1]->data;
    float *z = n->out->data, alpha = n->f[0];
    long end = tg_chunk_end(s, SPAN, (long)n->out->size);
    for (long i = s * SPAN; i < end; i++)
        z[i] = alpha * x[i] + f[i];
}

void tg_residual_forward(tg_node *n)
{
    tg_parallel_for(tg_chunks((long)n->out->size, SPAN), forward_span, n);
}

/* The backward stores into a gradient nothing has written yet (see
 * tg_grad_claim): in a residual stream it is usually the first to reach
 * both x's and the branch's. When x and f are one tensor, dx is stored and
 * df then added, in that order in every span. */
typedef struct backward_job {
    const tg_node *n;
    bool store_dx, store_df;
} backward_job;

static void backward_span(void *ctx, long s)
{
    const backward_job *j = ctx;
    const tg_node *n = j->n;
    const float *dz = n->out->grad;
    float *dx = n->in[0]->grad, *df = n->in[1]->grad, alpha = n->f[0];
    long i0 = s * SPAN, end = tg_chunk_end(s, SPAN, (long)n->out->size);
    if (dx && j->store_dx)
        for (long i = i0; i < end; i++)
            dx[i] = alpha * dz[i];
    else if (dx)
        for (long i = i0; i < end; i++)
            dx[i] += alpha * dz[i];
    if (df && j->store_df)
        for (long i = i0; i < end; i++)
            df[i] = dz[i];
    else if (df)
        for (long i = i0; i < end; i++)
            df[i] += dz[i];
}

void tg_residual_backward(tg_node *n)
{
    backward_job j = {n, false, false};
    j.store_dx = n->in[0]->grad && tg_grad_claim(n->in[0]);
    j.store_df = n->in[1]->grad && tg_grad_claim(n->in[1]);
    tg_parallel_for(tg_chunks((long)n->out->size, SPAN), backward_span, &j);
}

/* ReZero's gated residual z = x + a * f, a a learnable one-element gate:
 *
 *   dx += dz,   df += a * dz,   da += sum(dz * f)
 *
 * With a = 0 the block is the identity and the branch receives exactly zero
 * gradient; only the gate learns on the first step. */
tg_tensor *tg_residual_gated(tg_tape *t, tg_tensor *x, tg_tensor *f, tg_tensor *a)
{
    tg_tensor *in[3] = {x, f, a};
    if (!tg_tape_check_inputs(t, "tg_residual_gated", in, 3) || !same_shape(t, "tg_residual_gated", x, f))
        return NULL;
    if (a->size != 1) {
        char sa[48];
        tg_tape_fail(t, TG_ERR_SHAPE, "tg_residual_gated: the gate a must have one element, got %s",
                     tg_shape_str(a, sa, sizeof sa));
        return NULL;
    }
    tg_node n = {.op = TG_OP_RESIDUAL_GATED, .n_in = 3, .in = {x, f, a}};
    return tg_tape_emit(t, &n, x->ndim, x->shape);
}

void tg_residual_gated_forward(tg_node *n)
{
    const float *x = n->in[0]->data, *f = n->in[1]->data;
    float *z = n->out->data, a = n->in[2]->data[0];
    for (size_t i = 0; i < n->out->size; i++)
        z[i] = x[i] + a * f[i];
}

void tg_residual_gated_backward(tg_node *n)
{
    const float *dz = n->out->grad, *f = n->in[1]->data;
    float *dx = n->in[0]->grad, *df = n->in[1]->grad, *da = n->in[2]->grad, a = n->in[2]->data[0];
    if (dx)
        for (size_t i = 0; i < n->out->size; i++)
            dx[i] += dz[i];
    if (df)
        for (size_t i = 0; i < n->out->size; i++)
            df[i] += a * dz[i];
    if (da) {
        double s = 0.0; /* one scalar from many products: keep the low bits */
        for (size_t i = 0; i < n->out->size; i++)
            s += (double)dz[i] * f[i];
        da[0] += (float)s;
    }
}
