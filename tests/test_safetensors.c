/* safetensors files: round trips, the exact on-disk layout, and a reader that
 * fails cleanly (NULL and a message naming the file) on every truncated,
 * corrupt or malformed file instead of crashing. Run under ASan as well. */
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static char err[512];

/* ---- helpers ------------------------------------------------------------- */

static const char *tmp_path(const char *name)
{
    static char bufs[4][PATH_MAX];
    static int next;
    char *p = bufs[next++ % 4];
    snprintf(p, PATH_MAX, "%s/%s", dir, name);
    return p;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Whether a temporary file of path's (path.tmp-XXXXXX) was left behind. */
static bool tmp_exists(const char *path)
{
    const char *base = strrchr(path, '/') + 1;
    char prefix[PATH_MAX];
    snprintf(prefix, sizeof prefix, "%s.tmp-", base);
    DIR *d = opendir(dir);
    assert_non_null(d);
    bool found = false;
    for (struct dirent *e; (e = readdir(d));)
        found |= !strncmp(e->d_name, prefix, strlen(prefix));
    closedir(d);
    return found;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    assert_true(n >= 0);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spit(const char *path, const void *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* A file with the given header length, header text and data bytes. */
static void write_raw_len(const char *path, uint64_t hlen, const char *header, const void *data, size_t dlen)
{
    size_t n = strlen(header);
    unsigned char *b = malloc(8 + n + dlen + 1);
    assert_non_null(b);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 8, header, n);
    if (dlen)
        memcpy(b + 8 + n, data, dlen);
    spit(path, b, 8 + n + dlen);
    free(b);
}

static void write_raw(const char *path, const char *header, const void *data, size_t dlen)
{
    write_raw_len(path, strlen(header), header, data, dlen);
}

/* Reading path must fail with a message that names it and contains want. */
static void expect_read_error(const char *path, const char *want)
{
    err[0] = 0;
    tg_st_file *f = tg_safetensors_read(path, err, sizeof err);
    if (f) {
        tg_safetensors_close(f);
        fail_msg("%s: read succeeded, expected an error with \"%s\"", path, want);
    }
    if (strncmp(err, path, strlen(path)) != 0 || !strstr(err, want))
        fail_msg("expected \"%s: ...%s...\", got \"%s\"", path, want, err);
}

static tg_st_file *read_ok(const char *path)
{
    err[0] = 0;
    tg_st_file *f = tg_safetensors_read(path, err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    return f;
}

static size_t count_of(const tg_st_tensor *t)
{
    size_t c = 1;
    for (int d = 0; d < t->ndim; d++)
        c *= (size_t)t->shape[d];
    return c;
}

static void assert_same_tensor(const tg_st_tensor *want, const tg_st_tensor *got)
{
    assert_non_null(got);
    assert_string_equal(want->name, got->name);
    assert_int_equal(want->dtype, got->dtype);
    assert_int_equal(want->ndim, got->ndim);
    for (int d = 0; d < want->ndim; d++)
        assert_int_equal(want->shape[d], got->shape[d]);
    assert_true((uintptr_t)got->data % 4 == 0);
    size_t bytes = count_of(want) * 4;
    if (bytes)
        assert_memory_equal(want->data, got->data, bytes);
}

/* A small valid file: two tensors and one metadata pair. */
static void write_small(const char *path)
{
    static const float w[6] = {1, 2, 3, 4, 5, 6};
    static const int32_t ids[3] = {7, -8, 9};
    tg_st_tensor t[2] = {
        {.name = "w", .dtype = TG_F32, .ndim = 2, .shape = {2, 3}, .data = w},
        {.name = "ids", .dtype = TG_I32, .ndim = 1, .shape = {3}, .data = ids},
    };
    const char *k[1] = {"step"}, *v[1] = {"12"};
    assert_int_equal(tg_safetensors_write(path, t, 2, k, v, 1, err, sizeof err), TG_OK);
}

/* ---- round trips --------------------------------------------------------- */

static void test_round_trip(void **s)
{
    (void)s;
    float a[6], big[3 * 5 * 7 * 11], scalar = -0.0f;
    int32_t ids[24];
    uint32_t specials[6] = {0x7fc00001u, 0xff800000u, 0x7f800000u, 0x00000001u, 0x80000000u, 0x3f800000u};
    memcpy(a, specials, sizeof a); /* NaN payload, infinities, a denormal, -0: bit-exact */
    tg_rng r;
    tg_rng_seed(&r, 5);
    for (size_t i = 0; i < sizeof big / sizeof *big; i++)
        big[i] = tg_rng_normal(&r);
    for (int i = 0; i < 24; i++)
        ids[i] = (int32_t)tg_rng_u32(&r);
    tg_st_tensor t[] = {
        {.name = "transformer.h.0.attn.c_attn.weight", .dtype = TG_F32, .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "ids", .dtype = TG_I32, .ndim = 4, .shape = {2, 3, 1, 4}, .data = ids},
        {.name = "big", .dtype = TG_F32, .ndim = 4, .shape = {3, 5, 7, 11}, .data = big},
        {.name = "scalar", .dtype = TG_F32, .ndim = 0, .data = &scalar},
        {.name = "empty", .dtype = TG_F32, .ndim = 2, .shape = {0, 3}, .data = NULL},
        {.name = "q\"u\\o\nte\t\x01 \xc3\xa9\xe2\x9c\x93\xf0\x9f\x99\x82", .dtype = TG_I32, .ndim = 1,
         .shape = {5}, .data = ids + 3},
    };
    const char *keys[] = {"format", "quote\"back\\slash", "multi\nline", "unicode", "empty", "ctl"};
    const char *vals[] = {"pt", "\"\\\"", "a\r\nb\tc", "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x99\x82", "",
                          "\x01\x1f\x7f/"};
    int n = (int)(sizeof t / sizeof *t), nm = (int)(sizeof keys / sizeof *keys);
    const char *path = tmp_path("round.safetensors");
    assert_int_equal(tg_safetensors_write(path, t, n, keys, vals, nm, err, sizeof err), TG_OK);
    assert_false(tmp_exists(path));

    tg_st_file *f = read_ok(path);
    assert_int_equal(tg_safetensors_count(f), n);
    for (int i = 0; i < n; i++) {
        assert_same_tensor(&t[i], tg_safetensors_at(f, i)); /* in the order written */
        assert_ptr_equal(tg_safetensors_find(f, t[i].name), tg_safetensors_at(f, i));
    }
    assert_true((uintptr_t)tg_safetensors_find(f, "transformer.h.0.attn.c_attn.weight")->data % 64 == 0);
    for (int i = 0; i < nm; i++)
        assert_string_equal(tg_safetensors_meta(f, keys[i]), vals[i]);
    assert_null(tg_safetensors_meta(f, "absent"));
    assert_null(tg_safetensors_find(f, "absent"));
    assert_null(tg_safetensors_find(f, "Big"));
    assert_null(tg_safetensors_at(f, -1));
    assert_null(tg_safetensors_at(f, n));
    tg_safetensors_close(f);
}

static void test_empty_file(void **s)
{
    (void)s;
    const char *path = tmp_path("empty.safetensors");
    assert_int_equal(tg_safetensors_write(path, NULL, 0, NULL, NULL, 0, err, sizeof err), TG_OK);
    size_t len;
    unsigned char *b = slurp(path, &len);
    assert_int_equal(len, 16);
    assert_memory_equal(b + 8, "{}      ", 8);
    free(b);
    tg_st_file *f = read_ok(path);
    assert_int_equal(tg_safetensors_count(f), 0);
    assert_null(tg_safetensors_find(f, "x"));
    assert_null(tg_safetensors_meta(f, "x"));
    tg_safetensors_close(f);
}

/* A large tensor read back bit-exact. */
static void test_large(void **s)
{
    (void)s;
    size_t n = 1u << 20;
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    tg_rng r;
    tg_rng_seed(&r, 9);
    for (size_t i = 0; i < n; i++)
        x[i] = tg_rng_normal(&r);
    tg_st_tensor t = {.name = "x", .dtype = TG_F32, .ndim = 3, .shape = {64, 128, 128}, .data = x};
    const char *path = tmp_path("large.safetensors");
    assert_int_equal(tg_safetensors_write(path, &t, 1, NULL, NULL, 0, err, sizeof err), TG_OK);
    tg_st_file *f = read_ok(path);
    assert_same_tensor(&t, tg_safetensors_find(f, "x"));
    tg_safetensors_close(f);
    free(x);
}

/* ---- the bytes on disk ---------------------------------------------------- */

/* The data starts 8-byte aligned whatever the header's length, the padding
 * is spaces, and the file ends right after the data. */
static void test_header_alignment(void **s)
{
    (void)s;
    static const float v[3] = {1, 2, 3};
    char name[16] = "";
    for (int len = 1; len < 12; len++) {
        name[len - 1] = (char)('a' + len);
        tg_st_tensor t = {.name = name, .dtype = TG_F32, .ndim = 1, .shape = {3}, .data = v};
        const char *path = tmp_path("align.safetensors");
        assert_int_equal(tg_safetensors_write(path, &t, 1, NULL, NULL, 0, err, sizeof err), TG_OK);
        size_t size;
        unsigned char *b = slurp(path, &size);
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = n << 8 | b[i];
        assert_int_equal((8 + n) % 8, 0);
        assert_int_equal(size, 8 + n + sizeof v);
        size_t json_end = 8 + n;
        while (b[json_end - 1] == ' ')
            json_end--;
        assert_int_equal(b[json_end - 1], '}');
        assert_true(8 + n - json_end < 8);
        assert_memory_equal(b + 8 + n, v, sizeof v);
        free(b);
    }
}

/* The exact bytes, checked by hand rather than by our own reader. */
static void test_independent_parse(void **s)
{
    (void)s;
    static const float v[2] = {1.5f, -2.0f};
    tg_st_tensor t = {.name = "w", .dtype = TG_F32, .ndim = 1, .shape = {2}, .data = v};
    const char *k[1] = {"a"}, *val[1] = {"b"};
    const char *path = tmp_path("plain.safetensors");
    assert_int_equal(tg_safetensors_write(path, &t, 1, k, val, 1, err, sizeof err), TG_OK);
    size_t size;
    unsigned char *b = slurp(path, &size);
    const char *json = "{\"__metadata__\":{\"a\":\"b\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
                       "\"data_offsets\":[0,8]}}";
    size_t jl = strlen(json), n = (jl + 8 + 7) / 8 * 8 - 8;
    assert_int_equal(size, 8 + n + 8);
    assert_int_equal(b[0], n & 0xff);
    for (int i = 1; i < 8; i++)
        assert_int_equal(b[i], (n >> (8 * i)) & 0xff);
    assert_memory_equal(b + 8, json, jl);
    for (size_t i = 8 + jl; i < 8 + n; i++)
        assert_int_equal(b[i], ' ');
    /* 1.5f and -2.0f, little-endian */
    static const unsigned char data[8] = {0, 0, 0xc0, 0x3f, 0, 0, 0, 0xc0};
    assert_memory_equal(b + 8 + n, data, 8);
    free(b);
}

/* ---- damaged files -------------------------------------------------------- */

static void test_truncated_every_length(void **s)
{
    (void)s;
    const char *path = tmp_path("whole.safetensors"), *cut = tmp_path("cut.safetensors");
    write_small(path);
    size_t size;
    unsigned char *b = slurp(path, &size);
    for (size_t len = 0; len < size; len++) {
        spit(cut, b, len);
        expect_read_error(cut, "truncated");
    }
    free(b);
}

/* Whatever a read of damaged bytes returns must hang together. */
static void check_consistent(tg_st_file *f)
{
    int n = tg_safetensors_count(f);
    for (int i = 0; i < n; i++) {
        const tg_st_tensor *t = tg_safetensors_at(f, i);
        assert_non_null(t);
        assert_ptr_equal(tg_safetensors_find(f, t->name), t);
        assert_true(t->ndim >= 0 && t->ndim <= TG_MAX_DIMS);
        assert_true(t->dtype == TG_F32 || t->dtype == TG_I32);
        const unsigned char *d = t->data;
        unsigned sum = 0;
        for (size_t j = 0; j < count_of(t) * 4; j++) /* ASan checks these reads */
            sum += d[j];
        (void)sum;
    }
    assert_null(tg_safetensors_at(f, n));
}

/* Flip bits at every byte: each read fails with a message or succeeds with
 * consistent tensors; a flip in the data changes only that byte. */
static void test_corrupt_bytes(void **s)
{
    (void)s;
    const char *path = tmp_path("whole.safetensors"), *bad = tmp_path("bad.safetensors");
    write_small(path);
    size_t size;
    unsigned char *b = slurp(path, &size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | b[i];
    static const unsigned char flips[] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff, 0x7f};
    int failed = 0, passed = 0;
    for (size_t pos = 0; pos < size; pos++) {
        for (size_t k = 0; k < sizeof flips; k++) {
            b[pos] ^= flips[k];
            spit(bad, b, size);
            err[0] = 0;
            tg_st_file *f = tg_safetensors_read(bad, err, sizeof err);
            if (f) {
                check_consistent(f);
                if (pos >= 8 + n) { /* data byte */
                    const unsigned char *w = tg_safetensors_find(f, "w")->data;
                    const unsigned char *ids = tg_safetensors_find(f, "ids")->data;
                    size_t off = pos - 8 - n;
                    assert_int_equal(off < 24 ? w[off] : ids[off - 24], b[pos]);
                }
                tg_safetensors_close(f);
                passed++;
            } else {
                assert_true(strncmp(err, bad, strlen(bad)) == 0 && strlen(err) > strlen(bad) + 2);
                failed++;
            }
            b[pos] ^= flips[k];
        }
    }
    assert_true(failed > 0 && passed > 0);
    free(b);
}

/* Random garbage where the header should be, at lengths 2..64. */
static void test_garbage_headers(void **s)
{
    (void)s;
    const char *path = tmp_path("garbage.safetensors");
    static const char alphabet[] = "{}[]\",:0123456789 \\u\"dtype\"F32I32shapedata_offsets__metadata__\x80\xff";
    tg_rng r;
    tg_rng_seed(&r, 11);
    for (int iter = 0; iter < 3000; iter++) {
        char h[65];
        int len = 2 + (int)(tg_rng_u32(&r) % 63);
        for (int i = 0; i < len; i++)
            h[i] = alphabet[tg_rng_u32(&r) % (sizeof alphabet - 1)];
        h[len] = 0;
        unsigned char data[16] = {0};
        write_raw(path, h, data, tg_rng_u32(&r) % 17);
        tg_st_file *f = tg_safetensors_read(path, err, sizeof err);
        if (f) {
            check_consistent(f);
            tg_safetensors_close(f);
        } else {
            assert_true(strlen(err) > strlen(path) + 2);
        }
    }
}

static void test_header_length(void **s)
{
    (void)s;
    const char *path = tmp_path("len.safetensors");
    const char *h = "{}";
    write_raw_len(path, UINT64_MAX, h, NULL, 0);
    expect_read_error(path, "header length 18446744073709551615 is absurd");
    write_raw_len(path, (uint64_t)1 << 40, h, NULL, 0);
    expect_read_error(path, "is absurd");
    write_raw_len(path, 3, h, NULL, 0);
    expect_read_error(path, "truncated: header says 3 bytes but the file has 10");
    write_raw_len(path, 1, h, NULL, 0);
    expect_read_error(path, "too small");
    write_raw_len(path, 0, "", NULL, 0);
    expect_read_error(path, "too small");
    spit(path, "\x02\0\0\0", 4);
    expect_read_error(path, "truncated: the file has 4 bytes");
    write_raw_len(path, 2, h, NULL, 0);
    tg_st_file *f = read_ok(path);
    assert_int_equal(tg_safetensors_count(f), 0);
    tg_safetensors_close(f);
}

typedef struct bad_case {
    const char *header;
    size_t data_len;
    const char *want;
} bad_case;

static const bad_case bad_cases[] = {
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "shape [3] of F32 needs 12 bytes but data_offsets [0,8] hold 8"},
    {"{\"a\":{\"dtype\":\"I32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, "dimension 4294967296 is too large"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[65536,65536,65536,65536],\"data_offsets\":[0,8]}}", 8, "needs more than"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "run backwards"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "truncated: tensor \"a\" ends at data byte 8"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "leaving a gap"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "overlaps"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "8 bytes of data but its tensors cover only 4"},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "tensor \"a\" has dtype \"F16\"; only F32 and I32"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "shape has more than 4 entries"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,4]}}", 4, "data_offsets has more than 2"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4, "data_offsets has 1 entries, not 2"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate tensor name \"a\""},
    {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate metadata key \"k\""},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "\"__metadata__\" appears twice"},
    {"{\"__metadata__\":{\"k\":1}}", 0, "metadata value of \"k\" is not a string"},
    {"{\"__metadata__\":[]}", 0, "expected '{' at byte 16, found '['"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor \"a\" has no \"data_offsets\""},
    {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor \"a\" has no \"dtype\""},
    {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\"}}", 4, "has \"dtype\" twice"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unknown key \"x\""},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "negative number"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "fraction or exponent"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}", 4, "fraction or exponent"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4, "leading zero"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, "expected a non-negative integer at byte 29, found '\"'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999]}}", 4, "number too large"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1 2],\"data_offsets\":[0,4]}}", 4, "expected ',' or ']'"},
    {"{\"a\":{\"dtype\":F32}}", 4, "expected '\"' at byte 14, found 'F'"},
    {"{\"a\":{\"dtype\":\"F32\" \"shape\":[1]}}", 4, "expected ',' or '}'"},
    {"{\"a\" {}}", 0, "expected ':' at byte 5, found '{'"},
    {"{\"a\":[]}", 0, "expected '{' at byte 5, found '['"},
    {"[]", 0, "expected '{' at byte 0, found '['"},
    {"  ", 0, "expected '{' at byte 2, found the end of the header"},
    {"{}x", 0, "expected the end of the header after the JSON object at byte 2, found 'x'"},
    {"{}{}", 0, "after the JSON object"},
    {"{,}", 0, "expected '\"' at byte 1, found ','"},
    {"{\"a\":{},}", 0, "has no \"dtype\""},
    {"{\"__metadata__\":{\"k\":\"v\",}}", 0, "expected '\"' at byte 25, found '}'"},
    {"{\"unterminated", 0, "closing the string"},
    {"{\"bad\\q\":{}}", 0, "expected an escape"},
    {"{\"bad\\u12G4\":{}}", 0, "four hex digits"},
    {"{\"bad\\u12", 0, "four hex digits"},
    {"{\"\\ud800\":{}}", 0, "high surrogate \\ud800 without its low half"},
    {"{\"\\ud800\\u0041\":{}}", 0, "followed by \\u0041"},
    {"{\"\\udc00\":{}}", 0, "lone low surrogate"},
    {"{\"nul\\u0000\":{}}", 0, "contains \\u0000"},
    {"{\"tab\there\":{}}", 0, "control byte 0x09 inside a string"},
    {"{\"\xff\":{}}", 0, "not valid UTF-8"},
    {"{\"\xc3\":{}}", 0, "not valid UTF-8"},
    {"{\"\xc0\xaf\":{}}", 0, "not valid UTF-8"},         /* overlong '/' */
    {"{\"\xed\xa0\x80\":{}}", 0, "not valid UTF-8"},     /* a raw surrogate */
    {"{\"\xf4\x90\x80\x80\":{}}", 0, "not valid UTF-8"}, /* past U+10FFFF */
    {"{\x80}", 0, "found byte 0x80"},
};

