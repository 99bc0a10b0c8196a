/* Training data: byte-level text, pre-tokenized token files, and batches of
 * windows over a token stream.
 *
 * Files are read only when they are regular files no larger than
 * TG_DATA_MAX_BYTES (a FIFO, a device such as /dev/zero or a directory is
 * refused before any byte is read), and a token file's format is the one
 * the caller names: a file of little-endian uint16 looks like anything, so
 * it is never guessed. */
#include "tapegrad_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LLMC_MAGIC 20240520
#define LLMC_VERSION 1
enum { LLMC_HEADER_INTS = 256, LLMC_HEADER_BYTES = 4 * LLMC_HEADER_INTS };

/* Messages go through the library's error record (tg_last_error too); the
 * callers return their own status. err may be NULL. */
#define put_err(err, errlen, ...) ((void)tg_error(err, errlen, TG_ERR_ARG, __VA_ARGS__))

static const char *file_kind(mode_t m)
{
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) || S_ISBLK(m) ? "a device"
         : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* The whole of a regular file of at most TG_DATA_MAX_BYTES, in a fresh
 * buffer (one byte more, so an empty file still gets one). */
static unsigned char *read_regular(const char *path, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK); /* a FIFO opens without waiting, then fails fstat's test */
    if (fd < 0) {
        put_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    unsigned char *buf = NULL;
    if (fstat(fd, &st) != 0)
        put_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        put_err(err, errlen, "%s is %s, not a regular file", path, file_kind(st.st_mode));
    else if (st.st_size > TG_DATA_MAX_BYTES)
        put_err(err, errlen, "%s has %lld bytes, more than the limit of %lld (TG_DATA_MAX_BYTES)", path,
                (long long)st.st_size, (long long)TG_DATA_MAX_BYTES);
    else if (!(buf = malloc((size_t)st.st_size + 1)))
        put_err(err, errlen, "%s: out of memory for %lld bytes", path, (long long)st.st_size);
    size_t want = buf ? (size_t)st.st_size : 0, got = 0;
    while (buf && got < want) {
        ssize_t k = read(fd, buf + got, want - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            put_err(err, errlen, "cannot read %s: %s", path, k < 0 ? strerror(errno) : "the file shrank");
            free(buf);
            buf = NULL;
        } else {
            got += (size_t)k;
        }
    }
    close(fd);
    *len = got;
    return buf;
}

/* ---- byte-level text ---------------------------------------------------------- */

/* Why text of len bytes is not text, or NULL: a NUL byte, or control
 * characters (other than tab, newline, vertical tab, form feed and carriage
 * return) in more than 1 byte of 10. */
static const char *not_text(const unsigned char *text, size_t len, char *why, size_t whylen)
{
    const unsigned char *nul = memchr(text, 0, len);
    if (nul) {
        snprintf(why, whylen, "a NUL byte at offset %zu", (size_t)(nul - text));
        return why;
    }
    size_t control = 0;
    for (size_t i = 0; i < len; i++)
        control += (text[i] < 0x20 && (text[i] < '\t' || text[i] > '\r')) || text[i] == 0x7f;
    if (control > len / 10) {
        snprintf(why, whylen, "%zu of its %zu bytes are control characters", control, len);
        return why;
    }
    return NULL;
}

static void vocab_from_bytes(tg_byte_vocab *v, const unsigned char *text, size_t len)
{
    bool used[256] = {false};
    for (size_t i = 0; i < len; i++)
        used[text[i]] = true;
    v->size = 0;
    for (int c = 0; c < 256; c++) {
        v->index[c] = (short)(used[c] ? v->size : -1);
        if (used[c])
            v->bytes[v->size++] = (unsigned char)c;
    }
}

tg_status tg_text_load(const char *path, tg_tokens *out, tg_byte_vocab *vocab, char *err, size_t errlen)
{
    if (!path || !out || !vocab) {
        put_err(err, errlen, "tg_text_load: NULL argument");
        return TG_ERR_ARG;
    }
    *out = (tg_tokens){0};
    size_t len;
    unsigned char *text = read_regular(path, &len, err, errlen);
    if (!text)
        return TG_ERR_IO;
    char why[96];
    if (not_text(text, len, why, sizeof why)) {
        put_err(err, errlen, "%s is not text: %s", path, why);
        free(text);
        return TG_ERR_FORMAT;
    }
    vocab_from_bytes(vocab, text, len);
    out->ids = malloc((len ? len : 1) * sizeof *out->ids);
    if (!out->ids) {
        put_err(err, errlen, "%s: out of memory", path);
        free(text);
        return TG_ERR_NOMEM;
    }
    for (size_t i = 0; i < len; i++)
        out->ids[i] = vocab->index[text[i]];
    out->n = (long)len;
    out->vocab = vocab->size;
    free(text);
    return TG_OK;
}

