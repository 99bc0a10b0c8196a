/* train_gpt: trains a GPT-2 shaped Transformer with tapegrad.
 *
 * Without --data it learns to sort six digits (a task that needs no files)
 * and ends with held-out exact-match accuracy; with --data FILE it trains a
 * byte-level language model and ends with a sample; --train-bin and
 * --val-bin train on token files. `train_gpt --help` lists the flags.
 * Problems found before training (flags, files, a checkpoint that does not
 * fit) exit with status 2, failures during the run with 1. */
#include "train_gpt.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct run {
    options o;
    dataset d;
    tg_checkpoint *ckpt; /* --resume, until the model is built from it */
    tg_gpt *m;
    tg_adamw *opt;
    tg_tape *tape;
    int *ids, *targets;
    FILE *log;
    train_state s;
    double t0;
    float last_val;
    bool interrupted;     /* stopped early by SIGINT or SIGTERM */
    double log_seconds;   /* --log on --resume: the seconds its last row reached */
    double optim_seconds; /* --profile: zeroing, clipping and AdamW */
    dist_state ds;        /* under mpirun: this rank and the gradient sum */
} run;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- setup: everything that can fail on bad input, before any training ---- */

/* A --save or --dump-grads target: a regular file or nothing yet, in a
 * directory this process can write in (the file is written next to itself
 * and renamed). Checked before any training, not after it. */
static int check_output(const char *flag, const char *path)
{
    struct stat st;
    if (!path)
        return 0;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        fprintf(stderr, "train_gpt: %s %s: it exists and is not a regular file (%s)\n", flag, path,
                S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO"
                : S_ISSOCK(st.st_mode) ? "a socket" : "a device");
        return EXIT_USAGE;
    }
    const char *slash = strrchr(path, '/');
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + 1 : 1, slash ? path : ".");
    if (access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "train_gpt: %s %s: cannot write in the directory %s: %s\n", flag, path, dir,
                strerror(errno));
        return EXIT_USAGE;
    }
    return 0;
}

/* A fresh model, or the checkpoint's (its values checked finite). */
static int build_model(run *r)
{
    char err[512];
    const options *o = &r->o;
    tg_gpt_config cfg = {.vocab = r->d.vocab, .ctx = o->ctx, .layers = o->layers, .heads = o->heads, .dim = o->dim,
                         .norm = o->norm, .residual_scale = 1.0f, .normtype = o->normtype, .mlp = o->mlp,
                         .pos = o->pos, .dropout = o->dropout};
    r->m = r->ckpt ? tg_checkpoint_model(r->ckpt, err, sizeof err) : tg_gpt_new(&cfg, o->seed, err, sizeof err);
    if (!r->m) {
        fprintf(stderr, "train_gpt: %s%s\n", r->ckpt ? "--resume " : "", err);
        return EXIT_USAGE;
    }
    r->opt = tg_adamw_new(r->m->params, r->m->n_params, 0.9f, o->beta2, 1e-8f, o->weight_decay);
    r->tape = tg_tape_new(0);
    size_t tokens = (size_t)o->batch * (size_t)o->ctx;
    r->ids = malloc(tokens * sizeof *r->ids);
    r->targets = malloc(tokens * sizeof *r->targets);
    if (!r->opt || !r->tape || !r->ids || !r->targets) {
        fprintf(stderr, "train_gpt: out of memory\n");
        return 1;
    }
    tg_rng_seed(&r->s.rng, o->seed ^ 0x9e3779b97f4a7c15ull);
    tg_rng_seed(&r->s.drop_rng, o->seed ^ 0xd1b54a32d192ed03ull);
    r->s.best_val = INFINITY;
    if (r->ckpt && tg_checkpoint_optimizer(r->ckpt, r->m, r->opt, err, sizeof err) != TG_OK) {
        fprintf(stderr, "train_gpt: --resume %s\n", err);
        return EXIT_USAGE;
    }
    return 0;
}

/* --resume: the run's settings from the checkpoint, then (once the data is
 * read) its fit to the data and its progress. */
