/* Writing safetensors files; the format is described in safetensors_util.h. */
#include "safetensors_util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The temporary file sits next to path (a rename cannot cross file
 * systems) under a name no other writer can hold. */
#define TMP_SUFFIX ".tmp-XXXXXX"

/* ---- writer -------------------------------------------------------------- */

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

/* The mode a file created with fopen would get: 0666 less the umask (read
 * by setting it and putting it back; mkstemp itself creates 0600). */
static mode_t creation_mode(void)
{
    mode_t mask = umask(022);
    umask(mask);
    return 0666 & ~mask;
}

/* Writes everything to tmp (a fresh file mkstemp made, open as fd), makes it
 * durable, then renames it over path; tmp is removed on any failure, so path
 * keeps its old content. */
static tg_status write_atomically(const char *path, char *tmp, const strbuf *hdr, const tg_st_tensor *t,
                                  int n, char *err, size_t errlen)
{
    int fd = mkstemp(tmp);
    if (fd < 0) {
        set_err(err, errlen, "%s: cannot create a temporary file %s: %s", path, tmp, strerror(errno));
        return TG_ERR_IO;
    }
    FILE *fp = fdopen(fd, "wb");
    int e = 0;
    if (!fp) {
        e = errno;
        close(fd);
    }
    errno = 0;
    if (!e && (fchmod(fd, creation_mode()) != 0 || !write_contents(fp, hdr, t, n)))
        e = errno ? errno : EIO;
    else if (!e && (fflush(fp) != 0 || fsync(fileno(fp)) != 0))
        e = errno ? errno : EIO;
    if (fp && fclose(fp) != 0 && !e)
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
    char *tmp = malloc(plen + sizeof TMP_SUFFIX);
    if (hdr.oom || !tmp) {
        set_err(err, errlen, "%s: out of memory", path);
        s = TG_ERR_NOMEM;
    } else {
        memcpy(tmp, path, plen);
        memcpy(tmp + plen, TMP_SUFFIX, sizeof TMP_SUFFIX);
        s = write_atomically(path, tmp, &hdr, tensors, n, err, errlen);
    }
    free(tmp);
    free(hdr.s);
    return s;
}
