/* Checkpoints and gradient dumps, as safetensors files.
 *
 * A checkpoint holds every parameter under its nanoGPT name, AdamW's moments
 * as "optim.m.<name>" and "optim.v.<name>", and in __metadata__ (strings):
 * the model shape (vocab ctx layers heads dim norm residual_scale), the run's
 * settings (batch steps lr min_lr warmup weight_decay beta2 clip seed bias), the
 * progress (step, optim_steps, rng: the batch sampler's state) and the data
 * (task "sort" or "text"; for text, chars: the vocabulary as byte values).
 * Floats are written with 9 significant digits, which round-trips a float. */
#include "train_gpt.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT "tapegrad-train_gpt-1"

enum { MAX_META = 24, META_LEN = 64 };

typedef struct meta {
    int n;
    const char *keys[MAX_META];
    const char *values[MAX_META];
    char buf[MAX_META][META_LEN];
    char chars[256 * 4]; /* the text vocabulary, "10,32,33,..." */
} meta;

static void put(meta *mt, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put(meta *mt, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mt->buf[mt->n], META_LEN, fmt, ap);
    va_end(ap);
    mt->keys[mt->n] = key;
    mt->values[mt->n] = mt->buf[mt->n];
    mt->n++;
}

static void put_model(meta *mt, const tg_gpt_config *c)
{
    put(mt, "vocab", "%d", c->vocab);
    put(mt, "ctx", "%d", c->ctx);
    put(mt, "layers", "%d", c->layers);
    put(mt, "heads", "%d", c->heads);
    put(mt, "dim", "%d", c->dim);
    put(mt, "norm", "%s", norm_name(c->norm));
    put(mt, "residual_scale", "%.9g", (double)c->residual_scale);
}

static void vocab_string(const dataset *d, char *out, size_t len)
{
    size_t k = 0;
    out[0] = '\0';
    for (int i = 0; i < d->vocab && k < len; i++)
        k += (size_t)snprintf(out + k, len - k, i ? ",%d" : "%d", d->chars[i]);
}

static void put_run(meta *mt, const options *o, const dataset *d, const train_state *s, long optim_steps)
{
    put(mt, "format", FORMAT);
    put(mt, "batch", "%d", o->batch);
    put(mt, "steps", "%d", o->steps);
    put(mt, "lr", "%.9g", (double)o->lr);
    put(mt, "min_lr", "%.9g", (double)o->min_lr);
    put(mt, "warmup", "%d", o->warmup);
    put(mt, "weight_decay", "%.9g", (double)o->weight_decay);
    put(mt, "beta2", "%.9g", (double)o->beta2);
    put(mt, "clip", "%.9g", (double)o->clip);
    put(mt, "seed", "%llu", o->seed);
    put(mt, "bias", "%d", !o->no_bias);
    put(mt, "step", "%ld", s->step);
    put(mt, "optim_steps", "%ld", optim_steps);
    put(mt, "rng", "%08" PRIx32 "%08" PRIx32 "%08" PRIx32 "%08" PRIx32, s->rng.s[0], s->rng.s[1], s->rng.s[2],
        s->rng.s[3]);
    put(mt, "task", "%s", d->is_sort ? "sort" : "text");
    if (!d->is_sort) {
        vocab_string(d, mt->chars, sizeof mt->chars);
        mt->keys[mt->n] = "chars";
        mt->values[mt->n++] = mt->chars;
    }
}

static tg_st_tensor f32(const char *name, const tg_tensor *t, const float *data)
{
    tg_st_tensor s = {.name = name, .dtype = TG_F32, .ndim = t->ndim, .data = data};
    memcpy(s.shape, t->shape, sizeof s.shape);
    return s;
}

/* "prefix<name>" for each parameter, in one allocation. */
static char *prefixed_names(const tg_gpt *m, const char *prefix, const char **names)
{
    size_t stride = strlen(prefix) + sizeof m->params[0]->name;
    char *buf = malloc((size_t)m->n_params * stride);
    for (int i = 0; buf && i < m->n_params; i++) {
        names[i] = buf + (size_t)i * stride;
        snprintf(buf + (size_t)i * stride, stride, "%s%s", prefix, m->params[i]->name);
    }
    return buf;
}

bool ckpt_save(const char *path, const tg_gpt *m, tg_adamw *opt, const options *o, const dataset *d,
               const train_state *s, char *err, size_t errlen)
{
    int n = m->n_params;
    tg_st_tensor *t = malloc(3 * (size_t)n * sizeof *t);
    const char **names = malloc(2 * (size_t)n * sizeof *names);
    char *mbuf = names ? prefixed_names(m, "optim.m.", names) : NULL;
    char *vbuf = names ? prefixed_names(m, "optim.v.", names + n) : NULL;
    meta *mt = calloc(1, sizeof *mt);
    bool ok = t && names && mbuf && vbuf && mt;
    if (!ok)
        snprintf(err, errlen, "%s: out of memory", path);
    for (int i = 0; ok && i < n; i++) {
        t[i] = f32(m->params[i]->name, m->params[i], m->params[i]->data);
        t[n + i] = f32(names[i], m->params[i], tg_adamw_m(opt, i));
        t[2 * n + i] = f32(names[n + i], m->params[i], tg_adamw_v(opt, i));
    }
    if (ok) {
        put_model(mt, &m->cfg);
        put_run(mt, o, d, s, tg_adamw_steps(opt));
        ok = tg_safetensors_write(path, t, 3 * n, mt->keys, mt->values, mt->n, err, errlen) == TG_OK;
    }
    free(t);
    free(names);
    free(mbuf);
    free(vbuf);
    free(mt);
    return ok;
}

