/* AdamW (torch.optim.AdamW, amsgrad off), per element at step t:
 *   w *= 1 - lr * wd
 *   m = b1 m + (1-b1) g;   v = b2 v + (1-b2) g g
 *   w -= (lr / (1-b1^t)) m / (sqrt(v) / sqrt(1-b2^t) + eps)
 * Weight decay skips parameters with fewer than two dimensions, as nanoGPT
 * groups them. Parameters without a gradient are left alone, as PyTorch skips
 * p.grad is None, and so are frozen ones (requires_grad false); the step
 * counter is shared and counts every call. */
#include "tapegrad_internal.h"

#include <math.h>
#include <stdlib.h>

/* A piece of one parameter: the update runs over these in parallel, so
 * threads share the work of many small tensors as well as one large one. */
typedef struct adamw_span {
    int param;
    long off, len;
} adamw_span;

enum { SPAN = 16384 };

struct tg_adamw {
    tg_tensor **params;
    float **m, **v;
    adamw_span *spans;
    int n, n_spans;
    long steps;
    float beta1, beta2, eps, weight_decay;
};

/* The scalars of one step, rounded to float the way PyTorch's kernels round
 * its Python (double) scalars, so the two agree to the last bit or so. */
typedef struct adamw_coef {
    float decay, b1, c1, b2, c2, step_size, bc2_sqrt, eps;
} adamw_coef;

/* NULL, or the first bad argument's description. */
static const char *adamw_bad_arg(tg_tensor *const *params, int n, float beta1, float beta2, float eps,
                                 float weight_decay)
{
    if (!params || n < 1)
        return "params must be non-NULL and n >= 1";
    for (int i = 0; i < n; i++)
        if (!params[i])
            return "a parameter is NULL";
    if (!(beta1 >= 0.0f && beta1 < 1.0f))
        return "beta1 must be in [0, 1)";
    if (!(beta2 >= 0.0f && beta2 < 1.0f))
        return "beta2 must be in [0, 1)";
    if (!(eps > 0.0f) || !isfinite(eps))
        return "eps must be finite and > 0";
    if (!(weight_decay >= 0.0f) || !isfinite(weight_decay))
        return "weight_decay must be finite and >= 0";
    return NULL;
}

static tg_adamw *adamw_oom(tg_adamw *o)
{
    tg_adamw_free(o);
    tg_error(NULL, 0, TG_ERR_NOMEM, "tg_adamw_new: out of memory for the optimizer state");
    return NULL;
}

tg_adamw *tg_adamw_new(tg_tensor *const *params, int n, float beta1, float beta2, float eps,
                       float weight_decay)
{
    const char *bad = adamw_bad_arg(params, n, beta1, beta2, eps, weight_decay);
    if (bad) {
        tg_error(NULL, 0, TG_ERR_ARG, "tg_adamw_new: %s (n %d, beta1 %g, beta2 %g, eps %g, weight_decay %g)", bad,
                 n, (double)beta1, (double)beta2, (double)eps, (double)weight_decay);
        return NULL;
    }
    tg_adamw *o = calloc(1, sizeof *o);
    if (!o)
        return adamw_oom(NULL);
    o->n = n;
    for (int i = 0; i < n; i++)
        o->n_spans += (int)((params[i]->size + SPAN - 1) / SPAN);
    o->params = malloc((size_t)n * sizeof *o->params);
    o->m = calloc((size_t)n, sizeof *o->m);
    o->v = calloc((size_t)n, sizeof *o->v);
    o->spans = malloc((size_t)o->n_spans * sizeof *o->spans);
    if (!o->params || !o->m || !o->v || !o->spans)
        return adamw_oom(o);
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    for (int i = 0, k = 0; i < n; i++) {
        o->params[i] = params[i];
        o->m[i] = calloc(params[i]->size, sizeof(float));
        o->v[i] = calloc(params[i]->size, sizeof(float));
        if (!o->m[i] || !o->v[i])
            return adamw_oom(o);
        for (size_t off = 0; off < params[i]->size; off += SPAN, k++) {
            size_t left = params[i]->size - off;
            o->spans[k] = (adamw_span){i, (long)off, (long)(left < SPAN ? left : SPAN)};
        }
    }
    return o;
}

