/* Internal structures shared by the tape and the op files. Not installed. */
#ifndef TAPEGRAD_INTERNAL_H
#define TAPEGRAD_INTERNAL_H

#include "tapegrad.h"

#include <stdarg.h>

#define TG_MAX_INPUTS 3

#include "ops/op_list.h"

/* Every op the tape can record, from the one list in src/ops/op_list.h. */
#define TG_OP_ENUM(ID, name) TG_OP_##ID,
typedef enum tg_op { TG_OP_LIST(TG_OP_ENUM) TG_OP_COUNT } tg_op;
#undef TG_OP_ENUM

/* One recorded op. Parameters that are not tensors go in f[] and i[]; data a
 * backward needs from its forward (LayerNorm's mean and rstd) goes in aux. */
typedef struct tg_node {
    tg_op op;
    int n_in;
    tg_tensor *in[TG_MAX_INPUTS];
    tg_tensor *out;
    float f[4];
    int i[4];
    void *aux;
} tg_node;

typedef void (*tg_kernel_fn)(tg_node *n);

/* During tg_backward a tape tensor's gradient buffer starts unwritten, and
 * reads as zero. A backward kernel adds into its inputs' gradients, which
 * the walk zeroes first when they are still unwritten, except for the ops
 * listed in tape.c's claims_grads, whose kernels ask for every input:
 * tg_grad_claim(x) is true when x's gradient was unwritten (and marks it
 * written), and the caller must then store into it, not add. Claims are
 * made before a parallel loop, never inside one. */
bool tg_grad_claim(tg_tensor *x);

typedef struct tg_op_def {
    const char *name;
    tg_kernel_fn forward;
    tg_kernel_fn backward;
} tg_op_def;

extern const tg_op_def tg_op_table[];

/* Each op file exports its two kernels under these names. */
#define TG_DECLARE_OP(ID, name) \
    void tg_##name##_forward(tg_node *n); \
    void tg_##name##_backward(tg_node *n);
TG_OP_LIST(TG_DECLARE_OP)
#undef TG_DECLARE_OP

/* ---- errors (src/tensor/error.c) ---- */

/* Formats a message into the calling thread's tg_last_error() and, when err
 * is not NULL, into err; returns s. Every failure outside a tape goes
 * through here, so tg_last_error() holds it whatever else the caller asked. */
tg_status tg_error(char *err, size_t errlen, tg_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
tg_status tg_verror(char *err, size_t errlen, tg_status s, const char *fmt, va_list ap);

/* ---- arena and recording (src/tensor/tape.c) ---- */

/* 64-byte aligned bytes from the tape's arena; NULL (and a failed tape) when
 * memory runs out. */
void *tg_arena_alloc(tg_tape *t, size_t bytes);
/* The constructors' common tail. tg_node_output makes n's output (shape
 * ndim/shape, in the arena, needing a gradient when any of n's inputs does)
 * and returns it; tg_tape_emit does that and records n. Both return NULL on
 * a failed tape. */
tg_tensor *tg_node_output(tg_tape *t, tg_node *n, int ndim, const int *shape);
tg_tensor *tg_tape_emit(tg_tape *t, tg_node *n, int ndim, const int *shape);
/* Append a node and run its forward kernel. Returns the node's output, or
 * NULL on a failed tape. */
tg_tensor *tg_tape_record(tg_tape *t, const tg_node *n);
/* False when the tape is NULL or failed, or when an input is NULL or not
 * the tape's (which then fails the tape with a message naming op): every op
 * constructor calls it first. */
bool tg_tape_check_inputs(tg_tape *t, const char *op, tg_tensor *const *in, int n);
/* x's identity against t (t not NULL, x not NULL): a parameter, or a tensor
 * of t's current generation. Otherwise fails t naming op and input index. */
bool tg_tape_owns(tg_tape *t, const char *op, const tg_tensor *x, int index);
/* The generation stamped on parameters (whose tape is NULL): a value no
 * tape reaches, so stale memory read as a tensor hardly passes for one. */
#define TG_PARAM_GENERATION UINT64_C(0x706172616d657465)

/* op(a) op(b) + bias, bias [N] added to every row (NULL: none); the one
 * node tg_linear records. Its messages name tg_linear when bias is given. */
tg_tensor *tg_matmul_bias(tg_tape *t, tg_tensor *a, tg_tensor *b, tg_tensor *bias, bool trans_a, bool trans_b);

/* ---- rotary embeddings (src/ops/rope.c), shared with generation ---- */
/* cos then sin of theta_i for positions first .. first+len-1: d floats per
 * position, the d/2 cosines followed by the d/2 sines. */
void tg_rope_table(int d, int first, int len, float base, float *cs);
/* Turns one head x[d] by a position's row of that table (by its inverse
 * when inverse is set). */
void tg_rope_rotate(float *x, int d, const float *cs, bool inverse);

/* ---- the thread pool (src/tensor/threads.c) ----
 * fn(ctx, i) for every i in [0, n), chunks handed out one at a time to free
 * threads, the caller included; returns when all are done. Chunks must not
 * depend on which thread or how many threads run them: cut the work by its
 * shape, and add up per-chunk partial results in chunk order. */
typedef void (*tg_chunk_fn)(void *ctx, long i);
void tg_parallel_for(long n, tg_chunk_fn fn, void *ctx);
/* Chunks of about `grain` units out of `total`: at least 1. */
static inline long tg_chunks(long total, long grain)
{
    return total <= grain ? 1 : (total + grain - 1) / grain;
}
/* Chunk i of those covers units [i * grain, tg_chunk_end(i, grain, total)). */
static inline long tg_chunk_end(long i, long grain, long total)
{
    return (i + 1) * grain < total ? (i + 1) * grain : total;
}

/* ---- kernels the generator (src/nn/generate.c) shares with the ops, so
 * that its logits are the tape's to the bit where the order of sums agrees ---- */
/* One LayerNorm row of length c into y; stats (may be NULL) gets mean, rstd.
 * A row holding a value beyond 2^125 (or inf) comes out NaN with rstd 0. */
void tg_layernorm_row(const float *x, int c, const float *gamma, const float *beta, float eps, float *y,
                      float *stats);
/* y = GELU(x) (tanh form) for n elements. */
void tg_gelu_span(const float *restrict x, float *restrict y, long n);
/* One row of RMSNorm as the op computes it; returns the row's 1/rms. */
double tg_rmsnorm_row(const float *x, int c, const float *g, float eps, float *y);
/* One row of SwiGLU's gate: y = silu(a) * b over half elements. */
void tg_swiglu_row(const float *restrict a, const float *restrict b, float *restrict y, int half);

/* ---- GEMM (src/ops/gemm.c): C = alpha * op(A) op(B) + beta * C ---- */
void tg_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
             const float *a, int lda, const float *b, int ldb, float beta,
             float *c, int ldc);
