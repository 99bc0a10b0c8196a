/* Dropout with probability p, driven by the caller's generator:
 *
 *   y = x * m,  m_i = 1/(1-p) when the i-th uniform draw is at least p, else 0
 *   dx += dy * m
 *
 * The mask is drawn when the op is recorded, element by element in order,
 * so it is reproducible from the generator's state whatever the thread count;
 * it is kept (as m, in the arena) for the backward. p = 0 or a NULL
 * generator records nothing and returns x itself: dropout that is off costs
 * nothing and leaves the tape as it would be without it. */
#include "tapegrad_internal.h"

#include <math.h>

tg_tensor *tg_dropout(tg_tape *t, tg_tensor *x, float p, tg_rng *rng)
{
    if (!tg_tape_check_inputs(t, "tg_dropout", &x, 1))
        return NULL;
    if (!(p >= 0.0f && p < 1.0f)) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_dropout: p %g is outside [0, 1)", (double)p);
        return NULL;
    }
    if (p == 0.0f || !rng)
        return x;
    tg_node n = {.op = TG_OP_DROPOUT, .n_in = 1, .in = {x}, .f = {p}};
    if (!tg_node_output(t, &n, x->ndim, x->shape))
        return NULL;
    float *m = tg_arena_alloc(t, x->size * sizeof(float)), keep = 1.0f / (1.0f - p);
    if (!m)
        return NULL;
    for (size_t i = 0; i < x->size; i++)
        m[i] = tg_rng_uniform(rng) >= p ? keep : 0.0f;
    n.aux = m;
    return tg_tape_record(t, &n);
}

void tg_dropout_forward(tg_node *n)
{
    const float *x = n->in[0]->data, *m = n->aux;
    float *y = n->out->data;
    for (size_t i = 0; i < n->out->size; i++)
        y[i] = x[i] * m[i];
}

void tg_dropout_backward(tg_node *n)
{
    const float *dy = n->out->grad, *m = n->aux;
    float *dx = n->in[0]->grad;
    if (dx)
        for (size_t i = 0; i < n->out->size; i++)
            dx[i] += dy[i] * m[i];
}
