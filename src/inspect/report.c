/* The gradient report: norms of the gradients of named activations, of
 * parameters, and of what every residual add receives and passes on.
 *
 * For z = alpha x + f the add receives dz and sends alpha dz down the skip
 * path and dz into the branch; for the gated z = x + a f it sends dz and
 * a dz. So the skip and branch norms are |alpha| ||dz|| and ||dz|| (or ||dz||
 * and |a| ||dz||): the report states how the add splits the gradient, and
 * the tensors' own rows show what arrived after the branch's backward. */
#include "tapegrad_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The rows found so far; past cap they are counted, not stored. */
typedef struct rows {
    tg_grad_stat *out;
    int cap, n;
} rows;

static void grad_stats(const tg_tensor *x, tg_grad_stat *s)
{
    s->size = x->size;
    s->has_grad = x->grad != NULL;
    double ss = 0.0, mx = 0.0;
    for (size_t i = 0; s->has_grad && i < x->size; i++) {
        double g = x->grad[i];
        ss += g * g;
        mx = fmax(mx, fabs(g));
    }
    s->norm = sqrt(ss);
    s->rms = sqrt(ss / (double)x->size);
    s->max_abs = mx;
}

static tg_grad_stat *add_row(rows *r, tg_grad_kind kind, const tg_tensor *x)
{
    tg_grad_stat *s = r->n < r->cap ? &r->out[r->n] : NULL;
    r->n++;
    if (!s)
        return NULL;
    memset(s, 0, sizeof *s);
    s->kind = kind;
    snprintf(s->name, sizeof s->name, "%s", x->name);
    grad_stats(x, s);
    return s;
}

/* Parameters appear once: is p an input of a node before node i? */
static bool seen_before(const tg_node *nodes, int i, int k, const tg_tensor *p)
{
    for (int j = 0; j <= i; j++)
        for (int m = 0; m < (j == i ? k : nodes[j].n_in); m++)
            if (nodes[j].in[m] == p)
                return true;
    return false;
}

static void residual_row(rows *r, const tg_node *n, int index)
{
    tg_grad_stat *s = add_row(r, TG_GRAD_RESIDUAL, n->out);
    if (!s)
        return;
    if (!s->name[0])
        snprintf(s->name, sizeof s->name, "residual@%d", index);
    bool gated = n->op == TG_OP_RESIDUAL_GATED;
    s->scale = gated ? n->in[2]->data[0] : n->f[0];
    s->skip_norm = gated ? s->norm : fabs(s->scale) * s->norm;
    s->branch_norm = gated ? fabs(s->scale) * s->norm : s->norm;
}

int tg_grad_report(const tg_tape *t, tg_grad_stat *out, int cap)
{
    if (!t || tg_tape_status(t) != TG_OK || cap < 0 || (!out && cap > 0))
        return -1;
    int count;
    const tg_node *nodes = tg_tape_nodes(t, &count);
    rows r = {out, cap, 0};
    for (int i = 0; i < count; i++) {
        const tg_node *n = &nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            const tg_tensor *p = n->in[k];
            if (p && p->on_heap && !seen_before(nodes, i, k, p))
                add_row(&r, TG_GRAD_PARAM, p);
        }
        if (n->op == TG_OP_RESIDUAL || n->op == TG_OP_RESIDUAL_GATED)
            residual_row(&r, n, i);
        else if (n->out->name[0])
            add_row(&r, TG_GRAD_TENSOR, n->out);
    }
    return r.n;
}

void tg_grad_report_print(FILE *f, const tg_grad_stat *rows, int n)
{
    static const char *const kinds[] = {"tensor", "param", "residual"};
    if (!f || (!rows && n > 0))
        return;
    fprintf(f, "%-8s %-32s %9s %11s %11s %11s %11s %11s\n", "kind", "name", "size", "norm", "rms",
            "max_abs", "skip", "branch");
    for (int i = 0; i < n; i++) {
        const tg_grad_stat *s = &rows[i];
        fprintf(f, "%-8s %-32s %9zu ", kinds[s->kind], s->name, s->size);
        if (!s->has_grad)
            fprintf(f, "%11s %11s %11s", "-", "-", "-");
        else
            fprintf(f, "%11.4e %11.4e %11.4e", s->norm, s->rms, s->max_abs);
        if (s->kind == TG_GRAD_RESIDUAL && s->has_grad)
            fprintf(f, " %11.4e %11.4e", s->skip_norm, s->branch_norm);
        fputc('\n', f);
    }
}
