/* Command-line flags, and the one validation of the run's settings.
 *
 * Every value is checked before any work starts, so a typo costs a one-line
 * message and exit status 2, not a half-finished run. A setting a checkpoint
 * stores (its metadata key in the table) goes through the same parser and
 * the same range when --resume reads it back, and the merged settings
 * through the same check_run, so flags and files cannot drift apart.
 * Shape and optimiser defaults depend on the task: the sort task is tiny,
 * and --data defaults to nanoGPT's shakespeare-char CPU configuration. */
#include "train_gpt.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

typedef enum { F_INT, F_FLOAT, F_STR, F_NORM, F_NORMTYPE, F_MLP, F_POS, F_SEED, F_BOOL } flag_type;

typedef struct flag {
    const char *name, *arg, *help;
    flag_type type;
    size_t off;          /* offset of the field in options */
    double min, max;     /* allowed range (numbers) */
    bool min_open, max_open; /* the bound itself is excluded */
    const char *key;     /* the checkpoint metadata key storing it, or NULL */
} flag;

#define OFF(f) offsetof(options, f)
#define SFLAG(n, a, f, h) {n, a, h, F_STR, OFF(f), 0, 0, false, false, NULL}
#define BOOL(n, f, h) {n, "", h, F_BOOL, OFF(f), 0, 0, false, false, NULL}
#define INT(n, f, lo, hi, key, h) {n, "N", h, F_INT, OFF(f), lo, hi, false, false, key}
#define FLT(n, f, lo, lo_open, hi, hi_open, key, h) {n, "X", h, F_FLOAT, OFF(f), lo, hi, lo_open, hi_open, key}
#define BIG 1e30

