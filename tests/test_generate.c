/* Generation with the key/value cache (src/nn/generate.c), sampling, and
 * exact evaluation (src/nn/eval.c).
 *
 * The generator's logits are compared with tg_gpt_logits on a tape for the
 * same window, after every token, for every block variant, across window
 * slides. LOGIT_TOL: max |cached - full| <= 1e-5 * max(1, max |full|) over
 * the vocabulary. The generator shares the GEMM, LayerNorm and GELU kernels
 * with the ops and sums attention in the attention op's order, so the two
 * agree to the bit in practice (this test prints the worst difference it
 * saw; 0 when measured with the built-in GEMM); the tolerance leaves room for
 * a GEMM backend whose sums depend on the number of rows (OpenBLAS with
 * TG_GEMM_BLAS_MIN_FLOPS set).
 *
 * The models are drawn large on purpose (std 0.3 for every parameter,
 * gates and LayerNorm gains included), so that logits spread over several
 * units and a wrong position, a stale cache row or a missed gate moves
 * them by far more than the tolerance. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOGIT_TOL 1e-5

static double worst_seen;

/* llama: RMSNorm, SwiGLU and RoPE in place of GPT-2's choices. */
static tg_gpt *model_of(tg_norm_place norm, float residual_scale, int vocab, int ctx, uint64_t seed, bool llama)
{
    tg_gpt_config cfg = {.vocab = vocab, .ctx = ctx, .layers = 2, .heads = 2, .dim = 32, .norm = norm,
                         .residual_scale = residual_scale};
    if (llama)
        cfg.normtype = TG_RMSNORM, cfg.mlp = TG_MLP_SWIGLU, cfg.pos = TG_POS_ROPE;
    char err[256] = "";
    tg_gpt *m = tg_gpt_new(&cfg, seed, err, sizeof err);
    if (!m)
        fail_msg("tg_gpt_new: %s", err);
    tg_rng r;
    tg_rng_seed(&r, seed + 100);
    for (int i = 0; i < m->n_params; i++) {
        tg_tensor *p = m->params[i];
        bool gain = strstr(p->name, "ln_") && strstr(p->name, ".weight");
        tg_fill_normal(p, &r, gain ? 1.0f : 0.0f, 0.3f);
    }
    return m;
}

static tg_gpt *model(tg_norm_place norm, float residual_scale, int vocab, int ctx, uint64_t seed)
{
    return model_of(norm, residual_scale, vocab, ctx, seed, false);
}

/* The last row of tg_gpt_logits for window[0 .. len-1], into out[vocab]. */
static void full_logits(const tg_gpt *m, tg_tape *t, const int *window, int len, float *out)
{
    tg_tape_reset(t);
    tg_tensor *lg = tg_gpt_logits(t, m, window, 1, len);
    if (!lg)
        fail_msg("tg_gpt_logits: %s", tg_tape_error(t));
    memcpy(out, lg->data + (size_t)(len - 1) * m->cfg.vocab, (size_t)m->cfg.vocab * sizeof *out);
}

static void assert_close(const float *got, const float *want, int vocab, const char *what, int step)
{
    double scale = 1.0, diff = 0.0;
    for (int v = 0; v < vocab; v++) {
        scale = fmax(scale, fabs(want[v]));
        diff = fmax(diff, fabs((double)got[v] - want[v]));
    }
    worst_seen = fmax(worst_seen, diff / scale);
    if (diff > LOGIT_TOL * scale)
        fail_msg("%s, token %d: logits differ by %g (scale %g)", what, step, diff, scale);
}

/* The documented window rule, kept independently of the generator: a token
 * arriving at a full window starts one from the last ctx/2 tokens. */
static void window_append(int *window, int *len, int ctx, int token)
{
    if (*len == ctx) {
        int keep = ctx / 2;
        memmove(window, window + ctx - keep, (size_t)keep * sizeof *window);
        *len = keep;
    }
    window[(*len)++] = token;
}

/* Pushes n random tokens one at a time; after each, the cached logits must
 * be the full pass's over the window. */
