/* Training data: the built-in sort task, a text file's bytes, or token
 * files; files are read by the library (tg_text_load, tg_tokens_load) and
 * batches drawn by it (tg_batch_random, tg_batch_window). */
#include "train_gpt.h"

#include <stdlib.h>
#include <string.h>

/* The held-out problems come from their own fixed seed, so the accuracy
 * printed at the end is over the same problems whatever --seed is. */
#define SORT_TEST_SEED 20261123u
enum { SORT_SPACE = 1000000 }; /* 10^SORT_LEN distinct inputs */

static int sort_problem(tg_rng *r)
{
    return (int)(((uint64_t)tg_rng_u32(r) * SORT_SPACE) >> 32);
}

static void sort_digits(int problem, int *digits)
{
    for (int i = SORT_LEN - 1; i >= 0; i--, problem /= 10)
        digits[i] = problem % 10;
}

/* The first SORT_TEST distinct problems of the test stream, marked in a
 * bitmap that training never draws from. */
static bool make_sort(dataset *d)
{
    *d = (dataset){.kind = TASK_SORT, .vocab = SORT_VOCAB};
    d->held_out = calloc(SORT_SPACE / 8 + 1, 1);
    d->test = malloc(SORT_TEST * sizeof *d->test);
    if (!d->held_out || !d->test)
        return false;
    tg_rng r;
    tg_rng_seed(&r, SORT_TEST_SEED);
    for (int n = 0; n < SORT_TEST;) {
        int p = sort_problem(&r);
        if (!(d->held_out[p / 8] >> (p % 8) & 1)) {
            d->held_out[p / 8] |= (unsigned char)(1u << (p % 8));
            d->test[n++] = p;
        }
    }
    return true;
}

void data_sort_test(const dataset *d, int i, int *digits)
{
    sort_digits(d->test[i], digits);
}

void data_sort_sequence(const int *digits, int *seq)
{
    int count[10] = {0};
    for (int i = 0; i < SORT_LEN; i++) {
        seq[i] = digits[i];
        count[digits[i]]++;
    }
    seq[SORT_LEN] = SORT_SEP;
    for (int v = 0, k = SORT_LEN + 1; v < 10; v++)
        while (count[v]--)
            seq[k++] = v;
}

/* Training batches never draw a held-out problem; validation batches draw
 * only those. */
static void sort_batch(const dataset *d, tg_rng *r, bool val, int batch, int *ids, int *targets)
{
    for (int b = 0; b < batch; b++) {
        int p, digits[SORT_LEN], seq[SORT_CTX + 1];
        if (val)
            p = d->test[((uint64_t)tg_rng_u32(r) * SORT_TEST) >> 32];
        else
            do
                p = sort_problem(r);
            while (d->held_out[p / 8] >> (p % 8) & 1);
        sort_digits(p, digits);
        data_sort_sequence(digits, seq);
        for (int i = 0; i < SORT_CTX; i++) {
            ids[b * SORT_CTX + i] = seq[i];
            /* Only the sorted digits are scored: the input is random. */
            targets[b * SORT_CTX + i] = i >= SORT_LEN ? seq[i + 1] : -1;
        }
    }
}

/* The splits were checked to hold ctx + 1 tokens when the data was read. */
void data_batch(const dataset *d, tg_rng *r, bool val, int batch, int ctx, int *ids, int *targets)
{
    if (d->kind == TASK_SORT)
        sort_batch(d, r, val, batch, ids, targets);
    else
        tg_batch_random(val ? d->val : d->train, val ? d->n_val : d->n_train, r, batch, ctx, ids, targets);
}