static int resume_settings(run *r)
{
    char err[512];
    if (r->o.resume && !(r->ckpt = ckpt_open(r->o.resume, &r->o, err, sizeof err))) {
        fprintf(stderr, "train_gpt: --resume %s\n", err);
        return EXIT_USAGE;
    }
    return 0;
}

static int resume_fit(run *r)
{
    char err[512];
    if (r->ckpt && !ckpt_fits(r->ckpt, &r->o, &r->d, &r->s, err, sizeof err)) {
        fprintf(stderr, "train_gpt: --resume %s\n", err);
        return EXIT_USAGE;
    }
    return 0;
}

/* The seconds column of a log's last row, so that a resumed run's rows
 * continue it (the checkpoint holds no wall time: it stays the same bits
 * however fast the run went); 0 when there is none. */
static double last_log_seconds(const char *path)
{
    FILE *fp = fopen(path, "r");
    char line[256], last[256] = "";
    while (fp && fgets(line, sizeof line, fp))
        memcpy(last, line, sizeof last);
    if (fp)
        fclose(fp);
    const char *c = strrchr(last, ',');
    double v = c ? strtod(c + 1, NULL) : 0.0;
    return isfinite(v) && v > 0 ? v : 0.0;
}

static int setup(run *r, int argc, char **argv)
{
    int rc = parse_args(argc, argv, &r->o);
    /* Under mpirun only rank 0 writes the checkpoint: other machines need not
     * have its directory. */
    if (rc || (r->ds.rank == 0 && (rc = check_output("--save", r->o.save))) ||
        (rc = check_output("--dump-grads", r->o.dump_grads)) || (rc = resume_settings(r)) ||
        (rc = data_load(&r->d, &r->o)) || (rc = resume_fit(r)))
        return rc;
    const char *bad = dist_check_options(&r->ds, &r->o);
    if (bad) {
        fprintf(stderr, "train_gpt: %s\n", bad);
        return EXIT_USAGE;
    }
    train_state progress = r->s;
    if ((rc = build_model(r)))
        return rc;
    if (!dist_prepare(&r->ds, r->m)) {
        fprintf(stderr, "train_gpt: out of memory\n");
        return 1;
    }
    if (r->ckpt) {
        r->s = progress; /* build_model seeded a fresh sampler */
        tg_checkpoint_close(r->ckpt);
        r->ckpt = NULL;
    }
    /* A resumed run continues its log; the header starts a new one. */
    if (r->o.log && r->ds.rank == 0 && !(r->log = fopen(r->o.log, r->o.resume ? "a" : "w"))) {
        fprintf(stderr, "train_gpt: --log %s: cannot open for writing\n", r->o.log);
        return EXIT_USAGE;
    }
    if (r->log && ftell(r->log) == 0)
        fprintf(r->log, "step,loss,val_loss,lr,grad_norm,seconds\n");
    else if (r->log)
        r->log_seconds = last_log_seconds(r->o.log);
    tg_set_threads(r->o.threads); /* 0: TG_NUM_THREADS, else every core */
    return 0;
}

/* ---- evaluation ------------------------------------------------------------- */

/* Loss on a batch without a gradient. NAN if the tape failed. */
static float batch_loss(run *r, int batch)
{
    tg_tape_reset(r->tape);
    tg_tensor *loss = tg_gpt_loss(r->tape, r->m, r->ids, r->targets, batch, r->o.ctx);
    return loss ? loss->data[0] : NAN;
}

/* --eval-full: the mean over every window of the validation split, exact
 * (tg_gpt_eval; bench/val_full.py's figure). NAN after a message on failure. */
static float val_loss_full(run *r)
{
    /* Under mpirun each rank scores a contiguous share of the windows. */
    char err[512];
    long windows = (r->d.n_val - 1) / r->o.ctx;
    long lo = windows * r->ds.rank / r->ds.size, hi = windows * (r->ds.rank + 1) / r->ds.size;
    double mean = 0.0;
    if (hi > lo && tg_gpt_eval(r->m, r->tape, r->d.val + lo * r->o.ctx, (hi - lo) * r->o.ctx + 1, r->o.ctx,
                               r->o.batch, &mean, err, sizeof err) != TG_OK) {
        fprintf(stderr, "\ntrain_gpt: %s\n", err);
        mean = NAN; /* still joins the sum below: the other ranks wait for it */
    }
    double sum = mean * (double)(hi - lo);
    if (tg_dist_sum(&sum, 1) != TG_OK)
        return NAN;
    return (float)(sum / (double)windows);
}

