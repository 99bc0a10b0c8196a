/* The op-test registry: one finite-difference gradient check per case, run
 * over every op in src/ops/op_list.h, and a coverage test that fails naming
 * each op of the list without a case.
 *
 * A case makes its parameters for a size k, taken from SIZES (1, 2, an odd
 * prime, and 17 and 33, past a 16-float vector), and applies the op. The
 * runner checks that the op really is on the tape, then compares the
 * gradient of sum(op(...) * w), w a fixed random tensor of the output's
 * shape (a plain sum would hide errors that cancel), with the four-point
 * stencil at 2e-2 relative (a wrong formula gives O(1)).
 *
 * Inputs that the stencil (steps up to 0.06 max(1,|x|)) must not carry
 * across a kink or out of a function's domain are moved away from it by the
 * case (avoid(), positive()). Adding an op: its make/apply pair and a line
 * in CASES. */
#include "test_util.h"
#include "tapegrad_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 2e-2

static const int SIZES[] = {1, 2, 7, 17, 33};

typedef struct rin {
    tg_tensor *p[3]; /* the parameters checked */
    int n;
    int k;           /* the size the case was made at */
    int ids[256];    /* ids or targets, for the ops that take them */
    int ids_shape[2];
} rin;

typedef struct rcase {
    tg_op op;
    const char *what;
    void (*make)(rin *in, tg_rng *r, int k);
    tg_tensor *(*apply)(tg_tape *t, rin *in);
} rcase;

#define PAR(r, std, ...) tu_param(r, TU_SHAPE(__VA_ARGS__), std)
#define P0 in->p[0]
#define P1 in->p[1]
#define P2 in->p[2]

static void set(rin *in, tg_tensor *a, tg_tensor *b, tg_tensor *c)
{
    in->p[0] = a;
    in->p[1] = b;
    in->p[2] = c;
    in->n = c ? 3 : b ? 2 : 1;
}

/* Every x within gap of point moved to point +- gap: no kink within reach. */
static void avoid(tg_tensor *x, float point, float gap)
{
    for (size_t i = 0; i < x->size; i++)
        if (fabsf(x->data[i] - point) < gap)
            x->data[i] = x->data[i] < point ? point - gap : point + gap;
}

static void positive(tg_tensor *x, float lo)
{
    for (size_t i = 0; i < x->size; i++)
        x->data[i] = lo + fabsf(x->data[i]);
}

/* ---- elementwise --------------------------------------------------------- */

static void mk_same2(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.0f, 3, k), PAR(r, 1.0f, 3, k), NULL); }
static void mk_row(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.0f, 3, k), PAR(r, 1.0f, k), NULL); }
static void mk_table(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.0f, 2, k, 5), PAR(r, 1.0f, k, 5), NULL); }
static void mk_one(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.0f, 3, k), NULL, NULL); }

/* NumPy broadcasting: [k] with [3,k] (a stretched), and [3,1,k] with [4,1]
 * giving [3,4,k] (both stretched, neither the other's trailing shape). */
static void mk_a_row(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.0f, k), PAR(r, 1.0f, 3, k), NULL); }
static void mk_general(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.0f, 3, 1, k), PAR(r, 1.0f, 4, 1), NULL); }

/* Denominators at least 0.5 from 0, for div. */
static void mk_div(rin *in, tg_rng *r, int k)
{
    mk_same2(in, r, k);
    avoid(P1, 0.0f, 0.5f);
}

static void mk_div_general(rin *in, tg_rng *r, int k)
{
    mk_general(in, r, k);
    avoid(P1, 0.0f, 0.5f);
}

static void mk_positive(rin *in, tg_rng *r, int k)
{
    mk_one(in, r, k);
    positive(P0, 0.5f);
}

static void mk_off_zero(rin *in, tg_rng *r, int k)
{
    mk_one(in, r, k);
    avoid(P0, 0.0f, 0.1f);
}

/* Clamp to [-0.5, 0.8], x kept 0.1 from both bounds. */
static void mk_clamp(rin *in, tg_rng *r, int k)
{
    mk_one(in, r, k);
    avoid(P0, -0.5f, 0.1f);
    avoid(P0, 0.8f, 0.1f);
}

