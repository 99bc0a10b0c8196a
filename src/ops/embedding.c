/* Embedding lookup: y[r, :] = table[ids[r], :].
 * Backward scatters: dtable[ids[r], :] += dy[r, :], so rows picked more than
 * once receive the sum. Rows are visited in order, which keeps the sum (and so
 * training) identical from run to run. */
#include "tapegrad_internal.h"

#include <string.h>

tg_tensor *tg_embedding(tg_tape *t, tg_tensor *table, const int *ids, int ndim, const int *shape)
{
    if (!tg_tape_check_inputs(t, "tg_embedding", &table, 1))
        return NULL;
    char st[48];
    if (table->ndim != 2) {
        tg_tape_fail(t, TG_ERR_SHAPE, "tg_embedding: table must be 2-D [V,C], got %s",
                     tg_shape_str(table, st, sizeof st));
        return NULL;
    }
    size_t n = tg_shape_size(ndim, shape);
    if (!ids || ndim < 1 || ndim >= TG_MAX_DIMS || !n) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_embedding: ids need 1 to %d positive dimensions", TG_MAX_DIMS - 1);
        return NULL;
    }
    int vocab = table->shape[0];
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= vocab) {
            tg_tape_fail(t, TG_ERR_ARG, "tg_embedding: id %d at position %zu is outside [0,%d)",
                         ids[i], i, vocab);
            return NULL;
        }
    }
    int out_shape[TG_MAX_DIMS];
    memcpy(out_shape, shape, (size_t)ndim * sizeof(int));
    out_shape[ndim] = table->shape[1];
    tg_node node = {.op = TG_OP_EMBEDDING, .n_in = 1, .in = {table}};
    if (!tg_node_output(t, &node, ndim + 1, out_shape))
        return NULL;
    if (!(node.aux = tg_arena_alloc(t, n * sizeof(int))))
        return NULL;
    memcpy(node.aux, ids, n * sizeof(int));
    return tg_tape_record(t, &node);
}

void tg_embedding_forward(tg_node *n)
{
    const int *ids = n->aux;
    int c = tg_cols(n->out);
    size_t rows = tg_rows(n->out);
    for (size_t r = 0; r < rows; r++)
        memcpy(n->out->data + r * c, n->in[0]->data + (size_t)ids[r] * c, (size_t)c * sizeof(float));
}

void tg_embedding_backward(tg_node *n)
{
    float *dtable = n->in[0]->grad;
    if (!dtable)
        return;
    const int *ids = n->aux;
    int c = tg_cols(n->out);
    size_t rows = tg_rows(n->out);
    for (size_t r = 0; r < rows; r++) {
        float *d = dtable + (size_t)ids[r] * c;
        const float *dy = n->out->grad + r * c;
        for (int j = 0; j < c; j++)
            d[j] += dy[j];
    }
}
