/* GPT checkpoints: a model, optionally AdamW's state, and string metadata in
 * one safetensors file (the format is described in tapegrad.h).
 *
 * Reading trusts nothing: the configuration's numbers are parsed strictly
 * and bounded by tg_gpt_config_check, every tensor the configuration implies
 * must be present with its exact shape (and nothing else may be), all before
 * a model is allocated from those numbers, so a crafted file costs at most
 * the memory it occupies itself. Values are checked to be finite as they are
 * copied out, and never written when they are not. */
#include "tapegrad_internal.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define M_PREFIX "optim.m."
#define V_PREFIX "optim.v."
enum { NAME_LEN = 96, N_MODEL_KEYS = 11 };

struct tg_checkpoint {
    tg_st_file *f;
    char *path;
    tg_gpt_config cfg;
    int n_params;
    bool has_opt;
};

static void put_err(char *err, size_t errlen, const char *path, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static void put_err(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tg_error(err, errlen, TG_ERR_FORMAT, "checkpoint %s: %s", path ? path : "(null)", msg);
}

static const char *const norm_names[] = {
    [TG_PRE_LN] = "pre", [TG_POST_LN] = "post", [TG_DEEPNORM] = "deepnorm", [TG_REZERO] = "rezero"};
static const char *const normtype_names[] = {[TG_LAYERNORM] = "layernorm", [TG_RMSNORM] = "rmsnorm"};
static const char *const mlp_names[] = {[TG_MLP_GELU] = "gelu", [TG_MLP_SWIGLU] = "swiglu"};
static const char *const pos_names[] = {[TG_POS_LEARNED] = "learned", [TG_POS_ROPE] = "rope"};
#define COUNT(a) ((int)(sizeof a / sizeof a[0]))

static const char *name_of(const char *const *names, int n, int v) { return (unsigned)v < (unsigned)n ? names[v] : NULL; }

static bool parse_name(const char *const *names, int n, const char *s, int *out)
{
    for (int i = 0; s && out && i < n; i++)
        if (!strcmp(s, names[i])) {
            *out = i;
            return true;
        }
    return false;
}

const char *tg_norm_name(tg_norm_place v) { return name_of(norm_names, COUNT(norm_names), (int)v); }
const char *tg_normtype_name(tg_norm_type v) { return name_of(normtype_names, COUNT(normtype_names), (int)v); }
const char *tg_mlp_name(tg_mlp_type v) { return name_of(mlp_names, COUNT(mlp_names), (int)v); }
const char *tg_pos_name(tg_pos_type v) { return name_of(pos_names, COUNT(pos_names), (int)v); }

bool tg_norm_parse(const char *s, tg_norm_place *v)
{
    int i;
    return parse_name(norm_names, COUNT(norm_names), s, &i) && v ? (*v = (tg_norm_place)i, true) : false;
}

bool tg_normtype_parse(const char *s, tg_norm_type *v)
{
    int i;
    return parse_name(normtype_names, COUNT(normtype_names), s, &i) && v ? (*v = (tg_norm_type)i, true) : false;
}

bool tg_mlp_parse(const char *s, tg_mlp_type *v)
{
    int i;
    return parse_name(mlp_names, COUNT(mlp_names), s, &i) && v ? (*v = (tg_mlp_type)i, true) : false;
}

bool tg_pos_parse(const char *s, tg_pos_type *v)
{
    int i;
    return parse_name(pos_names, COUNT(pos_names), s, &i) && v ? (*v = (tg_pos_type)i, true) : false;
}

/* Index of the first value of x[0..n) that is not finite, or n. */
static size_t first_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return i;
    return n;
}

/* ---- writing ----------------------------------------------------------------- */

typedef struct save_buf {
    tg_st_tensor *t;
    char *names; /* "optim.m.<name>" then "optim.v.<name>" for each parameter */
    const char **keys, **values;
    char nums[N_MODEL_KEYS + 1][32];
} save_buf;

static tg_st_tensor st_f32(const char *name, const tg_tensor *like, const float *data)
{
    tg_st_tensor s = {.name = name, .dtype = TG_F32, .ndim = like->ndim, .data = data};
    memcpy(s.shape, like->shape, sizeof s.shape);
    return s;
}