static tg_tensor *ap_sub(tg_tape *t, rin *in) { return tg_sub(t, P0, P1); }
static tg_tensor *ap_div(tg_tape *t, rin *in) { return tg_div(t, P0, P1); }
static tg_tensor *ap_neg(tg_tape *t, rin *in) { return tg_neg(t, P0); }
static tg_tensor *ap_exp(tg_tape *t, rin *in) { return tg_exp(t, P0); }
static tg_tensor *ap_log(tg_tape *t, rin *in) { return tg_log(t, P0); }
static tg_tensor *ap_sqrt(tg_tape *t, rin *in) { return tg_sqrt(t, P0); }
static tg_tensor *ap_pow3(tg_tape *t, rin *in) { return tg_pow(t, P0, 3.0f); }
static tg_tensor *ap_pow_frac(tg_tape *t, rin *in) { return tg_pow(t, P0, -1.5f); }
static tg_tensor *ap_abs(tg_tape *t, rin *in) { return tg_abs(t, P0); }
static tg_tensor *ap_tanh(tg_tape *t, rin *in) { return tg_tanh(t, P0); }
static tg_tensor *ap_sigmoid(tg_tape *t, rin *in) { return tg_sigmoid(t, P0); }
static tg_tensor *ap_relu(tg_tape *t, rin *in) { return tg_relu(t, P0); }
static tg_tensor *ap_silu(tg_tape *t, rin *in) { return tg_silu(t, P0); }
static tg_tensor *ap_gelu_erf(tg_tape *t, rin *in) { return tg_gelu_erf(t, P0); }
static tg_tensor *ap_clamp(tg_tape *t, rin *in) { return tg_clamp(t, P0, -0.5f, 0.8f); }

static tg_tensor *ap_add(tg_tape *t, rin *in) { return tg_add(t, P0, P1); }
static tg_tensor *ap_mul(tg_tape *t, rin *in) { return tg_mul(t, P0, P1); }
static tg_tensor *ap_scale(tg_tape *t, rin *in) { return tg_scale(t, P0, -1.7f); }

/* ---- matmul -------------------------------------------------------------- */

static void mk_mm(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.0f, 3, k), PAR(r, 1.0f, k, 5), NULL); }
static void mk_mm_ta(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.0f, k, 3), PAR(r, 1.0f, k, 5), NULL); }
static void mk_mm_tb(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.0f, 3, k), PAR(r, 1.0f, 5, k), NULL); }
static void mk_mm_tab(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.0f, k, 3), PAR(r, 1.0f, 5, k), NULL); }
static void mk_mm_batch(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.0f, 2, 3, k), PAR(r, 1.0f, 5, k), NULL); }

static tg_tensor *ap_mm(tg_tape *t, rin *in) { return tg_matmul(t, P0, P1, false, false); }
static tg_tensor *ap_mm_ta(tg_tape *t, rin *in) { return tg_matmul(t, P0, P1, true, false); }
static tg_tensor *ap_mm_tb(tg_tape *t, rin *in) { return tg_matmul(t, P0, P1, false, true); }
static tg_tensor *ap_mm_tab(tg_tape *t, rin *in) { return tg_matmul(t, P0, P1, true, true); }
static tg_tensor *ap_linear(tg_tape *t, rin *in) { return tg_linear(t, P0, P1, P2); }

static void mk_linear(rin *in, tg_rng *r, int k)
{
    set(in, PAR(r, 1.0f, 2, 3, k), PAR(r, 1.0f, 5, k), PAR(r, 1.0f, 5));
}

/* ---- residual adds ------------------------------------------------------- */

static tg_tensor *ap_residual(tg_tape *t, rin *in) { return tg_residual(t, P0, P1); }
static tg_tensor *ap_residual_scaled(tg_tape *t, rin *in) { return tg_residual_scaled(t, P0, P1, 2.5f); }
static tg_tensor *ap_residual_gated(tg_tape *t, rin *in) { return tg_residual_gated(t, P0, P1, P2); }

