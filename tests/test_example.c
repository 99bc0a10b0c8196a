/* Runs the residual MLP example and checks that its loss falls: the last
 * reported loss must be under a quarter of the first. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>

static const char *exe;

static void test_loss_falls(void **s)
{
    (void)s;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' --steps 300", exe);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[256];
    double first = -1.0, last = -1.0, v;
    long step;
    int lines = 0;
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "step %ld loss %lf", &step, &v) == 2) {
            if (lines++ == 0)
                first = v;
            last = v;
        }
    assert_int_equal(pclose(p), 0);
    assert_true(lines >= 2);
    print_message("residual_mlp: loss %.4f -> %.4f over %d reports\n", first, last, lines);
    assert_true(last < 0.25 * first);
}

static void test_bad_flag_exits_2(void **s)
{
    (void)s;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' --steps -3 2>/dev/null", exe);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 2);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_example PATH_TO_residual_mlp\n");
        return 2;
    }
    exe = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_falls),
        cmocka_unit_test(test_bad_flag_exits_2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
