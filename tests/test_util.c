#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

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

void tu_st_rewrite(const char *src, const char *dst, const char *const *keys, int n_keys, tu_edit e)
{
    char err[512];
    tg_st_file *f = tg_safetensors_read(src, err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    int n = tg_safetensors_count(f), k = 0, m = 0;
    tg_st_tensor *t = calloc((size_t)n, sizeof *t);
    const char **mk = calloc((size_t)n_keys + 1, sizeof *mk), **mv = calloc((size_t)n_keys + 1, sizeof *mv);
    float *edited = NULL;
    assert_true(t && mk && mv);
    for (int i = 0; i < n; i++) {
        tg_st_tensor x = *tg_safetensors_at(f, i);
        if (e.tensor && !strcmp(x.name, e.tensor)) {
            if (e.drop)
                continue;
            size_t old = tg_shape_size(x.ndim, x.shape);
            if (e.rows > 0)
                x.shape[0] = e.rows;
            size_t now = tg_shape_size(x.ndim, x.shape);
            edited = calloc(now ? now : 1, sizeof *edited);
            assert_non_null(edited);
            memcpy(edited, x.data, (old < now ? old : now) * sizeof *edited);
            if (e.poke) {
                assert_true(e.index < now);
                edited[e.index] = e.number;
            }
            x.data = edited;
        }
        t[k++] = x;
    }
    bool seen = false;
    for (int i = 0; i < n_keys; i++) {
        const char *v = tg_safetensors_meta(f, keys[i]);
        if (e.key && !strcmp(keys[i], e.key)) {
            seen = true;
            v = e.value;
        }
        if (v) {
            mk[m] = keys[i];
            mv[m++] = v;
        }
    }
    if (e.key && !seen && e.value) {
        mk[m] = e.key;
        mv[m++] = e.value;
    }
    if (tg_safetensors_write(dst, t, k, mk, mv, m, err, sizeof err) != TG_OK)
        fail_msg("%s", err);
    free(edited);
    free(t);
    free(mk);
    free(mv);
    tg_safetensors_close(f);
}

static char tmp_dir[1024];

const char *tu_tmp_dir_make(const char *prefix)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/%sXXXXXX", base && *base ? base : "/tmp", prefix);
    return mkdtemp(tmp_dir);
}

const char *tu_tmp_path(const char *name)
{
    static char bufs[4][PATH_MAX];
    static int next;
    char *p = bufs[next++ % 4];
    snprintf(p, PATH_MAX, "%s/%s", tmp_dir, name);
    return p;
}

int tu_tmp_dir_remove(void)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    return system(cmd);
}

int tu_run(const char *cmd, bool stderr_only, char *out, size_t len)
{
    const char *capture = tu_tmp_path("tu_run.txt");
    size_t n = strlen(cmd) + 2 * strlen(tmp_dir) + 64;
    char *full = malloc(n);
    assert_non_null(full);
    snprintf(full, n, "cd '%s' && %s %s'%s'%s", tmp_dir, cmd, stderr_only ? ">/dev/null 2>" : ">", capture,
             stderr_only ? "" : " 2>&1");
    int rc = system(full);
    free(full);
    assert_true(WIFEXITED(rc));
    FILE *fp = fopen(capture, "r");
    assert_non_null(fp);
    size_t got = fread(out, 1, len - 1, fp);
    out[got] = '\0';
    fclose(fp);
    return WEXITSTATUS(rc);
}

tg_st_file *tu_st_open(const char *name)
{
    char err[256];
    tg_st_file *f = tg_safetensors_read(tu_tmp_path(name), err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    return f;
}

void tu_write_file(const char *name, const void *data, size_t len)
{
    FILE *fp = fopen(tu_tmp_path(name), "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}
