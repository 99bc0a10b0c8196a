/* The thread pool and the thread-count contract: tg_set_threads/tg_get_threads
 * and their bounds, tg_parallel_for running every chunk exactly once (nested
 * loops included), and the same bits at 1, 2, 3 and 7 threads for a GPT's
 * loss and every gradient, and for products and LayerNorm large enough that
 * their kernels split the work. */
#include "test_util.h"
#include "tapegrad_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const int thread_counts[] = {1, 2, 3, 7};
#define N_COUNTS (int)(sizeof thread_counts / sizeof thread_counts[0])

static void test_set_and_get(void **s)
{
    (void)s;
    assert_int_equal(tg_set_threads(3), 3);
    assert_int_equal(tg_get_threads(), 3);
    assert_int_equal(tg_set_threads(-1), -1);
    assert_int_equal(tg_set_threads(TG_MAX_THREADS + 1), -1);
    assert_int_equal(tg_set_threads(100000), -1);
    assert_int_equal(tg_get_threads(), 3); /* unchanged by the bad calls */
    assert_int_equal(tg_set_threads(1), 1);
    assert_int_equal(tg_get_threads(), 1);
    /* 0 restores the default, which the environment sets. */
    setenv("TG_NUM_THREADS", "5", 1);
    assert_int_equal(tg_set_threads(0), 5);
    assert_int_equal(tg_get_threads(), 5);
    setenv("TG_NUM_THREADS", "100000", 1); /* out of range: ignored */
    int fallback = tg_set_threads(0);
    assert_true(fallback >= 1 && fallback <= TG_MAX_THREADS);
    unsetenv("TG_NUM_THREADS");
}

enum { CHUNKS = 1000, INNER = 7 };

typedef struct count_job {
    atomic_int hits[CHUNKS];
    atomic_int inner[CHUNKS][INNER];
} count_job;

static count_job job;

static void inner_chunk(void *ctx, long i)
{
    atomic_fetch_add(&job.inner[*(long *)ctx][i], 1);
}

static void outer_chunk(void *ctx, long i)
{
    (void)ctx;
    atomic_fetch_add(&job.hits[i], 1);
    if (i % 100 == 0) { /* nested: runs inline on the thread that holds chunk i */
        long outer = i;
        tg_parallel_for(INNER, inner_chunk, &outer);
    }
}

static void test_every_chunk_once(void **s)
{
    (void)s;
    for (int c = 0; c < N_COUNTS; c++) {
        tg_set_threads(thread_counts[c]);
        for (int rep = 0; rep < 50; rep++) {
            memset(&job, 0, sizeof job);
            tg_parallel_for(CHUNKS, outer_chunk, NULL);
            for (int i = 0; i < CHUNKS; i++) {
                assert_int_equal(atomic_load(&job.hits[i]), 1);
                for (int k = 0; k < INNER; k++)
                    assert_int_equal(atomic_load(&job.inner[i][k]), i % 100 == 0);
            }
        }
        tg_parallel_for(0, outer_chunk, NULL); /* nothing to do: returns */
    }
}

/* Loss and every gradient of a GPT with parts big enough to be split into
 * many chunks (products of 768 x 192 x 64, LayerNorm over 768 rows of 64,
 * attention over 24 x 4 (batch, head) pairs). */
typedef struct gpt_run {
    float loss;
    float *grads;
    size_t n;
} gpt_run;

