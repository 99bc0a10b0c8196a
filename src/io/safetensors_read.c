/* Reading safetensors files; the format is described in safetensors_util.h. */
#include "safetensors_util.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

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
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer; this
     * way it opens at once and fstat refuses it. */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    FILE *fp = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!fp) {
        fail(r, "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
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
