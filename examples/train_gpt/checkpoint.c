/* train_gpt's checkpoints and gradient dumps, on the library's files.
 *
 * tg_gpt_save writes the parameters, AdamW's moments, the model
 * configuration and optim_steps; train_gpt adds its own metadata (strings):
 * format, the run's settings (batch steps lr min_lr warmup weight_decay
 * beta2 clip seed bias), the progress (step; rng: the batch sampler's
 * state; dropout_rng: dropout's, with --dropout), the data (task "sort", "text" or "tokens"; for text, chars: the
 * vocabulary as byte values). Floats are written with 9 significant digits,
 * which round-trips a float. Reading, every stored setting goes through
 * setting_parse, the parser of the flags, so a value in a file is checked
 * exactly as the flag would be. */
#include "train_gpt.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
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

static void put_run(meta *mt, const options *o, const dataset *d, const train_state *s)
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
    put(mt, "rng", "%08" PRIx32 "%08" PRIx32 "%08" PRIx32 "%08" PRIx32, s->rng.s[0], s->rng.s[1], s->rng.s[2],
        s->rng.s[3]);
    if (o->dropout > 0)
        put(mt, "dropout_rng", "%08" PRIx32 "%08" PRIx32 "%08" PRIx32 "%08" PRIx32, s->drop_rng.s[0],
            s->drop_rng.s[1], s->drop_rng.s[2], s->drop_rng.s[3]);
    if (isfinite(s->best_val))
        put(mt, "best_val", "%.9g", (double)s->best_val);
    put(mt, "task", "%s", task_name(d->kind));
    if (d->kind == TASK_TEXT) {
        tg_byte_vocab_format(&d->chars, mt->chars, sizeof mt->chars);
        mt->keys[mt->n] = "chars";
        mt->values[mt->n++] = mt->chars;
    }
}

