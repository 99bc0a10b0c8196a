/* src/dist: the collectives of data-parallel training. Run alone, the process
 * is rank 0 of 1 and every collective is the identity; run under mpirun (the
 * dist_mpi test, 2 ranks) the same tests check the sums across ranks. Values
 * are small integers, so every sum is exact and compared with ==. */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

static int rank, size;

/* Sum over ranks q of (q + 1), the value rank q contributes below. */
static float rank_sum(void)
{
    return (float)(size * (size + 1) / 2);
}

static void test_grads_sum(void **s)
{
    (void)s;
    tg_tensor *p[2] = {tg_param_new(2, (int[]){3, 5}, "w"), tg_param_new(1, (int[]){7}, "b")};
    assert_non_null(p[0]);
    assert_non_null(p[1]);
    tg_dist_grads *g = tg_dist_grads_new(p, 2, 3);
    assert_non_null(g);
    for (int i = 0; i < 2; i++)
        for (size_t k = 0; k < p[i]->size; k++)
            p[i]->grad[k] = (float)((k + 1 + 100 * (size_t)i) * (size_t)(rank + 1));
    float *extra = tg_dist_grads_extra(g);
    for (int k = 0; k < 3; k++)
        extra[k] = (float)(k * (rank + 1));
    assert_int_equal(tg_dist_grads_sum(g, 0.5f), TG_OK);
    for (int i = 0; i < 2; i++)
        for (size_t k = 0; k < p[i]->size; k++)
            assert_true(p[i]->grad[k] == 0.5f * (float)(k + 1 + 100 * (size_t)i) * rank_sum());
    for (int k = 0; k < 3; k++)
        assert_true(extra[k] == (float)k * rank_sum()); /* the extras are not weighted */
    assert_true(tg_dist_grads_seconds(g) >= 0.0);
    tg_dist_grads_free(g);

    /* Bad arguments. */
    assert_null(tg_dist_grads_new(NULL, 2, 0));
    assert_null(tg_dist_grads_new(p, 0, 0));
    assert_null(tg_dist_grads_new(p, 2, -1));
    tg_tensor *with_null[2] = {p[0], NULL};
    assert_null(tg_dist_grads_new(with_null, 2, 0));
    assert_int_equal(tg_dist_grads_sum(NULL, 1.0f), TG_ERR_ARG);
    assert_null(tg_dist_grads_extra(NULL));
    tg_param_free(p[0]);
    tg_param_free(p[1]);
}

static void test_sum_and_agree(void **s)
{
    (void)s;
    double x[2] = {rank + 1.0, -2.0 * (rank + 1)};
    assert_int_equal(tg_dist_sum(x, 2), TG_OK);
    assert_true(x[0] == rank_sum() && x[1] == -2.0 * rank_sum());
    assert_int_equal(tg_dist_sum(NULL, 1), TG_ERR_ARG);

    assert_int_equal(tg_dist_agree(0, NULL), 0);
    assert_int_equal(tg_dist_agree(-1, NULL), -1); /* --help everywhere: no failure */
    /* The last rank fails alone; every rank gets its status. */
    int mine = rank == size - 1 ? 2 : 0;
    assert_int_equal(tg_dist_agree(mine, mine ? "test_dist: the expected message of the last rank\n" : NULL), 2);
    /* Ranks fail with different statuses: the worst wins. */
    assert_int_equal(tg_dist_agree(rank == 0 ? 1 : 3, ""), size > 1 ? 3 : 1);
}

static void test_check_same(void **s)
{
    (void)s;
    tg_tensor *p = tg_param_new(1, (int[]){9}, "w");
    assert_non_null(p);
    for (int k = 0; k < 9; k++)
        p->data[k] = (float)k;
    bool same = false;
    assert_int_equal(tg_dist_check_same(&p, 1, &same), TG_OK);
    assert_true(same);
    if (rank == size - 1)
        p->data[4] = 4.5f;
    assert_int_equal(tg_dist_check_same(&p, 1, &same), TG_OK);
    assert_int_equal(same, size == 1); /* alone, nothing to differ from */
    assert_int_equal(tg_dist_check_same(NULL, 1, &same), TG_ERR_ARG);
    tg_param_free(p);
}

int main(int argc, char **argv)
{
    char err[256];
    if (tg_dist_init(&argc, &argv, err, sizeof err) != TG_OK) {
        fprintf(stderr, "test_dist: %s\n", err);
        return 1;
    }
    rank = tg_dist_rank();
    size = tg_dist_size();
    /* argv[1] "2": the test expects to run as 2 ranks (the dist_mpi test). */
    int want = argc > 1 ? atoi(argv[1]) : 1;
    if (size != want) {
        fprintf(stderr, "test_dist: running as %d ranks, expected %d (MPI built: %d)\n", size, want,
                tg_dist_enabled());
        tg_dist_finalize();
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grads_sum),
        cmocka_unit_test(test_sum_and_agree),
        cmocka_unit_test(test_check_same),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    /* A rank whose test failed must not leave the others waiting. */
    rc = tg_dist_agree(rc != 0, NULL);
    tg_dist_finalize();
    if (tg_dist_rank() != 0 || tg_dist_size() != 1) {
        fprintf(stderr, "test_dist: after tg_dist_finalize the process should be rank 0 of 1\n");
        return 1;
    }
    return rc;
}
