/* The tape: an arena for activations, the list of recorded ops, the sticky
 * error status, and backward(). */
#include "tapegrad_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TG_ALIGN 64
#define TG_DEFAULT_CHUNK ((size_t)1 << 20)
/* Far beyond any machine's memory, and far from SIZE_MAX: sizes below it can
 * be rounded up and doubled without wrapping. */
#define TG_MAX_ARENA ((size_t)1 << 44)

/* Chunks are kept across resets: after the first step every allocation of a
 * step that repeats the same ops lands in memory the arena already holds.
 * A chunk's cap bytes start at base, 0 or TG_ALIGN by the generation's
 * parity (see tg_tape_reset); mem holds cap + TG_ALIGN bytes. */
typedef struct tg_chunk {
    struct tg_chunk *next;
    size_t cap, base, used;
    unsigned char *mem;
} tg_chunk;

struct tg_tape {
    tg_chunk *first, *cur;
    size_t next_chunk;
    tg_node *nodes;
    int n_nodes, cap_nodes;
    tg_status status;
    char msg[512];
    uint64_t generation; /* bumped by every reset; stamped on its tensors */
    /* tg_tape_profile: kernel seconds and calls per op, [op][0 fwd, 1 bwd]. */
    bool profile;
    double seconds[TG_OP_COUNT][2];
    long calls[TG_OP_COUNT][2];
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs a kernel, timing it when the tape profiles. */
static void run_kernel(tg_tape *t, tg_node *n, int backward)
{
    tg_kernel_fn fn = backward ? tg_op_table[n->op].backward : tg_op_table[n->op].forward;
    if (!t->profile) {
        fn(n);
        return;
    }
    double t0 = now_seconds();
    fn(n);
    t->seconds[n->op][backward] += now_seconds() - t0;
    t->calls[n->op][backward]++;
}

void tg_tape_profile(tg_tape *t, bool on)
{
    if (!t)
        return;
    t->profile = on;
    memset(t->seconds, 0, sizeof t->seconds);
    memset(t->calls, 0, sizeof t->calls);
}

size_t tg_tape_profile_report(const tg_tape *t, char *buf, size_t len)
{
    size_t k = 0;
    len = buf ? len : 0;
    double total = 0.0;
#define PUT(...) (k += (size_t)snprintf(k < len ? buf + k : NULL, k < len ? len - k : 0, __VA_ARGS__))
    for (int op = 0; t && op < TG_OP_COUNT; op++)
        total += t->seconds[op][0] + t->seconds[op][1];
    PUT("%-16s %8s %11s %11s %6s\n", "op", "calls", "forward ms", "backward ms", "share");
    for (int op = 0; t && op < TG_OP_COUNT; op++) {
        double f = t->seconds[op][0], b = t->seconds[op][1];
        if (t->calls[op][0] || t->calls[op][1])
            PUT("%-16s %8ld %11.1f %11.1f %5.1f%%\n", tg_op_table[op].name, t->calls[op][0], 1e3 * f, 1e3 * b,
                total > 0 ? 100.0 * (f + b) / total : 0.0);
    }
    PUT("%-16s %8s %23.1f\n", "all kernels", "", 1e3 * total);
#undef PUT
    return k;
}

static tg_chunk *chunk_new(size_t cap, size_t base)
{
    if (cap > TG_MAX_ARENA)
        return NULL;
    tg_chunk *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    c->mem = aligned_alloc(TG_ALIGN, (cap + TG_ALIGN - 1) / TG_ALIGN * TG_ALIGN + TG_ALIGN);
    if (!c->mem) {
        free(c);
        return NULL;
    }
    c->next = NULL;
    c->cap = cap;
    c->base = c->used = base;
    return c;
}

tg_tape *tg_tape_new(size_t arena_hint)
{
    if (arena_hint > TG_MAX_ARENA) {
        tg_error(NULL, 0, TG_ERR_ARG, "tg_tape_new: arena_hint %zu is above the maximum %zu", arena_hint,
                 TG_MAX_ARENA);
        return NULL;
    }
    tg_tape *t = calloc(1, sizeof *t);
    if (t) {
        t->generation = 2; /* even: chunks start at base 0 */
        t->next_chunk = arena_hint ? arena_hint : TG_DEFAULT_CHUNK;
        t->first = t->cur = chunk_new(t->next_chunk, 0);
    }
    if (!t || !t->first) {
        free(t);
        tg_error(NULL, 0, TG_ERR_NOMEM, "tg_tape_new: out of memory reserving %zu bytes",
                 arena_hint ? arena_hint : TG_DEFAULT_CHUNK);
        return NULL;
    }
    return t;
}

void tg_tape_free(tg_tape *t)
{
    if (!t)
        return;
    for (tg_chunk *c = t->first, *next; c; c = next) {
        next = c->next;
        free(c->mem);
        free(c);
    }
    free(t->nodes);
    free(t);
}

/* Odd generations start their chunks one alignment unit in (each chunk has
 * the unit to spare, so both parities fit the same allocations). A step that
 * repeats the last one's allocations then puts no tensor where the last
 * step's tensor of the same place was, so a tensor kept across a reset still
 * shows its old generation (or bytes that match no tape) to the op it is
 * passed to, instead of passing for the new tensor that took its place. */
static size_t generation_base(uint64_t generation) { return (generation & 1) ? TG_ALIGN : 0; }

void tg_tape_reset(tg_tape *t)
{
    if (!t)
        return;
    t->generation++;
    for (tg_chunk *c = t->first; c; c = c->next)
        c->base = c->used = generation_base(t->generation);
    t->cur = t->first;
    t->n_nodes = 0;
    t->status = TG_OK;
    t->msg[0] = '\0';
}

tg_status tg_tape_status(const tg_tape *t) { return t ? t->status : TG_ERR_ARG; }
const char *tg_tape_error(const tg_tape *t) { return t ? t->msg : "tape is NULL"; }
int tg_tape_length(const tg_tape *t) { return t ? t->n_nodes : -1; }

size_t tg_tape_arena_bytes(const tg_tape *t)
{
    size_t total = 0;
    for (const tg_chunk *c = t ? t->first : NULL; c; c = c->next)
        total += c->cap;
    return total;
}

void tg_tape_fail(tg_tape *t, tg_status s, const char *fmt, ...)
{
    if (!t || t->status != TG_OK)
        return;
    t->status = s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->msg, sizeof t->msg, fmt, ap);
    va_end(ap);
}