/* The reason m and opt cannot be saved, or NULL. */
static const char *check_save_args(const tg_gpt *m, const tg_adamw *opt, int n_meta, const char *const *keys,
                                   const char *const *values)
{
    if (!m || !m->params || m->n_params < 1)
        return "the model is NULL or empty";
    if (n_meta < 0 || (n_meta > 0 && (!keys || !values)))
        return "bad metadata arguments";
    if (!opt)
        return NULL;
    if (tg_adamw_count(opt) != m->n_params)
        return "the optimizer does not update this model's parameters";
    for (int i = 0; i < m->n_params; i++)
        if (tg_adamw_param(opt, i) != m->params[i])
            return "the optimizer does not update this model's parameters (in its order)";
    return NULL;
}

/* Every value that would be written is finite; otherwise a message naming
 * the first tensor and index that is not. */
static bool save_values_finite(const char *path, const tg_gpt *m, const tg_adamw *opt, char *err, size_t errlen)
{
    for (int i = 0; i < m->n_params; i++) {
        const tg_tensor *p = m->params[i];
        const float *data[3] = {p->data, opt ? tg_adamw_m(opt, i) : NULL, opt ? tg_adamw_v(opt, i) : NULL};
        static const char *const prefix[3] = {"", M_PREFIX, V_PREFIX};
        for (int k = 0; k < 3; k++) {
            size_t at = data[k] ? first_nonfinite(data[k], p->size) : p->size;
            if (at < p->size) {
                put_err(err, errlen, path, "not written: %s%s[%zu] is %g", prefix[k], p->name, at,
                        (double)data[k][at]);
                return false;
            }
        }
    }
    return true;
}

static bool fill_save_buf(save_buf *b, const tg_gpt *m, const tg_adamw *opt, const char *const *keys,
                          const char *const *values, int n_meta)
{
    int n = m->n_params, n_t = opt ? 3 * n : n, n_lib = N_MODEL_KEYS + (opt != NULL);
    b->t = malloc((size_t)n_t * sizeof *b->t);
    b->names = malloc(2 * (size_t)n * NAME_LEN);
    b->keys = malloc((size_t)(n_lib + n_meta) * sizeof *b->keys);
    b->values = malloc((size_t)(n_lib + n_meta) * sizeof *b->values);
    if (!b->t || !b->names || !b->keys || !b->values)
        return false;
    for (int i = 0; i < n; i++) {
        const tg_tensor *p = m->params[i];
        b->t[i] = st_f32(p->name, p, p->data);
        if (!opt)
            continue;
        char *mn = b->names + (size_t)i * NAME_LEN, *vn = b->names + (size_t)(n + i) * NAME_LEN;
        snprintf(mn, NAME_LEN, M_PREFIX "%s", p->name);
        snprintf(vn, NAME_LEN, V_PREFIX "%s", p->name);
        b->t[n + i] = st_f32(mn, p, tg_adamw_m(opt, i));
        b->t[2 * n + i] = st_f32(vn, p, tg_adamw_v(opt, i));
    }
    const tg_gpt_config *c = &m->cfg;
    static const char *const lib_keys[] = {"vocab", "ctx", "layers", "heads", "dim", "residual_scale",
                                           "norm", "normtype", "mlp", "pos", "dropout", "optim_steps"};
    const int ints[5] = {c->vocab, c->ctx, c->layers, c->heads, c->dim};
    for (int k = 0; k < 5; k++)
        snprintf(b->nums[k], sizeof b->nums[k], "%d", ints[k]);
    snprintf(b->nums[5], sizeof b->nums[5], "%.9g", (double)c->residual_scale);
    snprintf(b->nums[6], sizeof b->nums[6], "%s", tg_norm_name(c->norm));
    snprintf(b->nums[7], sizeof b->nums[7], "%s", tg_normtype_name(c->normtype));
    snprintf(b->nums[8], sizeof b->nums[8], "%s", tg_mlp_name(c->mlp));
    snprintf(b->nums[9], sizeof b->nums[9], "%s", tg_pos_name(c->pos));
    snprintf(b->nums[10], sizeof b->nums[10], "%.9g", (double)c->dropout);
    snprintf(b->nums[11], sizeof b->nums[11], "%ld", tg_adamw_steps(opt));
    for (int k = 0; k < n_lib; k++) {
        b->keys[k] = lib_keys[k];
        b->values[k] = b->nums[k];
    }
    for (int k = 0; k < n_meta; k++) {
        b->keys[n_lib + k] = keys[k];
        b->values[n_lib + k] = values[k];
    }
    return true;
}