static void mk_gated(rin *in, tg_rng *r, int k)
{
    set(in, PAR(r, 1.0f, 3, k), PAR(r, 1.0f, 3, k), PAR(r, 1.0f, 1));
}

/* ---- normalisation, reductions, Transformer ops --------------------------- */

/* Rows whose spread about centre (their mean, or 0) is under lo are scaled
 * up to it: near a constant row (LayerNorm) or a zero row (RMSNorm) the
 * output turns on a scale below the stencil's step. */
static void spread_rows(tg_tensor *x, bool centre, float lo)
{
    int c = tg_cols(x);
    for (size_t r = 0; r < tg_rows(x); r++) {
        float *v = x->data + r * (size_t)c;
        double m = 0.0, ss = 0.0;
        for (int j = 0; centre && j < c; j++)
            m += v[j] / c;
        for (int j = 0; j < c; j++)
            ss += (v[j] - m) * (v[j] - m) / c;
        double scale = sqrt(ss) < lo ? lo / fmax(sqrt(ss), 1e-3) : 1.0;
        for (int j = 0; j < c; j++)
            v[j] = (float)(m + (v[j] - m) * scale);
    }
}

static void mk_ln(rin *in, tg_rng *r, int k)
{
    tg_tensor *gamma = PAR(r, 0.5f, k), *beta = PAR(r, 0.5f, k);
    for (int j = 0; j < k; j++)
        gamma->data[j] += 1.0f;
    set(in, PAR(r, 1.0f, 3, k), gamma, beta);
    spread_rows(P0, true, 0.5f);
}

static void mk_ln_plain(rin *in, tg_rng *r, int k)
{
    mk_one(in, r, k);
    spread_rows(P0, true, 0.5f);
}

static tg_tensor *ap_ln(tg_tape *t, rin *in) { return tg_layernorm(t, P0, P1, P2, 1e-5f); }
static tg_tensor *ap_ln_plain(tg_tape *t, rin *in) { return tg_layernorm(t, P0, NULL, NULL, 1e-5f); }
static tg_tensor *ap_sum(tg_tape *t, rin *in) { return tg_sum(t, tg_mul(t, P0, P0)); }
static tg_tensor *ap_mean(tg_tape *t, rin *in) { return tg_mean(t, tg_mul(t, P0, P0)); }
static tg_tensor *ap_gelu(tg_tape *t, rin *in) { return tg_gelu(t, P0); }
static tg_tensor *ap_softmax(tg_tape *t, rin *in) { return tg_softmax(t, P0); }
static tg_tensor *ap_reshape(tg_tape *t, rin *in) { return tg_reshape(t, P0, 2, (int[]){in->k, 3}); }

static void mk_gelu(rin *in, tg_rng *r, int k) { set(in, PAR(r, 2.0f, 3, k), NULL, NULL); }
static void mk_gelu_3k2(rin *in, tg_rng *r, int k) { set(in, PAR(r, 2.0f, 3, k, 2), NULL, NULL); }

/* ids [2,4] into a [5,k] table, row 3 picked three times, row 2 never. */
static void mk_embedding(rin *in, tg_rng *r, int k)
{
    static const int ids[] = {3, 1, 3, 0, 3, 4, 1, 1};
    memcpy(in->ids, ids, sizeof ids);
    in->ids_shape[0] = 2;
    in->ids_shape[1] = 4;
    set(in, PAR(r, 1.0f, 5, k), NULL, NULL);
}

static tg_tensor *ap_embedding(tg_tape *t, rin *in) { return tg_embedding(t, P0, in->ids, 2, in->ids_shape); }

/* Logits [4,k] with targets spread over [0,k) and row 2 ignored. */
static void mk_xent(rin *in, tg_rng *r, int k)
{
    for (int i = 0; i < 4; i++)
        in->ids[i] = (3 * i + 1) % k;
    in->ids[2] = -1;
    set(in, PAR(r, 2.0f, 4, k), NULL, NULL);
}

static tg_tensor *ap_xent(tg_tape *t, rin *in) { return tg_cross_entropy(t, P0, in->ids); }

