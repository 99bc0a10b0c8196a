/* Runs every residual_study subcommand with tiny sizes into a temporary
 * directory: each must exit 0 and leave its CSV and SVG files, complete
 * (no temporary names left behind). Usage errors exit 2 with one line.
 * train's CSVs are read back: their layout, and that training did train. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *exe;
static const char *dir;

static int run(const char *args, char *err, size_t errlen)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s", exe, args);
    return tu_run(cmd, true, err, errlen);
}

static void expect_file(const char *name, const char *start)
{
    char path[256], buf[64] = "";
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("%s was not written", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    if (strncmp(buf, start, strlen(start)))
        fail_msg("%s starts with \"%.20s\", want \"%s\"", path, buf, start);
    strcat(path, ".tmp");
    assert_int_not_equal(access(path, F_OK), 0);
    remove(path);
    path[strlen(path) - 4] = '\0';
    remove(path);
}

static void test_subcommands(void **s)
{
    (void)s;
    static const struct {
        const char *args, *files[8];
    } cases[] = {
        {"profile --depth 2 --seeds 1 --batches 1", {"profile.csv", "profile_weights.svg", "profile_stream.svg"}},
        {"depth --depth 3 --seeds 1 --batches 1", {"depth.csv", "depth.svg"}},
        {"stream --depth 2 --seeds 1 --batches 1", {"stream.csv", "stream.svg"}},
        {"perturb --depth 2 --seeds 1 --batches 1",
         {"perturb.csv", "perturb_random.svg", "perturb_update.svg", "perturb_update_w.svg", "perturb_sgd_w.svg"}},
        {"warmup --depth 2 --steps 6 --warmup 2 --seeds 1 --dim 16 --heads 2", {"warmup.csv", "warmup.svg"}},
        {"profile --depth 2 --seeds 1 --batches 1 --normtype rmsnorm",
         {"profile.csv", "profile_weights.svg", "profile_stream.svg"}},
        {"train --depth 2 --steps 6 --log-every 4 --warmup 2 --seeds 1 --batches 1 --dim 16 --heads 2",
         {"train_pre.csv", "train_pre_weights.svg", "train_pre_stream.svg", "train_post.csv",
          "train_post_weights.svg", "train_post_stream.svg", "train_ratio.svg"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char args[512], err[1024];
        snprintf(args, sizeof args, "%s --out '%s'", cases[i].args, dir);
        int rc = run(args, err, sizeof err);
        if (rc != 0)
            fail_msg("residual_study %s: exit %d: %s", args, rc, err);
        for (int k = 0; k < 8 && cases[i].files[k]; k++)
            expect_file(cases[i].files[k], strstr(cases[i].files[k], ".csv") ? "variant," : "<?xml");
    }
}

/* train_<variant>.csv of a run logging steps 0, 20, 40, 60 at depth 3:
 * one row per logged step and layer, in order; the embedding's row has no
 * weights (nan); every other gradient norm is finite and positive; the
 * held-out loss is one figure per step, and after 60 steps of Adam it is
 * below the loss at init. Returns the loss at init. */
static double check_train_csv(const char *variant)
{
    char path[256], line[256], v[16], w[32];
    snprintf(path, sizeof path, "%s/train_%s.csv", dir, variant);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("%s was not written", path);
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "variant,step,layer,heldout_loss,weight_grad_norm,stream_grad_norm\n");
    double first_loss = NAN, loss = NAN;
    int rows = 0;
    for (; fgets(line, sizeof line, f); rows++) {
        int step, layer;
        double l, wn, xn;
        if (sscanf(line, "%15[^,],%d,%d,%lf,%31[^,],%lf", v, &step, &layer, &l, w, &xn) != 6)
            fail_msg("%s row %d: cannot read \"%s\"", path, rows + 1, line);
        assert_string_equal(v, variant);
        assert_int_equal(step, rows / 4 * 20);
        assert_int_equal(layer, rows % 4);
        wn = strtod(w, NULL);
        if (layer == 0)
            assert_true(isnan(wn));
        else if (!(isfinite(wn) && wn > 0))
            fail_msg("%s step %d layer %d: weight gradient norm %s", path, step, layer, w);
        if (!(isfinite(xn) && xn > 0))
            fail_msg("%s step %d layer %d: stream gradient norm %g", path, step, layer, xn);
        assert_true(isfinite(l) && l > 0);
        if (layer > 0)
            assert_true(l == loss);
        loss = l;
        if (step == 0)
            first_loss = l;
    }
    fclose(f);
    remove(path);
    assert_int_equal(rows, 4 * 4);
    if (!(loss < first_loss - 0.1))
        fail_msg("%s: held-out loss %g after training, %g at init", path, loss, first_loss);
    return first_loss;
}

