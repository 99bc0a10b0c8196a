/* warmup: a short training run on the sort task at a high learning rate,
 * with a linear warm-up over --warmup steps and without, Post-LN against
 * Pre-LN (Xiong et al. 2020: Post-LN needs the warm-up, Pre-LN does not).
 * Adam (beta2 0.999), no weight decay, no gradient clipping, constant rate
 * after the warm-up; the loss curves are averaged over seeds, and each run
 * ends with the loss and the accuracy on 8 held-out batches. */
#include "study.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_BATCHES 8
#define SMOOTH 10

typedef struct run {
    variant v;
    int warmup;
    double *loss;            /* per step, mean over seeds; NaN once a seed diverged */
    double eval_loss, eval_acc;
} run;

/* Correct next-symbol predictions and counted targets on the tape's logits. */
static void count_correct(const tg_tape *t, const batch *bt, double *right, double *total)
{
    const tg_tensor *lg = tg_tape_find(t, "logits");
    int v = tg_cols(lg);
    for (int i = 0; i < bt->b * bt->t; i++) {
        if (bt->targets[i] < 0)
            continue;
        const float *row = lg->data + (size_t)i * v;
        int best = 0;
        for (int k = 1; k < v; k++)
            if (row[k] > row[best])
                best = k;
        *right += best == bt->targets[i];
        *total += 1;
    }
}

static bool evaluate(tg_tape *t, tg_gpt *m, batch *bt, uint64_t seed, run *r, int seeds)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    double loss = 0, right = 0, total = 0;
    for (int b = 0; b < EVAL_BATCHES; b++) {
        float l;
        batch_fill(bt, &rng);
        if (!run_batch(t, m, bt, false, &l))
            return false;
        loss += l;
        count_correct(t, bt, &right, &total);
    }
    r->eval_loss += loss / EVAL_BATCHES / seeds;
    r->eval_acc += right / total / seeds;
    return true;
}

/* One seed of one run: false only on a failure (reported); a loss that
 * stops being finite ends the curve with NaN, which the plot breaks on. */
static bool train(const study_opts *o, run *r, int seed, tg_tape *t, batch *bt)
{
    tg_gpt *m = study_model(o, r->v, o->depth, 5000 + (uint64_t)seed);
    tg_adamw *opt = m ? tg_adamw_new(m->params, m->n_params, 0.9f, 0.999f, 1e-8f, 0.0f) : NULL;
    bool ok = opt != NULL, finite = true;
    tg_rng rng;
    tg_rng_seed(&rng, 61 + (uint64_t)seed);
    for (int step = 0; ok && step < o->steps; step++) {
        batch_fill(bt, &rng);
        tg_tape_reset(t);
        tg_tensor *loss = tg_gpt_loss(t, m, bt->ids, bt->targets, bt->b, bt->t);
        if (!(ok = tg_tape_status(t) == TG_OK))
            fprintf(stderr, "residual_study: %s\n", tg_tape_error(t));
        finite = finite && ok && isfinite(loss->data[0]);
        r->loss[step] += finite ? loss->data[0] / o->seeds : NAN;
        if (!finite)
            continue;
        tg_zero_grad(m->params, m->n_params);
        if (!(ok = tg_backward(t, loss) == TG_OK))
            fprintf(stderr, "residual_study: %s\n", tg_tape_error(t));
        tg_adamw_step(opt, tg_lr_schedule(step, r->warmup, o->steps, o->lr, o->lr));
    }
    if (ok && finite)
        ok = evaluate(t, m, bt, 999 + (uint64_t)seed, r, o->seeds);
    else if (ok)
        r->eval_loss = r->eval_acc = NAN;
    if (!opt && m)
        fprintf(stderr, "residual_study: out of memory for the optimizer\n");
    tg_adamw_free(opt);
    tg_gpt_free(m);
    return ok;
}

static double window_mean(const double *x, int from, int to)
{
    double s = 0;
    for (int i = from; i < to; i++)
        s += x[i];
    return s / (to - from);
}

