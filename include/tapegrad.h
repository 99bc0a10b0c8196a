/*
 * tapegrad: a small tape-based reverse-mode autograd engine in C11.
 *
 * Tensors are float32, row-major, contiguous, with up to TG_MAX_DIMS
 * dimensions. Parameters live on the heap (tg_param_new) and keep their
 * gradients across steps. Everything an op produces lives in the arena of a
 * tg_tape; tg_tape_reset() rewinds that arena, so a training loop stops
 * calling malloc after its first step.
 *
 * Errors, one model for the whole library; nothing aborts on a bad value.
 * - Ops: a misuse (wrong shape, bad argument, a tensor from another tape or
 *   from before the tape's last reset, out of memory) puts the tape in a
 *   failed state with a message naming the op and the values; every later op
 *   on that tape returns NULL at once. Check tg_tape_status() /
 *   tg_tape_error() once, after the forward pass or after tg_backward().
 * - Everything else reports a failure by its return value: a tg_status
 *   (TG_OK or what went wrong, tg_status_str names it), NULL from a
 *   constructor, -1 from a count. The message, naming the function and the
 *   bad value, is then in tg_last_error() (per thread, kept until the
 *   thread's next failure); functions taking char *err, size_t errlen also
 *   copy it there.
 * - A NULL where a pointer is needed is such a failure (TG_ERR_ARG), never a
 *   dereference. Functions returning nothing do nothing when given NULL;
 *   queries of a NULL object return 0, "" or NULL as documented.
 * - Sizes are overflow-checked: a shape or configuration too large to
 *   address fails with a message, never wraps.
 */
#ifndef TAPEGRAD_H
#define TAPEGRAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TG_MAX_DIMS 4
#define TG_VERSION "0.1.0"

typedef enum tg_status {
    TG_OK = 0,
    TG_ERR_SHAPE,   /* operand shapes do not fit the op */
    TG_ERR_ARG,     /* a bad argument: NULL, out of range, not finite */
    TG_ERR_NOMEM,   /* an allocation failed */
    TG_ERR_IO,      /* a file could not be opened, read or written */
    TG_ERR_FORMAT,  /* a file is truncated, corrupt or does not match */
} tg_status;

/* "ok", "shape mismatch", "bad argument", "out of memory", ... */
const char *tg_status_str(tg_status s);
/* The message of the calling thread's latest failure outside a tape ("" when
 * none yet). */
const char *tg_last_error(void);

typedef struct tg_tensor {
    float *data;
    float *grad;                 /* NULL until a gradient reaches it */
    int ndim;
    int shape[TG_MAX_DIMS];
    size_t size;                 /* number of elements */
    bool requires_grad;          /* false freezes a parameter: backward gives it
                                    no gradient, the optimizers and clipping
                                    leave it exactly as it is */
    bool on_heap;                /* a parameter (tg_param_new), not an activation */
    char name[64];
    /* Identity, set by the library: the tape whose arena holds the tensor
     * and that tape's generation (bumped by every reset) when it was made;
     * tape is NULL for a parameter, which belongs to no tape. */
    const struct tg_tape *tape;
    uint64_t generation;
} tg_tensor;

typedef struct tg_tape tg_tape;

/* ---- tensors and parameters (heap, owned by the caller) ---------------- */

/* A parameter of the given shape: data and grad zeroed, requires_grad set.
 * Returns NULL on a bad shape (NULL, a dimension < 1, more than 2^40
 * elements) or when memory runs out. */
tg_tensor *tg_param_new(int ndim, const int *shape, const char *name);
void tg_param_free(tg_tensor *p);
/* Zeroes the gradients of the parameters that require one; frozen ones and
 * NULL entries are left alone. */
void tg_zero_grad(tg_tensor *const *params, int n);
/* "[4,3]" into buf; returns buf. */
const char *tg_shape_str(const tg_tensor *t, char *buf, size_t len);
/* Elements of the shape; 0 when it is bad (NULL, ndim outside 1 to
 * TG_MAX_DIMS, a dimension < 1) or holds more than 2^40 elements. */
size_t tg_shape_size(int ndim, const int *shape);
/* Rows when the last dimension is the row length (0 for NULL). */
static inline size_t tg_rows(const tg_tensor *t) { return t ? t->size / (size_t)t->shape[t->ndim - 1] : 0; }
static inline int tg_cols(const tg_tensor *t) { return t ? t->shape[t->ndim - 1] : 0; }

/* ---- random numbers: a small counter-free generator (xoshiro128+) ------- */

typedef struct tg_rng { uint32_t s[4]; } tg_rng;  /* a NULL one draws 0 */
void tg_rng_seed(tg_rng *r, uint64_t seed);
uint32_t tg_rng_u32(tg_rng *r);
float tg_rng_uniform(tg_rng *r);          /* [0, 1) */
float tg_rng_normal(tg_rng *r);           /* mean 0, std 1 */
void tg_fill_normal(tg_tensor *t, tg_rng *r, float mean, float std);
void tg_fill(tg_tensor *t, float value);

/* ---- the tape ----------------------------------------------------------- */

/* arena_hint: bytes to reserve up front (0 picks a default, at most 2^44);
 * the arena grows in chunks during the first step and is reused afterwards.
 * Every tensor made on the tape is tied to it: an op given a tensor of
 * another tape, or one made before the last tg_tape_reset, fails. */
tg_tape *tg_tape_new(size_t arena_hint);
void tg_tape_free(tg_tape *t);
/* Forget every recorded op and rewind the arena; clears a failed status and
 * starts a new generation: the tape's tensors so far are dead. */
void tg_tape_reset(tg_tape *t);
tg_status tg_tape_status(const tg_tape *t);   /* TG_ERR_ARG for NULL */
const char *tg_tape_error(const tg_tape *t);  /* "" when the tape is fine */
int tg_tape_length(const tg_tape *t);         /* ops recorded; -1 for NULL */
size_t tg_tape_arena_bytes(const tg_tape *t); /* bytes the arena holds */
/* Times every forward and backward kernel from now on (off: stops), summed
 * per op across steps; either call clears the sums. */
void tg_tape_profile(tg_tape *t, bool on);
/* The sums as a text table (op, calls, forward ms, backward ms, share) in
 * buf; returns the length it needed, as snprintf does. */
size_t tg_tape_profile_report(const tg_tape *t, char *buf, size_t len);
/* Put the tape in the failed state (for layers built outside the library).
 * The first failure wins. */
