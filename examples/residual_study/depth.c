/* depth: the gradient norm of the last block's mlp.c_proj weight (Xiong et
 * al.'s W^{2,L}) at initialisation, as the model deepens. Their Theorem 1:
 * O(d sqrt(ln d)) for Post-LN whatever the depth, O(d sqrt(ln d / L)) for
 * Pre-LN. The table gives the mean and spread over seeds x batches and the
 * least-squares slope of log(norm) against log(depth): 0 and -1/2 are the
 * theorem's exponents. */
#include "study.h"

#include <math.h>
#include <stdlib.h>

static double grad_norm(const tg_tensor *p)
{
    double ss = 0;
    for (size_t i = 0; i < p->size; i++)
        ss += (double)p->grad[i] * p->grad[i];
    return sqrt(ss);
}

/* Mean and standard deviation of the norm at one depth. */
static bool measure(const study_opts *o, variant v, int layers, tg_tape *t, batch *bt, double *mean, double *sd)
{
    double s = 0, s2 = 0;
    char name[64];
    snprintf(name, sizeof name, "transformer.h.%d.mlp.c_proj.weight", layers - 1);
    for (int seed = 0; seed < o->seeds; seed++) {
        tg_gpt *m = study_model(o, v, layers, 2000 + (uint64_t)seed);
        if (!m)
            return false;
        tg_rng rng;
        tg_rng_seed(&rng, 31 + (uint64_t)seed);
        for (int b = 0; b < o->batches; b++) {
            batch_fill(bt, &rng);
            if (!run_batch(t, m, bt, true, NULL)) {
                tg_gpt_free(m);
                return false;
            }
            double g = grad_norm(tg_gpt_param(m, name));
            s += g, s2 += g * g;
        }
        tg_gpt_free(m);
    }
    double n = (double)o->seeds * o->batches;
    *mean = s / n;
    *sd = sqrt(fmax(s2 / n - *mean * *mean, 0.0));
    return true;
}

static double loglog_slope(const double *x, const double *y, int n)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        if (!(y[i] > 0)) /* ReZero's exact zeros */
            return NAN;
        double lx = log(x[i]), ly = log(y[i]);
        sx += lx, sy += ly, sxx += lx * lx, sxy += lx * ly;
    }
    return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

typedef struct results {
    int n;
    double depth[STUDY_MAX_DEPTHS], mean[N_VARIANTS][STUDY_MAX_DEPTHS], sd[N_VARIANTS][STUDY_MAX_DEPTHS];
} results;

static void print_table(const study_opts *o, const results *r)
{
    printf("||dL/dW|| of the last block's mlp.c_proj weight at init (width %d, %s, %d seeds x %d batches)\n",
           o->dim, setup_name(o), o->seeds, o->batches);
    printf("%5s", "depth");
    for (int v = 0; v < N_VARIANTS; v++)
        if (o->variants[v])
            printf("  %10s mean (sd)  ", variant_keys[v]);
    printf("\n");
    for (int i = 0; i < r->n; i++) {
        printf("%5.0f", r->depth[i]);
        for (int v = 0; v < N_VARIANTS; v++)
            if (o->variants[v])
                printf("  %10.4e (%8.2e)", r->mean[v][i], r->sd[v][i]);
        printf("\n");
    }
    printf("%5s", "slope");
    for (int v = 0; v < N_VARIANTS; v++)
        if (o->variants[v])
            printf("  %10.3f %11s", loglog_slope(r->depth, r->mean[v], r->n), "");
    printf("\n(slope: of log norm against log depth; Theorem 1 predicts 0 for Post-LN, -0.5 for Pre-LN)\n");
}

static bool write_outputs(const study_opts *o, const results *r)
{
    out_file of;
    if (!out_open(&of, o, "depth.csv"))
        return false;
    fprintf(of.f, "variant,depth,w2_grad_norm_mean,w2_grad_norm_sd\n");
    for (int v = 0; v < N_VARIANTS; v++)
        for (int i = 0; o->variants[v] && i < r->n; i++)
            fprintf(of.f, "%s,%.0f,%.6e,%.6e\n", variant_keys[v], r->depth[i], r->mean[v][i], r->sd[v][i]);
    if (!out_close(&of))
        return false;
    printf("wrote %s\n", of.path);
    tg_svg_series se[N_VARIANTS + 1];
    int n = 0;
    static double ref[STUDY_MAX_DEPTHS];
    for (int v = 0; v < N_VARIANTS; v++)
        if (o->variants[v])
            se[n++] = (tg_svg_series){variant_names[v], r->depth, r->mean[v], r->n, false, v};
    if (o->variants[V_PRE]) { /* the theorem's slope, through Pre-LN's first point */
        for (int i = 0; i < r->n; i++)
            ref[i] = r->mean[V_PRE][0] * sqrt(r->depth[0] / r->depth[i]);
        se[n++] = (tg_svg_series){"c / sqrt(depth)", r->depth, ref, r->n, true, 7};
    }
    char title[160];
    snprintf(title, sizeof title, "Last layer's FFN output-weight gradient at init (width %d, %s)", o->dim,
             setup_name(o));
    tg_svg_plot p = {title, "depth (layers)", "||dL/dW2|| of the last block", true, true, se, n};
    return write_svg(o, "depth.svg", &p);
}

int cmd_depth(const study_opts *o)
{
    static results r;
    int depths[STUDY_MAX_DEPTHS];
    r.n = depth_list(o->depth, depths);
    for (int i = 0; i < r.n; i++)
        r.depth[i] = depths[i];
    tg_tape *t = tg_tape_new(0);
    batch bt = {0};
    bool ok = t && batch_new(&bt, o);
    for (int v = 0; v < N_VARIANTS && ok; v++)
        for (int i = 0; i < r.n && ok && o->variants[v]; i++)
            ok = measure(o, v, depths[i], t, &bt, &r.mean[v][i], &r.sd[v][i]);
    batch_free(&bt);
    tg_tape_free(t);
    if (!ok)
        return 1;
    print_table(o, &r);
    return write_outputs(o, &r) ? 0 : 1;
}
