/* Ops that move elements: permute (and transpose, a permute of two
 * dimensions), slice along a dimension, concat of two tensors along one
 * (split is slices, tg_concat of many a chain of pairs). Every output is a
 * copy owning its gradient, and every backward adds the output's gradient back
 * to the elements it was copied from:
 *   permute  y[i_p0, .., i_pk] = x[i_0, .., i_k]    dx at the source += dy
 *   slice    y[o, j, i] = x[o, start + j, i]        dx[o, start + j, i] += dy
 *   concat   y[o, :na, i] = a,  y[o, na:, i] = b    da, db += their parts */
#include "dims.h"
#include "tapegrad_internal.h"

#include <string.h>

/* ---- permute ------------------------------------------------------------- */

tg_tensor *tg_permute(tg_tape *t, tg_tensor *x, const int *perm)
{
    if (!tg_tape_check_inputs(t, "tg_permute", &x, 1))
        return NULL;
    if (!perm) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_permute: perm is NULL");
        return NULL;
    }
    int shape[TG_MAX_DIMS], seen = 0;
    tg_node n = {.op = TG_OP_PERMUTE, .n_in = 1, .in = {x}};
    for (int i = 0; i < x->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= x->ndim || (seen >> perm[i] & 1)) {
            char s[48];
            tg_tape_fail(t, TG_ERR_ARG, "tg_permute: perm must hold each of 0 .. %d once for %s; "
                         "entry %d is %d", x->ndim - 1, tg_shape_str(x, s, sizeof s), i, perm[i]);
            return NULL;
        }
        seen |= 1 << perm[i];
        shape[i] = x->shape[perm[i]];
        n.i[i] = perm[i];
    }
    return tg_tape_emit(t, &n, x->ndim, shape);
}

tg_tensor *tg_transpose(tg_tape *t, tg_tensor *x, int d0, int d1)
{
    if (!tg_tape_check_inputs(t, "tg_transpose", &x, 1) || !tg_norm_dim(t, "tg_transpose", x, &d0) ||
        !tg_norm_dim(t, "tg_transpose", x, &d1))
        return NULL;
    int perm[TG_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++)
        perm[i] = i == d0 ? d1 : i == d1 ? d0 : i;
    return tg_permute(t, x, perm);
}

/* Calls fn(out index, source index) for every output element, walking the
 * output in order with a counter over its coordinates. */
static void permute_walk(const tg_node *n, bool backward)
{
    const tg_tensor *x = n->in[0], *y = n->out;
    size_t xstride[TG_MAX_DIMS], stride[TG_MAX_DIMS], src = 0;
    int idx[TG_MAX_DIMS] = {0}, nd = x->ndim;
    xstride[nd - 1] = 1;
    for (int d = nd - 2; d >= 0; d--)
        xstride[d] = xstride[d + 1] * (size_t)x->shape[d + 1];
    for (int d = 0; d < nd; d++)
        stride[d] = xstride[n->i[d]];
    float *dx = x->grad;
    for (size_t k = 0; k < y->size; k++) {
        if (backward)
            dx[src] += y->grad[k];
        else
            y->data[k] = x->data[src];
        for (int d = nd - 1; d >= 0; d--) {
            src += stride[d];
            if (++idx[d] < y->shape[d])
                break;
            src -= stride[d] * (size_t)y->shape[d];
            idx[d] = 0;
        }
    }
}

void tg_permute_forward(tg_node *n) { permute_walk(n, false); }

void tg_permute_backward(tg_node *n)
{
    if (n->in[0]->grad)
        permute_walk(n, true);
}

/* ---- slice and split ----------------------------------------------------- */