static void check_against_full(tg_norm_place norm, float scale, int ctx, const char *what, bool llama)
{
    enum { VOCAB = 13 };
    tg_gpt *m = model_of(norm, scale, VOCAB, ctx, 7, llama);
    tg_tape *t = tg_tape_new(0);
    char err[256] = "";
    tg_generator *g = tg_generator_new(m, err, sizeof err);
    assert_non_null(g);
    int *window = malloc((size_t)ctx * sizeof *window), len = 0, n = 3 * ctx + 3;
    float want[VOCAB];
    tg_rng r;
    tg_rng_seed(&r, 3);
    bool slid = false;
    for (int i = 0; i < n; i++) {
        int tok = (int)(tg_rng_u32(&r) % VOCAB);
        slid |= len == ctx;
        window_append(window, &len, ctx, tok);
        const float *got = tg_generator_push(g, tok, err, sizeof err);
        assert_non_null(got);
        assert_int_equal(tg_generator_length(g), len);
        full_logits(m, t, window, len, want);
        assert_close(got, want, VOCAB, what, i);
    }
    assert_true(slid);
    /* After a reset the window starts again at position 0. */
    tg_generator_reset(g);
    assert_int_equal(tg_generator_length(g), 0);
    const float *got = tg_generator_push(g, 5, err, sizeof err);
    full_logits(m, t, (int[]){5}, 1, want);
    assert_close(got, want, VOCAB, what, -1);
    free(window);
    tg_generator_free(g);
    tg_tape_free(t);
    tg_gpt_free(m);
}

static void test_pre_ln(void **s)
{
    (void)s;
    check_against_full(TG_PRE_LN, 1.0f, 8, "Pre-LN", false);
    check_against_full(TG_PRE_LN, 0.8f, 7, "Pre-LN, residual scale 0.8, odd ctx", false);
}

static void test_post_ln(void **s)
{
    (void)s;
    check_against_full(TG_POST_LN, 1.0f, 8, "Post-LN", false);
    check_against_full(TG_POST_LN, 1.3f, 6, "Post-LN, residual scale 1.3", false);
}

/* RMSNorm, SwiGLU and RoPE: positions restart with the window, as in a
 * full pass over it. */
static void test_llama(void **s)
{
    (void)s;
    check_against_full(TG_PRE_LN, 1.0f, 8, "LLaMA-style Pre-LN", true);
    check_against_full(TG_POST_LN, 1.0f, 7, "LLaMA-style Post-LN", true);
}

static void test_deepnorm(void **s)
{
    (void)s;
    check_against_full(TG_DEEPNORM, 0.0f, 8, "DeepNorm", false);
}

static void test_rezero(void **s)
{
    (void)s;
    check_against_full(TG_REZERO, 0.0f, 8, "ReZero", false);
}

/* ctx 1: every token after the first starts a new window of itself. */
static void test_ctx_one(void **s)
{
    (void)s;
    check_against_full(TG_PRE_LN, 1.0f, 1, "Pre-LN, ctx 1", false);
}

/* A long context puts more than 16 positions in a window, where the
 * attention op's vector loops run over full blocks. */
static void test_long_ctx(void **s)
{
    (void)s;
    check_against_full(TG_PRE_LN, 1.0f, 40, "Pre-LN, ctx 40", false);
}

/* Feeding a run of tokens at once gives what pushing them one by one does,
 * whether or not the run crosses a slide. */
static void test_feed_equals_push(void **s)
{
    (void)s;
    enum { VOCAB = 13, CTX = 8, N = 29 };
    tg_gpt *m = model(TG_POST_LN, 1.0f, VOCAB, CTX, 11);
    char err[256] = "";
    tg_generator *a = tg_generator_new(m, err, sizeof err), *b = tg_generator_new(m, err, sizeof err);
    int toks[N];
    for (int i = 0; i < N; i++)
        toks[i] = (i * 7 + 3) % VOCAB;
    const int cuts[] = {3, 5, 1, 12, 8}; /* 3 + 5 + 1 + 12 + 8 = 29 */
    int at = 0;
    float want[VOCAB];
    for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
        const float *pa = NULL;
        for (int i = 0; i < cuts[c]; i++)
            pa = tg_generator_push(a, toks[at + i], err, sizeof err);
        memcpy(want, pa, sizeof want);
        const float *pb = tg_generator_feed(b, toks + at, cuts[c], err, sizeof err);
        assert_non_null(pb);
        assert_int_equal(tg_generator_length(a), tg_generator_length(b));
        assert_close(pb, want, VOCAB, "feed against push", at);
        at += cuts[c];
    }
    assert_int_equal(at, N);
    tg_generator_free(a);
    tg_generator_free(b);
    tg_gpt_free(m);
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        best = x[i] > x[best] ? i : best;
    return best;
}

