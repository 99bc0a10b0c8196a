/* The train_gpt program: flag errors, the sort task, --data, the log,
 * checkpoints that resume bit for bit, bad checkpoint files, --dump-grads.
 * argv[1] is the path of the executable; files go to a temporary directory. */
#define _GNU_SOURCE
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *exe;
static char dir[256];

/* Small and fast: a model every test can train in well under a second. */
#define TINY "--layers 1 --dim 16 --heads 2 --batch 8 --threads 2 --eval-every 10 --eval-iters 2"

/* Runs train_gpt with args; stdout+stderr go to dir/out.txt. Returns the
 * exit status, and the output in out (truncated to len). */
static int run(const char *args, char *out, size_t len)
{
    char cmd[4096], path[300];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s > out.txt 2>&1", dir, exe, args);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc));
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(out, 1, len - 1, fp);
    out[n] = '\0';
    fclose(fp);
    return WEXITSTATUS(rc);
}

static void expect_usage_error(const char *args, const char *message)
{
    char out[4096];
    int rc = run(args, out, sizeof out);
    if (rc != 2 || !strstr(out, message))
        fail_msg("train_gpt %s: exit %d, output:\n%s\n(expected exit 2 and '%s')", args, rc, out, message);
    assert_null(strstr(out, "step ")); /* no work was done */
}

static void write_file(const char *name, const char *text, size_t len)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void test_bad_flags(void **s)
{
    (void)s;
    expect_usage_error("--heads 3", "--heads must divide --dim");
    expect_usage_error("--lr -1", "--lr -1: expected a number above 0");
    expect_usage_error("--steps 0", "--steps 0: expected an integer of at least 1");
    expect_usage_error("--steps 2.5", "--steps 2.5");
    expect_usage_error("--dim abc", "--dim abc");
    expect_usage_error("--bogus 1", "unknown flag '--bogus'");
    expect_usage_error("--norm side", "expected pre, post, deepnorm or rezero");
    expect_usage_error("--beta2 1", "--beta2 must be below 1");
    expect_usage_error("--ctx 10", "--ctx applies to --data only");
    expect_usage_error("--batch", "--batch needs a value");
    expect_usage_error("--temperature nan", "--temperature nan");
    expect_usage_error("--data no_such_file.txt", "cannot open no_such_file.txt");
    write_file("short.txt", "to be or not to be, that is the question", 40);
    expect_usage_error("--data short.txt --ctx 8", "--ctx 8 is longer than the text allows");
    write_file("empty.txt", "", 0);
    expect_usage_error("--data empty.txt", "is longer than the text allows");
    expect_usage_error("--resume no_such.safetensors", "no_such.safetensors");

    char out[8192];
    assert_int_equal(run("--help", out, sizeof out), 0);
    assert_non_null(strstr(out, "--norm pre|post|deepnorm|rezero"));
    assert_non_null(strstr(out, "--weight-decay"));
}

/* The default task at fewer steps than its default still sorts. */
static void test_sort_task(void **s)
{
    (void)s;
    char out[16384];
    assert_int_equal(run("--steps 300", out, sizeof out), 0);
    const char *acc = strstr(out, "held-out exact-match accuracy: ");
    assert_non_null(acc);
    int right, total;
    assert_int_equal(sscanf(acc, "held-out exact-match accuracy: %d/%d", &right, &total), 2);
    print_message("sort task, 300 steps: %d/%d held-out problems sorted\n", right, total);
    assert_int_equal(total, 1000);
    assert_true(right >= 990);
}

