/* GEMM throughput: the built-in kernel against OpenBLAS (when linked) at the
 * GPT-2 shapes and at the shakespeare model's small shapes, in GFLOP/s and as
 * a fraction of OpenBLAS and of the machine's FP32 FMA peak, measured in the
 * same run: one thread per GEMM thread runs a register-resident loop of 12
 * independent vector FMA chains (enough to keep two FMA pipes of 4-cycle
 * latency busy), and the best of several runs counts. The peak is measured
 * before the shapes and again after them, and the higher of the two is used,
 * so that a moment when the shared host took cycles does not pass for the
 * peak (it would put kernels above 100%). Both are printed.
 *
 * Usage: bench_gemm [--threads N] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "tapegrad_internal.h"

#ifdef TG_HAVE_BLAS
#include <cblas.h>
#endif
#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#endif

/* The widest FMA the build targets; VLANES floats per instruction. */
#if defined(__AVX512F__)
typedef __m512 fvec;
#define VLANES 16
#define VSET(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VSUM(v) _mm512_reduce_add_ps(v)
#elif defined(__FMA__)
typedef __m256 fvec;
#define VLANES 8
#define VSET(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
static float VSUM(__m256 v)
{
    float f[8];
    _mm256_storeu_ps(f, v);
    return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
}
#endif

enum { CHAINS = 12, FMA_ITERS = 20000000 };

#ifdef VLANES
static void *fma_loop(void *out)
{
    fvec acc[CHAINS], m = VSET(0.999999f), a = VSET(1e-7f);
    for (int c = 0; c < CHAINS; c++)
        acc[c] = VSET((float)c);
    for (long i = 0; i < FMA_ITERS; i++)
        for (int c = 0; c < CHAINS; c++)
            acc[c] = VFMA(acc[c], m, a);
    float s = 0.0f;
    for (int c = 0; c < CHAINS; c++)
        s += VSUM(acc[c]);
    *(float *)out = s; /* keeps the loop alive */
    return NULL;
}

/* GFLOP/s of `threads` threads running fma_loop at once; best of 5. */
static double fma_peak(int threads)
{
    pthread_t tid[64];
    float sink[64];
    threads = threads > 64 ? 64 : threads;
    double best = 0.0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = bench_now();
        int started = 0;
        while (started < threads && pthread_create(&tid[started], NULL, fma_loop, &sink[started]) == 0)
            started++;
        for (int i = 0; i < started; i++)
            pthread_join(tid[i], NULL);
        double rate = 2.0 * VLANES * CHAINS * (double)FMA_ITERS * started / (bench_now() - t0) * 1e-9;
        best = rate > best ? rate : best;
    }
    return best;
}
#else
#define VLANES 0
static double fma_peak(int threads)
{
    (void)threads;
    return 0.0; /* no FMA in this build: no peak to compare with */
}
#endif

typedef struct job {
    int m, n, k;
    bool ta, tb;
    float *a, *b, *c;
} job;

static void run_builtin(void *p)
{
    job *j = p;
    tg_gemm_builtin(j->ta, j->tb, j->m, j->n, j->k, 1.0f, j->a, j->ta ? j->m : j->k, j->b,
                    j->tb ? j->k : j->n, 0.0f, NULL, j->c, j->n);
}

#ifdef TG_HAVE_BLAS
static void run_blas(void *p)
{
    job *j = p;
    cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans,
                j->m, j->n, j->k, 1.0f, j->a, j->ta ? j->m : j->k, j->b, j->tb ? j->k : j->n, 0.0f,
                j->c, j->n);
}
#endif

int main(int argc, char **argv)
{
    int threads = 0;
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
    threads = tg_set_threads(threads);
    if (threads < 0) {
        fprintf(stderr, "bench_gemm: --threads must be 0 to %d\n", TG_MAX_THREADS);
        return 2;
    }
    double peak_before = fma_peak(threads);
    static const struct { int m, k, n; bool ta, tb; const char *what; } shapes[] = {
        {256, 768, 3072, false, true, "GPT-2 MLP c_fc fwd (x W^T)"},
        {2048, 768, 768, false, true, "GPT-2 c_proj fwd, B*T=2048"},
        {2048, 768, 768, false, false, "GPT-2 dX = dY W"},
        {768, 2048, 768, true, false, "GPT-2 dW = dY^T X"},
        {768, 128, 384, false, true, "shakespeare c_attn fwd"},
        {768, 128, 512, false, true, "shakespeare c_fc fwd"},
        {768, 512, 128, false, true, "shakespeare mlp c_proj fwd"},
        {512, 768, 128, true, false, "shakespeare dW c_fc"},
        {768, 128, 65, false, true, "shakespeare lm head"},
    };
    printf("GEMM, %d threads (FP32 FMA peak measured before and after the shapes, the higher used)\n", threads);
    printf("%-30s %5s %5s %5s  %9s %9s %8s\n", "shape", "M", "K", "N", "builtin", "openblas", "vs blas");
    double rate[sizeof shapes / sizeof *shapes];
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        job j = {shapes[s].m, shapes[s].n, shapes[s].k, shapes[s].ta, shapes[s].tb, NULL, NULL, NULL};
        j.a = malloc(sizeof(float) * j.m * j.k);
        j.b = malloc(sizeof(float) * j.k * j.n);
        j.c = malloc(sizeof(float) * j.m * j.n);
        for (int i = 0; i < j.m * j.k; i++)
            j.a[i] = (float)(i % 7) * 0.1f;
        for (int i = 0; i < j.k * j.n; i++)
            j.b[i] = (float)(i % 5) * 0.1f;
        double flop = 2.0 * j.m * j.n * j.k;
        double gb = flop / bench_best(run_builtin, &j, 0.3) * 1e-9;
        double go = 0.0;
#ifdef TG_HAVE_BLAS
        go = flop / bench_best(run_blas, &j, 0.3) * 1e-9;
#endif
        rate[s] = gb;
        printf("%-30s %5d %5d %5d  %9.1f %9.1f %7.0f%%\n", shapes[s].what, j.m, j.k, j.n, gb, go,
               go > 0 ? 100.0 * gb / go : 0.0);
        free(j.a);
        free(j.b);
        free(j.c);
    }
    double peak_after = fma_peak(threads), peak = peak_after > peak_before ? peak_after : peak_before;
    printf("FMA peak: %.0f GFLOP/s before, %.0f after (%d threads, %d chains of %d-float FMAs); as a fraction of %.0f:\n",
           peak_before, peak_after, threads, CHAINS, VLANES, peak);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        printf("%-30s %7.0f%%\n", shapes[s].what, peak > 0 ? 100.0 * rate[s] / peak : 0.0);
    return 0;
}
