/* perturb: how far the model's output F (the final LayerNorm's output,
 * "ln_f") moves, as depth grows, when
 *   - every block weight matrix W gets W + eps * rms(W) * N(0, 1) (Liu et al.
 *     2020: Var[F(W*) - F(W)] grows as O(N) for Post-LN, O(log N) for Pre-LN);
 *   - the model takes one Adam step at --lr from the init (Wang et al. 2022,
 *     DeepNet: the update of F stays bounded, about constant in depth, with
 *     DeepNorm, while Post-LN's grows), once with every parameter and once
 *     with only the block weight matrices stepping: DeepNet's bound covers
 *     the sublayers' weights, which beta scales, and not the biases, the
 *     LayerNorm gains or the embeddings, which Adam moves by lr all the same;
 *     and once as one plain SGD step of those matrices, an update in
 *     proportion to the gradient, the kind DeepNet's bound is derived for.
 * Each figure is the mean squared change per output element, measured on a
 * held-out batch, averaged over seeds x batches. */
#include "study.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { RANDOM, UPDATE, UPDATE_W, SGD_W, N_MEASURES };
static const char *const measure_keys[N_MEASURES] = {"random", "update", "update_w", "sgd_w"};

static bool is_block_matrix(const tg_tensor *p) { return p->ndim == 2 && strstr(p->name, "transformer.h.") != NULL; }

/* F on the evaluation batch, copied into f (ev->b * ev->t * d floats). */
static bool output(tg_tape *t, tg_gpt *m, const batch *ev, float *f)
{
    if (!run_batch(t, m, ev, false, NULL))
        return false;
    const tg_tensor *y = tg_tape_find(t, "ln_f");
    memcpy(f, y->data, y->size * sizeof(float));
    return true;
}

static double mean_sq_diff(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s / (double)n;
}

static void perturb_weights(tg_gpt *m, tg_rng *r, float eps)
{
    for (int i = 0; i < m->n_params; i++) {
        tg_tensor *p = m->params[i];
        if (!is_block_matrix(p))
            continue;
        double ss = 0;
        for (size_t j = 0; j < p->size; j++)
            ss += (double)p->data[j] * p->data[j];
        float scale = eps * (float)sqrt(ss / (double)p->size);
        for (size_t j = 0; j < p->size; j++)
            p->data[j] += scale * tg_rng_normal(r);
    }
}

/* Every parameter's values into buf, or back from it. */
static void copy_params(tg_gpt *m, float *buf, bool restore)
{
    for (int i = 0; i < m->n_params; i++) {
        tg_tensor *p = m->params[i];
        memcpy(restore ? p->data : buf, restore ? buf : p->data, p->size * sizeof(float));
        buf += p->size;
    }
}

/* The four measures for one model and one pair of batches, each from the
 * init (restored in between); the model is left stepped, so callers make a
 * fresh one for every measurement. */
static bool measure_model(const study_opts *o, tg_gpt *m, tg_tape *t, const batch *tr, const batch *ev,
                          tg_rng *r, double out[N_MEASURES])
{
    size_t n = (size_t)ev->b * ev->t * o->dim, total = 0;
    for (int i = 0; i < m->n_params; i++)
        total += m->params[i]->size;
    float *f0 = malloc(n * sizeof *f0), *f1 = malloc(n * sizeof *f1), *saved = malloc(total * sizeof *saved);
    tg_tensor *mats[4 * 64];
    int n_mats = 0;
    for (int i = 0; i < m->n_params && n_mats < 4 * 64; i++)
        if (is_block_matrix(m->params[i]))
            mats[n_mats++] = m->params[i];
    tg_adamw *opt = tg_adamw_new(m->params, m->n_params, 0.9f, 0.999f, 1e-8f, 0.0f);
    tg_adamw *opt_w = tg_adamw_new(mats, n_mats, 0.9f, 0.999f, 1e-8f, 0.0f);
    tg_sgd *sgd = tg_sgd_new(mats, n_mats, 0.0f, 0.0f);
    bool ok = f0 && f1 && saved && opt && opt_w && sgd && output(t, m, ev, f0);
    if (ok) {
        copy_params(m, saved, false);
        perturb_weights(m, r, o->eps);
        ok = output(t, m, ev, f1);
        out[RANDOM] += mean_sq_diff(f0, f1, n);
        copy_params(m, saved, true);
    }
    if (ok && (ok = run_batch(t, m, tr, true, NULL))) {
        tg_adamw_step(opt, o->lr);
        ok = output(t, m, ev, f1);
        out[UPDATE] += mean_sq_diff(f0, f1, n);
    }
    if (ok) { /* the same gradients, applied to the weight matrices alone */
        copy_params(m, saved, true);
        tg_adamw_step(opt_w, o->lr);
        ok = output(t, m, ev, f1);
        out[UPDATE_W] += mean_sq_diff(f0, f1, n);
    }
    if (ok) { /* and as plain gradient descent, a step proportional to the gradient */
        copy_params(m, saved, true);
        tg_sgd_step(sgd, o->sgd_lr);
        ok = output(t, m, ev, f1);
        out[SGD_W] += mean_sq_diff(f0, f1, n);
    }
    if (!f0 || !f1 || !saved || !opt || !opt_w || !sgd)
        fprintf(stderr, "residual_study: out of memory\n");
    free(f0);
    free(f1);
    free(saved);
    tg_adamw_free(opt);
    tg_adamw_free(opt_w);
    tg_sgd_free(sgd);
    return ok;
}

