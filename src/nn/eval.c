/* Exact evaluation: the mean next-token loss over every window of a token
 * stream (see tg_gpt_eval in tapegrad.h). Consecutive windows lie end to
 * end in the stream, so a batch of them is a slice of it, its targets the
 * same slice one token on: nothing is copied. */
#include "tapegrad_internal.h"

#include <stdio.h>

tg_status tg_gpt_eval(const tg_gpt *m, tg_tape *t, const int *tokens, long n_tokens, int ctx, int batch,
                      double *mean_loss, char *err, size_t errlen)
{
    char msg[160] = "";
    if (!m || !t || !tokens || !mean_loss)
        snprintf(msg, sizeof msg, "%s is NULL", !m ? "the model" : !t ? "the tape" : !tokens ? "tokens" : "mean_loss");
    else if (ctx < 1 || ctx > m->cfg.ctx)
        snprintf(msg, sizeof msg, "ctx %d is outside [1, %d] (the model's ctx)", ctx, m->cfg.ctx);
    else if (batch < 1)
        snprintf(msg, sizeof msg, "batch %d must be at least 1", batch);
    else if (n_tokens < (long)ctx + 1)
        snprintf(msg, sizeof msg, "%ld tokens do not make one window: ctx %d needs ctx + 1", n_tokens, ctx);
    for (long i = 0; !msg[0] && i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= m->cfg.vocab)
            snprintf(msg, sizeof msg, "token %d at index %ld is outside [0, %d)", tokens[i], i, m->cfg.vocab);
    if (msg[0]) {
        if (err && errlen)
            snprintf(err, errlen, "tg_gpt_eval: %s", msg);
        return TG_ERR_ARG;
    }
    long windows = (n_tokens - 1) / ctx;
    double sum = 0.0;
    for (long w = 0; w < windows; w += batch) {
        int k = windows - w < batch ? (int)(windows - w) : batch;
        const int *ids = tokens + w * ctx;
        tg_tape_reset(t);
        tg_tensor *loss = tg_gpt_loss(t, m, ids, ids + 1, k, ctx);
        if (!loss) {
            if (err && errlen)
                snprintf(err, errlen, "tg_gpt_eval: %s", tg_tape_error(t));
            return tg_tape_status(t);
        }
        sum += (double)loss->data[0] * k;
    }
    *mean_loss = sum / (double)windows;
    return TG_OK;
}
