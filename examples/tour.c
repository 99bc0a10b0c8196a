#include <stdio.h>
#include "tapegrad.h"

int main(void)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *w1 = tg_param_new(2, (int[]){16, 4}, "w1"); /* Linear [out, in] */
    tg_tensor *w2 = tg_param_new(2, (int[]){1, 16}, "w2");
    tg_tensor *g = tg_param_new(1, (int[]){16}, "ln.weight");
    tg_tensor *b = tg_param_new(1, (int[]){16}, "ln.bias");
    tg_fill_normal(w1, &rng, 0.0f, 0.5f);
    tg_fill_normal(w2, &rng, 0.0f, 0.5f);
    tg_fill(g, 1.0f);

    tg_tape *tape = tg_tape_new(0);
    tg_tensor *x = tg_tape_tensor(tape, 2, (int[]){8, 4}); /* a batch of 8 */
    tg_fill_normal(x, &rng, 0.0f, 1.0f);
    tg_tensor *h = tg_name(tg_linear(tape, x, w1, NULL), "h");
    h = tg_residual(tape, h, tg_gelu(tape, tg_layernorm(tape, h, g, b, 1e-5f)));
    tg_tensor *loss = tg_mean(tape, tg_linear(tape, tg_name(h, "stream"), w2, NULL));

    tg_tensor *params[] = {w1, w2, g, b};
    tg_zero_grad(params, 4);
    if (tg_backward(tape, loss) != TG_OK) {
        fprintf(stderr, "%s\n", tg_tape_error(tape));
        return 1;
    }
    printf("loss %.4f  dloss/dw1[0] %.4f  dloss/dh[0] %.4f\n", (double)loss->data[0],
           (double)w1->grad[0], (double)tg_tape_find(tape, "h")->grad[0]);
    tg_grad_stat rows[16]; /* gradient norms: named tensors, params, residual adds */
    int n = tg_grad_report(tape, rows, 16);
    tg_grad_report_print(stdout, rows, n < 16 ? n : 16);
    tg_tape_free(tape);
    for (int i = 0; i < 4; i++)
        tg_param_free(params[i]);
    return 0;
}
