/* Layers built from ops. */
#include "tapegrad_internal.h"

tg_tensor *tg_linear(tg_tape *t, tg_tensor *x, tg_tensor *w, tg_tensor *b)
{
    tg_tensor *y = tg_matmul(t, x, w, false, true);
    return b ? tg_add(t, y, b) : y;
}
