/* The sample_gpt program, on checkpoints train_gpt makes here: it samples
 * what train_gpt's own end-of-run sample is (same model, prompt, seed and
 * settings), prompts in text and in ids, the sort task's checkpoint (no text
 * vocabulary), and every bad flag, prompt and file.
 * argv[1] is sample_gpt, argv[2] train_gpt; files go to a temporary
 * directory. */
#define _GNU_SOURCE
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *sample_exe, *train_exe;
static const char *dir;

#define TINY "--layers 1 --dim 16 --heads 2 --batch 8 --threads 2 --eval-every 10 --eval-iters 2"

/* Runs exe with args in dir; stdout+stderr into out. Returns the exit status. */
static int run_exe(const char *exe, const char *args, char *out, size_t len)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s", exe, args);
    return tu_run(cmd, false, out, len);
}

static int run(const char *args, char *out, size_t len)
{
    return run_exe(sample_exe, args, out, len);
}

static void expect_usage_error(const char *args, const char *message)
{
    char out[4096];
    int rc = run(args, out, sizeof out);
    char *nl = strchr(out, '\n');
    if (rc != 2 || !strstr(out, message) || !nl || nl[1])
        fail_msg("sample_gpt %s: exit %d, output:\n%s\n(expected exit 2 and one line with '%s')", args, rc, out,
                 message);
}

/* A text of lowercase words and newlines (no capitals, no digits), and
 * tiny checkpoints trained on it and on the sort task. train_gpt's sample
 * (200 characters, seed 5, so its sampler's seed is 12) is kept. */
static char train_sample[512];

static int setup(void **s)
{
    (void)s;
    static const char *words[] = {"the ", "cat ", "sat ", "on ", "a ", "mat ", "and ", "dog ", "ran\n"};
    char text[6000];
    size_t n = 0;
    for (int i = 0; n + 8 < sizeof text; i++) {
        const char *w = words[(i * 7 + i / 9) % 9];
        memcpy(text + n, w, strlen(w));
        n += strlen(w);
    }
    tu_write_file("text.txt", text, n);
    char out[8192];
    int rc = run_exe(train_exe, "--data text.txt --ctx 16 --steps 30 --sample 200 --seed 5 --save text.st " TINY, out,
                     sizeof out);
    if (rc)
        fail_msg("train_gpt: %s", out);
    const char *at = strstr(out, "top-k 0):\n");
    assert_non_null(at);
    at += strlen("top-k 0):\n");
    assert_true(strlen(at) == 201); /* 200 characters and a newline */
    memcpy(train_sample, at, 201);
    if (run_exe(train_exe, "--steps 5 --save sort.st " TINY, out, sizeof out))
        fail_msg("train_gpt: %s", out);
    return 0;
}

/* The default prompt is the newline train_gpt starts from; sample_gpt
 * prints it, then the 200 characters. */
static void test_same_as_train_gpt(void **s)
{
    (void)s;
    char out[4096];
    assert_int_equal(run("text.st --tokens 200 --seed 12", out, sizeof out), 0);
    assert_int_equal(out[0], '\n');
    assert_string_equal(out + 1, train_sample);
    /* The same seed again gives the same text; another seed another. */
    char again[4096];
    assert_int_equal(run("text.st --tokens 200 --seed 12 --threads 1", again, sizeof again), 0);
    assert_string_equal(out, again);
    assert_int_equal(run("text.st --tokens 200 --seed 13", again, sizeof again), 0);
    assert_string_not_equal(out, again);
}

/* Sample i draws from seed S + i, after a "--- sample i" line. */
static void test_num_samples(void **s)
{
    (void)s;
    char out[8192], one[2048], want[4096];
    assert_int_equal(run("text.st --tokens 50 --seed 40 --num-samples 3 --prompt 'the cat'", out, sizeof out), 0);
    want[0] = '\0';
    for (int i = 0; i < 3; i++) {
        char args[128];
        snprintf(args, sizeof args, "text.st --tokens 50 --seed %d --prompt 'the cat'", 40 + i);
        assert_int_equal(run(args, one, sizeof one), 0);
        assert_int_equal(strlen(one), strlen("the cat") + 50 + 1);
        assert_int_equal(strncmp(one, "the cat", 7), 0);
        snprintf(want + strlen(want), sizeof want - strlen(want), "--- sample %d\n%s", i, one);
    }
    assert_string_equal(out, want);
}

/* Top-k 1 is greedy: the seed no longer matters. */
static void test_greedy(void **s)
{
    (void)s;
    char a[2048], b[2048];
    assert_int_equal(run("text.st --tokens 60 --top-k 1 --seed 1 --prompt-ids 1,2,3", a, sizeof a), 0);
    assert_int_equal(run("text.st --tokens 60 --top-k 1 --seed 2 --prompt-ids 1,2,3 --temperature 3", b, sizeof b), 0);
    assert_string_equal(a, b);
}

