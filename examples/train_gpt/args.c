/* Command-line flags. Every value is checked before any work starts, so a
 * typo costs a one-line message and exit status 2, not a half-finished run.
 * Shape and optimiser defaults depend on the task: the sort task is tiny, and
 * --data defaults to nanoGPT's shakespeare-char CPU configuration. */
#include "train_gpt.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

typedef enum { F_INT, F_FLOAT, F_STR, F_NORM, F_SEED, F_BOOL } flag_type;

typedef struct flag {
    const char *name, *arg, *help;
    flag_type type;
    size_t off;      /* offset of the field in options */
    double min;      /* smallest allowed value (numbers) */
    bool min_open;   /* the value must be greater than min */
} flag;

#define OFF(f) offsetof(options, f)
#define NUM(n, a, f, t, lo, open, h) {n, a, h, t, OFF(f), lo, open}

static const flag flags[] = {
    {"--data", "FILE", "train a character-level model on a text file (default: the sort task)", F_STR, OFF(data), 0, false},
    {"--layers", "N", "transformer blocks (sort 2, --data 4)", F_INT, OFF(layers), 1, false},
    {"--heads", "N", "attention heads, must divide --dim (sort 4, --data 4)", F_INT, OFF(heads), 1, false},
    {"--dim", "N", "model width (sort 64, --data 128)", F_INT, OFF(dim), 1, false},
    {"--ctx", "N", "context length, --data only (64)", F_INT, OFF(ctx), 1, false},
    {"--norm", "pre|post|deepnorm|rezero", "block: x+f(LN(x)), LN(x+f(x)), LN(a*x+f(x)), x+g*f(x) (pre)", F_NORM, OFF(norm), 0, false},
    {"--no-bias", "", "hold every bias at 0, as nanoGPT's bias=False (biases on)", F_BOOL, OFF(no_bias), 0, false},
    NUM("--batch", "N", batch, F_INT, 1, false, "sequences per step (sort 64, --data 12)"),
    NUM("--steps", "N", steps, F_INT, 1, false, "optimiser steps (sort 500, --data 2000)"),
    NUM("--lr", "X", lr, F_FLOAT, 0, true, "peak learning rate (sort 3e-3, --data 1e-3)"),
    NUM("--min-lr", "X", min_lr, F_FLOAT, 0, false, "learning rate at the end of the cosine (lr/10)"),
    NUM("--warmup", "N", warmup, F_INT, 0, false, "linear warm-up steps (100)"),
    NUM("--weight-decay", "X", weight_decay, F_FLOAT, 0, false, "AdamW decoupled weight decay, 2-D weights only (0.1)"),
    NUM("--beta2", "X", beta2, F_FLOAT, 0, false, "AdamW beta2, below 1 (0.99)"),
    NUM("--clip", "X", clip, F_FLOAT, 0, false, "clip the global gradient norm to X, 0 = off (1.0)"),
    {"--seed", "N", "seed of the weights, the batches and the sampler (1337)", F_SEED, OFF(seed), 0, false},
    NUM("--threads", "N", threads, F_INT, 1, false, "threads, at most " STR(TG_MAX_THREADS) "; results are the same for any (default: TG_NUM_THREADS, else all cores)"),
    NUM("--eval-every", "N", eval_every, F_INT, 1, false, "steps between validation estimates (250)"),
    NUM("--eval-iters", "N", eval_iters, F_INT, 1, false, "batches per validation estimate (20)"),
    {"--eval-full", "", "--data: score every ctx window of the validation split once instead (exact)", F_BOOL, OFF(eval_full), 0, false},
    NUM("--sample", "N", sample, F_INT, 0, false, "--data: characters to generate at the end (500)"),
    NUM("--temperature", "X", temperature, F_FLOAT, 0, true, "--data: sampling temperature (0.8)"),
    NUM("--top-k", "N", top_k, F_INT, 0, false, "--data: sample among the k likeliest, 0 = all (0)"),
    {"--save", "FILE", "write a checkpoint (safetensors) at the end", F_STR, OFF(save), 0, false},
    {"--resume", "FILE", "continue from a checkpoint", F_STR, OFF(resume), 0, false},
    NUM("--stop-after", "N", stop_after, F_INT, 1, false, "stop (and --save) after step N, as if interrupted"),
    {"--log", "FILE", "write a CSV: step, loss, val_loss, lr, grad_norm, seconds", F_STR, OFF(log), 0, false},
    {"--profile", "", "print the time each op's kernels took, and the optimiser's", F_BOOL, OFF(profile), 0, false},
    {"--dump-grads", "FILE", "one forward and backward on the first batch, written to FILE; then exit", F_STR, OFF(dump_grads), 0, false},
};
enum { N_FLAGS = sizeof flags / sizeof flags[0] };
_Static_assert(N_FLAGS <= 64, "options.given has a bit per flag");

static void usage(void)
{
    printf("usage: train_gpt [flags]\n\n"
           "Trains a GPT-2 shaped Transformer with tapegrad. Without --data it learns to sort\n"
           "%d digits and reports held-out exact-match accuracy; with --data FILE it trains a\n"
           "character-level language model (first 90%% train, last 10%% validation).\n\n",
           SORT_LEN);
    for (int i = 0; i < N_FLAGS; i++) {
        char left[40];
        snprintf(left, sizeof left, "%s %s", flags[i].name, flags[i].arg);
        if (strlen(left) > 22)
            printf("  %s\n  %-22s %s\n", left, "", flags[i].help);
        else
            printf("  %-22s %s\n", left, flags[i].help);
    }
    printf("  %-22s %s\n", "--help", "this text");
}