/* qkv [B, T=k, 3*6], two heads of size 3. */
static void mk_attention(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.0f, k > 7 ? 1 : 2, k, 18), NULL, NULL); }
static tg_tensor *ap_attention(tg_tape *t, rin *in) { return tg_attention(t, P0, 2); }

/* qkv [2, T=k, 3*8] turned by RoPE, two heads of size 4. */
static void mk_rope(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.0f, 2, k, 24), NULL, NULL); }
static tg_tensor *ap_rope(tg_tape *t, rin *in) { return tg_rope(t, P0, 2, 10000.0f); }

/* Gate and up halves [3, 2k] -> [3, k]. */
static void mk_swiglu(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.5f, 3, 2 * k), NULL, NULL); }
static tg_tensor *ap_swiglu(tg_tape *t, rin *in) { return tg_swiglu(t, P0); }

/* ---- RMSNorm, dropout, MSE ------------------------------------------------ */

static void mk_rms(rin *in, tg_rng *r, int k)
{
    tg_tensor *g = PAR(r, 0.5f, k);
    for (int j = 0; j < k; j++)
        g->data[j] += 1.0f;
    set(in, PAR(r, 1.0f, 2, 3, k), g, NULL);
    spread_rows(P0, false, 0.5f);
}

static tg_tensor *ap_rms(tg_tape *t, rin *in) { return tg_rmsnorm(t, P0, P1, 1e-5f); }
static tg_tensor *ap_rms_eps(tg_tape *t, rin *in) { return tg_rmsnorm(t, P0, P1, 0.1f); }
static tg_tensor *ap_mse(tg_tape *t, rin *in) { return tg_mse(t, P0, P1); }

/* The mask must be the same at every evaluation of the loss: a generator
 * seeded afresh each time. */
static tg_tensor *ap_dropout(tg_tape *t, rin *in)
{
    tg_rng r;
    tg_rng_seed(&r, (uint64_t)in->k);
    return tg_dropout(t, P0, 0.3f, &r);
}

/* ---- reductions along a dimension ----------------------------------------- */

static void mk_3k2(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.0f, 3, k, 2), NULL, NULL); }

/* The largest of each run along dim 1 raised by 0.25 above the rest, so no
 * step of the stencil changes which element is the max. */
static void mk_max(rin *in, tg_rng *r, int k)
{
    mk_3k2(in, r, k);
    float *x = P0->data;
    for (int o = 0; o < 3; o++)
        for (int i = 0; i < 2; i++) {
            int best = 0;
            for (int j = 1; j < k; j++)
                best = x[(o * k + j) * 2 + i] > x[(o * k + best) * 2 + i] ? j : best;
            x[(o * k + best) * 2 + i] += 0.25f;
        }
}

static tg_tensor *ap_sum_dim(tg_tape *t, rin *in) { return tg_sum_dim(t, P0, 1, false); }
static tg_tensor *ap_sum_last(tg_tape *t, rin *in) { return tg_sum_dim(t, P0, -1, true); }
static tg_tensor *ap_mean_dim(tg_tape *t, rin *in) { return tg_mean_dim(t, P0, 1, true); }
static tg_tensor *ap_mean_first(tg_tape *t, rin *in) { return tg_mean_dim(t, P0, 0, false); }
static tg_tensor *ap_max_dim(tg_tape *t, rin *in) { return tg_max_dim(t, P0, 1, false); }
static tg_tensor *ap_max_keep(tg_tape *t, rin *in) { return tg_max_dim(t, P0, -2, true); }
static tg_tensor *ap_lse(tg_tape *t, rin *in) { return tg_logsumexp(t, P0, 1, false); }
static tg_tensor *ap_lse_last(tg_tape *t, rin *in) { return tg_logsumexp(t, P0, -1, true); }

/* ---- shape ------------------------------------------------------------------ */

static void mk_slice(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.0f, 3, k + 2, 2), NULL, NULL); }
static void mk_cat2(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.0f, 3, k), PAR(r, 1.0f, 3, 2), NULL); }

