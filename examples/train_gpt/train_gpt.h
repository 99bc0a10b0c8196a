/* train_gpt: the parts of the program shared between its files.
 *
 *   args.c        flags, defaults, --help, and the one check of the run's
 *                 settings that flags and checkpoints both go through
 *   data.c        the built-in sort task, and text or token files (library)
 *   checkpoint.c  --save / --resume / --dump-grads on the library's files
 *   dist.c        running as one of N ranks under mpirun (data parallelism)
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
    const char *data, *train_bin, *val_bin, *save, *resume, *log, *dump_grads;
    int layers, heads, dim, ctx, batch, steps, warmup, threads, vocab;
    int eval_every, eval_iters, sample, top_k, stop_after, save_every;
    float lr, min_lr, weight_decay, beta2, clip, temperature, dropout;
    tg_norm_place norm;
    tg_norm_type normtype;
    tg_mlp_type mlp;
    tg_pos_type pos;
    unsigned long long seed;
    bool profile, no_bias, eval_full, save_best, eval_only;
    /* A bit per flag the command line gave, so --resume can tell a
     * deliberate change from a default. */
    unsigned long long given;
} options;

/* Fills o from argv. Returns 0 to go on, -1 after printing --help, or
 * EXIT_USAGE after a one-line message on stderr. */
int parse_args(int argc, char **argv, options *o);
/* Whether the command line gave the flag ("--dim"). */
bool given(const options *o, const char *flag);
/* The one validation of a setting, for flags and checkpoints alike: text
 * parsed strictly as the value of the setting stored under metadata key
 * `key` ("layers", "lr", ...) and range-checked into dst. false with what
 * was expected in why ("an integer from 1 to 4096"). */
bool setting_parse(const char *key, const char *text, options *dst, char *why, size_t whylen);
/* The flag of a metadata key ("min_lr" -> "--min-lr"). */
const char *setting_flag(const char *key);
/* Whether the setting under key holds the same value in a and b. */
bool setting_equal(const char *key, const options *a, const options *b);
/* The metadata keys of the stored settings, NULL-terminated. */
extern const char *const setting_keys[];
/* The checks between settings (heads divide dim, min_lr <= lr, the task's
 * constraints...), after flags and again after a checkpoint's settings are
 * merged in: NULL or the message. */
const char *check_run(const options *o);

/* The training data: the sort task (generated), a text file's bytes, or
 * token files. Tokens are ints in [0, vocab). */
typedef enum task { TASK_SORT, TASK_TEXT, TASK_TOKENS } task;

typedef struct dataset {
    task kind;
    int vocab;
    tg_byte_vocab chars;      /* text: token <-> byte */
    tg_tokens text, train_file, val_file; /* whichever the task loaded */
    const int *train, *val;   /* text and tokens: the two splits */
    long n_train, n_val;
    unsigned char *held_out;  /* sort: bitmap of the inputs kept for testing */
    int *test;                /* sort: those inputs, as numbers */
} dataset;

/* The sort task: SORT_LEN digits, a separator, the digits sorted. */
enum { SORT_LEN = 6, SORT_SEP = 10, SORT_VOCAB = 11, SORT_CTX = 2 * SORT_LEN, SORT_TEST = 1000 };

/* Loads what o asks for (sort, --data, --train-bin/--val-bin). Returns 0,
 * or an exit status after a message on stderr. */
int data_load(dataset *d, const options *o);
const char *task_name(task t); /* "sort", "text", "tokens" */
void data_free(dataset *d);
/* A batch [batch, ctx] of inputs and next-token targets (-1 where the sort
 * task does not score a position). val picks the validation split. */
void data_batch(const dataset *d, tg_rng *r, bool val, int batch, int ctx, int *ids, int *targets);
/* digits, the separator, the digits sorted: SORT_CTX + 1 tokens into seq. */
void data_sort_sequence(const int *digits, int *seq);
/* Held-out sort problem i (0 <= i < SORT_TEST): SORT_LEN input digits. */
void data_sort_test(const dataset *d, int i, int *digits);

/* Everything a checkpoint holds besides the parameters. */
typedef struct train_state {
    long step;       /* steps done */
    tg_rng rng;      /* the batch sampler */
    tg_rng drop_rng; /* dropout's masks (--dropout) */
    float best_val;  /* --save-best: the best validation loss so far (inf: none) */
} train_state;

/* Writes the model, the optimizer and the run's metadata; false with a
 * message (nothing written) when a value is not finite or the file cannot be
 * written. */
bool ckpt_save(const char *path, const tg_gpt *m, const tg_adamw *opt, const options *o, const dataset *d,
               const train_state *s, char *err, size_t errlen);
/* Opens a train_gpt checkpoint and merges its settings into o through
 * setting_parse; a flag the user gave that disagrees with the file is an
 * error. NULL with a message. */
tg_checkpoint *ckpt_open(const char *path, options *o, char *err, size_t errlen);
/* Checks the checkpoint's data against d (task, vocabulary) and reads the
 * progress into s. */
bool ckpt_fits(const tg_checkpoint *c, const options *o, const dataset *d, train_state *s, char *err,
               size_t errlen);
bool dump_grads(const char *path, const tg_gpt *m, const int *ids, const int *targets, int batch, int ctx,
                float loss, char *err, size_t errlen);

/* Data parallelism (dist.c). Under mpirun every rank draws the same global
 * batch, trains on its rows, and the gradients are summed before the one
 * optimiser step all ranks take; with one rank none of this costs anything. */
typedef struct dist_state {
    int rank, size;
    tg_dist_grads *grads; /* more than one rank only */
    double sum_seconds;   /* the gradient sums of this run so far */
    int saved_stderr;     /* ranks above 0, during setup: the real stderr */
    FILE *held;           /* ... and what setup wrote to it instead */
} dist_state;

/* Joins the job; ranks above 0 print nothing on stdout, and hold their stderr
 * until dist_setup_done, so a problem every rank finds is reported once.
 * Returns 0 or an exit status after a message. */
int dist_begin(dist_state *ds, int *argc, char ***argv);
/* Checks that fit the number of ranks: --batch divisible by it, no
 * --dump-grads. NULL or the problem. */
const char *dist_check_options(const dist_state *ds, const options *o);
/* Allocates the gradient buffer (more than one rank). false: out of memory. */
bool dist_prepare(dist_state *ds, const tg_gpt *m);
/* Collective: the ranks compare rc (setup's result) and all return the worst;
 * the first failing rank's message is printed, once. */
int dist_setup_done(dist_state *ds, int rc);
/* This rank's rows of a global batch [batch, ctx]: first row and count, and
 * its share of the batch's scored targets (the weight of its mean loss). */
void dist_slice(const dist_state *ds, const int *targets, int batch, int ctx, int *first, int *rows,
                float *weight);
/* Collective, after backward: the gradients summed over the ranks (each
 * weighted by its share) and *loss the global batch's mean loss. failure is
 * NULL, or the message of this rank's failed step. Returns false when any
 * rank failed (the first failure printed once). With one rank it only
 * reports the failure. */
bool dist_sum_grads(dist_state *ds, float weight, float *loss, const char *failure);
/* "  allreduce 12%" of the time since t0 (empty with one rank). */
void dist_progress_note(const dist_state *ds, double elapsed, char *buf, size_t len);
/* Collective: every rank ends with the same parameters; false (reported)
 * when they differ. */
bool dist_check_same(const dist_state *ds, const tg_gpt *m);
/* Collective: the run's exit status, agreed; then leaves the job. */
int dist_end(dist_state *ds, int rc);

#endif