int tg_byte_encode(const tg_byte_vocab *v, int byte)
{
    return v && byte >= 0 && byte < 256 ? v->index[byte] : -1;
}

int tg_byte_decode(const tg_byte_vocab *v, int token)
{
    return v && token >= 0 && token < v->size ? v->bytes[token] : -1;
}

size_t tg_byte_vocab_format(const tg_byte_vocab *v, char *buf, size_t len)
{
    size_t k = 0;
    if (buf && len)
        buf[0] = '\0';
    for (int i = 0; v && i < v->size; i++) {
        char one[8];
        int w = snprintf(one, sizeof one, i ? ",%d" : "%d", v->bytes[i]);
        if (buf && k + (size_t)w < len)
            memcpy(buf + k, one, (size_t)w + 1);
        else if (buf && len)
            buf[k < len ? k : len - 1] = '\0';
        k += (size_t)w;
    }
    return k;
}

/* The canonical form only: byte values in increasing order, in decimal
 * without leading zeros, separated by single commas. Checked by parsing
 * loosely and comparing the formatted result with the input. */
tg_status tg_byte_vocab_parse(const char *s, tg_byte_vocab *v, char *err, size_t errlen)
{
    if (!s || !v) {
        put_err(err, errlen, "tg_byte_vocab_parse: NULL argument");
        return TG_ERR_ARG;
    }
    tg_byte_vocab got = {0};
    for (int c = 0; c < 256; c++)
        got.index[c] = -1;
    const char *p = s;
    bool ok = *p != '\0';
    while (ok && *p) {
        int byte = 0, digits = 0;
        for (; *p >= '0' && *p <= '9' && digits < 4; p++, digits++)
            byte = byte * 10 + (*p - '0');
        ok = digits > 0 && byte < 256 && (got.size == 0 || byte > got.bytes[got.size - 1]) &&
             (*p == '\0' || (*p == ',' && p[1] != '\0'));
        if (ok) {
            got.index[byte] = (short)got.size;
            got.bytes[got.size++] = (unsigned char)byte;
            p += *p == ',';
        }
    }
    char canon[256 * 4];
    tg_byte_vocab_format(&got, canon, sizeof canon);
    if (!ok || strcmp(canon, s)) {
        put_err(err, errlen, "'%.40s%s' is not a byte vocabulary (increasing byte values 0-255, comma-separated)",
                s, strlen(s) > 40 ? "..." : "");
        return TG_ERR_FORMAT;
    }
    *v = got;
    return TG_OK;
}

/* ---- token files ----------------------------------------------------------------- */

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* The uint16 tokens of an llm.c file after checking its header; *count
 * gets their number. */
static const unsigned char *llmc_tokens(const char *path, const unsigned char *buf, size_t len, size_t *count,
                                        char *err, size_t errlen)
{
    if (len < LLMC_HEADER_BYTES) {
        put_err(err, errlen, "%s: %zu bytes, too short for llm.c's %d-byte header", path, len, LLMC_HEADER_BYTES);
        return NULL;
    }
    uint32_t magic = le32(buf), version = le32(buf + 4), n = le32(buf + 8);
    if (magic != LLMC_MAGIC) {
        put_err(err, errlen, "%s: not an llm.c token file (magic %u, expected %u)", path, magic, LLMC_MAGIC);
        return NULL;
    }
    if (version != LLMC_VERSION) {
        put_err(err, errlen, "%s: llm.c token file version %u, only version %d (uint16 tokens) is read", path,
                version, LLMC_VERSION);
        return NULL;
    }
    if ((uint64_t)n * 2 != len - LLMC_HEADER_BYTES) {
        put_err(err, errlen, "%s: the header says %u tokens (%llu bytes after it), the file has %zu bytes after it",
                path, n, 2 * (unsigned long long)n, len - LLMC_HEADER_BYTES);
        return NULL;
    }
    *count = n;
    return buf + LLMC_HEADER_BYTES;
}

static tg_status check_load_args(const char *path, tg_token_format fmt, int vocab, tg_tokens *out, char *err,
                                 size_t errlen)
{
    if (!path || !out) {
        put_err(err, errlen, "tg_tokens_load: NULL argument");
        return TG_ERR_ARG;
    }
    if (fmt != TG_TOKENS_U16 && fmt != TG_TOKENS_LLMC) {
        put_err(err, errlen, "tg_tokens_load: unknown format %d", (int)fmt);
        return TG_ERR_ARG;
    }
    if (vocab < (fmt == TG_TOKENS_U16 ? 1 : 0) || vocab > 65536) {
        put_err(err, errlen, "%s: vocabulary size %d: %s", path, vocab,
                fmt == TG_TOKENS_U16 ? "a raw uint16 token file needs one from 1 to 65536"
                                     : "expected 0 (the largest token + 1) or 1 to 65536");
        return TG_ERR_ARG;
    }
    return TG_OK;
}