static tg_st_file *open_st(const char *name)
{
    char path[300], err[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    tg_st_file *f = tg_safetensors_read(path, err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    return f;
}

/* The study's block variants train too, and resume through a checkpoint
 * that names them. */
static void test_block_variants(void **s)
{
    (void)s;
    char out[8192];
    assert_int_equal(run("--steps 6 --norm deepnorm --save dn.st " TINY, out, sizeof out), 0);
    assert_non_null(strstr(out, "deepnorm"));
    assert_int_equal(run("--steps 8 --resume dn.st", out, sizeof out), 0);
    assert_int_equal(run("--steps 6 --norm rezero " TINY, out, sizeof out), 0);

    /* --no-bias holds every bias (Linear and LayerNorm) at 0 while the rest trains. */
    assert_int_equal(run("--steps 6 --no-bias --save nb.st " TINY, out, sizeof out), 0);
    tg_st_file *f = open_st("nb.st");
    int biases = 0;
    for (int i = 0; i < tg_safetensors_count(f); i++) {
        const tg_st_tensor *t = tg_safetensors_at(f, i);
        size_t len = strlen(t->name), n = tg_shape_size(t->ndim, t->shape);
        if (strncmp(t->name, "transformer.", 12) || len < 5 || strcmp(t->name + len - 5, ".bias"))
            continue;
        biases++;
        for (size_t k = 0; k < n; k++)
            assert_true(((const float *)t->data)[k] == 0.0f);
    }
    assert_int_equal(biases, 7); /* 6 in the block, ln_f's */
    assert_non_null(tg_safetensors_find(f, "optim.m.transformer.h.0.mlp.c_fc.weight"));
    assert_string_equal(tg_safetensors_meta(f, "bias"), "0");
    tg_safetensors_close(f);
    expect_usage_error("--resume nb.st --no-bias --dim 16 --layers 2", "it was trained with --layers 1");
}

static void make_text(void)
{
    static const char line[] = "the quick brown fox jumps over the lazy dog\nTHE END.\n";
    char text[sizeof line * 60];
    for (int i = 0; i < 60; i++)
        memcpy(text + i * (sizeof line - 1), line, sizeof line - 1);
    write_file("text.txt", text, 60 * (sizeof line - 1));
}

static void test_text_and_log(void **s)
{
    (void)s;
    char out[16384], path[300], row[256];
    make_text();
    assert_int_equal(run("--data text.txt --ctx 16 --steps 20 --sample 40 --log log.csv --profile " TINY, out, sizeof out),
                     0);
    assert_non_null(strstr(out, "vocabulary 34"));
    const char *prof = strstr(out, "profile over the run:");
    assert_non_null(prof);
    /* 20 training steps and 2 validation batches at steps 10 and 20: 24
     * forward passes, each with a token and a position embedding. */
    assert_non_null(strstr(prof, "embedding              48"));
    assert_non_null(strstr(out, "step 20: val loss"));
    assert_non_null(strstr(out, "sample (40 characters"));
    snprintf(path, sizeof path, "%s/log.csv", dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(row, sizeof row, fp));
    assert_string_equal(row, "step,loss,val_loss,lr,grad_norm,seconds\n");
    int rows = 0, step;
    double loss, val = -1, lr, norm, secs;
    while (fgets(row, sizeof row, fp)) {
        rows++;
        if (sscanf(row, "%d,%lf,%lf,%lf,%lf,%lf", &step, &loss, &val, &lr, &norm, &secs) != 6)
            assert_int_equal(sscanf(row, "%d,%lf,,%lf,%lf,%lf", &step, &loss, &lr, &norm, &secs), 5);
        assert_int_equal(step, rows);
        assert_true(loss > 0 && lr > 0 && norm > 0);
    }
    fclose(fp);
    assert_int_equal(rows, 20);
    assert_true(val > 0 && val < 4.0); /* step 20 was evaluated; ln(34) = 3.53 at chance */
}

/* --eval-full against the model rebuilt from the checkpoint and scored one
 * window at a time: 19 windows of 16 in the 318-token validation split, so
 * train_gpt's batches of 8 end in a partial one that must weigh 3/19. */
static void test_eval_full(void **s)
{
    (void)s;
    char out[16384], path[300];
    make_text();
    assert_int_equal(run("--data text.txt --ctx 16 --steps 10 --sample 0 --eval-full --save ef.st " TINY, out, sizeof out),
                     0);
    const char *at = strstr(out, "step 10: val loss ");
    assert_non_null(at);
    double logged = atof(at + strlen("step 10: val loss "));

    tg_gpt_config cfg = {.vocab = 34, .ctx = 16, .layers = 1, .heads = 2, .dim = 16, .norm = TG_PRE_LN};
    char err[256];
    tg_gpt *m = tg_gpt_new(&cfg, 1, err, sizeof err);
    assert_non_null(m);
    tg_st_file *f = open_st("ef.st");
    for (int i = 0; i < m->n_params; i++) {
        const tg_st_tensor *t = tg_safetensors_find(f, m->params[i]->name);
        assert_non_null(t);
        memcpy(m->params[i]->data, t->data, m->params[i]->size * sizeof(float));
    }
    tg_safetensors_close(f);

    unsigned char text[4096];
    snprintf(path, sizeof path, "%s/text.txt", dir);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    long n = (long)fread(text, 1, sizeof text, fp);
    fclose(fp);
    int index[256], vocab = 0;
    for (int c = 0; c < 256; c++)
        index[c] = memchr(text, c, (size_t)n) ? vocab++ : -1;
    assert_int_equal(vocab, 34);
    long first = n * 9 / 10, windows = (n - first - 1) / 16;
    assert_int_equal(windows, 19);
    double sum = 0.0;
    tg_tape *t = tg_tape_new(0);
    for (long w = 0; w < windows; w++) {
        int ids[16], targets[16];
        for (int i = 0; i < 16; i++) {
            ids[i] = index[text[first + w * 16 + i]];
            targets[i] = index[text[first + w * 16 + i + 1]];
        }
        tg_tape_reset(t);
        tg_tensor *loss = tg_gpt_loss(t, m, ids, targets, 1, 16);
        assert_non_null(loss);
        sum += loss->data[0];
    }
    tg_tape_free(t);
    tg_gpt_free(m);
    assert_float_equal(logged, sum / (double)windows, 1e-4);
    expect_usage_error("--eval-full", "--eval-full applies to --data only");
}

/* Every tensor of a (parameters and optimiser state) equals b's, bit for bit. */
static void expect_same_tensors(const char *a, const char *b)
{
    tg_st_file *fa = open_st(a), *fb = open_st(b);
    assert_int_equal(tg_safetensors_count(fa), tg_safetensors_count(fb));
    for (int i = 0; i < tg_safetensors_count(fa); i++) {
        const tg_st_tensor *ta = tg_safetensors_at(fa, i), *tb = tg_safetensors_find(fb, ta->name);
        assert_non_null(tb);
        size_t n = tg_shape_size(ta->ndim, ta->shape);
        if (memcmp(ta->data, tb->data, n * sizeof(float)))
            fail_msg("%s differs between %s and %s", ta->name, a, b);
    }
    assert_string_equal(tg_safetensors_meta(fa, "step"), tg_safetensors_meta(fb, "step"));
    assert_string_equal(tg_safetensors_meta(fa, "rng"), tg_safetensors_meta(fb, "rng"));
    tg_safetensors_close(fa);
    tg_safetensors_close(fb);
}

static void test_resume_is_exact(void **s)
{
    (void)s;
    char out[16384];
    make_text();
    assert_int_equal(run("--data text.txt --ctx 16 --steps 30 --sample 0 --save full.st " TINY, out, sizeof out), 0);
    assert_int_equal(run("--data text.txt --ctx 16 --steps 30 --stop-after 13 --save part.st " TINY, out, sizeof out), 0);
    assert_non_null(strstr(out, "(step 13)"));
    assert_int_equal(run("--data text.txt --resume part.st --sample 0 --save resumed.st --threads 2", out, sizeof out), 0);
    assert_non_null(strstr(out, "steps 13..30"));
    expect_same_tensors("full.st", "resumed.st");

    /* The same for the sort task, through the default Pre-LN and Post-LN. */
    assert_int_equal(run("--steps 12 --norm post --save sfull.st " TINY, out, sizeof out), 0);
    assert_int_equal(run("--steps 12 --norm post --stop-after 5 --save spart.st " TINY, out, sizeof out), 0);
    assert_int_equal(run("--resume spart.st --save sresumed.st --threads 2", out, sizeof out), 0);
    expect_same_tensors("sfull.st", "sresumed.st");
}

/* Whole files, byte for byte. */
static void expect_same_bytes(const char *a, const char *b)
{
    static char ba[1 << 22], bb[1 << 22];
    const char *names[2] = {a, b};
    char *bufs[2] = {ba, bb};
    size_t n[2];
    for (int i = 0; i < 2; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        n[i] = fread(bufs[i], 1, sizeof ba, fp);
        assert_true(n[i] > 0 && n[i] < sizeof ba);
        fclose(fp);
    }
    if (n[0] != n[1] || memcmp(ba, bb, n[0]))
        fail_msg("%s and %s differ", a, b);
}

/* The kernels cut their work by shape, never by thread count, so 1, 2 and 3
 * threads write the same checkpoint. The models are big enough that every
 * kernel splits its work into several chunks. */
static void test_thread_counts_identical(void **s)
{
    (void)s;
    char out[16384], args[512], name[32];
    make_text();
    for (int t = 1; t <= 3; t++) {
        snprintf(args, sizeof args, "--steps 4 --batch 48 --threads %d --save sort%d.st", t, t);
        assert_int_equal(run(args, out, sizeof out), 0);
        snprintf(name, sizeof name, "%d threads", t);
        assert_non_null(strstr(out, name)); /* the run line says what runs */
        snprintf(args, sizeof args,
                 "--data text.txt --ctx 32 --dim 64 --heads 4 --layers 2 --batch 24 --steps 4 --eval-every 2 "
                 "--eval-iters 2 --sample 0 --threads %d --save text%d.st",
                 t, t);
        assert_int_equal(run(args, out, sizeof out), 0);
    }
    for (int t = 2; t <= 3; t++) {
        snprintf(args, sizeof args, "sort%d.st", t);
        expect_same_bytes("sort1.st", args);
        snprintf(args, sizeof args, "text%d.st", t);
        expect_same_bytes("text1.st", args);
    }
    /* --threads wins over the environment; too many is a usage error. */
    assert_int_equal(setenv("TG_NUM_THREADS", "3", 1), 0);
    assert_int_equal(run("--steps 1 --threads 2 " "--layers 1 --dim 16 --heads 2 --batch 8", out, sizeof out), 0);
    assert_non_null(strstr(out, "2 threads"));
    assert_int_equal(run("--steps 1 --layers 1 --dim 16 --heads 2 --batch 8", out, sizeof out), 0);
    assert_non_null(strstr(out, "3 threads"));
    unsetenv("TG_NUM_THREADS");
    expect_usage_error("--threads 100000", "--threads must be at most 256");
}

static void corrupt_copy(const char *from, const char *to, long keep, long flip_at)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, from);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    if (keep >= 0 && (size_t)keep < n)
        n = (size_t)keep;
    if (flip_at >= 0)
        buf[flip_at] ^= 0x5a;
    write_file(to, buf, n);
}

