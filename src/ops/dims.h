/* Ops that work along one dimension see a tensor as [outer, n, inner]:
 * outer the product of the dimensions before it, inner of those after. */
#ifndef TG_DIMS_H
#define TG_DIMS_H

#include "tapegrad_internal.h"

/* A dimension given as 0 .. ndim-1 or counted from the end (-1 the last);
 * false, with the tape failed naming who and x's shape, when out of range. */
static inline bool tg_norm_dim(tg_tape *t, const char *who, const tg_tensor *x, int *dim)
{
    int d = *dim < 0 ? *dim + x->ndim : *dim;
    if (d < 0 || d >= x->ndim) {
        char s[48];
        tg_tape_fail(t, TG_ERR_ARG, "%s: dimension %d is out of range for %s", who, *dim,
                     tg_shape_str(x, s, sizeof s));
        return false;
    }
    *dim = d;
    return true;
}

static inline void tg_dim_split(const int *shape, int ndim, int dim, size_t *outer, size_t *n, size_t *inner)
{
    *outer = *inner = 1;
    for (int i = 0; i < dim; i++)
        *outer *= (size_t)shape[i];
    for (int i = dim + 1; i < ndim; i++)
        *inner *= (size_t)shape[i];
    *n = (size_t)shape[dim];
}

#endif
