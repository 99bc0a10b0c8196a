/* The table of ops, generated from the list in op_list.h: name and kernels,
 * indexed by tg_op. */
#include "tapegrad_internal.h"

#define TG_OP_ENTRY(ID, name) [TG_OP_##ID] = {#name, tg_##name##_forward, tg_##name##_backward},
const tg_op_def tg_op_table[] = {TG_OP_LIST(TG_OP_ENTRY)};
#undef TG_OP_ENTRY
