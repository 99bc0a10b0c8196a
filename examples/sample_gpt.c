/* sample_gpt: text (or token ids) from a checkpoint alone.
 *
 *   sample_gpt CHECKPOINT [--prompt TEXT | --prompt-ids LIST] [--tokens N]
 *              [--temperature X] [--top-k K] [--seed S] [--num-samples M]
 *
 * The model comes from the checkpoint (tg_checkpoint_open); so does the
 * vocabulary: train_gpt --data writes it as the metadata "chars", the byte
 * of each token as comma-separated decimal values. With it, the prompt is
 * text and samples print as text; without it (the sort task, or any
 * checkpoint of token ids) the prompt is --prompt-ids and samples print as
 * ids. Generation is the library's (tg_generator_*, tg_sample_logits), so
 * past the context length the window restarts from its last ctx/2 tokens.
 * Bad flags, a checkpoint that is missing or corrupt, and a prompt the
 * vocabulary cannot encode exit 2 with one line; a failure while sampling
 * exits 1. */
#include "tapegrad.h"

#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

enum { EXIT_USAGE = 2, MAX_TOKENS = 100000000, MAX_SAMPLES = 1000000 };

typedef struct options {
    const char *path, *prompt, *prompt_ids;
    long long tokens, top_k, samples, threads;
    float temperature;
    uint64_t seed;
} options;

static void usage(void)
{
    printf("usage: sample_gpt CHECKPOINT [flags]\n\n"
           "Prints samples from a checkpoint written by train_gpt (or tg_gpt_save).\n\n"
           "  --prompt TEXT        text to continue; every character must be in the checkpoint's\n"
           "                       vocabulary (default: a newline, else the first token)\n"
           "  --prompt-ids LIST    the prompt as comma-separated token ids (checkpoints without\n"
           "                       a text vocabulary take only this; default: 0)\n"
           "  --tokens N           tokens to generate per sample, 1 to %d (500)\n"
           "  --temperature X      sampling temperature, above 0 (0.8)\n"
           "  --top-k K            sample among the K likeliest, 0 = all (0)\n"
           "  --seed S             sample i (from 0) draws from seed S + i (1337)\n"
           "  --num-samples M      samples to print, 1 to %d (1)\n"
           "  --threads N          threads, 1 to %d (default: TG_NUM_THREADS, else all cores)\n"
           "  --help               this text\n\n"
           "Text samples print as the prompt followed by the generated text; with more than one,\n"
           "a line \"--- sample i\" comes before each. Id samples print one line each: the\n"
           "generated ids, space-separated.\n",
           MAX_TOKENS, MAX_SAMPLES, TG_MAX_THREADS);
}

static int bad(const char *flag, const char *value, const char *need)
{
    fprintf(stderr, "sample_gpt: %s %s: expected %s\n", flag, value, need);
    return EXIT_USAGE;
}

