/* Heap tensors (parameters), shapes and fills. */
#include "tapegrad_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t tg_shape_size(int ndim, const int *shape)
{
    if (ndim < 1 || ndim > TG_MAX_DIMS || !shape)
        return 0;
    size_t size = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0 || size > ((size_t)1 << 40) / (size_t)shape[i])
            return 0;
        size *= (size_t)shape[i];
    }
    return size;
}

const char *tg_shape_str(const tg_tensor *t, char *buf, size_t len)
{
    size_t used = 0;
    if (!buf || !len)
        return buf;
    used += (size_t)snprintf(buf, len, "[");
    for (int i = 0; t && i < t->ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, i ? ",%d" : "%d", t->shape[i]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
    return buf;
}

tg_tensor *tg_param_new(int ndim, const int *shape, const char *name)
{
    size_t size = tg_shape_size(ndim, shape);
    if (!size) {
        tg_error(NULL, 0, TG_ERR_SHAPE, "tg_param_new(\"%s\"): %s", name ? name : "",
                 !shape || ndim < 1 || ndim > TG_MAX_DIMS ? "needs 1 to 4 dimensions and a shape"
                                                          : "a dimension below 1, or more than 2^40 elements");
        return NULL;
    }
    tg_tensor *p = calloc(1, sizeof *p);
    if (p) {
        p->data = calloc(size, sizeof(float));
        p->grad = calloc(size, sizeof(float));
    }
    if (!p || !p->data || !p->grad) {
        tg_param_free(p);
        tg_error(NULL, 0, TG_ERR_NOMEM, "tg_param_new(\"%s\"): out of memory for %zu floats", name ? name : "",
                 size);
        return NULL;
    }
    p->ndim = ndim;
    memcpy(p->shape, shape, (size_t)ndim * sizeof(int));
    p->size = size;
    p->requires_grad = true;
    p->on_heap = true;
    p->generation = TG_PARAM_GENERATION;
    tg_name(p, name);
    return p;
}

void tg_param_free(tg_tensor *p)
{
    if (!p)
        return;
    free(p->data);
    free(p->grad);
    free(p);
}

void tg_zero_grad(tg_tensor *const *params, int n)
{
    for (int i = 0; params && i < n; i++)
        if (params[i] && params[i]->requires_grad && params[i]->grad)
            memset(params[i]->grad, 0, params[i]->size * sizeof(float));
}

void tg_fill(tg_tensor *t, float value)
{
    for (size_t i = 0; t && i < t->size; i++)
        t->data[i] = value;
}
