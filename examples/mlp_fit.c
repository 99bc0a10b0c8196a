/* A ReLU MLP fitting y = sin(3x) on [-1, 1] with the mean-squared error. */
#include <math.h>
#include <stdio.h>
#include "tapegrad.h"

int main(void)
{
    enum { N = 256, H = 32, STEPS = 500 };
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *x = tg_param_new(2, (int[]){N, 1}, "x"), *y = tg_param_new(2, (int[]){N, 1}, "y");
    x->requires_grad = y->requires_grad = false; /* data, not parameters */
    for (int i = 0; i < N; i++) {
        x->data[i] = -1.0f + 2.0f * (float)i / (N - 1);
        y->data[i] = sinf(3.0f * x->data[i]);
    }
    tg_tensor *p[6] = {tg_param_new(2, (int[]){H, 1}, "w1"), tg_param_new(1, (int[]){H}, "b1"),
                       tg_param_new(2, (int[]){H, H}, "w2"), tg_param_new(1, (int[]){H}, "b2"),
                       tg_param_new(2, (int[]){1, H}, "w3"), tg_param_new(1, (int[]){1}, "b3")};
    for (int i = 0; i < 6; i += 2) /* He init: std sqrt(2 / fan_in) */
        tg_fill_normal(p[i], &rng, 0.0f, sqrtf(2.0f / (float)p[i]->shape[1]));
    tg_adamw *opt = tg_adamw_new(p, 6, 0.9f, 0.999f, 1e-8f, 0.0f);
    tg_tape *t = tg_tape_new(0);
    for (int step = 0; step <= STEPS; step++) {
        tg_tape_reset(t);
        tg_tensor *h = tg_relu(t, tg_linear(t, x, p[0], p[1]));
        h = tg_relu(t, tg_linear(t, h, p[2], p[3]));
        tg_tensor *loss = tg_mse(t, tg_linear(t, h, p[4], p[5]), y);
        tg_zero_grad(p, 6);
        if (tg_backward(t, loss) != TG_OK) {
            fprintf(stderr, "%s\n", tg_tape_error(t));
            return 1;
        }
        tg_adamw_step(opt, 1e-2f * (1.0f - (float)step / (STEPS + 1)));
        if (step % 100 == 0)
            printf("step %d loss %.6f\n", step, (double)loss->data[0]);
    }
    tg_tape_free(t);
    tg_adamw_free(opt);
    for (int i = 0; i < 6; i++)
        tg_param_free(p[i]);
    tg_param_free(x);
    tg_param_free(y);
    return 0;
}