static void test_prompt_errors(void **s)
{
    (void)s;
    expect_usage_error("text.st --prompt 'the Cat'", "character 'C' (byte 67) at position 5 is not in the checkpoint's "
                       "vocabulary");
    expect_usage_error("text.st --prompt 'the 9'", "character '9' (byte 57) at position 5");
    expect_usage_error("text.st --prompt \"$(printf 'a\\tb')\"", "byte 9 at position 2 is not in");
    expect_usage_error("text.st --prompt ''", "--prompt is empty");
    expect_usage_error("text.st --prompt a --prompt-ids 1", "not both");
    expect_usage_error("text.st --prompt-ids 1,,2", "item 2 (\"\") is not a token id");
    expect_usage_error("text.st --prompt-ids 1,99", "item 2 (\"99\") is not a token id from 0 to");
    expect_usage_error("text.st --prompt-ids -1", "item 1 (\"-1\")");
    expect_usage_error("text.st --prompt-ids 1,", "item 2");
}

static void test_bad_flags(void **s)
{
    (void)s;
    expect_usage_error("", "no checkpoint given");
    expect_usage_error("text.st other.st", "only one checkpoint");
    expect_usage_error("text.st --tokens 0", "--tokens 0: expected an integer from 1");
    expect_usage_error("text.st --tokens 2.5", "--tokens 2.5");
    expect_usage_error("text.st --tokens", "--tokens needs a value");
    expect_usage_error("text.st --temperature 0", "--temperature 0: expected a number above 0");
    expect_usage_error("text.st --temperature nan", "--temperature nan");
    expect_usage_error("text.st --temperature -1", "--temperature -1");
    expect_usage_error("text.st --top-k -1", "--top-k -1: expected an integer of at least 0");
    expect_usage_error("text.st --seed -3", "--seed -3: expected a non-negative integer");
    expect_usage_error("text.st --num-samples 0", "--num-samples 0");
    expect_usage_error("text.st --threads 0", "--threads 0");
    expect_usage_error("text.st --threads 100000", "--threads 100000");
    expect_usage_error("text.st --bogus 1", "unknown flag '--bogus'");
    char out[4096];
    assert_int_equal(run("--help", out, sizeof out), 0);
    assert_non_null(strstr(out, "--prompt-ids LIST"));
    assert_non_null(strstr(out, "--num-samples M"));
}

static void test_bad_files(void **s)
{
    (void)s;
    expect_usage_error("no_such.st", "no_such.st");
    tu_write_file("junk.st", "not a safetensors file at all", 29);
    expect_usage_error("junk.st", "junk.st");
    /* The same model with a vocabulary that does not fit it. */
    char err[256] = "", path[300], bad_path[300];
    snprintf(path, sizeof path, "%s/text.st", dir);
    tg_gpt *m = tg_gpt_load(path, err, sizeof err);
    if (!m)
        fail_msg("tg_gpt_load: %s", err);
    const char *key[] = {"chars"};
    const struct {
        const char *name, *chars, *message;
    } cases[] = {
        {"dup.st", "10,32,97,97", "distinct byte values"},
        {"few.st", "10,32", "has 2 values, the model's vocabulary is"},
        {"big.st", "10,256", "item 2 (\"256\")"},
        {"word.st", "10,x", "item 2 (\"x\")"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(bad_path, sizeof bad_path, "%s/%s", dir, cases[i].name);
        assert_int_equal(tg_gpt_save(bad_path, m, NULL, key, &cases[i].chars, 1, err, sizeof err), TG_OK);
        char args[64];
        snprintf(args, sizeof args, "%s --tokens 5", cases[i].name);
        expect_usage_error(args, cases[i].message);
    }
    tg_gpt_free(m);
}

/* The sort task's checkpoint has no "chars": prompts are ids, samples ids. */
static void test_ids(void **s)
{
    (void)s;
    char out[4096];
    assert_int_equal(run("sort.st --prompt-ids 3,1,2,0,5,4,10 --tokens 6 --seed 3", out, sizeof out), 0);
    int ids[6], used = 0;
    assert_int_equal(sscanf(out, "%d %d %d %d %d %d%n", &ids[0], &ids[1], &ids[2], &ids[3], &ids[4], &ids[5], &used), 6);
    assert_string_equal(out + used, "\n");
    for (int i = 0; i < 6; i++)
        assert_true(ids[i] >= 0 && ids[i] < 11);
    assert_int_equal(run("sort.st --tokens 3", out, sizeof out), 0); /* default prompt: token 0 */
    expect_usage_error("sort.st --prompt 123", "has no text vocabulary");
    expect_usage_error("sort.st --prompt-ids 11", "item 1 (\"11\") is not a token id from 0 to 10");
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_sample_gpt PATH_TO_sample_gpt PATH_TO_train_gpt\n");
        return 2;
    }
    sample_exe = argv[1];
    train_exe = argv[2];
    if (!(dir = tu_tmp_dir_make("tg_sample_gpt_"))) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_as_train_gpt), cmocka_unit_test(test_num_samples),
        cmocka_unit_test(test_greedy),            cmocka_unit_test(test_prompt_errors),
        cmocka_unit_test(test_bad_flags),         cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_ids),
    };
    int rc = cmocka_run_group_tests(tests, setup, NULL);
    if (tu_tmp_dir_remove() != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
