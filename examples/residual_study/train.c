/* train: does the gradient profile at initialisation survive training?
 * Xiong et al. 2020 describe it at init only: Pre-LN's gradients level or
 * falling with depth, Post-LN's largest near the output. Each variant is
 * trained on the sort task (Adam, beta2 0.999, a linear warm-up over
 * --warmup steps then the constant --lr, no weight decay or clipping, as in
 * warmup), and at step 0, every --log-every steps and at the end the model is
 * measured on --batches held-out batches: the gradient norm of each block's
 * weight matrices and of the stream leaving each block (from tg_grad_report),
 * and the held-out loss. Figures are means over seeds x batches; a seed whose
 * training loss stops being finite makes its later figures NaN. */
#include "study.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LOGS 1000
#define MAX_PLOTTED 8 /* the palette's colours */

/* One variant's figures: for each logged step i, loss[i] and the per-layer
 * rows weights and stream at i * (depth + 1) (index 0: the embedding, which
 * has a stream but no block weights). */
typedef struct curve {
    variant v;
    double *loss, *weights, *stream;
} curve;

static int n_logs(const study_opts *o) { return (o->steps + o->log_every - 1) / o->log_every + 1; }
static int log_step(const study_opts *o, int i) { return i * o->log_every < o->steps ? i * o->log_every : o->steps; }

/* Adds one model's figures on the held-out batches into log row i. */
static bool measure(const study_opts *o, curve *c, int i, tg_gpt *m, tg_tape *t, const batch *ev, report *rep)
{
    size_t row = (size_t)i * (o->depth + 1);
    for (int b = 0; b < o->batches; b++) {
        float loss;
        if (!run_batch(t, m, &ev[b], true, &loss) || !report_take(rep, t))
            return false;
        c->loss[i] += loss;
        report_layers(rep, c->v, o->depth, c->weights + row, c->stream + row);
    }
    return true;
}

static void mark_diverged(const study_opts *o, curve *c, int from)
{
    for (int i = from; i < n_logs(o); i++) {
        c->loss[i] = NAN;
        for (int l = 0; l <= o->depth; l++)
            c->weights[(size_t)i * (o->depth + 1) + l] = c->stream[(size_t)i * (o->depth + 1) + l] = NAN;
    }
}

/* One seed: trains a fresh model and logs it; false only on a failure
 * (reported). The held-out batches are drawn per seed, then kept. */
static bool train_seed(const study_opts *o, curve *c, int seed, tg_tape *t, batch *bt, batch *ev, report *rep)
{
    tg_gpt *m = study_model(o, c->v, o->depth, 6000 + (uint64_t)seed);
    tg_adamw *opt = m ? tg_adamw_new(m->params, m->n_params, 0.9f, 0.999f, 1e-8f, 0.0f) : NULL;
    if (m && !opt)
        fprintf(stderr, "residual_study: out of memory for the optimizer\n");
    tg_rng rng, erng;
    tg_rng_seed(&rng, 71 + (uint64_t)seed);
    tg_rng_seed(&erng, 171 + (uint64_t)seed);
    for (int b = 0; b < o->batches; b++)
        batch_fill(&ev[b], &erng);
    bool ok = opt != NULL;
    for (int step = 0, next = 0; ok && step <= o->steps; step++) {
        if (step == log_step(o, next))
            ok = measure(o, c, next++, m, t, ev, rep);
        if (!ok || step == o->steps)
            break;
        batch_fill(bt, &rng);
        tg_tape_reset(t);
        tg_tensor *loss = tg_gpt_loss(t, m, bt->ids, bt->targets, bt->b, bt->t);
        if (loss && !isfinite(loss->data[0])) {
            mark_diverged(o, c, next);
            break;
        }
        tg_zero_grad(m->params, m->n_params);
        if (!loss || tg_backward(t, loss) != TG_OK) {
            fprintf(stderr, "residual_study: %s\n", tg_tape_error(t));
            ok = false;
        } else
            tg_adamw_step(opt, tg_lr_schedule(step, o->warmup, o->steps, o->lr, o->lr));
    }
    tg_adamw_free(opt);
    tg_gpt_free(m);
    return ok;
}

