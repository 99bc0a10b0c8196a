/* Matrix product C = op(A) op(B), op being an optional transpose. Nothing is
 * transposed in memory: the flags go to tg_gemm.
 *
 *   dA = dC op(B)^T   (stored as op(B) dC^T when A is transposed)
 *   dB = op(A)^T dC   (stored as dC^T op(A) when B is transposed)
 *
 * A without a transpose may carry leading batch dimensions, [..., K]: they
 * are rows of one [M, K] matrix, which is how a linear layer sees [B, T, C].
 *
 * An optional bias row [N] is added to every row of C (a linear layer):
 * the GEMM stores its first partial sums onto it, and the backward adds dC's
 * column sums to dbias. Fused, it saves an add op's pass
 * over C and its gradient, 5% of a shakespeare training step. */
#include "tapegrad_internal.h"

#include <string.h>

static bool bias_fits(tg_tape *t, const tg_tensor *bias, int nn)
{
    if (!bias || (bias->ndim == 1 && bias->shape[0] == nn))
        return true;
    char s[48];
    tg_tape_fail(t, TG_ERR_SHAPE, "tg_linear: the bias must be [%d], got %s", nn, tg_shape_str(bias, s, sizeof s));
    return false;
}

tg_tensor *tg_matmul_bias(tg_tape *t, tg_tensor *a, tg_tensor *b, tg_tensor *bias, bool trans_a, bool trans_b)
{
    tg_tensor *in[3] = {a, b, bias};
    if (!tg_tape_check_inputs(t, bias ? "tg_linear" : "tg_matmul", in, bias ? 3 : 2))
        return NULL;
    char sa[48], sb[48];
    tg_shape_str(a, sa, sizeof sa);
    tg_shape_str(b, sb, sizeof sb);
    if (b->ndim != 2 || (trans_a && a->ndim != 2) || a->ndim < 2) {
        tg_tape_fail(t, TG_ERR_SHAPE, "tg_matmul: b must be 2-D and a 2-D or more (2-D when transposed): a is %s, b is %s", sa, sb);
        return NULL;
    }
    int m = trans_a ? a->shape[1] : (int)tg_rows(a);
    int ka = trans_a ? a->shape[0] : tg_cols(a);
    int kb = trans_b ? b->shape[1] : b->shape[0];
    int nn = trans_b ? b->shape[0] : b->shape[1];
    if (ka != kb) {
        tg_tape_fail(t, TG_ERR_SHAPE, "tg_matmul: inner dimensions differ: a%s is %s, b%s is %s",
                     trans_a ? "^T" : "", sa, trans_b ? "^T" : "", sb);
        return NULL;
    }
    if (!bias_fits(t, bias, nn))
        return NULL;
    int shape[TG_MAX_DIMS] = {m, nn};
    int ndim = 2;
    if (!trans_a) {
        ndim = a->ndim;
        for (int i = 0; i < ndim - 1; i++)
            shape[i] = a->shape[i];
        shape[ndim - 1] = nn;
    }
    tg_node n = {.op = TG_OP_MATMUL, .n_in = bias ? 3 : 2, .in = {a, b, bias}, .i = {trans_a, trans_b, m, ka}};
    return tg_tape_emit(t, &n, ndim, shape);
}

tg_tensor *tg_matmul(tg_tape *t, tg_tensor *a, tg_tensor *b, bool trans_a, bool trans_b)
{
    return tg_matmul_bias(t, a, b, NULL, trans_a, trans_b);
}

void tg_matmul_forward(tg_node *n)
{
    bool ta = n->i[0], tb = n->i[1];
    int m = n->i[2], k = n->i[3], nn = tg_cols(n->out);
    const tg_tensor *bias = n->n_in == 3 ? n->in[2] : NULL;
    tg_gemm_bias(ta, tb, m, nn, k, n->in[0]->data, tg_cols(n->in[0]), n->in[1]->data, tg_cols(n->in[1]),
                 bias ? bias->data : NULL, n->out->data, nn);
}

/* db[j] += sum over rows of dc[r][j] (db = when store), rows in order (the
 * same sum for any thread count), columns in vectors. */
static void add_column_sums(float *restrict db, const float *restrict dc, int m, int nn, bool store)
{
    for (int j = 0; store && j < nn; j++)
        db[j] = 0.0f;
    for (int r = 0; r < m; r++)
        for (int j = 0; j < nn; j++)
            db[j] += dc[(size_t)r * nn + j];
}

void tg_matmul_backward(tg_node *n)
{
    bool ta = n->i[0], tb = n->i[1];
    int m = n->i[2], k = n->i[3], nn = tg_cols(n->out);
    const tg_tensor *a = n->in[0], *b = n->in[1];
    const float *dc = n->out->grad;
    int lda = tg_cols(a), ldb = tg_cols(b);
    if (n->n_in == 3 && n->in[2]->grad)
        add_column_sums(n->in[2]->grad, dc, m, nn, tg_grad_claim(n->in[2]));
    if (a->grad) {
        float beta = tg_grad_claim(n->in[0]) ? 0.0f : 1.0f;
        if (!ta)
            tg_gemm(false, !tb, m, k, nn, 1.0f, dc, nn, b->data, ldb, beta, a->grad, lda);
        else
            tg_gemm(tb, true, k, m, nn, 1.0f, b->data, ldb, dc, nn, beta, a->grad, lda);
    }
    if (b->grad) {
        float beta = tg_grad_claim(n->in[1]) ? 0.0f : 1.0f;
        if (!tb)
            tg_gemm(!ta, false, k, nn, m, 1.0f, a->data, lda, dc, nn, beta, b->grad, ldb);
        else
            tg_gemm(true, ta, nn, k, m, 1.0f, dc, nn, a->data, lda, beta, b->grad, ldb);
    }
}