static bool measure(const study_opts *o, variant v, int layers, tg_tape *t, batch *tr, batch *ev,
                    double out[N_MEASURES])
{
    for (int k = 0; k < N_MEASURES; k++)
        out[k] = 0;
    for (int seed = 0; seed < o->seeds; seed++) {
        tg_rng rng;
        tg_rng_seed(&rng, 91 + (uint64_t)seed);
        for (int b = 0; b < o->batches; b++) {
            tg_gpt *m = study_model(o, v, layers, 4000 + (uint64_t)seed);
            batch_fill(tr, &rng);
            batch_fill(ev, &rng);
            bool ok = m && measure_model(o, m, t, tr, ev, &rng, out);
            tg_gpt_free(m);
            if (!ok)
                return false;
        }
    }
    for (int k = 0; k < N_MEASURES; k++)
        out[k] /= (double)o->seeds * o->batches;
    return true;
}

typedef struct results {
    int n;
    double depth[STUDY_MAX_DEPTHS], ms[N_MEASURES][N_VARIANTS][STUDY_MAX_DEPTHS];
} results;

static void print_table(const study_opts *o, const results *r)
{
    printf("mean squared change of the output ln_f per element (width %d, %s, %d seeds x %d batches)\n",
           o->dim, setup_name(o), o->seeds, o->batches);
    printf("random: block weights + %g rms(W) N(0,1); update: one Adam step at lr %g of every parameter;\n"
           "update_w: of the block weight matrices only; sgd_w: one SGD step at lr %g of those matrices\n",
           (double)o->eps, (double)o->lr, (double)o->sgd_lr);
    for (int k = 0; k < N_MEASURES; k++) {
        printf("%-8s %5s", measure_keys[k], "depth");
        for (int v = 0; v < N_VARIANTS; v++)
            if (o->variants[v])
                printf(" %11s", variant_keys[v]);
        printf("\n");
        for (int i = 0; i < r->n; i++) {
            printf("%-8s %5.0f", "", r->depth[i]);
            for (int v = 0; v < N_VARIANTS; v++)
                if (o->variants[v])
                    printf(" %11.4e", r->ms[k][v][i]);
            printf("\n");
        }
    }
}

static bool plot(const study_opts *o, const results *r, int which)
{
    tg_svg_series se[N_VARIANTS];
    int n = 0;
    for (int v = 0; v < N_VARIANTS; v++)
        if (o->variants[v])
            se[n++] = (tg_svg_series){variant_names[v], r->depth, r->ms[which][v], r->n, false, v};
    char title[160], file[64];
    if (which == RANDOM)
        snprintf(title, sizeof title, "Output change for a random %g rms perturbation of every block weight", (double)o->eps);
    else if (which == SGD_W)
        snprintf(title, sizeof title, "Output change after one SGD step at lr %g of the block weight matrices",
                 (double)o->sgd_lr);
    else
        snprintf(title, sizeof title, "Output change after one Adam step at lr %g from init, %s", (double)o->lr,
                 which == UPDATE ? "all parameters" : "block weight matrices only");
    snprintf(file, sizeof file, "perturb_%s.svg", measure_keys[which]);
    tg_svg_plot p = {title, "depth (layers)", "mean squared change of ln_f output", false, which != RANDOM, se, n};
    return write_svg(o, file, &p);
}

static bool write_outputs(const study_opts *o, const results *r)
{
    out_file of;
    if (!out_open(&of, o, "perturb.csv"))
        return false;
    fprintf(of.f, "variant,depth");
    for (int k = 0; k < N_MEASURES; k++)
        fprintf(of.f, ",%s_ms_change", measure_keys[k]);
    fprintf(of.f, "\n");
    for (int v = 0; v < N_VARIANTS; v++)
        for (int i = 0; o->variants[v] && i < r->n; i++) {
            fprintf(of.f, "%s,%.0f", variant_keys[v], r->depth[i]);
            for (int k = 0; k < N_MEASURES; k++)
                fprintf(of.f, ",%.6e", r->ms[k][v][i]);
            fprintf(of.f, "\n");
        }
    if (!out_close(&of))
        return false;
    printf("wrote %s\n", of.path);
    bool ok = true;
    for (int k = 0; k < N_MEASURES && ok; k++)
        ok = plot(o, r, k);
    return ok;
}

int cmd_perturb(const study_opts *o)
{
    static results r;
    int depths[STUDY_MAX_DEPTHS];
    r.n = depth_list(o->depth, depths);
    for (int i = 0; i < r.n; i++)
        r.depth[i] = depths[i];
    tg_tape *t = tg_tape_new(0);
    batch tr = {0}, ev = {0};
    bool ok = t && batch_new(&tr, o) && batch_new(&ev, o);
    for (int v = 0; v < N_VARIANTS && ok; v++)
        for (int i = 0; i < r.n && ok && o->variants[v]; i++) {
            double out[N_MEASURES];
            ok = measure(o, v, depths[i], t, &tr, &ev, out);
            for (int k = 0; k < N_MEASURES; k++)
                r.ms[k][v][i] = out[k];
        }
    batch_free(&tr);
    batch_free(&ev);
    tg_tape_free(t);
    if (!ok)
        return 1;
    print_table(o, &r);
    return write_outputs(o, &r) ? 0 : 1;
}