static const flag flags[] = {
    SFLAG("--data", "FILE", data, "train a byte-level model on a text file (default: the sort task)"),
    SFLAG("--train-bin", "FILE", train_bin, "train on a token file: llm.c's (header recognised), or raw uint16 with --vocab"),
    SFLAG("--val-bin", "FILE", val_bin, "the validation tokens for --train-bin, same format (required with it)"),
    INT("--vocab", vocab, 1, 65536, "vocab", "--train-bin: the vocabulary size (llm.c files: largest token + 1)"),
    INT("--layers", layers, 1, TG_GPT_MAX_LAYERS, "layers", "transformer blocks (sort 2, --data 4)"),
    INT("--heads", heads, 1, TG_GPT_MAX_DIM, "heads", "attention heads, must divide --dim (sort 4, --data 4)"),
    INT("--dim", dim, 1, TG_GPT_MAX_DIM, "dim", "model width (sort 64, --data 128)"),
    INT("--ctx", ctx, 1, TG_GPT_MAX_CTX, "ctx", "context length, --data and --train-bin only (64)"),
    {"--norm", "pre|post|deepnorm|rezero", "block: x+f(LN(x)), LN(x+f(x)), LN(a*x+f(x)), x+g*f(x) (pre)", F_NORM,
     OFF(norm), 0, 0, false, false, "norm"},
    {"--normtype", "layernorm|rmsnorm", "the norm: LayerNorm, or RMSNorm (gain only) (layernorm)", F_NORMTYPE,
     OFF(normtype), 0, 0, false, false, "normtype"},
    {"--mlp", "gelu|swiglu", "MLP: c_proj(gelu(c_fc x)), or c_proj(silu(gate) * up) (gelu)", F_MLP, OFF(mlp), 0, 0,
     false, false, "mlp"},
    {"--pos", "learned|rope", "positions: a learned table, or rotary embeddings on q and k (learned)", F_POS,
     OFF(pos), 0, 0, false, false, "pos"},
    FLT("--dropout", dropout, 0, false, 1, true, "dropout", "dropout on embeddings, branches and attention weights, training only (0)"),
    /* stored as "bias" = 1 - no_bias */
    {"--no-bias", "", "hold every bias at 0, as nanoGPT's bias=False (biases on)", F_BOOL, OFF(no_bias), 0, 0,
     false, false, "bias"},
    INT("--batch", batch, 1, 1 << 20, "batch", "sequences per step (sort 64, --data 12)"),
    INT("--steps", steps, 1, INT_MAX, "steps", "optimiser steps (sort 500, --data 2000)"),
    FLT("--lr", lr, 0, true, BIG, false, "lr", "peak learning rate (sort 3e-3, --data 1e-3)"),
    FLT("--min-lr", min_lr, 0, false, BIG, false, "min_lr", "learning rate at the end of the cosine (lr/10)"),
    INT("--warmup", warmup, 0, INT_MAX, "warmup", "linear warm-up steps (100)"),
    FLT("--weight-decay", weight_decay, 0, false, BIG, false, "weight_decay", "AdamW decoupled weight decay, 2-D weights only (0.1)"),
    FLT("--beta2", beta2, 0, false, 1, true, "beta2", "AdamW beta2, below 1 (0.99)"),
    FLT("--clip", clip, 0, false, BIG, false, "clip", "clip the global gradient norm to X, 0 = off (1.0)"),
    {"--seed", "N", "seed of the weights, the batches and the sampler (1337)", F_SEED, OFF(seed), 0, 0, false,
     false, "seed"},
    INT("--threads", threads, 1, INT_MAX, NULL, "threads, at most " STR(TG_MAX_THREADS) "; results are the same for any (default: TG_NUM_THREADS, else all cores)"),
    INT("--eval-every", eval_every, 1, INT_MAX, NULL, "steps between validation estimates (250)"),
    INT("--eval-iters", eval_iters, 1, INT_MAX, NULL, "batches per validation estimate (20)"),
    BOOL("--eval-full", eval_full, "--data, --train-bin: score every ctx window of the validation split once instead (exact)"),
    INT("--sample", sample, 0, INT_MAX, NULL, "--data: characters to generate at the end (500; token ids for --train-bin)"),
    FLT("--temperature", temperature, 0, true, BIG, false, NULL, "sampling temperature (0.8)"),
    INT("--top-k", top_k, 0, INT_MAX, NULL, "sample among the k likeliest, 0 = all (0)"),
    SFLAG("--save", "FILE", save, "write a checkpoint (safetensors) at the end"),
    INT("--save-every", save_every, 1, INT_MAX, NULL, "with --save: also write it every N steps, so a crash loses at most N"),
    BOOL("--save-best", save_best, "with --save: keep the best validation loss's checkpoint as FILE.best"),
    SFLAG("--resume", "FILE", resume, "continue from a checkpoint (--seed must be the checkpoint's or absent)"),
    BOOL("--eval-only", eval_only, "with --resume: print the validation loss (exact with --eval-full) and exit"),
    INT("--stop-after", stop_after, 1, INT_MAX, NULL, "stop (and --save) after step N, as if interrupted"),
    SFLAG("--log", "FILE", log, "write a CSV: step, loss, val_loss, lr, grad_norm, seconds"),
    BOOL("--profile", profile, "print the time each op's kernels took, and the optimiser's"),
    SFLAG("--dump-grads", "FILE", dump_grads, "one forward and backward on the first batch, written to FILE; then exit"),
};
enum { N_FLAGS = sizeof flags / sizeof flags[0] };
_Static_assert(N_FLAGS <= 64, "options.given has a bit per flag");

const char *const setting_keys[] = {"vocab", "layers", "heads", "dim", "ctx", "norm", "normtype", "mlp", "pos",
                                    "dropout", "bias", "batch", "steps", "lr", "min_lr", "warmup", "weight_decay",
                                    "beta2", "clip", "seed", NULL};

static void usage(void)
{
    printf("usage: train_gpt [flags]\n\n"
           "Trains a GPT-2 shaped Transformer with tapegrad. Without --data it learns to sort\n"
           "%d digits and reports held-out exact-match accuracy; with --data FILE it trains a\n"
           "byte-level language model (first 90%% train, last 10%% validation); with\n"
           "--train-bin and --val-bin it trains on pre-tokenized files.\n\n",
           SORT_LEN);
    for (int i = 0; i < N_FLAGS; i++) {
        char left[40];
        snprintf(left, sizeof left, "%s %s", flags[i].name, flags[i].arg);
        if (strlen(left) > 22)
            printf("  %s\n  %-22s %s\n", left, "", flags[i].help);
        else
            printf("  %-22s %s\n", left, flags[i].help);
    }
    printf("  %-22s %s\n", "--version", "the version");
    printf("  %-22s %s\n", "--help", "this text");
}

