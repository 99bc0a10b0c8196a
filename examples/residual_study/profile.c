/* profile: at initialisation, the gradient norm of each block's weight
 * matrices (c_attn, attn.c_proj, c_fc, mlp.c_proj together) and of the
 * residual stream leaving each block, averaged over seeds x batches, for
 * each variant at one depth; the CSV adds how each residual add splits its
 * gradient (dz entering, skip and branch leaving), read from tg_grad_report. */
#include "study.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS (STUDY_MAX_LAYERS + 1)

/* Per layer sums over the runs. Index 0 is the embedding ("emb"), l + 1
 * block l. split[k] is attention (k = 0) or MLP (1): dz, skip, branch. */
typedef struct layer_sums {
    double weights, stream, split[2][3];
} layer_sums;

/* Adds one backward's figures from its report into sums. */
static void accumulate(const report *r, variant v, int layers, layer_sums *sums)
{
    double w[MAX_LAYERS] = {0}, x[MAX_LAYERS] = {0};
    report_layers(r, v, layers, w, x);
    for (int l = 0; l <= layers; l++)
        sums[l].weights += w[l], sums[l].stream += x[l];
    for (int i = 0; i < r->n; i++) {
        const tg_grad_stat *s = &r->rows[i];
        const char *rest;
        int l;
        if (s->kind == TG_GRAD_RESIDUAL && (l = name_layer(s->name, "h.", &rest)) >= 0) {
            double *sp = sums[l + 1].split[strcmp(rest, "resid_attn") != 0];
            sp[0] += s->norm, sp[1] += s->skip_norm, sp[2] += s->branch_norm;
        }
    }
}

/* The mean figures of one variant into sums (divided through); false on
 * a failure, already reported. */
static bool profile_variant(const study_opts *o, variant v, tg_tape *t, layer_sums *sums)
{
    report r = {0};
    batch bt;
    if (!batch_new(&bt, o))
        return false;
    bool ok = true;
    memset(sums, 0, MAX_LAYERS * sizeof *sums);
    for (int seed = 0; seed < o->seeds && ok; seed++) {
        tg_gpt *m = study_model(o, v, o->depth, 1000 + (uint64_t)seed);
        tg_rng rng;
        tg_rng_seed(&rng, 77 + (uint64_t)seed);
        ok = m != NULL;
        for (int b = 0; b < o->batches && ok; b++) {
            batch_fill(&bt, &rng);
            ok = run_batch(t, m, &bt, true, NULL) && report_take(&r, t);
            if (ok)
                accumulate(&r, v, o->depth, sums);
        }
        tg_gpt_free(m);
    }
    double runs = (double)o->seeds * o->batches;
    for (int l = 0; l <= o->depth; l++) {
        sums[l].weights /= runs;
        sums[l].stream /= runs;
        for (int k = 0; k < 6; k++)
            sums[l].split[k / 3][k % 3] /= runs;
    }
    report_free(&r);
    batch_free(&bt);
    return ok;
}

static void print_table(const study_opts *o, layer_sums sums[N_VARIANTS][MAX_LAYERS])
{
    printf("gradient norms at init, depth %d, width %d, %s, mean of %d seeds x %d batches\n", o->depth,
           o->dim, setup_name(o), o->seeds, o->batches);
    printf("%5s", "layer");
    for (int v = 0; v < N_VARIANTS; v++)
        if (o->variants[v])
            printf("  %9s:W %9s:x", variant_keys[v], variant_keys[v]);
    printf("\n");
    for (int l = 0; l <= o->depth; l++) {
        if (l)
            printf("%5d", l);
        else
            printf("%5s", "emb");
        for (int v = 0; v < N_VARIANTS; v++)
            if (o->variants[v])
                printf("  %11.4e %11.4e", l ? sums[v][l].weights : NAN, sums[v][l].stream);
        printf("\n");
    }
    printf("(W: weight matrices of block l; x: the stream leaving block l, the embedding for 'emb')\n");
}

static bool write_csv(const study_opts *o, layer_sums sums[N_VARIANTS][MAX_LAYERS])
{
    out_file of;
    if (!out_open(&of, o, "profile.csv"))
        return false;
    fprintf(of.f, "variant,layer,weight_grad_norm,stream_grad_norm,attn_dz,attn_skip,attn_branch,"
                  "mlp_dz,mlp_skip,mlp_branch\n");
    for (int v = 0; v < N_VARIANTS; v++)
        for (int l = 0; o->variants[v] && l <= o->depth; l++) {
            const layer_sums *s = &sums[v][l];
            fprintf(of.f, "%s,%d,%.6e,%.6e", variant_keys[v], l, l ? s->weights : NAN, s->stream);
            for (int k = 0; k < 6; k++)
                fprintf(of.f, ",%.6e", l ? s->split[k / 3][k % 3] : NAN);
            fprintf(of.f, "\n");
        }
    if (!out_close(&of))
        return false;
    printf("wrote %s\n", of.path);
    return true;
}

/* One plot, one line per variant: the weights (from layer 1) or the stream
 * (from the embedding, layer 0). */
static bool plot(const study_opts *o, layer_sums sums[N_VARIANTS][MAX_LAYERS], bool weights)
{
    static double x[MAX_LAYERS], y[N_VARIANTS][MAX_LAYERS];
    tg_svg_series se[N_VARIANTS];
    int n = 0, first = weights ? 1 : 0;
    for (int l = first; l <= o->depth; l++)
        x[l - first] = l;
    for (int v = 0; v < N_VARIANTS; v++) {
        if (!o->variants[v])
            continue;
        for (int l = first; l <= o->depth; l++)
            y[v][l - first] = weights ? sums[v][l].weights : sums[v][l].stream;
        se[n++] = (tg_svg_series){variant_names[v], x, y[v], o->depth + 1 - first, false, v};
    }
    char title[160];
    snprintf(title, sizeof title, "%s gradient norm at init by layer (depth %d, width %d, %s)",
             weights ? "Weight" : "Residual-stream", o->depth, o->dim, setup_name(o));
    tg_svg_plot p = {title, weights ? "layer" : "layer (0 = embedding)",
                  weights ? "||dL/dW|| of the block's weight matrices" : "||dL/dx|| of the stream leaving the layer",
                  false, true, se, n};
    return write_svg(o, weights ? "profile_weights.svg" : "profile_stream.svg", &p);
}

int cmd_profile(const study_opts *o)
{
    static layer_sums sums[N_VARIANTS][MAX_LAYERS];
    tg_tape *t = tg_tape_new(0);
    bool ok = t != NULL;
    for (int v = 0; v < N_VARIANTS && ok; v++)
        if (o->variants[v])
            ok = profile_variant(o, v, t, sums[v]);
    tg_tape_free(t);
    if (!ok)
        return 1;
    print_table(o, sums);
    if (o->variants[V_REZERO])
        printf("ReZero: every gate is 0 at init, so its branch weights get exactly 0 (not drawn on the log axis)\n");
    return write_csv(o, sums) && plot(o, sums, true) && plot(o, sums, false) ? 0 : 1;
}