static void mk_cat3(rin *in, tg_rng *r, int k)
{
    set(in, PAR(r, 1.0f, k, 2), PAR(r, 1.0f, 1, 2), PAR(r, 1.0f, 3, 2));
}

static void mk_split(rin *in, tg_rng *r, int k) { set(in, PAR(r, 1.0f, 3, k + 3), NULL, NULL); }

static tg_tensor *ap_permute(tg_tape *t, rin *in) { return tg_permute(t, P0, (int[]){2, 0, 1}); }
static tg_tensor *ap_transpose(tg_tape *t, rin *in) { return tg_transpose(t, P0, 0, -1); }
static tg_tensor *ap_slice(tg_tape *t, rin *in) { return tg_slice(t, P0, 1, 1, in->k); }
static tg_tensor *ap_slice_first(tg_tape *t, rin *in) { return tg_slice(t, P0, 0, 2, 1); }
static tg_tensor *ap_cat2(tg_tape *t, rin *in) { return tg_concat(t, in->p, 2, -1); }
static tg_tensor *ap_cat3(tg_tape *t, rin *in) { return tg_concat(t, in->p, 3, 0); }

/* Split [3, k+3] into k, 1 and 2 columns, joined again in another order. */
static tg_tensor *ap_split(tg_tape *t, rin *in)
{
    tg_tensor *part[3];
    if (tg_split(t, P0, 1, 3, (int[]){in->k, 1, 2}, part) != TG_OK)
        return NULL;
    return tg_concat(t, (tg_tensor *[]){part[2], part[0], part[1]}, 3, 1);
}

static tg_tensor *ap_attention_dropout(tg_tape *t, rin *in)
{
    tg_rng r;
    tg_rng_seed(&r, 78);
    return tg_attention_dropout(t, P0, 2, 0.25f, &r);
}

/* ---- the table ------------------------------------------------------------ */

