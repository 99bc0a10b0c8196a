/* Reductions to a scalar: sum and mean, accumulated in double so a loss over
 * many elements keeps its low bits (the gradient checker depends on that).
 *
 *   y = sum x    dx += dy
 *   y = mean x   dx += dy / |x| */
#include "tapegrad_internal.h"

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
