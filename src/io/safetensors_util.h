/* Internal to src/io/safetensors_read.c and safetensors_write.c: the format,
 * and the constants and helpers the reader and the writer share.
 *
 * safetensors files (https://github.com/huggingface/safetensors):
 *
 *   8 bytes    N, the header length, unsigned little-endian
 *   N bytes    a JSON object: {"__metadata__": {"k": "v", ...},
 *              "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}, ...}
 *   the rest   the tensors' bytes, little-endian; [b, e) is relative to here
 *
 * The reader is as strict as the reference implementation: the header must be
 * UTF-8 JSON of exactly that form, and the tensors must tile the data region
 * with no gap, overlap or trailing byte (the format forbids them so a file
 * cannot hide a second payload). Only F32 and I32 tensors are read. The JSON
 * parser handles just this subset: objects, strings, arrays of non-negative
 * integers; its nesting is fixed, so it needs no recursion. */
#ifndef TG_SAFETENSORS_UTIL_H
#define TG_SAFETENSORS_UTIL_H

#include "tapegrad_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_LIMIT 100000000u /* the reference implementation's cap */
#define DATA_ALIGN 64
#define ELEM_BYTES 4            /* both dtypes */
#define META_KEY "__metadata__"

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

typedef unsigned long long ull; /* for printf */

static const char *const dtype_names[] = {[TG_F32] = "F32", [TG_I32] = "I32"};

/* ---- shared helpers ------------------------------------------------------ */

static inline void set_err(char *err, size_t errlen, const char *fmt, ...) PRINTF_LIKE(3, 4);
static inline void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tg_verror(err, errlen, TG_ERR_IO, fmt, ap);
    va_end(ap);
}

static inline bool host_le(void)
{
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Reverses each 4-byte element: the file is little-endian whatever the host. */
static inline void swap4(unsigned char *p, size_t bytes)
{
    for (size_t i = 0; i + 4 <= bytes; i += 4) {
        unsigned char a = p[i], b = p[i + 1];
        p[i] = p[i + 3];
        p[i + 1] = p[i + 2];
        p[i + 2] = b;
        p[i + 3] = a;
    }
}

/* Length of the valid UTF-8 sequence at s (1-4), 0 when it is not one:
 * rejects overlong forms, surrogates and code points past U+10FFFF. */
static inline int utf8_len(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    int n;
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0) {
        n = 2;
    } else if (c < 0xF0) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : lo;
        hi = c == 0xED ? 0x9F : hi;
    } else if (c < 0xF5) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : lo;
        hi = c == 0xF4 ? 0x8F : hi;
    } else {
        return 0;
    }
    if (end - s < n || s[1] < lo || s[1] > hi)
        return 0;
    for (int i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* Names are found through arrays of pointers to structs whose first member
 * is a const char * (tg_st_tensor, the reader's entries and metadata pairs),
 * so one comparator serves for sorting, duplicate checks and bsearch. */
static inline int cmp_names(const void *a, const void *b)
{
    const char *x = *(const char *const *)*(const void *const *)a;
    const char *y = *(const char *const *)*(const void *const *)b;
    return strcmp(x, y);
}

/* Sorts ptrs by name; returns a name that occurs twice, or NULL. */
static inline const char *sort_names(const void **ptrs, int n)
{
    if (n < 2)
        return NULL;
    qsort(ptrs, (size_t)n, sizeof *ptrs, cmp_names);
    for (int i = 1; i < n; i++)
        if (!cmp_names(&ptrs[i - 1], &ptrs[i]))
            return *(const char *const *)ptrs[i];
    return NULL;
}

#endif /* TG_SAFETENSORS_UTIL_H */