void *tg_arena_alloc(tg_tape *t, size_t bytes)
{
    if (t->status != TG_OK)
        return NULL;
    if (bytes > TG_MAX_ARENA) {
        tg_tape_fail(t, TG_ERR_NOMEM, "tg_tape: %zu bytes asked of the arena, above its maximum %zu", bytes,
                     TG_MAX_ARENA);
        return NULL;
    }
    bytes = (bytes + TG_ALIGN - 1) / TG_ALIGN * TG_ALIGN;
    /* Try the current chunk, then chunks kept from earlier steps. */
    for (tg_chunk *c = t->cur; c; c = c->next) {
        if (c->base + c->cap - c->used >= bytes) {
            void *p = c->mem + c->used;
            c->used += bytes;
            t->cur = c;
            return p;
        }
    }
    size_t cap = t->next_chunk > bytes ? t->next_chunk : bytes;
    tg_chunk *c = chunk_new(cap, generation_base(t->generation));
    if (!c) {
        tg_tape_fail(t, TG_ERR_NOMEM, "tg_tape: out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    tg_chunk *last = t->cur;
    while (last->next)
        last = last->next;
    last->next = c;
    t->next_chunk = cap * 2;
    c->used += bytes;
    t->cur = c;
    return c->mem + c->base;
}

/* A tape's tensor, with what only the backward walk needs to know of it. */
typedef struct activation {
    tg_tensor x; /* first, so a tg_tensor * of a tape tensor points here */
    bool grad_unwritten;
} activation;

static bool *grad_unwritten(tg_tensor *x)
{
    return x->tape ? &((activation *)x)->grad_unwritten : NULL;
}

bool tg_grad_claim(tg_tensor *x)
{
    bool *u = grad_unwritten(x);
    if (!u || !*u)
        return false;
    *u = false;
    return true;
}

/* The ops whose backward kernels claim every input gradient they write
 * (tg_grad_claim) and store into an unwritten one instead of adding; for
 * any other op the walk zeroes unwritten input gradients first. These are
 * the ops that write most of a Transformer's activation gradients. */
static bool claims_grads(tg_op op)
{
    return op == TG_OP_MATMUL || op == TG_OP_RESIDUAL || op == TG_OP_GELU || op == TG_OP_ATTENTION;
}

/* Zeroes x's gradient if no kernel has written it yet. */
static void grad_settle(tg_tensor *x)
{
    if (x->grad && tg_grad_claim(x))
        memset(x->grad, 0, x->size * sizeof(float));
}

static tg_tensor *arena_tensor(tg_tape *t, int ndim, const int *shape, const char *who)
{
    if (ndim < 1 || ndim > TG_MAX_DIMS) {
        tg_tape_fail(t, TG_ERR_SHAPE, "%s: %d dimensions (1 to %d allowed)", who, ndim, TG_MAX_DIMS);
        return NULL;
    }
    size_t size = tg_shape_size(ndim, shape);
    if (size == 0) {
        tg_tape_fail(t, TG_ERR_SHAPE, "%s: every dimension must be positive", who);
        return NULL;
    }
    activation *a = tg_arena_alloc(t, sizeof *a);
    float *data = tg_arena_alloc(t, size * sizeof(float));
    if (!a || !data)
        return NULL;
    memset(a, 0, sizeof *a);
    tg_tensor *x = &a->x;
    x->tape = t;
    x->generation = t->generation;
    x->data = data;
    x->ndim = ndim;
    memcpy(x->shape, shape, (size_t)ndim * sizeof(int));
    x->size = size;
    return x;
}

tg_tensor *tg_tape_tensor(tg_tape *t, int ndim, const int *shape)
{
    if (!t || t->status != TG_OK)
        return NULL;
    tg_tensor *x = arena_tensor(t, ndim, shape, "tg_tape_tensor");
    if (x)
        memset(x->data, 0, x->size * sizeof(float));
    return x;
}

tg_tensor *tg_node_output(tg_tape *t, tg_node *n, int ndim, const int *shape)
{
    /* Optional inputs (a LayerNorm's gamma, a Linear's bias) are checked
     * here, where every constructor passes. */
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] && !tg_tape_owns(t, tg_op_table[n->op].name, n->in[i], i))
            return n->out = NULL;
    if (t->status != TG_OK)
        return n->out = NULL;
    tg_tensor *x = arena_tensor(t, ndim, shape, tg_op_table[n->op].name);
    for (int i = 0; x && i < n->n_in; i++)
        x->requires_grad |= n->in[i] && n->in[i]->requires_grad;
    return n->out = x;
}