tg_status tg_gpt_save(const char *path, const tg_gpt *m, const tg_adamw *opt, const char *const *meta_keys,
                      const char *const *meta_values, int n_meta, char *err, size_t errlen)
{
    const char *bad = path ? check_save_args(m, opt, n_meta, meta_keys, meta_values) : "path is NULL";
    if (bad) {
        put_err(err, errlen, path, "tg_gpt_save: %s", bad);
        return TG_ERR_ARG;
    }
    if (tg_gpt_config_check(&m->cfg, NULL, 0) != TG_OK) {
        put_err(err, errlen, path, "tg_gpt_save: the model's configuration is not valid");
        return TG_ERR_ARG;
    }
    if (!save_values_finite(path, m, opt, err, errlen))
        return TG_ERR_ARG;
    save_buf b = {0};
    tg_status s;
    if (!fill_save_buf(&b, m, opt, meta_keys, meta_values, n_meta)) {
        put_err(err, errlen, path, "out of memory");
        s = TG_ERR_NOMEM;
    } else {
        int n_t = opt ? 3 * m->n_params : m->n_params, n_lib = N_MODEL_KEYS + (opt != NULL);
        s = tg_safetensors_write(path, b.t, n_t, b.keys, b.values, n_lib + n_meta, err, errlen);
    }
    free(b.t);
    free(b.names);
    free(b.keys);
    free(b.values);
    return s;
}

/* ---- reading: the configuration ------------------------------------------------ */

static tg_status need_meta(const tg_checkpoint *c, const char *key, const char **v, char *err, size_t errlen)
{
    *v = tg_safetensors_meta(c->f, key);
    if (*v)
        return TG_OK;
    put_err(err, errlen, c->path, "no metadata '%s'", key);
    return TG_ERR_FORMAT;
}

tg_status tg_checkpoint_meta_int(const tg_checkpoint *c, const char *key, long long lo, long long hi,
                                 long long *out, char *err, size_t errlen)
{
    const char *v;
    if (!c || !key || !out) {
        put_err(err, errlen, c ? c->path : NULL, "tg_checkpoint_meta_int: NULL argument");
        return TG_ERR_ARG;
    }
    tg_status s = need_meta(c, key, &v, err, errlen);
    if (s == TG_OK && !tg_parse_int(v, lo, hi, out)) {
        put_err(err, errlen, c->path, "metadata '%s' is '%s', expected an integer from %lld to %lld", key, v, lo, hi);
        s = TG_ERR_FORMAT;
    }
    return s;
}

tg_status tg_checkpoint_meta_u64(const tg_checkpoint *c, const char *key, uint64_t *out, char *err,
                                 size_t errlen)
{
    const char *v;
    if (!c || !key || !out) {
        put_err(err, errlen, c ? c->path : NULL, "tg_checkpoint_meta_u64: NULL argument");
        return TG_ERR_ARG;
    }
    tg_status s = need_meta(c, key, &v, err, errlen);
    if (s == TG_OK && !tg_parse_u64(v, out)) {
        put_err(err, errlen, c->path, "metadata '%s' is '%s', expected an integer from 0 to %llu", key, v,
                (unsigned long long)UINT64_MAX);
        s = TG_ERR_FORMAT;
    }
    return s;
}

tg_status tg_checkpoint_meta_float(const tg_checkpoint *c, const char *key, double lo, double hi, float *out,
                                   char *err, size_t errlen)
{
    const char *v;
    if (!c || !key || !out) {
        put_err(err, errlen, c ? c->path : NULL, "tg_checkpoint_meta_float: NULL argument");
        return TG_ERR_ARG;
    }
    tg_status s = need_meta(c, key, &v, err, errlen);
    if (s == TG_OK && !tg_parse_float(v, lo, hi, out)) {
        put_err(err, errlen, c->path, "metadata '%s' is '%s', expected a finite number from %g to %g", key, v, lo,
                hi);
        s = TG_ERR_FORMAT;
    }
    return s;
}

/* normtype, mlp, pos and dropout: absent in checkpoints older than the
 * options, which are GPT-2 blocks (the zero values). */