static const rcase CASES[] = {
    {TG_OP_RMSNORM, "rmsnorm [2,3,k] with gain", mk_rms, ap_rms},
    {TG_OP_RMSNORM, "rmsnorm, eps 0.1", mk_rms, ap_rms_eps},
    {TG_OP_DROPOUT, "dropout p 0.3", mk_one, ap_dropout},
    {TG_OP_MSE, "mse", mk_same2, ap_mse},
    {TG_OP_SUM_DIM, "sum_dim [3,k,2] over 1", mk_3k2, ap_sum_dim},
    {TG_OP_SUM_DIM, "sum_dim over -1, keepdim", mk_3k2, ap_sum_last},
    {TG_OP_MEAN_DIM, "mean_dim [3,k,2] over 1, keepdim", mk_3k2, ap_mean_dim},
    {TG_OP_MEAN_DIM, "mean_dim over 0", mk_3k2, ap_mean_first},
    {TG_OP_MAX_DIM, "max_dim [3,k,2] over 1", mk_max, ap_max_dim},
    {TG_OP_MAX_DIM, "max_dim over -2, keepdim", mk_max, ap_max_keep},
    {TG_OP_LOGSUMEXP, "logsumexp [3,k,2] over 1", mk_gelu_3k2, ap_lse},
    {TG_OP_LOGSUMEXP, "logsumexp over -1, keepdim", mk_gelu_3k2, ap_lse_last},
    {TG_OP_PERMUTE, "permute [3,k,2] by (2,0,1)", mk_3k2, ap_permute},
    {TG_OP_PERMUTE, "transpose 0, -1 of [3,k,2]", mk_3k2, ap_transpose},
    {TG_OP_PERMUTE, "transpose of [3,k]", mk_one, ap_transpose},
    {TG_OP_SLICE, "slice [3,k+2,2] dim 1 from 1", mk_slice, ap_slice},
    {TG_OP_SLICE, "slice dim 0, one row", mk_slice, ap_slice_first},
    {TG_OP_SLICE, "split [3,k+3] into k,1,2, concat reordered", mk_split, ap_split},
    {TG_OP_CONCAT, "concat [3,k] and [3,2] on -1", mk_cat2, ap_cat2},
    {TG_OP_CONCAT, "concat [k,2], [1,2], [3,2] on 0", mk_cat3, ap_cat3},
    {TG_OP_ADD, "add same shape", mk_same2, ap_add},
    {TG_OP_ADD, "add bias row [k]", mk_row, ap_add},
    {TG_OP_ADD, "add table [k,5] to [2,k,5]", mk_table, ap_add},
    {TG_OP_ADD, "add [k] + [3,k]", mk_a_row, ap_add},
    {TG_OP_ADD, "add [3,1,k] + [4,1]", mk_general, ap_add},
    {TG_OP_SUB, "sub same shape", mk_same2, ap_sub},
    {TG_OP_SUB, "sub [3,k] - [k]", mk_row, ap_sub},
    {TG_OP_SUB, "sub [k] - [3,k]", mk_a_row, ap_sub},
    {TG_OP_SUB, "sub [3,1,k] - [4,1]", mk_general, ap_sub},
    {TG_OP_MUL, "mul same shape", mk_same2, ap_mul},
    {TG_OP_MUL, "mul [3,k] * [k]", mk_row, ap_mul},
    {TG_OP_MUL, "mul [k] * [3,k]", mk_a_row, ap_mul},
    {TG_OP_MUL, "mul [3,1,k] * [4,1]", mk_general, ap_mul},
    {TG_OP_DIV, "div same shape", mk_div, ap_div},
    {TG_OP_DIV, "div [3,1,k] / [4,1]", mk_div_general, ap_div},
    {TG_OP_SCALE, "neg", mk_one, ap_neg},
    {TG_OP_EXP, "exp", mk_one, ap_exp},
    {TG_OP_LOG, "log of x >= 0.5", mk_positive, ap_log},
    {TG_OP_SQRT, "sqrt of x >= 0.5", mk_positive, ap_sqrt},
    {TG_OP_POW, "pow 3", mk_one, ap_pow3},
    {TG_OP_POW, "pow -1.5 of x >= 0.5", mk_positive, ap_pow_frac},
    {TG_OP_ABS, "abs, |x| >= 0.1", mk_off_zero, ap_abs},
    {TG_OP_TANH, "tanh", mk_gelu, ap_tanh},
    {TG_OP_SIGMOID, "sigmoid", mk_gelu, ap_sigmoid},
    {TG_OP_RELU, "relu, |x| >= 0.1", mk_off_zero, ap_relu},
    {TG_OP_SILU, "silu", mk_gelu, ap_silu},
    {TG_OP_GELU_ERF, "gelu (erf)", mk_gelu, ap_gelu_erf},
    {TG_OP_CLAMP, "clamp [-0.5, 0.8]", mk_clamp, ap_clamp},
    {TG_OP_SCALE, "scale -1.7", mk_one, ap_scale},
    {TG_OP_MATMUL, "matmul", mk_mm, ap_mm},
    {TG_OP_MATMUL, "matmul a^T", mk_mm_ta, ap_mm_ta},
    {TG_OP_MATMUL, "matmul b^T", mk_mm_tb, ap_mm_tb},
    {TG_OP_MATMUL, "matmul a^T b^T", mk_mm_tab, ap_mm_tab},
    {TG_OP_MATMUL, "matmul batched [2,3,k] @ [5,k]^T", mk_mm_batch, ap_mm_tb},
    {TG_OP_MATMUL, "linear with bias", mk_linear, ap_linear},
    {TG_OP_RESIDUAL, "residual", mk_same2, ap_residual},
    {TG_OP_RESIDUAL, "residual alpha 2.5", mk_same2, ap_residual_scaled},
    {TG_OP_RESIDUAL_GATED, "residual gated", mk_gated, ap_residual_gated},
    {TG_OP_LAYERNORM, "layernorm", mk_ln, ap_ln},
    {TG_OP_LAYERNORM, "layernorm without affine", mk_ln_plain, ap_ln_plain},
    {TG_OP_SUM, "sum of x*x", mk_one, ap_sum},
    {TG_OP_MEAN, "mean of x*x", mk_one, ap_mean},
    {TG_OP_EMBEDDING, "embedding, repeated ids", mk_embedding, ap_embedding},
    {TG_OP_GELU, "gelu (tanh)", mk_gelu, ap_gelu},
    {TG_OP_SOFTMAX, "softmax", mk_gelu, ap_softmax},
    {TG_OP_ATTENTION, "attention, 2 heads", mk_attention, ap_attention},
    {TG_OP_ATTENTION, "attention, 2 heads, dropout 0.25", mk_attention, ap_attention_dropout},
    {TG_OP_CROSS_ENTROPY, "cross-entropy, a row ignored", mk_xent, ap_xent},
    {TG_OP_RESHAPE, "reshape [3,k] -> [k,3]", mk_one, ap_reshape},
    {TG_OP_ROPE, "rope, 2 heads of 4, T = k", mk_rope, ap_rope},
    {TG_OP_SWIGLU, "swiglu [3,2k] -> [3,k]", mk_swiglu, ap_swiglu},
};
enum { N_CASES = sizeof CASES / sizeof *CASES };

