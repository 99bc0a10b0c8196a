/* LayerNorm forward + backward on its own: time per call and effective
 * bandwidth, counting the bytes the fused kernels must move at least (forward:
 * read x, write y; backward: read x and dy, read and write dx), 24 bytes per
 * element; and, when /usr/bin/python3 has torch, PyTorch's time for the same
 * (bench/torch_layernorm.py) at its default threads and at ours with
 * OMP_WAIT_POLICY=passive, the faster of the two taken for the ratio.
 * Usage: bench_layernorm [--threads N] */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "tapegrad_internal.h"

#ifndef TG_BENCH_DIR
#define TG_BENCH_DIR "bench"
#endif
#define PYTHON "/usr/bin/python3"

/* PyTorch's best ms for one setting; 0 when it cannot be had. */
static double torch_ms(int rows, int c, int threads)
{
    char cmd[512], line[256];
    snprintf(cmd, sizeof cmd, "%s'%s' '%s/torch_layernorm.py' --rows %d --cols %d --threads %d 2>/dev/null",
             threads ? "OMP_WAIT_POLICY=passive " : "", PYTHON, TG_BENCH_DIR, rows, c, threads);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    double ms = 0.0;
    int r, cc, th;
    while (p && fgets(line, sizeof line, p))
        if (sscanf(line, "torch_layernorm rows %d cols %d threads %d ms %lf", &r, &cc, &th, &ms) != 4)
            ms = 0.0;
    if (p && pclose(p) != 0)
        ms = 0.0;
    return ms;
}

/* The faster of PyTorch's default threads and ours (passive waits). */
static double torch_best_ms(int rows, int c, int threads, bool have_torch)
{
    if (!have_torch)
        return 0.0;
    double a = torch_ms(rows, c, 0), b = torch_ms(rows, c, threads);
    return a > 0 && (b <= 0 || a < b) ? a : b;
}

typedef struct job {
    tg_node *node;
} job;

static void run(void *p)
{
    tg_node *n = ((job *)p)->node;
    tg_op_table[TG_OP_LAYERNORM].forward(n);
    tg_op_table[TG_OP_LAYERNORM].backward(n);
}

int main(int argc, char **argv)
{
    int threads = argc == 3 && !strcmp(argv[1], "--threads") ? atoi(argv[2]) : 0;
    threads = tg_set_threads(threads);
    static const int shapes[][2] = {{2048, 768}, {256, 768}, {8192, 1024}};
    bool have_torch = system("'" PYTHON "' -c 'import torch' >/dev/null 2>&1") == 0;
    printf("LayerNorm forward + backward, %d threads%s\n", threads,
           have_torch ? "" : " (PyTorch not available: no comparison)");
    printf("%-12s %10s %10s %12s %14s\n", "shape", "ms", "GB/s", "PyTorch ms", "PyTorch / ours");
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int rows = shapes[s][0], c = shapes[s][1];
        tg_rng r;
        tg_rng_seed(&r, 1);
        tg_tensor *x = tg_param_new(2, (int[]){rows, c}, "x");
        tg_tensor *g = tg_param_new(1, (int[]){c}, "g"), *b = tg_param_new(1, (int[]){c}, "b");
        tg_fill_normal(x, &r, 0.0f, 1.0f);
        tg_fill(g, 1.0f);
        tg_tape *t = tg_tape_new(0);
        tg_tensor *y = tg_layernorm(t, x, g, b, 1e-5f);
        if (!y) {
            fprintf(stderr, "bench_layernorm: %s\n", tg_tape_error(t));
            return 1;
        }
        y->grad = tg_arena_alloc(t, y->size * sizeof(float));
        for (size_t i = 0; i < y->size; i++)
            y->grad[i] = tg_rng_normal(&r);
        job j = {tg_tape_node(t, 0)};
        double sec = bench_best(run, &j, 0.5);
        double bytes = 24.0 * (double)rows * c;
        char name[32];
        snprintf(name, sizeof name, "%dx%d", rows, c);
        double tms = torch_best_ms(rows, c, threads, have_torch);
        if (tms > 0)
            printf("%-12s %10.3f %10.1f %12.3f %13.2fx\n", name, sec * 1e3, bytes / sec * 1e-9, tms, tms / (sec * 1e3));
        else
            printf("%-12s %10.3f %10.1f %12s %14s\n", name, sec * 1e3, bytes / sec * 1e-9, "-", "-");
        tg_tape_free(t);
        tg_param_free(x);
        tg_param_free(g);
        tg_param_free(b);
    }
    return 0;
}