/* last / first block, of the weights or the stream, at log row i. */
static double top_over_bottom(const study_opts *o, const double *rows, int i)
{
    const double *r = rows + (size_t)i * (o->depth + 1);
    return r[o->depth] / r[1];
}

static void print_table(const study_opts *o, const curve *c)
{
    printf("%s, depth %d, width %d, %s, Adam lr %g (warm-up %d), %d seeds x %d held-out batches\n",
           variant_names[c->v], o->depth, o->dim, setup_name(o), (double)o->lr,
           o->warmup, o->seeds, o->batches);
    printf("%6s %8s %11s %11s %9s %11s %11s %9s\n", "step", "loss", "W first", "W last", "W last/1st", "x first",
           "x last", "x last/1st");
    for (int i = 0; i < n_logs(o); i++) {
        const double *w = c->weights + (size_t)i * (o->depth + 1), *x = c->stream + (size_t)i * (o->depth + 1);
        printf("%6d %8.4f %11.4e %11.4e %9.3f %11.4e %11.4e %9.3f\n", log_step(o, i), c->loss[i], w[1],
               w[o->depth], top_over_bottom(o, c->weights, i), x[1], x[o->depth], top_over_bottom(o, c->stream, i));
    }
}

static bool write_csv(const study_opts *o, const curve *c)
{
    char name[64];
    snprintf(name, sizeof name, "train_%s.csv", variant_keys[c->v]);
    out_file of;
    if (!out_open(&of, o, name))
        return false;
    fprintf(of.f, "variant,step,layer,heldout_loss,weight_grad_norm,stream_grad_norm\n");
    for (int i = 0; i < n_logs(o); i++)
        for (int l = 0; l <= o->depth; l++) {
            size_t k = (size_t)i * (o->depth + 1) + l;
            fprintf(of.f, "%s,%d,%d,%.6f,%.6e,%.6e\n", variant_keys[c->v], log_step(o, i), l, c->loss[i],
                    l ? c->weights[k] : NAN, c->stream[k]);
        }
    if (!out_close(&of))
        return false;
    printf("wrote %s\n", of.path);
    return true;
}

/* Gradient norm against layer, one line per logged step (at most
 * MAX_PLOTTED, spread evenly, the first and last always), init dashed. */
static bool plot_profile(const study_opts *o, const curve *c, bool weights)
{
    static double x[STUDY_MAX_LAYERS + 1];
    tg_svg_series se[MAX_PLOTTED];
    char labels[MAX_PLOTTED][32];
    int n = n_logs(o), shown = n < MAX_PLOTTED ? n : MAX_PLOTTED, first = weights ? 1 : 0;
    for (int l = 0; l <= o->depth; l++)
        x[l] = l;
    for (int k = 0; k < shown; k++) {
        int i = shown > 1 ? (int)((double)k * (n - 1) / (shown - 1) + 0.5) : 0;
        const double *rows = weights ? c->weights : c->stream;
        snprintf(labels[k], sizeof labels[k], "step %d", log_step(o, i));
        se[k] = (tg_svg_series){labels[k], x + first, rows + (size_t)i * (o->depth + 1) + first,
                                o->depth + 1 - first, i == 0, k};
    }
    char title[160], file[64];
    snprintf(title, sizeof title, "%s: %s gradient norm by layer during training (depth %d, mean of %d seeds)",
             variant_names[c->v], weights ? "weight" : "residual-stream", o->depth, o->seeds);
    snprintf(file, sizeof file, "train_%s_%s.svg", variant_keys[c->v], weights ? "weights" : "stream");
    tg_svg_plot p = {title, weights ? "layer" : "layer (0 = embedding)",
                     weights ? "||dL/dW|| of the block's weight matrices" : "||dL/dx|| of the stream leaving the layer",
                     false, true, se, shown};
    return write_svg(o, file, &p);
}