static void test_bad_headers(void **s)
{
    (void)s;
    const char *path = tmp_path("bad.safetensors");
    unsigned char data[16] = {0};
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const bad_case *c = &bad_cases[i];
        write_raw(path, c->header, data, c->data_len);
        expect_read_error(path, c->want);
    }
}

/* Valid JSON the writer never produces: whitespace, escapes, any key order,
 * tensors listed out of data order, zero-size tensors. */
static void test_unusual_valid_headers(void **s)
{
    (void)s;
    const char *path = tmp_path("odd.safetensors");
    const char *h = " \t\r\n{ \"b\" : { \"data_offsets\" : [ 8 , 12 ] , \"shape\" : [ ] , \"dtype\" : \"I32\" } ,\n"
                    "\"\\u00e9\\ud83d\\ude42\\/\\\"\\\\\\b\\f\\n\\r\\t\\u0041\":{\"dtype\":\"F32\",\"shape\":[2],"
                    "\"data_offsets\":[0,8]},\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[12,12]},"
                    "\"__metadata__\":{\"\\u00E9\":\"caf\\u00e9\"} }\n";
    const float a[2] = {0.25f, -1.0f};
    const int32_t b = -123;
    unsigned char data[12];
    memcpy(data, a, 8);
    memcpy(data + 8, &b, 4);
    write_raw(path, h, data, sizeof data);
    tg_st_file *f = read_ok(path);
    assert_int_equal(tg_safetensors_count(f), 3);
    const tg_st_tensor *tb = tg_safetensors_at(f, 0);
    assert_string_equal(tb->name, "b");
    assert_int_equal(tb->ndim, 0);
    assert_int_equal(tb->dtype, TG_I32);
    assert_int_equal(*(const int32_t *)tb->data, -123);
    const char *odd = "\xc3\xa9\xf0\x9f\x99\x82/\"\\\b\f\n\r\tA";
    const tg_st_tensor *ta = tg_safetensors_find(f, odd);
    assert_non_null(ta);
    assert_ptr_equal(ta, tg_safetensors_at(f, 1));
    assert_memory_equal(ta->data, a, 8);
    const tg_st_tensor *tz = tg_safetensors_find(f, "z");
    assert_int_equal(tz->ndim, 2);
    assert_int_equal(tz->shape[0], 0);
    assert_int_equal(tz->shape[1], 5);
    assert_string_equal(tg_safetensors_meta(f, "\xc3\xa9"), "caf\xc3\xa9");
    tg_safetensors_close(f);
}