/* What a value of f must be, for messages. */
static const char *need(const flag *f, char *buf, size_t len)
{
    switch (f->type) {
    case F_INT: snprintf(buf, len, "an integer from %.0f to %.0f", f->min, f->max); break;
    case F_FLOAT:
        snprintf(buf, len, "a number in %c%g, %g%c", f->min_open ? '(' : '[', f->min, f->max,
                 f->max_open ? ')' : ']');
        break;
    case F_NORM: snprintf(buf, len, "pre, post, deepnorm or rezero"); break;
    case F_NORMTYPE: snprintf(buf, len, "layernorm or rmsnorm"); break;
    case F_MLP: snprintf(buf, len, "gelu or swiglu"); break;
    case F_POS: snprintf(buf, len, "learned or rope"); break;
    case F_SEED: snprintf(buf, len, "an integer from 0 to %llu", (unsigned long long)UINT64_MAX); break;
    case F_BOOL: snprintf(buf, len, f->key ? "0 or 1" : "no value"); break;
    default: snprintf(buf, len, "a non-empty value"); break;
    }
    return buf;
}

/* Parses v into f's field of o: the single rule for flags and files. A
 * boolean takes no value on the command line; in a file only --no-bias is
 * stored, as "bias" 1 or 0. */
static bool parse_value(const flag *f, const char *v, options *o, bool from_file)
{
    void *field = (char *)o + f->off;
    long long i;
    float x;
    uint64_t u;
    switch (f->type) {
    case F_STR: *(const char **)field = v; return *v != '\0';
    case F_NORM: return tg_norm_parse(v, field);
    case F_NORMTYPE: return tg_normtype_parse(v, field);
    case F_MLP: return tg_mlp_parse(v, field);
    case F_POS: return tg_pos_parse(v, field);
    case F_SEED:
        if (!tg_parse_u64(v, &u))
            return false;
        *(unsigned long long *)field = u;
        return true;
    case F_BOOL:
        if (!from_file || !tg_parse_int(v, 0, 1, &i))
            return false;
        *(bool *)field = i == 0;
        return true;
    case F_INT:
        if (!tg_parse_int(v, (long long)f->min, (long long)f->max, &i))
            return false;
        *(int *)field = (int)i;
        return true;
    case F_FLOAT:
        if (!tg_parse_float(v, f->min, f->max, &x) || (f->min_open && x == f->min) || (f->max_open && x == f->max))
            return false;
        *(float *)field = x;
        return true;
    }
    return false;
}

static const flag *find_flag(const char *arg, size_t len)
{
    for (int i = 0; i < N_FLAGS; i++)
        if (strlen(flags[i].name) == len && !strncmp(flags[i].name, arg, len))
            return &flags[i];
    return NULL;
}

static const flag *find_key(const char *key)
{
    for (int i = 0; key && i < N_FLAGS; i++)
        if (flags[i].key && !strcmp(flags[i].key, key))
            return &flags[i];
    return NULL;
}

bool setting_parse(const char *key, const char *text, options *dst, char *why, size_t whylen)
{
    const flag *f = find_key(key);
    if (f && parse_value(f, text, dst, true))
        return true;
    if (f)
        need(f, why, whylen);
    else
        snprintf(why, whylen, "a known setting");
    return false;
}

const char *setting_flag(const char *key)
{
    const flag *f = find_key(key);
    return f ? f->name : key;
}

