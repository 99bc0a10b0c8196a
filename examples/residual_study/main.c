/* residual_study: how gradients travel through x + Sublayer(x) and
 * LayerNorm, for Pre-LN, Post-LN, DeepNorm and ReZero GPTs. One subcommand
 * per experiment; each prints a table and writes a CSV and an SVG plot. */
#include "study.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: residual_study COMMAND [flags]\n"
    "\n"
    "commands (each prints a table and writes COMMAND*.csv and COMMAND*.svg into --out):\n"
    "  profile  gradient norm of each layer's weights and of the residual stream at\n"
    "           init, averaged over seeds and batches, for every variant at --depth\n"
    "  depth    norm of the last layer's mlp.c_proj weight gradient at init as depth\n"
    "           grows to --depth (Xiong et al. 2020, Theorem 1)\n"
    "  stream   squared norm of the Pre-LN residual stream per layer at init against\n"
    "           (1 + l/2) d and (1 + 3l/2) d (Xiong et al. 2020, Lemma 2)\n"
    "  perturb  output change for a small random perturbation of every block weight\n"
    "           (Liu et al. 2020) and after one Adam step (Wang et al. 2022), by depth\n"
    "  warmup   loss curves of a --depth model at a high --lr, with and without\n"
    "           warm-up, Post-LN against Pre-LN\n"
    "  train    the gradient norm of each layer's weights and stream, as profile,\n"
    "           logged every --log-every steps while a --depth model trains\n"
    "\n"
    "flags (defaults in brackets: profile / depth / stream / perturb / warmup / train):\n"
    "  --depth N      layers, or the largest depth of a sweep [24/48/24/48/6/8]\n"
    "  --dim N        model width [64]          --heads N   attention heads [4]\n"
    "  --seeds N      models averaged [8/8/8/6/2/4]\n"
    "  --batches N    batches per model (train: held-out, per log) [4/4/4/2/-/2]\n"
    "  --batch N      sequences per batch [8, warmup and train 16]\n"
    "  --digits N     sort-task length: N symbols, then the same sorted [8]\n"
    "  --steps N      training steps (warmup, train) [500 / 300]\n"
    "  --warmup N     warm-up steps (warmup: of the warmed runs; train) [100 / 30]\n"
    "  --log-every N  steps between logged profiles (train) [50]\n"
    "  --lr X         Adam learning rate (perturb, warmup, train) [1e-4 / 2e-3 / 1e-3]\n"
    "  --sgd-lr X     rate of the one SGD step (perturb) [0.01]\n"
    "  --eps X        relative size of the random perturbation (perturb) [0.01]\n"
    "  --init NAME    xavier (the papers' setting) or gpt2 (tg_gpt_new's) [xavier]\n"
    "  --normtype N   layernorm or rmsnorm, for every norm in the model [layernorm]\n"
    "  --variants L   comma list of pre,post,deepnorm,rezero\n"
    "                 [all / pre,post,deepnorm / pre / all / pre,post / pre,post]\n"
    "  --threads N    threads; the products here are too small to gain [1]\n"
    "  --out DIR      output directory [residual_study_out]\n"
    "  --help         this text\n";

typedef struct command {
    const char *name;
    int (*run)(const study_opts *);
    int depth, seeds, batches, batch, steps, warmup;
    float lr;
    const char *variants;
} command;

static const command commands[] = {
    {"profile", cmd_profile, 24, 8, 4, 8, 500, 100, 1e-4f, "pre,post,deepnorm,rezero"},
    {"depth", cmd_depth, 48, 8, 4, 8, 500, 100, 1e-4f, "pre,post,deepnorm"},
    {"stream", cmd_stream, 24, 8, 4, 8, 500, 100, 1e-4f, "pre"},
    {"perturb", cmd_perturb, 48, 6, 2, 8, 500, 100, 1e-4f, "pre,post,deepnorm,rezero"},
    {"warmup", cmd_warmup, 6, 2, 1, 16, 500, 100, 2e-3f, "pre,post"},
    {"train", cmd_train, 8, 4, 2, 16, 300, 30, 1e-3f, "pre,post"},
};

