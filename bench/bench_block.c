/* One training step of a Pre-LN GPT-2 block, built from library calls the way
 * src/nn/gpt.c builds its blocks, timed phase by phase (forward, backward,
 * AdamW, the whole step) and set beside the same block in PyTorch
 * (bench/torch_block.py) when python3 can import torch.
 *
 * The input x requires a gradient, as a block inside a model does, so the
 * backward computes dx too; the loss mean(out * out) costs next to nothing.
 * Each phase is timed on its own inside every step; figures are the median and
 * the best of --runs steps after the warm-up steps.
 *
 * Usage: bench_block [--batch B] [--seq T] [--dim C] [--heads H] [--threads N]
 *                    [--runs N] [--warmup N] [--quick] [--no-torch] */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench_util.h"
#include "tapegrad_internal.h"

#ifndef TG_BENCH_DIR
#define TG_BENCH_DIR "bench"
#endif

/* The system python, where Debian's torch lives (python3 on PATH may be another). */
#ifndef PYTHON
#define PYTHON "/usr/bin/python3"
#endif
#define N_PARAMS 12

/* In gpt.c's named_parameters() order. */
enum { LN1_W, LN1_B, ATTN_W, ATTN_B, APROJ_W, APROJ_B, LN2_W, LN2_B, FC_W, FC_B, MPROJ_W, MPROJ_B };

typedef struct opts {
    int batch, seq, dim, heads, threads, runs, warmup;
    bool torch;
} opts;

typedef struct phase_times {
    double fwd, bwd, adamw, step;
} phase_times;

typedef struct torch_result {
    char version[32];
    int threads;
    phase_times best;
    double step_median, rss_mb;
} torch_result;

static const char usage[] = "usage: bench_block [--batch B] [--seq T] [--dim C] [--heads H] "
                            "[--threads N] [--runs N] [--warmup N] [--quick] [--no-torch]";

static int parse_int(const char *flag, const char *s, int min)
{
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || *end || end == s || v < min || v > 1 << 20) {
        fprintf(stderr, "bench_block: %s needs an integer from %d to %d, got '%s'\n", flag, min,
                1 << 20, s ? s : "");
        exit(2);
    }
    return (int)v;
}

static opts parse_args(int argc, char **argv)
{
    opts o = {.batch = 4, .seq = 64, .dim = 768, .heads = 12, .runs = 20, .warmup = 3, .torch = true};
    static const struct { const char *flag; size_t off; int min; } int_flags[] = {
        {"--batch", offsetof(opts, batch), 1},     {"--seq", offsetof(opts, seq), 1},
        {"--dim", offsetof(opts, dim), 1},         {"--heads", offsetof(opts, heads), 1},
        {"--threads", offsetof(opts, threads), 1}, {"--runs", offsetof(opts, runs), 1},
        {"--warmup", offsetof(opts, warmup), 0},
    };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            o.runs = 3;
            o.warmup = 1;
            continue;
        }
        if (!strcmp(argv[i], "--no-torch")) {
            o.torch = false;
            continue;
        }
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("%s\n", usage);
            exit(0);
        }
        size_t f = 0, nf = sizeof int_flags / sizeof *int_flags;
        while (f < nf && strcmp(argv[i], int_flags[f].flag))
            f++;
        if (f == nf) {
            fprintf(stderr, "bench_block: unknown flag '%s'; %s\n", argv[i], usage);
            exit(2);
        }
        *(int *)((char *)&o + int_flags[f].off) =
            parse_int(argv[i], i + 1 < argc ? argv[i + 1] : NULL, int_flags[f].min);
        i++;
    }
    if (o.dim % o.heads) {
        fprintf(stderr, "bench_block: --heads %d does not divide --dim %d\n", o.heads, o.dim);
        exit(2);
    }
    return o;
}