static tg_status read_llama_options(tg_checkpoint *c, char *err, size_t errlen)
{
    const char *nt = tg_checkpoint_meta(c, "normtype"), *mlp = tg_checkpoint_meta(c, "mlp"),
               *pos = tg_checkpoint_meta(c, "pos");
    if (nt && !tg_normtype_parse(nt, &c->cfg.normtype)) {
        put_err(err, errlen, c->path, "metadata 'normtype' is '%s', expected layernorm or rmsnorm", nt);
        return TG_ERR_FORMAT;
    }
    if (mlp && !tg_mlp_parse(mlp, &c->cfg.mlp)) {
        put_err(err, errlen, c->path, "metadata 'mlp' is '%s', expected gelu or swiglu", mlp);
        return TG_ERR_FORMAT;
    }
    if (pos && !tg_pos_parse(pos, &c->cfg.pos)) {
        put_err(err, errlen, c->path, "metadata 'pos' is '%s', expected learned or rope", pos);
        return TG_ERR_FORMAT;
    }
    if (!tg_checkpoint_meta(c, "dropout"))
        return TG_OK;
    return tg_checkpoint_meta_float(c, "dropout", 0.0, 0.999999, &c->cfg.dropout, err, errlen);
}

static tg_status read_config(tg_checkpoint *c, char *err, size_t errlen)
{
    static const char *const keys[5] = {"vocab", "ctx", "layers", "heads", "dim"};
    static const long long hi[5] = {TG_GPT_MAX_VOCAB, TG_GPT_MAX_CTX, TG_GPT_MAX_LAYERS, TG_GPT_MAX_DIM,
                                    TG_GPT_MAX_DIM};
    int *fields[5] = {&c->cfg.vocab, &c->cfg.ctx, &c->cfg.layers, &c->cfg.heads, &c->cfg.dim};
    for (int k = 0; k < 5; k++) {
        long long v;
        tg_status s = tg_checkpoint_meta_int(c, keys[k], 1, hi[k], &v, err, errlen);
        if (s != TG_OK)
            return s;
        *fields[k] = (int)v;
    }
    const char *norm;
    tg_status s = need_meta(c, "norm", &norm, err, errlen);
    if (s != TG_OK)
        return s;
    if (!tg_norm_parse(norm, &c->cfg.norm)) {
        put_err(err, errlen, c->path, "metadata 'norm' is '%s', expected pre, post, deepnorm or rezero", norm);
        return TG_ERR_FORMAT;
    }
    s = tg_checkpoint_meta_float(c, "residual_scale", 0.0, FLT_MAX, &c->cfg.residual_scale, err, errlen);
    if (s == TG_OK)
        s = read_llama_options(c, err, errlen);
    if (s != TG_OK)
        return s;
    char why[256];
    if (tg_gpt_config_check(&c->cfg, why, sizeof why) != TG_OK) {
        put_err(err, errlen, c->path, "its configuration is invalid: %s", why);
        return TG_ERR_FORMAT;
    }
    c->n_params = tg_gpt_config_params(&c->cfg);
    return TG_OK;
}

/* ---- reading: the tensors -------------------------------------------------------- */

/* The file's tensor prefix+name, F32 of the given shape; NULL and a message
 * otherwise. */
static const tg_st_tensor *find_tensor(const tg_checkpoint *c, const char *prefix, const char *name, int ndim,
                                       const int *shape, char *err, size_t errlen)
{
    char full[NAME_LEN];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const tg_st_tensor *t = tg_safetensors_find(c->f, full);
    if (!t) {
        put_err(err, errlen, c->path, "no tensor '%s' (a model of layers %d, dim %d, norm %s has one)", full,
                c->cfg.layers, c->cfg.dim, tg_norm_name(c->cfg.norm));
        return NULL;
    }
    bool same = t->dtype == TG_F32 && t->ndim == ndim;
    for (int k = 0; same && k < ndim; k++)
        same = t->shape[k] == shape[k];
    if (!same) {
        char want[48], got[48];
        int w = snprintf(want, sizeof want, "[%d", shape[0]);
        if (ndim == 2)
            snprintf(want + w, sizeof want - (size_t)w, ",%d", shape[1]);
        strcat(want, "]");
        size_t g = (size_t)snprintf(got, sizeof got, "[");
        for (int k = 0; k < t->ndim && g < sizeof got; k++)
            g += (size_t)snprintf(got + g, sizeof got - g, k ? ",%d" : "%d", t->shape[k]);
        if (g < sizeof got)
            snprintf(got + g, sizeof got - g, "]");
        put_err(err, errlen, c->path, "tensor '%s' is %s %s, the configuration needs F32 %s", full,
                t->dtype == TG_F32 ? "F32" : "I32", got, want);
        return NULL;
    }
    return t;
}

