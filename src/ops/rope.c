/* Rotary position embeddings (RoPE) on packed projections qkv [B, T, 3C],
 * rotating q and k of every head and passing v through, in the rotate-half
 * convention of GPT-NeoX and Hugging Face's LLaMA. For head size D, pair
 * i < D/2 couples elements i and i + D/2 of a head at position p:
 *
 *   theta_i = p * base^(-2i/D)
 *   y_i       = x_i cos theta_i - x_{i+D/2} sin theta_i
 *   y_{i+D/2} = x_{i+D/2} cos theta_i + x_i sin theta_i
 *
 * Each pair turns by an orthogonal rotation R, so the backward applies R^T:
 *   dx_i       += dy_i cos theta_i + dy_{i+D/2} sin theta_i
 *   dx_{i+D/2} += dy_{i+D/2} cos theta_i - dy_i sin theta_i
 * and dv += dy on the value columns. The angles are formed in double and
 * rounded once, so cos and sin stay accurate at long positions. */
#include "tapegrad_internal.h"

#include <math.h>

void tg_rope_table(int d, int first, int len, float base, float *cs)
{
    int half = d / 2;
    for (int p = 0; p < len; p++)
        for (int i = 0; i < half; i++) {
            double theta = (double)(first + p) * pow((double)base, -2.0 * i / d);
            cs[(size_t)p * d + i] = (float)cos(theta);
            cs[(size_t)p * d + half + i] = (float)sin(theta);
        }
}

void tg_rope_rotate(float *x, int d, const float *cs, bool inverse)
{
    int half = d / 2;
    float sign = inverse ? -1.0f : 1.0f;
    for (int i = 0; i < half; i++) {
        float c = cs[i], s = sign * cs[half + i], a = x[i], b = x[half + i];
        x[i] = a * c - b * s;
        x[half + i] = b * c + a * s;
    }
}

tg_tensor *tg_rope(tg_tape *t, tg_tensor *qkv, int heads, float base)
{
    if (!tg_tape_check_inputs(t, "tg_rope", &qkv, 1))
        return NULL;
    char s[48];
    if (qkv->ndim != 3 || qkv->shape[2] % 3) {
        tg_tape_fail(t, TG_ERR_SHAPE, "tg_rope: qkv must be [B,T,3C], got %s", tg_shape_str(qkv, s, sizeof s));
        return NULL;
    }
    int c = qkv->shape[2] / 3;
    if (heads < 1 || c % heads || (c / heads) % 2) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_rope: %d heads must divide C = %d into heads of even size", heads, c);
        return NULL;
    }
    if (!(base > 1.0f) || !isfinite(base)) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_rope: base must be finite and above 1, got %g", (double)base);
        return NULL;
    }
    tg_node n = {.op = TG_OP_ROPE, .n_in = 1, .in = {qkv}, .i = {heads}};
    if (!tg_node_output(t, &n, 3, qkv->shape))
        return NULL;
    int d = c / heads, len = qkv->shape[1];
    if (!(n.aux = tg_arena_alloc(t, (size_t)len * d * sizeof(float))))
        return NULL;
    tg_rope_table(d, 0, len, base, n.aux);
    return tg_tape_record(t, &n);
}

/* Rows of qkv: copy, then turn the q and k heads of each row in place. */
void tg_rope_forward(tg_node *n)
{
    const tg_tensor *x = n->in[0];
    int len = x->shape[1], c3 = x->shape[2], heads = n->i[0], d = c3 / 3 / heads;
    const float *cs = n->aux;
    size_t rows = tg_rows(x);
    for (size_t r = 0; r < rows; r++) {
        float *y = n->out->data + r * c3;
        const float *row_cs = cs + (r % (size_t)len) * d;
        for (int j = 0; j < c3; j++)
            y[j] = x->data[r * c3 + j];
        for (int h = 0; h < 2 * heads; h++)
            tg_rope_rotate(y + (size_t)h * d, d, row_cs, false);
    }
}

void tg_rope_backward(tg_node *n)
{
    tg_tensor *x = n->in[0];
    if (!x->grad)
        return;
    int len = x->shape[1], c3 = x->shape[2], heads = n->i[0], d = c3 / 3 / heads, half = d / 2;
    const float *cs = n->aux;
    size_t rows = tg_rows(x);
    for (size_t r = 0; r < rows; r++) {
        const float *dy = n->out->grad + r * c3, *row_cs = cs + (r % (size_t)len) * d;
        float *dx = x->grad + r * c3;
        for (int h = 0; h < 2 * heads; h++) {
            const float *g = dy + (size_t)h * d;
            float *o = dx + (size_t)h * d;
            for (int i = 0; i < half; i++) {
                float c = row_cs[i], s = row_cs[half + i];
                o[i] += g[i] * c + g[half + i] * s;
                o[half + i] += g[half + i] * c - g[i] * s;
            }
        }
        for (int j = 2 * c3 / 3; j < c3; j++)
            dx[j] += dy[j];
    }
}