static tg_tensor *block_loss(tg_tape *t, tg_tensor *const *p, tg_tensor *x, int heads)
{
    const float eps = 1e-5f;
    tg_tensor *a = tg_layernorm(t, x, p[LN1_W], p[LN1_B], eps);
    a = tg_attention(t, tg_linear(t, a, p[ATTN_W], p[ATTN_B]), heads);
    x = tg_residual(t, x, tg_linear(t, a, p[APROJ_W], p[APROJ_B]));
    tg_tensor *h = tg_layernorm(t, x, p[LN2_W], p[LN2_B], eps);
    h = tg_gelu(t, tg_linear(t, h, p[FC_W], p[FC_B]));
    x = tg_residual(t, x, tg_linear(t, h, p[MPROJ_W], p[MPROJ_B]));
    return tg_mean(t, tg_mul(t, x, x));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Multiply-adds times two of the block's products, forward only: the four
 * linears, and the causal halves of Q K^T and P V (which tg_attention skips
 * above the diagonal). The backward does each product twice more. */
static double forward_flop(const opts *o)
{
    double m = (double)o->batch * o->seq, c = o->dim;
    double linears = 2.0 * m * c * (3 * c + c + 4 * c + 4 * c);
    double attention = 2.0 * 2.0 * o->batch * c * (o->seq * (o->seq + 1.0) / 2.0);
    return linears + attention;
}

typedef struct kernel_job {
    tg_node *node;
    bool backward;
} kernel_job;

static void run_kernel(void *p)
{
    kernel_job *j = p;
    const tg_op_def *def = &tg_op_table[j->node->op];
    (j->backward ? def->backward : def->forward)(j->node);
}

/* Each recorded op's kernels on their own, with the tape of a finished step
 * (backward kernels only accumulate, so running them again is harmless).
 * Shows where a step's time goes. */
static void profile_ops(tg_tape *t, phase_times best)
{
    printf("\nper op, kernels run on their own, best of 3 (GFLOP/s: a product's forward + backward):\n");
    printf("%-3s %-10s %-16s %9s %9s %9s\n", "#", "op", "output", "fwd ms", "bwd ms", "GFLOP/s");
    double sum_f = 0, sum_b = 0;
    tg_node *n;
    for (int i = 0; (n = tg_tape_node(t, i)); i++) {
        kernel_job j = {n, false};
        double f = bench_best(run_kernel, &j, 0.0);
        j.backward = true;
        double b = n->out->requires_grad ? bench_best(run_kernel, &j, 0.0) : 0.0;
        sum_f += f;
        sum_b += b;
        char shape[48], rate[16] = "";
        if (n->op == TG_OP_MATMUL) {
            double flop = 2.0 * n->i[2] * n->i[3] * tg_cols(n->out);
            snprintf(rate, sizeof rate, "%.1f", 3.0 * flop / (f + b) * 1e-9);
        }
        printf("%-3d %-10s %-16s %9.3f %9.3f %9s\n", i, tg_op_table[n->op].name,
               tg_shape_str(n->out, shape, sizeof shape), f * 1e3, b * 1e3, rate);
    }
    printf("%-3s %-10s %-16s %9.3f %9.3f   (whole phases, best: fwd %.3f, bwd %.3f)\n", "", "sum", "",
           sum_f * 1e3, sum_b * 1e3, best.fwd * 1e3, best.bwd * 1e3);
}

/* One run of torch_block.py; false when it fails or prints no result line. */
static bool run_torch(const opts *o, int threads, torch_result *r)
{
    char cmd[1024], line[512];
    snprintf(cmd, sizeof cmd,
             "%s'%s' '%s/torch_block.py' --batch %d --seq %d --dim %d --heads %d --runs %d "
             "--warmup %d --threads %d",
             threads ? "OMP_WAIT_POLICY=passive " : "", PYTHON, TG_BENCH_DIR, o->batch, o->seq,
             o->dim, o->heads, o->runs, o->warmup, threads);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p)
        return false;
    bool found = false;
    while (fgets(line, sizeof line, p))
        found |= sscanf(line,
                        "torch version %31s threads %d fwd_ms %lf bwd_ms %lf adamw_ms %lf step_ms %lf "
                        "step_median_ms %lf rss_mb %lf",
                        r->version, &r->threads, &r->best.fwd, &r->best.bwd, &r->best.adamw,
                        &r->best.step, &r->step_median, &r->rss_mb) == 8;
    int status = pclose(p);
    return found && status == 0;
}