bool ckpt_save(const char *path, const tg_gpt *m, const tg_adamw *opt, const options *o, const dataset *d,
               const train_state *s, char *err, size_t errlen)
{
    meta *mt = calloc(1, sizeof *mt);
    if (!mt) {
        snprintf(err, errlen, "%s: out of memory", path);
        return false;
    }
    put_run(mt, o, d, s);
    bool ok = tg_gpt_save(path, m, opt, mt->keys, mt->values, mt->n, err, errlen) == TG_OK;
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

/* One stored setting into o: parsed as its flag would be; a flag the user
 * gave must agree with it, except --steps, which may extend the run. */
static bool take_setting(const tg_checkpoint *c, const char *path, const char *key, options *o, char *err,
                         size_t errlen)
{
    const char *v = tg_checkpoint_meta(c, key), *flag = setting_flag(key);
    /* The LLaMA-style options are absent from files older than them, which
     * hold GPT-2 blocks (the library reads them the same way). */
    static const char *const optional[][2] = {{"normtype", "layernorm"}, {"mlp", "gelu"}, {"pos", "learned"},
                                              {"dropout", "0"}};
    for (size_t i = 0; !v && i < sizeof optional / sizeof optional[0]; i++)
        if (!strcmp(key, optional[i][0]))
            v = optional[i][1];
    char why[96];
    options file = *o;
    if (!v)
        return fail(err, errlen, path, "no metadata '%s'", key);
    if (!setting_parse(key, v, &file, why, sizeof why))
        return fail(err, errlen, path, "metadata '%s' is '%s', expected %s (as for %s)", key, v, why, flag);
    if (given(o, flag) && strcmp(key, "steps") && !setting_equal(key, o, &file)) {
        if (!strcmp(key, "bias"))
            return fail(err, errlen, path, "it was trained with biases; drop --no-bias");
        return fail(err, errlen, path, "it was trained with %s %s; drop the flag", flag, v);
    }
    if (strcmp(key, "steps") || !given(o, flag))
        *o = file; /* o with this one setting taken from the file */
    return true;
}

tg_checkpoint *ckpt_open(const char *path, options *o, char *err, size_t errlen)
{
    tg_checkpoint *c = tg_checkpoint_open(path, err, errlen);
    if (!c)
        return NULL;
    const char *fmt = tg_checkpoint_meta(c, "format"), *task = tg_checkpoint_meta(c, "task");
    const char *want = o->data ? "text" : o->train_bin ? "tokens" : "sort";
    bool ok = fmt && !strcmp(fmt, FORMAT);
    if (!ok)
        fail(err, errlen, path, "not a train_gpt checkpoint (no format " FORMAT ")");
    else if (!(ok = tg_checkpoint_has_optimizer(c)))
        fail(err, errlen, path, "it holds no optimizer state, so training cannot resume from it");
    else if (!(ok = task && !strcmp(task, want)))
        fail(err, errlen, path, "it is for the %s task, this run is for %s", task ? task : "(unknown)",
             o->data ? "--data" : o->train_bin ? "--train-bin" : "the sort task");
    for (int i = 0; ok && setting_keys[i]; i++)
        ok = take_setting(c, path, setting_keys[i], o, err, errlen);
    const char *bad = ok ? check_run(o) : NULL;
    if (bad)
        ok = fail(err, errlen, path, "%s", bad);
    if (!ok) {
        tg_checkpoint_close(c);
        return NULL;
    }
    return c;
}

static bool parse_rng(const char *v, tg_rng *r)
{
    if (!v || strlen(v) != 32)
        return false;
    for (int i = 0; i < 32; i++)
        if (!strchr("0123456789abcdef", v[i]))
            return false;
    for (int i = 0; i < 4; i++) {
        char part[9];
        memcpy(part, v + 8 * i, 8);
        part[8] = '\0';
        r->s[i] = (uint32_t)strtoul(part, NULL, 16);
    }
    return r->s[0] | r->s[1] | r->s[2] | r->s[3];
}

/* A key older checkpoints lack (*out keeps its value then); when present,
 * a finite number in [lo, hi]. */
static bool optional_float(const tg_checkpoint *c, const char *path, const char *key, double lo, double hi,
                           double *out, char *err, size_t errlen)
{
    const char *v = tg_checkpoint_meta(c, key);
    float f;
    if (!v)
        return true;
    if (!tg_parse_float(v, lo, hi, &f))
        return fail(err, errlen, path, "metadata '%s' is '%s', expected a finite number from %g to %g", key, v, lo,
                    hi);
    *out = f;
    return true;
}

/* The data the checkpoint was trained on is the data of this run. */
static bool data_fits(const tg_checkpoint *c, const char *path, const dataset *d, char *err, size_t errlen)
{
    int vocab = tg_checkpoint_config(c)->vocab;
    if (d->kind == TASK_TEXT) {
        tg_byte_vocab chars;
        char why[160];
        const char *v = tg_checkpoint_meta(c, "chars");
        if (!v)
            return fail(err, errlen, path, "no metadata 'chars'");
        if (tg_byte_vocab_parse(v, &chars, why, sizeof why) != TG_OK)
            return fail(err, errlen, path, "metadata 'chars': %s", why);
        if (chars.size != vocab)
            return fail(err, errlen, path, "metadata 'chars' has %d bytes, 'vocab' says %d", chars.size, vocab);
        if (chars.size != d->chars.size || memcmp(chars.bytes, d->chars.bytes, (size_t)chars.size))
            return fail(err, errlen, path, "its vocabulary differs from the characters of the data file");
    }
    if (vocab != d->vocab)
        return fail(err, errlen, path, "its vocabulary has %d symbols, the data has %d", vocab, d->vocab);
    return true;
}

bool ckpt_fits(const tg_checkpoint *c, const options *o, const dataset *d, train_state *s, char *err,
               size_t errlen)
{
    const char *path = o->resume, *step = tg_checkpoint_meta(c, "step");
    long long v;
    if (!data_fits(c, path, d, err, errlen))
        return false;
    if (!step)
        return fail(err, errlen, path, "no metadata 'step'");
    if (!tg_parse_int(step, 0, o->steps, &v))
        return fail(err, errlen, path, "metadata 'step' is '%s', expected an integer from 0 to %d (--steps)", step,
                    o->steps);
    s->step = (long)v;
    if (!parse_rng(tg_checkpoint_meta(c, "rng"), &s->rng))
        return fail(err, errlen, path, "metadata 'rng' is not a generator state (32 lowercase hex digits, not all 0)");
    double best = INFINITY;
    if (!optional_float(c, path, "best_val", 0.0, 1e30, &best, err, errlen))
        return false;
    s->best_val = (float)best;
    if (o->dropout > 0 && !parse_rng(tg_checkpoint_meta(c, "dropout_rng"), &s->drop_rng))
        return fail(err, errlen, path, "metadata 'dropout_rng' is not a generator state (32 lowercase hex digits, "
                    "not all 0)");
    return true;
}

bool dump_grads(const char *path, const tg_gpt *m, const int *ids, const int *targets, int batch, int ctx,
                float loss, char *err, size_t errlen)
{
    int n = m->n_params;
    tg_st_tensor *t = malloc((2 * (size_t)n + 3) * sizeof *t);
    char(*names)[96] = malloc((size_t)n * sizeof *names);
    static const char *const keys[] = {"vocab", "ctx", "layers", "heads", "dim", "norm", "residual_scale",
                                       "normtype", "mlp", "pos", "dropout"};
    enum { N_KEYS = sizeof keys / sizeof keys[0] };
    char vals[N_KEYS][32];
    const char *values[N_KEYS];
    const tg_gpt_config *c = &m->cfg;
    bool ok = t && names;
    if (!ok)
        snprintf(err, errlen, "%s: out of memory", path);
    for (int i = 0; ok && i < n; i++) {
        const tg_tensor *p = m->params[i];
        snprintf(names[i], sizeof names[i], "grad.%s", p->name);
        t[i] = (tg_st_tensor){p->name, TG_F32, p->ndim, {0}, p->data};
        t[n + i] = (tg_st_tensor){names[i], TG_F32, p->ndim, {0}, p->grad};
        memcpy(t[i].shape, p->shape, sizeof t[i].shape);
        memcpy(t[n + i].shape, p->shape, sizeof t[i].shape);
    }
    if (ok) {
        t[2 * n] = (tg_st_tensor){"batch.ids", TG_I32, 2, {batch, ctx}, ids};
        t[2 * n + 1] = (tg_st_tensor){"batch.targets", TG_I32, 2, {batch, ctx}, targets};
        t[2 * n + 2] = (tg_st_tensor){"loss", TG_F32, 1, {1}, &loss};
        const int ints[5] = {c->vocab, c->ctx, c->layers, c->heads, c->dim};
        for (int k = 0; k < 5; k++)
            snprintf(vals[k], sizeof vals[k], "%d", ints[k]);
        snprintf(vals[5], sizeof vals[5], "%s", tg_norm_name(c->norm));
        snprintf(vals[6], sizeof vals[6], "%.9g", (double)c->residual_scale);
        snprintf(vals[7], sizeof vals[7], "%s", tg_normtype_name(c->normtype));
        snprintf(vals[8], sizeof vals[8], "%s", tg_mlp_name(c->mlp));
        snprintf(vals[9], sizeof vals[9], "%s", tg_pos_name(c->pos));
        snprintf(vals[10], sizeof vals[10], "%.9g", (double)c->dropout);
        for (int k = 0; k < N_KEYS; k++)
            values[k] = vals[k];
        ok = tg_safetensors_write(path, t, 2 * n + 3, keys, values, N_KEYS, err, errlen) == TG_OK;
    }
    free(t);
    free(names);
    return ok;
}
