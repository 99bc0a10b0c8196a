/* SGD with momentum and weight decay (PyTorch's convention):
 *   g = grad + wd * w;  v = momentum * v + g;  w -= lr * v
 * Weight decay skips parameters with fewer than two dimensions (biases and
 * LayerNorm gains), as nanoGPT does. Frozen parameters and those without a
 * gradient are skipped. */
#include "tapegrad_internal.h"

#include <math.h>
#include <stdlib.h>

struct tg_sgd {
    tg_tensor **params;
    float **velocity;
    int n;
    float momentum, weight_decay;
};

static tg_sgd *sgd_oom(tg_sgd *o)
{
    tg_sgd_free(o);
    tg_error(NULL, 0, TG_ERR_NOMEM, "tg_sgd_new: out of memory for the optimizer state");
    return NULL;
}

tg_sgd *tg_sgd_new(tg_tensor *const *params, int n, float momentum, float weight_decay)
{
    bool null_param = false;
    for (int i = 0; params && i < n; i++)
        null_param |= !params[i];
    if (!params || n < 1 || null_param || !(momentum >= 0.0f && momentum < 1.0f) || !(weight_decay >= 0.0f) ||
        !isfinite(weight_decay)) {
        tg_error(NULL, 0, TG_ERR_ARG,
                 "tg_sgd_new: needs n >= 1 non-NULL parameters, momentum in [0, 1) and a finite weight_decay "
                 ">= 0 (n %d, momentum %g, weight_decay %g)", n, (double)momentum, (double)weight_decay);
        return NULL;
    }
    tg_sgd *o = calloc(1, sizeof *o);
    if (!o)
        return sgd_oom(NULL);
    o->params = malloc((size_t)n * sizeof *o->params);
    o->velocity = calloc((size_t)n, sizeof *o->velocity);
    if (!o->params || !o->velocity)
        return sgd_oom(o);
    o->n = n;
    o->momentum = momentum;
    o->weight_decay = weight_decay;
    for (int i = 0; i < n; i++) {
        o->params[i] = params[i];
        if (!(o->velocity[i] = calloc(params[i]->size, sizeof(float))))
            return sgd_oom(o);
    }
    return o;
}

void tg_sgd_free(tg_sgd *o)
{
    if (!o)
        return;
    for (int i = 0; o->velocity && i < o->n; i++)
        free(o->velocity[i]);
    free(o->velocity);
    free(o->params);
    free(o);
}

tg_status tg_sgd_step(tg_sgd *o, float lr)
{
    if (!o)
        return tg_error(NULL, 0, TG_ERR_ARG, "tg_sgd_step: the optimizer is NULL");
    if (!(lr >= 0.0f) || !isfinite(lr))
        return tg_error(NULL, 0, TG_ERR_ARG, "tg_sgd_step: learning rate %g is not finite and >= 0", (double)lr);
    for (int i = 0; i < o->n; i++) {
        tg_tensor *p = o->params[i];
        if (!p->grad || !p->requires_grad)
            continue;
        float wd = p->ndim >= 2 ? o->weight_decay : 0.0f;
        float *v = o->velocity[i];
        for (size_t j = 0; j < p->size; j++) {
            float g = p->grad[j] + wd * p->data[j];
            v[j] = o->momentum * v[j] + g;
            p->data[j] -= lr * v[j];
        }
    }
    return TG_OK;
}