#define TG_OP_NAME(ID, name) #name,
static const char *const OP_NAMES[] = {TG_OP_LIST(TG_OP_NAME)};
#undef TG_OP_NAME

/* ---- the runner ----------------------------------------------------------- */

typedef struct lctx {
    const rcase *c;
    rin *in;
    tg_tensor *w;
} lctx;

static tg_tensor *loss(tg_tape *t, void *p)
{
    lctx *l = p;
    return tg_sum(t, tg_mul(t, l->c->apply(t, l->in), l->w));
}

static bool records(const tg_tape *t, tg_op op)
{
    int count;
    const tg_node *nodes = tg_tape_nodes(t, &count);
    for (int i = 0; i < count; i++)
        if (nodes[i].op == op)
            return true;
    return false;
}

static void run_case(void **state)
{
    const rcase *c = *state;
    for (size_t s = 0; s < sizeof SIZES / sizeof *SIZES; s++) {
        int k = SIZES[s];
        tg_rng r;
        tg_rng_seed(&r, (uint64_t)(1000 * (c - CASES) + k));
        rin in = {.k = k};
        c->make(&in, &r, k);
        char what[128];
        snprintf(what, sizeof what, "%s (%s), k = %d", c->what, OP_NAMES[c->op], k);

        tg_tape *t = tg_tape_new(0);
        assert_non_null(t);
        tg_tensor *y = c->apply(t, &in);
        if (!y || tg_tape_status(t) != TG_OK)
            fail_msg("%s: %s", what, tg_tape_error(t));
        if (!records(t, c->op))
            fail_msg("%s: the case does not record op %s", what, OP_NAMES[c->op]);
        tg_tensor *w = tg_param_new(y->ndim, y->shape, "w");
        assert_non_null(w);
        tg_fill_normal(w, &r, 0.0f, 1.0f);
        w->requires_grad = false;
        tg_tape_free(t);

        lctx l = {c, &in, w};
        tu_gradcheck(what, loss, &l, in.p, in.n, TOL);
        tg_param_free(w);
        for (int i = 0; i < in.n; i++)
            tg_param_free(in.p[i]);
    }
}

/* Every op in the list has at least one case; lists all that have none. */
static void test_coverage(void **state)
{
    (void)state;
    int missing = 0;
    for (int op = 0; op < TG_OP_COUNT; op++) {
        int cases = 0;
        for (int i = 0; i < N_CASES; i++)
            cases += (int)CASES[i].op == op;
        if (!cases) {
            print_error("op %s has no gradient case in tests/test_op_registry.c\n", OP_NAMES[op]);
            missing++;
        }
    }
    if (missing)
        fail_msg("%d of %d ops untested", missing, (int)TG_OP_COUNT);
}

int main(void)
{
    static struct CMUnitTest tests[N_CASES + 1];
    tests[0] = (struct CMUnitTest)cmocka_unit_test(test_coverage);
    for (int i = 0; i < N_CASES; i++)
        tests[i + 1] = (struct CMUnitTest){.name = CASES[i].what, .test_func = run_case,
                                           .initial_state = (void *)&CASES[i]};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