static void test_top_k_one_is_argmax(void **s)
{
    (void)s;
    tg_rng r, pick;
    tg_rng_seed(&r, 5);
    tg_rng_seed(&pick, 6);
    const int sizes[] = {1, 2, 65, 300, 5000};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        int vocab = sizes[k];
        float *logits = malloc((size_t)vocab * sizeof *logits);
        for (int trial = 0; trial < 20; trial++) {
            for (int v = 0; v < vocab; v++)
                logits[v] = 4.0f * tg_rng_normal(&r);
            assert_int_equal(tg_sample_logits(logits, vocab, 1.0f, 1, &pick), argmax(logits, vocab));
            assert_int_equal(tg_sample_logits(logits, vocab, 50.0f, 1, &pick), argmax(logits, vocab));
        }
        free(logits);
    }
}

/* Frequencies over many draws against softmax(logits / T), restricted to
 * the top k. 200000 draws: a frequency's standard deviation is below
 * 0.0012, and the tolerance 0.006 is five of them. */
static void check_frequencies(const float *logits, int vocab, float temp, int top_k)
{
    enum { DRAWS = 200000 };
    double p[8] = {0}, total = 0.0;
    int count[8] = {0};
    float sorted[8];
    memcpy(sorted, logits, (size_t)vocab * sizeof *sorted);
    for (int i = 0; i < vocab; i++) /* descending */
        for (int j = i + 1; j < vocab; j++)
            if (sorted[j] > sorted[i]) {
                float x = sorted[i];
                sorted[i] = sorted[j];
                sorted[j] = x;
            }
    float kth = top_k ? sorted[top_k - 1] : -INFINITY;
    for (int v = 0; v < vocab; v++)
        total += p[v] = logits[v] >= kth ? exp((double)logits[v] / temp) : 0.0;
    tg_rng r;
    tg_rng_seed(&r, 99);
    for (int i = 0; i < DRAWS; i++) {
        int v = tg_sample_logits(logits, vocab, temp, top_k, &r);
        assert_true(v >= 0 && v < vocab);
        count[v]++;
    }
    for (int v = 0; v < vocab; v++) {
        double f = (double)count[v] / DRAWS;
        if (fabs(f - p[v] / total) > 0.006)
            fail_msg("token %d drawn %.4f of the time, softmax gives %.4f (T %g, top-k %d)", v, f, p[v] / total,
                     (double)temp, top_k);
        if (p[v] == 0.0)
            assert_int_equal(count[v], 0);
    }
}

static void test_sampling_distribution(void **s)
{
    (void)s;
    const float logits[6] = {0.5f, -1.0f, 1.5f, 0.2f, 1.5f, -0.3f};
    check_frequencies(logits, 6, 1.0f, 0);
    check_frequencies(logits, 6, 0.5f, 0);
    check_frequencies(logits, 6, 2.0f, 3);
    check_frequencies(logits, 6, 1.0f, 2); /* two tied at the top */
    check_frequencies(logits, 6, 1.0f, 6);
    /* -inf is never drawn. */
    const float masked[3] = {-INFINITY, 0.0f, 1.0f};
    check_frequencies(masked, 3, 1.0f, 0);
}