/* Mean loss over eval_iters validation batches. Their sampler is seeded from
 * the step, so evaluating never moves the training batches (and a resumed
 * run evaluates the same batches). */
static float val_loss(run *r)
{
    if (r->o.eval_full)
        return val_loss_full(r);
    tg_rng er;
    tg_rng_seed(&er, r->o.seed * 1000003ull + (unsigned long long)r->s.step);
    double sum = 0.0;
    for (int i = 0; i < r->o.eval_iters; i++) {
        data_batch(&r->d, &er, true, r->o.batch, r->o.ctx, r->ids, r->targets);
        if (i % r->ds.size == r->ds.rank) /* under mpirun: every N-th batch */
            sum += batch_loss(r, r->o.batch);
    }
    if (tg_dist_sum(&sum, 1) != TG_OK)
        return NAN;
    return (float)(sum / r->o.eval_iters);
}

/* Greedy answers to held-out sort problems [first, first + n): out[i] gets
 * the SORT_LEN predicted digits of problem first + i. */
static bool sort_predict(run *r, int first, int n, int *out)
{
    int *seq = malloc((size_t)n * SORT_CTX * sizeof *seq), *ids = malloc((size_t)n * SORT_CTX * sizeof *ids);
    bool ok = seq && ids;
    for (int i = 0; ok && i < n; i++) {
        data_sort_test(&r->d, first + i, seq + i * SORT_CTX);
        seq[i * SORT_CTX + SORT_LEN] = SORT_SEP;
    }
    for (int len = SORT_LEN + 1; ok && len <= SORT_CTX; len++) {
        for (int i = 0; i < n; i++)
            memcpy(ids + i * len, seq + i * SORT_CTX, (size_t)len * sizeof *ids);
        tg_tape_reset(r->tape);
        tg_tensor *lg = tg_gpt_logits(r->tape, r->m, ids, n, len);
        ok = lg != NULL;
        for (int i = 0; ok && i < n; i++) {
            const float *row = lg->data + ((size_t)i * len + (size_t)len - 1) * SORT_VOCAB;
            int best = 0;
            for (int v = 1; v < SORT_VOCAB; v++)
                best = row[v] > row[best] ? v : best;
            if (len < SORT_CTX)
                seq[i * SORT_CTX + len] = best;
            out[i * SORT_LEN + len - SORT_LEN - 1] = best;
        }
    }
    free(seq);
    free(ids);
    return ok;
}

static void print_sort_example(const int *in, const int *pred, bool right)
{
    printf("  ");
    for (int i = 0; i < SORT_LEN; i++)
        printf("%d", in[i]);
    printf(" -> ");
    for (int i = 0; i < SORT_LEN; i++)
        printf("%c", pred[i] < 10 ? '0' + pred[i] : '>');
    printf("  %s\n", right ? "right" : "wrong");
}

static int sort_report(run *r)
{
    enum { CHUNK = 250, SHOWN = 5 };
    int right = 0, pred[CHUNK * SORT_LEN];
    for (int first = 0; first < SORT_TEST; first += CHUNK) {
        if (!sort_predict(r, first, CHUNK, pred)) {
            fprintf(stderr, "train_gpt: %s\n", tg_tape_error(r->tape));
            return 1;
        }
        if (first == 0)
            printf("held-out examples:\n");
        for (int i = 0; i < CHUNK; i++) {
            int digits[SORT_LEN], seq[SORT_CTX + 1];
            data_sort_test(&r->d, first + i, digits);
            data_sort_sequence(digits, seq);
            bool ok = !memcmp(seq + SORT_LEN + 1, pred + i * SORT_LEN, sizeof(int) * SORT_LEN);
            right += ok;
            if (first + i < SHOWN)
                print_sort_example(digits, pred + i * SORT_LEN, ok);
        }
    }
    printf("held-out exact-match accuracy: %d/%d = %.1f%%\n", right, SORT_TEST, 100.0 * right / SORT_TEST);
    return 0;
}

