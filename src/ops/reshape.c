/* Reshape: the same elements in the same order under another shape.
 * y = x (copied, so every tensor owns its gradient);  dx += dy. */
#include "tapegrad_internal.h"

#include <string.h>

tg_tensor *tg_reshape(tg_tape *t, tg_tensor *x, int ndim, const int *shape)
{
    if (!tg_tape_check_inputs(t, "tg_reshape", &x, 1))
        return NULL;
    size_t size = tg_shape_size(ndim, shape);
    if (size != x->size) {
        char sx[48];
        tg_tape_fail(t, TG_ERR_SHAPE, "tg_reshape: %s has %zu elements, the new shape %zu",
                     tg_shape_str(x, sx, sizeof sx), x->size, size);
        return NULL;
    }
    tg_node n = {.op = TG_OP_RESHAPE, .n_in = 1, .in = {x}};
    return tg_tape_emit(t, &n, ndim, shape);
}

void tg_reshape_forward(tg_node *n)
{
    memcpy(n->out->data, n->in[0]->data, n->out->size * sizeof(float));
}

void tg_reshape_backward(tg_node *n)
{
    float *dx = n->in[0]->grad;
    if (dx)
        for (size_t i = 0; i < n->out->size; i++)
            dx[i] += n->out->grad[i];
}