static int cmp_ptr(const void *a, const void *b)
{
    const void *x = *(const void *const *)a, *y = *(const void *const *)b;
    return (x > y) - (x < y);
}

/* Every expected tensor is present with its shape (a configuration larger
 * than the file fails at the first tensor missing); a file with more
 * tensors than that names the first one nothing explains. */
static tg_status check_tensors(tg_checkpoint *c, char *err, size_t errlen)
{
    int n = c->n_params, ndim, shape[TG_MAX_DIMS], count = tg_safetensors_count(c->f);
    char name[NAME_LEN];
    tg_gpt_config_param(&c->cfg, 0, name, sizeof name, &ndim, shape);
    c->has_opt = tg_safetensors_find(c->f, M_PREFIX "transformer.wte.weight") ||
                 tg_safetensors_find(c->f, V_PREFIX "transformer.wte.weight");
    int per = c->has_opt ? 3 : 1;
    const void **seen = malloc((size_t)(n * per) * sizeof *seen);
    if (!seen) {
        put_err(err, errlen, c->path, "out of memory");
        return TG_ERR_NOMEM;
    }
    static const char *const prefix[3] = {"", M_PREFIX, V_PREFIX};
    tg_status s = TG_OK;
    for (int i = 0; s == TG_OK && i < n; i++) {
        tg_gpt_config_param(&c->cfg, i, name, sizeof name, &ndim, shape);
        for (int k = 0; s == TG_OK && k < per; k++) {
            seen[i * per + k] = find_tensor(c, prefix[k], name, ndim, shape, err, errlen);
            s = seen[i * per + k] ? TG_OK : TG_ERR_FORMAT;
        }
    }
    if (s == TG_OK && count > n * per) {
        qsort(seen, (size_t)(n * per), sizeof *seen, cmp_ptr);
        for (int i = 0; i < count; i++) {
            const tg_st_tensor *t = tg_safetensors_at(c->f, i);
            if (!bsearch(&t, seen, (size_t)(n * per), sizeof *seen, cmp_ptr)) {
                put_err(err, errlen, c->path, "tensor '%s' is not part of a model of layers %d, norm %s", t->name,
                        c->cfg.layers, tg_norm_name(c->cfg.norm));
                s = TG_ERR_FORMAT;
                break;
            }
        }
    }
    free(seen);
    return s;
}

tg_checkpoint *tg_checkpoint_open(const char *path, char *err, size_t errlen)
{
    if (!path) {
        put_err(err, errlen, NULL, "tg_checkpoint_open: path is NULL");
        return NULL;
    }
    tg_checkpoint *c = calloc(1, sizeof *c);
    char *p = malloc(strlen(path) + 1);
    if (!c || !p) {
        free(c);
        free(p);
        put_err(err, errlen, path, "out of memory");
        return NULL;
    }
    c->path = strcpy(p, path);
    char msg[512];
    c->f = tg_safetensors_read(path, msg, sizeof msg);
    if (!c->f) {
        tg_error(err, errlen, TG_ERR_FORMAT, "checkpoint %s", msg); /* msg starts with the path */
        tg_checkpoint_close(c);
        return NULL;
    }
    long long steps;
    if (read_config(c, err, errlen) != TG_OK || check_tensors(c, err, errlen) != TG_OK ||
        (c->has_opt && tg_checkpoint_meta_int(c, "optim_steps", 0, LONG_MAX, &steps, err, errlen) != TG_OK)) {
        tg_checkpoint_close(c);
        return NULL;
    }
    return c;
}

void tg_checkpoint_close(tg_checkpoint *c)
{
    if (!c)
        return;
    tg_safetensors_close(c->f);
    free(c->path);
    free(c);
}

const tg_gpt_config *tg_checkpoint_config(const tg_checkpoint *c)
{
    return c ? &c->cfg : NULL;
}

const char *tg_checkpoint_meta(const tg_checkpoint *c, const char *key)
{
    return c && key ? tg_safetensors_meta(c->f, key) : NULL;
}

bool tg_checkpoint_has_optimizer(const tg_checkpoint *c)
{
    return c && c->has_opt;
}

/* The checked tensor prefix+name (check_tensors found it). */
static const float *tensor_data(const tg_checkpoint *c, const char *prefix, const char *name)
{
    char full[NAME_LEN];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return tg_safetensors_find(c->f, full)->data;
}