/* ---- sampling text ---------------------------------------------------------- */

/* n tokens with the library's generator (past ctx tokens its window
 * restarts from the last ctx/2, see tg_generator_new). Text starts after a
 * newline and prints characters; token files start from token 0 and print
 * token ids (there is no tokenizer here to decode them). */
static int sample_text(run *r)
{
    char err[512];
    bool text = r->d.kind == TASK_TEXT;
    int n = r->o.sample, *toks = malloc((size_t)n * sizeof *toks);
    int start = text && tg_byte_encode(&r->d.chars, '\n') >= 0 ? tg_byte_encode(&r->d.chars, '\n') : 0;
    if (!toks)
        return 1;
    if (tg_gpt_generate(r->m, &start, 1, n, r->o.temperature, r->o.top_k, r->o.seed + 7, toks, err, sizeof err)) {
        fprintf(stderr, "train_gpt: %s\n", err);
        free(toks);
        return 1;
    }
    printf("sample (%d %s, temperature %g, top-k %d):\n", n, text ? "characters" : "tokens",
           (double)r->o.temperature, r->o.top_k);
    for (int i = 0; i < n; i++)
        if (text)
            putchar(tg_byte_decode(&r->d.chars, toks[i]));
        else
            printf(i ? " %d" : "%d", toks[i]);
    putchar('\n');
    free(toks);
    return 0;
}

/* ---- training --------------------------------------------------------------- */

/* first: the first step of this process (a resumed run starts late). */
static void progress(run *r, long first, long step, float loss, float lr, bool eval)
{
    double el = now() - r->t0;
    long done = step + 1 - first, left = r->o.steps - step - 1;
    double tok_s = (double)done * r->o.batch * r->o.ctx / (el > 0 ? el : 1e-9);
    double eta = done ? el / (double)done * (double)left : 0.0;
    /* mpirun hands its ranks a pseudo-terminal whatever its own stdout is. */
    bool tty = r->ds.size == 1 && isatty(fileno(stdout));
    long every = r->o.steps / 20 > 0 ? r->o.steps / 20 : 1;
    if (!tty && !eval && (step + 1) % every && left)
        return;
    char note[64];
    dist_progress_note(&r->ds, el, note, sizeof note);
    printf("%sstep %ld/%d  loss %.4f  lr %.2e  %.0f tok/s  %.0fs left%s%s", tty ? "\r\033[K" : "", step + 1,
           r->o.steps, (double)loss, (double)lr, tok_s, eta, note, tty && !eval && left ? "" : "\n");
    if (eval)
        printf("step %ld: %s loss %.4f\n", step + 1, r->d.kind == TASK_SORT ? "held-out" : "val", (double)r->last_val);
    fflush(stdout);
}

/* --no-bias: a bias whose gradient is always 0 keeps its initial 0 under
 * AdamW (no moment, and biases do not decay), which is nanoGPT's bias=False
 * model exactly: Linear and LayerNorm without the additive term. */
static void drop_bias_grads(run *r)
{
    for (int i = 0; i < r->m->n_params; i++) {
        tg_tensor *p = r->m->params[i];
        size_t len = strlen(p->name);
        if (len > 5 && !strcmp(p->name + len - 5, ".bias"))
            memset(p->grad, 0, p->size * sizeof *p->grad);
    }
}

/* The name of a parameter holding a value that is not finite, or NULL. One
 * pass per step: x * 0 is 0 for every finite x and NaN otherwise, and a sum
 * of such terms in independent lanes vectorises. */
static const char *params_finite(const tg_gpt *m)
{
    for (int i = 0; i < m->n_params; i++) {
        const float *x = m->params[i]->data;
        size_t n = m->params[i]->size, j = 0;
        float acc[8] = {0};
        for (; j + 8 <= n; j += 8)
            for (int l = 0; l < 8; l++)
                acc[l] += x[j + l] * 0.0f;
        for (; j < n; j++)
            acc[0] += x[j] * 0.0f;
        for (int l = 0; l < 8; l++)
            if (acc[l] != 0.0f)
                return m->params[i]->name;
    }
    return NULL;
}

