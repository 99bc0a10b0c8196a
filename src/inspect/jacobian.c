/* The LayerNorm Jacobian of one row, made explicit (the explicit-Jacobian
 * derivation of the residual chain rule), and the
 * symmetric eigenvalue solver that takes it apart.
 *
 * xhat_k = (x_k - mean) rstd, rstd = (var + eps)^(-1/2), var = sum (x - mean)^2 / n:
 *   d rstd / d x_j  = -(rstd^2 / n) xhat_j
 *   d xhat_k / d x_j = (rstd / n) (n delta_kj - 1 - xhat_k xhat_j)
 * which is the derivation's N I - 1 - w w^T with sigma = 1/rstd (eps kept) and
 * gamma = 1. LayerNorm's backward, dx = rstd (dy - mean(dy) - xhat
 * mean(dy xhat)), is J^T dy = J dy. Eigenvectors: 1 (J 1 = 0), xhat (J xhat =
 * rstd (1 - |xhat|^2 / n) xhat = eps rstd^3 xhat) and anything orthogonal to
 * both (rstd). Everything is in double: the tool is a reference. */
#include "tapegrad_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tg_status fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tg_verror(err, errlen, TG_ERR_ARG, fmt, ap);
    va_end(ap);
    return TG_ERR_ARG;
}

tg_status tg_layernorm_jacobian(const float *x, int n, float eps, double *J, char *err, size_t errlen)
{
    if (!x || !J || n < 1)
        return fail(err, errlen, "tg_layernorm_jacobian: x and J must be non-NULL and n >= 1 (n is %d)", n);
    if (!(eps >= 0.0f) || !isfinite(eps))
        return fail(err, errlen, "tg_layernorm_jacobian: eps must be finite and >= 0, got %g", (double)eps);
    double mean = 0.0, var = 0.0;
    for (int j = 0; j < n; j++) {
        if (!isfinite(x[j]))
            return fail(err, errlen, "tg_layernorm_jacobian: x[%d] is %g", j, (double)x[j]);
        mean += x[j];
    }
    mean /= n;
    for (int j = 0; j < n; j++)
        var += (x[j] - mean) * (x[j] - mean);
    var /= n;
    if (!(var + eps > 0.0))
        return fail(err, errlen, "tg_layernorm_jacobian: var + eps is 0 (a constant row needs eps > 0)");
    double rstd = 1.0 / sqrt(var + (double)eps);
    for (int k = 0; k < n; k++) {
        double xk = (x[k] - mean) * rstd;
        for (int j = 0; j < n; j++) {
            double xj = (x[j] - mean) * rstd;
            J[(size_t)k * n + j] = rstd / n * ((k == j ? n : 0) - 1.0 - xk * xj);
        }
    }
    return TG_OK;
}

/* The RMSNorm Jacobian of one row (gain 1), derived in src/ops/rmsnorm.c:
 *   J = dxhat/dx = (r / n) (n I - xhat xhat^T),  r = 1/sqrt(ms + eps), xhat = x r
 * Symmetric. Its eigenvectors: anything orthogonal to x, with eigenvalue r;
 * and x itself, J x = r x - (r / n) xhat (xhat . x) = r (1 - ms r^2) x, since
 * xhat . x = r |x|^2 = r n ms, so the eigenvalue along x is
 * r (1 - ms / (ms + eps)) = r eps / (ms + eps). Unlike LayerNorm's, no
 * direction is null while eps > 0: without the centring, the all-ones vector
 * is just another direction (its component along x shrinks, the rest passes
 * scaled by r). */
