/* libFuzzer target for the checkpoint loader (meson -Dfuzz=true, clang).
 *
 * Each input is written to an in-memory file (memfd) and loaded by path
 * through the code a program's --resume runs, in two passes:
 *  - the safetensors reader alone (header length, JSON, dtypes, shapes, byte
 *    ranges): every tensor and metadata value it hands out is read whole, so
 *    a range it let through outside its buffer is an AddressSanitizer
 *    finding;
 *  - the checkpoint loader (tg_checkpoint_open: metadata numbers, the
 *    configuration and every tensor's shape), then the model and the AdamW
 *    state built from it, the numbers a program reads, and one training
 *    step of the loaded model on a small batch.
 * Whatever is refused must come with a message. Any crash, sanitizer
 * report, leak, hang or refusal without a message is a finding. */
#define _GNU_SOURCE
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tapegrad.h"

/* Where the bytes read go, so the reads are not optimised away. */
volatile unsigned fuzz_sink;

/* The keys train_gpt writes, looked up as a loader would. */
static const char *const meta_keys[] = {"vocab", "ctx", "layers", "heads", "dim", "norm", "step", "seed", "lr",
                                        "chars", "rng", "format", "task"};

static int input_file(const uint8_t *data, size_t size, char *path, size_t len)
{
    static int fd = -1;
    if (fd < 0 && (fd = memfd_create("fuzz_checkpoint", 0)) < 0)
        abort();
    if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size))
        abort();
    snprintf(path, len, "/proc/self/fd/%d", fd);
    return fd;
}

/* Reads every byte the reader claims a tensor holds. */
static unsigned tensor_checksum(const tg_st_tensor *t)
{
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    const unsigned char *p = t->data;
    unsigned sum = 0;
    for (size_t i = 0; i < n * 4; i++)
        sum += p[i];
    return sum;
}

/* The safetensors layer alone; returns whether the file parsed. */
static bool read_safetensors(const char *path)
{
    char err[512] = "";
    tg_st_file *f = tg_safetensors_read(path, err, sizeof err);
    if (!f) {
        if (!err[0])
            abort(); /* refused without a message */
        return false;
    }
    unsigned sink = 0;
    for (int i = 0; i < tg_safetensors_count(f); i++) {
        const tg_st_tensor *t = tg_safetensors_at(f, i);
        if (!t || t->ndim < 0 || t->ndim > TG_MAX_DIMS || tg_safetensors_find(f, t->name) != t)
            abort();
        sink += tensor_checksum(t);
    }
    for (size_t k = 0; k < sizeof meta_keys / sizeof *meta_keys; k++) {
        const char *v = tg_safetensors_meta(f, meta_keys[k]);
        sink += v ? (unsigned)strlen(v) : 0;
    }
    fuzz_sink = sink;
    tg_safetensors_close(f);
    return true;
}

/* A refusal must say why, in err and in tg_last_error(). */
static void check_refusal(const char *err)
{
    if (!err[0] || !tg_last_error()[0])
        abort();
}

/* One forward and backward pass and an AdamW step of the loaded model on a
 * batch of two sequences of up to 4 tokens: whatever the weights, the tape
 * either succeeds or fails with a message. */
static void train_step(tg_gpt *m, tg_adamw *opt)
{
    int len = m->cfg.ctx < 4 ? m->cfg.ctx : 4, ids[8], targets[8];
    for (int i = 0; i < 2 * len; i++) {
        ids[i] = (7 * i + 3) % m->cfg.vocab;
        targets[i] = (5 * i + 1) % m->cfg.vocab;
    }
    tg_tape *t = tg_tape_new(0);
    if (!t)
        abort();
    tg_zero_grad(m->params, m->n_params);
    tg_status s = tg_backward(t, tg_gpt_loss(t, m, ids, targets, 2, len));
    if (s != TG_OK && !tg_tape_error(t)[0])
        abort();
    if (s == TG_OK) {
        float norm = tg_clip_grad_norm(m->params, m->n_params, 1.0f);
        if (isfinite(norm) && tg_adamw_step(opt, 1e-3f) != TG_OK)
            abort();
    }
    tg_tape_free(t);
}

static void load_checkpoint(const char *path)
{
    char err[512] = "";
    tg_checkpoint *c = tg_checkpoint_open(path, err, sizeof err);
    if (!c) {
        check_refusal(err);
        return;
    }
    const tg_gpt_config *cfg = tg_checkpoint_config(c);
    if (!cfg || tg_gpt_config_check(cfg, NULL, 0) != TG_OK)
        abort(); /* open accepted a configuration the model would refuse */
    long long step;
    uint64_t seed;
    float lr;
    err[0] = '\0';
    if (tg_checkpoint_meta_int(c, "step", 0, LLONG_MAX, &step, err, sizeof err) != TG_OK)
        check_refusal(err);
    err[0] = '\0';
    if (tg_checkpoint_meta_u64(c, "seed", &seed, err, sizeof err) != TG_OK)
        check_refusal(err);
    err[0] = '\0';
    if (tg_checkpoint_meta_float(c, "lr", 0.0, 10.0, &lr, err, sizeof err) != TG_OK)
        check_refusal(err);
    err[0] = '\0';
    tg_gpt *m = tg_checkpoint_model(c, err, sizeof err);
    if (!m) {
        check_refusal(err);
        tg_checkpoint_close(c);
        return;
    }
    tg_adamw *opt = tg_adamw_new(m->params, m->n_params, 0.9f, 0.99f, 1e-8f, 0.1f);
    if (!opt)
        abort();
    err[0] = '\0';
    tg_status s = tg_checkpoint_optimizer(c, m, opt, err, sizeof err);
    if (s != TG_OK && tg_checkpoint_has_optimizer(c))
        check_refusal(err);
    train_step(m, opt);
    tg_adamw_free(opt);
    tg_gpt_free(m);
    tg_checkpoint_close(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    input_file(data, size, path, sizeof path);
    if (read_safetensors(path))
        load_checkpoint(path);
    return 0;
}