static gpt_run run_gpt(int threads)
{
    assert_int_equal(tg_set_threads(threads), threads);
    tg_gpt_config cfg = {.vocab = 50, .ctx = 32, .layers = 2, .heads = 4, .dim = 64, .norm = TG_PRE_LN};
    char err[256];
    tg_gpt *m = tg_gpt_new(&cfg, 42, err, sizeof err);
    assert_non_null(m);
    enum { B = 24, T = 32 };
    int ids[B * T], targets[B * T];
    for (int i = 0; i < B * T; i++) {
        ids[i] = (i * 7 + i / 5) % cfg.vocab;
        targets[i] = (i * 11 + 3) % cfg.vocab;
    }
    tg_tape *t = tg_tape_new(0);
    assert_non_null(t);
    tg_zero_grad(m->params, m->n_params);
    tg_tensor *loss = tg_gpt_loss(t, m, ids, targets, B, T);
    assert_non_null(loss);
    assert_int_equal(tg_backward(t, loss), TG_OK);
    gpt_run r = {loss->data[0], NULL, 0};
    for (int i = 0; i < m->n_params; i++)
        r.n += m->params[i]->size;
    r.grads = malloc(r.n * sizeof(float));
    assert_non_null(r.grads);
    size_t off = 0;
    for (int i = 0; i < m->n_params; i++) {
        assert_non_null(m->params[i]->grad);
        memcpy(r.grads + off, m->params[i]->grad, m->params[i]->size * sizeof(float));
        off += m->params[i]->size;
    }
    tg_tape_free(t);
    tg_gpt_free(m);
    return r;
}

static void test_gpt_gradients_identical(void **s)
{
    (void)s;
    gpt_run ref = run_gpt(1);
    double norm = 0;
    for (size_t i = 0; i < ref.n; i++)
        norm += (double)ref.grads[i] * ref.grads[i];
    assert_true(norm > 0);
    for (int c = 1; c < N_COUNTS; c++) {
        gpt_run r = run_gpt(thread_counts[c]);
        assert_int_equal(r.n, ref.n);
        if (memcmp(&r.loss, &ref.loss, sizeof r.loss) || memcmp(r.grads, ref.grads, r.n * sizeof(float)))
            fail_msg("%d threads: loss or gradients differ from 1 thread (max |diff| %g)", thread_counts[c],
                     tu_max_abs_diff(r.grads, ref.grads, r.n));
        free(r.grads);
    }
    free(ref.grads);
}

/* Products of shapes that leave partial tiles, several depth slices and
 * column panels, in each transpose, accumulating onto C. */
static void test_kernels_identical(void **s)
{
    (void)s;
    static const int shapes[][3] = {{200, 300, 700}, {777, 65, 128}, {96, 1100, 40}};
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
        int m = shapes[sh][0], n = shapes[sh][1], k = shapes[sh][2];
        float *a = malloc((size_t)m * k * sizeof(float)), *b = malloc((size_t)k * n * sizeof(float));
        float *ref = malloc((size_t)m * n * sizeof(float)), *c = malloc((size_t)m * n * sizeof(float));
        assert_true(a && b && ref && c);
        for (size_t i = 0; i < (size_t)m * k; i++)
            a[i] = tg_rng_normal(&rng);
        for (size_t i = 0; i < (size_t)k * n; i++)
            b[i] = tg_rng_normal(&rng);
        for (int tr = 0; tr < 4; tr++) {
            bool ta = tr & 1, tb = tr & 2;
            for (int cnt = 0; cnt < N_COUNTS; cnt++) {
                tg_set_threads(thread_counts[cnt]);
                float *out = cnt ? c : ref;
                for (size_t i = 0; i < (size_t)m * n; i++)
                    out[i] = 0.5f;
                tg_gemm(ta, tb, m, n, k, 0.75f, a, ta ? m : k, b, tb ? k : n, 1.0f, out, n);
                if (cnt && memcmp(c, ref, (size_t)m * n * sizeof(float)))
                    fail_msg("gemm %dx%dx%d ta=%d tb=%d: %d threads differ from 1", m, n, k, ta, tb,
                             thread_counts[cnt]);
            }
        }
        free(a);
        free(b);
        free(ref);
        free(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_and_get),
        cmocka_unit_test(test_every_chunk_once),
        cmocka_unit_test(test_gpt_gradients_identical),
        cmocka_unit_test(test_kernels_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
