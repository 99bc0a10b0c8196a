/* libFuzzer target for the checkpoint loader (meson -Dfuzz=true, clang).
 *
 * Each input is written to an in-memory file (memfd) and read back by path
 * through the same code a program's --resume runs: the safetensors reader
 * (header length, JSON, dtypes, shapes, byte ranges), then every tensor and
 * metadata value it hands out is read whole, so a range the reader let
 * through that is not inside its buffer is an AddressSanitizer finding.
 * A file the reader refuses must come with a message. Any crash, sanitizer
 * report, leak or hang is a finding; nothing else is. */
#define _GNU_SOURCE
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], err[512] = "";
    input_file(data, size, path, sizeof path);
    tg_st_file *f = tg_safetensors_read(path, err, sizeof err);
    if (!f) {
        if (!err[0])
            abort(); /* refused without a message */
        return 0;
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
    return 0;
}
