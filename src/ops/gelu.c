/* GELU in its two forms.
 *
 * The tanh approximation (GPT-2):
 *   u = s (x + a x^3),  s = sqrt(2/pi),  a = 0.044715
 *   y = 0.5 x (1 + tanh u)
 *   dy/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) s (1 + 3 a x^2)
 * computed through 0.5 (1 + tanh u) = sigmoid(2u) = g = 1 / (1 + exp(-2u)),
 * for which 0.5 (1 - tanh^2 u) = 2 g (1 - g):
 *   y = x g,   dy/dx = g + 2 x g (1 - g) s (1 + 3 a x^2)
 * One exp and one division, with no cancellation in 1 + tanh u where x is
 * negative; exp is vmath.h's, which vectorises (libm's does not).
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

/* g = sigmoid(2u) at x. Beyond |x| = 10, g is 1 or 0 in float (1 - g(10)
 * is 1e-38), and x^3 must not reach the terms: exp's clamp would keep g
 * from reaching 0, and g (1 - g) x^3 would then grow without bound. So x is
 * clamped to 10 in size and g set to 0 where exp's argument is beyond 87
 * (x below -9.99). A NaN passes through. Selects only, so the loops
 * vectorise. */
#define GELU_EDGE 10.0f

static inline float clamp_edge(float x)
{
    x = x < -GELU_EDGE ? -GELU_EDGE : x;
    return x > GELU_EDGE ? GELU_EDGE : x;
}

static inline float gate(float xc)
{
    float arg = -2.0f * GELU_S * (xc + GELU_A * xc * xc * xc);
    return (arg > 87.0f ? 0.0f : 1.0f) / (1.0f + tg_vexp(arg));
}

void tg_gelu_span(const float *restrict x, float *restrict y, long n)
{
    for (long i = 0; i < n; i++)
        y[i] = x[i] * gate(clamp_edge(x[i]));
}

static inline float slope(float x)
{
    float xc = clamp_edge(x), g = gate(xc);
    return g + 2.0f * xc * g * (1.0f - g) * GELU_S * (1.0f + 3.0f * GELU_A * xc * xc);
}

/* dx = or += slope * dy: stored when nothing has written dx yet (see
 * tg_grad_claim). */
static void backward_span(const float *restrict x, const float *restrict dy, float *restrict dx, long n, bool store)
{
    if (store)
        for (long i = 0; i < n; i++)
            dx[i] = slope(x[i]) * dy[i];
    else
        for (long i = 0; i < n; i++)
            dx[i] += slope(x[i]) * dy[i];
}

/* Spans of a fixed length, whatever the thread count; the loops inside stay
 * simple enough for GCC to vectorise. */
enum { SPAN = 16384 };

static void forward_chunk(void *ctx, long s)
{
    const tg_node *n = ctx;
    long len = tg_chunk_end(s, SPAN, (long)n->out->size) - s * SPAN;
    tg_gelu_span(n->in[0]->data + s * SPAN, n->out->data + s * SPAN, len);
}

typedef struct backward_job {
    const tg_node *n;
    bool store;
} backward_job;

static void backward_chunk(void *ctx, long s)
{
    const backward_job *j = ctx;
    const tg_node *n = j->n;
    long len = tg_chunk_end(s, SPAN, (long)n->out->size) - s * SPAN;
    backward_span(n->in[0]->data + s * SPAN, n->out->grad + s * SPAN, n->in[0]->grad + s * SPAN, len, j->store);
}

void tg_gelu_forward(tg_node *n)
{
    tg_parallel_for(tg_chunks((long)n->out->size, SPAN), forward_chunk, n);
}

void tg_gelu_backward(tg_node *n)
{
    if (!n->in[0]->grad)
        return;
    backward_job j = {n, tg_grad_claim(n->in[0])};
    tg_parallel_for(tg_chunks((long)n->out->size, SPAN), backward_chunk, &j);
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
