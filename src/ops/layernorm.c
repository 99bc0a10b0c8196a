/* LayerNorm over the last dimension (length N), fused.
 *
 * Forward, per row:  mean = sum(x)/N,  var = sum((x - mean)^2)/N (two passes,
 * never E[x^2] - mean^2, which cancels for rows with a large mean),
 * rstd = 1/sqrt(var + eps),  xhat = (x - mean) * rstd,  y = gamma*xhat + beta.
 * mean and rstd are cached per row for the backward.
 *
 * Backward, the closed form of seed 000, with g = dy * gamma:
 *   dx     = rstd * (g - mean(g) - xhat * mean(g * xhat))
 *   dgamma = sum over rows of dy * xhat,   dbeta = sum over rows of dy
 * gamma and beta may be NULL (no affine part). */
#include "tapegrad_internal.h"

#include <math.h>

tg_tensor *tg_layernorm(tg_tape *t, tg_tensor *x, tg_tensor *gamma, tg_tensor *beta, float eps)
{
    if (!tg_tape_check_inputs(t, "tg_layernorm", &x, 1))
        return NULL;
    char sx[48], sp[48];
    int c = tg_cols(x);
    tg_tensor *affine[2] = {gamma, beta};
    for (int i = 0; i < 2; i++) {
        tg_tensor *p = affine[i];
        if (p && (p->ndim != 1 || p->shape[0] != c)) {
            tg_tape_fail(t, TG_ERR_SHAPE, "tg_layernorm: %s must be [%d] for x of %s, got %s",
                         i ? "beta" : "gamma", c, tg_shape_str(x, sx, sizeof sx),
                         tg_shape_str(p, sp, sizeof sp));
            return NULL;
        }
    }
    if (!(eps >= 0.0f) || !isfinite(eps)) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_layernorm: eps must be finite and >= 0, got %g", (double)eps);
        return NULL;
    }
    tg_node n = {.op = TG_OP_LAYERNORM, .n_in = 3, .in = {x, gamma, beta}, .f = {eps}};
    tg_tensor *in[3] = {x, gamma, beta};
    int n_in = 1;
    for (int i = 1; i < 3; i++)
        if (in[i])
            in[n_in++] = in[i];
    n.out = tg_tape_output(t, x->ndim, x->shape, in, n_in);
    n.aux = tg_arena_alloc(t, 2 * tg_rows(x) * sizeof(float));
    if (!n.aux)
        return NULL;
    return tg_tape_record(t, &n);
}

void tg_layernorm_forward(tg_node *n)
{
    const tg_tensor *xt = n->in[0];
    const float *gamma = n->in[1] ? n->in[1]->data : NULL;
    const float *beta = n->in[2] ? n->in[2]->data : NULL;
    int c = tg_cols(xt);
    long rows = (long)tg_rows(xt);
    float *stats = n->aux, eps = n->f[0];
#pragma omp parallel for schedule(static) if (rows * c > 32768)
    for (long r = 0; r < rows; r++) {
        const float *x = xt->data + r * c;
        float *y = n->out->data + r * c;
        float mean = tg_vsum(x, c) / (float)c;
        float acc[TG_LANES] = {0}, var = 0.0f;
        int j = 0;
        for (; j + TG_LANES <= c; j += TG_LANES)
            for (int l = 0; l < TG_LANES; l++)
                acc[l] += (x[j + l] - mean) * (x[j + l] - mean);
        for (; j < c; j++)
            var += (x[j] - mean) * (x[j] - mean);
        for (int l = 0; l < TG_LANES; l++)
            var += acc[l];
        float rstd = 1.0f / sqrtf(var / (float)c + eps);
        for (j = 0; j < c; j++) {
            float xhat = (x[j] - mean) * rstd;
            y[j] = (gamma ? gamma[j] : 1.0f) * xhat + (beta ? beta[j] : 0.0f);
        }
        stats[2 * r] = mean;
        stats[2 * r + 1] = rstd;
    }
}

static void layernorm_dx(const tg_node *n)
{
    const tg_tensor *xt = n->in[0];
    const float *gamma = n->in[1] ? n->in[1]->data : NULL;
    const float *stats = n->aux;
    int c = tg_cols(xt);
    long rows = (long)tg_rows(xt);
#pragma omp parallel for schedule(static) if (rows * c > 32768)
    for (long r = 0; r < rows; r++) {
        const float *x = xt->data + r * c, *dy = n->out->grad + r * c;
        float *dx = xt->grad + r * c;
        float mean = stats[2 * r], rstd = stats[2 * r + 1];
        float sum_g = 0.0f, sum_gx = 0.0f;
        for (int j = 0; j < c; j++) {
            float g = gamma ? dy[j] * gamma[j] : dy[j];
            sum_g += g;
            sum_gx += g * (x[j] - mean) * rstd;
        }
        float mg = sum_g / (float)c, mgx = sum_gx / (float)c;
        for (int j = 0; j < c; j++) {
            float g = gamma ? dy[j] * gamma[j] : dy[j];
            dx[j] += rstd * (g - mg - (x[j] - mean) * rstd * mgx);
        }
    }
}

static void layernorm_dparams(const tg_node *n)
{
    const tg_tensor *xt = n->in[0];
    float *dgamma = n->in[1] ? n->in[1]->grad : NULL;
    float *dbeta = n->in[2] ? n->in[2]->grad : NULL;
    const float *stats = n->aux;
    int c = tg_cols(xt);
    long rows = (long)tg_rows(xt);
    for (long r = 0; r < rows; r++) {
        const float *x = xt->data + r * c, *dy = n->out->grad + r * c;
        float mean = stats[2 * r], rstd = stats[2 * r + 1];
        for (int j = 0; j < c; j++) {
            if (dgamma)
                dgamma[j] += dy[j] * (x[j] - mean) * rstd;
            if (dbeta)
                dbeta[j] += dy[j];
        }
    }
}

void tg_layernorm_backward(tg_node *n)
{
    if (n->in[0]->grad)
        layernorm_dx(n);
    layernorm_dparams(n);
}
