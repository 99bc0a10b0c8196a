/* A model's whole life through the library: data, training, evaluation,
 * save, load, generation. `model_life TEXTFILE DIR` trains a tiny GPT on
 * the file's bytes for 200 steps, scores the last tenth exactly, saves the
 * model with its optimizer to DIR/model.st, loads it back, checks the
 * loaded model scores the same, and prints 80 sampled characters. */
#include <stdio.h>
#include <stdlib.h>

#include "tapegrad.h"

#define CHECK(call)                                                  \
    do {                                                             \
        if ((call) != TG_OK) {                                       \
            fprintf(stderr, "model_life: %s\n", err);                \
            return 1;                                                \
        }                                                            \
    } while (0)

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: model_life TEXTFILE DIR\n");
        return 2;
    }
    char err[512] = "", path[4096];
    tg_tokens text;
    tg_byte_vocab vocab;
    CHECK(tg_text_load(argv[1], &text, &vocab, err, sizeof err));
    long n_train = text.n * 9 / 10;
    enum { B = 8, T = 32 };

    tg_gpt_config cfg = {.vocab = vocab.size, .ctx = T, .layers = 2, .heads = 2, .dim = 32};
    tg_gpt *m = tg_gpt_new(&cfg, 1337, err, sizeof err);
    tg_adamw *opt = m ? tg_adamw_new(m->params, m->n_params, 0.9f, 0.99f, 1e-8f, 0.1f) : NULL;
    tg_tape *t = tg_tape_new(0);
    if (!m || !opt || !t)
        return fprintf(stderr, "model_life: %s\n", m ? tg_last_error() : err), 1;
    int ids[B * T], targets[B * T];
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    for (int step = 0; step < 200; step++) {
        CHECK(tg_batch_random(text.ids, n_train, &rng, B, T, ids, targets));
        tg_tape_reset(t);
        tg_tensor *loss = tg_gpt_loss(t, m, ids, targets, B, T);
        tg_zero_grad(m->params, m->n_params);
        if (tg_backward(t, loss) != TG_OK)
            return fprintf(stderr, "model_life: %s\n", tg_tape_error(t)), 1;
        tg_clip_grad_norm(m->params, m->n_params, 1.0f);
        tg_adamw_step(opt, tg_lr_schedule(step, 20, 200, 3e-3f, 3e-4f));
    }

    double before, after;
    CHECK(tg_gpt_eval(m, t, text.ids + n_train, text.n - n_train, T, B, &before, err, sizeof err));
    char chars[1024];
    tg_byte_vocab_format(&vocab, chars, sizeof chars);
    const char *keys[] = {"chars"}, *values[] = {chars};
    snprintf(path, sizeof path, "%s/model.st", argv[2]);
    CHECK(tg_gpt_save(path, m, opt, keys, values, 1, err, sizeof err));

    tg_gpt *loaded = tg_gpt_load(path, err, sizeof err);
    if (!loaded)
        return fprintf(stderr, "model_life: %s\n", err), 1;
    CHECK(tg_gpt_eval(loaded, t, text.ids + n_train, text.n - n_train, T, B, &after, err, sizeof err));
    printf("validation loss %.4f; after save and load %.4f\n", before, after);

    int prompt = tg_byte_encode(&vocab, '\n'), out[80];
    prompt = prompt >= 0 ? prompt : 0;
    CHECK(tg_gpt_generate(loaded, &prompt, 1, 80, 0.8f, 0, 42, out, err, sizeof err));
    for (int i = 0; i < 80; i++)
        putchar(tg_byte_decode(&vocab, out[i]));
    putchar('\n');

    tg_gpt_free(loaded);
    tg_tape_free(t);
    tg_adamw_free(opt);
    tg_gpt_free(m);
    tg_tokens_free(&text);
    return before == after ? 0 : 1;
}
