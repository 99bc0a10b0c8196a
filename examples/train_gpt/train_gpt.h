/* train_gpt: the parts of the program shared between its files.
 *
 *   args.c        flags, defaults, --help and the checks made before any work
 *   data.c        the built-in sort task and character-level text files
 *   checkpoint.c  --save / --resume / --dump-grads (safetensors files)
 *   train_gpt.c   the training loop, evaluation, progress, sampling
 */
#ifndef TRAIN_GPT_H
#define TRAIN_GPT_H

#include <stdbool.h>
#include <stdio.h>

#include "tapegrad.h"

/* Exit statuses: bad flags are 2 (before any work), failures during the run 1. */
enum { EXIT_USAGE = 2 };

typedef struct options {
    const char *data, *save, *resume, *log, *dump_grads;
    int layers, heads, dim, ctx, batch, steps, warmup, threads;
    int eval_every, eval_iters, sample, top_k, stop_after;
    float lr, min_lr, weight_decay, beta2, clip, temperature;
    tg_norm_place norm;
    unsigned long long seed;
    bool profile, no_bias, eval_full;
    /* A bit per flag the command line gave, so --resume can tell a
     * deliberate change from a default. */
    unsigned long long given;
} options;

/* Fills o from argv. Returns 0 to go on, -1 after printing --help, or
 * EXIT_USAGE after a one-line message on stderr. */
int parse_args(int argc, char **argv, options *o);
/* Whether the command line gave the flag ("--dim"). */
bool given(const options *o, const char *flag);

/* The training data: either the sort task (generated) or a text file's
 * characters. Tokens are ints in [0, vocab). */
typedef struct dataset {
    bool is_sort;
    int vocab;
    unsigned char chars[256]; /* text: token -> byte */
    int *tokens;              /* text: the whole file as tokens */
    long n_tokens, n_train;   /* text: the first n_train are the training split */
    unsigned char *held_out;  /* sort: bitmap of the inputs kept for testing */
    int *test;                /* sort: those inputs, as numbers */
} dataset;

/* The sort task: SORT_LEN digits, a separator, the digits sorted. */
enum { SORT_LEN = 6, SORT_SEP = 10, SORT_VOCAB = 11, SORT_CTX = 2 * SORT_LEN, SORT_TEST = 1000 };

bool data_load_text(dataset *d, const char *path, char *err, size_t errlen);
bool data_make_sort(dataset *d);
void data_free(dataset *d);
/* A batch [batch, ctx] of inputs and next-token targets (-1 where the sort
 * task does not score a position). val picks the validation split of text. */
void data_batch(const dataset *d, tg_rng *r, bool val, int batch, int ctx, int *ids, int *targets);
/* digits, the separator, the digits sorted: SORT_CTX + 1 tokens into seq. */
void data_sort_sequence(const int *digits, int *seq);
/* Held-out sort problem i (0 <= i < SORT_TEST): SORT_LEN input digits. */
void data_sort_test(const dataset *d, int i, int *digits);

/* Everything a checkpoint holds besides the parameters. */
typedef struct train_state {
    long step;    /* steps done */
    tg_rng rng;   /* the batch sampler */
} train_state;

bool ckpt_save(const char *path, const tg_gpt *m, tg_adamw *opt, const options *o, const dataset *d,
               const train_state *s, char *err, size_t errlen);
/* Reads path into m, opt and s, after checking that it matches d. */
bool ckpt_load(const char *path, tg_gpt *m, tg_adamw *opt, const dataset *d, train_state *s, char *err,
               size_t errlen);
/* Reads the model shape and optimiser settings of a checkpoint into o, so the
 * model can be built before ckpt_load fills it. Flags the user gave that
 * disagree with the file are an error. */
bool ckpt_peek(const char *path, options *o, char *err, size_t errlen);
bool dump_grads(const char *path, const tg_gpt *m, const int *ids, const int *targets, int batch, int ctx,
                float loss, char *err, size_t errlen);

const char *norm_name(tg_norm_place n);
/* "pre", "post", "deepnorm" or "rezero"; false for anything else. */
bool norm_parse(const char *s, tg_norm_place *n);

#endif