static bool parse_value(const flag *f, const char *v, options *o)
{
    char *end;
    void *field = (char *)o + f->off;
    errno = 0;
    if (f->type == F_STR) {
        *(const char **)field = v;
        return *v != '\0';
    }
    if (f->type == F_BOOL)
        return false; /* --profile=x */
    if (f->type == F_NORM) {
        tg_norm_place *n = field;
        return norm_parse(v, n);
    }
    if (f->type == F_SEED) {
        if (*v == '-')
            return false;
        *(unsigned long long *)field = strtoull(v, &end, 10);
        return end != v && !*end && !errno;
    }
    double x = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(x) || x < f->min || (f->min_open && x == f->min))
        return false;
    if (f->type == F_INT) {
        if (x != floor(x) || x > INT_MAX)
            return false;
        *(int *)field = (int)x;
    } else {
        if (x > 1e30)
            return false;
        *(float *)field = (float)x;
    }
    return true;
}

static const char *need(const flag *f)
{
    switch (f->type) {
    case F_INT: return f->min_open ? "an integer above" : "an integer of at least";
    case F_FLOAT: return f->min_open ? "a number above" : "a number of at least";
    case F_NORM: return "pre, post, deepnorm or rezero";
    case F_SEED: return "a non-negative integer";
    case F_BOOL: return "no value";
    default: return "a non-empty value";
    }
}

static int bad_value(const flag *f, const char *v)
{
    if (f->type == F_INT || f->type == F_FLOAT)
        fprintf(stderr, "train_gpt: %s %s: expected %s %g\n", f->name, v, need(f), f->min);
    else
        fprintf(stderr, "train_gpt: %s %s: expected %s\n", f->name, v, need(f));
    return EXIT_USAGE;
}

static void set_defaults(options *o)
{
    *o = (options){0};
    o->layers = o->heads = o->dim = o->ctx = o->batch = o->steps = -1;
    o->lr = o->min_lr = -1.0f;
    o->warmup = 100;
    o->weight_decay = 0.1f;
    o->beta2 = 0.99f;
    o->clip = 1.0f;
    o->seed = 1337;
    o->eval_every = 250;
    o->eval_iters = 20;
    o->sample = 500;
    o->temperature = 0.8f;
    o->norm = TG_PRE_LN;
}

static void task_defaults(options *o)
{
    bool text = o->data != NULL;
    if (o->layers < 0) o->layers = text ? 4 : 2;
    if (o->heads < 0) o->heads = 4;
    if (o->dim < 0) o->dim = text ? 128 : 64;
    if (o->ctx < 0) o->ctx = text ? 64 : SORT_CTX;
    if (o->batch < 0) o->batch = text ? 12 : 64;
    if (o->steps < 0) o->steps = text ? 2000 : 500;
    if (o->lr < 0) o->lr = text ? 1e-3f : 3e-3f;
    if (o->min_lr < 0) o->min_lr = o->lr / 10.0f;
}

/* Checks between flags; the file-dependent ones (context longer than the
 * text) come when the data is read, still before any training. */
static const char *cross_check(const options *o)
{
    if (o->dim % o->heads)
        return "--heads must divide --dim";
    if (o->threads > TG_MAX_THREADS)
        return "--threads must be at most " STR(TG_MAX_THREADS);
    if (!o->data && given(o, "--ctx") && o->ctx != SORT_CTX)
        return "--ctx applies to --data only (the sort task's sequences are 12 tokens)";
    if (!o->data && o->eval_full)
        return "--eval-full applies to --data only (the sort task reports held-out accuracy)";
    if (o->beta2 >= 1.0f)
        return "--beta2 must be below 1";
    if (o->min_lr > o->lr)
        return "--min-lr must not exceed --lr";
    if (o->resume && o->dump_grads)
        return "--dump-grads starts from fresh weights; drop --resume";
    return NULL;
}

static const flag *find_flag(const char *arg, size_t len)
{
    for (int i = 0; i < N_FLAGS; i++)
        if (strlen(flags[i].name) == len && !strncmp(flags[i].name, arg, len))
            return &flags[i];
    return NULL;
}

int parse_args(int argc, char **argv, options *o)
{
    set_defaults(o);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq = strchr(arg, '=');
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage();
            return -1;
        }
        const flag *f = find_flag(arg, eq ? (size_t)(eq - arg) : strlen(arg));
        if (!f) {
            fprintf(stderr, "train_gpt: unknown flag '%s' (try --help)\n", arg);
            return EXIT_USAGE;
        }
        if (f->type == F_BOOL && !eq) {
            *(bool *)((char *)o + f->off) = true;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) {
            fprintf(stderr, "train_gpt: %s needs a value (%s)\n", f->name, f->arg);
            return EXIT_USAGE;
        }
        if (!parse_value(f, v, o))
            return bad_value(f, v);
        o->given |= 1ull << (f - flags);
    }
    task_defaults(o);
    const char *bad = cross_check(o);
    if (bad) {
        fprintf(stderr, "train_gpt: %s\n", bad);
        return EXIT_USAGE;
    }
    return 0;
}

bool given(const options *o, const char *name)
{
    const flag *f = find_flag(name, strlen(name));
    return f && (o->given >> (f - flags) & 1);
}

static const char *const norm_names[] = {
    [TG_PRE_LN] = "pre", [TG_POST_LN] = "post", [TG_DEEPNORM] = "deepnorm", [TG_REZERO] = "rezero"};

const char *norm_name(tg_norm_place n)
{
    return norm_names[n];
}

bool norm_parse(const char *s, tg_norm_place *n)
{
    for (int i = 0; i < (int)(sizeof norm_names / sizeof norm_names[0]); i++)
        if (s && !strcmp(s, norm_names[i])) {
            *n = (tg_norm_place)i;
            return true;
        }
    return false;
}