/* ---- file system errors -------------------------------------------------- */

static void test_missing_file(void **s)
{
    (void)s;
    const char *path = tmp_path("no-such.safetensors");
    expect_read_error(path, ": No such file or directory");
    expect_read_error(dir, "not a regular file");
    /* err may be NULL or empty */
    assert_null(tg_safetensors_read(path, NULL, 0));
    err[0] = 'x';
    assert_null(tg_safetensors_read(path, err, 0));
    assert_int_equal(err[0], 'x');
    assert_null(tg_safetensors_read(NULL, err, sizeof err));
    tg_safetensors_close(NULL);
    assert_int_equal(tg_safetensors_count(NULL), 0);
    assert_null(tg_safetensors_find(NULL, "x"));
    assert_null(tg_safetensors_at(NULL, 0));
    assert_null(tg_safetensors_meta(NULL, "x"));
}

static void test_write_missing_dir(void **s)
{
    (void)s;
    const char *path = tmp_path("no-such-dir/x.safetensors");
    static const float v[1] = {1};
    tg_st_tensor t = {.name = "v", .dtype = TG_F32, .ndim = 1, .shape = {1}, .data = v};
    err[0] = 0;
    assert_int_equal(tg_safetensors_write(path, &t, 1, NULL, NULL, 0, err, sizeof err), TG_ERR_IO);
    if (strncmp(err, path, strlen(path)) || !strstr(err, "No such file or directory"))
        fail_msg("unexpected message \"%s\"", err);
    assert_false(exists(path));
    assert_false(tmp_exists(path));
    assert_int_equal(tg_safetensors_write(path, &t, 1, NULL, NULL, 0, NULL, 0), TG_ERR_IO);
}