static void test_bad_sampling_args(void **s)
{
    (void)s;
    tg_rng r;
    tg_rng_seed(&r, 1);
    const float lg[3] = {0.0f, 1.0f, 2.0f};
    assert_int_equal(tg_sample_logits(NULL, 3, 1.0f, 0, &r), -1);
    assert_int_equal(tg_sample_logits(lg, 3, 1.0f, 0, NULL), -1);
    assert_int_equal(tg_sample_logits(lg, 0, 1.0f, 0, &r), -1);
    assert_int_equal(tg_sample_logits(lg, 3, 0.0f, 0, &r), -1);
    assert_int_equal(tg_sample_logits(lg, 3, -1.0f, 0, &r), -1);
    assert_int_equal(tg_sample_logits(lg, 3, NAN, 0, &r), -1);
    assert_int_equal(tg_sample_logits(lg, 3, INFINITY, 0, &r), -1);
    assert_int_equal(tg_sample_logits(lg, 3, 1.0f, -1, &r), -1);
    assert_int_equal(tg_sample_logits((float[]){0.0f, NAN, 1.0f}, 3, 1.0f, 0, &r), -1);
    assert_int_equal(tg_sample_logits((float[]){0.0f, INFINITY}, 2, 1.0f, 0, &r), -1);
    assert_int_equal(tg_sample_logits((float[]){-INFINITY, -INFINITY}, 2, 1.0f, 0, &r), -1);
    assert_int_equal(tg_sample_logits(lg, 3, 1.0f, 0, &r) >= 0, 1);
}

/* tg_gpt_generate is the generator and tg_sample_logits with an rng seeded
 * from seed; the same seed gives the same tokens, and top-k 1 is greedy
 * decoding against the full forward pass. */
static void test_generate(void **s)
{
    (void)s;
    enum { VOCAB = 13, CTX = 8, NEW = 30 };
    tg_gpt *m = model(TG_PRE_LN, 1.0f, VOCAB, CTX, 21);
    const int prompt[3] = {4, 0, 9};
    int a[NEW], b[NEW], c[NEW], manual[NEW];
    char err[256] = "";
    assert_int_equal(tg_gpt_generate(m, prompt, 3, NEW, 1.0f, 0, 42, a, err, sizeof err), TG_OK);
    assert_int_equal(tg_gpt_generate(m, prompt, 3, NEW, 1.0f, 0, 42, b, err, sizeof err), TG_OK);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(tg_gpt_generate(m, prompt, 3, NEW, 1.0f, 0, 43, c, err, sizeof err), TG_OK);
    assert_memory_not_equal(a, c, sizeof a);

    tg_generator *g = tg_generator_new(m, err, sizeof err);
    tg_rng r;
    tg_rng_seed(&r, 42);
    const float *lg = tg_generator_feed(g, prompt, 3, err, sizeof err);
    for (int i = 0; i < NEW; i++) {
        manual[i] = tg_sample_logits(lg, VOCAB, 1.0f, 0, &r);
        lg = tg_generator_push(g, manual[i], err, sizeof err);
    }
    assert_memory_equal(a, manual, sizeof a);
    tg_generator_free(g);

    /* Greedy: each token is the argmax of the full pass over the window. */
    assert_int_equal(tg_gpt_generate(m, prompt, 3, NEW, 0.7f, 1, 5, a, err, sizeof err), TG_OK);
    tg_tape *t = tg_tape_new(0);
    int window[CTX], len = 0;
    float full[VOCAB];
    for (int i = 0; i < 3; i++)
        window_append(window, &len, CTX, prompt[i]);
    for (int i = 0; i < NEW; i++) {
        full_logits(m, t, window, len, full);
        assert_int_equal(a[i], argmax(full, VOCAB));
        window_append(window, &len, CTX, a[i]);
    }
    tg_tape_free(t);
    tg_gpt_free(m);
}

