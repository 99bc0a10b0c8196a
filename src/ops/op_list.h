/* The one list of ops. Each entry X(ID, name) gives the enum value
 * TG_OP_<ID>, the kernels tg_<name>_forward / tg_<name>_backward (defined in
 * the op's file in src/ops/) and the name the profile and errors print.
 * Adding an op: its file, a line here, its case in tests/test_op_registry.c
 * and its constructor in include/tapegrad.h. */
#ifndef TG_OP_LIST_H
#define TG_OP_LIST_H

#define TG_OP_LIST(X)                  \
    X(ADD, add)                        \
    X(MUL, mul)                        \
    X(SCALE, scale)                    \
    X(MATMUL, matmul)                  \
    X(RESIDUAL, residual)              \
    X(RESIDUAL_GATED, residual_gated)  \
    X(LAYERNORM, layernorm)            \
    X(SUM, sum)                        \
    X(MEAN, mean)                      \
    X(EMBEDDING, embedding)            \
    X(GELU, gelu)                      \
    X(SOFTMAX, softmax)                \
    X(ATTENTION, attention)            \
    X(CROSS_ENTROPY, cross_entropy)    \
    X(RESHAPE, reshape)                \
    X(ROPE, rope)                      \
    X(SWIGLU, swiglu)                  \
    X(SUB, sub)                        \
    X(DIV, div)                        \
    X(EXP, exp)                        \
    X(LOG, log)                        \
    X(SQRT, sqrt)                      \
    X(POW, pow)                        \
    X(ABS, abs)                        \
    X(TANH, tanh)                      \
    X(SIGMOID, sigmoid)                \
    X(RELU, relu)                      \
    X(SILU, silu)                      \
    X(GELU_ERF, gelu_erf)              \
    X(CLAMP, clamp)                    \
    X(SUM_DIM, sum_dim)                \
    X(MEAN_DIM, mean_dim)              \
    X(MAX_DIM, max_dim)                \
    X(LOGSUMEXP, logsumexp)            \
    X(PERMUTE, permute)                \
    X(SLICE, slice)                    \
    X(CONCAT, concat)                  \
    X(RMSNORM, rmsnorm)                \
    X(DROPOUT, dropout)                \
    X(MSE, mse)

#endif