/* Pre-LN and Post-LN, with LayerNorm and with RMSNorm: the same seeds and
 * batches, so a norm type that had no effect would give the same losses. */
static void test_train(void **s)
{
    (void)s;
    double init_loss[2][2];
    for (int rms = 0; rms < 2; rms++) {
        char args[512], err[1024];
        snprintf(args, sizeof args,
                 "train --depth 3 --steps 60 --log-every 20 --warmup 5 --lr 3e-3 --seeds 4 --batches 2 --dim 16 "
                 "--heads 2 --normtype %s --out '%s'", rms ? "rmsnorm" : "layernorm", dir);
        int rc = run(args, err, sizeof err);
        if (rc != 0)
            fail_msg("residual_study %s: exit %d: %s", args, rc, err);
        init_loss[rms][0] = check_train_csv("pre");
        init_loss[rms][1] = check_train_csv("post");
        static const char *const svgs[] = {"train_pre_weights.svg", "train_pre_stream.svg", "train_post_weights.svg",
                                           "train_post_stream.svg", "train_ratio.svg"};
        for (size_t i = 0; i < sizeof svgs / sizeof *svgs; i++)
            expect_file(svgs[i], "<?xml");
    }
    assert_true(init_loss[0][0] != init_loss[1][0]);
    assert_true(init_loss[0][1] != init_loss[1][1]);
}

static void expect_usage_error(const char *args, const char *needle)
{
    char err[1024];
    assert_int_equal(run(args, err, sizeof err), 2);
    if (!strstr(err, needle) || strchr(err, '\n') != err + strlen(err) - 1)
        fail_msg("residual_study %s: want one line with \"%s\", got \"%s\"", args, needle, err);
}

static void test_usage_errors(void **s)
{
    (void)s;
    char err[1024];
    expect_usage_error("", "missing COMMAND");
    expect_usage_error("sideways", "unknown command 'sideways'");
    expect_usage_error("depth --depth 0", "--depth must be an integer in [1, 64], got '0'");
    expect_usage_error("depth --depth", "flag '--depth' needs a value");
    expect_usage_error("profile --bogus 1", "unknown flag '--bogus'");
    expect_usage_error("profile --lr nan", "--lr must be a number");
    expect_usage_error("profile --variants pre,sideways", "--variants must list");
    expect_usage_error("profile --init he", "--init must be xavier or gpt2");
    expect_usage_error("depth --normtype batchnorm", "--normtype must be layernorm or rmsnorm, got 'batchnorm'");
    expect_usage_error("profile --dim 30 --heads 4", "--heads 4 must divide --dim 30");
    expect_usage_error("warmup --steps 5 --warmup 5", "--warmup 5 must be below --steps 5");
    expect_usage_error("train --steps 5 --warmup 5", "--warmup 5 must be below --steps 5");
    expect_usage_error("train --log-every 0", "--log-every must be an integer in [1, 1000000], got '0'");
    expect_usage_error("train --steps 5000 --log-every 1", "logs 5001 steps, at most 1000");
    assert_int_equal(run("--help", err, sizeof err), 0);
    assert_int_equal(run("stream --help", err, sizeof err), 0);
    /* a file where the output directory should be: a runtime failure, 1 */
    char args[256];
    tu_write_file("afile", "", 0);
    snprintf(args, sizeof args, "stream --depth 1 --seeds 1 --batches 1 --out '%s/afile/x'", dir);
    assert_int_equal(run(args, err, sizeof err), 1);
    assert_non_null(strstr(err, "cannot create directory"));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_residual_study PATH_TO_residual_study\n");
        return 2;
    }
    exe = argv[1];
    if (!(dir = tu_tmp_dir_make("residual_study_"))) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subcommands),
        cmocka_unit_test(test_train),
        cmocka_unit_test(test_usage_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (tu_tmp_dir_remove() != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
