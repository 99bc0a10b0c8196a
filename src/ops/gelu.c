/* GELU in its two forms.
 *
 * The tanh approximation (GPT-2):
 *   u = s (x + a x^3),  s = sqrt(2/pi),  a = 0.044715
 *   y = 0.5 x (1 + tanh u)
 *   dy/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) s (1 + 3 a x^2)
 * tanh is vmath.h's, which vectorises (libm's tanhf does not).
 *
 * The exact form with erf (PyTorch's default, nn.GELU()):
 *   y = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
 *   dy/dx = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
 * With libm's erff, single-threaded: no model here spends its time in it. */
#include "tapegrad_internal.h"
#include "vmath.h"

#include <math.h>

#define GELU_S 0.7978845608028654f
#define GELU_A 0.044715f

tg_tensor *tg_gelu(tg_tape *t, tg_tensor *x)
{
    if (!tg_tape_check_inputs(t, "tg_gelu", &x, 1))
        return NULL;
    tg_node n = {.op = TG_OP_GELU, .n_in = 1, .in = {x}};
    return tg_tape_emit(t, &n, x->ndim, x->shape);
}

void tg_gelu_span(const float *restrict x, float *restrict y, long n)
{
    for (long i = 0; i < n; i++) {
        float u = GELU_S * (x[i] + GELU_A * x[i] * x[i] * x[i]);
        y[i] = 0.5f * x[i] * (1.0f + tg_vtanh(u));
    }
}

static void backward_span(const float *restrict x, const float *restrict dy, float *restrict dx, long n)
{
    for (long i = 0; i < n; i++) {
        float xi = x[i];
        float th = tg_vtanh(GELU_S * (xi + GELU_A * xi * xi * xi));
        float d = 0.5f * (1.0f + th) + 0.5f * xi * (1.0f - th * th) * GELU_S * (1.0f + 3.0f * GELU_A * xi * xi);
        dx[i] += d * dy[i];
    }
}

/* Spans of a fixed length, whatever the thread count; the loops inside stay
 * simple enough for GCC to vectorise. */
enum { SPAN = 16384 };

static void forward_chunk(void *ctx, long s)
{
    const tg_node *n = ctx;
    long len = (long)n->out->size - s * SPAN;
    tg_gelu_span(n->in[0]->data + s * SPAN, n->out->data + s * SPAN, len < SPAN ? len : SPAN);
}

static void backward_chunk(void *ctx, long s)
{
    const tg_node *n = ctx;
    long len = (long)n->out->size - s * SPAN;
    backward_span(n->in[0]->data + s * SPAN, n->out->grad + s * SPAN, n->in[0]->grad + s * SPAN,
                  len < SPAN ? len : SPAN);
}

void tg_gelu_forward(tg_node *n)
{
    tg_parallel_for(tg_chunks((long)n->out->size, SPAN), forward_chunk, n);
}

void tg_gelu_backward(tg_node *n)
{
    if (n->in[0]->grad)
        tg_parallel_for(tg_chunks((long)n->out->size, SPAN), backward_chunk, n);
}

#define SQRT1_2 0.7071067811865476f
#define INV_SQRT_2PI 0.3989422804014327f

tg_tensor *tg_gelu_erf(tg_tape *t, tg_tensor *x)
{
    if (!tg_tape_check_inputs(t, "tg_gelu_erf", &x, 1))
        return NULL;
    tg_node n = {.op = TG_OP_GELU_ERF, .n_in = 1, .in = {x}};
    return tg_tape_emit(t, &n, x->ndim, x->shape);
}

void tg_gelu_erf_forward(tg_node *n)
{
    const float *x = n->in[0]->data;
    float *y = n->out->data;
    for (size_t i = 0; i < n->out->size; i++)
        y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * SQRT1_2));
}

void tg_gelu_erf_backward(tg_node *n)
{
    const float *x = n->in[0]->data, *dy = n->out->grad;
    float *dx = n->in[0]->grad;
    if (dx)
        for (size_t i = 0; i < n->out->size; i++) {
            float cdf = 0.5f * (1.0f + erff(x[i] * SQRT1_2));
            float pdf = INV_SQRT_2PI * expf(-0.5f * x[i] * x[i]);
            dx[i] += dy[i] * (cdf + x[i] * pdf);
        }
}
