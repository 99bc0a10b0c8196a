/* Data files (tg_text_load, tg_tokens_load) on small files written here:
 * text and its vocabulary, binary files refused, both token formats, a
 * token outside the vocabulary named by position, bad llm.c headers,
 * truncated files, special files; and the batch functions' windows. */
#include "test_util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[512];


static void spit(const char *name, const void *b, size_t len)
{
    FILE *f = fopen(tu_tmp_path(name), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* An llm.c file: header (magic, version, count as given) and tokens. */
static void write_llmc(const char *name, int magic, int version, int count, const uint16_t *tok, int n)
{
    unsigned char *b = calloc(1024 + 2 * (size_t)n, 1);
    assert_non_null(b);
    int head[3] = {magic, version, count};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++)
            b[4 * i + k] = (unsigned char)((unsigned)head[i] >> (8 * k));
    for (int i = 0; i < n; i++) {
        b[1024 + 2 * i] = (unsigned char)(tok[i] & 0xff);
        b[1024 + 2 * i + 1] = (unsigned char)(tok[i] >> 8);
    }
    spit(name, b, 1024 + 2 * (size_t)n);
    free(b);
}

static void write_u16(const char *name, const uint16_t *tok, int n)
{
    unsigned char b[64];
    assert_true(n <= 32);
    for (int i = 0; i < n; i++) {
        b[2 * i] = (unsigned char)(tok[i] & 0xff);
        b[2 * i + 1] = (unsigned char)(tok[i] >> 8);
    }
    spit(name, b, 2 * (size_t)n);
}

static void expect_fail(tg_status got, tg_status want, const char *message)
{
    if (got != want || !strstr(err, message))
        fail_msg("status %d (expected %d), message '%s' (expected '%s')", got, want, err, message);
}

static void test_text(void **s)
{
    (void)s;
    const char text[] = "hello, world\n\thello\r\n";
    spit("t.txt", text, sizeof text - 1);
    tg_tokens t;
    tg_byte_vocab v;
    assert_int_equal(tg_text_load(tu_tmp_path("t.txt"), &t, &v, err, sizeof err), TG_OK);
    assert_int_equal(t.n, (long)sizeof text - 1);
    /* \t \n \r space , d e h l o r w, in byte order */
    const char *expect_bytes = "\t\n\r ,dehlorw";
    assert_int_equal(v.size, (int)strlen(expect_bytes));
    assert_int_equal(t.vocab, v.size);
    for (int i = 0; i < v.size; i++) {
        assert_int_equal(tg_byte_decode(&v, i), (unsigned char)expect_bytes[i]);
        assert_int_equal(tg_byte_encode(&v, (unsigned char)expect_bytes[i]), i);
    }
    for (long i = 0; i < t.n; i++)
        assert_int_equal(tg_byte_decode(&v, t.ids[i]), (unsigned char)text[i]);
    assert_int_equal(tg_byte_encode(&v, 'z'), -1);
    assert_int_equal(tg_byte_decode(&v, v.size), -1);
    assert_int_equal(tg_byte_encode(&v, 256), -1);

    char str[1024];
    assert_int_equal(tg_byte_vocab_format(&v, str, sizeof str), strlen("9,10,13,32,44,100,101,104,108,111,114,119"));
    assert_string_equal(str, "9,10,13,32,44,100,101,104,108,111,114,119");
    char small[6];
    assert_int_equal(tg_byte_vocab_format(&v, small, sizeof small), strlen(str));
    assert_string_equal(small, "9,10"); /* cut after the last whole value */
    tg_byte_vocab back;
    assert_int_equal(tg_byte_vocab_parse(str, &back, err, sizeof err), TG_OK);
    assert_int_equal(back.size, v.size);
    assert_memory_equal(back.bytes, v.bytes, (size_t)v.size);
    assert_memory_equal(back.index, v.index, sizeof v.index);
    const char *bad[] = {"", "10,9", "9,9", "9,,10", "9,10,", ",9", "256", "09", " 9", "9 ", "-1", "a", "1,2,x"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        back.size = 77;
        if (tg_byte_vocab_parse(bad[k], &back, err, sizeof err) != TG_ERR_FORMAT || back.size != 77)
            fail_msg("tg_byte_vocab_parse accepted '%s'", bad[k]);
    }
    tg_tokens_free(&t);
    assert_null(t.ids);

    /* Every byte value 1-255 is text (high bytes are UTF-8 or Latin-1). */
    unsigned char all[255 * 20];
    for (int i = 0; i < (int)sizeof all; i++)
        all[i] = (unsigned char)(i % 255 + 1) < 0x20 && i % 255 + 1 != '\n' ? 'a' : (unsigned char)(i % 255 + 1);
    spit("high.txt", all, sizeof all);
    assert_int_equal(tg_text_load(tu_tmp_path("high.txt"), &t, &v, err, sizeof err), TG_OK);
    tg_tokens_free(&t);

    spit("empty.txt", "", 0);
    assert_int_equal(tg_text_load(tu_tmp_path("empty.txt"), &t, &v, err, sizeof err), TG_OK);
    assert_int_equal(t.n, 0);
    assert_int_equal(v.size, 0);
    tg_tokens_free(&t);
}

static void test_not_text(void **s)
{
    (void)s;
    tg_tokens t;
    tg_byte_vocab v;
    spit("nul.txt", "abc\0def", 7);
    expect_fail(tg_text_load(tu_tmp_path("nul.txt"), &t, &v, err, sizeof err), TG_ERR_FORMAT,
                "nul.txt is not text: a NUL byte at offset 3");
    assert_null(t.ids);
    unsigned char ctl[100];
    memset(ctl, 'x', sizeof ctl);
    for (int i = 0; i < 11; i++)
        ctl[9 * i] = 0x01;
    spit("ctl.bin", ctl, sizeof ctl);
    expect_fail(tg_text_load(tu_tmp_path("ctl.bin"), &t, &v, err, sizeof err), TG_ERR_FORMAT,
                "11 of its 100 bytes are control characters");
    ctl[0] = 'x'; /* 10 of 100: still text */
    spit("ctl.txt", ctl, sizeof ctl);
    assert_int_equal(tg_text_load(tu_tmp_path("ctl.txt"), &t, &v, err, sizeof err), TG_OK);
    tg_tokens_free(&t);

    /* Special files are refused without reading (or waiting on) them. */
    expect_fail(tg_text_load(tu_tmp_path("none.txt"), &t, &v, err, sizeof err), TG_ERR_IO,
                "cannot open");
    expect_fail(tg_text_load("/dev/zero", &t, &v, err, sizeof err), TG_ERR_IO, "/dev/zero is a device");
    expect_fail(tg_text_load(tu_tmp_path("."), &t, &v, err, sizeof err), TG_ERR_IO, "is a directory");
    assert_int_equal(mkfifo(tu_tmp_path("fifo"), 0600), 0);
    expect_fail(tg_text_load(tu_tmp_path("fifo"), &t, &v, err, sizeof err), TG_ERR_IO, "fifo is a FIFO");
    expect_fail(tg_tokens_load(tu_tmp_path("fifo"), TG_TOKENS_LLMC, 0, &t, err, sizeof err), TG_ERR_IO, "a FIFO");
    expect_fail(tg_text_load(NULL, &t, &v, err, sizeof err), TG_ERR_ARG, "NULL");
}

static void test_token_files(void **s)
{
    (void)s;
    const uint16_t tok[] = {0, 1, 50256, 300, 7, 65535, 258};
    tg_tokens t;
    write_u16("raw.bin", tok, 7);
    assert_int_equal(tg_tokens_load(tu_tmp_path("raw.bin"), TG_TOKENS_U16, 65536, &t, err, sizeof err), TG_OK);
    assert_int_equal(t.n, 7);
    assert_int_equal(t.vocab, 65536);
    for (int i = 0; i < 7; i++)
        assert_int_equal(t.ids[i], tok[i]);
    tg_tokens_free(&t);
    expect_fail(tg_tokens_load(tu_tmp_path("raw.bin"), TG_TOKENS_U16, 50257, &t, err, sizeof err), TG_ERR_FORMAT,
                "raw.bin: token 65535 at position 5 is not below the vocabulary size 50257");
    assert_null(t.ids);
    expect_fail(tg_tokens_load(tu_tmp_path("raw.bin"), TG_TOKENS_U16, 0, &t, err, sizeof err), TG_ERR_ARG,
                "a raw uint16 token file needs one from 1 to 65536");
    spit("odd.bin", "abc", 3);
    expect_fail(tg_tokens_load(tu_tmp_path("odd.bin"), TG_TOKENS_U16, 100, &t, err, sizeof err), TG_ERR_FORMAT,
                "3 bytes, an odd number");

    write_llmc("l.bin", 20240520, 1, 7, tok, 7);
    assert_int_equal(tg_tokens_load(tu_tmp_path("l.bin"), TG_TOKENS_LLMC, 0, &t, err, sizeof err), TG_OK);
    assert_int_equal(t.n, 7);
    assert_int_equal(t.vocab, 65536); /* the largest token + 1 */
    for (int i = 0; i < 7; i++)
        assert_int_equal(t.ids[i], tok[i]);
    tg_tokens_free(&t);
    expect_fail(tg_tokens_load(tu_tmp_path("l.bin"), TG_TOKENS_LLMC, 50304, &t, err, sizeof err), TG_ERR_FORMAT,
                "token 65535 at position 5 is not below the vocabulary size 50304");
    write_llmc("l2.bin", 20240520, 1, 3, tok + 2, 3);
    assert_int_equal(tg_tokens_load(tu_tmp_path("l2.bin"), TG_TOKENS_LLMC, 0, &t, err, sizeof err), TG_OK);
    assert_int_equal(t.vocab, 50257);
    tg_tokens_free(&t);

    write_llmc("magic.bin", 20240521, 1, 7, tok, 7);
    expect_fail(tg_tokens_load(tu_tmp_path("magic.bin"), TG_TOKENS_LLMC, 0, &t, err, sizeof err), TG_ERR_FORMAT,
                "not an llm.c token file (magic 20240521, expected 20240520)");
    write_llmc("version.bin", 20240520, 2, 7, tok, 7);
    expect_fail(tg_tokens_load(tu_tmp_path("version.bin"), TG_TOKENS_LLMC, 0, &t, err, sizeof err), TG_ERR_FORMAT,
                "version 2");
    write_llmc("count.bin", 20240520, 1, 8, tok, 7);
    expect_fail(tg_tokens_load(tu_tmp_path("count.bin"), TG_TOKENS_LLMC, 0, &t, err, sizeof err), TG_ERR_FORMAT,
                "the header says 8 tokens (16 bytes after it), the file has 14 bytes after it");
    write_llmc("neg.bin", 20240520, 1, -1, tok, 7);
    expect_fail(tg_tokens_load(tu_tmp_path("neg.bin"), TG_TOKENS_LLMC, 0, &t, err, sizeof err), TG_ERR_FORMAT,
                "the header says 4294967295 tokens");
    write_llmc("short.bin", 20240520, 1, 7, tok, 7);
    FILE *f = fopen(tu_tmp_path("short.bin"), "r+b");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), 1000), 0);
    fclose(f);
    expect_fail(tg_tokens_load(tu_tmp_path("short.bin"), TG_TOKENS_LLMC, 0, &t, err, sizeof err), TG_ERR_FORMAT,
                "1000 bytes, too short for llm.c's 1024-byte header");
    /* Text given as a token file: the format is the caller's word, and
     * text fails llm.c's magic. */
    spit("text.bin", "just some text, long enough to be more than a header? no.", 58);
    expect_fail(tg_tokens_load(tu_tmp_path("text.bin"), TG_TOKENS_LLMC, 0, &t, err, sizeof err), TG_ERR_FORMAT,
                "too short");
    expect_fail(tg_tokens_load(tu_tmp_path("l.bin"), (tg_token_format)5, 0, &t, err, sizeof err), TG_ERR_ARG,
                "unknown format");
    expect_fail(tg_tokens_load(tu_tmp_path("l.bin"), TG_TOKENS_LLMC, 65537, &t, err, sizeof err), TG_ERR_ARG,
                "vocabulary size 65537");
    expect_fail(tg_tokens_load(NULL, TG_TOKENS_LLMC, 0, &t, err, sizeof err), TG_ERR_ARG, "NULL");
}

