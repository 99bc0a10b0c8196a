/* Models, data and files shared by the subcommands.
 *
 * The "xavier" init (the default) is the setting the papers analyse
 * (Xiong et al. 2020 assume Xavier weights and inputs of unit variance):
 * every Linear weight [out, in] ~ N(0, 2 / (in + out)), with c_attn taken as
 * its three [d, d] projections; wpe ~ N(0, 1) and wte ~ N(0, 1/d), so the
 * stream starts with variance ~1 per feature while the tied head's logits
 * start with variance ~1; biases 0, LayerNorm 1 and 0, ReZero gates 0.
 * DeepNorm multiplies v, attn.c_proj, mlp.c_fc and mlp.c_proj by beta
 * (DeepNet's xavier_normal_(gain=beta)). "gpt2" keeps tg_gpt_new's init.
 * --normtype rmsnorm swaps every LayerNorm (ln_1, ln_2, ln_f) for RMSNorm,
 * gain 1 and no bias, under either init. */
#include "study.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const variant_names[N_VARIANTS] = {"Pre-LN", "Post-LN", "DeepNorm", "ReZero"};
const char *const variant_keys[N_VARIANTS] = {"pre", "post", "deepnorm", "rezero"};
static const tg_norm_place norms[N_VARIANTS] = {TG_PRE_LN, TG_POST_LN, TG_DEEPNORM, TG_REZERO};

bool batch_new(batch *bt, const study_opts *o)
{
    bt->b = o->batch;
    bt->t = 2 * o->digits - 1;
    bt->ids = malloc((size_t)bt->b * bt->t * sizeof *bt->ids);
    bt->targets = malloc((size_t)bt->b * bt->t * sizeof *bt->targets);
    if (!bt->ids || !bt->targets) {
        batch_free(bt);
        fprintf(stderr, "residual_study: out of memory for a batch\n");
        return false;
    }
    return true;
}