void tg_adamw_free(tg_adamw *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->n; i++) {
        free(o->m ? o->m[i] : NULL);
        free(o->v ? o->v[i] : NULL);
    }
    free(o->m);
    free(o->v);
    free(o->params);
    free(o->spans);
    free(o);
}

/* PyTorch evaluates these in double (Python floats) and hands them to float
 * kernels, so the same happens here, the bias corrections included. */
static adamw_coef adamw_coefs(const tg_adamw *o, float lr, float wd)
{
    double t = (double)o->steps;
    double bc1 = 1.0 - pow((double)o->beta1, t);
    double bc2 = 1.0 - pow((double)o->beta2, t);
    return (adamw_coef){
        .decay = (float)(1.0 - (double)lr * (double)wd),
        .b1 = o->beta1,
        .c1 = (float)(1.0 - (double)o->beta1),
        .b2 = o->beta2,
        .c2 = (float)(1.0 - (double)o->beta2),
        .step_size = (float)((double)lr / bc1),
        .bc2_sqrt = (float)sqrt(bc2),
        .eps = o->eps,
    };
}

/* Elementwise, so threads cannot change the result. Operation order follows
 * PyTorch's mul_, add_(alpha), addcmul_, sqrt, div, add_, addcdiv_. The loop
 * vectorises because the build passes -fno-math-errno (otherwise GCC keeps a
 * branch around sqrtf for errno). */
static void adamw_update(float *restrict w, const float *restrict g, float *restrict m,
                         float *restrict v, long size, adamw_coef c)
{
    for (long j = 0; j < size; j++) {
        w[j] *= c.decay;
        m[j] = m[j] * c.b1 + c.c1 * g[j];
        v[j] = v[j] * c.b2 + c.c2 * g[j] * g[j];
        float denom = sqrtf(v[j]) / c.bc2_sqrt + c.eps;
        w[j] -= c.step_size * m[j] / denom;
    }
}

typedef struct adamw_job {
    const tg_adamw *o;
    adamw_coef decayed, plain;
} adamw_job;

static void adamw_chunk(void *ctx, long k)
{
    const adamw_job *j = ctx;
    const adamw_span *s = &j->o->spans[k];
    tg_tensor *p = j->o->params[s->param];
    if (p->grad && p->requires_grad)
        adamw_update(p->data + s->off, p->grad + s->off, j->o->m[s->param] + s->off, j->o->v[s->param] + s->off,
                     s->len, p->ndim >= 2 ? j->decayed : j->plain);
}

tg_status tg_adamw_step(tg_adamw *o, float lr)
{
    if (!o)
        return tg_error(NULL, 0, TG_ERR_ARG, "tg_adamw_step: the optimizer is NULL");
    if (!(lr >= 0.0f) || !isfinite(lr))
        return tg_error(NULL, 0, TG_ERR_ARG, "tg_adamw_step: learning rate %g is not finite and >= 0", (double)lr);
    o->steps++;
    adamw_job j = {o, adamw_coefs(o, lr, o->weight_decay), adamw_coefs(o, lr, 0.0f)};
    tg_parallel_for(o->n_spans, adamw_chunk, &j);
    return TG_OK;
}

long tg_adamw_steps(const tg_adamw *o)
{
    return o ? o->steps : 0;
}

/* Negative counts are ignored: the bias corrections need t >= 1 after the
 * next step. */
void tg_adamw_set_steps(tg_adamw *o, long steps)
{
    if (o && steps >= 0)
        o->steps = steps;
}

int tg_adamw_count(const tg_adamw *o)
{
    return o ? o->n : 0;
}

tg_tensor *tg_adamw_param(const tg_adamw *o, int i)
{
    return o && i >= 0 && i < o->n ? o->params[i] : NULL;
}

float *tg_adamw_m(const tg_adamw *o, int i)
{
    return o && i >= 0 && i < o->n ? o->m[i] : NULL;
}

float *tg_adamw_v(const tg_adamw *o, int i)
{
    return o && i >= 0 && i < o->n ? o->v[i] : NULL;
}