static void test_batches(void **s)
{
    (void)s;
    int tokens[23];
    for (int i = 0; i < 23; i++)
        tokens[i] = 100 + i;
    int ids[4 * 5], targets[4 * 5];
    tg_rng r, r2;
    tg_rng_seed(&r, 9);
    r2 = r;
    assert_int_equal(tg_batch_random(tokens, 23, &r, 4, 5, ids, targets), TG_OK);
    for (int b = 0; b < 4; b++) {
        /* The documented start: floor(u * (n - ctx) / 2^32). */
        int start = (int)(((uint64_t)tg_rng_u32(&r2) * 18) >> 32);
        for (int i = 0; i < 5; i++) {
            assert_int_equal(ids[b * 5 + i], 100 + start + i);
            assert_int_equal(targets[b * 5 + i], 100 + start + i + 1);
        }
    }
    assert_memory_equal(&r, &r2, sizeof r); /* one draw per row */

    assert_int_equal(tg_batch_windows(23, 5), 4);
    assert_int_equal(tg_batch_windows(21, 5), 4);
    assert_int_equal(tg_batch_windows(20, 5), 3);
    assert_int_equal(tg_batch_windows(5, 5), 0);
    assert_int_equal(tg_batch_windows(10, 0), 0);
    assert_int_equal(tg_batch_window(tokens, 23, 1, 3, 5, ids, targets), TG_OK);
    for (int i = 0; i < 15; i++) {
        assert_int_equal(ids[i], 105 + i);
        assert_int_equal(targets[i], 106 + i);
    }
    assert_int_equal(tg_batch_window(tokens, 23, 2, 3, 5, ids, targets), TG_ERR_ARG); /* past the end */
    assert_int_equal(tg_batch_window(tokens, 23, -1, 1, 5, ids, targets), TG_ERR_ARG);
    assert_int_equal(tg_batch_random(tokens, 5, &r, 1, 5, ids, targets), TG_ERR_ARG); /* n < ctx + 1 */
    assert_int_equal(tg_batch_random(tokens, 6, &r, 1, 5, ids, targets), TG_OK);
    assert_int_equal(ids[0], 100);
    assert_int_equal(tg_batch_random(NULL, 23, &r, 1, 5, ids, targets), TG_ERR_ARG);
    assert_int_equal(tg_batch_random(tokens, 23, NULL, 1, 5, ids, targets), TG_ERR_ARG);
    assert_int_equal(tg_batch_random(tokens, 23, &r, 0, 5, ids, targets), TG_ERR_ARG);
}

int main(void)
{
    const char *dir = tu_tmp_dir_make("tg_data_");
    if (!dir) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_not_text),
        cmocka_unit_test(test_token_files),
        cmocka_unit_test(test_batches),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (tu_tmp_dir_remove() != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
