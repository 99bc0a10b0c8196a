/* Elementwise ops: add (with trailing-dimension broadcast), mul, scale. */
#include "tapegrad_internal.h"

#include <math.h>

/* b's shape must equal a's, or a's last b->ndim dimensions. */
static bool is_trailing_shape(const tg_tensor *a, const tg_tensor *b)
{
    if (b->ndim > a->ndim)
        return false;
    for (int i = 0; i < b->ndim; i++)
        if (b->shape[b->ndim - 1 - i] != a->shape[a->ndim - 1 - i])
            return false;
    return true;
}

static tg_tensor *binary(tg_tape *t, tg_op op, const char *who, tg_tensor *a, tg_tensor *b,
                         bool allow_broadcast)
{
    tg_tensor *in[2] = {a, b};
    if (!tg_tape_check_inputs(t, who, in, 2))
        return NULL;
    bool ok = allow_broadcast ? is_trailing_shape(a, b)
                              : a->ndim == b->ndim && is_trailing_shape(a, b);
    if (!ok) {
        char sa[48], sb[48];
        tg_tape_fail(t, TG_ERR_SHAPE, "%s: shapes differ: a is %s, b is %s%s", who,
                     tg_shape_str(a, sa, sizeof sa), tg_shape_str(b, sb, sizeof sb),
                     allow_broadcast ? " (b must match a or a's trailing dimensions)" : "");
        return NULL;
    }
    tg_node n = {.op = op, .n_in = 2, .in = {a, b}};
    return tg_tape_emit(t, &n, a->ndim, a->shape);
}

/* y = a + b[i mod |b|];  da += dy;  db[j] += sum over repeats of dy */
tg_tensor *tg_add(tg_tape *t, tg_tensor *a, tg_tensor *b)
{
    return binary(t, TG_OP_ADD, "tg_add", a, b, true);
}

void tg_add_forward(tg_node *n)
{
    const float *a = n->in[0]->data, *b = n->in[1]->data;
    float *y = n->out->data;
    size_t bs = n->in[1]->size;
    for (size_t r = 0; r < n->out->size; r += bs)
        for (size_t j = 0; j < bs; j++)
            y[r + j] = a[r + j] + b[j];
}

void tg_add_backward(tg_node *n)
{
    const float *dy = n->out->grad;
    float *da = n->in[0]->grad, *db = n->in[1]->grad;
    size_t bs = n->in[1]->size;
    if (da)
        for (size_t i = 0; i < n->out->size; i++)
            da[i] += dy[i];
    if (db)
        for (size_t r = 0; r < n->out->size; r += bs)
            for (size_t j = 0; j < bs; j++)
                db[j] += dy[r + j];
}

/* y = a * b;  da += dy * b;  db += dy * a */
tg_tensor *tg_mul(tg_tape *t, tg_tensor *a, tg_tensor *b)
{
    return binary(t, TG_OP_MUL, "tg_mul", a, b, false);
}

void tg_mul_forward(tg_node *n)
{
    const float *a = n->in[0]->data, *b = n->in[1]->data;
    float *y = n->out->data;
    for (size_t i = 0; i < n->out->size; i++)
        y[i] = a[i] * b[i];
}

void tg_mul_backward(tg_node *n)
{
    const float *a = n->in[0]->data, *b = n->in[1]->data, *dy = n->out->grad;
    float *da = n->in[0]->grad, *db = n->in[1]->grad;
    if (da)
        for (size_t i = 0; i < n->out->size; i++)
            da[i] += dy[i] * b[i];
    if (db)
        for (size_t i = 0; i < n->out->size; i++)
            db[i] += dy[i] * a[i];
}

/* y = c * x;  dx += c * dy */
tg_tensor *tg_scale(tg_tape *t, tg_tensor *x, float c)
{
    if (!tg_tape_check_inputs(t, "tg_scale", &x, 1))
        return NULL;
    if (!isfinite(c)) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_scale: factor is %f", (double)c);
        return NULL;
    }
    tg_node n = {.op = TG_OP_SCALE, .n_in = 1, .in = {x}, .f = {c}};
    return tg_tape_emit(t, &n, x->ndim, x->shape);
}

void tg_scale_forward(tg_node *n)
{
    const float *x = n->in[0]->data;
    float *y = n->out->data, c = n->f[0];
    for (size_t i = 0; i < n->out->size; i++)
        y[i] = c * x[i];
}

void tg_scale_backward(tg_node *n)
{
    float *dx = n->in[0]->grad, c = n->f[0];
    const float *dy = n->out->grad;
    if (dx)
        for (size_t i = 0; i < n->out->size; i++)
            dx[i] += c * dy[i];
}