static void test_overwrite(void **s)
{
    (void)s;
    const char *path = tmp_path("over.safetensors");
    static const float a[2] = {1, 2}, b[3] = {3, 4, 5};
    tg_st_tensor ta = {.name = "a", .dtype = TG_F32, .ndim = 1, .shape = {2}, .data = a};
    tg_st_tensor tb = {.name = "b", .dtype = TG_F32, .ndim = 1, .shape = {3}, .data = b};
    assert_int_equal(tg_safetensors_write(path, &ta, 1, NULL, NULL, 0, err, sizeof err), TG_OK);
    assert_int_equal(tg_safetensors_write(path, &tb, 1, NULL, NULL, 0, err, sizeof err), TG_OK);
    assert_false(tmp_exists(path));
    tg_st_file *f = read_ok(path);
    assert_int_equal(tg_safetensors_count(f), 1);
    assert_null(tg_safetensors_find(f, "a"));
    assert_same_tensor(&tb, tg_safetensors_find(f, "b"));
    tg_safetensors_close(f);
}

/* A write that fails part way (here: the file size limit, as a full disk
 * would) leaves the old file as it was and no temporary file. */
static void test_failed_write_keeps_old(void **s)
{
    (void)s;
    const char *path = tmp_path("keep.safetensors");
    write_small(path);
    size_t before_len;
    unsigned char *before = slurp(path, &before_len);

    static float big[4096];
    tg_st_tensor t = {.name = "big", .dtype = TG_F32, .ndim = 1, .shape = {4096}, .data = big};
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 1000;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    tg_status st = tg_safetensors_write(path, &t, 1, NULL, NULL, 0, err, sizeof err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);

    assert_int_equal(st, TG_ERR_IO);
    if (strncmp(err, path, strlen(path)) || !strstr(err, "cannot write"))
        fail_msg("unexpected message \"%s\"", err);
    assert_false(tmp_exists(path));
    size_t after_len;
    unsigned char *after = slurp(path, &after_len);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, after_len);
    free(before);
    free(after);
}