/* Fills o from argv: 0 to go on, -1 after --help, EXIT_USAGE after a message. */
static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.tokens = 500, .samples = 1, .temperature = 0.8f, .seed = 1337};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return -1;
        }
        if (strncmp(a, "--", 2)) {
            if (o->path) {
                fprintf(stderr, "sample_gpt: %s: only one checkpoint, and it was %s\n", a, o->path);
                return EXIT_USAGE;
            }
            o->path = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "sample_gpt: %s needs a value (or an unknown flag; see --help)\n", a);
            return EXIT_USAGE;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--prompt"))
            o->prompt = v;
        else if (!strcmp(a, "--prompt-ids"))
            o->prompt_ids = v;
        else if (!strcmp(a, "--tokens")) {
            if (!tg_parse_int(v, 1, MAX_TOKENS, &o->tokens))
                return bad(a, v, "an integer from 1 to 100000000");
        } else if (!strcmp(a, "--top-k")) {
            if (!tg_parse_int(v, 0, 1000000000, &o->top_k))
                return bad(a, v, "an integer of at least 0");
        } else if (!strcmp(a, "--num-samples")) {
            if (!tg_parse_int(v, 1, MAX_SAMPLES, &o->samples))
                return bad(a, v, "an integer from 1 to 1000000");
        } else if (!strcmp(a, "--threads")) {
            if (!tg_parse_int(v, 1, TG_MAX_THREADS, &o->threads))
                return bad(a, v, "an integer from 1 to " STR(TG_MAX_THREADS));
        } else if (!strcmp(a, "--temperature")) {
            if (!tg_parse_float(v, 0.0, 1e30, &o->temperature) || !(o->temperature > 0.0f))
                return bad(a, v, "a number above 0");
        } else if (!strcmp(a, "--seed")) {
            if (!tg_parse_u64(v, &o->seed))
                return bad(a, v, "a non-negative integer");
        } else {
            fprintf(stderr, "sample_gpt: unknown flag '%s' (see --help)\n", a);
            return EXIT_USAGE;
        }
    }
    if (!o->path) {
        fprintf(stderr, "sample_gpt: no checkpoint given (usage: sample_gpt CHECKPOINT [flags]; see --help)\n");
        return EXIT_USAGE;
    }
    if (o->prompt && o->prompt_ids) {
        fprintf(stderr, "sample_gpt: give --prompt or --prompt-ids, not both\n");
        return EXIT_USAGE;
    }
    if (o->prompt && !*o->prompt) {
        fprintf(stderr, "sample_gpt: --prompt is empty (leave it out for the default)\n");
        return EXIT_USAGE;
    }
    return 0;
}

/* The checkpoint's text vocabulary: token -> byte from "chars", or vocab 0
 * when it has none. False after a message when "chars" is malformed. */
static bool read_vocab(const tg_checkpoint *c, const char *path, int vocab, unsigned char *chars, int *n)
{
    const char *s = tg_checkpoint_meta(c, "chars");
    *n = 0;
    if (!s)
        return true;
    bool seen[256] = {false};
    char item[8];
    for (const char *p = s;; p++) {
        size_t len = strcspn(p, ",");
        long long b;
        memcpy(item, p, len < sizeof item ? len : sizeof item - 1);
        item[len < sizeof item ? len : sizeof item - 1] = '\0';
        if (len >= sizeof item || !tg_parse_int(item, 0, 255, &b) || seen[b] || *n == vocab) {
            fprintf(stderr, "sample_gpt: %s: metadata \"chars\" must be %d distinct byte values 0-255, "
                    "comma-separated; item %d (\"%.*s\") is not\n", path, vocab, *n + 1, (int)(len < 16 ? len : 16), p);
            return false;
        }
        seen[b] = true;
        chars[(*n)++] = (unsigned char)b;
        p += len;
        if (!*p)
            break;
    }
    if (*n != vocab) {
        fprintf(stderr, "sample_gpt: %s: metadata \"chars\" has %d values, the model's vocabulary is %d\n", path, *n,
                vocab);
        return false;
    }
    return true;
}

/* The prompt as tokens into ids (room for strlen + 1); its length, or -1
 * after a message. */
static int encode_prompt(const options *o, const unsigned char *chars, int n_chars, int vocab, int *ids)
{
    if (o->prompt_ids) {
        int n = 0;
        for (const char *p = o->prompt_ids;; p++) {
            size_t len = strcspn(p, ",");
            char item[16];
            long long id;
            memcpy(item, p, len < sizeof item ? len : sizeof item - 1);
            item[len < sizeof item ? len : sizeof item - 1] = '\0';
            if (len >= sizeof item || !tg_parse_int(item, 0, vocab - 1, &id)) {
                fprintf(stderr, "sample_gpt: --prompt-ids: item %d (\"%.*s\") is not a token id from 0 to %d\n", n + 1,
                        (int)(len < 16 ? len : 16), p, vocab - 1);
                return -1;
            }
            ids[n++] = (int)id;
            p += len;
            if (!*p)
                return n;
        }
    }
    if (!o->prompt) { /* a newline, as train_gpt's sample starts, else token 0 */
        ids[0] = 0;
        for (int v = 0; v < n_chars; v++)
            ids[0] = chars[v] == '\n' ? v : ids[0];
        return 1;
    }
    if (!n_chars) {
        fprintf(stderr, "sample_gpt: %s has no text vocabulary (metadata \"chars\"); give the prompt as "
                "--prompt-ids\n", o->path);
        return -1;
    }
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)o->prompt; *p; p++) {
        int v = 0;
        while (v < n_chars && chars[v] != *p)
            v++;
        if (v == n_chars) {
            if (*p >= 32 && *p < 127)
                fprintf(stderr, "sample_gpt: --prompt: character '%c' (byte %d) at position %d is not in the "
                        "checkpoint's vocabulary\n", *p, *p, n + 1);
            else
                fprintf(stderr, "sample_gpt: --prompt: byte %d at position %d is not in the checkpoint's "
                        "vocabulary\n", *p, n + 1);
            return -1;
        }
        ids[n++] = v;
    }
    return n;
}

