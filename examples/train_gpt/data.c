/* Training data: the built-in sort task, or the characters of a text file. */
#include "train_gpt.h"

#include <errno.h>
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
bool data_make_sort(dataset *d)
{
    *d = (dataset){.is_sort = true, .vocab = SORT_VOCAB};
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

void data_batch(const dataset *d, tg_rng *r, bool val, int batch, int ctx, int *ids, int *targets)
{
    if (d->is_sort) {
        sort_batch(d, r, val, batch, ids, targets);
        return;
    }
    long lo = val ? d->n_train : 0, hi = val ? d->n_tokens : d->n_train;
    uint64_t starts = (uint64_t)(hi - lo - ctx); /* windows of ctx + 1 tokens */
    for (int b = 0; b < batch; b++) {
        long s = lo + (long)(((uint64_t)tg_rng_u32(r) * starts) >> 32);
        for (int i = 0; i < ctx; i++) {
            ids[b * ctx + i] = d->tokens[s + i];
            targets[b * ctx + i] = d->tokens[s + i + 1];
        }
    }
}

static unsigned char *read_all(const char *path, long *len, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n == cap) {
            unsigned char *nb = realloc(buf, cap = cap ? 2 * cap : 1 << 20);
            if (!nb) {
                snprintf(err, errlen, "%s: out of memory", path);
                free(buf);
                fclose(fp);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, fp);
        n += got;
    } while (got > 0);
    if (ferror(fp)) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    *len = (long)n;
    return buf;
}

/* The vocabulary is the set of bytes in the file, in byte order (nanoGPT's
 * sorted(set(text)) for ASCII text). */
bool data_load_text(dataset *d, const char *path, char *err, size_t errlen)
{
    *d = (dataset){0};
    long len;
    unsigned char *text = read_all(path, &len, err, errlen);
    if (!text)
        return false;
    int index[256];
    bool used[256] = {false};
    for (long i = 0; i < len; i++)
        used[text[i]] = true;
    for (int c = 0; c < 256; c++)
        if (used[c]) {
            index[c] = d->vocab;
            d->chars[d->vocab++] = (unsigned char)c;
        }
    d->tokens = malloc((size_t)(len ? len : 1) * sizeof *d->tokens);
    if (!d->tokens) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(text);
        return false;
    }
    for (long i = 0; i < len; i++)
        d->tokens[i] = index[text[i]];
    free(text);
    d->n_tokens = len;
    d->n_train = len * 9 / 10;
    return true;
}

void data_free(dataset *d)
{
    free(d->tokens);
    free(d->held_out);
    free(d->test);
}
