/* Mean-squared error, a loss: y = sum_i (a_i - b_i)^2 / N over the N elements
 * of a and b (same shape), summed in double (kept for the gradient checker,
 * as tg_mean's is).
 *   da += dy * 2 (a - b) / N,   db -= dy * 2 (a - b) / N */
#include "tapegrad_internal.h"

tg_tensor *tg_mse(tg_tape *t, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[2] = {a, b};
    if (!tg_tape_check_inputs(t, "tg_mse", in, 2))
        return NULL;
    bool same = a->ndim == b->ndim;
    for (int i = 0; same && i < a->ndim; i++)
        same = a->shape[i] == b->shape[i];
    if (!same) {
        char sa[48], sb[48];
        tg_tape_fail(t, TG_ERR_SHAPE, "tg_mse: shapes differ: a is %s, b is %s", tg_shape_str(a, sa, sizeof sa),
                     tg_shape_str(b, sb, sizeof sb));
        return NULL;
    }
    tg_node n = {.op = TG_OP_MSE, .n_in = 2, .in = {a, b}};
    if (!tg_node_output(t, &n, 1, (int[]){1}) || !(n.aux = tg_arena_alloc(t, sizeof(double))))
        return NULL;
    return tg_tape_record(t, &n);
}

void tg_mse_forward(tg_node *n)
{
    const float *a = n->in[0]->data, *b = n->in[1]->data;
    double s = 0.0;
    for (size_t i = 0; i < n->in[0]->size; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    s /= (double)n->in[0]->size;
    *(double *)n->aux = s;
    n->out->data[0] = (float)s;
}

void tg_mse_backward(tg_node *n)
{
    const float *a = n->in[0]->data, *b = n->in[1]->data;
    float *da = n->in[0]->grad, *db = n->in[1]->grad;
    float g = n->out->grad[0] * 2.0f / (float)n->in[0]->size;
    if (da)
        for (size_t i = 0; i < n->in[0]->size; i++)
            da[i] += g * (a[i] - b[i]);
    if (db)
        for (size_t i = 0; i < n->in[0]->size; i++)
            db[i] -= g * (a[i] - b[i]);
}