/* The first 90% of the text trains, the rest validates. */
static int load_text(dataset *d, const char *path)
{
    char err[512];
    *d = (dataset){.kind = TASK_TEXT};
    if (tg_text_load(path, &d->text, &d->chars, err, sizeof err) != TG_OK) {
        bool binary = strstr(err, "is not text") != NULL;
        fprintf(stderr, "train_gpt: --data %s%s\n", err,
                binary ? "; for a pre-tokenized file use --train-bin and --val-bin" : "");
        return EXIT_USAGE;
    }
    d->vocab = d->chars.size;
    d->train = d->text.ids;
    d->n_train = d->text.n * 9 / 10;
    d->val = d->text.ids + d->n_train;
    d->n_val = d->text.n - d->n_train;
    return 0;
}

/* An llm.c file when its header says so; otherwise raw uint16, which needs
 * --vocab (there is nothing in such a file to check it against). */
static int load_token_file(const char *flag, const char *path, int vocab, tg_tokens *t)
{
    char err[512];
    bool llmc = tg_tokens_llmc_header(path);
    if (!llmc && !vocab) {
        fprintf(stderr, "train_gpt: %s %s: no llm.c header; a raw uint16 (nanoGPT) token file needs --vocab N\n",
                flag, path);
        return EXIT_USAGE;
    }
    if (tg_tokens_load(path, llmc ? TG_TOKENS_LLMC : TG_TOKENS_U16, vocab, t, err, sizeof err) != TG_OK) {
        fprintf(stderr, "train_gpt: %s %s\n", flag, err);
        return EXIT_USAGE;
    }
    return 0;
}

/* o->vocab is --vocab, or the checkpoint's; 0 lets llm.c files set it to
 * their largest token + 1 (over both files). */
static int load_tokens(dataset *d, const options *o)
{
    *d = (dataset){.kind = TASK_TOKENS};
    int rc = load_token_file("--train-bin", o->train_bin, o->vocab, &d->train_file);
    if (!rc)
        rc = load_token_file("--val-bin", o->val_bin, o->vocab, &d->val_file);
    if (rc)
        return rc;
    d->vocab = o->vocab ? o->vocab
                        : d->train_file.vocab > d->val_file.vocab ? d->train_file.vocab : d->val_file.vocab;
    d->train = d->train_file.ids;
    d->n_train = d->train_file.n;
    d->val = d->val_file.ids;
    d->n_val = d->val_file.n;
    return 0;
}

/* Both splits must hold a window of ctx inputs and its targets. */
static int check_splits(const dataset *d, const options *o)
{
    const char *src = d->kind == TASK_TEXT ? o->data : o->train_bin;
    if (d->n_val < (long)o->ctx + 1 || d->n_train < (long)o->ctx + 1) {
        if (d->kind == TASK_TEXT)
            fprintf(stderr, "train_gpt: --ctx %d is longer than the text allows: %s has %ld characters, its last "
                    "10%% (the validation split, %ld) must hold ctx + 1\n", o->ctx, src, d->text.n, d->n_val);
        else
            fprintf(stderr, "train_gpt: --ctx %d is longer than the token files allow: --train-bin has %ld tokens, "
                    "--val-bin %ld; each must hold ctx + 1\n", o->ctx, d->n_train, d->n_val);
        return EXIT_USAGE;
    }
    if (d->vocab < 1 || d->vocab > TG_GPT_MAX_VOCAB) {
        fprintf(stderr, "train_gpt: %s: a vocabulary of %d tokens\n", src, d->vocab);
        return EXIT_USAGE;
    }
    return 0;
}

int data_load(dataset *d, const options *o)
{
    if (!o->data && !o->train_bin)
        return make_sort(d) ? 0 : (fprintf(stderr, "train_gpt: out of memory\n"), 1);
    int rc = o->data ? load_text(d, o->data) : load_tokens(d, o);
    return rc ? rc : check_splits(d, o);
}

const char *task_name(task t)
{
    return t == TASK_SORT ? "sort" : t == TASK_TEXT ? "text" : "tokens";
}

void data_free(dataset *d)
{
    tg_tokens_free(&d->text);
    tg_tokens_free(&d->train_file);
    tg_tokens_free(&d->val_file);
    free(d->held_out);
    free(d->test);
}