/* The loss of rows [first, first + rows) of the batch in r->ids for
 * training: with dropout on (its masks
 * drawn from the run's own generator as the ops are recorded), which is off
 * again for evaluation and sampling. */
static tg_tensor *training_loss(run *r, int first, int rows)
{
    int ctx = r->o.ctx;
    r->m->dropout_rng = &r->s.drop_rng;
    tg_tensor *loss = tg_gpt_loss(r->tape, r->m, r->ids + first * ctx, r->targets + first * ctx, rows, ctx);
    r->m->dropout_rng = NULL;
    return loss;
}

/* One optimiser step. Returns the training loss, NAN on failure (reported). */
static float train_step(run *r, float lr, float *norm)
{
    /* Every rank draws the global batch and trains on its rows of it. */
    int first, rows, ctx = r->o.ctx;
    float weight;
    data_batch(&r->d, &r->s.rng, false, r->o.batch, ctx, r->ids, r->targets);
    dist_slice(&r->ds, r->targets, r->o.batch, ctx, &first, &rows, &weight);
    tg_tape_reset(r->tape);
    tg_tensor *loss = training_loss(r, first, rows);
    double t0 = now();
    tg_zero_grad(r->m->params, r->m->n_params);
    r->optim_seconds += now() - t0;
    /* A failure here may be this rank's alone: it goes through the sum, so
     * every rank stops at this step. */
    char failure[640] = "";
    if (loss && !isfinite(loss->data[0]))
        snprintf(failure, sizeof failure, "the loss (%g) is not finite at step %ld; nothing was saved (try a lower "
                 "--lr)", (double)loss->data[0], r->s.step + 1);
    else if (tg_backward(r->tape, loss) != TG_OK)
        snprintf(failure, sizeof failure, "step %ld: %s; nothing was saved", r->s.step + 1, tg_tape_error(r->tape));
    float l = *failure ? NAN : loss->data[0];
    if (!dist_sum_grads(&r->ds, weight, &l, *failure ? failure : NULL))
        return NAN;
    t0 = now();
    if (r->o.no_bias)
        drop_bias_grads(r);
    *norm = tg_clip_grad_norm(r->m->params, r->m->n_params, r->o.clip);
    if (!isfinite(*norm)) { /* the same on every rank: rank 0 says so */
        if (r->ds.rank == 0)
            fprintf(stderr, "\ntrain_gpt: the gradient norm (%g) is not finite at step %ld (loss %g); "
                    "nothing was saved (try a lower --lr)\n", (double)*norm, r->s.step + 1, (double)l);
        return NAN;
    }
    tg_adamw_step(r->opt, lr);
    r->optim_seconds += now() - t0;
    const char *bad = params_finite(r->m);
    if (bad) { /* every rank took the same step */
        if (r->ds.rank == 0)
            fprintf(stderr, "\ntrain_gpt: parameter %s is not finite after the update of step %ld; nothing was "
                    "saved (try a lower --lr)\n", bad, r->s.step + 1);
        return NAN;
    }
    return l;
}

/* --profile: kernel times from the tape (training and evaluation steps
 * alike), then the optimiser's. */
static void print_profile(const run *r, double secs)
{
    char table[4096];
    tg_tape_profile_report(r->tape, table, sizeof table);
    printf("profile over the run:\n%s%-16s %8s %23.1f\n%-16s %8s %23.1f\n", table, "optimiser", "",
           1e3 * r->optim_seconds, "wall", "", 1e3 * secs);
}

/* Ctrl-C or a TERM asks the loop to stop after the current step; a second
 * one kills at once, as usual. */
static volatile sig_atomic_t stop_requested;

static void request_stop(int sig)
{
    stop_requested = 1;
    signal(sig, SIG_DFL);
}

/* Under mpirun a rank that stopped alone would leave the others waiting in
 * the gradient sum, so there the signals keep their default action. */
