/* residual_study: shared options, models, data and output helpers. */
#ifndef RESIDUAL_STUDY_H
#define RESIDUAL_STUDY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tapegrad.h"

#define STUDY_VOCAB 16
#define STUDY_MAX_DEPTHS 16
#define STUDY_MAX_LAYERS 64 /* --depth's upper bound */

typedef enum variant { V_PRE, V_POST, V_DEEPNORM, V_REZERO, N_VARIANTS } variant;
extern const char *const variant_names[N_VARIANTS]; /* "Pre-LN", ... */
extern const char *const variant_keys[N_VARIANTS];  /* "pre", ... (flags, CSV) */

typedef enum init_kind { INIT_XAVIER, INIT_GPT2 } init_kind;

/* Every flag; a value of -1 (or NULL) means "the subcommand's default". */
typedef struct study_opts {
    const char *cmd, *out;
    int depth, dim, heads, seeds, batches, steps, batch, digits, warmup, log_every, threads;
    float lr, sgd_lr, eps;
    init_kind init;
    tg_norm_type normtype;
    bool variants[N_VARIANTS];
    bool variants_given;
} study_opts;

/* One batch of the sort task: `digits` random symbols then the same sorted;
 * inputs are the sequence but its last symbol, targets the next symbol on
 * the sorted half and -1 (ignored) before it. */
typedef struct batch {
    int *ids, *targets;
    int b, t;
} batch;

bool batch_new(batch *bt, const study_opts *o);
void batch_free(batch *bt);
void batch_fill(batch *bt, tg_rng *r);

/* "xavier init" or "gpt2 init", with ", RMSNorm" after it for that norm
 * type, for titles and table headers. */
const char *setup_name(const study_opts *o);
/* A model of the variant and depth with the chosen init (see study.c);
 * NULL with a message on stderr. */
tg_gpt *study_model(const study_opts *o, variant v, int layers, uint64_t seed);
/* Forward on a reset tape, and backward after zeroing the gradients when
 * asked; false with a message on stderr when the tape fails. */
bool run_batch(tg_tape *t, tg_gpt *m, const batch *bt, bool backward, float *loss);
/* The depths 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64 up to max; returns how many. */
int depth_list(int max, int *out);
/* The name of the residual stream leaving block `layer` (-1: entering block 0). */
const char *stream_name(variant v, int layer, char *buf, size_t len);

/* The tape's gradient report, in a buffer that grows as needed. */
typedef struct report {
    tg_grad_stat *rows;
    int n, cap;
} report;
bool report_take(report *r, const tg_tape *t);
void report_free(report *r);
/* Adds, for l < layers, into weights[l + 1] the norm of the gradient of block
 * l's four weight matrices together (attn.c_attn, attn.c_proj, mlp.c_fc,
 * mlp.c_proj) and into stream[l + 1] the norm of the gradient of the stream
 * leaving block l; stream[0] gets the embedding's. */
void report_layers(const report *r, variant v, int layers, double *weights, double *stream);
/* "<prefix><l>.<rest>": returns l and points rest past the dot; -1 when the
 * name has another form. */
int name_layer(const char *name, const char *prefix, const char **rest);

/* <out>/<name>, opened for writing under a temporary name: finish with
 * out_close, which renames it into place. NULL with a message on stderr. */
typedef struct out_file {
    FILE *f;
    char path[1024], tmp[1040];
} out_file;
bool out_open(out_file *of, const study_opts *o, const char *name);
bool out_close(out_file *of);
bool out_path(const study_opts *o, const char *name, char *buf, size_t len);
/* The plot as <out>/<name>, and a line saying so. */
bool write_svg(const study_opts *o, const char *name, const tg_svg_plot *p);

int cmd_profile(const study_opts *o);
int cmd_depth(const study_opts *o);
int cmd_stream(const study_opts *o);
int cmd_perturb(const study_opts *o);
int cmd_warmup(const study_opts *o);
int cmd_train(const study_opts *o);

#endif
