/* train_gpt as 2 ranks under mpirun against one process with the same global
 * batch: both tasks, resuming across rank counts, and failures that stop every
 * rank with one message. argv[1] is mpirun, argv[2] train_gpt.
 *
 * The tolerance: the ranks sum two half-batch gradients where one process
 * sums the whole batch in one pass, so the gradients differ in the last bits,
 * and AdamW's normalisation lifts that for small elements. Every tensor of the
 * checkpoint (parameters and both moments) must be within TOL of its largest
 * element (measured here: 6e-5 at most, in a bias that is still near 0, after
 * 6 steps); a checkpoint one step behind is further than 0.2 on the same scale,
 * so the tolerance could not hide a wrong slice or a missing sum. */
#define _GNU_SOURCE
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-3
#define STEP_APART 0.1

static const char *mpirun, *exe;
static const char *dir;
/* Under LeakSanitizer the ranks skip the leak check: Open MPI's own leaks
 * can only be told apart with full stacks, which make these runs 5x slower.
 * The dist_mpi test checks src/dist for leaks under mpirun, and
 * test_train_gpt the program's single-process runs. */
static const char lsan[] = "LSAN_OPTIONS=detect_leaks=0";

#define TINY "--layers 1 --dim 16 --heads 2 --batch 8 --threads 1 --eval-every 3 --eval-iters 2"
/* A hang would be a defect: every run gets a minute. */
#define MPI2 "%s timeout 60 '%s' -np 2 --oversubscribe '%s' "

static int run1(const char *args, char *out, size_t len)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s", exe, args);
    return tu_run(cmd, false, out, len);
}

static int run2(const char *args, char *out, size_t len)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, MPI2 "%s", lsan, mpirun, exe, args);
    return tu_run(cmd, false, out, len);
}

