/* Elementwise functions of one tensor, y = f(x), dx += f'(x) dy, each with
 * its derivative written beside it (in x, the output y, and the op's
 * constants p and q). Values outside a function's domain give what C gives
 * (log of a negative number is NaN); NaN inputs come out as NaN.
 *
 * At a kink the derivative taken is PyTorch's: relu'(0) = 0, abs'(0) = 0,
 * and clamp passes the gradient where lo <= x <= hi, bounds included. */
#include "tapegrad_internal.h"

#include <math.h>

static tg_tensor *unary(tg_tape *t, tg_op op, const char *who, tg_tensor *x, float p, float q)
{
    if (!tg_tape_check_inputs(t, who, &x, 1))
        return NULL;
    tg_node n = {.op = op, .n_in = 1, .in = {x}, .f = {p, q}};
    return tg_tape_emit(t, &n, x->ndim, x->shape);
}

/* 1 / (1 + e^-x), with e^x / (1 + e^x) for x < 0 so no exp overflows. */
static inline float sigmoid(float x)
{
    float e = expf(-fabsf(x));
    return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

#define UNARY_KERNELS(name, F, D)                                                  \
    void tg_##name##_forward(tg_node *n)                                           \
    {                                                                              \
        const float *xs = n->in[0]->data, p = n->f[0], q = n->f[1];                \
        float *ys = n->out->data;                                                  \
        for (size_t i = 0; i < n->out->size; i++) {                                \
            float x = xs[i];                                                       \
            ys[i] = (F);                                                           \
        }                                                                          \
    }                                                                              \
    void tg_##name##_backward(tg_node *n)                                          \
    {                                                                              \
        const float *xs = n->in[0]->data, *ys = n->out->data, *dy = n->out->grad;  \
        const float p = n->f[0], q = n->f[1];                                      \
        float *dx = n->in[0]->grad;                                                \
        if (dx)                                                                    \
            for (size_t i = 0; i < n->out->size; i++) {                            \
                float x = xs[i], y = ys[i];                                        \
                dx[i] += dy[i] * (D);                                              \
            }                                                                      \
    }

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-variable"

/* y = e^x;  dy/dx = y */
tg_tensor *tg_exp(tg_tape *t, tg_tensor *x) { return unary(t, TG_OP_EXP, "tg_exp", x, 0, 0); }
UNARY_KERNELS(exp, expf(x), y)

/* y = ln x;  dy/dx = 1/x */
tg_tensor *tg_log(tg_tape *t, tg_tensor *x) { return unary(t, TG_OP_LOG, "tg_log", x, 0, 0); }
UNARY_KERNELS(log, logf(x), 1.0f / x)

/* y = sqrt x;  dy/dx = 1 / (2 y) */
tg_tensor *tg_sqrt(tg_tape *t, tg_tensor *x) { return unary(t, TG_OP_SQRT, "tg_sqrt", x, 0, 0); }
UNARY_KERNELS(sqrt, sqrtf(x), 0.5f / y)

/* y = x^p;  dy/dx = p x^(p-1), taken as 0 for p = 0 (y is constant 1, and
 * x^-1 would make 0 * inf at x = 0). */
tg_tensor *tg_pow(tg_tape *t, tg_tensor *x, float p)
{
    if (!isfinite(p)) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_pow: the exponent is %g", (double)p);
        return NULL;
    }
    return unary(t, TG_OP_POW, "tg_pow", x, p, 0);
}
UNARY_KERNELS(pow, powf(x, p), p == 0.0f ? 0.0f : p * powf(x, p - 1.0f))

/* y = |x|;  dy/dx = sign x (0 at 0) */
tg_tensor *tg_abs(tg_tape *t, tg_tensor *x) { return unary(t, TG_OP_ABS, "tg_abs", x, 0, 0); }
UNARY_KERNELS(abs, fabsf(x), x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : 0.0f)

/* y = tanh x;  dy/dx = 1 - y^2 */
tg_tensor *tg_tanh(tg_tape *t, tg_tensor *x) { return unary(t, TG_OP_TANH, "tg_tanh", x, 0, 0); }
UNARY_KERNELS(tanh, tanhf(x), 1.0f - y * y)

/* y = s(x) = 1 / (1 + e^-x);  dy/dx = y (1 - y) */
tg_tensor *tg_sigmoid(tg_tape *t, tg_tensor *x) { return unary(t, TG_OP_SIGMOID, "tg_sigmoid", x, 0, 0); }
UNARY_KERNELS(sigmoid, sigmoid(x), y * (1.0f - y))

/* y = max(x, 0);  dy/dx = [x > 0] */
tg_tensor *tg_relu(tg_tape *t, tg_tensor *x) { return unary(t, TG_OP_RELU, "tg_relu", x, 0, 0); }
UNARY_KERNELS(relu, x > 0.0f || x != x ? x : 0.0f, x > 0.0f ? 1.0f : 0.0f)

/* y = x s(x) (SiLU, swish);  dy/dx = s(x) (1 + x (1 - s(x))) */
tg_tensor *tg_silu(tg_tape *t, tg_tensor *x) { return unary(t, TG_OP_SILU, "tg_silu", x, 0, 0); }
UNARY_KERNELS(silu, x * sigmoid(x), sigmoid(x) * (1.0f + x * (1.0f - sigmoid(x))))

/* y = min(max(x, lo), hi);  dy/dx = [lo <= x <= hi]. Either bound may be
 * infinite (a one-sided clamp). */
tg_tensor *tg_clamp(tg_tape *t, tg_tensor *x, float lo, float hi)
{
    if (isnan(lo) || isnan(hi) || lo > hi) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_clamp: need lo <= hi, got lo %g, hi %g", (double)lo, (double)hi);
        return NULL;
    }
    return unary(t, TG_OP_CLAMP, "tg_clamp", x, lo, hi);
}
UNARY_KERNELS(clamp, x < p ? p : x > q ? q : x, x >= p && x <= q ? 1.0f : 0.0f)

#pragma GCC diagnostic pop