static void print_table(const study_opts *o, const run *runs, int n)
{
    printf("sort task, depth %d, width %d, %s, Adam lr %g, %d steps, mean of %d seeds\n", o->depth, o->dim,
           setup_name(o), (double)o->lr, o->steps, o->seeds);
    printf("%-9s %7s %12s %12s %12s %12s %10s %9s\n", "variant", "warmup", "loss 1-10", "loss @25%",
           "loss @50%", "loss last10", "eval loss", "eval acc");
    for (int i = 0; i < n; i++) {
        const run *r = &runs[i];
        int q = o->steps / 4, h = o->steps / 2, e = o->steps;
        printf("%-9s %7d %12.4f %12.4f %12.4f %12.4f %10.4f %9.3f\n", variant_keys[r->v], r->warmup,
               window_mean(r->loss, 0, e < 10 ? e : 10), window_mean(r->loss, q, q + 1),
               window_mean(r->loss, h, h + 1), window_mean(r->loss, e > 10 ? e - 10 : 0, e), r->eval_loss,
               r->eval_acc);
    }
    printf("(losses are training losses averaged over seeds; NaN: a seed diverged)\n");
}

static bool write_outputs(const study_opts *o, const run *runs, int n)
{
    out_file of;
    if (!out_open(&of, o, "warmup.csv"))
        return false;
    fprintf(of.f, "variant,warmup,step,loss\n");
    for (int i = 0; i < n; i++)
        for (int s = 0; s < o->steps; s++)
            fprintf(of.f, "%s,%d,%d,%.6f\n", variant_keys[runs[i].v], runs[i].warmup, s, runs[i].loss[s]);
    if (!out_close(&of))
        return false;
    printf("wrote %s\n", of.path);
    double *x = malloc((size_t)o->steps * (n + 1) * sizeof *x);
    if (!x)
        return false;
    tg_svg_series se[2 * N_VARIANTS];
    char labels[2 * N_VARIANTS][48];
    for (int s = 0; s < o->steps; s++) /* moving means of SMOOTH steps, at their last step */
        x[s] = s + 1;
    for (int i = 0; i < n; i++) {
        double *y = x + (size_t)o->steps * (i + 1);
        for (int s = 0; s < o->steps; s++)
            y[s] = window_mean(runs[i].loss, s + 1 > SMOOTH ? s + 1 - SMOOTH : 0, s + 1);
        snprintf(labels[i], sizeof labels[i], "%s, warm-up %d", variant_names[runs[i].v], runs[i].warmup);
        se[i] = (tg_svg_series){labels[i], x, y, o->steps, runs[i].warmup == 0, runs[i].v};
    }
    char title[160];
    snprintf(title, sizeof title, "Training loss, depth %d, Adam lr %g, with and without warm-up (mean of %d seeds)",
             o->depth, (double)o->lr, o->seeds);
    tg_svg_plot p = {title, "step", "training loss (moving mean of 10 steps)", false, false, se, n};
    bool ok = write_svg(o, "warmup.svg", &p);
    free(x);
    return ok;
}

int cmd_warmup(const study_opts *o)
{
    run runs[2 * N_VARIANTS];
    int n = 0;
    for (int v = 0; v < N_VARIANTS; v++)
        for (int w = 0; w < 2 && o->variants[v]; w++)
            runs[n++] = (run){v, w ? o->warmup : 0, calloc((size_t)o->steps, sizeof(double)), 0, 0};
    tg_tape *t = tg_tape_new(0);
    batch bt = {0};
    bool ok = t && batch_new(&bt, o);
    for (int i = 0; i < n; i++)
        ok = ok && runs[i].loss;
    for (int i = 0; i < n && ok; i++)
        for (int seed = 0; seed < o->seeds && ok; seed++)
            ok = train(o, &runs[i], seed, t, &bt);
    if (ok) {
        print_table(o, runs, n);
        ok = write_outputs(o, runs, n);
    }
    for (int i = 0; i < n; i++)
        free(runs[i].loss);
    batch_free(&bt);
    tg_tape_free(t);
    return ok ? 0 : 1;
}