bool setting_equal(const char *key, const options *a, const options *b)
{
    const flag *f = find_key(key);
    if (!f)
        return false;
    const char *x = (const char *)a + f->off, *y = (const char *)b + f->off;
    switch (f->type) {
    case F_INT: return *(const int *)x == *(const int *)y;
    case F_FLOAT: return *(const float *)x == *(const float *)y;
    case F_NORM: return *(const tg_norm_place *)x == *(const tg_norm_place *)y;
    case F_NORMTYPE: return *(const tg_norm_type *)x == *(const tg_norm_type *)y;
    case F_MLP: return *(const tg_mlp_type *)x == *(const tg_mlp_type *)y;
    case F_POS: return *(const tg_pos_type *)x == *(const tg_pos_type *)y;
    case F_SEED: return *(const unsigned long long *)x == *(const unsigned long long *)y;
    case F_BOOL: return *(const bool *)x == *(const bool *)y;
    default: return false;
    }
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
    bool text = o->data || o->train_bin;
    if (o->layers < 0) o->layers = text ? 4 : 2;
    if (o->heads < 0) o->heads = 4;
    if (o->dim < 0) o->dim = text ? 128 : 64;
    if (o->ctx < 0) o->ctx = text ? 64 : SORT_CTX;
    if (o->batch < 0) o->batch = text ? 12 : 64;
    if (o->steps < 0) o->steps = text ? 2000 : 500;
    if (o->lr < 0) o->lr = text ? 1e-3f : 3e-3f;
    if (o->min_lr < 0) o->min_lr = o->lr / 10.0f;
}

/* Which data flags go together. */
static const char *check_data_flags(const options *o)
{
    if (o->data && (o->train_bin || o->val_bin))
        return "--data and --train-bin/--val-bin are two different sources; give one";
    if (!o->train_bin != !o->val_bin)
        return "--train-bin and --val-bin go together";
    if (given(o, "--vocab") && !o->train_bin)
        return "--vocab applies to --train-bin only (text and the sort task have their own vocabularies)";
    if (o->resume && o->dump_grads)
        return "--dump-grads starts from fresh weights; drop --resume";
    if ((o->save_every || o->save_best) && !o->save)
        return "--save-every and --save-best need --save FILE";
    if (o->eval_only && !o->resume)
        return "--eval-only needs --resume FILE";
    return NULL;
}

const char *check_run(const options *o)
{
    static char msg[160];
    bool sort = !o->data && !o->train_bin;
    const char *bad = check_data_flags(o);
    if (bad)
        return bad;
    if (o->dim % o->heads)
        snprintf(msg, sizeof msg, "--heads %d must divide --dim %d", o->heads, o->dim);
    else if (o->pos == TG_POS_ROPE && (o->dim / o->heads) % 2)
        snprintf(msg, sizeof msg, "--pos rope needs an even head size; --dim %d / --heads %d is %d", o->dim,
                 o->heads, o->dim / o->heads);
    else if (o->threads > TG_MAX_THREADS)
        snprintf(msg, sizeof msg, "--threads must be at most %d", TG_MAX_THREADS);
    else if (sort && o->ctx != SORT_CTX)
        snprintf(msg, sizeof msg, "ctx %d: --ctx applies to --data and --train-bin only (the sort task's "
                 "sequences are %d tokens)", o->ctx, SORT_CTX);
    else if (sort && o->eval_full)
        snprintf(msg, sizeof msg, "--eval-full applies to --data and --train-bin only (the sort task reports "
                 "held-out accuracy)");
    else if (o->min_lr > o->lr)
        snprintf(msg, sizeof msg, "--min-lr %g must not exceed --lr %g", (double)o->min_lr, (double)o->lr);
    else if ((long long)o->batch * o->ctx > 1 << 28)
        snprintf(msg, sizeof msg, "--batch %d times --ctx %d is more than 2^28 tokens a step", o->batch, o->ctx);
    else
        return NULL;
    return msg;
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
        if (!strcmp(arg, "--version")) {
            printf("train_gpt (tapegrad %s)\n", TG_VERSION);
            return -1;
        }
        const flag *f = find_flag(arg, eq ? (size_t)(eq - arg) : strlen(arg));
        if (!f) {
            fprintf(stderr, "train_gpt: unknown flag '%s' (try --help)\n", arg);
            return EXIT_USAGE;
        }
        o->given |= 1ull << (f - flags);
        if (f->type == F_BOOL && !eq) {
            *(bool *)((char *)o + f->off) = true;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        char why[96];
        if (!v) {
            fprintf(stderr, "train_gpt: %s needs a value (%s)\n", f->name, f->arg);
            return EXIT_USAGE;
        }
        if (!parse_value(f, v, o, false)) {
            fprintf(stderr, "train_gpt: %s %s: expected %s\n", f->name, v, need(f, why, sizeof why));
            return EXIT_USAGE;
        }
    }
    task_defaults(o);
    const char *bad = check_run(o);
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