static void expect_generate_error(const tg_gpt *m, const int *prompt, int n_prompt, int n_new, float temp, int top_k,
                                  int *out, const char *needle)
{
    char err[256] = "";
    assert_int_equal(tg_gpt_generate(m, prompt, n_prompt, n_new, temp, top_k, 1, out, err, sizeof err), TG_ERR_ARG);
    if (!strstr(err, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, err);
}

static void test_bad_generate_args(void **s)
{
    (void)s;
    tg_gpt *m = model(TG_PRE_LN, 1.0f, 13, 8, 1);
    int out[4], ok[2] = {1, 2}, bad[2] = {1, 13}, neg[1] = {-1};
    char err[256] = "";
    expect_generate_error(NULL, ok, 2, 4, 1.0f, 0, out, "model is NULL");
    expect_generate_error(m, NULL, 2, 4, 1.0f, 0, out, "prompt is NULL");
    expect_generate_error(m, ok, 0, 4, 1.0f, 0, out, "n_prompt");
    expect_generate_error(m, ok, 2, -1, 1.0f, 0, out, "n_new");
    expect_generate_error(m, ok, 2, 4, 1.0f, 0, NULL, "out is NULL");
    expect_generate_error(m, ok, 2, 4, 0.0f, 0, out, "temperature");
    expect_generate_error(m, ok, 2, 4, NAN, 0, out, "temperature");
    expect_generate_error(m, ok, 2, 4, 1.0f, -2, out, "top_k");
    expect_generate_error(m, bad, 2, 4, 1.0f, 0, out, "token 13 (at 1) is outside [0, 13)");
    expect_generate_error(m, neg, 1, 4, 1.0f, 0, out, "token -1");
    assert_int_equal(tg_gpt_generate(m, ok, 2, 0, 1.0f, 0, 1, NULL, err, sizeof err), TG_OK);

    assert_null(tg_generator_new(NULL, err, sizeof err));
    assert_non_null(strstr(err, "model is NULL"));
    tg_generator *g = tg_generator_new(m, err, sizeof err);
    assert_null(tg_generator_push(NULL, 1, err, sizeof err));
    assert_null(tg_generator_push(g, 13, err, sizeof err));
    assert_non_null(strstr(err, "token 13 is outside [0, 13)"));
    assert_null(tg_generator_push(g, -1, NULL, 0)); /* no message wanted */
    assert_null(tg_generator_feed(g, ok, 0, err, sizeof err));
    assert_null(tg_generator_feed(g, NULL, 2, err, sizeof err));
    assert_null(tg_generator_feed(g, bad, 2, err, sizeof err));
    assert_int_equal(tg_generator_length(g), 0); /* a rejected feed feeds nothing */
    tg_generator_free(g);
    tg_generator_free(NULL);
    tg_generator_reset(NULL);

    /* A model missing a parameter its variant needs is refused, by name. */
    tg_tensor *gamma = tg_gpt_param(m, "transformer.h.1.ln_2.weight");
    snprintf(gamma->name, sizeof gamma->name, "renamed");
    assert_null(tg_generator_new(m, err, sizeof err));
    assert_non_null(strstr(err, "transformer.h.1.ln_2.weight"));
    tg_gpt_free(m);
}

/* ---- evaluation ------------------------------------------------------------ */

/* Mean cross-entropy over every window, from the logits of one window at a
 * time, in double: an independent reading of tg_gpt_eval's definition. */
static double eval_by_window(const tg_gpt *m, const int *tokens, long n, int ctx)
{
    tg_tape *t = tg_tape_new(0);
    long windows = (n - 1) / ctx;
    int vocab = m->cfg.vocab;
    double sum = 0.0;
    for (long w = 0; w < windows; w++) {
        tg_tape_reset(t);
        tg_tensor *lg = tg_gpt_logits(t, m, tokens + w * ctx, 1, ctx);
        assert_non_null(lg);
        for (int i = 0; i < ctx; i++) {
            const float *row = lg->data + (size_t)i * vocab;
            double mx = row[0], z = 0.0;
            for (int v = 1; v < vocab; v++)
                mx = fmax(mx, row[v]);
            for (int v = 0; v < vocab; v++)
                z += exp(row[v] - mx);
            sum += mx + log(z) - row[tokens[w * ctx + i + 1]];
        }
    }
    tg_tape_free(t);
    return sum / (double)(windows * ctx);
}

static void test_eval(void **s)
{
    (void)s;
    enum { VOCAB = 13, CTX = 8, N = 8 * 11 + 5 }; /* 11 windows and a partial one */
    tg_gpt *m = model(TG_POST_LN, 1.0f, VOCAB, CTX, 31);
    int tokens[N];
    tg_rng r;
    tg_rng_seed(&r, 8);
    for (int i = 0; i < N; i++)
        tokens[i] = (int)(tg_rng_u32(&r) % VOCAB);
    tg_tape *t = tg_tape_new(0);
    char err[256] = "";
    const int batches[] = {1, 3, 4, 11, 50};
    const int ctxs[] = {CTX, 5};
    for (size_t c = 0; c < 2; c++) {
        double want = eval_by_window(m, tokens, N, ctxs[c]);
        for (size_t b = 0; b < sizeof batches / sizeof *batches; b++) {
            double got = -1.0;
            assert_int_equal(tg_gpt_eval(m, t, tokens, N, ctxs[c], batches[b], &got, err, sizeof err), TG_OK);
            if (fabs(got - want) > 1e-6 * want)
                fail_msg("ctx %d batch %d: tg_gpt_eval %.9f, window by window %.9f", ctxs[c], batches[b], got, want);
        }
    }
    /* Exactly one window: the tokens past it do not count. */
    double one = -1.0, two = -1.0;
    assert_int_equal(tg_gpt_eval(m, t, tokens, CTX + 1, CTX, 4, &one, err, sizeof err), TG_OK);
    assert_int_equal(tg_gpt_eval(m, t, tokens, 2 * CTX, CTX, 4, &two, err, sizeof err), TG_OK);
    assert_true(one == two);
    assert_true(fabs(one - eval_by_window(m, tokens, CTX + 1, CTX)) <= 1e-6 * one);

    double x = 0;
    assert_int_equal(tg_gpt_eval(NULL, t, tokens, N, CTX, 4, &x, err, sizeof err), TG_ERR_ARG);
    assert_int_equal(tg_gpt_eval(m, NULL, tokens, N, CTX, 4, &x, err, sizeof err), TG_ERR_ARG);
    assert_int_equal(tg_gpt_eval(m, t, tokens, N, CTX, 4, NULL, err, sizeof err), TG_ERR_ARG);
    assert_int_equal(tg_gpt_eval(m, t, tokens, N, CTX + 1, 4, &x, err, sizeof err), TG_ERR_ARG);
    assert_non_null(strstr(err, "ctx 9 is outside [1, 8]"));
    assert_int_equal(tg_gpt_eval(m, t, tokens, N, 0, 4, &x, err, sizeof err), TG_ERR_ARG);
    assert_int_equal(tg_gpt_eval(m, t, tokens, N, CTX, 0, &x, err, sizeof err), TG_ERR_ARG);
    assert_non_null(strstr(err, "batch 0"));
    assert_int_equal(tg_gpt_eval(m, t, tokens, CTX, CTX, 4, &x, err, sizeof err), TG_ERR_ARG);
    assert_non_null(strstr(err, "8 tokens do not make one window"));
    tokens[40] = VOCAB;
    assert_int_equal(tg_gpt_eval(m, t, tokens, N, CTX, 4, &x, err, sizeof err), TG_ERR_ARG);
    assert_non_null(strstr(err, "token 13 at index 40"));
    tokens[40] = -1;
    assert_int_equal(tg_gpt_eval(m, t, tokens, N, CTX, 4, &x, err, sizeof err), TG_ERR_ARG);
    assert_true(x == 0); /* untouched on error */
    tg_tape_free(t);
    tg_gpt_free(m);
}

static int report(void **s)
{
    (void)s;
    printf("worst |cached - full| / max(1, max|logit|) seen: %.3g (tolerance %g)\n", worst_seen, LOGIT_TOL);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pre_ln),           cmocka_unit_test(test_post_ln),
        cmocka_unit_test(test_deepnorm),         cmocka_unit_test(test_rezero),
        cmocka_unit_test(test_llama),
        cmocka_unit_test(test_ctx_one),          cmocka_unit_test(test_long_ctx),
        cmocka_unit_test(test_feed_equals_push), cmocka_unit_test(test_top_k_one_is_argmax),
        cmocka_unit_test(test_sampling_distribution), cmocka_unit_test(test_bad_sampling_args),
        cmocka_unit_test(test_generate),         cmocka_unit_test(test_bad_generate_args),
        cmocka_unit_test(test_eval),
    };
    return cmocka_run_group_tests(tests, NULL, report);
}