tg_tensor *tg_slice(tg_tape *t, tg_tensor *x, int dim, int start, int len)
{
    if (!tg_tape_check_inputs(t, "tg_slice", &x, 1) || !tg_norm_dim(t, "tg_slice", x, &dim))
        return NULL;
    if (start < 0 || len < 1 || start > x->shape[dim] - len) {
        char s[48];
        tg_tape_fail(t, TG_ERR_ARG, "tg_slice: start %d, length %d is not inside dimension %d (size %d) of %s",
                     start, len, dim, x->shape[dim], tg_shape_str(x, s, sizeof s));
        return NULL;
    }
    int shape[TG_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[dim] = len;
    tg_node n = {.op = TG_OP_SLICE, .n_in = 1, .in = {x}, .i = {dim, start}};
    return tg_tape_emit(t, &n, x->ndim, shape);
}

void tg_slice_forward(tg_node *n)
{
    size_t outer, len, inner, nx = (size_t)n->in[0]->shape[n->i[0]];
    tg_dim_split(n->out->shape, n->out->ndim, n->i[0], &outer, &len, &inner);
    for (size_t o = 0; o < outer; o++)
        memcpy(n->out->data + o * len * inner, n->in[0]->data + (o * nx + (size_t)n->i[1]) * inner,
               len * inner * sizeof(float));
}

void tg_slice_backward(tg_node *n)
{
    size_t outer, len, inner, nx = (size_t)n->in[0]->shape[n->i[0]];
    float *dx = n->in[0]->grad;
    if (!dx)
        return;
    tg_dim_split(n->out->shape, n->out->ndim, n->i[0], &outer, &len, &inner);
    for (size_t o = 0; o < outer; o++) {
        const float *dy = n->out->grad + o * len * inner;
        float *d = dx + (o * nx + (size_t)n->i[1]) * inner;
        for (size_t k = 0; k < len * inner; k++)
            d[k] += dy[k];
    }
}

tg_status tg_split(tg_tape *t, tg_tensor *x, int dim, int count, const int *sizes, tg_tensor **out)
{
    if (!tg_tape_check_inputs(t, "tg_split", &x, 1) || !tg_norm_dim(t, "tg_split", x, &dim))
        return tg_tape_status(t);
    long total = 0;
    bool positive = true;
    for (int i = 0; sizes && i < count; i++) {
        total += sizes[i];
        positive &= sizes[i] > 0;
    }
    if (!sizes || !out || count < 1 || !positive || total != x->shape[dim]) {
        char s[48];
        tg_tape_fail(t, TG_ERR_ARG, "tg_split: %d positive sizes must add up to dimension %d (size %d) of %s",
                     count, dim, x->shape[dim], tg_shape_str(x, s, sizeof s));
        return tg_tape_status(t);
    }
    for (int i = 0, start = 0; i < count; start += sizes[i++])
        out[i] = tg_slice(t, x, dim, start, sizes[i]);
    return tg_tape_status(t);
}

/* ---- concat ----------------------------------------------------------------- */

static tg_tensor *concat2(tg_tape *t, tg_tensor *a, tg_tensor *b, int dim)
{
    tg_tensor *in[2] = {a, b};
    if (!tg_tape_check_inputs(t, "tg_concat", in, 2) || !tg_norm_dim(t, "tg_concat", a, &dim))
        return NULL;
    bool fit = a->ndim == b->ndim;
    for (int i = 0; fit && i < a->ndim; i++)
        fit = i == dim || a->shape[i] == b->shape[i];
    if (!fit) {
        char sa[48], sb[48];
        tg_tape_fail(t, TG_ERR_SHAPE, "tg_concat: %s and %s differ outside dimension %d",
                     tg_shape_str(a, sa, sizeof sa), tg_shape_str(b, sb, sizeof sb), dim);
        return NULL;
    }
    int shape[TG_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[dim] += b->shape[dim];
    tg_node n = {.op = TG_OP_CONCAT, .n_in = 2, .in = {a, b}, .i = {dim}};
    return tg_tape_emit(t, &n, a->ndim, shape);
}

tg_tensor *tg_concat(tg_tape *t, tg_tensor *const *xs, int count, int dim)
{
    if (!t || tg_tape_status(t) != TG_OK)
        return NULL;
    if (!xs || count < 1) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_concat: need at least one tensor, got %d", xs ? count : 0);
        return NULL;
    }
    if (!tg_tape_check_inputs(t, "tg_concat", xs, count))
        return NULL;
    tg_tensor *y = xs[0];
    if (count == 1) /* a copy, as every other count gives */
        return tg_reshape(t, y, y->ndim, y->shape);
    for (int i = 1; i < count && y; i++)
        y = concat2(t, y, xs[i], dim);
    return y;
}

/* Copies (or, backward, adds) block by block: per outer index, a's run of
 * na * inner elements then b's. */
static void concat_walk(tg_node *n, bool backward)
{
    int dim = n->i[0];
    size_t outer, ny, inner;
    tg_dim_split(n->out->shape, n->out->ndim, dim, &outer, &ny, &inner);
    size_t off = 0;
    for (size_t o = 0; o < outer; o++)
        for (int k = 0; k < 2; k++) {
            tg_tensor *x = n->in[k];
            size_t run = (size_t)x->shape[dim] * inner;
            if (!backward)
                memcpy(n->out->data + off, x->data + o * run, run * sizeof(float));
            else if (x->grad)
                for (size_t e = 0; e < run; e++)
                    x->grad[o * run + e] += n->out->grad[off + e];
            off += run;
        }
}

void tg_concat_forward(tg_node *n) { concat_walk(n, false); }
void tg_concat_backward(tg_node *n) { concat_walk(n, true); }
