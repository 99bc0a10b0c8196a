/* stream: E||x_l||^2 / d of the residual stream entering layer l + 1
 * (l = 0 the embedding) at initialisation, against Xiong et al.'s Lemma 2
 * for Pre-LN, (1 + l/2) d <= E||x_l||^2 <= (1 + 3l/2) d. The lemma assumes
 * E||x_0||^2 = d, which the xavier init gives up to 1/d. The mean is over all
 * tokens; the first and last positions are shown apart because causal
 * attention at position 0 sees one token (its output keeps the value's full
 * norm) and at the last position averages many (the norm shrinks), which
 * pulls the two towards the lemma's two ends. */
#include "study.h"

#include <string.h>

#define MAX_LAYERS 65

enum { ALL, FIRST, LAST, N_KINDS };

/* Adds sum over tokens of ||x||^2 / d into acc[kind] for one tensor [B,T,d]. */
static void add_norms(const tg_tensor *x, double acc[N_KINDS], double count[N_KINDS])
{
    int b = x->shape[0], t = x->shape[1], d = x->shape[2];
    for (int i = 0; i < b; i++)
        for (int j = 0; j < t; j++) {
            const float *row = x->data + ((size_t)i * t + j) * d;
            double ss = 0;
            for (int k = 0; k < d; k++)
                ss += (double)row[k] * row[k];
            int kinds[3] = {ALL, j == 0 ? FIRST : -1, j == t - 1 ? LAST : -1};
            for (int k = 0; k < 3; k++)
                if (kinds[k] >= 0)
                    acc[kinds[k]] += ss / d, count[kinds[k]] += 1;
        }
}

static bool measure(const study_opts *o, variant v, tg_tape *t, batch *bt, double out[MAX_LAYERS][N_KINDS])
{
    static double count[MAX_LAYERS][N_KINDS];
    memset(count, 0, sizeof count);
    char name[64];
    for (int seed = 0; seed < o->seeds; seed++) {
        tg_gpt *m = study_model(o, v, o->depth, 3000 + (uint64_t)seed);
        tg_rng rng;
        tg_rng_seed(&rng, 51 + (uint64_t)seed);
        for (int b = 0; m && b < o->batches; b++) {
            batch_fill(bt, &rng);
            if (!run_batch(t, m, bt, false, NULL))
                break;
            for (int l = 0; l <= o->depth; l++)
                add_norms(tg_tape_find(t, stream_name(v, l - 1, name, sizeof name)), out[l], count[l]);
        }
        tg_gpt_free(m);
        if (!m || tg_tape_status(t) != TG_OK)
            return false;
    }
    for (int l = 0; l <= o->depth; l++)
        for (int k = 0; k < N_KINDS; k++)
            out[l][k] /= count[l][k];
    return true;
}

static void print_table(const study_opts *o, variant v, double r[MAX_LAYERS][N_KINDS])
{
    printf("%s residual stream at init: E||x_l||^2 / d (width %d, %s, %d seeds x %d batches)\n",
           variant_names[v], o->dim, setup_name(o), o->seeds, o->batches);
    printf("%5s %10s %10s %10s %10s %10s %s\n", "l", "all", "pos 0", "pos last", "1 + l/2", "1 + 3l/2",
           "all within");
    for (int l = 0; l <= o->depth; l++) {
        double lo = 1 + l / 2.0, hi = 1 + 1.5 * l;
        printf("%5d %10.4f %10.4f %10.4f %10.2f %10.2f %s\n", l, r[l][ALL], r[l][FIRST], r[l][LAST], lo, hi,
               l == 0 ? "(the input)" : r[l][ALL] >= lo && r[l][ALL] <= hi ? "yes" : "no");
    }
}

static bool write_outputs(const study_opts *o, variant v, double r[MAX_LAYERS][N_KINDS])
{
    out_file of;
    if (!out_open(&of, o, "stream.csv"))
        return false;
    fprintf(of.f, "variant,layer,sq_norm_over_d,pos0,pos_last,lemma_lower,lemma_upper\n");
    static double x[MAX_LAYERS], y[N_KINDS + 2][MAX_LAYERS];
    for (int l = 0; l <= o->depth; l++) {
        x[l] = l;
        for (int k = 0; k < N_KINDS; k++)
            y[k][l] = r[l][k];
        y[N_KINDS][l] = 1 + l / 2.0;
        y[N_KINDS + 1][l] = 1 + 1.5 * l;
        fprintf(of.f, "%s,%d,%.6f,%.6f,%.6f,%.2f,%.2f\n", variant_keys[v], l, r[l][ALL], r[l][FIRST], r[l][LAST],
                y[N_KINDS][l], y[N_KINDS + 1][l]);
    }
    if (!out_close(&of))
        return false;
    printf("wrote %s\n", of.path);
    int n = o->depth + 1;
    tg_svg_series se[] = {{"all tokens", x, y[ALL], n, false, 0}, {"position 0", x, y[FIRST], n, false, 2},
                       {"last position", x, y[LAST], n, false, 3}, {"(1 + l/2)", x, y[N_KINDS], n, true, 7},
                       {"(1 + 3l/2)", x, y[N_KINDS + 1], n, true, 1}};
    char title[160];
    snprintf(title, sizeof title, "%s residual stream norm at init vs Lemma 2 (width %d, %s)",
             variant_names[v], o->dim, setup_name(o));
    tg_svg_plot p = {title, "layer l (0 = embedding)", "E||x_l||^2 / d", false, false, se, 5};
    return write_svg(o, "stream.svg", &p);
}

/* One variant: the first one chosen (the lemma is about Pre-LN). */
int cmd_stream(const study_opts *o)
{
    static double r[MAX_LAYERS][N_KINDS];
    variant v = V_PRE;
    while (!o->variants[v])
        v++;
    tg_tape *t = tg_tape_new(0);
    batch bt = {0};
    bool ok = t && batch_new(&bt, o) && measure(o, v, t, &bt, r);
    batch_free(&bt);
    tg_tape_free(t);
    if (!ok)
        return 1;
    print_table(o, v, r);
    return write_outputs(o, v, r) ? 0 : 1;
}