static void test_bad_checkpoints(void **s)
{
    (void)s;
    char out[16384];
    assert_int_equal(run("--steps 3 --save good.st " TINY, out, sizeof out), 0);
    corrupt_copy("good.st", "short.st", 5, -1);
    expect_usage_error("--resume short.st", "short.st");
    corrupt_copy("good.st", "trunc.st", 3000, -1);
    expect_usage_error("--resume trunc.st", "trunc.st");
    corrupt_copy("good.st", "json.st", -1, 9);
    expect_usage_error("--resume json.st", "json.st");
    expect_usage_error("--resume good.st --dim 32", "it was trained with --dim 16");
    expect_usage_error("--resume good.st --norm post", "it was trained with --norm pre");
    make_text();
    expect_usage_error("--resume good.st --data text.txt", "it is for the sort task");
    write_file("notckpt.st", "\x02\0\0\0\0\0\0\0{}", 10);
    expect_usage_error("--resume notckpt.st", "not a train_gpt checkpoint");
    /* A checkpoint that cannot be written is an error naming the file. */
    assert_int_not_equal(run("--steps 3 --save no_dir/x.st " TINY, out, sizeof out), 0);
    assert_non_null(strstr(out, "no_dir/x.st"));
}

static void test_dump_grads(void **s)
{
    (void)s;
    char out[4096];
    assert_int_equal(run("--dump-grads dump.st " TINY, out, sizeof out), 0);
    tg_st_file *f = open_st("dump.st");
    const tg_st_tensor *loss = tg_safetensors_find(f, "loss");
    const tg_st_tensor *g = tg_safetensors_find(f, "grad.transformer.h.0.mlp.c_fc.weight");
    assert_non_null(loss);
    assert_non_null(g);
    assert_non_null(tg_safetensors_find(f, "batch.ids"));
    assert_non_null(tg_safetensors_find(f, "transformer.wte.weight"));
    assert_string_equal(tg_safetensors_meta(f, "dim"), "16");
    float l = *(const float *)loss->data;
    assert_true(l > 1.0f && l < 4.0f); /* near ln(11) = 2.4 at initialisation */
    double norm = 0;
    for (size_t i = 0; i < tg_shape_size(g->ndim, g->shape); i++)
        norm += (double)((const float *)g->data)[i] * ((const float *)g->data)[i];
    assert_true(norm > 0);
    tg_safetensors_close(f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_train_gpt PATH_TO_train_gpt\n");
        return 2;
    }
    exe = argv[1];
    snprintf(dir, sizeof dir, "%s/tg_train_gpt_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_flags),      cmocka_unit_test(test_sort_task),
        cmocka_unit_test(test_text_and_log),   cmocka_unit_test(test_eval_full),
        cmocka_unit_test(test_resume_is_exact), cmocka_unit_test(test_thread_counts_identical),
        cmocka_unit_test(test_bad_checkpoints), cmocka_unit_test(test_dump_grads),
        cmocka_unit_test(test_block_variants),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