tg_gpt *tg_checkpoint_model(const tg_checkpoint *c, char *err, size_t errlen)
{
    if (!c) {
        put_err(err, errlen, NULL, "tg_checkpoint_model: NULL checkpoint");
        return NULL;
    }
    char why[256];
    tg_gpt *m = tg_gpt_new(&c->cfg, 0, why, sizeof why);
    if (!m) {
        put_err(err, errlen, c->path, "%s", why);
        return NULL;
    }
    for (int i = 0; i < m->n_params; i++) {
        tg_tensor *p = m->params[i];
        const float *src = tensor_data(c, "", p->name);
        size_t at = first_nonfinite(src, p->size);
        if (at < p->size) {
            put_err(err, errlen, c->path, "tensor '%s' holds %g at index %zu", p->name, (double)src[at], at);
            tg_gpt_free(m);
            return NULL;
        }
        memcpy(p->data, src, p->size * sizeof *src);
    }
    return m;
}

/* m has the checkpoint's parameters (names and sizes), opt updates them. */
static bool optimizer_fits(const tg_checkpoint *c, const tg_gpt *m, const tg_adamw *opt)
{
    if (m->n_params != c->n_params || tg_adamw_count(opt) != m->n_params)
        return false;
    char name[NAME_LEN];
    int ndim, shape[TG_MAX_DIMS];
    for (int i = 0; i < m->n_params; i++) {
        tg_gpt_config_param(&c->cfg, i, name, sizeof name, &ndim, shape);
        const tg_tensor *p = m->params[i];
        if (tg_adamw_param(opt, i) != p || strcmp(p->name, name) ||
            p->size != tg_shape_size(ndim, shape))
            return false;
    }
    return true;
}

tg_status tg_checkpoint_optimizer(const tg_checkpoint *c, const tg_gpt *m, tg_adamw *opt, char *err,
                                  size_t errlen)
{
    if (!c || !m || !opt) {
        put_err(err, errlen, c ? c->path : NULL, "tg_checkpoint_optimizer: NULL argument");
        return TG_ERR_ARG;
    }
    if (!c->has_opt) {
        put_err(err, errlen, c->path, "it holds no optimizer state");
        return TG_ERR_ARG;
    }
    if (!optimizer_fits(c, m, opt)) {
        put_err(err, errlen, c->path, "the model or optimizer given does not match its configuration");
        return TG_ERR_ARG;
    }
    for (int i = 0; i < m->n_params; i++) { /* all checked before any is copied */
        const tg_tensor *p = m->params[i];
        const float *mo = tensor_data(c, M_PREFIX, p->name), *vo = tensor_data(c, V_PREFIX, p->name);
        size_t am = first_nonfinite(mo, p->size), av = first_nonfinite(vo, p->size);
        for (size_t j = 0; av == p->size && j < p->size; j++)
            av = vo[j] < 0.0f ? j : av;
        if (am < p->size || av < p->size) {
            bool in_m = am < p->size;
            put_err(err, errlen, c->path, "tensor '%s%s' holds %g at index %zu%s", in_m ? M_PREFIX : V_PREFIX,
                    p->name, (double)(in_m ? mo[am] : vo[av]), in_m ? am : av,
                    in_m ? "" : " (a second moment must be finite and >= 0)");
            return TG_ERR_FORMAT;
        }
    }
    long long steps;
    tg_status s = tg_checkpoint_meta_int(c, "optim_steps", 0, LONG_MAX, &steps, err, errlen);
    if (s != TG_OK)
        return s;
    for (int i = 0; i < m->n_params; i++) {
        const tg_tensor *p = m->params[i];
        memcpy(tg_adamw_m(opt, i), tensor_data(c, M_PREFIX, p->name), p->size * sizeof(float));
        memcpy(tg_adamw_v(opt, i), tensor_data(c, V_PREFIX, p->name), p->size * sizeof(float));
    }
    tg_adamw_set_steps(opt, (long)steps);
    return TG_OK;
}

tg_gpt *tg_gpt_load(const char *path, char *err, size_t errlen)
{
    tg_checkpoint *c = tg_checkpoint_open(path, err, errlen);
    tg_gpt *m = c ? tg_checkpoint_model(c, err, errlen) : NULL;
    tg_checkpoint_close(c);
    return m;
}
