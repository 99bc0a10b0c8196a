/* safetensors files (https://github.com/huggingface/safetensors):
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
#include "tapegrad.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static void set_err(char *err, size_t errlen, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool host_le(void)
{
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Reverses each 4-byte element: the file is little-endian whatever the host. */
static void swap4(unsigned char *p, size_t bytes)
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
static int utf8_len(const unsigned char *s, const unsigned char *end)
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

static bool valid_utf8(const char *str)
{
    const unsigned char *s = (const unsigned char *)str, *end = s + strlen(str);
    while (s < end) {
        int n = utf8_len(s, end);
        if (!n)
            return false;
        s += n;
    }
    return true;
}

/* Names are found through arrays of pointers to structs whose first member
 * is a const char * (tg_st_tensor, the reader's entries and metadata pairs),
 * so one comparator serves for sorting, duplicate checks and bsearch. */
static int cmp_names(const void *a, const void *b)
{
    const char *x = *(const char *const *)*(const void *const *)a;
    const char *y = *(const char *const *)*(const void *const *)b;
    return strcmp(x, y);
}

/* Sorts ptrs by name; returns a name that occurs twice, or NULL. */
static const char *sort_names(const void **ptrs, int n)
{
    if (n < 2)
        return NULL;
    qsort(ptrs, (size_t)n, sizeof *ptrs, cmp_names);
    for (int i = 1; i < n; i++)
        if (!cmp_names(&ptrs[i - 1], &ptrs[i]))
            return *(const char *const *)ptrs[i];
    return NULL;
}

/* "[2,3]" into buf (for messages). */
static const char *shape_str(const uint64_t *dims, int ndim, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, i ? ",%llu" : "%llu", (ull)dims[i]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
    return buf;
}

/* ---- writer -------------------------------------------------------------- */

typedef struct strbuf {
    char *s;
    size_t len, cap;
    bool oom;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (n > cap - b->len && cap <= SIZE_MAX / 2)
            cap *= 2;
        char *grown = n > cap - b->len ? NULL : realloc(b->s, cap);
        if (!grown) {
            b->oom = true;
            return;
        }
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
}

