#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

tg_tensor *tu_param(tg_rng *r, const int *shape, int ndim, float std)
{
    tg_tensor *p = tg_param_new(ndim, shape, "p");
    assert_non_null(p);
    tg_fill_normal(p, r, 0.0f, std);
    return p;
}

void tu_gradcheck(const char *what, tg_loss_fn fn, void *ctx, tg_tensor *const *wrt, int n, double tol)
{
    tg_gradcheck_opts o = {.step = 3e-2, .four_point = true, .max_checks = 300, .abs_floor = 1e-2};
    tg_gradcheck_result r;
    tg_status s = tg_gradcheck(fn, ctx, wrt, n, &o, &r);
    if (s != TG_OK)
        fail_msg("%s: gradcheck failed to run: %s", what, r.error);
    if (!(r.max_rel_err <= tol))
        fail_msg("%s: relative error %.3g > %.3g at tensor %d index %zu (analytic %.6g, numeric %.6g)",
                 what, r.max_rel_err, tol, r.worst_tensor, r.worst_index, r.worst_analytic,
                 r.worst_numeric);
    assert_true(r.checked > 0);
}

float *tu_fixture(const char *name, size_t *n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", TG_FIXTURE_DIR, name);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open fixture %s", path);
    size_t cap = 256, len = 0;
    float *v = malloc(cap * sizeof *v);
    assert_non_null(v);
    float x;
    while (fscanf(f, "%f", &x) == 1) {
        if (len == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            assert_non_null(v);
        }
        v[len++] = x;
    }
    fclose(f);
    *n = len;
    return v;
}

double tu_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}