static void expect_ok(int rc, const char *what, const char *out)
{
    if (rc != 0)
        fail_msg("%s: exit %d, output:\n%s", what, rc, out);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The largest over a's tensors of max|a - b| / max|b|, tensor by tensor;
 * same step and sampler state required. */
static double scaled_distance(const char *a, const char *b)
{
    tg_st_file *fa = tu_st_open(a), *fb = tu_st_open(b);
    assert_int_equal(tg_safetensors_count(fa), tg_safetensors_count(fb));
    double worst = 0.0;
    for (int i = 0; i < tg_safetensors_count(fa); i++) {
        const tg_st_tensor *ta = tg_safetensors_at(fa, i), *tb = tg_safetensors_find(fb, ta->name);
        assert_non_null(tb);
        assert_int_equal(ta->dtype, TG_F32);
        size_t n = tg_shape_size(ta->ndim, ta->shape);
        assert_int_equal(n, tg_shape_size(tb->ndim, tb->shape));
        const float *x = ta->data, *y = tb->data;
        double diff = 0.0, scale = 0.0;
        for (size_t k = 0; k < n; k++) {
            diff = fmax(diff, fabs((double)x[k] - (double)y[k]));
            scale = fmax(scale, fabs((double)y[k]));
        }
        assert_true(isfinite(diff));
        if (diff > 0.0)
            worst = fmax(worst, diff / fmax(scale, 1e-30));
    }
    tg_safetensors_close(fa);
    tg_safetensors_close(fb);
    return worst;
}

static void expect_close(const char *a, const char *b)
{
    double d = scaled_distance(a, b);
    print_message("%s against %s: %.3g of each tensor's largest element\n", a, b, d);
    if (d > TOL)
        fail_msg("%s and %s differ by %.3g of a tensor's largest element (tolerance %g)", a, b, d, TOL);
}

static void expect_same_meta(const char *a, const char *b)
{
    tg_st_file *fa = tu_st_open(a), *fb = tu_st_open(b);
    const char *keys[] = {"step", "rng", "batch"};
    for (int i = 0; i < 3; i++)
        assert_string_equal(tg_safetensors_meta(fa, keys[i]), tg_safetensors_meta(fb, keys[i]));
    tg_safetensors_close(fa);
    tg_safetensors_close(fb);
}

/* 2 ranks, 1 process and 1 process a step short, on one task's flags. */
static void compare_task(const char *task, const char *tag)
{
    char out[16384], args[1024], two[64], one[64], prev[64];
    snprintf(two, sizeof two, "%s2.st", tag);
    snprintf(one, sizeof one, "%s1.st", tag);
    snprintf(prev, sizeof prev, "%sprev.st", tag);
    snprintf(args, sizeof args, "%s --steps 6 --save %s --log %s2.csv " TINY, task, two, tag);
    expect_ok(run2(args, out, sizeof out), args, out);
    /* Rank 0 alone speaks, and says how the batch is split. */
    assert_non_null(strstr(out, "data parallel: 2 ranks, 4 rows of the batch each"));
    assert_int_equal(count(out, "step 6/6"), 1);
    assert_int_equal(count(out, "checkpoint written"), 1);
    assert_non_null(strstr(out, "allreduce "));
    snprintf(args, sizeof args, "%s --steps 6 --save %s --log %s1.csv " TINY, task, one, tag);
    expect_ok(run1(args, out, sizeof out), args, out);
    snprintf(args, sizeof args, "%s --steps 6 --stop-after 5 --save %s " TINY, task, prev);
    expect_ok(run1(args, out, sizeof out), args, out);

    expect_same_meta(two, one);
    expect_close(two, one);
    double apart = scaled_distance(prev, one);
    print_message("one step apart: %.3g\n", apart);
    assert_true(apart > STEP_APART);
}

/* The logs: one header and six rows from rank 0; losses and validation
 * losses (summed across the ranks) as one process's. */
static void compare_logs(const char *tag)
{
    char path[512], r1[256], r2[256];
    FILE *fp[2];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s%d.csv", dir, tag, i + 1);
        fp[i] = fopen(path, "r");
        assert_non_null(fp[i]);
    }
    int rows = 0;
    while (fgets(r1, sizeof r1, fp[0])) {
        assert_non_null(fgets(r2, sizeof r2, fp[1]));
        if (rows++ == 0) {
            assert_string_equal(r1, r2);
            continue;
        }
        double l1, l2, v1 = NAN, v2 = NAN;
        assert_true(sscanf(strchr(r1, ',') + 1, "%lf", &l1) == 1 && sscanf(strchr(r2, ',') + 1, "%lf", &l2) == 1);
        assert_float_equal(l1, l2, 1e-5);
        char *c1 = strchr(strchr(r1, ',') + 1, ','), *c2 = strchr(strchr(r2, ',') + 1, ',');
        assert_int_equal(c1[1] == ',', c2[1] == ','); /* evaluated on the same steps */
        if (c1[1] != ',') {
            assert_true(sscanf(c1 + 1, "%lf", &v1) == 1 && sscanf(c2 + 1, "%lf", &v2) == 1);
            assert_float_equal(v1, v2, 1e-5);
        }
    }
    assert_null(fgets(r2, sizeof r2, fp[1]));
    assert_int_equal(rows, 7);
    fclose(fp[0]);
    fclose(fp[1]);
}

static void make_text(void)
{
    static const char line[] = "the quick brown fox jumps over the lazy dog\nTHE END.\n";
    char path[512];
    snprintf(path, sizeof path, "%s/text.txt", dir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 60; i++)
        assert_int_equal(fwrite(line, 1, sizeof line - 1, fp), sizeof line - 1);
    assert_int_equal(fclose(fp), 0);
}

static void test_sort_task(void **s)
{
    (void)s;
    compare_task("", "sort");
    compare_logs("sort");
}

static void test_text_task(void **s)
{
    (void)s;
    make_text();
    compare_task("--data text.txt --ctx 16 --sample 20 --eval-full", "text");
    compare_logs("text");
}

/* The checkpoint holds the same state whoever wrote it: 2 ranks stop at step
 * 3, one process finishes; and the other way round. */