/* ---- reading -------------------------------------------------------------- */

static bool fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    int k = snprintf(err, errlen, "checkpoint %s: ", path);
    va_list ap;
    va_start(ap, fmt);
    if (k >= 0 && (size_t)k < errlen)
        vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
    va_end(ap);
    return false;
}

/* A metadata value as a number; false (with a message) if absent or not one. */
static bool meta_num(const tg_st_file *f, const char *path, const char *key, double *out, char *err, size_t errlen)
{
    const char *v = tg_safetensors_meta(f, key);
    char *end;
    if (!v)
        return fail(err, errlen, path, "no '%s' in its metadata", key);
    errno = 0;
    *out = strtod(v, &end);
    if (end == v || *end || errno)
        return fail(err, errlen, path, "metadata '%s' is '%s', not a number", key, v);
    return true;
}

/* What the file says for each setting that must stay fixed across a resume:
 * taken when the flag was not given, an error when it was and differs. */
typedef struct setting {
    const char *key, *flag;
    size_t off;
    bool is_int;
} setting;

static const setting settings[] = {
    {"layers", "--layers", offsetof(options, layers), true},
    {"heads", "--heads", offsetof(options, heads), true},
    {"dim", "--dim", offsetof(options, dim), true},
    {"ctx", "--ctx", offsetof(options, ctx), true},
    {"batch", "--batch", offsetof(options, batch), true},
    {"warmup", "--warmup", offsetof(options, warmup), true},
    {"lr", "--lr", offsetof(options, lr), false},
    {"min_lr", "--min-lr", offsetof(options, min_lr), false},
    {"weight_decay", "--weight-decay", offsetof(options, weight_decay), false},
    {"beta2", "--beta2", offsetof(options, beta2), false},
    {"clip", "--clip", offsetof(options, clip), false},
};

static bool take_setting(const tg_st_file *f, const char *path, const setting *s, options *o, char *err,
                         size_t errlen)
{
    double v;
    if (!meta_num(f, path, s->key, &v, err, errlen))
        return false;
    void *field = (char *)o + s->off;
    double mine = s->is_int ? *(int *)field : (double)*(float *)field;
    if (given(o, s->flag) && (float)mine != (float)v)
        return fail(err, errlen, path, "it was trained with %s %g, the command line says %g; drop the flag",
                    s->flag, v, mine);
    if (s->is_int)
        *(int *)field = (int)v;
    else
        *(float *)field = (float)v;
    return true;
}

static bool take_run(const tg_st_file *f, const char *path, options *o, char *err, size_t errlen)
{
    const char *task = tg_safetensors_meta(f, "task"), *norm = tg_safetensors_meta(f, "norm");
    double v;
    if (!task || strcmp(task, o->data ? "text" : "sort"))
        return fail(err, errlen, path, "it is for the %s task, this run is for %s", task ? task : "(unknown)",
                    o->data ? "--data" : "the sort task");
    tg_norm_place n;
    if (!norm_parse(norm, &n))
        return fail(err, errlen, path, "metadata 'norm' is not pre, post, deepnorm or rezero");
    if (given(o, "--norm") && n != o->norm)
        return fail(err, errlen, path, "it was trained with --norm %s", norm);
    o->norm = n;
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (!take_setting(f, path, &settings[i], o, err, errlen))
            return false;
    if (!given(o, "--steps")) {
        if (!meta_num(f, path, "steps", &v, err, errlen))
            return false;
        o->steps = (int)v;
    }
    if (!meta_num(f, path, "seed", &v, err, errlen))
        return false;
    o->seed = (unsigned long long)v;
    if (!meta_num(f, path, "bias", &v, err, errlen))
        return false;
    if (given(o, "--no-bias") && v != 0)
        return fail(err, errlen, path, "it was trained with biases; drop --no-bias");
    o->no_bias = v == 0;
    return true;
}

bool ckpt_peek(const char *path, options *o, char *err, size_t errlen)
{
    char msg[256];
    tg_st_file *f = tg_safetensors_read(path, msg, sizeof msg);
    if (!f) {
        snprintf(err, errlen, "%s", msg);
        return false;
    }
    const char *fmt = tg_safetensors_meta(f, "format");
    bool ok = fmt && !strcmp(fmt, FORMAT) ? take_run(f, path, o, err, errlen)
                                          : fail(err, errlen, path, "not a train_gpt checkpoint (no format " FORMAT ")");
    tg_safetensors_close(f);
    return ok;
}