/* Sample i: reset, feed the prompt, then tokens draws, printed as they come. */
static bool sample(tg_generator *g, const options *o, const int *prompt, int n_prompt, const unsigned char *chars,
                   int n_chars, int vocab, long long i)
{
    char err[256];
    tg_rng rng;
    tg_rng_seed(&rng, o->seed + (uint64_t)i);
    tg_generator_reset(g);
    const float *logits = tg_generator_feed(g, prompt, n_prompt, err, sizeof err);
    if (n_chars) {
        if (o->samples > 1)
            printf("--- sample %lld\n", i);
        for (int k = 0; k < n_prompt; k++)
            putchar(chars[prompt[k]]);
    }
    for (long long k = 0; logits && k < o->tokens; k++) {
        int tok = tg_sample_logits(logits, vocab, o->temperature, (int)o->top_k, &rng);
        if (tok < 0) {
            fprintf(stderr, "\nsample_gpt: the model gave a NaN or infinite logit\n");
            return false;
        }
        if (n_chars)
            putchar(chars[tok]);
        else
            printf(k ? " %d" : "%d", tok);
        if (k + 1 < o->tokens)
            logits = tg_generator_push(g, tok, err, sizeof err);
    }
    putchar('\n');
    if (!logits)
        fprintf(stderr, "sample_gpt: %s\n", err);
    return logits != NULL && fflush(stdout) == 0;
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    char err[512];
    tg_checkpoint *c = tg_checkpoint_open(o.path, err, sizeof err);
    if (!c) {
        fprintf(stderr, "sample_gpt: %s\n", err);
        return EXIT_USAGE;
    }
    int vocab = tg_checkpoint_config(c)->vocab, n_chars;
    unsigned char chars[256];
    size_t room = (o.prompt ? strlen(o.prompt) : 0) + (o.prompt_ids ? strlen(o.prompt_ids) : 0) + 1;
    int *prompt = malloc(room * sizeof *prompt), n_prompt = -1;
    tg_gpt *m = NULL;
    tg_generator *g = NULL;
    if (!prompt) {
        fprintf(stderr, "sample_gpt: out of memory\n");
        rc = 1;
    } else if (!read_vocab(c, o.path, vocab, chars, &n_chars) ||
        (n_prompt = encode_prompt(&o, chars, n_chars, vocab, prompt)) < 0)
        rc = EXIT_USAGE;
    else if (!(m = tg_checkpoint_model(c, err, sizeof err)) || !(g = tg_generator_new(m, err, sizeof err))) {
        fprintf(stderr, "sample_gpt: %s\n", err);
        rc = EXIT_USAGE;
    }
    tg_checkpoint_close(c);
    if (!rc && o.threads)
        tg_set_threads((int)o.threads);
    for (long long i = 0; !rc && i < o.samples; i++)
        rc = sample(g, &o, prompt, n_prompt, chars, n_chars, vocab, i) ? 0 : 1;
    tg_generator_free(g);
    tg_gpt_free(m);
    free(prompt);
    return rc;
}