static void compare_torch(const opts *o, int threads, double tg_step_ms)
{
    if (system("'" PYTHON "' -c 'import torch' >/dev/null 2>&1") != 0) {
        printf("\nPyTorch: not available (" PYTHON " cannot import torch); tapegrad figures only\n");
        return;
    }
    const char *label[2] = {"default threads", "threads as tapegrad, OMP passive"};
    torch_result r[2];
    bool ok[2];
    for (int s = 0; s < 2; s++)
        ok[s] = run_torch(o, s ? threads : 0, &r[s]);
    printf("\nPyTorch %s, same block (bench/torch_block.py), best ms:\n",
           ok[0] ? r[0].version : ok[1] ? r[1].version : "");
    printf("%-34s %7s %8s %8s %8s %8s %11s %8s\n", "setting", "threads", "fwd", "bwd", "adamw",
           "step", "step median", "RSS MB");
    double fastest = 0;
    for (int s = 0; s < 2; s++) {
        if (!ok[s]) {
            printf("%-34s torch_block.py failed\n", label[s]);
            continue;
        }
        printf("%-34s %7d %8.2f %8.2f %8.2f %8.2f %11.2f %8.0f\n", label[s], r[s].threads,
               r[s].best.fwd, r[s].best.bwd, r[s].best.adamw, r[s].best.step, r[s].step_median,
               r[s].rss_mb);
        fastest = fastest == 0 || r[s].best.step < fastest ? r[s].best.step : fastest;
    }
    if (fastest > 0)
        printf("step, best PyTorch / tapegrad (best of runs): %.2f  (above 1: tapegrad is faster)\n",
               fastest / tg_step_ms);
}