tg_status tg_rmsnorm_jacobian(const float *x, int n, float eps, double *J, char *err, size_t errlen)
{
    if (!x || !J || n < 1)
        return fail(err, errlen, "tg_rmsnorm_jacobian: x and J must be non-NULL and n >= 1 (n is %d)", n);
    if (!(eps >= 0.0f) || !isfinite(eps))
        return fail(err, errlen, "tg_rmsnorm_jacobian: eps must be finite and >= 0, got %g", (double)eps);
    double ms = 0.0;
    for (int j = 0; j < n; j++) {
        if (!isfinite(x[j]))
            return fail(err, errlen, "tg_rmsnorm_jacobian: x[%d] is %g", j, (double)x[j]);
        ms += (double)x[j] * x[j];
    }
    ms /= n;
    if (!(ms + eps > 0.0))
        return fail(err, errlen, "tg_rmsnorm_jacobian: ms + eps is 0 (a zero row needs eps > 0)");
    double r = 1.0 / sqrt(ms + (double)eps);
    for (int k = 0; k < n; k++)
        for (int j = 0; j < n; j++)
            J[(size_t)k * n + j] = r / n * ((k == j ? n : 0) - (x[k] * r) * (x[j] * r));
    return TG_OK;
}

/* One Jacobi rotation zeroing A[p][q]: A <- R^T A R on rows and columns p, q.
 * t = tan(theta) is the smaller root of t^2 + 2 tau t - 1 = 0, the stable
 * choice (|theta| <= pi/4). */
static void rotate(double *A, int n, int p, int q)
{
    double apq = A[(size_t)p * n + q];
    double tau = (A[(size_t)q * n + q] - A[(size_t)p * n + p]) / (2.0 * apq);
    double t = (tau >= 0 ? 1.0 : -1.0) / (fabs(tau) + sqrt(1.0 + tau * tau));
    double c = 1.0 / sqrt(1.0 + t * t), s = t * c;
    for (int k = 0; k < n; k++) {
        double akp = A[(size_t)k * n + p], akq = A[(size_t)k * n + q];
        A[(size_t)k * n + p] = c * akp - s * akq;
        A[(size_t)k * n + q] = s * akp + c * akq;
    }
    for (int k = 0; k < n; k++) {
        double apk = A[(size_t)p * n + k], aqk = A[(size_t)q * n + k];
        A[(size_t)p * n + k] = c * apk - s * aqk;
        A[(size_t)q * n + k] = s * apk + c * aqk;
    }
}

static double off_diagonal_sq(const double *A, int n)
{
    double s = 0.0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (i != j)
                s += A[(size_t)i * n + j] * A[(size_t)i * n + j];
    return s;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static tg_status check_symmetric(const double *A, int n, char *err, size_t errlen)
{
    double big = 0.0;
    for (size_t i = 0; i < (size_t)n * n; i++) {
        if (!isfinite(A[i]))
            return fail(err, errlen, "tg_sym_eigenvalues: A[%zu] is %g", i, A[i]);
        big = fmax(big, fabs(A[i]));
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (fabs(A[(size_t)i * n + j] - A[(size_t)j * n + i]) > 1e-12 * big)
                return fail(err, errlen, "tg_sym_eigenvalues: A is not symmetric: A[%d][%d] = %g, A[%d][%d] = %g",
                            i, j, A[(size_t)i * n + j], j, i, A[(size_t)j * n + i]);
    return TG_OK;
}

/* Sweeps until the off-diagonal mass is at rounding level of the whole;
 * Jacobi converges quadratically, so 50 sweeps is a bound never reached. */
tg_status tg_sym_eigenvalues(double *A, int n, double *eig, char *err, size_t errlen)
{
    if (!A || !eig || n < 1)
        return fail(err, errlen, "tg_sym_eigenvalues: A and eig must be non-NULL and n >= 1 (n is %d)", n);
    tg_status s = check_symmetric(A, n, err, errlen);
    if (s != TG_OK)
        return s;
    double total = 0.0;
    for (size_t i = 0; i < (size_t)n * n; i++)
        total += A[i] * A[i];
    for (int sweep = 0; sweep < 50 && off_diagonal_sq(A, n) > 1e-30 * total; sweep++)
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++)
                if (A[(size_t)p * n + q] != 0.0)
                    rotate(A, n, p, q);
    for (int i = 0; i < n; i++)
        eig[i] = A[(size_t)i * n + i];
    qsort(eig, (size_t)n, sizeof *eig, cmp_double);
    return TG_OK;
}