/* last / first block against step: weights solid, stream dashed. */
static bool plot_ratio(const study_opts *o, const curve *cs, int n_curves)
{
    int n = n_logs(o);
    double *buf = malloc((size_t)n * (1 + 2 * n_curves) * sizeof *buf);
    if (!buf) {
        fprintf(stderr, "residual_study: out of memory for a plot\n");
        return false;
    }
    tg_svg_series se[2 * N_VARIANTS];
    char labels[2 * N_VARIANTS][48];
    for (int i = 0; i < n; i++)
        buf[i] = log_step(o, i);
    for (int k = 0; k < 2 * n_curves; k++) {
        const curve *c = &cs[k / 2];
        double *y = buf + (size_t)n * (1 + k);
        for (int i = 0; i < n; i++)
            y[i] = top_over_bottom(o, k % 2 ? c->stream : c->weights, i);
        snprintf(labels[k], sizeof labels[k], "%s, %s", variant_names[c->v], k % 2 ? "stream" : "weights");
        se[k] = (tg_svg_series){labels[k], buf, y, n, k % 2 == 1, c->v};
    }
    char title[160];
    snprintf(title, sizeof title, "Gradient norm of the last block over the first during training (depth %d)",
             o->depth);
    tg_svg_plot p = {title, "step", "last block / first block", false, true, se, 2 * n_curves};
    bool ok = write_svg(o, "train_ratio.svg", &p);
    free(buf);
    return ok;
}

int cmd_train(const study_opts *o)
{
    if (n_logs(o) > MAX_LOGS) {
        fprintf(stderr, "residual_study: --steps %d / --log-every %d logs %d steps, at most %d (see --help)\n",
                o->steps, o->log_every, n_logs(o), MAX_LOGS);
        return 2;
    }
    curve cs[N_VARIANTS] = {0};
    int n = 0;
    size_t cells = (size_t)n_logs(o) * (o->depth + 1);
    bool ok = true;
    for (int v = 0; v < N_VARIANTS; v++)
        if (o->variants[v]) {
            cs[n] = (curve){v, calloc((size_t)n_logs(o), sizeof(double)), calloc(cells, sizeof(double)),
                            calloc(cells, sizeof(double))};
            ok = ok && cs[n].loss && cs[n].weights && cs[n].stream;
            n++;
        }
    tg_tape *t = tg_tape_new(0);
    batch bt = {0}, *ev = calloc((size_t)o->batches, sizeof *ev);
    report rep = {0};
    if (!(ok = ok && t && ev))
        fprintf(stderr, "residual_study: out of memory\n");
    ok = ok && batch_new(&bt, o);
    for (int b = 0; ok && b < o->batches; b++)
        ok = batch_new(&ev[b], o);
    for (int k = 0; k < n && ok; k++)
        for (int seed = 0; seed < o->seeds && ok; seed++)
            ok = train_seed(o, &cs[k], seed, t, &bt, ev, &rep);
    for (int k = 0; k < n && ok; k++) {
        double runs = (double)o->seeds * o->batches;
        for (size_t i = 0; i < cells; i++)
            cs[k].weights[i] /= runs, cs[k].stream[i] /= runs;
        for (int i = 0; i < n_logs(o); i++)
            cs[k].loss[i] /= runs;
        print_table(o, &cs[k]);
        ok = write_csv(o, &cs[k]) && plot_profile(o, &cs[k], true) && plot_profile(o, &cs[k], false);
    }
    ok = ok && plot_ratio(o, cs, n);
    for (int k = 0; k < n; k++)
        free(cs[k].loss), free(cs[k].weights), free(cs[k].stream);
    for (int b = 0; ev && b < o->batches; b++)
        batch_free(&ev[b]);
    free(ev);
    batch_free(&bt);
    report_free(&rep);
    tg_tape_free(t);
    return ok ? 0 : 1;
}