tg_tensor *tg_tape_emit(tg_tape *t, tg_node *n, int ndim, const int *shape)
{
    return tg_node_output(t, n, ndim, shape) ? tg_tape_record(t, n) : NULL;
}

bool tg_tape_owns(tg_tape *t, const char *op, const tg_tensor *x, int index)
{
    if (t->status != TG_OK)
        return false;
    if (x->tape == NULL ? x->generation == TG_PARAM_GENERATION && x->on_heap
                        : x->tape == t && x->generation == t->generation)
        return true;
    if (x->tape == t)
        tg_tape_fail(t, TG_ERR_ARG, "%s: input %d was made before the tape's last tg_tape_reset", op, index);
    else
        tg_tape_fail(t, TG_ERR_ARG,
                     "%s: input %d is not on this tape: it belongs to another tape, or is a tensor kept "
                     "across tg_tape_reset whose memory was reused", op, index);
    return false;
}

bool tg_tape_check_inputs(tg_tape *t, const char *op, tg_tensor *const *in, int n)
{
    if (!t || t->status != TG_OK)
        return false;
    if (!in && n > 0) {
        tg_tape_fail(t, TG_ERR_ARG, "%s: the inputs are NULL", op);
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (!in[i]) {
            tg_tape_fail(t, TG_ERR_ARG, "%s: input %d is NULL", op, i);
            return false;
        }
        if (!tg_tape_owns(t, op, in[i], i))
            return false;
    }
    return true;
}

tg_tensor *tg_tape_record(tg_tape *t, const tg_node *n)
{
    if (t->status != TG_OK || !n->out)
        return NULL;
    if (t->n_nodes == t->cap_nodes) {
        int cap = t->cap_nodes ? 2 * t->cap_nodes : 256;
        tg_node *nodes = realloc(t->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) {
            tg_tape_fail(t, TG_ERR_NOMEM, "%s: out of memory growing the tape", tg_op_table[n->op].name);
            return NULL;
        }
        t->nodes = nodes;
        t->cap_nodes = cap;
    }
    tg_node *slot = &t->nodes[t->n_nodes++];
    *slot = *n;
    run_kernel(t, slot, 0);
    return slot->out;
}

tg_tensor *tg_name(tg_tensor *x, const char *name)
{
    if (x && name)
        snprintf(x->name, sizeof x->name, "%s", name);
    return x;
}

/* Newest first: when a loop reuses a name, the latest tensor is the one
 * wanted. */