static void sb_str(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(strbuf *b, uint64_t v)
{
    char t[24];
    sb_put(b, t, (size_t)snprintf(t, sizeof t, "%llu", (ull)v));
}

/* A JSON string literal; s is valid UTF-8 (checked), so only quotes,
 * backslashes and control characters need escapes. */
static void sb_json(strbuf *b, const char *s)
{
    static const char short_esc[] = {['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'};
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char e[8];
        if (c == '"' || c == '\\') {
            e[0] = '\\', e[1] = (char)c;
            sb_put(b, e, 2);
        } else if (c < sizeof short_esc && short_esc[c]) {
            e[0] = '\\', e[1] = short_esc[c];
            sb_put(b, e, 2);
        } else if (c < 0x20) {
            sb_put(b, e, (size_t)snprintf(e, sizeof e, "\\u%04x", c));
        } else {
            sb_put(b, s, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* Bytes of a tensor whose shape passed check_tensor_arg. */
static size_t tensor_bytes(const tg_st_tensor *t)
{
    size_t bytes = ELEM_BYTES;
    for (int d = 0; d < t->ndim; d++)
        bytes *= (size_t)t->shape[d];
    return bytes;
}

/* The reason tensor t cannot be written, or NULL; adds its bytes to *total. */
static const char *check_tensor_arg(const tg_st_tensor *t, size_t *total)
{
    if (!t->name)
        return "name is NULL";
    if (!strcmp(t->name, META_KEY))
        return "the name \"" META_KEY "\" is reserved";
    if (!valid_utf8(t->name))
        return "name is not valid UTF-8";
    if (t->dtype != TG_F32 && t->dtype != TG_I32)
        return "dtype is neither TG_F32 nor TG_I32";
    if (t->ndim < 0 || t->ndim > TG_MAX_DIMS)
        return "ndim is outside 0..TG_MAX_DIMS";
    size_t bytes = ELEM_BYTES;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0)
            return "a dimension is negative";
        if (t->shape[d] && bytes > SIZE_MAX / (size_t)t->shape[d])
            return "its size overflows";
        bytes *= (size_t)t->shape[d];
    }
    if (bytes && !t->data)
        return "data is NULL";
    if (bytes > SIZE_MAX - *total)
        return "the total size overflows";
    *total += bytes;
    return NULL;
}

static tg_status check_meta_args(const char *path, const char *const *keys, const char *const *values,
                                 int n_meta, char *err, size_t errlen)
{
    if (n_meta < 0 || (n_meta > 0 && (!keys || !values))) {
        set_err(err, errlen, "%s: bad metadata arguments (n_meta %d)", path, n_meta);
        return TG_ERR_ARG;
    }
    for (int i = 0; i < n_meta; i++) {
        const char *bad = !keys[i] ? "key is NULL" : !values[i] ? "value is NULL"
                        : !valid_utf8(keys[i]) ? "key is not valid UTF-8"
                        : !valid_utf8(values[i]) ? "value is not valid UTF-8" : NULL;
        if (bad) {
            set_err(err, errlen, "%s: metadata entry %d: %s", path, i, bad);
            return TG_ERR_ARG;
        }
    }
    return TG_OK;
}

/* Duplicate tensor names or metadata keys would make a file no reader accepts. */
static tg_status check_unique(const char *path, const tg_st_tensor *t, int n, const char *const *keys,
                              int n_meta, char *err, size_t errlen)
{
    int most = n > n_meta ? n : n_meta;
    const void **ptrs = malloc((size_t)(most ? most : 1) * sizeof *ptrs);
    if (!ptrs) {
        set_err(err, errlen, "%s: out of memory", path);
        return TG_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++)
        ptrs[i] = &t[i];
    const char *dup = sort_names(ptrs, n);
    const char *what = "tensor name";
    if (!dup) {
        for (int i = 0; i < n_meta; i++)
            ptrs[i] = &keys[i];
        dup = sort_names(ptrs, n_meta);
        what = "metadata key";
    }
    if (dup)
        set_err(err, errlen, "%s: duplicate %s \"%s\"", path, what, dup);
    free(ptrs);
    return dup ? TG_ERR_ARG : TG_OK;
}

static tg_status check_write_args(const char *path, const tg_st_tensor *t, int n, const char *const *keys,
                                  const char *const *values, int n_meta, char *err, size_t errlen)
{
    if (!path) {
        set_err(err, errlen, "tg_safetensors_write: path is NULL");
        return TG_ERR_ARG;
    }
    if (n < 0 || (n > 0 && !t)) {
        set_err(err, errlen, "%s: bad tensor arguments (n %d)", path, n);
        return TG_ERR_ARG;
    }
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const char *bad = check_tensor_arg(&t[i], &total);
        if (bad) {
            set_err(err, errlen, "%s: tensor %d (\"%s\"): %s", path, i,
                    t[i].name ? t[i].name : "(null)", bad);
            return TG_ERR_ARG;
        }
    }
    tg_status s = check_meta_args(path, keys, values, n_meta, err, errlen);
    return s != TG_OK ? s : check_unique(path, t, n, keys, n_meta, err, errlen);
}

/* The JSON header, padded with spaces so the data starts 8-byte aligned in
 * the file (as the reference writer does). */
static void build_header(strbuf *b, const tg_st_tensor *t, int n, const char *const *keys,
                         const char *const *values, int n_meta)
{
    sb_str(b, "{");
    if (n_meta > 0) {
        sb_str(b, "\"" META_KEY "\":{");
        for (int i = 0; i < n_meta; i++) {
            sb_str(b, i ? "," : "");
            sb_json(b, keys[i]);
            sb_str(b, ":");
            sb_json(b, values[i]);
        }
        sb_str(b, "}");
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        sb_str(b, i || n_meta > 0 ? "," : "");
        sb_json(b, t[i].name);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, dtype_names[t[i].dtype]);
        sb_str(b, "\",\"shape\":[");
        for (int d = 0; d < t[i].ndim; d++) {
            sb_str(b, d ? "," : "");
            sb_u64(b, (uint64_t)t[i].shape[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_u64(b, offset);
        sb_str(b, ",");
        offset += tensor_bytes(&t[i]);
        sb_u64(b, offset);
        sb_str(b, "]}");
    }
    sb_str(b, "}");
    while ((8 + b->len) % 8)
        sb_str(b, " ");
}

static bool write_tensor_data(FILE *fp, const tg_st_tensor *t)
{
    size_t bytes = tensor_bytes(t);
    if (!bytes)
        return true;
    if (host_le())
        return fwrite(t->data, 1, bytes, fp) == bytes;
    unsigned char chunk[4096];
    for (size_t at = 0; at < bytes; at += sizeof chunk) {
        size_t len = bytes - at < sizeof chunk ? bytes - at : sizeof chunk;
        memcpy(chunk, (const unsigned char *)t->data + at, len);
        swap4(chunk, len);
        if (fwrite(chunk, 1, len, fp) != len)
            return false;
    }
    return true;
}

static bool write_contents(FILE *fp, const strbuf *hdr, const tg_st_tensor *t, int n)
{
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)hdr->len >> (8 * i));
    if (fwrite(len, 1, 8, fp) != 8 || fwrite(hdr->s, 1, hdr->len, fp) != hdr->len)
        return false;
    for (int i = 0; i < n; i++)
        if (!write_tensor_data(fp, &t[i]))
            return false;
    return true;
}

/* fsync the directory holding path, so the rename itself survives a crash.
 * Best effort: some file systems refuse to fsync a directory. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

/* Writes everything to tmp, makes it durable, then renames it over path;
 * tmp is removed on any failure, so path keeps its old content. */
static tg_status write_atomically(const char *path, const char *tmp, const strbuf *hdr,
                                  const tg_st_tensor *t, int n, char *err, size_t errlen)
{
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        set_err(err, errlen, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        return TG_ERR_IO;
    }
    int e = 0;
    errno = 0;
    if (!write_contents(fp, hdr, t, n))
        e = errno ? errno : EIO;
    else if (fflush(fp) != 0 || fsync(fileno(fp)) != 0)
        e = errno ? errno : EIO;
    if (fclose(fp) != 0 && !e)
        e = errno ? errno : EIO;
    if (!e && rename(tmp, path) != 0) {
        e = errno;
        set_err(err, errlen, "%s: cannot rename %s over it: %s", path, tmp, strerror(e));
        remove(tmp);
        return TG_ERR_IO;
    }
    if (e) {
        set_err(err, errlen, "%s: cannot write %s: %s", path, tmp, strerror(e));
        remove(tmp);
        return TG_ERR_IO;
    }
    sync_parent_dir(path);
    return TG_OK;
}

tg_status tg_safetensors_write(const char *path, const tg_st_tensor *tensors, int n,
                               const char *const *meta_keys, const char *const *meta_values,
                               int n_meta, char *err, size_t errlen)
{
    tg_status s = check_write_args(path, tensors, n, meta_keys, meta_values, n_meta, err, errlen);
    if (s != TG_OK)
        return s;
    strbuf hdr = {0};
    build_header(&hdr, tensors, n, meta_keys, meta_values, n_meta);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof ".tmp");
    if (hdr.oom || !tmp) {
        set_err(err, errlen, "%s: out of memory", path);
        s = TG_ERR_NOMEM;
    } else {
        memcpy(tmp, path, plen);
        memcpy(tmp + plen, ".tmp", sizeof ".tmp");
        s = write_atomically(path, tmp, &hdr, tensors, n, err, errlen);
    }
    free(tmp);
    free(hdr.s);
    return s;
}

/* ---- reader: the file ---------------------------------------------------- */

typedef struct st_entry {
    tg_st_tensor t; /* first, for cmp_names */
    uint64_t begin, end;
} st_entry;

typedef struct st_meta {
    const char *key; /* first, for cmp_names */
    const char *value;
} st_meta;

struct tg_st_file {
    unsigned char *buf; /* the file after its length; the data 64-byte aligned */
    char *pool;         /* every decoded string: names, keys, values */
    st_entry *tensors;
    int n, cap;
    st_meta *meta;
    int n_meta, meta_cap;
    const void **by_name, **meta_by_key; /* sorted, for bsearch */
};

typedef struct reader {
    tg_st_file *f;
    const char *start, *p, *end; /* the JSON header */
    unsigned char *data;
    uint64_t data_len;
    size_t pool_used;
    bool seen_meta;
    char msg[384];
} reader;

static bool fail(reader *r, const char *fmt, ...) PRINTF_LIKE(2, 3);
static bool fail(reader *r, const char *fmt, ...)
{
    if (!r->msg[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->msg, sizeof r->msg, fmt, ap);
        va_end(ap);
    }
    return false;
}

static uint64_t le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

/* Checks the header length against the file size, then reads the rest of
 * the file into one buffer laid out so the data region is 64-byte aligned. */
static bool load_body(reader *r, FILE *fp, uint64_t size)
{
    unsigned char lenb[8];
    if (fread(lenb, 1, 8, fp) != 8)
        return fail(r, "read failed: %s", ferror(fp) ? strerror(errno) : "the file shrank");
    uint64_t n = le64(lenb);
    if (n > HEADER_LIMIT)
        return fail(r, "header length %llu is absurd (the limit is %u); not a safetensors file?",
                    (ull)n, HEADER_LIMIT);
    if (n > size - 8)
        return fail(r, "truncated: header says %llu bytes but the file has %llu", (ull)n, (ull)size);
    if (n < 2)
        return fail(r, "header length %llu is too small for a JSON object", (ull)n);
    if (size > SIZE_MAX - 2 * DATA_ALIGN)
        return fail(r, "the file is too large for this machine (%llu bytes)", (ull)size);
    size_t lead = (DATA_ALIGN - n % DATA_ALIGN) % DATA_ALIGN, body = (size_t)(size - 8);
    size_t total = (lead + body + DATA_ALIGN - 1) / DATA_ALIGN * DATA_ALIGN;
    if (!(r->f->buf = aligned_alloc(DATA_ALIGN, total)))
        return fail(r, "out of memory for %llu bytes", (ull)size);
    if (fread(r->f->buf + lead, 1, body, fp) != body)
        return fail(r, "read failed: %s", ferror(fp) ? strerror(errno) : "the file shrank while reading");
    r->start = r->p = (const char *)r->f->buf + lead;
    r->end = r->start + n;
    r->data = r->f->buf + lead + n;
    r->data_len = body - n;
    if (!(r->f->pool = malloc(n + 1)))
        return fail(r, "out of memory");
    return true;
}

static bool load_file(reader *r, const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return fail(r, "%s", strerror(errno));
    struct stat st;
    bool ok = false;
    if (fstat(fileno(fp), &st) != 0)
        fail(r, "%s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        fail(r, "not a regular file");
    else if (st.st_size < 8)
        fail(r, "truncated: the file has %llu bytes, too few for the 8-byte header length",
             (ull)st.st_size);
    else
        ok = load_body(r, fp, (uint64_t)st.st_size);
    fclose(fp);
    return ok;
}

/* ---- reader: the JSON subset --------------------------------------------- */

static void skip_ws(reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

/* The next significant character, or -1 at the end of the header. */
static int peek(reader *r)
{
    skip_ws(r);
    return r->p < r->end ? (unsigned char)*r->p : -1;
}

static bool syntax(reader *r, const char *expected)
{
    size_t at = (size_t)(r->p - r->start);
    int c = r->p < r->end ? (unsigned char)*r->p : -1;
    if (c < 0)
        return fail(r, "malformed header JSON: expected %s at byte %zu, found the end of the header",
                    expected, at);
    if (c >= 0x20 && c < 0x7F)
        return fail(r, "malformed header JSON: expected %s at byte %zu, found '%c'", expected, at, c);
    return fail(r, "malformed header JSON: expected %s at byte %zu, found byte 0x%02x", expected, at, c);
}

static bool expect(reader *r, char c)
{
    char what[4] = {'\'', c, '\'', 0};
    if (peek(r) != (unsigned char)c)
        return syntax(r, what);
    r->p++;
    return true;
}

static bool hex4(reader *r, unsigned *out)
{
    *out = 0;
    for (int i = 0; i < 4; i++, r->p++) {
        int c = r->p < r->end ? *r->p : -1, v;
        if (c >= '0' && c <= '9') v = c - '0';
        else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
        else return syntax(r, "four hex digits after \\u");
        *out = *out << 4 | (unsigned)v;
    }
    return true;
}

/* The code point of a \u escape (r->p just past the 'u'), joining a
 * surrogate pair. NUL is refused: names and values are C strings. */
static bool unicode_escape(reader *r, unsigned *cp)
{
    if (!hex4(r, cp))
        return false;
    if (*cp >= 0xDC00 && *cp <= 0xDFFF)
        return fail(r, "malformed header JSON: lone low surrogate \\u%04x", *cp);
    if (*cp >= 0xD800 && *cp <= 0xDBFF) {
        unsigned lo;
        if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u')
            return fail(r, "malformed header JSON: high surrogate \\u%04x without its low half", *cp);
        r->p += 2;
        if (!hex4(r, &lo))
            return false;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return fail(r, "malformed header JSON: high surrogate \\u%04x followed by \\u%04x", *cp, lo);
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (!*cp)
        return fail(r, "a string in the header contains \\u0000");
    return true;
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One escape (r->p at the backslash), decoded to out; returns its length. */
static size_t escape(reader *r, char *out)
{
    static const char plain[] = "\"\\/bfnrt", value[] = "\"\\/\b\f\n\r\t";
    r->p++;
    int c = r->p < r->end ? *r->p : -1;
    const char *hit = c > 0 ? strchr(plain, c) : NULL;
    if (hit) {
        r->p++;
        *out = value[hit - plain];
        return 1;
    }
    unsigned cp;
    if (c != 'u') {
        syntax(r, "an escape (one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)");
        return 0;
    }
    r->p++;
    return unicode_escape(r, &cp) ? put_utf8(out, cp) : 0;
}

/* A string, decoded into the pool. The pool holds as many bytes as the
 * header, enough for every string: a decoded string plus its NUL is never
 * longer than its quoted, escaped form. */
static bool parse_string(reader *r, const char **out)
{
    if (!expect(r, '"'))
        return false;
    char *dst = r->f->pool + r->pool_used, *w = dst;
    for (;;) {
        if (r->p >= r->end)
            return syntax(r, "'\"' closing the string");
        unsigned char c = (unsigned char)*r->p;
        size_t len = 1;
        if (c == '"')
            break;
        if (c == '\\') {
            if (!(len = escape(r, w)))
                return false;
        } else if (c < 0x20) {
            return fail(r, "malformed header JSON: control byte 0x%02x inside a string at byte %zu", c,
                        (size_t)(r->p - r->start));
        } else {
            if (!(len = (size_t)utf8_len((const unsigned char *)r->p, (const unsigned char *)r->end)))
                return fail(r, "the header is not valid UTF-8 (byte %zu)", (size_t)(r->p - r->start));
            memcpy(w, r->p, len);
            r->p += len;
        }
        w += len;
    }
    r->p++;
    *w++ = 0;
    r->pool_used += (size_t)(w - dst);
    *out = dst;
    return true;
}

static bool parse_uint(reader *r, uint64_t *out)
{
    int c = peek(r);
    if (c == '-')
        return fail(r, "negative number at header byte %zu", (size_t)(r->p - r->start));
    if (c < '0' || c > '9')
        return syntax(r, "a non-negative integer");
    if (c == '0' && r->end - r->p > 1 && r->p[1] >= '0' && r->p[1] <= '9')
        return fail(r, "malformed header JSON: leading zero at byte %zu", (size_t)(r->p - r->start));
    uint64_t v = 0;
    for (; r->p < r->end && *r->p >= '0' && *r->p <= '9'; r->p++) {
        unsigned d = (unsigned)(*r->p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return fail(r, "number too large at header byte %zu", (size_t)(r->p - r->start));
        v = v * 10 + d;
    }
    if (r->p < r->end && (*r->p == '.' || *r->p == 'e' || *r->p == 'E'))
        return fail(r, "expected an integer at header byte %zu, found a fraction or exponent",
                    (size_t)(r->p - r->start));
    *out = v;
    return true;
}

/* An array of at most max integers; *n gets their count. */
static bool parse_uint_array(reader *r, const char *tensor, const char *what, uint64_t *vals, int max, int *n)
{
    *n = 0;
    if (!expect(r, '['))
        return false;
    if (peek(r) == ']') {
        r->p++;
        return true;
    }
    for (;;) {
        if (*n == max)
            return fail(r, "tensor \"%s\": %s has more than %d entries", tensor, what, max);
        if (!parse_uint(r, &vals[(*n)++]))
            return false;
        int c = peek(r);
        r->p += (c == ',' || c == ']');
        if (c == ']')
            return true;
        if (c != ',')
            return syntax(r, "',' or ']'");
    }
}

/* Calls member() for each "key": value of an object; member parses the value. */
typedef bool (*member_fn)(reader *r, const char *key, void *ctx);

static bool parse_object(reader *r, member_fn member, void *ctx)
{
    if (!expect(r, '{'))
        return false;
    if (peek(r) == '}') {
        r->p++;
        return true;
    }
    for (;;) {
        const char *key;
        if (!parse_string(r, &key) || !expect(r, ':') || !member(r, key, ctx))
            return false;
        int c = peek(r);
        r->p += (c == ',' || c == '}');
        if (c == '}')
            return true;
        if (c != ',')
            return syntax(r, "',' or '}'");
    }
}

/* ---- reader: the header's meaning ---------------------------------------- */

/* arr with room for entry n (reallocated when full), or NULL on failure,
 * arr then still being the caller's to free. */
static void *grow(reader *r, void *arr, int *cap, int n, size_t elem)
{
    if (n < *cap)
        return arr;
    if (*cap > INT_MAX / 2) {
        fail(r, "too many entries in the header");
        return NULL;
    }
    int ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(arr, (size_t)ncap * elem);
    if (!p) {
        fail(r, "out of memory");
        return NULL;
    }
    *cap = ncap;
    return p;
}

static bool meta_member(reader *r, const char *key, void *ctx)
{
    (void)ctx;
    tg_st_file *f = r->f;
    const char *value;
    if (peek(r) != '"')
        return fail(r, "metadata value of \"%s\" is not a string", key);
    if (!parse_string(r, &value))
        return false;
    st_meta *m = grow(r, f->meta, &f->meta_cap, f->n_meta, sizeof *m);
    if (!m)
        return false;
    f->meta = m;
    f->meta[f->n_meta++] = (st_meta){key, value};
    return true;
}

static bool parse_dtype(reader *r, st_entry *e)
{
    const char *s;
    if (!parse_string(r, &s))
        return false;
    if (!strcmp(s, "F32"))
        e->t.dtype = TG_F32;
    else if (!strcmp(s, "I32"))
        e->t.dtype = TG_I32;
    else
        return fail(r, "tensor \"%s\" has dtype \"%s\"; only F32 and I32 are supported", e->t.name, s);
    return true;
}

static bool parse_shape(reader *r, st_entry *e, uint64_t *dims)
{
    if (!parse_uint_array(r, e->t.name, "shape", dims, TG_MAX_DIMS, &e->t.ndim))
        return false;
    for (int d = 0; d < e->t.ndim; d++) {
        if (dims[d] > INT_MAX)
            return fail(r, "tensor \"%s\": dimension %llu is too large", e->t.name, (ull)dims[d]);
        e->t.shape[d] = (int)dims[d];
    }
    return true;
}

static bool parse_offsets(reader *r, st_entry *e)
{
    uint64_t v[2];
    int n;
    if (!parse_uint_array(r, e->t.name, "data_offsets", v, 2, &n))
        return false;
    if (n != 2)
        return fail(r, "tensor \"%s\": data_offsets has %d entries, not 2", e->t.name, n);
    e->begin = v[0];
    e->end = v[1];
    return true;
}

enum { SEEN_DTYPE = 1, SEEN_SHAPE = 2, SEEN_OFFSETS = 4 };

typedef struct entry_ctx {
    st_entry *e;
    unsigned seen;
    uint64_t dims[TG_MAX_DIMS];
} entry_ctx;

static bool entry_member(reader *r, const char *key, void *ctx)
{
    entry_ctx *c = ctx;
    unsigned bit = !strcmp(key, "dtype") ? SEEN_DTYPE
                 : !strcmp(key, "shape") ? SEEN_SHAPE
                 : !strcmp(key, "data_offsets") ? SEEN_OFFSETS : 0;
    if (!bit)
        return fail(r, "tensor \"%s\" has an unknown key \"%s\"", c->e->t.name, key);
    if (c->seen & bit)
        return fail(r, "tensor \"%s\" has \"%s\" twice", c->e->t.name, key);
    c->seen |= bit;
    if (bit == SEEN_DTYPE)
        return parse_dtype(r, c->e);
    if (bit == SEEN_SHAPE)
        return parse_shape(r, c->e, c->dims);
    return parse_offsets(r, c->e);
}

/* All three keys present, and the shape's size matches the byte range. */
static bool check_entry(reader *r, const entry_ctx *c)
{
    const st_entry *e = c->e;
    static const char *const names[] = {"dtype", "shape", "data_offsets"};
    for (int i = 0; i < 3; i++)
        if (!(c->seen & 1u << i))
            return fail(r, "tensor \"%s\" has no \"%s\"", e->t.name, names[i]);
    if (e->begin > e->end)
        return fail(r, "tensor \"%s\": data_offsets [%llu,%llu] run backwards", e->t.name, (ull)e->begin,
                    (ull)e->end);
    uint64_t bytes = ELEM_BYTES;
    bool overflow = false;
    for (int d = 0; d < e->t.ndim; d++) {
        overflow |= c->dims[d] && bytes > UINT64_MAX / c->dims[d];
        bytes = overflow ? 0 : bytes * c->dims[d];
    }
    if (overflow || bytes != e->end - e->begin) {
        char s[128];
        return fail(r, "tensor \"%s\": shape %s of %s needs %s%llu bytes "
                    "but data_offsets [%llu,%llu] hold %llu",
                    e->t.name, shape_str(c->dims, e->t.ndim, s, sizeof s), dtype_names[e->t.dtype],
                    overflow ? "more than " : "", overflow ? (ull)UINT64_MAX : (ull)bytes,
                    (ull)e->begin, (ull)e->end, (ull)(e->end - e->begin));
    }
    return true;
}

static bool top_member(reader *r, const char *key, void *ctx)
{
    (void)ctx;
    tg_st_file *f = r->f;
    if (!strcmp(key, META_KEY)) {
        if (r->seen_meta)
            return fail(r, "\"" META_KEY "\" appears twice");
        r->seen_meta = true;
        return parse_object(r, meta_member, NULL);
    }
    st_entry *t = grow(r, f->tensors, &f->cap, f->n, sizeof *t);
    if (!t)
        return false;
    f->tensors = t;
    entry_ctx c = {.e = &f->tensors[f->n++]};
    *c.e = (st_entry){.t.name = key};
    return parse_object(r, entry_member, &c) && check_entry(r, &c);
}

/* ---- reader: checks across tensors --------------------------------------- */

static bool index_names(reader *r)
{
    tg_st_file *f = r->f;
    f->by_name = malloc((size_t)(f->n ? f->n : 1) * sizeof *f->by_name);
    f->meta_by_key = malloc((size_t)(f->n_meta ? f->n_meta : 1) * sizeof *f->meta_by_key);
    if (!f->by_name || !f->meta_by_key)
        return fail(r, "out of memory");
    for (int i = 0; i < f->n; i++)
        f->by_name[i] = &f->tensors[i];
    for (int i = 0; i < f->n_meta; i++)
        f->meta_by_key[i] = &f->meta[i];
    const char *dup = sort_names(f->by_name, f->n);
    if (dup)
        return fail(r, "duplicate tensor name \"%s\"", dup);
    if ((dup = sort_names(f->meta_by_key, f->n_meta)))
        return fail(r, "duplicate metadata key \"%s\"", dup);
    return true;
}

static int cmp_ranges(const void *a, const void *b)
{
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The tensors must tile the data region exactly. As every element is 4
 * bytes and the tiling starts at 0, every tensor is then 4-byte aligned. */
static bool check_tiling(reader *r, const st_entry **order)
{
    tg_st_file *f = r->f;
    uint64_t at = 0;
    for (int i = 0; i < f->n; i++)
        if (f->tensors[i].end > r->data_len)
            return fail(r, "truncated: tensor \"%s\" ends at data byte %llu "
                        "but the file holds %llu bytes of data",
                        f->tensors[i].t.name, (ull)f->tensors[i].end, (ull)r->data_len);
    for (int i = 0; i < f->n; i++)
        order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n, sizeof *order, cmp_ranges);
    for (int i = 0; i < f->n; i++) {
        if (order[i]->begin > at)
            return fail(r, "tensor \"%s\" starts at data byte %llu, leaving a gap after byte %llu",
                        order[i]->t.name, (ull)order[i]->begin, (ull)at);
        if (order[i]->begin < at)
            return fail(r, "tensor \"%s\" (data bytes %llu..%llu) overlaps another tensor",
                        order[i]->t.name, (ull)order[i]->begin, (ull)order[i]->end);
        at = order[i]->end;
    }
    if (at != r->data_len)
        return fail(r, "the file has %llu bytes of data but its tensors cover only %llu", (ull)r->data_len,
                    (ull)at);
    return true;
}

static bool check_tensors(reader *r)
{
    const st_entry **order = malloc((size_t)(r->f->n ? r->f->n : 1) * sizeof *order);
    if (!order)
        return fail(r, "out of memory");
    bool ok = check_tiling(r, order);
    free(order);
    if (!ok)
        return false;
    for (int i = 0; i < r->f->n; i++) {
        st_entry *e = &r->f->tensors[i];
        e->t.data = r->data + e->begin;
        if (!host_le())
            swap4(r->data + e->begin, (size_t)(e->end - e->begin));
    }
    return true;
}

static bool parse_header(reader *r)
{
    if (!parse_object(r, top_member, NULL))
        return false;
    if (peek(r) >= 0)
        return syntax(r, "the end of the header after the JSON object");
    return index_names(r) && check_tensors(r);
}

tg_st_file *tg_safetensors_read(const char *path, char *err, size_t errlen)
{
    if (!path) {
        set_err(err, errlen, "tg_safetensors_read: path is NULL");
        return NULL;
    }
    reader r = {.f = calloc(1, sizeof(tg_st_file))};
    if (!r.f) {
        set_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (!load_file(&r, path) || !parse_header(&r)) {
        set_err(err, errlen, "%s: %s", path, r.msg[0] ? r.msg : "unreadable");
        tg_safetensors_close(r.f);
        return NULL;
    }
    return r.f;
}

void tg_safetensors_close(tg_st_file *f)
{
    if (!f)
        return;
    free(f->buf);
    free(f->pool);
    free(f->tensors);
    free(f->meta);
    free(f->by_name);
    free(f->meta_by_key);
    free(f);
}

int tg_safetensors_count(const tg_st_file *f) { return f ? f->n : 0; }

const tg_st_tensor *tg_safetensors_at(const tg_st_file *f, int i)
{
    return f && i >= 0 && i < f->n ? &f->tensors[i].t : NULL;
}

/* bsearch in an array sorted by cmp_names; NULL when absent. */
static const void *find_name(const void *const *sorted, int n, const char *name)
{
    if (!sorted || !name || n < 1)
        return NULL;
    const void *key = &name;
    const void *const *hit = bsearch(&key, sorted, (size_t)n, sizeof *sorted, cmp_names);
    return hit ? *hit : NULL;
}

const tg_st_tensor *tg_safetensors_find(const tg_st_file *f, const char *name)
{
    const st_entry *e = f ? find_name(f->by_name, f->n, name) : NULL;
    return e ? &e->t : NULL;
}

const char *tg_safetensors_meta(const tg_st_file *f, const char *key)
{
    const st_meta *m = f ? find_name(f->meta_by_key, f->n_meta, key) : NULL;
    return m ? m->value : NULL;
}