int main(int argc, char **argv)
{
    opts o = parse_args(argc, argv);
    int threads = tg_set_threads(o.threads);
    const int c = o.dim;
    const int shapes[N_PARAMS][2] = {{c, 0}, {c, 0}, {3 * c, c}, {3 * c, 0}, {c, c}, {c, 0},
                                     {c, 0}, {c, 0}, {4 * c, c}, {4 * c, 0}, {c, 4 * c}, {c, 0}};
    tg_tensor *params[N_PARAMS];
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    size_t n_weights = 0;
    for (int i = 0; i < N_PARAMS; i++) {
        bool matrix = shapes[i][1] > 0;
        if (!(params[i] = tg_param_new(matrix ? 2 : 1, shapes[i], "block"))) {
            fprintf(stderr, "bench_block: out of memory\n");
            return 1;
        }
        n_weights += params[i]->size;
        /* LayerNorm gamma 1; every bias and beta stays 0. */
        if (matrix)
            tg_fill_normal(params[i], &rng, 0.0f, 0.02f);
        else if (i == LN1_W || i == LN2_W)
            tg_fill(params[i], 1.0f);
    }
    const int xshape[3] = {o.batch, o.seq, c};
    tg_tensor *xsrc = tg_param_new(3, xshape, "x");
    tg_adamw *opt = tg_adamw_new(params, N_PARAMS, 0.9f, 0.95f, 1e-8f, 0.1f);
    tg_tape *tape = tg_tape_new(0);
    if (!xsrc || !opt || !tape) {
        fprintf(stderr, "bench_block: out of memory\n");
        return 1;
    }
    tg_fill_normal(xsrc, &rng, 0.0f, 1.0f);

    int total = o.warmup + o.runs;
    double *samples = malloc(4 * (size_t)o.runs * sizeof *samples);
    if (!samples) {
        fprintf(stderr, "bench_block: out of memory\n");
        return 1;
    }
    double *fwd = samples, *bwd = fwd + o.runs, *adam = bwd + o.runs, *step = adam + o.runs;
    size_t arena_first = 0;
    for (int it = 0; it < total; it++) {
        double t0 = bench_now();
        tg_tape_reset(tape);
        tg_tensor *x = tg_tape_tensor(tape, 3, xshape);
        float *dx = x ? tg_arena_alloc(tape, x->size * sizeof(float)) : NULL;
        if (x && dx) {
            memcpy(x->data, xsrc->data, x->size * sizeof(float));
            x->grad = dx;
            x->requires_grad = true;
        }
        tg_tensor *loss = block_loss(tape, params, x, o.heads);
        double t1 = bench_now();
        tg_zero_grad(params, N_PARAMS);
        if (dx)
            memset(dx, 0, x->size * sizeof(float));
        if (tg_backward(tape, loss) != TG_OK) {
            fprintf(stderr, "bench_block: %s\n", tg_tape_error(tape));
            return 1;
        }
        double t2 = bench_now();
        tg_adamw_step(opt, 1e-4f);
        double t3 = bench_now();
        if (it == 0)
            arena_first = tg_tape_arena_bytes(tape);
        if (it >= o.warmup) {
            int k = it - o.warmup;
            fwd[k] = t1 - t0;
            bwd[k] = t2 - t1;
            adam[k] = t3 - t2;
            step[k] = t3 - t0;
        }
    }
    size_t arena_last = tg_tape_arena_bytes(tape);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);

    phase_times med = {median(fwd, o.runs), median(bwd, o.runs), median(adam, o.runs),
                       median(step, o.runs)};
    /* median() sorted the samples: the first is the best. */
    phase_times best = {fwd[0], bwd[0], adam[0], step[0]};
    double flop = 3.0 * forward_flop(&o);
    printf("GPT-2 block, Pre-LN: B=%d T=%d C=%d heads=%d, %.2fM parameters, %d threads, "
           "%d steps after %d warm-up\n", o.batch, o.seq, c, o.heads, (double)n_weights * 1e-6,
           threads, o.runs, o.warmup);
    printf("%-10s %10s %10s\n", "tapegrad", "median ms", "best ms");
    const char *names[4] = {"forward", "backward", "adamw", "step"};
    const double *m = &med.fwd, *b = &best.fwd;
    for (int i = 0; i < 4; i++)
        printf("%-10s %10.2f %10.2f\n", names[i], m[i] * 1e3, b[i] * 1e3);
    printf("forward+backward: %.2f GFLOP in products, %.1f GFLOP/s (median), %.1f GFLOP/s (best)\n",
           flop * 1e-9, flop / (med.fwd + med.bwd) * 1e-9, flop / (best.fwd + best.bwd) * 1e-9);
    printf("peak RSS %.1f MB; tape %d ops; arena %.1f MB after step 1, %.1f MB after step %d (%s)\n",
           (double)ru.ru_maxrss / 1024.0, tg_tape_length(tape), (double)arena_first / (1 << 20),
           (double)arena_last / (1 << 20), total, arena_last == arena_first ? "no growth" : "GREW");
    printf("tapegrad fwd_ms %.3f bwd_ms %.3f adamw_ms %.3f step_ms %.3f step_median_ms %.3f\n",
           best.fwd * 1e3, best.bwd * 1e3, best.adamw * 1e3, best.step * 1e3, med.step * 1e3);

    profile_ops(tape, best);
    if (o.torch)
        compare_torch(&o, threads, best.step * 1e3);

    free(samples);
    tg_tape_free(tape);
    tg_adamw_free(opt);
    tg_param_free(xsrc);
    for (int i = 0; i < N_PARAMS; i++)
        tg_param_free(params[i]);
    return arena_last == arena_first ? 0 : 1;
}
