/* A two-block residual MLP with LayerNorm fitting a generated regression:
 *
 *   h = x Win^T + bin;   h = h + LN_k(h) W_k^T + c_k  (k = 1, 2)
 *   y = LN_f(h) Wout^T + bout;   loss = mean((y - target)^2)
 *
 * trained full-batch with SGD and momentum. It prints the loss as it falls. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"

enum { N = 256, D = 4, H = 32, BLOCKS = 2 };

typedef struct model {
    tg_tensor *w_in, *b_in, *ln_g[BLOCKS + 1], *ln_b[BLOCKS + 1], *w[BLOCKS], *c[BLOCKS], *w_out, *b_out;
    tg_tensor *all[4 * BLOCKS + 6];
    int n;
} model;

static tg_tensor *add_param(model *m, int ndim, const int *shape, const char *name)
{
    tg_tensor *p = tg_param_new(ndim, shape, name);
    if (p)
        m->all[m->n++] = p;
    return p;
}

static bool model_init(model *m, tg_rng *r)
{
    memset(m, 0, sizeof *m);
    m->w_in = add_param(m, 2, (int[]){H, D}, "w_in");
    m->b_in = add_param(m, 1, (int[]){H}, "b_in");
    for (int k = 0; k <= BLOCKS; k++) {
        m->ln_g[k] = add_param(m, 1, (int[]){H}, "ln.weight");
        m->ln_b[k] = add_param(m, 1, (int[]){H}, "ln.bias");
    }
    for (int k = 0; k < BLOCKS; k++) {
        m->w[k] = add_param(m, 2, (int[]){H, H}, "w");
        m->c[k] = add_param(m, 1, (int[]){H}, "c");
    }
    m->w_out = add_param(m, 2, (int[]){1, H}, "w_out");
    m->b_out = add_param(m, 1, (int[]){1}, "b_out");
    if (m->n != (int)(sizeof m->all / sizeof *m->all))
        return false;
    tg_fill_normal(m->w_in, r, 0.0f, 1.0f / sqrtf(D));
    for (int k = 0; k < BLOCKS; k++)
        tg_fill_normal(m->w[k], r, 0.0f, 1.0f / sqrtf(H));
    for (int k = 0; k <= BLOCKS; k++)
        tg_fill(m->ln_g[k], 1.0f);
    tg_fill_normal(m->w_out, r, 0.0f, 1.0f / sqrtf(H));
    return true;
}

static tg_tensor *forward(tg_tape *t, const model *m, tg_tensor *x, tg_tensor *target)
{
    tg_tensor *h = tg_add(t, tg_matmul(t, x, m->w_in, false, true), m->b_in);
    for (int k = 0; k < BLOCKS; k++) {
        tg_tensor *branch = tg_matmul(t, tg_layernorm(t, h, m->ln_g[k], m->ln_b[k], 1e-5f), m->w[k], false, true);
        h = tg_residual(t, h, tg_add(t, branch, m->c[k]));
    }
    tg_tensor *y = tg_add(t, tg_matmul(t, tg_layernorm(t, h, m->ln_g[BLOCKS], m->ln_b[BLOCKS], 1e-5f),
                                       m->w_out, false, true), m->b_out);
    tg_tensor *err = tg_add(t, y, tg_scale(t, target, -1.0f));
    return tg_mean(t, tg_mul(t, err, err));
}

/* target = sin(2 x0) + x1 x2 - 0.5 x3, inputs uniform in [-1, 1]. */
static void make_data(tg_rng *r, float *x, float *target)
{
    for (int i = 0; i < N; i++) {
        float *xi = x + i * D;
        for (int j = 0; j < D; j++)
            xi[j] = 2.0f * tg_rng_uniform(r) - 1.0f;
        target[i] = sinf(2.0f * xi[0]) + xi[1] * xi[2] - 0.5f * xi[3];
    }
}

static int usage(FILE *f, int status)
{
    fprintf(f, "usage: residual_mlp [--steps N (300)] [--lr X (0.05)] [--seed N (1)]\n");
    return status;
}

int main(int argc, char **argv)
{
    long steps = 300, seed = 1;
    double lr = 0.05;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (!strcmp(argv[i], "--help"))
            return usage(stdout, 0);
        if (i + 1 >= argc)
            return usage(stderr, 2);
        const char *v = argv[++i];
        if (!strcmp(argv[i - 1], "--steps"))
            steps = strtol(v, &end, 10);
        else if (!strcmp(argv[i - 1], "--lr"))
            lr = strtod(v, &end);
        else if (!strcmp(argv[i - 1], "--seed"))
            seed = strtol(v, &end, 10);
        else
            return fprintf(stderr, "residual_mlp: unknown flag %s\n", argv[i - 1]), usage(stderr, 2);
        if (!end || *end || steps < 1 || !(lr > 0.0 && isfinite(lr))) {
            fprintf(stderr, "residual_mlp: bad value for %s: '%s'\n", argv[i - 1], v);
            return 2;
        }
    }
    tg_rng r;
    tg_rng_seed(&r, (uint64_t)seed);
    model m;
    tg_tape *t = tg_tape_new(0);
    tg_sgd *opt = NULL;
    int status = 1;
    if (!t || !model_init(&m, &r) || !(opt = tg_sgd_new(m.all, m.n, 0.9f, 0.0f))) {
        fprintf(stderr, "residual_mlp: out of memory\n");
        goto done;
    }
    float x[N * D], target[N];
    make_data(&r, x, target);
    for (long step = 0; step < steps; step++) {
        tg_tape_reset(t);
        tg_tensor *xt = tg_tape_tensor(t, 2, (int[]){N, D});
        tg_tensor *yt = tg_tape_tensor(t, 2, (int[]){N, 1});
        if (xt && yt) {
            memcpy(xt->data, x, sizeof x);
            memcpy(yt->data, target, sizeof target);
        }
        tg_tensor *loss = forward(t, &m, xt, yt);
        tg_zero_grad(m.all, m.n);
        if (tg_backward(t, loss) != TG_OK) {
            fprintf(stderr, "residual_mlp: %s\n", tg_tape_error(t));
            goto done;
        }
        if (step % 25 == 0 || step == steps - 1)
            printf("step %4ld  loss %.6f\n", step, (double)loss->data[0]);
        tg_sgd_step(opt, (float)lr);
    }
    status = 0;
done:
    tg_sgd_free(opt);
    for (int i = 0; i < m.n; i++)
        tg_param_free(m.all[i]);
    tg_tape_free(t);
    return status;
}