tg_tensor *tg_tape_find(const tg_tape *t, const char *name)
{
    if (!t || !name)
        return NULL;
    for (int i = t->n_nodes - 1; i >= 0; i--) {
        const tg_node *n = &t->nodes[i];
        if (!strcmp(n->out->name, name))
            return n->out;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] && !strcmp(n->in[k]->name, name))
                return n->in[k];
    }
    return NULL;
}

const tg_node *tg_tape_nodes(const tg_tape *t, int *count)
{
    *count = t->n_nodes;
    return t->nodes;
}

/* A frozen parameter keeps the gradient buffer tg_param_new gave it, and a
 * kernel accumulates into any input that has one. So for the walk the
 * buffers of inputs that need no gradient are hidden (set to NULL) and given
 * back afterwards: no kernel, present or future, can write into them. The
 * list ends with a NULL entry; NULL when the arena has no room. */
typedef struct hidden_grad {
    tg_tensor *x;
    float *grad;
} hidden_grad;

static hidden_grad *hide_frozen_grads(tg_tape *t, int last)
{
    hidden_grad *list = tg_arena_alloc(t, ((size_t)(last + 1) * TG_MAX_INPUTS + 1) * sizeof *list);
    if (!list)
        return NULL;
    int k = 0;
    for (int i = 0; i <= last; i++)
        for (int j = 0; j < t->nodes[i].n_in; j++) {
            tg_tensor *x = t->nodes[i].in[j];
            if (x && !x->requires_grad && x->grad) {
                list[k++] = (hidden_grad){x, x->grad};
                x->grad = NULL;
            }
        }
    list[k].x = NULL;
    return list;
}

tg_status tg_backward(tg_tape *t, tg_tensor *loss)
{
    if (!t)
        return TG_ERR_ARG;
    if (t->status != TG_OK)
        return t->status;
    if (!loss || loss->size != 1) {
        char s[48] = "NULL";
        if (loss)
            tg_shape_str(loss, s, sizeof s);
        tg_tape_fail(t, TG_ERR_SHAPE, "tg_backward: loss must have one element, got %s", s);
        return t->status;
    }
    if (!tg_tape_owns(t, "tg_backward", loss, 0))
        return t->status;
    int last = t->n_nodes - 1;
    while (last >= 0 && t->nodes[last].out != loss)
        last--;
    if (last < 0) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_backward: loss was not recorded on this tape");
        return t->status;
    }
    if (!isfinite(loss->data[0])) {
        tg_tape_fail(t, TG_ERR_ARG, "tg_backward: loss is %f", (double)loss->data[0]);
        return t->status;
    }
    /* Activation gradients start at zero, but are not zeroed here: a pass
     * over every one of them before the walk was a tenth of a small model's
     * step, spent on one thread. Each starts unwritten (reading as zero); the
     * first kernel to reach it either stores into it (see claims_grads and
     * tg_grad_claim) or finds it zeroed by the walk just before, while it
     * is about to be used and can stay in cache. */
    for (int i = 0; i <= last; i++) {
        tg_tensor *out = t->nodes[i].out;
        if (!out->requires_grad)
            continue;
        if (!out->grad && !(out->grad = tg_arena_alloc(t, out->size * sizeof(float))))
            return t->status;
        *grad_unwritten(out) = true;
    }
    if (!loss->requires_grad)
        return TG_OK;
    hidden_grad *hidden = hide_frozen_grads(t, last);
    if (!hidden)
        return t->status;
    tg_grad_claim(loss);
    loss->grad[0] = 1.0f;
    for (int i = last; i >= 0; i--) {
        tg_node *n = &t->nodes[i];
        if (!n->out->requires_grad)
            continue;
        grad_settle(n->out); /* nothing used it: its gradient is zero */
        for (int j = 0; !claims_grads(n->op) && j < n->n_in; j++)
            if (n->in[j])
                grad_settle(n->in[j]);
        run_kernel(t, n, 1);
    }
    for (hidden_grad *h = hidden; h->x; h++)
        h->x->grad = h->grad;
    return TG_OK;
}

double tg_tape_value(const tg_tape *t, const tg_tensor *x)
{
    for (int i = t->n_nodes - 1; i >= 0; i--) {
        const tg_node *n = &t->nodes[i];
        if (n->out == x)
            return (n->op == TG_OP_SUM || n->op == TG_OP_MEAN || n->op == TG_OP_MSE) ? *(const double *)n->aux
                                                               : (double)x->data[0];
    }
    return (double)x->data[0];
}

tg_node *tg_tape_node(tg_tape *t, int i)
{
    return i >= 0 && i < t->n_nodes ? &t->nodes[i] : NULL;
}
