/* Elementwise binary ops with NumPy broadcasting (add, sub, mul, div), and
 * scale by a constant.
 *
 * Broadcasting: shapes are aligned at their last dimension; each aligned pair
 * must be equal or one of them 1 (a missing leading dimension counts as 1),
 * and the output takes the larger. An input stretched along a dimension
 * receives the sum of the gradient over it:
 *   y[i] = f(a[ia(i)], b[ib(i)]),  da[ia(i)] += dy[i] df/da,  db[ib(i)] += dy[i] df/db
 * with ia(i), ib(i) the input elements output element i reads.
 *
 * Three layouts get loops of their own, because they are what models use and
 * must stay as fast as a plain loop: equal shapes, b repeated over a (b is a's
 * trailing dimensions: a bias row, a position table), and a repeated over b.
 * Anything else goes through per-element offsets (GENERAL). */
#include "tapegrad_internal.h"

#include <math.h>

enum { SAME, B_REPEATS, A_REPEATS, GENERAL };

/* Strides of a and b along each output dimension, 0 where it is stretched. */
typedef struct bcast {
    size_t sa[TG_MAX_DIMS], sb[TG_MAX_DIMS];
} bcast;

/* True when y's shape ends with x's shape. */
static bool is_trailing(const tg_tensor *y, const tg_tensor *x)
{
    if (x->ndim > y->ndim)
        return false;
    for (int i = 1; i <= x->ndim; i++)
        if (x->shape[x->ndim - i] != y->shape[y->ndim - i])
            return false;
    return true;
}

/* The broadcast shape of a and b into shape/ndim; false when they clash. */
static bool broadcast_shape(const tg_tensor *a, const tg_tensor *b, int *ndim, int *shape)
{
    *ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 1; i <= *ndim; i++) {
        int da = i <= a->ndim ? a->shape[a->ndim - i] : 1;
        int db = i <= b->ndim ? b->shape[b->ndim - i] : 1;
        if (da != db && da != 1 && db != 1)
            return false;
        shape[*ndim - i] = da > db ? da : db;
    }
    return true;
}

/* Row-major strides of x over the output's dimensions, 0 where x has 1. */
static void strides(const tg_tensor *x, int ndim, const int *shape, size_t *s)
{
    size_t stride = 1;
    for (int i = 1; i <= ndim; i++) {
        int d = i <= x->ndim ? x->shape[x->ndim - i] : 1;
        s[ndim - i] = d == 1 && shape[ndim - i] != 1 ? 0 : stride;
        stride *= (size_t)d;
    }
}

static tg_tensor *binary(tg_tape *t, tg_op op, const char *who, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[2] = {a, b};
    if (!tg_tape_check_inputs(t, who, in, 2))
        return NULL;
    int ndim, shape[TG_MAX_DIMS];
    if (!broadcast_shape(a, b, &ndim, shape)) {
        char sa[48], sb[48];
        tg_tape_fail(t, TG_ERR_SHAPE, "%s: shapes differ: a is %s, b is %s, and do not broadcast "
                     "(aligned from the last dimension, each pair must be equal or one of them 1)", who,
                     tg_shape_str(a, sa, sizeof sa), tg_shape_str(b, sb, sizeof sb));
        return NULL;
    }
    tg_node n = {.op = op, .n_in = 2, .in = {a, b}};
    bool same = a->ndim == b->ndim && is_trailing(a, b);
    n.i[0] = same ? SAME : is_trailing(a, b) ? B_REPEATS : is_trailing(b, a) ? A_REPEATS : GENERAL;
    if (!tg_node_output(t, &n, ndim, shape))
        return NULL;
    if (n.i[0] == GENERAL) {
        bcast *bc = tg_arena_alloc(t, sizeof *bc);
        if (!bc)
            return NULL;
        strides(a, ndim, shape, bc->sa);
        strides(b, ndim, shape, bc->sb);
        n.aux = bc;
    }
    return tg_tape_record(t, &n);
}

/* The elements of a and b that output element i reads (GENERAL layout). */
static void offsets(const tg_node *n, size_t i, size_t *ia, size_t *ib)
{
    const bcast *bc = n->aux;
    *ia = *ib = 0;
    for (int d = n->out->ndim - 1; d >= 0; d--) {
        size_t c = i % (size_t)n->out->shape[d];
        i /= (size_t)n->out->shape[d];
        *ia += c * bc->sa[d];
        *ib += c * bc->sb[d];
    }
}

/* Forward and backward kernels of a binary op from three expressions in the
 * element values A, B and the output Y: the result, df/da and df/db. The
 * layouts' loops are written out so each stays a simple vectorisable loop. */