/* rename() over a directory fails: the temporary file must go. */
static void test_rename_failure(void **s)
{
    (void)s;
    const char *path = tmp_path("a-directory");
    assert_int_equal(mkdir(path, 0700), 0);
    char inner[PATH_MAX];
    snprintf(inner, sizeof inner, "%s/keep", path);
    spit(inner, "x", 1);
    static const float v[1] = {1};
    tg_st_tensor t = {.name = "v", .dtype = TG_F32, .ndim = 1, .shape = {1}, .data = v};
    assert_int_equal(tg_safetensors_write(path, &t, 1, NULL, NULL, 0, err, sizeof err), TG_ERR_IO);
    if (strncmp(err, path, strlen(path)) || !strstr(err, "cannot rename"))
        fail_msg("unexpected message \"%s\"", err);
    assert_false(tmp_exists(path));
    assert_int_equal(remove(inner), 0);
    assert_int_equal(rmdir(path), 0);
}

/* The written file gets the mode fopen would give it (mkstemp makes 0600),
 * and reading a FIFO or a device is refused at once instead of blocking on
 * it or reading it forever. */
static void test_mode_and_special_files(void **s)
{
    (void)s;
    mode_t old = umask(027);
    const char *path = tmp_path("mode.safetensors");
    write_small(path);
    umask(old);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);

    const char *fifo = tmp_path("fifo.safetensors");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    const char *special[] = {fifo, "/dev/zero"};
    for (int i = 0; i < 2; i++) {
        err[0] = 0;
        assert_null(tg_safetensors_read(special[i], err, sizeof err));
        if (!strstr(err, special[i]) || !strstr(err, "not a regular file"))
            fail_msg("unexpected message \"%s\"", err);
    }
}

