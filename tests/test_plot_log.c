/* The plot_log tool: a train_gpt log becomes an SVG with a line for the
 * training loss and one for the validation loss; malformed logs are refused
 * with the line named and exit 2, and leave no output file. argv[1] is the
 * path of the executable. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *exe;
static const char *dir;

static void write_text(const char *name, const char *text)
{
    tu_write_file(name, text, strlen(text));
}

/* Exit status of plot_log with args (run in dir); its stderr in err. */
static int run(const char *args, char *err, size_t len)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' %s", exe, args);
    return tu_run(cmd, true, err, len);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void test_plot(void **s)
{
    (void)s;
    write_text("log.csv", "step,loss,val_loss,lr,grad_norm,seconds\n"
                          "1,2.5,,1e-4,1.0,0.1\n2,2.0,2.2,2e-4,0.9,0.2\n3,1.5,,3e-4,0.8,0.3\n4,1.2,1.4,4e-4,0.7,0.4\n");
    char err[512], svg[16384], path[300];
    assert_int_equal(run("log.csv out.svg --title 'a run'", err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/out.svg", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(svg, 1, sizeof svg - 1, f);
    svg[n] = '\0';
    fclose(f);
    assert_int_equal(count(svg, "<polyline"), 2); /* training and validation */
    assert_int_equal(count(svg, "<circle"), 6);   /* a marker per point: 4 + 2 */
    assert_non_null(strstr(svg, "validation loss"));
    assert_non_null(strstr(svg, "a run"));
}

static void expect_refused(const char *csv, const char *message)
{
    char err[512], path[300];
    write_text("bad.csv", csv);
    int rc = run("bad.csv bad.svg", err, sizeof err);
    if (rc != 2 || !strstr(err, message))
        fail_msg("exit %d, stderr '%s' (expected 2 and '%s')", rc, err, message);
    snprintf(path, sizeof path, "%s/bad.svg", dir);
    assert_int_not_equal(access(path, F_OK), 0);
}

static void test_bad_logs(void **s)
{
    (void)s;
    const char *h = "step,loss,val_loss,lr,grad_norm,seconds\n";
    char csv[256];
    expect_refused("a,b\n1,2\n", "line 1: not a train_gpt log");
    snprintf(csv, sizeof csv, "%s1,2.0,,1,1,1\n2,nan,,1,1,1\n", h);
    expect_refused(csv, "line 3: loss is not a finite number");
    snprintf(csv, sizeof csv, "%s1.5,2.0,,1,1,1\n", h);
    expect_refused(csv, "line 2: step is not a non-negative integer");
    snprintf(csv, sizeof csv, "%s1,2.0,x,1,1,1\n", h);
    expect_refused(csv, "line 2: val_loss is neither empty nor a finite number");
    snprintf(csv, sizeof csv, "%s1,2.0,,1,1\n", h);
    expect_refused(csv, "line 2: expected 6 comma-separated fields");
    snprintf(csv, sizeof csv, "%s1,2.0,,1,1,1,7\n", h);
    expect_refused(csv, "line 2: expected 6 comma-separated fields");
    expect_refused(h, "no data rows");
    char err[512];
    assert_int_equal(run("missing.csv out2.svg", err, sizeof err), 2);
    assert_non_null(strstr(err, "cannot open missing.csv"));
    assert_int_equal(run("--bogus", err, sizeof err), 2);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_plot_log PATH_TO_plot_log\n");
        return 2;
    }
    exe = argv[1];
    if (!(dir = tu_tmp_dir_make("tg_plot_log")))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plot),
        cmocka_unit_test(test_bad_logs),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (tu_tmp_dir_remove() != 0)
        rc = rc ? rc : 1;
    return rc;
}