#define BINARY_KERNELS(name, F, DA, DB)                                                        \
    void tg_##name##_forward(tg_node *n)                                                       \
    {                                                                                          \
        const float *a = n->in[0]->data, *b = n->in[1]->data;                                  \
        float *y = n->out->data;                                                               \
        size_t size = n->out->size, as = n->in[0]->size, bs = n->in[1]->size;                  \
        switch (n->i[0]) {                                                                     \
        case SAME:                                                                             \
            for (size_t i = 0; i < size; i++) { float A = a[i], B = b[i]; y[i] = (F); }        \
            break;                                                                             \
        case B_REPEATS:                                                                        \
            for (size_t r = 0; r < size; r += bs)                                              \
                for (size_t j = 0; j < bs; j++) { float A = a[r + j], B = b[j]; y[r + j] = (F); } \
            break;                                                                             \
        case A_REPEATS:                                                                        \
            for (size_t r = 0; r < size; r += as)                                              \
                for (size_t j = 0; j < as; j++) { float A = a[j], B = b[r + j]; y[r + j] = (F); } \
            break;                                                                             \
        default:                                                                               \
            for (size_t i = 0, ia, ib; i < size; i++) {                                        \
                offsets(n, i, &ia, &ib);                                                       \
                float A = a[ia], B = b[ib];                                                    \
                y[i] = (F);                                                                    \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    void tg_##name##_backward(tg_node *n)                                                      \
    {                                                                                          \
        const float *a = n->in[0]->data, *b = n->in[1]->data, *y = n->out->data;               \
        const float *dy = n->out->grad;                                                        \
        float *da = n->in[0]->grad, *db = n->in[1]->grad;                                      \
        size_t size = n->out->size, as = n->in[0]->size, bs = n->in[1]->size;                  \
        switch (n->i[0]) {                                                                     \
        case SAME:                                                                             \
            if (da)                                                                            \
                for (size_t i = 0; i < size; i++) { float A = a[i], B = b[i], Y = y[i]; da[i] += dy[i] * (DA); } \
            if (db)                                                                            \
                for (size_t i = 0; i < size; i++) { float A = a[i], B = b[i], Y = y[i]; db[i] += dy[i] * (DB); } \
            break;                                                                             \
        case B_REPEATS:                                                                        \
            if (da)                                                                            \
                for (size_t r = 0; r < size; r += bs)                                          \
                    for (size_t j = 0; j < bs; j++) { float A = a[r + j], B = b[j], Y = y[r + j]; da[r + j] += dy[r + j] * (DA); } \
            if (db)                                                                            \
                for (size_t r = 0; r < size; r += bs)                                          \
                    for (size_t j = 0; j < bs; j++) { float A = a[r + j], B = b[j], Y = y[r + j]; db[j] += dy[r + j] * (DB); } \
            break;                                                                             \
        case A_REPEATS:                                                                        \
            if (da)                                                                            \
                for (size_t r = 0; r < size; r += as)                                          \
                    for (size_t j = 0; j < as; j++) { float A = a[j], B = b[r + j], Y = y[r + j]; da[j] += dy[r + j] * (DA); } \
            if (db)                                                                            \
                for (size_t r = 0; r < size; r += as)                                          \
                    for (size_t j = 0; j < as; j++) { float A = a[j], B = b[r + j], Y = y[r + j]; db[r + j] += dy[r + j] * (DB); } \
            break;                                                                             \
        default:                                                                               \
            for (size_t i = 0, ia, ib; i < size; i++) {                                        \
                offsets(n, i, &ia, &ib);                                                       \
                float A = a[ia], B = b[ib], Y = y[i];                                          \
                if (da)                                                                        \
                    da[ia] += dy[i] * (DA);                                                    \
                if (db)                                                                        \
                    db[ib] += dy[i] * (DB);                                                    \
            }                                                                                  \
        }                                                                                      \
    }

/* Unused element values in an expression are fine: they cost nothing. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-variable"

/* y = a + b;  da += dy;  db += dy */
tg_tensor *tg_add(tg_tape *t, tg_tensor *a, tg_tensor *b) { return binary(t, TG_OP_ADD, "tg_add", a, b); }
BINARY_KERNELS(add, A + B, 1.0f, 1.0f)

/* y = a - b;  da += dy;  db -= dy */
tg_tensor *tg_sub(tg_tape *t, tg_tensor *a, tg_tensor *b) { return binary(t, TG_OP_SUB, "tg_sub", a, b); }
BINARY_KERNELS(sub, A - B, 1.0f, -1.0f)

/* y = a * b;  da += dy * b;  db += dy * a */
tg_tensor *tg_mul(tg_tape *t, tg_tensor *a, tg_tensor *b) { return binary(t, TG_OP_MUL, "tg_mul", a, b); }
BINARY_KERNELS(mul, A * B, B, A)

/* y = a / b;  da += dy / b;  db -= dy * a / b^2 = dy * (-y / b) */
tg_tensor *tg_div(tg_tape *t, tg_tensor *a, tg_tensor *b) { return binary(t, TG_OP_DIV, "tg_div", a, b); }
BINARY_KERNELS(div, A / B, 1.0f / B, -Y / B)

#pragma GCC diagnostic pop

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

/* -x, as scale by -1 (exact). */
tg_tensor *tg_neg(tg_tape *t, tg_tensor *x) { return tg_scale(t, x, -1.0f); }

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