static void expect_write_arg_error(const tg_st_tensor *t, int n, const char *const *k, const char *const *v,
                                   int nm, const char *want)
{
    const char *path = tmp_path("args.safetensors");
    err[0] = 0;
    assert_int_equal(tg_safetensors_write(path, t, n, k, v, nm, err, sizeof err), TG_ERR_ARG);
    if (strncmp(err, path, strlen(path)) || !strstr(err, want))
        fail_msg("expected \"%s\" in \"%s\"", want, err);
    assert_false(exists(path));
    assert_false(tmp_exists(path));
}

static void test_write_bad_args(void **s)
{
    (void)s;
    static const float v[4] = {0};
    tg_st_tensor ok = {.name = "v", .dtype = TG_F32, .ndim = 1, .shape = {4}, .data = v};
    tg_st_tensor t[2] = {ok, ok};
    expect_write_arg_error(t, 2, NULL, NULL, 0, "duplicate tensor name \"v\"");
    t[1].name = NULL;
    expect_write_arg_error(t, 2, NULL, NULL, 0, "tensor 1 (\"(null)\"): name is NULL");
    t[1] = ok, t[1].name = "__metadata__";
    expect_write_arg_error(t, 2, NULL, NULL, 0, "reserved");
    t[1] = ok, t[1].name = "bad\xff";
    expect_write_arg_error(t, 2, NULL, NULL, 0, "not valid UTF-8");
    t[1] = ok, t[1].name = "w", t[1].ndim = 5;
    expect_write_arg_error(t, 2, NULL, NULL, 0, "ndim");
    t[1].ndim = 2, t[1].shape[1] = -1;
    expect_write_arg_error(t, 2, NULL, NULL, 0, "negative");
    t[1].shape[1] = 2, t[1].data = NULL;
    expect_write_arg_error(t, 2, NULL, NULL, 0, "data is NULL");
    t[1].data = v, t[1].dtype = (tg_dtype)7;
    expect_write_arg_error(t, 2, NULL, NULL, 0, "dtype");
    t[1].dtype = TG_I32, t[1].ndim = 4;
    t[1].shape[0] = t[1].shape[1] = t[1].shape[2] = t[1].shape[3] = INT_MAX;
    expect_write_arg_error(t, 2, NULL, NULL, 0, "overflows");
    const char *k[2] = {"k", "k"}, *val[2] = {"a", "b"};
    expect_write_arg_error(&ok, 1, k, val, 2, "duplicate metadata key \"k\"");
    val[1] = NULL, k[1] = "j";
    expect_write_arg_error(&ok, 1, k, val, 2, "metadata entry 1: value is NULL");
    expect_write_arg_error(&ok, 1, NULL, val, 1, "bad metadata arguments");
    expect_write_arg_error(NULL, 1, NULL, NULL, 0, "bad tensor arguments");
    expect_write_arg_error(&ok, -1, NULL, NULL, 0, "bad tensor arguments");
    assert_int_equal(tg_safetensors_write(NULL, &ok, 1, NULL, NULL, 0, err, sizeof err), TG_ERR_ARG);
}

/* ---- setup --------------------------------------------------------------- */

static int make_dir(void **s)
{
    (void)s;
    snprintf(dir, sizeof dir, "/tmp/tg-safetensors-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

/* Removes the directory; fails when a temporary file was left behind. */
static int remove_dir(void **s)
{
    (void)s;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int leftovers = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (strstr(e->d_name, ".tmp-")) {
            fprintf(stderr, "left behind: %s\n", e->d_name);
            leftovers++;
        }
        remove(tmp_path(e->d_name));
    }
    closedir(d);
    return rmdir(dir) == 0 && !leftovers ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_header_alignment),
        cmocka_unit_test(test_independent_parse),
        cmocka_unit_test(test_truncated_every_length),
        cmocka_unit_test(test_corrupt_bytes),
        cmocka_unit_test(test_garbage_headers),
        cmocka_unit_test(test_header_length),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_unusual_valid_headers),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_write_missing_dir),
        cmocka_unit_test(test_overwrite),
        cmocka_unit_test(test_failed_write_keeps_old),
        cmocka_unit_test(test_rename_failure),
        cmocka_unit_test(test_write_bad_args),
        cmocka_unit_test(test_mode_and_special_files),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