/* Copies tensor name of the file into dst after checking its type and shape. */
static bool load_tensor(const tg_st_file *f, const char *path, const char *name, const tg_tensor *like, float *dst,
                        char *err, size_t errlen)
{
    const tg_st_tensor *s = tg_safetensors_find(f, name);
    if (!s)
        return fail(err, errlen, path, "no tensor '%s'", name);
    bool same = s->dtype == TG_F32 && s->ndim == like->ndim;
    for (int k = 0; same && k < s->ndim; k++)
        same = s->shape[k] == like->shape[k];
    if (!same) {
        char want[64];
        return fail(err, errlen, path, "tensor '%s' is not F32 %s", name, tg_shape_str(like, want, sizeof want));
    }
    memcpy(dst, s->data, like->size * sizeof *dst);
    return true;
}

static bool parse_rng(const char *v, tg_rng *r)
{
    if (!v || strlen(v) != 32)
        return false;
    for (int i = 0; i < 4; i++) {
        char part[9], *end;
        memcpy(part, v + 8 * i, 8);
        part[8] = '\0';
        r->s[i] = (uint32_t)strtoul(part, &end, 16);
        if (*end)
            return false;
    }
    return r->s[0] | r->s[1] | r->s[2] | r->s[3];
}

static bool load_progress(const tg_st_file *f, const char *path, tg_adamw *opt, const dataset *d, train_state *s,
                          char *err, size_t errlen)
{
    double step, optim_steps, vocab;
    if (!meta_num(f, path, "step", &step, err, errlen) || !meta_num(f, path, "optim_steps", &optim_steps, err, errlen) ||
        !meta_num(f, path, "vocab", &vocab, err, errlen))
        return false;
    if ((int)vocab != d->vocab)
        return fail(err, errlen, path, "its vocabulary has %g symbols, the data has %d", vocab, d->vocab);
    if (!d->is_sort) {
        char mine[256 * 4];
        const char *chars = tg_safetensors_meta(f, "chars");
        vocab_string(d, mine, sizeof mine);
        if (!chars || strcmp(chars, mine))
            return fail(err, errlen, path, "its vocabulary differs from the characters of the data file");
    }
    if (!parse_rng(tg_safetensors_meta(f, "rng"), &s->rng))
        return fail(err, errlen, path, "metadata 'rng' is not a generator state");
    if (step < 0 || optim_steps < 0)
        return fail(err, errlen, path, "negative step count");
    s->step = (long)step;
    tg_adamw_set_steps(opt, (long)optim_steps);
    return true;
}

bool ckpt_load(const char *path, tg_gpt *m, tg_adamw *opt, const dataset *d, train_state *s, char *err,
               size_t errlen)
{
    char msg[256], name[96];
    tg_st_file *f = tg_safetensors_read(path, msg, sizeof msg);
    if (!f) {
        snprintf(err, errlen, "%s", msg);
        return false;
    }
    bool ok = load_progress(f, path, opt, d, s, err, errlen);
    for (int i = 0; ok && i < m->n_params; i++) {
        tg_tensor *p = m->params[i];
        ok = load_tensor(f, path, p->name, p, p->data, err, errlen);
        snprintf(name, sizeof name, "optim.m.%s", p->name);
        ok = ok && load_tensor(f, path, name, p, tg_adamw_m(opt, i), err, errlen);
        snprintf(name, sizeof name, "optim.v.%s", p->name);
        ok = ok && load_tensor(f, path, name, p, tg_adamw_v(opt, i), err, errlen);
    }
    tg_safetensors_close(f);
    return ok;
}

bool dump_grads(const char *path, const tg_gpt *m, const int *ids, const int *targets, int batch, int ctx,
                float loss, char *err, size_t errlen)
{
    int n = m->n_params;
    tg_st_tensor *t = malloc((2 * (size_t)n + 3) * sizeof *t);
    const char **names = malloc((size_t)n * sizeof *names);
    char *gbuf = names ? prefixed_names(m, "grad.", names) : NULL;
    meta mt = {0};
    bool ok = t && names && gbuf;
    if (!ok)
        snprintf(err, errlen, "%s: out of memory", path);
    for (int i = 0; ok && i < n; i++) {
        t[i] = f32(m->params[i]->name, m->params[i], m->params[i]->data);
        t[n + i] = f32(names[i], m->params[i], m->params[i]->grad);
    }
    if (ok) {
        t[2 * n] = (tg_st_tensor){"batch.ids", TG_I32, 2, {batch, ctx}, ids};
        t[2 * n + 1] = (tg_st_tensor){"batch.targets", TG_I32, 2, {batch, ctx}, targets};
        t[2 * n + 2] = (tg_st_tensor){"loss", TG_F32, 1, {1}, &loss};
        put_model(&mt, &m->cfg);
        ok = tg_safetensors_write(path, t, 2 * n + 3, mt.keys, mt.values, mt.n, err, errlen) == TG_OK;
    }
    free(t);
    free(names);
    free(gbuf);
    return ok;
}