static void catch_stop_signals(const run *r)
{
    if (r->ds.size > 1)
        return;
    struct sigaction sa = {.sa_handler = request_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* The checkpoint of the run as it stands, to path; rank 0 only. */
static bool save_to(run *r, const char *path)
{
    char err[512];
    if (!ckpt_save(path, r->m, r->opt, &r->o, &r->d, &r->s, err, sizeof err)) {
        fprintf(stderr, "\ntrain_gpt: --save %s (step %ld)\n", err, r->s.step);
        return false;
    }
    return true;
}

/* --save-every and --save-best after a step (the last step's checkpoint is
 * finish's). */
static bool save_during(run *r, bool eval, long end)
{
    const options *o = &r->o;
    if (!o->save || r->ds.rank > 0)
        return true;
    if (eval && o->save_best && r->last_val < r->s.best_val) {
        char best[4096];
        r->s.best_val = r->last_val;
        snprintf(best, sizeof best, "%s.best", o->save);
        if (!save_to(r, best))
            return false;
    }
    if (!o->save_every || r->s.step % o->save_every || r->s.step >= end)
        return true;
    if (!save_to(r, o->save))
        return false;
    printf("%scheckpoint written to %s (step %ld)\n", isatty(fileno(stdout)) ? "\n" : "", o->save, r->s.step);
    return true;
}

static int train(run *r)
{
    const options *o = &r->o;
    long end = o->stop_after && o->stop_after < o->steps ? o->stop_after : o->steps;
    long first = r->s.step;
    tg_tape_profile(r->tape, o->profile);
    catch_stop_signals(r);
    r->t0 = now();
    for (long step = r->s.step; step < end && !r->interrupted; step++) {
        float norm, lr = tg_lr_schedule(step, o->warmup, o->steps, o->lr, o->min_lr);
        float loss = train_step(r, lr, &norm);
        if (isnan(loss))
            return 1;
        r->s.step = step + 1;
        bool eval = (step + 1) % o->eval_every == 0 || step + 1 == o->steps;
        if (eval)
            r->last_val = val_loss(r);
        if (r->log) {
            char val[32] = "";
            if (eval)
                snprintf(val, sizeof val, "%.6f", (double)r->last_val);
            fprintf(r->log, "%ld,%.6f,%s,%.6e,%.6f,%.3f\n", step + 1, (double)loss, val, (double)lr,
                    (double)norm, r->log_seconds + now() - r->t0);
        }
        progress(r, first, step, loss, lr, eval);
        if (!save_during(r, eval, end))
            return 1;
        if (stop_requested) {
            r->interrupted = true;
            end = step + 1;
            printf("\ninterrupted after step %ld\n", end);
        }
    }
    double secs = now() - r->t0, steps = (double)(end - first > 0 ? end - first : 1);
    char note[64];
    dist_progress_note(&r->ds, secs, note, sizeof note);
    printf("%ld steps in %.1f s (%.1f ms a step%s%s)\n", end - first, secs, 1e3 * secs / steps,
           r->ds.size > 1 ? ", " : "", note + (r->ds.size > 1 ? 2 : 0));
    if (r->ds.size > 1)
        printf("%d ranks; the gradient sum took %.2f ms a step\n", r->ds.size, 1e3 * r->ds.sum_seconds / steps);
    if (o->profile)
        print_profile(r, secs);
    return 0;
}

static int finish(run *r)
{
    const options *o = &r->o;
    if (!dist_check_same(&r->ds, r->m))
        return 1;
    if (r->ds.rank > 0) /* rank 0 saves and reports for all */
        return 0;
    if (o->save) {
        if (!save_to(r, o->save))
            return 1;
        printf("checkpoint written to %s (step %ld)\n", o->save, r->s.step);
    }
    if (r->interrupted)
        return 130; /* 128 + SIGINT, as a shell reports a Ctrl-C */
    if (r->s.step < o->steps)
        return 0;
    return r->d.kind == TASK_SORT ? sort_report(r) : o->sample ? sample_text(r) : 0;
}

/* --eval-only: the resumed model's validation loss, and nothing else. */
static int eval_only(run *r)
{
    float v = val_loss(r);
    if (isnan(v)) {
        fprintf(stderr, "train_gpt: %s\n", tg_tape_error(r->tape));
        return 1;
    }
    if (r->ds.rank == 0)
        printf("step %ld: %s loss %.4f%s\n", r->s.step, r->d.kind == TASK_SORT ? "held-out" : "val", (double)v,
               r->o.eval_full ? " (exact, every window)" : "");
    return 0;
}

static int dump(run *r)
{
    char err[512];
    data_batch(&r->d, &r->s.rng, false, r->o.batch, r->o.ctx, r->ids, r->targets);
    tg_tape_reset(r->tape);
    tg_tensor *loss = training_loss(r, 0, r->o.batch);
    tg_zero_grad(r->m->params, r->m->n_params);
    if (tg_backward(r->tape, loss) != TG_OK) {
        fprintf(stderr, "train_gpt: %s\n", tg_tape_error(r->tape));
        return 1;
    }
    if (!dump_grads(r->o.dump_grads, r->m, r->ids, r->targets, r->o.batch, r->o.ctx, loss->data[0], err, sizeof err)) {
        fprintf(stderr, "train_gpt: --dump-grads %s\n", err);
        return 1;
    }
    printf("loss %.6f; parameters, gradients and the batch written to %s\n", (double)loss->data[0], r->o.dump_grads);
    return 0;
}

static void describe(const run *r)
{
    const options *o = &r->o;
    long n = 0;
    for (int i = 0; i < r->m->n_params; i++)
        n += (long)r->m->params[i]->size;
    if (r->d.kind == TASK_SORT)
        printf("task: sort %d digits (%d held-out problems)\n", SORT_LEN, SORT_TEST);
    else if (r->d.kind == TASK_TEXT)
        printf("task: %s, %ld characters, vocabulary %d, %ld for training\n", o->data, r->d.text.n, r->d.vocab,
               r->d.n_train);
    else
        printf("task: tokens, %s (%ld for training), %s (%ld for validation), vocabulary %d\n", o->train_bin,
               r->d.n_train, o->val_bin, r->d.n_val, r->d.vocab);
    printf("model: %d layers, %d heads, dim %d, ctx %d, %s blocks, %s, %s MLP, %s positions, dropout %g, "
           "%.2fM parameters\n", o->layers, o->heads, o->dim, o->ctx, tg_norm_name(o->norm),
           tg_normtype_name(o->normtype), tg_mlp_name(o->mlp), tg_pos_name(o->pos), (double)o->dropout,
           (double)n / 1e6);
    if (r->ds.size > 1)
        printf("data parallel: %d ranks, %d rows of the batch each\n", r->ds.size, o->batch / r->ds.size);
    printf("run: %s, batch %d, steps %ld..%d, lr %g -> %g, warm-up %d, weight decay %g, beta2 %g, clip %g, seed %llu, "
           "%d threads\n", o->no_bias ? "biases held at 0" : "with biases", o->batch, r->s.step, o->steps, (double)o->lr, (double)o->min_lr, o->warmup,
           (double)o->weight_decay, (double)o->beta2, (double)o->clip, o->seed, tg_get_threads());
}

int main(int argc, char **argv)
{
    run r = {0};
    int rc = dist_begin(&r.ds, &argc, &argv);
    rc = dist_setup_done(&r.ds, rc ? rc : setup(&r, argc, argv));
    if (!rc && r.o.dump_grads)
        rc = dump(&r);
    else if (!rc && r.o.eval_only)
        rc = eval_only(&r);
    else if (!rc) {
        describe(&r);
        rc = train(&r);
        rc = rc ? rc : finish(&r);
    }
    if (r.log && fclose(r.log)) {
        fprintf(stderr, "train_gpt: --log %s: write failed\n", r.o.log);
        rc = rc ? rc : 1;
    }
    tg_checkpoint_close(r.ckpt);
    tg_tape_free(r.tape);
    tg_adamw_free(r.opt);
    tg_gpt_free(r.m);
    data_free(&r.d);
    free(r.ids);
    free(r.targets);
    rc = dist_end(&r.ds, rc);
    return rc < 0 ? 0 : rc;
}