static void test_resume_across_ranks(void **s)
{
    (void)s;
    char out[16384];
    make_text();
    const char *t = "--data text.txt --ctx 16 --sample 0 --steps 6 " TINY;
    char args[1024];
    snprintf(args, sizeof args, "%s --save whole.st", t);
    expect_ok(run1(args, out, sizeof out), args, out);

    snprintf(args, sizeof args, "%s --stop-after 3 --save half2.st", t);
    expect_ok(run2(args, out, sizeof out), args, out);
    expect_ok(run1("--data text.txt --resume half2.st --sample 0 --save res1.st --threads 1", out, sizeof out),
              "resume by one process", out);
    assert_non_null(strstr(out, "steps 3..6"));
    expect_same_meta("res1.st", "whole.st");
    expect_close("res1.st", "whole.st");

    snprintf(args, sizeof args, "%s --stop-after 3 --save half1.st", t);
    expect_ok(run1(args, out, sizeof out), args, out);
    expect_ok(run2("--data text.txt --resume half1.st --sample 0 --save res2.st --threads 1", out, sizeof out),
              "resume by two ranks", out);
    expect_close("res2.st", "whole.st");
}

/* Exit status and exactly one message, whichever rank finds the problem. */
static void expect_failure(const char *cmd, int status, const char *message)
{
    char out[16384];
    int rc = tu_run(cmd, false, out, sizeof out);
    if (rc != status || count(out, message) != 1)
        fail_msg("%s: exit %d, output:\n%s\n(expected exit %d and '%s' once)", cmd, rc, out, status, message);
    assert_null(strstr(out, "step 1/")); /* when status is 2, no work */
}

static void test_failures(void **s)
{
    (void)s;
    char cmd[2048];
    /* Found by every rank: reported once. */
    snprintf(cmd, sizeof cmd, MPI2 TINY " --batch 7", lsan, mpirun, exe);
    expect_failure(cmd, 2, "--batch 7 must be divisible by the number of ranks (2)");
    snprintf(cmd, sizeof cmd, MPI2 TINY " --data missing.txt", lsan, mpirun, exe);
    expect_failure(cmd, 2, "cannot open missing.txt");
    snprintf(cmd, sizeof cmd, MPI2 TINY " --dump-grads g.st", lsan, mpirun, exe);
    expect_failure(cmd, 2, "--dump-grads runs in one process");
    /* Found by rank 1 alone (mpirun gives each rank its own arguments after
     * ':'): rank 0 was fine, and still stops with rank 1's status. */
    snprintf(cmd, sizeof cmd, "%s timeout 60 '%s' --oversubscribe -np 1 '%s' " TINY " : -np 1 '%s' " TINY " --data missing.txt",
             lsan, mpirun, exe, exe);
    expect_failure(cmd, 2, "cannot open missing.txt");
    /* During the run, on rank 1 alone: its step explodes (a learning rate of
     * 1e30 from step 0), rank 0's is fine; both stop at once, exit 1. */
    snprintf(cmd, sizeof cmd,
             "%s timeout 60 '%s' --oversubscribe -np 1 '%s' " TINY " --steps 5 : -np 1 '%s' " TINY
             " --steps 5 --lr 1e30 --min-lr 0 --warmup 0 --clip 0",
             lsan, mpirun, exe, exe);
    char out[16384];
    int rc = tu_run(cmd, false, out, sizeof out);
    if (rc != 1 || count(out, "train_gpt: ") != 1 || strstr(out, "step 5/5"))
        fail_msg("%s: exit %d, output:\n%s\n(expected exit 1, one message, no step 5)", cmd, rc, out);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_mpi PATH_TO_mpirun PATH_TO_train_gpt\n");
        return 2;
    }
    mpirun = argv[1];
    exe = argv[2];
    /* tests/meson.build sets what mpirun needs here (root, containers,
     * LeakSanitizer); without it, stop rather than fail in mpirun. */
    if (!getenv("OMPI_ALLOW_RUN_AS_ROOT")) {
        fprintf(stderr, "test_mpi: run it through meson test (it sets mpirun's environment)\n");
        return 1;
    }
    if (!(dir = tu_tmp_dir_make("tg_mpi_"))) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sort_task),
        cmocka_unit_test(test_text_task),
        cmocka_unit_test(test_resume_across_ranks),
        cmocka_unit_test(test_failures),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (tu_tmp_dir_remove() != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
