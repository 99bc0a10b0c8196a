/* Runs examples/mlp_fit (the README's MLP example) and checks that it
 * really fits sin(3x): the last reported mean-squared error must be below
 * 1e-3 (the README's threshold; sin(3x) itself has variance 0.52 on
 * [-1, 1], and the first loss is about 0.3) and under a hundredth of the
 * first. */
#include "test_util.h"

#include <stdio.h>

static const char *exe;

static void test_loss_falls(void **s)
{
    (void)s;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s'", exe);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[256];
    double first = -1.0, last = -1.0, v;
    int step, lines = 0;
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "step %d loss %lf", &step, &v) == 2) {
            if (lines++ == 0)
                first = v;
            last = v;
        }
    assert_int_equal(pclose(p), 0);
    print_message("mlp_fit: loss %.6f -> %.6f over %d reports\n", first, last, lines);
    assert_true(lines >= 2);
    assert_true(first > 0.05);
    assert_true(last < 1e-3);
    assert_true(last < 0.01 * first);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MLP_FIT_EXECUTABLE\n", argv[0]);
        return 2;
    }
    exe = argv[1];
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_loss_falls)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
