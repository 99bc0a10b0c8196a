/* Central finite differences against tg_backward. The loss is read in double
 * where the tape kept one (sum and mean accumulate in double), and the step
 * actually taken is measured after rounding to float, so the difference
 * quotient is not skewed by the representable neighbours of x. */
#include "tapegrad_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tg_status eval(tg_tape *t, tg_loss_fn fn, void *ctx, double *out)
{
    tg_tape_reset(t);
    tg_tensor *loss = fn(t, ctx);
    if (tg_tape_status(t) != TG_OK)
        return tg_tape_status(t);
    if (!loss) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_gradcheck: the loss function returned NULL");
        return TG_ERR_ARG;
    }
    *out = tg_tape_value(t, loss);
    return TG_OK;
}

/* f at x0 + m*h for the multiples m; returns the derivative estimate. */
static tg_status numeric_grad(tg_tape *t, tg_loss_fn fn, void *ctx, float *x, double h,
                              bool four_point, double *out)
{
    const float x0 = *x;
    const int mult[4] = {1, -1, 2, -2};
    double f[4] = {0}, step[4] = {0};
    tg_status s = TG_OK;
    for (int i = 0; i < (four_point ? 4 : 2) && s == TG_OK; i++) {
        *x = (float)(x0 + mult[i] * h);
        step[i] = (double)*x - (double)x0;
        s = eval(t, fn, ctx, &f[i]);
    }
    *x = x0;
    if (four_point)
        *out = (8.0 * (f[0] - f[1]) - (f[2] - f[3])) / (6.0 * (step[0] - step[1]));
    else
        *out = (f[0] - f[1]) / (step[0] - step[1]);
    return s;
}

static void compare(tg_gradcheck_result *res, double a, double num, double floor, int ti, size_t idx)
{
    double abs_err = fabs(a - num);
    double scale = fmax(fmax(fabs(a), fabs(num)), floor);
    double rel = abs_err / scale;
    res->max_abs_err = fmax(res->max_abs_err, abs_err);
    if (rel > res->max_rel_err || res->checked == 0 || isnan(rel)) {
        res->max_rel_err = isnan(rel) ? INFINITY : fmax(rel, res->max_rel_err);
        res->worst_tensor = ti;
        res->worst_index = idx;
        res->worst_analytic = a;
        res->worst_numeric = num;
    }
    res->checked++;
}

tg_status tg_gradcheck(tg_loss_fn fn, void *ctx, tg_tensor *const *wrt, int n_wrt,
                       const tg_gradcheck_opts *opts, tg_gradcheck_result *res)
{
    tg_gradcheck_opts o = opts ? *opts : (tg_gradcheck_opts){0};
    double step = o.step > 0 ? o.step : 1e-3;
    double floor = o.abs_floor > 0 ? o.abs_floor : 1e-3;
    if (!res)
        return tg_error(NULL, 0, TG_ERR_ARG, "tg_gradcheck: res is NULL");
    memset(res, 0, sizeof *res);
    bool null_wrt = false;
    for (int i = 0; wrt && i < n_wrt; i++)
        null_wrt |= !wrt[i];
    if (!fn || !wrt || n_wrt < 1 || null_wrt) {
        tg_error(res->error, sizeof res->error, TG_ERR_ARG,
                 "tg_gradcheck: fn, wrt and every entry of wrt must be non-NULL, n_wrt >= 1 (n_wrt %d)", n_wrt);
        return TG_ERR_ARG;
    }
    tg_tape *t = tg_tape_new(0);
    if (!t) {
        snprintf(res->error, sizeof res->error, "%s", tg_last_error());
        return TG_ERR_NOMEM;
    }
    tg_zero_grad(wrt, n_wrt);
    tg_tensor *loss = fn(t, ctx);
    tg_status s = tg_backward(t, loss);
    for (int ti = 0; ti < n_wrt && s == TG_OK; ti++) {
        tg_tensor *p = wrt[ti];
        if (!p->grad || !p->requires_grad) {
            tg_tape_fail(t, TG_ERR_ARG, "tg_gradcheck: wrt[%d] (\"%s\") receives no gradient", ti, p->name);
            s = TG_ERR_ARG;
            break;
        }
        size_t stride = o.max_checks && p->size > o.max_checks ? p->size / o.max_checks : 1;
        float *analytic = malloc(p->size * sizeof(float));
        if (!analytic) {
            s = TG_ERR_NOMEM;
            break;
        }
        memcpy(analytic, p->grad, p->size * sizeof(float));
        for (size_t idx = 0; idx < p->size && s == TG_OK; idx += stride) {
            double h = o.absolute_step ? step : step * fmax(1.0, fabs((double)p->data[idx])), num;
            s = numeric_grad(t, fn, ctx, &p->data[idx], h, o.four_point, &num);
            if (s == TG_OK)
                compare(res, analytic[idx], num, floor, ti, idx);
        }
        free(analytic);
    }
    if (s != TG_OK)
        tg_error(res->error, sizeof res->error, s, "%s", tg_tape_error(t));
    tg_tape_free(t);
    return s;
}