void tg_tape_fail(tg_tape *t, tg_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* A tensor in the tape's arena, for inputs: data zeroed, no gradient. */
tg_tensor *tg_tape_tensor(tg_tape *t, int ndim, const int *shape);
/* Name a tensor so tools can find it (tg_tape_find, tg_grad_report); names
 * longer than 63 characters are cut. Returns x. */
tg_tensor *tg_name(tg_tensor *x, const char *name);

/* Seeds d(loss) = 1 and walks the tape in reverse, accumulating into the
 * gradients of parameters (which must have been zeroed by tg_zero_grad) and
 * of activations. loss must be a one-element tensor recorded on t. Every
 * activation that requires a gradient keeps it, in the arena, until
 * tg_tape_reset: there is no retain_grad to ask for. */
tg_status tg_backward(tg_tape *t, tg_tensor *loss);

/* ---- ops: forward runs now, backward is recorded on the tape ----------- */

/* Binary elementwise ops broadcast as NumPy does: shapes aligned at the
 * last dimension, each pair of dimensions equal or one of them 1 (missing
 * leading dimensions count as 1); the output takes the larger of each pair,
 * and the gradient of a stretched input is summed over the stretch. A bias
 * row [C] added to [N, C] and a [T, C] table added to [B, T, C] are the fast
 * cases, as is an equal shape. */
tg_tensor *tg_add(tg_tape *t, tg_tensor *a, tg_tensor *b); /* a + b */
tg_tensor *tg_sub(tg_tape *t, tg_tensor *a, tg_tensor *b); /* a - b */
tg_tensor *tg_mul(tg_tape *t, tg_tensor *a, tg_tensor *b); /* a * b */
tg_tensor *tg_div(tg_tape *t, tg_tensor *a, tg_tensor *b); /* a / b */
/* c * x for a constant c. */
tg_tensor *tg_scale(tg_tape *t, tg_tensor *x, float c);
/* Elementwise functions, same shape out. A value outside a function's domain
 * gives what C's libm gives (log of a negative number is NaN). At a kink the
 * gradient is PyTorch's: relu and abs take 0 at 0, clamp passes it where
 * lo <= x <= hi. */
tg_tensor *tg_neg(tg_tape *t, tg_tensor *x);            /* -x (recorded as scale by -1) */
tg_tensor *tg_exp(tg_tape *t, tg_tensor *x);            /* e^x */
tg_tensor *tg_log(tg_tape *t, tg_tensor *x);            /* natural log */
tg_tensor *tg_sqrt(tg_tape *t, tg_tensor *x);
tg_tensor *tg_pow(tg_tape *t, tg_tensor *x, float p);   /* x^p, p finite */
tg_tensor *tg_abs(tg_tape *t, tg_tensor *x);
tg_tensor *tg_tanh(tg_tape *t, tg_tensor *x);
tg_tensor *tg_sigmoid(tg_tape *t, tg_tensor *x);        /* 1 / (1 + e^-x) */
tg_tensor *tg_relu(tg_tape *t, tg_tensor *x);           /* max(x, 0) */
tg_tensor *tg_silu(tg_tape *t, tg_tensor *x);           /* x sigmoid(x) */
tg_tensor *tg_gelu_erf(tg_tape *t, tg_tensor *x);       /* 0.5 x (1 + erf(x / sqrt 2)), PyTorch's default GELU */
/* min(max(x, lo), hi); lo <= hi, either may be infinite (one-sided). */
tg_tensor *tg_clamp(tg_tape *t, tg_tensor *x, float lo, float hi);
/* op(a) @ op(b), op = transpose when the flag is set. a may have leading
 * batch dimensions when not transposed: [..., K] @ [K, N] -> [..., N]. */
tg_tensor *tg_matmul(tg_tape *t, tg_tensor *a, tg_tensor *b, bool trans_a, bool trans_b);
/* The residual stream: x + f, f being Sublayer(x). A named op, not an add,
 * so tools can find residual adds on the tape. */
tg_tensor *tg_residual(tg_tape *t, tg_tensor *x, tg_tensor *f);
/* alpha * x + f (DeepNorm's scaled skip path). */
tg_tensor *tg_residual_scaled(tg_tape *t, tg_tensor *x, tg_tensor *f, float alpha);
/* LayerNorm over the last dimension with per-feature gamma and beta [C]. */
tg_tensor *tg_layernorm(tg_tape *t, tg_tensor *x, tg_tensor *gamma, tg_tensor *beta, float eps);
/* RMSNorm over the last dimension with a gain g [C]:
 * x / sqrt(mean(x^2) + eps) * g. The mean of squares is taken in double, so
 * any finite row normalises (a row of 1e30s included). */
tg_tensor *tg_rmsnorm(tg_tape *t, tg_tensor *x, tg_tensor *g, float eps);
/* Dropout: each element kept (scaled by 1/(1-p)) when a uniform draw from
 * rng is at least p, drawn in order when recorded; p in [0, 1). p = 0 or
 * rng NULL returns x itself and records nothing. */
tg_tensor *tg_dropout(tg_tape *t, tg_tensor *x, float p, tg_rng *rng);
/* Mean-squared error mean((a - b)^2) of two tensors of one shape, to a
 * one-element tensor (a loss). */
tg_tensor *tg_mse(tg_tape *t, tg_tensor *a, tg_tensor *b);
/* Sum and mean of all elements, to a one-element tensor. */
tg_tensor *tg_sum(tg_tape *t, tg_tensor *x);
tg_tensor *tg_mean(tg_tape *t, tg_tensor *x);
/* Reductions along dimension dim (negative counts from the end: -1 is the
 * last). keepdim keeps it as size 1; otherwise it is dropped (a 1-D x gives
 * [1]). Sums run in double. */
tg_tensor *tg_sum_dim(tg_tape *t, tg_tensor *x, int dim, bool keepdim);
tg_tensor *tg_mean_dim(tg_tape *t, tg_tensor *x, int dim, bool keepdim);
/* The largest value; its gradient goes to the first index holding it (ties:
 * the lowest index); a NaN counts as largest, so it propagates. */
tg_tensor *tg_max_dim(tg_tape *t, tg_tensor *x, int dim, bool keepdim);
/* log sum exp(x) along dim, computed as m + log sum exp(x - m), m the max,
 * so it is finite for any finite x; gradient softmax(x) along dim. */
tg_tensor *tg_logsumexp(tg_tape *t, tg_tensor *x, int dim, bool keepdim);

/* ---- Transformer ops --------------------------------------------------- */

/* Rows of table [V, C] picked by ids (shape ndim/shape, values in [0, V)),
 * giving shape + [C]. ids are copied. Backward scatters into the table's
 * gradient; rows picked more than once accumulate. */
tg_tensor *tg_embedding(tg_tape *t, tg_tensor *table, const int *ids, int ndim, const int *shape);
/* GELU, tanh approximation (GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
tg_tensor *tg_gelu(tg_tape *t, tg_tensor *x);
/* Softmax over the last dimension. */
tg_tensor *tg_softmax(tg_tape *t, tg_tensor *x);
/* Causal multi-head self-attention on packed projections: qkv is [B, T, 3C]
 * holding q, k, v side by side (as GPT-2's c_attn produces); heads divide C.
 * Returns the heads' weighted values merged back to [B, T, C]. Heads are
 * read and written in place with strides, never copied out. */
tg_tensor *tg_attention(tg_tape *t, tg_tensor *qkv, int heads);
/* tg_attention with dropout p on the attention weights: each weight of the
 * causal triangle is kept (scaled by 1/(1-p)) when a uniform draw from rng
 * is at least p, drawn when the op is recorded, pair by pair (batch-major,
 * then head), row by row, column by column. p = 0 or rng NULL is
 * tg_attention. */
tg_tensor *tg_attention_dropout(tg_tape *t, tg_tensor *qkv, int heads, float p, tg_rng *rng);
/* Mean cross-entropy of logits [..., V] against integer targets (one per
 * row, in [0, V)), fused with its log-softmax. A target of -1 marks a row to
 * ignore (PyTorch's ignore_index=-1): it adds nothing and is not counted in
 * the mean; at least one row must count. Targets are copied. */
tg_tensor *tg_cross_entropy(tg_tape *t, tg_tensor *logits, const int *targets);
/* Rotary position embeddings on packed projections qkv [B, T, 3C]: q and k
 * of each head (size D = C / heads, even) turned by position t (0 .. T-1)
 * in the rotate-half convention (GPT-NeoX, Hugging Face LLaMA) with
 * frequencies base^(-2i/D); v passes through. */
tg_tensor *tg_rope(tg_tape *t, tg_tensor *qkv, int heads, float base);
/* SwiGLU's gate on packed projections h [..., 2H]: silu(h[..., :H]) *
 * h[..., H:], shape [..., H]. */
tg_tensor *tg_swiglu(tg_tape *t, tg_tensor *h);
/* The same data under another shape with as many elements. */
tg_tensor *tg_reshape(tg_tape *t, tg_tensor *x, int ndim, const int *shape);
/* Shape ops; outputs are copies with their own gradients. Dimensions may be
 * negative (from the end). */
/* y's dimension i is x's dimension perm[i]; perm holds 0 .. ndim-1 once each. */
tg_tensor *tg_permute(tg_tape *t, tg_tensor *x, const int *perm);
/* x with dimensions d0 and d1 swapped (a permute). */
tg_tensor *tg_transpose(tg_tape *t, tg_tensor *x, int d0, int d1);
/* Elements start .. start+len-1 along dim; len >= 1, inside the dimension. */
tg_tensor *tg_slice(tg_tape *t, tg_tensor *x, int dim, int start, int len);
/* xs[0..count-1] joined along dim; their other dimensions must agree. */
tg_tensor *tg_concat(tg_tape *t, tg_tensor *const *xs, int count, int dim);
/* x cut along dim into count consecutive slices of sizes[i] (positive,
 * adding up to the dimension) into out[0..count-1]; returns the tape's
 * status. */
tg_status tg_split(tg_tape *t, tg_tensor *x, int dim, int count, const int *sizes, tg_tensor **out);

/* ---- layers and the GPT (src/nn) --------------------------------------- */

/* x W^T + b for W [out, in] (PyTorch's Linear layout); b may be NULL. */
tg_tensor *tg_linear(tg_tape *t, tg_tensor *x, tg_tensor *w, tg_tensor *b);

typedef enum tg_norm_place {
    TG_PRE_LN,   /* x + f(LN(x)), GPT-2 */
    TG_POST_LN,  /* LN(x + f(x)), the original Transformer */
    TG_DEEPNORM, /* LN(alpha x + f(x)), alpha = (2N)^(1/4), init scaled by beta
                    (Wang et al. 2022, DeepNet; see tg_gpt_new) */
    TG_REZERO,   /* x + a f(x), a learnable gate per sublayer starting at 0, no
                    LayerNorm inside blocks (Bachlechner et al. 2020) */
} tg_norm_place;

/* The LLaMA-style options; each is orthogonal to tg_norm_place, and 0 is
 * GPT-2's choice. */
typedef enum tg_norm_type {
    TG_LAYERNORM, /* gain and bias */
    TG_RMSNORM,   /* x / sqrt(mean(x^2) + eps) * g: gain only, no bias tensors */
} tg_norm_type;

typedef enum tg_mlp_type {
    TG_MLP_GELU,   /* c_proj(gelu(c_fc x)), hidden 4 dim */
    TG_MLP_SWIGLU, /* c_proj(silu(gate) * up), hidden round_up(8 dim / 3, 8) */
} tg_mlp_type;

typedef enum tg_pos_type {
    TG_POS_LEARNED, /* a learned table wpe [ctx, dim] added to the tokens */
    TG_POS_ROPE,    /* rotary embeddings on q and k, no wpe */
} tg_pos_type;

#define TG_ROPE_BASE 10000.0f

typedef struct tg_gpt_config {
    int vocab, ctx, layers, heads, dim;
    tg_norm_place norm;
    float residual_scale;  /* alpha in alpha * x + f; 0 means 1. TG_DEEPNORM
                              replaces it with (2 layers)^(1/4); TG_REZERO
                              accepts only 0 or 1 (its skip path is plain) */
    tg_norm_type normtype;
    tg_mlp_type mlp;
    tg_pos_type pos;
    float dropout;         /* in [0, 1): applied only while dropout_rng is set */
} tg_gpt_config;

/* A GPT-2 shaped model: learned token and position embeddings, `layers`
 * blocks, a final LayerNorm, and an output head tied to the token embedding.
 * params are named and ordered as nanoGPT's model.named_parameters(). A
 * TG_REZERO block has no ln_1/ln_2; in their places it holds its gates
 * "transformer.h.<l>.rezero.attn" and "...rezero.mlp", each of shape [1].
 * ln_f stays in every variant: it sits after the residual stream, not on it,
 * and the tied head expects normalised features. */
typedef struct tg_gpt {
    tg_gpt_config cfg;
    int n_params;
    tg_tensor **params;
    int *positions;  /* 0 .. ctx-1, fed to the position embedding */
    /* Dropout (cfg.dropout > 0) is applied only while this is set, drawing
     * its masks from it: point it at a generator the caller keeps (and
     * checkpoints) for training steps, and leave it NULL for evaluation and
     * sampling. */
    tg_rng *dropout_rng;
} tg_gpt;

/* Upper bounds tg_gpt_new accepts: they keep every shape and count inside
 * int and size_t, so a configuration read from a file cannot overflow. */
#define TG_GPT_MAX_VOCAB (1 << 24)
#define TG_GPT_MAX_CTX (1 << 20)
#define TG_GPT_MAX_LAYERS (1 << 12)
#define TG_GPT_MAX_DIM (1 << 16)

/* The check tg_gpt_new makes: every size in [1, its TG_GPT_MAX_*], heads
 * dividing dim, a known norm, residual_scale finite and >= 0 (0 or 1 for
 * TG_REZERO). TG_ERR_ARG with a message naming the values otherwise. */
tg_status tg_gpt_config_check(const tg_gpt_config *cfg, char *err, size_t errlen);
/* The number of parameters a model of cfg has (-1 for a bad cfg), and
 * parameter i's name and shape, as tg_gpt_new would make them, without
 * allocating anything; false for a bad cfg or i, or a NULL output. */
int tg_gpt_config_params(const tg_gpt_config *cfg);
bool tg_gpt_config_param(const tg_gpt_config *cfg, int i, char *name, size_t len, int *ndim, int *shape);
/* The MLP's hidden width for cfg: 4 dim, or round_up(8 dim / 3, 8) for
 * SwiGLU (whose c_fc holds the gate and up rows, twice that). */
int tg_gpt_mlp_hidden(const tg_gpt_config *cfg);

/* Checks cfg (message in err on failure) and initialises the weights from
 * seed: normal(0, 0.02), residual output projections normal(0, 0.02 /
 * sqrt(2 * layers)), biases 0, LayerNorm gamma 1 and beta 0, ReZero gates 0.
 * TG_DEEPNORM draws the value projection (the last third of c_attn's rows),
 * attn.c_proj, mlp.c_fc and mlp.c_proj from normal(0, 0.02 * beta) with
 * beta = (8 layers)^(-1/4), in place of the GPT-2 depth scaling; q and k keep
 * std 0.02. Pre-LN and Post-LN draw the same numbers as before the variants
 * existed. */
tg_gpt *tg_gpt_new(const tg_gpt_config *cfg, uint64_t seed, char *err, size_t errlen);
void tg_gpt_free(tg_gpt *m);
tg_tensor *tg_gpt_param(const tg_gpt *m, const char *name);
/* Logits [B, T, vocab] for ids [B, T]; T at most cfg.ctx. Names the
 * residual stream on the tape for tg_tape_find and tg_grad_report:
 *   "emb"               wte[ids] + wpe, the stream entering block 0
 *   "h.<l>.resid_attn"  the output of block l's attention residual add
 *   "h.<l>.resid_mlp"   the output of block l's MLP residual add
 *   "h.<l>.norm_attn", "h.<l>.norm_mlp"   Post-LN and DeepNorm only: the
 *                       LayerNorm after each add (the stream itself there)
 *   "ln_f", "logits"    the final LayerNorm's output and the logits
 * The stream leaving block l is "h.<l>.norm_mlp" for Post-LN and DeepNorm,
 * "h.<l>.resid_mlp" for Pre-LN and ReZero. */
tg_tensor *tg_gpt_logits(tg_tape *t, const tg_gpt *m, const int *ids, int batch, int len);
/* Mean cross-entropy of the next-token predictions (targets -1 ignored). */
tg_tensor *tg_gpt_loss(tg_tape *t, const tg_gpt *m, const int *ids, const int *targets, int batch, int len);

/* ---- generation and evaluation (src/nn/generate.c, src/nn/eval.c) ------- */

/* A stepwise generator over a model: a key/value cache per layer, so each
 * token fed costs one position (one row through every block, then the head
 * on that row), never a whole context. Inference only: no tape, no
 * gradients, and no allocation after tg_generator_new. The model must
 * outlive the generator and not change while the generator is used (after
 * a change, tg_generator_reset).
 *
 * The window. The generator holds a window of at most ctx tokens, always
 * placed at positions 0, 1, ...; the logits returned after a token are
 * exactly those tg_gpt_logits gives at the last position of the window (to
 * float rounding, see tests/test_generate.c). A token arriving when the
 * window is full (ctx tokens) starts a new window: the last ctx/2 tokens
 * (rounded down) of the full one, re-run at positions 0 .. ctx/2 - 1,
 * followed by the new token. Learned position embeddings tie each cached
 * key and value to its position, so the cache cannot shift by one; this
 * re-fill runs ctx/2 + 1 rows as one batch once every ctx - ctx/2 tokens,
 * about two positions per token amortised, and every prediction past the
 * first ctx tokens sees between ctx/2 + 1 and ctx tokens of context. */
typedef struct tg_generator tg_generator;

/* NULL with a message in err when m is NULL, lacks a parameter of its
 * variant, or memory runs out. */
tg_generator *tg_generator_new(const tg_gpt *m, char *err, size_t errlen);
void tg_generator_free(tg_generator *g);
/* Empties the window (the next token goes to position 0). */
void tg_generator_reset(tg_generator *g);
/* Feeds one token and returns the logits [vocab] for the next position,
 * valid until the next call on g. NULL with a message in err when g is
 * NULL or token is outside [0, vocab). */
const float *tg_generator_push(tg_generator *g, int token, char *err, size_t errlen);
/* Feeds n >= 1 tokens, with the same result as n calls of
 * tg_generator_push, but the rows not yet cached run as one batch (a
 * prompt costs one pass). NULL with a message for NULL pointers, n < 1 or
 * a token outside [0, vocab) (then nothing is fed). */
const float *tg_generator_feed(tg_generator *g, const int *tokens, int n, char *err, size_t errlen);
/* The number of tokens in the window (0 .. ctx). */
int tg_generator_length(const tg_generator *g);

/* Draws a token from softmax(logits / temperature), restricted to the
 * top_k largest logits when top_k > 0 (ties with the k-th largest are all
 * kept; top_k 0 or >= vocab means all). One tg_rng_uniform draw per call.
 * -inf logits have probability 0. Returns -1 when logits or r is NULL,
 * vocab < 1, temperature is not > 0 (NaN included) or not finite, top_k < 0,
 * or a logit is NaN or +inf, or none is finite. No allocation, any vocab. */
int tg_sample_logits(const float *logits, int vocab, float temperature, int top_k, tg_rng *r);

/* Feeds prompt[0 .. n_prompt-1] to a new generator, then samples n_new
 * tokens into out[0 .. n_new-1] (tg_sample_logits with an rng seeded by
 * tg_rng_seed(seed)), feeding each one back. TG_ERR_ARG with a message for
 * NULL pointers (out may be NULL when n_new is 0), n_prompt < 1, n_new < 0,
 * a prompt token outside [0, vocab), temperature not > 0 or not finite,
 * top_k < 0; TG_ERR_NOMEM when memory runs out; TG_ERR_ARG also when the
 * model produces a NaN or +inf logit. */
tg_status tg_gpt_generate(const tg_gpt *m, const int *prompt, int n_prompt, int n_new, float temperature,
                          int top_k, uint64_t seed, int *out, char *err, size_t errlen);

/* The mean next-token loss over a token stream, exactly: the stream is cut
 * into non-overlapping windows of ctx inputs, window w scoring tokens
 * [w ctx + 1, w ctx + ctx] given [w ctx, w ctx + ctx - 1]; the last partial
 * window is dropped, so (n_tokens - 1) / ctx windows count. They run batch
 * at a time through tg_gpt_loss on t (reset before each batch), and each
 * batch's float mean is weighted by its windows, so *mean_loss is the mean
 * over every scored token (summed in double). TG_ERR_ARG with a message for
 * NULL pointers, ctx outside [1, cfg.ctx], batch < 1, fewer than ctx + 1
 * tokens, or a token outside [0, vocab) (naming its index); a failed tape
 * passes on its status and message. */
tg_status tg_gpt_eval(const tg_gpt *m, tg_tape *t, const int *tokens, long n_tokens, int ctx, int batch,
                      double *mean_loss, char *err, size_t errlen);

/* The threads the kernels use (and OpenBLAS, when linked). n from 1 to
 * TG_MAX_THREADS sets it; 0 restores the default: TG_NUM_THREADS, else
 * OMP_NUM_THREADS, else the number of online cores. Returns the number in
 * force, or -1 for n out of range (nothing changes). Results do not depend on
 * the number: every kernel computes the same bits at 1 thread or 256. Not to
 * be called while another thread runs the library's kernels. */
#define TG_MAX_THREADS 256
int tg_set_threads(int n);
/* The number in force (the default until tg_set_threads changes it). */
int tg_get_threads(void);

/* ---- residual-path study ------------------------------------------------- */

/* ReZero's residual z = x + a * f for a one-element gate a (a parameter):
 * dx = dz, df = a * dz, da = sum(dz * f). Recorded as a residual add, so the
 * report finds it like tg_residual's. */
tg_tensor *tg_residual_gated(tg_tape *t, tg_tensor *x, tg_tensor *f, tg_tensor *a);

/* The tensor named name among the ops recorded on t (their outputs and their
 * inputs, parameters included); the most recently recorded one when several
 * share the name. NULL when none has it, or t or name is NULL. Use it after
 * tg_backward to read an activation's gradient. */
tg_tensor *tg_tape_find(const tg_tape *t, const char *name);

/* DeepNorm's constants for a decoder-only model of `layers` blocks (Wang et
 * al. 2022): alpha = (2 layers)^(1/4) scales the skip path, beta = (8
 * layers)^(-1/4) the branch initialisation. 0 for layers < 1. */
float tg_deepnorm_alpha(int layers);
float tg_deepnorm_beta(int layers);

typedef enum tg_grad_kind {
    TG_GRAD_TENSOR,   /* a named activation */
    TG_GRAD_PARAM,    /* a parameter (tg_param_new) used on the tape */
    TG_GRAD_RESIDUAL, /* a residual add: tg_residual(_scaled) or tg_residual_gated */
} tg_grad_kind;

/* One row of a gradient report. norm, rms and max_abs describe the
 * tensor's gradient; for a residual add they describe dz, the gradient
 * entering it, and skip_norm and branch_norm the parts it passes on:
 * ||alpha dz|| to x and ||dz|| to f, or ||dz|| to x and ||a dz|| to f for a
 * gated add (scale holds alpha or a). The gradient reaching x is the skip
 * part plus whatever flows back through the branch when f depends on x. */
typedef struct tg_grad_stat {
    char name[64];     /* the tensor's name; a residual add takes its output's
                          name, or "residual@<op index>" when it has none */
    tg_grad_kind kind;
    bool has_grad;     /* false: no gradient reached it (no backward yet, or
                          an input that needs none); the figures are 0 */
    size_t size;
    double norm, rms, max_abs;
    double skip_norm, branch_norm, scale; /* TG_GRAD_RESIDUAL only */
} tg_grad_stat;

/* Fills out[0 .. cap-1] with one row per named activation, per parameter and
 * per residual add, in the order the tape first meets them, and returns how
 * many rows the full report has (call with out NULL and cap 0 to size it).
 * Unnamed activations are left out, parameters appear once however often
 * they are used. Returns -1 when t is NULL or failed, or cap < 0, or out is
 * NULL with cap > 0. */
int tg_grad_report(const tg_tape *t, tg_grad_stat *out, int cap);
/* The rows as an aligned table, one per line, with a header. */
void tg_grad_report_print(FILE *f, const tg_grad_stat *rows, int n);

/* The LayerNorm Jacobian dxhat/dx of one row x of length n (gamma = 1, seed
 * 001's matrix with eps kept), into J (n*n, row-major, in double):
 *   J = (rstd / n) (n I - 1 1^T - xhat xhat^T),  rstd = 1/sqrt(var + eps)
 * J is symmetric; J dy is LayerNorm's dx for an upstream gradient dy. Its
 * eigenvalues: 0 along the all-ones vector, eps * rstd^3 along xhat (since
 * ||xhat||^2 = n var / (var + eps)), rstd on the n - 2 others. TG_ERR_ARG
 * with a message in err for NULL pointers, n < 1, eps < 0 or not finite, a
 * value of x not finite, or var + eps = 0. */
tg_status tg_layernorm_jacobian(const float *x, int n, float eps, double *J, char *err, size_t errlen);

/* The RMSNorm Jacobian dxhat/dx of one row x of length n (gain 1), into J
 * (n*n, row-major, in double):
 *   J = (r / n) (n I - xhat xhat^T),  r = 1/sqrt(ms + eps), ms = mean(x^2), xhat = x r
 * J is symmetric; J dy is RMSNorm's dx for an upstream gradient dy. Its
 * eigenvalues: r eps / (ms + eps) along x, r on the n - 1 directions
 * orthogonal to x (the all-ones vector is not null, unlike LayerNorm's).
 * TG_ERR_ARG with a message in err for NULL pointers, n < 1, eps < 0 or not
 * finite, a value of x not finite, or ms + eps = 0. */
tg_status tg_rmsnorm_jacobian(const float *x, int n, float eps, double *J, char *err, size_t errlen);

/* Eigenvalues of the symmetric n x n matrix A (row-major) by cyclic Jacobi
 * rotations, in ascending order into eig[n]. A is overwritten. TG_ERR_ARG
 * with a message in err for NULL pointers, n < 1, values not finite or A not
 * symmetric (|A_ij - A_ji| above 1e-12 of the largest |A_ij|). */
tg_status tg_sym_eigenvalues(double *A, int n, double *eig, char *err, size_t errlen);

/* ---- plots (src/inspect/svg.c) ------------------------------------------- */

/* One line of a plot: n points (x[i], y[i]). */
typedef struct tg_svg_series {
    const char *label;
    const double *x, *y;
    int n;
    bool dashed;   /* drawn dashed and without markers (references, a second style) */
    int color;     /* index into the palette; -1 picks by position */
} tg_svg_series;

typedef struct tg_svg_plot {
    const char *title, *xlabel, *ylabel;
    bool log_x, log_y;
    const tg_svg_series *series;
    int n_series;
} tg_svg_plot;

/* Writes the plot as a standalone SVG document: axes with ticks and labels,
 * one polyline per series, a legend, linear or log axes. Points that are not
 * finite, or not positive on a log axis, break their line rather than bend
 * it. TG_ERR_ARG for NULL pointers or a negative count, TG_ERR_IO when the
 * stream reports an error. */
tg_status tg_svg_write(FILE *f, const tg_svg_plot *p);

/* ---- optimizers (src/optim) ------------------------------------------- */

/* The optimizer keeps its own copy of the list and one state buffer per
 * parameter, allocated here once. Weight decay applies only to parameters
 * with two or more dimensions. NULL on a bad argument or out of memory. */
typedef struct tg_sgd tg_sgd;
tg_sgd *tg_sgd_new(tg_tensor *const *params, int n, float momentum, float weight_decay);
/* One step over the parameters that require a gradient (frozen ones are not
 * touched). TG_ERR_ARG, changing nothing, for o NULL or lr negative or not
 * finite; 0 is allowed (PyTorch's steps at lr 0 still move the momentum). */
tg_status tg_sgd_step(tg_sgd *o, float lr);
void tg_sgd_free(tg_sgd *o);

/* AdamW with decoupled weight decay and bias correction (as PyTorch):
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  t += 1
 *   w -= lr * (wd * w + (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps))
 * (the decay term uses the weight before the update). */
typedef struct tg_adamw tg_adamw;
tg_adamw *tg_adamw_new(tg_tensor *const *params, int n, float beta1, float beta2, float eps,
                       float weight_decay);
/* One step, as tg_sgd_step: frozen parameters and those without a gradient
 * are not touched (no decay either); TG_ERR_ARG, changing nothing (not even
 * the step count), for o NULL or lr negative or not finite. */
tg_status tg_adamw_step(tg_adamw *o, float lr);
void tg_adamw_free(tg_adamw *o);
/* State, for checkpoints: steps taken, the parameters it updates (their
 * count, and parameter i), and the moments of parameter i (NULL when i is
 * out of range or o is NULL). */
long tg_adamw_steps(const tg_adamw *o);
void tg_adamw_set_steps(tg_adamw *o, long steps);
int tg_adamw_count(const tg_adamw *o);
tg_tensor *tg_adamw_param(const tg_adamw *o, int i);
float *tg_adamw_m(const tg_adamw *o, int i);
float *tg_adamw_v(const tg_adamw *o, int i);

/* Scales all gradients so their global L2 norm is at most max_norm (when
 * max_norm > 0); returns the norm before clipping. Frozen parameters count
 * for nothing and are not scaled. */
float tg_clip_grad_norm(tg_tensor *const *params, int n, float max_norm);
/* Linear warm-up from 0 over warmup steps, then cosine decay from lr to
 * min_lr at step total (nanoGPT's get_lr); min_lr after that. Any long is
 * safe (no overflow); a non-finite lr or min_lr gives a non-finite rate,
 * which the optimizers' steps reject. */
float tg_lr_schedule(long step, long warmup, long total, float lr, float min_lr);

/* ---- data-parallel training over MPI (src/dist) -------------------------- */

/* N copies of a training program (ranks, started by mpirun) each take a
 * slice of the global batch, sum their gradients with one collective, and
 * take the same optimiser step. Built without MPI (Meson option mpi), or run
 * without a launcher, the process is rank 0 of 1 and every call below is
 * cheap and collective-free, so a program needs no #ifdef. */

/* Whether the library was built with MPI. */
bool tg_dist_enabled(void);
/* Joins the job when a launcher (mpirun) started the process; call once,
 * early, with main's argc and argv. TG_ERR_IO with a message in err when
 * MPI fails to start. */
tg_status tg_dist_init(int *argc, char ***argv, char *err, size_t errlen);
/* Leaves the job (MPI_Finalize); afterwards the process is rank 0 of 1. */
void tg_dist_finalize(void);
int tg_dist_rank(void);
int tg_dist_size(void);
/* Collective: every rank passes its status (0 or below: no failure) and,
 * when it failed, a message (may be NULL). Returns the largest status of all
 * ranks, so every rank stops together; the message of the lowest-numbered
 * failing rank, and only that one, is written to stderr as given. */
int tg_dist_agree(int status, const char *message);
/* Collective: x[0 .. n-1] becomes the sum over the ranks of x. */
tg_status tg_dist_sum(double *x, int n);
/* Collective: *same says whether every rank holds bit-identical parameter
 * values (a 64-bit hash of them compared). */
tg_status tg_dist_check_same(tg_tensor *const *params, int n, bool *same);

/* One contiguous buffer for the gradients of params (each made by
 * tg_param_new) followed by `extra` floats the caller sums along with them
 * (a loss, a failure flag), so a step needs a single collective. NULL on a
 * bad argument, out of memory, or more than 2^31 floats. */
typedef struct tg_dist_grads tg_dist_grads;
tg_dist_grads *tg_dist_grads_new(tg_tensor *const *params, int n, int extra);
void tg_dist_grads_free(tg_dist_grads *g);
/* The extra floats: set them before tg_dist_grads_sum, read the sums after. */
float *tg_dist_grads_extra(tg_dist_grads *g);
/* Collective: every parameter's grad becomes the sum over the ranks of
 * weight * grad, and the extra floats their sums, through one MPI_Allreduce
 * on the buffer; the reduction order depends on the number of ranks and the
 * size, never on timing. TG_ERR_IO when MPI reports a failure. */
tg_status tg_dist_grads_sum(tg_dist_grads *g, float weight);
/* Wall seconds the last tg_dist_grads_sum took (packing, waiting for the
 * slowest rank and the transfer included). */
double tg_dist_grads_seconds(const tg_dist_grads *g);

/* ---- safetensors files (src/io) --- */

typedef enum tg_dtype { TG_F32, TG_I32 } tg_dtype;

/* One tensor to write or read: data is float* for TG_F32, int32_t* for TG_I32. */
typedef struct tg_st_tensor {
    const char *name;
    tg_dtype dtype;
    int ndim;
    int shape[TG_MAX_DIMS];
    const void *data;
} tg_st_tensor;

/* Writes the tensors (in this order) and the string pairs meta_keys[i] ->
 * meta_values[i] under "__metadata__" to a new temporary file next to path
 * (path + ".tmp-" + 6 random characters, made by mkstemp, so two writers
 * never share one), flushes it to disk and renames it over path, so a crash
 * never leaves half a file; the temporary file is removed on any failure.
 * TG_ERR_ARG for bad arguments, TG_ERR_IO (path untouched) when the file
 * cannot be written, each with a message naming the file in err. */
tg_status tg_safetensors_write(const char *path, const tg_st_tensor *tensors, int n,
                               const char *const *meta_keys, const char *const *meta_values,
                               int n_meta, char *err, size_t errlen);

/* A file read whole and checked: header length, JSON, every tensor's dtype,
 * shape and byte range inside the file. NULL with a message in err when the
 * file is missing, truncated or corrupt. */
typedef struct tg_st_file tg_st_file;
tg_st_file *tg_safetensors_read(const char *path, char *err, size_t errlen);
void tg_safetensors_close(tg_st_file *f);
int tg_safetensors_count(const tg_st_file *f);
/* The tensor named name (NULL when absent); its data is aligned for its type. */
const tg_st_tensor *tg_safetensors_find(const tg_st_file *f, const char *name);
const tg_st_tensor *tg_safetensors_at(const tg_st_file *f, int i);
/* A "__metadata__" value, NULL when absent. */
const char *tg_safetensors_meta(const tg_st_file *f, const char *key);

/* ---- numbers from text (src/io/numbers.c) ---------------------------------
 * Strict parsers for values read from flags or files: the whole string must
 * be the number, with no leading space or sign other than '-' (never for
 * u64), no trailing text; anything else, or a value out of range, gives
 * false and leaves *out alone. */

/* A decimal integer in [lo, hi] ("2.5", "1e3" and "0x10" are not integers). */
bool tg_parse_int(const char *s, long long lo, long long hi, long long *out);
/* A decimal integer in [0, 2^64 - 1], exact above 2^53. */
bool tg_parse_u64(const char *s, uint64_t *out);
/* A finite number in [lo, hi] (strtod's syntax: "1e-3", "0.5"; not "nan",
 * "inf" or hex), rounded to float; false when the float is not finite. */
bool tg_parse_float(const char *s, double lo, double hi, float *out);

/* ---- checkpoints (src/io/checkpoint.c) -------------------------------------
 * A GPT checkpoint is a safetensors file holding every parameter under its
 * nanoGPT name and, optionally, AdamW's moments as "optim.m.<name>" and
 * "optim.v.<name>". Its "__metadata__" (strings) holds the model
 * configuration: vocab, ctx, layers, heads, dim (decimal integers), norm
 * ("pre", "post", "deepnorm" or "rezero"), residual_scale (a float written
 * with 9 significant digits, which round-trips), normtype, mlp, pos (by
 * name; absent means GPT-2's) and dropout; with moments, optim_steps
 * (AdamW's step count); then whatever pairs the caller added. Nothing read
 * from a file is trusted: tg_checkpoint_open checks every number, the
 * configuration and every tensor's shape before anything is allocated from
 * them, and values are checked to be finite when they are copied out. */

/* "pre", "post", "deepnorm", "rezero" for a norm; NULL for another value. */
const char *tg_norm_name(tg_norm_place norm);
/* The norm named s; false (and *norm unchanged) for any other string. */
bool tg_norm_parse(const char *s, tg_norm_place *norm);
/* The same for the LLaMA-style options: "layernorm"/"rmsnorm",
 * "gelu"/"swiglu", "learned"/"rope". */
const char *tg_normtype_name(tg_norm_type v);
bool tg_normtype_parse(const char *s, tg_norm_type *v);
const char *tg_mlp_name(tg_mlp_type v);
bool tg_mlp_parse(const char *s, tg_mlp_type *v);
const char *tg_pos_name(tg_pos_type v);
bool tg_pos_parse(const char *s, tg_pos_type *v);

/* Writes m (and opt's moments and step count when opt is not NULL; opt must
 * update m's parameters in m's order), the configuration and the caller's
 * pairs (keys must differ from the library's) atomically, as
 * tg_safetensors_write. A parameter or moment that is not finite is an
 * error naming the tensor, and nothing is written: a checkpoint never holds
 * a NaN. TG_ERR_ARG for NULL or mismatched arguments, TG_ERR_IO when the
 * file cannot be written. */
tg_status tg_gpt_save(const char *path, const tg_gpt *m, const tg_adamw *opt, const char *const *meta_keys,
                      const char *const *meta_values, int n_meta, char *err, size_t errlen);

/* An open, checked checkpoint. tg_checkpoint_open reads path whole and
 * checks it: the configuration (integers strictly parsed, within
 * tg_gpt_config_check's bounds), exactly the parameters that configuration
 * has, each F32 of the right shape, and either no moments or both moments
 * of every parameter plus optim_steps; no other tensor. NULL with a message
 * naming the file and what is wrong (missing, not a regular file,
 * truncated, corrupt, a key and its value, a tensor and its shape). */
typedef struct tg_checkpoint tg_checkpoint;
tg_checkpoint *tg_checkpoint_open(const char *path, char *err, size_t errlen);
void tg_checkpoint_close(tg_checkpoint *c);
/* The model configuration (residual_scale as stored); NULL when c is NULL. */
const tg_gpt_config *tg_checkpoint_config(const tg_checkpoint *c);
/* A metadata value as stored, NULL when absent (or c or key is NULL). */
const char *tg_checkpoint_meta(const tg_checkpoint *c, const char *key);
/* A metadata value parsed with tg_parse_int / tg_parse_u64 / tg_parse_float.
 * TG_ERR_FORMAT when the key is absent or its value is not such a number in
 * range (the message names the file, the key and the value), TG_ERR_ARG for
 * NULL arguments; *out is written only on TG_OK. */
tg_status tg_checkpoint_meta_int(const tg_checkpoint *c, const char *key, long long lo, long long hi,
                                 long long *out, char *err, size_t errlen);
tg_status tg_checkpoint_meta_u64(const tg_checkpoint *c, const char *key, uint64_t *out, char *err,
                                 size_t errlen);
tg_status tg_checkpoint_meta_float(const tg_checkpoint *c, const char *key, double lo, double hi, float *out,
                                   char *err, size_t errlen);
/* A new model of the checkpoint's configuration holding its parameters.
 * NULL with a message when a value is not finite (naming the tensor and the
 * index) or memory runs out. */
tg_gpt *tg_checkpoint_model(const tg_checkpoint *c, char *err, size_t errlen);
/* Whether the file holds optimizer state. */
bool tg_checkpoint_has_optimizer(const tg_checkpoint *c);
/* Fills opt (made with tg_adamw_new over m's parameters, m of the
 * checkpoint's configuration) with the moments and the step count. A moment
 * that is not finite, or a negative second moment, is TG_ERR_FORMAT naming
 * the tensor; a file without optimizer state, or an opt or m that does not
 * match, is TG_ERR_ARG. opt is left unchanged on failure. */
tg_status tg_checkpoint_optimizer(const tg_checkpoint *c, const tg_gpt *m, tg_adamw *opt, char *err,
                                  size_t errlen);
/* tg_checkpoint_open + tg_checkpoint_model + tg_checkpoint_close. */
tg_gpt *tg_gpt_load(const char *path, char *err, size_t errlen);

/* ---- data (src/io/data.c) ----------------------------------------------------
 * Data files are read whole, only when they are regular files (a directory,
 * FIFO, socket or device such as /dev/zero is refused before a byte is
 * read) of at most TG_DATA_MAX_BYTES. Every loader returns TG_OK, or a
 * status and a message naming the file: TG_ERR_IO (cannot open or read, not
 * a regular file, too large), TG_ERR_FORMAT (not text, a bad header, a
 * token out of the vocabulary), TG_ERR_NOMEM, TG_ERR_ARG (NULL or bad
 * arguments). On failure the output holds nothing to free. */
#define TG_DATA_MAX_BYTES (1LL << 30)

/* A token stream: ids[0..n), each in [0, vocab). */
typedef struct tg_tokens {
    int *ids;
    long n;
    int vocab;
} tg_tokens;
void tg_tokens_free(tg_tokens *t); /* frees ids and zeroes *t */

/* A byte-level vocabulary: the set of bytes a text holds, in byte order
 * (nanoGPT's sorted(set(text)) for ASCII); token i is bytes[i]. */
typedef struct tg_byte_vocab {
    int size;
    unsigned char bytes[256]; /* token -> byte, increasing */
    short index[256];         /* byte -> token, -1 for a byte not in it */
} tg_byte_vocab;

/* A text file as tokens of its own byte vocabulary (an empty file gives
 * n = 0 and an empty vocabulary). A file holding a NUL byte, or control
 * characters (other than \t \n \v \f \r) in more than a tenth of its
 * bytes, is not text: TG_ERR_FORMAT, the message saying why; pre-tokenized
 * files are read with tg_tokens_load. */
tg_status tg_text_load(const char *path, tg_tokens *out, tg_byte_vocab *vocab, char *err, size_t errlen);
/* byte -> token and token -> byte; -1 when absent or out of range. */
int tg_byte_encode(const tg_byte_vocab *v, int byte);
int tg_byte_decode(const tg_byte_vocab *v, int token);
/* The vocabulary as a string for metadata, its byte values comma-separated
 * ("10,32,33,..."; at most 1024 bytes with the NUL) into buf; when len is
 * too small, cut after the last whole value that fits. Returns the length
 * the whole string needs, as snprintf does. */
size_t tg_byte_vocab_format(const tg_byte_vocab *v, char *buf, size_t len);
/* The reverse, accepting exactly what tg_byte_vocab_format writes for a
 * non-empty vocabulary (increasing values 0-255, no spaces, no leading
 * zeros); TG_ERR_FORMAT otherwise, *v unchanged. */
tg_status tg_byte_vocab_parse(const char *s, tg_byte_vocab *v, char *err, size_t errlen);

/* Pre-tokenized files; the caller names the format, it is never guessed.
 *   TG_TOKENS_U16   nanoGPT's train.bin / val.bin: raw little-endian uint16
 *                   tokens, nothing else. vocab must be given (1 to 65536).
 *   TG_TOKENS_LLMC  llm.c's files: a header of 256 little-endian int32
 *                   (magic 20240520, version 1, the token count), then that
 *                   many uint16 tokens; the count must match the file size
 *                   exactly. vocab 0 takes the largest token + 1.
 * A token at or above vocab is TG_ERR_FORMAT naming its value and position. */
typedef enum tg_token_format { TG_TOKENS_U16, TG_TOKENS_LLMC } tg_token_format;
tg_status tg_tokens_load(const char *path, tg_token_format fmt, int vocab, tg_tokens *out, char *err,
                         size_t errlen);
/* Whether path is a regular file beginning with llm.c's magic number and
 * version 1, for a program that lets the header choose the format (a raw
 * uint16 file starting with tokens 54744, 308 would pass; GPT-2's
 * vocabulary has 50257). */
bool tg_tokens_llmc_header(const char *path);

/* Batches [batch, ctx] of inputs and next-token targets from tokens[0..n).
 * tg_batch_random: batch windows of ctx + 1 tokens starting at
 * floor(u * (n - ctx) / 2^32) for u = tg_rng_u32(r), one draw per row.
 * tg_batch_window: the non-overlapping windows that cover the stream
 * exactly once, window w being inputs tokens[w ctx .. w ctx + ctx) and its
 * targets one further; tg_batch_windows counts them ((n - 1) / ctx, the
 * last partial one dropped; 0 when n <= ctx), and tg_batch_window copies
 * windows [first, first + count). TG_ERR_ARG for NULL pointers, batch, count
 * or ctx < 1, n < ctx + 1, or windows past the end. */
tg_status tg_batch_random(const int *tokens, long n, tg_rng *r, int batch, int ctx, int *ids, int *targets);
long tg_batch_windows(long n, int ctx);
tg_status tg_batch_window(const int *tokens, long n, long first, int count, int ctx, int *ids, int *targets);

/* ---- gradient checking --------------------------------------------------- */

/* Builds a scalar loss on the tape from whatever ctx holds. */
typedef tg_tensor *(*tg_loss_fn)(tg_tape *t, void *ctx);

typedef struct tg_gradcheck_opts {
    double step;        /* finite-difference step h, times max(1,|x|); 0: 1e-3 */
    bool absolute_step; /* h as given, not scaled by |x| (for inputs like 1e4) */
    bool four_point;    /* (-f(2h) + 8f(h) - 8f(-h) + f(-2h)) / 12h instead of 2-point */
    size_t max_checks;  /* elements per tensor to probe, spread evenly; 0: all */
    double abs_floor;   /* denominator floor of the relative error; 0: 1e-3 */
} tg_gradcheck_opts;

typedef struct tg_gradcheck_result {
    double max_rel_err;   /* max |a - n| / max(|a| + |n|, abs_floor) */
    double max_abs_err;
    int worst_tensor;     /* index into wrt */
    size_t worst_index;
    double worst_analytic, worst_numeric;
    size_t checked;
    char error[256];      /* the tape's message when the status is not TG_OK */
} tg_gradcheck_result;

/* Compares tg_backward's gradient of fn's loss with respect to each tensor
 * in wrt against central finite differences. The perturbed element is
 * restored afterwards. A loss that ends in tg_sum or tg_mean is read in
 * double, which keeps the differences of nearby losses accurate; any other
 * one-element tensor is read as float. Returns TG_OK or the status of a
 * failed tape (its message in res->error); TG_ERR_ARG for a NULL fn, wrt,
 * entry of wrt or res, or an entry of wrt that receives no gradient. */
tg_status tg_gradcheck(tg_loss_fn fn, void *ctx, tg_tensor *const *wrt, int n_wrt,
                       const tg_gradcheck_opts *opts, tg_gradcheck_result *res);

#ifdef __cplusplus
}
#endif
#endif
