/* Generation: tokens per second with the key/value cache (tg_generator_push)
 * against running tg_gpt_logits on the whole window for every token (the
 * way train_gpt sampled before the generator), on the shakespeare-char
 * model's shape (6 layers, 6 heads, dim 384, ctx 256, vocab 65), random
 * weights. Each way generates 2 ctx tokens greedily from one token, so the
 * cached run includes its window restarts; best of several runs.
 * Usage: bench_generate [--threads N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "tapegrad.h"

enum { VOCAB = 65, CTX = 256, N_TOKENS = 2 * CTX };

typedef struct job {
    tg_gpt *m;
    tg_tape *tape;
    tg_generator *g;
    int toks[N_TOKENS + 1];
} job;

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        best = x[i] > x[best] ? i : best;
    return best;
}

static void cached(void *ctx)
{
    job *j = ctx;
    tg_generator_reset(j->g);
    const float *lg = tg_generator_push(j->g, 0, NULL, 0);
    for (int i = 0; i < N_TOKENS; i++)
        lg = tg_generator_push(j->g, argmax(lg, VOCAB), NULL, 0);
}

/* The last ctx tokens through the whole model for every new token. */
static void full(void *ctx)
{
    job *j = ctx;
    j->toks[0] = 0;
    for (int i = 1; i <= N_TOKENS; i++) {
        int len = i < CTX ? i : CTX;
        tg_tape_reset(j->tape);
        tg_tensor *lg = tg_gpt_logits(j->tape, j->m, j->toks + i - len, 1, len);
        j->toks[i] = argmax(lg->data + (size_t)(len - 1) * VOCAB, VOCAB);
    }
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--threads"))
        tg_set_threads(atoi(argv[2]));
    tg_gpt_config cfg = {.vocab = VOCAB, .ctx = CTX, .layers = 6, .heads = 6, .dim = 384, .norm = TG_PRE_LN};
    char err[256];
    job *j = calloc(1, sizeof *j);
    j->m = tg_gpt_new(&cfg, 1, err, sizeof err);
    j->tape = tg_tape_new(0);
    j->g = j->m ? tg_generator_new(j->m, err, sizeof err) : NULL;
    if (!j->g || !j->tape) {
        fprintf(stderr, "bench_generate: %s\n", err);
        return 1;
    }
    double t_cached = bench_best(cached, j, 1.0), t_full = bench_best(full, j, 1.0);
    printf("generate %d tokens, 6 layers dim 384 ctx %d, %d threads\n", N_TOKENS, CTX, tg_get_threads());
    printf("  key/value cache:          %8.1f tokens/s\n", N_TOKENS / t_cached);
    printf("  full window per token:    %8.1f tokens/s\n", N_TOKENS / t_full);
    printf("  ratio: %.1fx\n", t_full / t_cached);
    tg_generator_free(j->g);
    tg_tape_free(j->tape);
    tg_gpt_free(j->m);
    free(j);
    return 0;
}
