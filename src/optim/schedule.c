/* What a training loop does around the optimizer step: the learning-rate
 * schedule and gradient-norm clipping. */
#include "tapegrad_internal.h"

#include <math.h>

/* M_PI is not in C11. */
#define SCHEDULE_PI 3.14159265358979323846

/* Sum of x^2 in double. The products of two floats are exact in double; the
 * TG_LANES independent accumulators let the loop vectorise without
 * reassociating, and the fixed order makes the sum the same on every run. */
static double sum_squares(const float *x, size_t n)
{
    double acc[TG_LANES] = {0};
    size_t j = 0;
    for (; j + TG_LANES <= n; j += TG_LANES)
        for (int l = 0; l < TG_LANES; l++)
            acc[l] += (double)x[j + l] * (double)x[j + l];
    double s = 0.0;
    for (; j < n; j++)
        s += (double)x[j] * (double)x[j];
    for (int l = 0; l < TG_LANES; l++)
        s += acc[l];
    return s;
}

/* norm = sqrt(sum over all gradients of g^2); when max_norm > 0 and
 * norm > max_norm:  g *= max_norm / (norm + 1e-6)  (torch's clip_grad_norm_,
 * which also scales by its clamped coefficient 1 otherwise, a no-op skipped
 * here). Parameters without a gradient, and frozen ones, are skipped. A non-finite norm leaves
 * the gradients alone and is returned, so the caller can skip the step. */
float tg_clip_grad_norm(tg_tensor *const *params, int n, float max_norm)
{
    double ss = 0.0;
    for (int i = 0; params && i < n; i++)
        if (params[i] && params[i]->grad && params[i]->requires_grad)
            ss += sum_squares(params[i]->grad, params[i]->size);
    double norm = sqrt(ss);
    if (!(max_norm > 0.0f && norm > max_norm && isfinite(norm)))
        return (float)norm;
    float coef = (float)((double)max_norm / (norm + 1e-6));
    for (int i = 0; i < n; i++) {
        if (!params[i] || !params[i]->grad || !params[i]->requires_grad)
            continue;
        float *g = params[i]->grad;
        for (size_t j = 0; j < params[i]->size; j++)
            g[j] *= coef;
    }
    return (float)norm;
}

/* nanoGPT's get_lr, in double as Python computes it:
 *   step < warmup:  lr (step + 1) / (warmup + 1)
 *   step > total:   min_lr
 *   otherwise:      min_lr + (1 + cos(pi r)) / 2 (lr - min_lr),
 *                   r = (step - warmup) / (total - warmup)
 * The warm-up is the newer nanoGPT form, (it+1)/(warmup_iters+1): step 0
 * already gets lr/(warmup+1) (a zero rate would waste a step) and the ramp
 * joins the cosine at lr on step warmup. With total <= warmup there is no
 * decay phase: nanoGPT divides by zero at step == total, so min_lr is
 * returned from step warmup on, which is what it gives for step > total.
 * Negative steps and warm-ups count as 0. */
float tg_lr_schedule(long step, long warmup, long total, float lr, float min_lr)
{
    step = step < 0 ? 0 : step;
    warmup = warmup < 0 ? 0 : warmup;
    if (step < warmup)
        return (float)((double)lr * ((double)step + 1.0) / ((double)warmup + 1.0)); /* no long overflow */
    if (step > total || total <= warmup)
        return min_lr;
    double ratio = (double)(step - warmup) / (double)(total - warmup);
    double coeff = 0.5 * (1.0 + cos(SCHEDULE_PI * ratio));
    return (float)((double)min_lr + coeff * ((double)lr - (double)min_lr));
}
