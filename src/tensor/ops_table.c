/* The one table of ops: name and kernels, indexed by tg_op. */
#include "tapegrad_internal.h"

const tg_op_def tg_op_table[] = {
    [TG_OP_ADD] = {"add", tg_add_forward, tg_add_backward},
    [TG_OP_MUL] = {"mul", tg_mul_forward, tg_mul_backward},
    [TG_OP_SCALE] = {"scale", tg_scale_forward, tg_scale_backward},
    [TG_OP_MATMUL] = {"matmul", tg_matmul_forward, tg_matmul_backward},
    [TG_OP_RESIDUAL] = {"residual", tg_residual_forward, tg_residual_backward},
    [TG_OP_RESIDUAL_GATED] = {"residual_gated", tg_residual_gated_forward, tg_residual_gated_backward},
    [TG_OP_LAYERNORM] = {"layernorm", tg_layernorm_forward, tg_layernorm_backward},
    [TG_OP_SUM] = {"sum", tg_sum_forward, tg_sum_backward},
    [TG_OP_MEAN] = {"mean", tg_mean_forward, tg_mean_backward},
    [TG_OP_EMBEDDING] = {"embedding", tg_embedding_forward, tg_embedding_backward},
    [TG_OP_GELU] = {"gelu", tg_gelu_forward, tg_gelu_backward},
    [TG_OP_SOFTMAX] = {"softmax", tg_softmax_forward, tg_softmax_backward},
    [TG_OP_ATTENTION] = {"attention", tg_attention_forward, tg_attention_backward},
    [TG_OP_CROSS_ENTROPY] = {"cross_entropy", tg_cross_entropy_forward, tg_cross_entropy_backward},
    [TG_OP_RESHAPE] = {"reshape", tg_reshape_forward, tg_reshape_backward},
};

/* Catches an op added to the enum after the last entry here; a gap in the
 * middle is caught by the op-table test, which checks every slot. */
_Static_assert(sizeof tg_op_table / sizeof tg_op_table[0] == TG_OP_COUNT,
               "tg_op_table must have one entry per tg_op");