void batch_free(batch *bt)
{
    free(bt->ids);
    free(bt->targets);
    bt->ids = bt->targets = NULL;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

void batch_fill(batch *bt, tg_rng *r)
{
    int n = (bt->t + 1) / 2, seq[512];
    for (int i = 0; i < bt->b; i++) {
        for (int j = 0; j < n; j++)
            seq[j] = seq[n + j] = (int)(tg_rng_u32(r) % STUDY_VOCAB);
        qsort(seq + n, (size_t)n, sizeof *seq, cmp_int);
        for (int j = 0; j < bt->t; j++) {
            bt->ids[i * bt->t + j] = seq[j];
            bt->targets[i * bt->t + j] = j >= n - 1 ? seq[j + 1] : -1;
        }
    }
}

static bool has(const char *name, const char *part) { return strstr(name, part) != NULL; }

/* std of one weight under the xavier init, before DeepNorm's beta. */
static float xavier_std(const tg_tensor *p)
{
    int out = p->shape[0], in = p->shape[1];
    if (has(p->name, "c_attn"))
        out /= 3;
    return sqrtf(2.0f / (float)(in + out));
}

static void xavier_init(tg_gpt *m, uint64_t seed)
{
    tg_rng r;
    tg_rng_seed(&r, seed ^ 0x9e3779b97f4a7c15u);
    float d = (float)m->cfg.dim, beta = m->cfg.norm == TG_DEEPNORM ? tg_deepnorm_beta(m->cfg.layers) : 1.0f;
    for (int i = 0; i < m->n_params; i++) {
        tg_tensor *p = m->params[i];
        if (has(p->name, "wte"))
            tg_fill_normal(p, &r, 0.0f, 1.0f / sqrtf(d));
        else if (has(p->name, "wpe"))
            tg_fill_normal(p, &r, 0.0f, 1.0f);
        else if (p->ndim == 2) {
            bool scaled = has(p->name, "c_proj") || has(p->name, "c_fc");
            tg_fill_normal(p, &r, 0.0f, xavier_std(p) * (scaled ? beta : 1.0f));
            for (size_t j = 2 * p->size / 3; has(p->name, "c_attn") && j < p->size; j++)
                p->data[j] *= beta; /* v, not q and k */
        }
    }
}

const char *setup_name(const study_opts *o)
{
    bool rms = o->normtype == TG_RMSNORM;
    if (o->init == INIT_XAVIER)
        return rms ? "xavier init, RMSNorm" : "xavier init";
    return rms ? "gpt2 init, RMSNorm" : "gpt2 init";
}

tg_gpt *study_model(const study_opts *o, variant v, int layers, uint64_t seed)
{
    tg_gpt_config cfg = {.vocab = STUDY_VOCAB, .ctx = 2 * o->digits, .layers = layers, .heads = o->heads, .dim = o->dim,
                         .norm = norms[v], .normtype = o->normtype};
    char err[256];
    tg_gpt *m = tg_gpt_new(&cfg, seed, err, sizeof err);
    if (!m) {
        fprintf(stderr, "residual_study: %s\n", err);
        return NULL;
    }
    if (o->init == INIT_XAVIER)
        xavier_init(m, seed);
    return m;
}

bool run_batch(tg_tape *t, tg_gpt *m, const batch *bt, bool backward, float *loss)
{
    tg_tape_reset(t);
    tg_tensor *l = tg_gpt_loss(t, m, bt->ids, bt->targets, bt->b, bt->t);
    if (l && backward) {
        tg_zero_grad(m->params, m->n_params);
        tg_backward(t, l);
    }
    if (tg_tape_status(t) != TG_OK) {
        fprintf(stderr, "residual_study: %s\n", tg_tape_error(t));
        return false;
    }
    if (loss)
        *loss = l->data[0];
    return true;
}

bool report_take(report *r, const tg_tape *t)
{
    int n = tg_grad_report(t, NULL, 0);
    if (n > r->cap) {
        tg_grad_stat *rows = realloc(r->rows, (size_t)n * sizeof *rows);
        if (!rows) {
            fprintf(stderr, "residual_study: out of memory for %d report rows\n", n);
            return false;
        }
        r->rows = rows;
        r->cap = n;
    }
    r->n = tg_grad_report(t, r->rows, r->cap);
    return r->n >= 0;
}

void report_free(report *r)
{
    free(r->rows);
    r->rows = NULL;
    r->n = r->cap = 0;
}

static bool is_weight_matrix(const char *rest)
{
    return !strcmp(rest, "attn.c_attn.weight") || !strcmp(rest, "attn.c_proj.weight") ||
           !strcmp(rest, "mlp.c_fc.weight") || !strcmp(rest, "mlp.c_proj.weight");
}

void report_layers(const report *r, variant v, int layers, double *weights, double *stream)
{
    double wsq[STUDY_MAX_LAYERS] = {0};
    char name[64];
    for (int i = 0; i < r->n; i++) {
        const tg_grad_stat *s = &r->rows[i];
        const char *rest;
        int l = name_layer(s->name, "transformer.h.", &rest);
        if (s->kind == TG_GRAD_PARAM && l >= 0 && l < layers && is_weight_matrix(rest))
            wsq[l] += s->norm * s->norm;
        for (int k = -1; k < layers; k++)
            if (!strcmp(s->name, stream_name(v, k, name, sizeof name)))
                stream[k + 1] += s->norm;
    }
    for (int l = 0; l < layers; l++)
        weights[l + 1] += sqrt(wsq[l]);
}

int name_layer(const char *name, const char *prefix, const char **rest)
{
    size_t k = strlen(prefix);
    if (strncmp(name, prefix, k) || name[k] < '0' || name[k] > '9')
        return -1;
    char *end;
    long l = strtol(name + k, &end, 10);
    if (*end != '.' || l > 1000)
        return -1;
    *rest = end + 1;
    return (int)l;
}

int depth_list(int max, int *out)
{
    static const int depths[] = {2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64};
    int n = 0;
    for (size_t i = 0; i < sizeof depths / sizeof *depths && depths[i] <= max; i++)
        out[n++] = depths[i];
    if (n == 0 || out[n - 1] != max) /* the chosen maximum is always measured */
        out[n++] = max;
    return n;
}

const char *stream_name(variant v, int layer, char *buf, size_t len)
{
    if (layer < 0)
        snprintf(buf, len, "emb");
    else
        snprintf(buf, len, "h.%d.%s", layer, v == V_POST || v == V_DEEPNORM ? "norm_mlp" : "resid_mlp");
    return buf;
}

bool out_path(const study_opts *o, const char *name, char *buf, size_t len)
{
    if (mkdir(o->out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "residual_study: cannot create directory %s: %s\n", o->out, strerror(errno));
        return false;
    }
    if ((size_t)snprintf(buf, len, "%s/%s", o->out, name) >= len) {
        fprintf(stderr, "residual_study: output path %s/%s is too long\n", o->out, name);
        return false;
    }
    return true;
}

bool out_open(out_file *of, const study_opts *o, const char *name)
{
    of->f = NULL;
    if (!out_path(o, name, of->path, sizeof of->path))
        return false;
    snprintf(of->tmp, sizeof of->tmp, "%s.tmp", of->path);
    if (!(of->f = fopen(of->tmp, "w"))) {
        fprintf(stderr, "residual_study: cannot write %s: %s\n", of->tmp, strerror(errno));
        return false;
    }
    return true;
}

bool out_close(out_file *of)
{
    bool ok = of->f && !ferror(of->f);
    if (of->f && fclose(of->f) != 0)
        ok = false;
    of->f = NULL;
    if (ok && rename(of->tmp, of->path) != 0)
        ok = false;
    if (!ok) {
        fprintf(stderr, "residual_study: cannot write %s: %s\n", of->path, strerror(errno));
        remove(of->tmp);
    }
    return ok;
}

bool write_svg(const study_opts *o, const char *name, const tg_svg_plot *p)
{
    out_file of;
    if (!out_open(&of, o, name))
        return false;
    tg_svg_write(of.f, p);
    if (!out_close(&of))
        return false;
    printf("wrote %s\n", of.path);
    return true;
}
