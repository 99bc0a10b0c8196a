/* GEMM throughput: the built-in kernel against OpenBLAS (when linked) at the
 * GPT-2 shapes and at the shakespeare model's small shapes, in GFLOP/s and as
 * a fraction of OpenBLAS and of the FMA peak given by --peak (GFLOP/s). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "tapegrad_internal.h"

#ifdef TG_HAVE_BLAS
#include <cblas.h>
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
                    j->tb ? j->k : j->n, 0.0f, j->c, j->n);
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
    double peak = 225.0;
    int threads = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--peak"))
            peak = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
    }
    threads = tg_set_threads(threads);
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
    printf("GEMM, %d threads, FMA peak taken as %.0f GFLOP/s\n", threads, peak);
    printf("%-30s %5s %5s %5s  %9s %9s %8s %8s\n", "shape", "M", "K", "N", "builtin", "openblas",
           "vs blas", "vs peak");
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
        printf("%-30s %5d %5d %5d  %9.1f %9.1f %7.0f%% %7.0f%%\n", shapes[s].what, j.m, j.k, j.n, gb,
               go, go > 0 ? 100.0 * gb / go : 0.0, 100.0 * gb / peak);
        free(j.a);
        free(j.b);
        free(j.c);
    }
    return 0;
}