/* A usage error: one line on stderr, exit status 2. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "residual_study: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see --help)\n");
    va_end(ap);
    return 2;
}

static bool parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_float(const char *s, float lo, float hi, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_variants(const char *s, study_opts *o)
{
    char buf[128];
    if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf)
        return false;
    memset(o->variants, 0, sizeof o->variants);
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int v = 0;
        while (v < N_VARIANTS && strcmp(tok, variant_keys[v]))
            v++;
        if (v == N_VARIANTS)
            return false;
        o->variants[v] = true;
        n++;
    }
    return n > 0;
}

/* One "--name value" pair; 0 when taken, 2 after a message otherwise. */
static int parse_flag(study_opts *o, const char *name, const char *val)
{
    const struct { const char *name; int *dst; int lo, hi; } ints[] = {
        {"--depth", &o->depth, 1, STUDY_MAX_LAYERS}, {"--dim", &o->dim, 2, 1024}, {"--heads", &o->heads, 1, 64},
        {"--seeds", &o->seeds, 1, 1000}, {"--batches", &o->batches, 1, 1000}, {"--batch", &o->batch, 1, 512},
        {"--digits", &o->digits, 2, 128}, {"--steps", &o->steps, 1, 1000000}, {"--warmup", &o->warmup, 0, 1000000},
        {"--log-every", &o->log_every, 1, 1000000}, {"--threads", &o->threads, 1, 256}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        if (strcmp(name, ints[i].name))
            continue;
        if (parse_int(val, ints[i].lo, ints[i].hi, ints[i].dst))
            return 0;
        return bad("%s must be an integer in [%d, %d], got '%s'", name, ints[i].lo, ints[i].hi, val);
    }
    if (!strcmp(name, "--lr"))
        return parse_float(val, 1e-9f, 10.0f, &o->lr) ? 0 : bad("--lr must be a number in (0, 10], got '%s'", val);
    if (!strcmp(name, "--sgd-lr"))
        return parse_float(val, 1e-9f, 1000.0f, &o->sgd_lr) ? 0 : bad("--sgd-lr must be a number in (0, 1000], got '%s'", val);
    if (!strcmp(name, "--eps"))
        return parse_float(val, 1e-9f, 1.0f, &o->eps) ? 0 : bad("--eps must be a number in (0, 1], got '%s'", val);
    if (!strcmp(name, "--variants")) {
        o->variants_given = true;
        return parse_variants(val, o) ? 0 : bad("--variants must list pre, post, deepnorm or rezero, got '%s'", val);
    }
    if (!strcmp(name, "--init")) {
        bool x = !strcmp(val, "xavier"), g = !strcmp(val, "gpt2");
        o->init = g ? INIT_GPT2 : INIT_XAVIER;
        return x || g ? 0 : bad("--init must be xavier or gpt2, got '%s'", val);
    }
    if (!strcmp(name, "--normtype")) {
        bool ln = !strcmp(val, "layernorm"), rms = !strcmp(val, "rmsnorm");
        o->normtype = rms ? TG_RMSNORM : TG_LAYERNORM;
        return ln || rms ? 0 : bad("--normtype must be layernorm or rmsnorm, got '%s'", val);
    }
    if (!strcmp(name, "--out")) {
        o->out = val;
        return *val ? 0 : bad("--out must not be empty");
    }
    return bad("unknown flag '%s'", name);
}

static void apply_defaults(study_opts *o, const command *c)
{
    int *fields[] = {&o->depth, &o->seeds, &o->batches, &o->dim, &o->heads, &o->batch, &o->digits,
                     &o->steps, &o->warmup, &o->log_every, &o->threads};
    int defaults[] = {c->depth, c->seeds, c->batches, 64, 4, c->batch, 8, c->steps, c->warmup, 50, 1};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if (*fields[i] < 0)
            *fields[i] = defaults[i];
    if (o->lr < 0)
        o->lr = c->lr;
    if (o->sgd_lr < 0)
        o->sgd_lr = 0.01f;
    if (o->eps < 0)
        o->eps = 0.01f;
    if (!o->out)
        o->out = "residual_study_out";
    if (!o->variants_given)
        parse_variants(c->variants, o);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        }
    if (argc < 2)
        return bad("missing COMMAND: profile, depth, stream, perturb, warmup or train");
    const command *c = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name))
            c = &commands[i];
    if (!c)
        return bad("unknown command '%s'", argv[1]);
    study_opts o = {.cmd = c->name, .depth = -1, .dim = -1, .heads = -1, .seeds = -1, .batches = -1,
                    .steps = -1, .batch = -1, .digits = -1, .warmup = -1, .log_every = -1, .threads = -1, .lr = -1, .sgd_lr = -1, .eps = -1};
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc)
            return bad("flag '%s' needs a value", argv[i]);
        if (parse_flag(&o, argv[i], argv[i + 1]))
            return 2;
    }
    apply_defaults(&o, c);
    if (o.dim % o.heads)
        return bad("--heads %d must divide --dim %d", o.heads, o.dim);
    if (o.warmup >= o.steps && (c->run == cmd_warmup || c->run == cmd_train))
        return bad("--warmup %d must be below --steps %d", o.warmup, o.steps);
    tg_set_threads(o.threads);
    return c->run(&o);
}
