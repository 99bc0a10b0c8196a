/* Layers built from ops. */
#include "tapegrad_internal.h"

tg_tensor *tg_linear(tg_tape *t, tg_tensor *x, tg_tensor *w, tg_tensor *b)
{
    return tg_matmul_bias(t, x, w, b, false, true);
}