/* C = op(A) op(B) + bias, the row bias[n] added to every row of C. */
void tg_gemm_bias(bool trans_a, bool trans_b, int m, int n, int k, const float *a, int lda,
                  const float *b, int ldb, const float *bias, float *c, int ldc);
/* Products of at least this many multiply-adds go to OpenBLAS when it is
 * linked; the environment variable TG_GEMM_BLAS_MIN_FLOPS overrides it (0
 * sends every product there). The default sends none: in bench_gemm on this
 * machine the built-in kernel ran at 127% to 172% of OpenBLAS's speed at
 * every shape measured, GPT-2's 2048 x 768 x 768 included, and OpenBLAS's
 * own thread pool spins after each call and fights the library's for the cores
 * (the sort task took 19 s with every product on OpenBLAS, 5.2 s with none). */
#ifndef TG_GEMM_BLAS_MIN_FLOPS
#define TG_GEMM_BLAS_MIN_FLOPS HUGE_VAL
#endif
/* Unblocked accumulate C += alpha op(A) op(B), the fallback of the built-in. */
void tg_gemm_reference(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                       const float *a, int lda, const float *b, int ldb, float *c, int ldc);
/* Frees the calling thread's packing buffers (the pool's workers, on exit). */
void tg_gemm_thread_exit(void);
/* The built-in backend, whatever tg_gemm dispatches to (tests compare them):
 * tg_gemm when bias is NULL, else tg_gemm_bias with its alpha and beta. */
void tg_gemm_builtin(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                     const float *a, int lda, const float *b, int ldb, float beta,
                     const float *bias, float *c, int ldc);
/* Recorded node i (benchmarks run kernels on their own); NULL out of range. */
tg_node *tg_tape_node(tg_tape *t, int i);
/* All recorded nodes, oldest first (the gradient report walks them). */
const tg_node *tg_tape_nodes(const tg_tape *t, int *count);
/* The loss as a double when its node kept one (sum and mean do). */
double tg_tape_value(const tg_tape *t, const tg_tensor *x);

/* ---- reductions written with independent lanes, so the compiler can
 * vectorise them without -ffast-math (a float sum is not reassociable). */
#define TG_LANES 16
static inline float tg_vsum(const float *x, int n)
{
    float acc[TG_LANES] = {0};
    int j = 0;
    for (; j + TG_LANES <= n; j += TG_LANES)
        for (int l = 0; l < TG_LANES; l++)
            acc[l] += x[j + l];
    float s = 0.0f;
    for (; j < n; j++)
        s += x[j];
    for (int l = 0; l < TG_LANES; l++)
        s += acc[l];
    return s;
}

static inline float tg_vdot(const float *x, const float *y, int n)
{
    float acc[TG_LANES] = {0};
    int j = 0;
    for (; j + TG_LANES <= n; j += TG_LANES)
        for (int l = 0; l < TG_LANES; l++)
            acc[l] += x[j + l] * y[j + l];
    float s = 0.0f;
    for (; j < n; j++)
        s += x[j] * y[j];
    for (int l = 0; l < TG_LANES; l++)
        s += acc[l];
    return s;
}

#endif