tg_status tg_tokens_load(const char *path, tg_token_format fmt, int vocab, tg_tokens *out, char *err,
                         size_t errlen)
{
    tg_status s = check_load_args(path, fmt, vocab, out, err, errlen);
    if (s != TG_OK)
        return s;
    *out = (tg_tokens){0};
    size_t len, n = 0;
    unsigned char *buf = read_regular(path, &len, err, errlen);
    if (!buf)
        return TG_ERR_IO;
    const unsigned char *tok = buf;
    if (fmt == TG_TOKENS_LLMC)
        tok = llmc_tokens(path, buf, len, &n, err, errlen);
    else if (len % 2)
        put_err(err, errlen, "%s: %zu bytes, an odd number for uint16 tokens", path, len);
    else
        n = len / 2;
    s = !tok || (fmt == TG_TOKENS_U16 && len % 2) ? TG_ERR_FORMAT : TG_OK;
    if (s == TG_OK && !(out->ids = malloc((n ? n : 1) * sizeof *out->ids))) {
        put_err(err, errlen, "%s: out of memory", path);
        s = TG_ERR_NOMEM;
    }
    int top = -1;
    for (size_t i = 0; s == TG_OK && i < n; i++) {
        int t = tok[2 * i] | tok[2 * i + 1] << 8;
        if (vocab && t >= vocab) {
            put_err(err, errlen, "%s: token %d at position %zu is not below the vocabulary size %d", path, t, i, vocab);
            s = TG_ERR_FORMAT;
        }
        out->ids[i] = t;
        top = t > top ? t : top;
    }
    free(buf);
    if (s != TG_OK) {
        tg_tokens_free(out);
        return s;
    }
    out->n = (long)n;
    out->vocab = vocab ? vocab : top + 1;
    return TG_OK;
}

bool tg_tokens_llmc_header(const char *path)
{
    int fd = path ? open(path, O_RDONLY | O_NONBLOCK) : -1;
    if (fd < 0)
        return false;
    struct stat st;
    unsigned char head[8];
    bool yes = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && read(fd, head, sizeof head) == (ssize_t)sizeof head &&
               le32(head) == LLMC_MAGIC && le32(head + 4) == LLMC_VERSION;
    close(fd);
    return yes;
}

void tg_tokens_free(tg_tokens *t)
{
    if (!t)
        return;
    free(t->ids);
    *t = (tg_tokens){0};
}

/* ---- batches ------------------------------------------------------------------------ */

static tg_status check_batch_args(const int *tokens, long n, int batch, int ctx, const int *ids,
                                  const int *targets)
{
    return tokens && ids && targets && batch >= 1 && ctx >= 1 && n >= (long)ctx + 1 ? TG_OK : TG_ERR_ARG;
}

tg_status tg_batch_random(const int *tokens, long n, tg_rng *r, int batch, int ctx, int *ids, int *targets)
{
    if (!r || check_batch_args(tokens, n, batch, ctx, ids, targets) != TG_OK)
        return TG_ERR_ARG;
    uint64_t starts = (uint64_t)(n - ctx); /* windows of ctx + 1 tokens */
    for (size_t b = 0; b < (size_t)batch; b++) {
        size_t s = (size_t)(((uint64_t)tg_rng_u32(r) * starts) >> 32);
        for (size_t i = 0; i < (size_t)ctx; i++) {
            ids[b * (size_t)ctx + i] = tokens[s + i];
            targets[b * (size_t)ctx + i] = tokens[s + i + 1];
        }
    }
    return TG_OK;
}

long tg_batch_windows(long n, int ctx)
{
    return ctx >= 1 && n > ctx ? (n - 1) / ctx : 0;
}

tg_status tg_batch_window(const int *tokens, long n, long first, int count, int ctx, int *ids, int *targets)
{
    if (check_batch_args(tokens, n, count, ctx, ids, targets) != TG_OK || first < 0 ||
        first > tg_batch_windows(n, ctx) - count)
        return TG_ERR_ARG;
    const int *w = tokens + (size_t)first * (size_t)ctx;
    for (size_t i = 0; i < (size_t)count * (size_t)ctx; i++) {
        ids[i] = w[i];
        targets[i] = w[i + 1];
    }
    return TG_OK;
}
