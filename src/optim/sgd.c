/* SGD with momentum and weight decay (PyTorch's convention):
 *   g = grad + wd * w;  v = momentum * v + g;  w -= lr * v
 * Weight decay skips parameters with fewer than two dimensions (biases and
 * LayerNorm gains), as nanoGPT does. */
#include "tapegrad_internal.h"

#include <stdlib.h>

struct tg_sgd {
    tg_tensor **params;
    float **velocity;
    int n;
    float momentum, weight_decay;
};

tg_sgd *tg_sgd_new(tg_tensor *const *params, int n, float momentum, float weight_decay)
{
    if (!params || n < 1 || !(momentum >= 0.0f && momentum < 1.0f) || !(weight_decay >= 0.0f))
        return NULL;
    tg_sgd *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->params = malloc((size_t)n * sizeof *o->params);
    o->velocity = calloc((size_t)n, sizeof *o->velocity);
    if (!o->params || !o->velocity) {
        tg_sgd_free(o);
        return NULL;
    }
    o->n = n;
    o->momentum = momentum;
    o->weight_decay = weight_decay;
    for (int i = 0; i < n; i++) {
        o->params[i] = params[i];
        if (!params[i] || !(o->velocity[i] = calloc(params[i]->size, sizeof(float)))) {
            tg_sgd_free(o);
            return NULL;
        }
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

void tg_sgd_step(tg_sgd *o, float lr)
{
    for (int i = 0; i < o->n; i++) {
        tg_tensor *p = o->params[i];
        float wd = p->ndim >= 2 ? o->weight_decay : 0.0f;
        float *v = o->velocity[i];
        for (size_t j = 0; j < p->size; j++) {
            float g = p->grad[j] + wd * p->data[j];
            v[j] = o->momentum * v[j] + g;
            p->data[j] -= lr * v[j];
        }
    }
}
