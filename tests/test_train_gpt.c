/* The train_gpt program: flag errors, the sort task, --data, the log,
 * checkpoints that resume bit for bit, bad checkpoint files, --dump-grads.
 * argv[1] is the path of the executable; files go to a temporary directory. */
#define _GNU_SOURCE
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *exe;
static const char *dir;

/* Small and fast: a model every test can train in well under a second. */
#define TINY "--layers 1 --dim 16 --heads 2 --batch 8 --threads 2 --eval-every 10 --eval-iters 2"

/* Runs train_gpt with args in dir. Returns the exit status, and stdout and
 * stderr in out (truncated to len). */
static int run(const char *args, char *out, size_t len)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s", exe, args);
    return tu_run(cmd, false, out, len);
}

static void expect_usage_error(const char *args, const char *message)
{
    char out[4096];
    int rc = run(args, out, sizeof out);
    if (rc != 2 || !strstr(out, message))
        fail_msg("train_gpt %s: exit %d, output:\n%s\n(expected exit 2 and '%s')", args, rc, out, message);
    assert_null(strstr(out, "step ")); /* no work was done */
}

static void test_bad_flags(void **s)
{
    (void)s;
    expect_usage_error("--heads 3", "--heads 3 must divide --dim 64");
    expect_usage_error("--lr -1", "--lr -1: expected a number in (0, 1e+30]");
    expect_usage_error("--lr 0", "--lr 0: expected a number in (0, 1e+30]");
    expect_usage_error("--steps 0", "--steps 0: expected an integer from 1 to 2147483647");
    expect_usage_error("--steps 2.5", "--steps 2.5: expected an integer");
    expect_usage_error("--steps 1e3", "--steps 1e3: expected an integer");
    expect_usage_error("--layers 99999999999999999999", "--layers 99999999999999999999: expected an integer from 1 to 4096");
    expect_usage_error("--seed -1", "--seed -1: expected an integer from 0 to 18446744073709551615");
    expect_usage_error("--clip inf", "--clip inf: expected a number in [0, 1e+30]");
    expect_usage_error("--min-lr 0.5 --lr 0.1", "--min-lr 0.5 must not exceed --lr 0.1");
    expect_usage_error("--dim abc", "--dim abc");
    expect_usage_error("--bogus 1", "unknown flag '--bogus'");
    expect_usage_error("--norm side", "expected pre, post, deepnorm or rezero");
    expect_usage_error("--beta2 1", "--beta2 1: expected a number in [0, 1)");
    expect_usage_error("--ctx 10", "--ctx applies to --data and --train-bin only");
    expect_usage_error("--batch", "--batch needs a value");
    expect_usage_error("--temperature nan", "--temperature nan");
    expect_usage_error("--data no_such_file.txt", "cannot open no_such_file.txt");
    tu_write_file("short.txt", "to be or not to be, that is the question", 40);
    expect_usage_error("--data short.txt --ctx 8", "--ctx 8 is longer than the text allows");
    tu_write_file("empty.txt", "", 0);
    expect_usage_error("--data empty.txt", "is longer than the text allows");
    expect_usage_error("--resume no_such.safetensors", "no_such.safetensors");
    expect_usage_error("--data /dev/zero", "/dev/zero is a device, not a regular file");
    expect_usage_error("--data .", "is a directory");

    char out[8192];
    assert_int_equal(run("--help", out, sizeof out), 0);
    assert_non_null(strstr(out, "--norm pre|post|deepnorm|rezero"));
    assert_non_null(strstr(out, "--weight-decay"));
}

/* The default task at fewer steps than its default still sorts. */
static void test_sort_task(void **s)
{
    (void)s;
    char out[16384];
    assert_int_equal(run("--steps 300", out, sizeof out), 0);
    const char *acc = strstr(out, "held-out exact-match accuracy: ");
    assert_non_null(acc);
    int right, total;
    assert_int_equal(sscanf(acc, "held-out exact-match accuracy: %d/%d", &right, &total), 2);
    print_message("sort task, 300 steps: %d/%d held-out problems sorted\n", right, total);
    assert_int_equal(total, 1000);
    assert_true(right >= 990);
}

/* The study's block variants train too, and resume through a checkpoint
 * that names them. */
static void test_block_variants(void **s)
{
    (void)s;
    char out[8192];
    assert_int_equal(run("--steps 6 --norm deepnorm --save dn.st " TINY, out, sizeof out), 0);
    assert_non_null(strstr(out, "deepnorm"));
    assert_int_equal(run("--steps 8 --resume dn.st", out, sizeof out), 0);
    assert_int_equal(run("--steps 6 --norm rezero " TINY, out, sizeof out), 0);

    /* --no-bias holds every bias (Linear and LayerNorm) at 0 while the rest trains. */
    assert_int_equal(run("--steps 6 --no-bias --save nb.st " TINY, out, sizeof out), 0);
    tg_st_file *f = tu_st_open("nb.st");
    int biases = 0;
    for (int i = 0; i < tg_safetensors_count(f); i++) {
        const tg_st_tensor *t = tg_safetensors_at(f, i);
        size_t len = strlen(t->name), n = tg_shape_size(t->ndim, t->shape);
        if (strncmp(t->name, "transformer.", 12) || len < 5 || strcmp(t->name + len - 5, ".bias"))
            continue;
        biases++;
        for (size_t k = 0; k < n; k++)
            assert_true(((const float *)t->data)[k] == 0.0f);
    }
    assert_int_equal(biases, 7); /* 6 in the block, ln_f's */
    assert_non_null(tg_safetensors_find(f, "optim.m.transformer.h.0.mlp.c_fc.weight"));
    assert_string_equal(tg_safetensors_meta(f, "bias"), "0");
    tg_safetensors_close(f);
    expect_usage_error("--resume nb.st --no-bias --dim 16 --layers 2", "it was trained with --layers 1");
    assert_int_equal(run("--steps 6 --save b.st " TINY, out, sizeof out), 0);
    expect_usage_error("--resume b.st --no-bias", "it was trained with biases; drop --no-bias");
}

static void make_text(void)
{
    static const char line[] = "the quick brown fox jumps over the lazy dog\nTHE END.\n";
    char text[sizeof line * 60];
    for (int i = 0; i < 60; i++)
        memcpy(text + i * (sizeof line - 1), line, sizeof line - 1);
    tu_write_file("text.txt", text, 60 * (sizeof line - 1));
}

static void test_text_and_log(void **s)
{
    (void)s;
    char out[16384], path[300], row[256];
    make_text();
    assert_int_equal(run("--data text.txt --ctx 16 --steps 20 --sample 40 --log log.csv --profile " TINY, out, sizeof out),
                     0);
    assert_non_null(strstr(out, "vocabulary 34"));
    const char *prof = strstr(out, "profile over the run:");
    assert_non_null(prof);
    /* 20 training steps and 2 validation batches at steps 10 and 20: 24
     * forward passes, each with a token and a position embedding. */
    assert_non_null(strstr(prof, "embedding              48"));
    assert_non_null(strstr(out, "step 20: val loss"));
    assert_non_null(strstr(out, "sample (40 characters"));
    snprintf(path, sizeof path, "%s/log.csv", dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(row, sizeof row, fp));
    assert_string_equal(row, "step,loss,val_loss,lr,grad_norm,seconds\n");
    int rows = 0, step;
    double loss, val = -1, lr, norm, secs;
    while (fgets(row, sizeof row, fp)) {
        rows++;
        if (sscanf(row, "%d,%lf,%lf,%lf,%lf,%lf", &step, &loss, &val, &lr, &norm, &secs) != 6)
            assert_int_equal(sscanf(row, "%d,%lf,,%lf,%lf,%lf", &step, &loss, &lr, &norm, &secs), 5);
        assert_int_equal(step, rows);
        assert_true(loss > 0 && lr > 0 && norm > 0);
    }
    fclose(fp);
    assert_int_equal(rows, 20);
    assert_true(val > 0 && val < 4.0); /* step 20 was evaluated; ln(34) = 3.53 at chance */
}

/* --eval-full against the model rebuilt from the checkpoint and scored one
 * window at a time: 19 windows of 16 in the 318-token validation split, so
 * train_gpt's batches of 8 end in a partial one that must weigh 3/19. */
static void test_eval_full(void **s)
{
    (void)s;
    char out[16384], path[300];
    make_text();
    assert_int_equal(run("--data text.txt --ctx 16 --steps 10 --sample 0 --eval-full --save ef.st " TINY, out, sizeof out),
                     0);
    const char *at = strstr(out, "step 10: val loss ");
    assert_non_null(at);
    double logged = atof(at + strlen("step 10: val loss "));

    tg_gpt_config cfg = {.vocab = 34, .ctx = 16, .layers = 1, .heads = 2, .dim = 16, .norm = TG_PRE_LN};
    char err[256];
    tg_gpt *m = tg_gpt_new(&cfg, 1, err, sizeof err);
    assert_non_null(m);
    tg_st_file *f = tu_st_open("ef.st");
    for (int i = 0; i < m->n_params; i++) {
        const tg_st_tensor *t = tg_safetensors_find(f, m->params[i]->name);
        assert_non_null(t);
        memcpy(m->params[i]->data, t->data, m->params[i]->size * sizeof(float));
    }
    tg_safetensors_close(f);

    unsigned char text[4096];
    snprintf(path, sizeof path, "%s/text.txt", dir);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    long n = (long)fread(text, 1, sizeof text, fp);
    fclose(fp);
    int index[256], vocab = 0;
    for (int c = 0; c < 256; c++)
        index[c] = memchr(text, c, (size_t)n) ? vocab++ : -1;
    assert_int_equal(vocab, 34);
    long first = n * 9 / 10, windows = (n - first - 1) / 16;
    assert_int_equal(windows, 19);
    double sum = 0.0;
    tg_tape *t = tg_tape_new(0);
    for (long w = 0; w < windows; w++) {
        int ids[16], targets[16];
        for (int i = 0; i < 16; i++) {
            ids[i] = index[text[first + w * 16 + i]];
            targets[i] = index[text[first + w * 16 + i + 1]];
        }
        tg_tape_reset(t);
        tg_tensor *loss = tg_gpt_loss(t, m, ids, targets, 1, 16);
        assert_non_null(loss);
        sum += loss->data[0];
    }
    tg_tape_free(t);
    tg_gpt_free(m);
    assert_float_equal(logged, sum / (double)windows, 1e-4);
    expect_usage_error("--eval-full", "--eval-full applies to --data and --train-bin only");
}

/* Every tensor of a (parameters and optimiser state) equals b's, bit for bit. */
static void expect_same_tensors(const char *a, const char *b)
{
    tg_st_file *fa = tu_st_open(a), *fb = tu_st_open(b);
    assert_int_equal(tg_safetensors_count(fa), tg_safetensors_count(fb));
    for (int i = 0; i < tg_safetensors_count(fa); i++) {
        const tg_st_tensor *ta = tg_safetensors_at(fa, i), *tb = tg_safetensors_find(fb, ta->name);
        assert_non_null(tb);
        size_t n = tg_shape_size(ta->ndim, ta->shape);
        if (memcmp(ta->data, tb->data, n * sizeof(float)))
            fail_msg("%s differs between %s and %s", ta->name, a, b);
    }
    assert_string_equal(tg_safetensors_meta(fa, "step"), tg_safetensors_meta(fb, "step"));
    assert_string_equal(tg_safetensors_meta(fa, "rng"), tg_safetensors_meta(fb, "rng"));
    tg_safetensors_close(fa);
    tg_safetensors_close(fb);
}

static void test_resume_is_exact(void **s)
{
    (void)s;
    char out[16384];
    make_text();
    assert_int_equal(run("--data text.txt --ctx 16 --steps 30 --sample 0 --save full.st " TINY, out, sizeof out), 0);
    assert_int_equal(run("--data text.txt --ctx 16 --steps 30 --stop-after 13 --save part.st " TINY, out, sizeof out), 0);
    assert_non_null(strstr(out, "(step 13)"));
    assert_int_equal(run("--data text.txt --resume part.st --sample 0 --save resumed.st --threads 2", out, sizeof out), 0);
    assert_non_null(strstr(out, "steps 13..30"));
    expect_same_tensors("full.st", "resumed.st");

    /* The same for the sort task, through the default Pre-LN and Post-LN. */
    assert_int_equal(run("--steps 12 --norm post --save sfull.st " TINY, out, sizeof out), 0);
    assert_int_equal(run("--steps 12 --norm post --stop-after 5 --save spart.st " TINY, out, sizeof out), 0);
    assert_int_equal(run("--resume spart.st --save sresumed.st --threads 2", out, sizeof out), 0);
    expect_same_tensors("sfull.st", "sresumed.st");
}

/* The LLaMA-style options: trained, recorded, resumed bit for bit (dropout's
 * generator included), and held to the flags on --resume. */
static void test_llama_options(void **s)
{
    (void)s;
    char out[8192];
#define LLAMA "--normtype rmsnorm --mlp swiglu --pos rope --dropout 0.1 " TINY
    assert_int_equal(run("--steps 12 --save lfull.st " LLAMA, out, sizeof out), 0);
    assert_non_null(strstr(out, "rmsnorm, swiglu MLP, rope positions, dropout 0.1"));
    assert_int_equal(run("--steps 12 --stop-after 5 --save lpart.st " LLAMA, out, sizeof out), 0);
    assert_int_equal(run("--resume lpart.st --save lresumed.st", out, sizeof out), 0);
    expect_same_tensors("lfull.st", "lresumed.st");
    tg_st_file *f = tu_st_open("lfull.st");
    assert_string_equal(tg_safetensors_meta(f, "normtype"), "rmsnorm");
    assert_string_equal(tg_safetensors_meta(f, "mlp"), "swiglu");
    assert_string_equal(tg_safetensors_meta(f, "pos"), "rope");
    assert_null(tg_safetensors_find(f, "transformer.wpe.weight"));
    assert_null(tg_safetensors_find(f, "transformer.h.0.ln_1.bias"));
    assert_non_null(tg_safetensors_meta(f, "dropout_rng"));
    tg_safetensors_close(f);
    expect_usage_error("--resume lpart.st --mlp gelu", "it was trained with --mlp swiglu; drop the flag");
    expect_usage_error("--resume lpart.st --dropout 0.2", "it was trained with --dropout 0.1");
    expect_usage_error("--normtype batchnorm", "--normtype batchnorm: expected layernorm or rmsnorm");
    expect_usage_error("--mlp relu", "--mlp relu: expected gelu or swiglu");
    expect_usage_error("--pos alibi", "--pos alibi: expected learned or rope");
    expect_usage_error("--dropout 1", "--dropout 1: expected a number in [0, 1)");
    expect_usage_error("--pos rope --dim 6 --heads 2", "--pos rope needs an even head size");
    /* Without dropout the options change the model but train all the same. */
    assert_int_equal(run("--steps 6 --normtype rmsnorm " TINY, out, sizeof out), 0);
#undef LLAMA
}

/* The run's life: --version; Ctrl-C during a --save run leaves a checkpoint
 * that resumes to the same weights as an unbroken run; --save-every and
 * --save-best write as they go; --eval-only reports the resumed model's
 * loss; --log continues across a resume; --seed may not change on resume. */
static void test_run_life(void **s)
{
    (void)s;
    char out[16384], cmd[1024];
    assert_int_equal(run("--version", out, sizeof out), 0);
    assert_non_null(strstr(out, "train_gpt (tapegrad " TG_VERSION ")"));

    assert_int_equal(run("--steps 30000 --save whole.st " TINY, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "cd '%s' && exec '%s' --steps 30000 --save cut.st --log cut.csv " TINY
             " > cut.txt 2>&1 & sleep 1; kill -INT $!; wait $!", dir, exe);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 130);
    tg_st_file *f = tu_st_open("cut.st");
    long long step;
    assert_true(tg_parse_int(tg_safetensors_meta(f, "step"), 1, 29999, &step));
    tg_safetensors_close(f);
    assert_int_equal(run("--resume cut.st --save resumed.st --log cut.csv", out, sizeof out), 0);
    expect_same_tensors("whole.st", "resumed.st");
    /* The log: one header, every step once, seconds never going back. */
    snprintf(cmd, sizeof cmd, "%s/cut.csv", dir);
    FILE *fp = fopen(cmd, "r");
    assert_non_null(fp);
    char line[256];
    long rows = 0, last = 0, k;
    double secs = 0, t;
    assert_non_null(fgets(line, sizeof line, fp));
    assert_string_equal(line, "step,loss,val_loss,lr,grad_norm,seconds\n");
    while (fgets(line, sizeof line, fp)) {
        char *c = strrchr(line, ',');
        assert_int_equal(sscanf(line, "%ld,", &k), 1);
        assert_int_equal(k, last + 1);
        t = strtod(c + 1, NULL);
        assert_true(t >= secs);
        last = k, secs = t, rows++;
    }
    fclose(fp);
    assert_int_equal(rows, 30000);

    assert_int_equal(run("--steps 40 --save every.st --save-every 15 --save-best --eval-every 10 " TINY, out,
                         sizeof out), 0);
    assert_non_null(strstr(out, "checkpoint written to every.st (step 15)"));
    assert_non_null(strstr(out, "checkpoint written to every.st (step 30)"));
    assert_non_null(strstr(out, "checkpoint written to every.st (step 40)"));
    f = tu_st_open("every.st.best");
    float best;
    assert_true(tg_parse_float(tg_safetensors_meta(f, "best_val"), 0, 100, &best));
    tg_safetensors_close(f);
    double v[4];
    const char *at = out;
    for (int i = 0; i < 4; i++) {
        at = strstr(at, "held-out loss ");
        assert_non_null(at);
        v[i] = strtod(at += 14, NULL);
    }
    double lowest = fmin(fmin(v[0], v[1]), fmin(v[2], v[3]));
    assert_true(fabs(best - lowest) < 1e-4);

    make_text();
    assert_int_equal(run("--data text.txt --ctx 16 --steps 20 --eval-full --eval-every 20 --sample 0 --save t.st "
                         TINY, out, sizeof out), 0);
    const char *final = strstr(out, "step 20: val loss ");
    assert_non_null(final);
    double trained = strtod(final + 18, NULL);
    assert_int_equal(run("--data text.txt --resume t.st --eval-only --eval-full", out, sizeof out), 0);
    final = strstr(out, "step 20: val loss ");
    assert_non_null(final);
    assert_true(fabs(strtod(final + 18, NULL) - trained) < 1e-4);
    assert_null(strstr(out, "step 21"));
    expect_usage_error("--eval-only", "--eval-only needs --resume FILE");
    expect_usage_error("--save-every 5", "--save-every and --save-best need --save FILE");
    expect_usage_error("--resume every.st --seed 7", "it was trained with --seed 1337; drop the flag");
}

/* Whole files, byte for byte. */
static void expect_same_bytes(const char *a, const char *b)
{
    static char ba[1 << 22], bb[1 << 22];
    const char *names[2] = {a, b};
    char *bufs[2] = {ba, bb};
    size_t n[2];
    for (int i = 0; i < 2; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        n[i] = fread(bufs[i], 1, sizeof ba, fp);
        assert_true(n[i] > 0 && n[i] < sizeof ba);
        fclose(fp);
    }
    if (n[0] != n[1] || memcmp(ba, bb, n[0]))
        fail_msg("%s and %s differ", a, b);
}

/* The kernels cut their work by shape, never by thread count, so 1, 2 and 3
 * threads write the same checkpoint. The models are big enough that every
 * kernel splits its work into several chunks. */
static void test_thread_counts_identical(void **s)
{
    (void)s;
    char out[16384], args[512], name[32];
    make_text();
    for (int t = 1; t <= 3; t++) {
        snprintf(args, sizeof args, "--steps 4 --batch 48 --threads %d --save sort%d.st", t, t);
        assert_int_equal(run(args, out, sizeof out), 0);
        snprintf(name, sizeof name, "%d threads", t);
        assert_non_null(strstr(out, name)); /* the run line says what runs */
        snprintf(args, sizeof args,
                 "--data text.txt --ctx 32 --dim 64 --heads 4 --layers 2 --batch 24 --steps 4 --eval-every 2 "
                 "--eval-iters 2 --sample 0 --threads %d --save text%d.st",
                 t, t);
        assert_int_equal(run(args, out, sizeof out), 0);
    }
    for (int t = 2; t <= 3; t++) {
        snprintf(args, sizeof args, "sort%d.st", t);
        expect_same_bytes("sort1.st", args);
        snprintf(args, sizeof args, "text%d.st", t);
        expect_same_bytes("text1.st", args);
    }
    /* Stopped at 1 thread, resumed at 3: the same as the unbroken runs. */
    assert_int_equal(run("--data text.txt --ctx 32 --dim 64 --heads 4 --layers 2 --batch 24 --steps 4 --eval-every 2 "
                         "--eval-iters 2 --sample 0 --threads 1 --stop-after 2 --save half.st",
                         out, sizeof out),
                     0);
    assert_int_equal(run("--data text.txt --resume half.st --sample 0 --threads 3 --save resumed3.st", out, sizeof out), 0);
    expect_same_tensors("text1.st", "resumed3.st");
    /* --threads wins over the environment; too many is a usage error. */
    assert_int_equal(setenv("TG_NUM_THREADS", "3", 1), 0);
    assert_int_equal(run("--steps 1 --threads 2 " "--layers 1 --dim 16 --heads 2 --batch 8", out, sizeof out), 0);
    assert_non_null(strstr(out, "2 threads"));
    assert_int_equal(run("--steps 1 --layers 1 --dim 16 --heads 2 --batch 8", out, sizeof out), 0);
    assert_non_null(strstr(out, "3 threads"));
    unsetenv("TG_NUM_THREADS");
    expect_usage_error("--threads 100000", "--threads must be at most 256");
}

static void corrupt_copy(const char *from, const char *to, long keep, long flip_at)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, from);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    if (keep >= 0 && (size_t)keep < n)
        n = (size_t)keep;
    if (flip_at >= 0)
        buf[flip_at] ^= 0x5a;
    tu_write_file(to, buf, n);
}

static void test_bad_checkpoints(void **s)
{
    (void)s;
    char out[16384];
    assert_int_equal(run("--steps 3 --save good.st " TINY, out, sizeof out), 0);
    corrupt_copy("good.st", "short.st", 5, -1);
    expect_usage_error("--resume short.st", "short.st");
    corrupt_copy("good.st", "trunc.st", 3000, -1);
    expect_usage_error("--resume trunc.st", "trunc.st");
    corrupt_copy("good.st", "json.st", -1, 9);
    expect_usage_error("--resume json.st", "json.st");
    expect_usage_error("--resume good.st --dim 32", "it was trained with --dim 16");
    expect_usage_error("--resume good.st --norm post", "it was trained with --norm pre");
    make_text();
    expect_usage_error("--resume good.st --data text.txt", "it is for the sort task");
    tu_write_file("notckpt.st", "\x02\0\0\0\0\0\0\0{}", 10);
    expect_usage_error("--resume notckpt.st", "notckpt.st: no metadata 'vocab'");
}

/* Every key train_gpt writes, for tu_st_rewrite. */
static const char *const ckpt_keys[] = {"format", "vocab", "ctx", "layers", "heads", "dim", "norm", "residual_scale",
                                        "optim_steps", "batch", "steps", "lr", "min_lr", "warmup", "weight_decay",
                                        "beta2", "clip", "seed", "bias", "step", "rng", "task", "chars"};

/* from -> to with the edits applied one after the other. */
static void craft(const char *from, const char *to, const tu_edit *edits, int n)
{
    char src[300], dst[300];
    snprintf(src, sizeof src, "%s/%s", dir, from);
    for (int i = 0; i < n; i++) {
        snprintf(dst, sizeof dst, "%s/%s", dir, to);
        tu_st_rewrite(src, dst, ckpt_keys, sizeof ckpt_keys / sizeof *ckpt_keys, edits[i]);
        snprintf(src, sizeof src, "%s", dst);
    }
}

static void expect_crafted(const char *from, tu_edit e, const char *message)
{
    craft(from, "crafted.st", &e, 1);
    expect_usage_error("--resume crafted.st", message);
}

/* A value in a checkpoint is checked as strictly as the same flag, with the
 * key named; the file's numbers must fit the task; values that are not
 * finite are refused. Each case is a real checkpoint with one thing
 * rewritten, so every other check passes. */
static void test_crafted_checkpoints(void **s)
{
    (void)s;
    char out[16384];
    assert_int_equal(run("--steps 4 --stop-after 2 --save sort.st " TINY, out, sizeof out), 0);
    expect_crafted("sort.st", (tu_edit){.key = "lr", .value = "nan"},
                   "metadata 'lr' is 'nan', expected a number in (0, 1e+30] (as for --lr)");
    expect_crafted("sort.st", (tu_edit){.key = "beta2", .value = "1"}, "metadata 'beta2' is '1', expected a number in [0, 1)");
    expect_crafted("sort.st", (tu_edit){.key = "batch", .value = "2.5"}, "metadata 'batch' is '2.5', expected an integer");
    expect_crafted("sort.st", (tu_edit){.key = "warmup", .value = "-3"}, "metadata 'warmup' is '-3'");
    expect_crafted("sort.st", (tu_edit){.key = "steps", .value = "99999999999999999999"}, "metadata 'steps' is '99999999999999999999'");
    expect_crafted("sort.st", (tu_edit){.key = "seed", .value = "1e300"}, "metadata 'seed' is '1e300'");
    expect_crafted("sort.st", (tu_edit){.key = "clip", .value = "-inf"}, "metadata 'clip' is '-inf'");
    expect_crafted("sort.st", (tu_edit){.key = "layers", .value = "1e300"}, "metadata 'layers' is '1e300'");
    expect_crafted("sort.st", (tu_edit){.key = "min_lr", .value = "1"}, "--min-lr 1 must not exceed --lr 0.003");
    expect_crafted("sort.st", (tu_edit){.key = "step", .value = "5"}, "metadata 'step' is '5', expected an integer from 0 to 4");
    expect_crafted("sort.st", (tu_edit){.key = "rng", .value = "00000000000000000000000000000000"}, "metadata 'rng'");
    expect_crafted("sort.st", (tu_edit){.key = "bias", .value = "2"}, "metadata 'bias' is '2', expected 0 or 1");
    expect_crafted("sort.st", (tu_edit){.key = "optim_steps", .value = "-1"}, "metadata 'optim_steps' is '-1'");
    expect_crafted("sort.st", (tu_edit){.key = "format", .value = NULL}, "not a train_gpt checkpoint");
    expect_crafted("sort.st", (tu_edit){.key = "task", .value = "poetry"}, "it is for the poetry task");
    /* A seed above 2^53 survives exactly: resuming writes it back. */
    tu_edit big_seed = {.key = "seed", .value = "18446744073709551615"};
    craft("sort.st", "seed.st", &big_seed, 1);
    assert_int_equal(run("--resume seed.st --save seed2.st --threads 2", out, sizeof out), 0);
    tg_st_file *f = tu_st_open("seed2.st");
    assert_string_equal(tg_safetensors_meta(f, "seed"), "18446744073709551615");
    tg_safetensors_close(f);

    /* Non-finite values, with the tensor named. */
    expect_crafted("sort.st", (tu_edit){.tensor = "transformer.h.0.mlp.c_fc.weight", .poke = true, .index = 5, .number = NAN},
                   "tensor 'transformer.h.0.mlp.c_fc.weight' holds nan at index 5");
    expect_crafted("sort.st", (tu_edit){.tensor = "optim.v.transformer.ln_f.weight", .poke = true, .index = 0, .number = -1},
                   "tensor 'optim.v.transformer.ln_f.weight' holds -1 at index 0");
    expect_crafted("sort.st", (tu_edit){.tensor = "optim.m.transformer.wte.weight", .poke = true, .index = 3, .number = INFINITY},
                   "tensor 'optim.m.transformer.wte.weight' holds inf at index 3");
    /* A tensor that disagrees with the configuration. */
    expect_crafted("sort.st", (tu_edit){.tensor = "transformer.h.0.attn.c_proj.weight", .rows = 8},
                   "tensor 'transformer.h.0.attn.c_proj.weight' is F32 [8,16], the configuration needs F32 [16,16]");

    /* A sort checkpoint whose ctx is not the sort sequence length, with every
     * tensor made to agree: the task check catches it. */
    const tu_edit ctx16[] = {{.key = "ctx", .value = "16"},
                             {.tensor = "transformer.wpe.weight", .rows = 16},
                             {.tensor = "optim.m.transformer.wpe.weight", .rows = 16},
                             {.tensor = "optim.v.transformer.wpe.weight", .rows = 16}};
    craft("sort.st", "ctx16.st", ctx16, 4);
    expect_usage_error("--resume ctx16.st", "ctx 16: --ctx applies to --data and --train-bin only");

    /* Text: a vocabulary that does not match the data, a ctx the validation
     * split cannot hold, a corrupt vocabulary string. */
    make_text();
    assert_int_equal(run("--data text.txt --ctx 16 --steps 4 --stop-after 2 --sample 0 --save text.st " TINY, out,
                         sizeof out), 0);
    tu_write_file("other.txt", "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH\n0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH\n"
               "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH\n0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH\n", 180);
    expect_usage_error("--data other.txt --resume text.st", "its vocabulary differs from the characters of the data file");
    tu_write_file("short.txt", "the quick brown fox jumps over the lazy dog\nTHE END.\n", 53);
    expect_usage_error("--data short.txt --resume text.st", "--ctx 16 is longer than the text allows");
    craft("text.st", "chars.st", &(tu_edit){.key = "chars", .value = "32,10"}, 1);
    expect_usage_error("--data text.txt --resume chars.st", "metadata 'chars': '32,10' is not a byte vocabulary");
    expect_usage_error("--resume text.st", "it is for the text task, this run is for the sort task");
}

/* Training that turns non-finite stops with exit 1 naming the step, and the
 * checkpoint already on disk is left as it was. */
static void test_divergence_keeps_checkpoint(void **s)
{
    (void)s;
    char out[16384], path[300];
    assert_int_equal(run("--steps 3 --save keep.st " TINY, out, sizeof out), 0);
    snprintf(path, sizeof path, "%s/keep.st", dir);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static char before[1 << 20], after[1 << 20];
    size_t n = fread(before, 1, sizeof before, fp);
    fclose(fp);
    int rc = run("--steps 5 --lr 1e30 --weight-decay 0 --clip 0 --save keep.st " TINY, out, sizeof out);
    if (rc != 1 || !strstr(out, "not finite") || !strstr(out, "step ") || !strstr(out, "nothing was saved"))
        fail_msg("exit %d, output:\n%s", rc, out);
    fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fread(after, 1, sizeof after, fp), n);
    fclose(fp);
    assert_memory_equal(before, after, n);
}

/* --save targets are checked before any training; a write leaves no
 * temporary file behind. */
static void test_save_targets(void **s)
{
    (void)s;
    char out[4096], cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/adir' && mkfifo '%s/fifo.st'", dir, dir);
    assert_int_equal(system(cmd), 0);
    expect_usage_error("--save adir " TINY, "--save adir: it exists and is not a regular file (a directory)");
    expect_usage_error("--save fifo.st " TINY, "--save fifo.st: it exists and is not a regular file (a FIFO)");
    expect_usage_error("--save /dev/null " TINY, "not a regular file (a device)");
    expect_usage_error("--save no_dir/x.st " TINY, "--save no_dir/x.st: cannot write in the directory no_dir/");
    expect_usage_error("--dump-grads adir " TINY, "--dump-grads adir: it exists and is not a regular file");
    expect_usage_error("--resume fifo.st", "not a regular file");
    assert_int_equal(run("--steps 2 --save t.st " TINY, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q 'tmp-'", dir);
    assert_int_not_equal(system(cmd), 0);
}

/* Little-endian uint16 tokens, with llm.c's header when llmc. */
static void write_tokens(const char *name, const int *tok, int n, bool llmc)
{
    size_t head = llmc ? 1024 : 0, len = head + 2 * (size_t)n;
    unsigned char *b = calloc(len, 1);
    assert_non_null(b);
    if (llmc) {
        const unsigned v[3] = {20240520u, 1u, (unsigned)n};
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 4; k++)
                b[4 * i + k] = (unsigned char)(v[i] >> (8 * k));
    }
    for (int i = 0; i < n; i++) {
        b[head + 2 * i] = (unsigned char)(tok[i] & 0xff);
        b[head + 2 * i + 1] = (unsigned char)(tok[i] >> 8);
    }
    tu_write_file(name, (const char *)b, len);
    free(b);
}

/* --train-bin / --val-bin: llm.c files (vocabulary from the tokens or
 * --vocab) and raw uint16 with --vocab; resume is exact on them too. */
static void test_token_files(void **s)
{
    (void)s;
    char out[16384];
    enum { N = 3000, V = 500 };
    static int tok[N];
    make_text();
    for (int i = 0; i < N; i++)
        tok[i] = (i * 7 + i / 13) % 97 + (i % 5 == 0 ? 400 : 0);
    write_tokens("train.bin", tok, N, true);
    write_tokens("val.bin", tok + 100, 400, true);
    assert_int_equal(run("--train-bin train.bin --val-bin val.bin --ctx 16 --steps 6 --sample 5 --save tok.st " TINY,
                         out, sizeof out), 0);
    assert_non_null(strstr(out, "vocabulary 497")); /* largest token 496, + 1 */
    assert_non_null(strstr(out, "sample (5 tokens"));
    assert_int_equal(run("--train-bin train.bin --val-bin val.bin --ctx 16 --vocab 512 --steps 6 --sample 0 --save full.st " TINY,
                         out, sizeof out), 0);
    assert_non_null(strstr(out, "vocabulary 512"));
    assert_int_equal(run("--train-bin train.bin --val-bin val.bin --ctx 16 --vocab 512 --steps 6 --stop-after 3 --save part.st " TINY,
                         out, sizeof out), 0);
    assert_int_equal(run("--train-bin train.bin --val-bin val.bin --resume part.st --sample 0 --save resumed.st --threads 2",
                         out, sizeof out), 0);
    expect_same_tensors("full.st", "resumed.st");
    expect_usage_error("--train-bin train.bin --val-bin val.bin --resume part.st --vocab 600", "it was trained with --vocab 512");
    expect_usage_error("--data text.txt --resume part.st", "it is for the tokens task, this run is for --data");

    /* Raw uint16 needs --vocab; a token at or above it is named by position. */
    write_tokens("raw_train.bin", tok, N, false);
    write_tokens("raw_val.bin", tok, 400, false);
    expect_usage_error("--train-bin raw_train.bin --val-bin raw_val.bin", "no llm.c header; a raw uint16 (nanoGPT) token file needs --vocab N");
    assert_int_equal(run("--train-bin raw_train.bin --val-bin raw_val.bin --vocab 500 --ctx 16 --steps 2 --sample 0 " TINY,
                         out, sizeof out), 0);
    expect_usage_error("--train-bin raw_train.bin --val-bin raw_val.bin --vocab 400 --ctx 16",
                       "--train-bin ");
    expect_usage_error("--train-bin raw_train.bin --val-bin raw_val.bin --vocab 400 --ctx 16",
                       "raw_train.bin: token 400 at position 0 is not below the vocabulary size 400");
    expect_usage_error("--train-bin train.bin --val-bin val.bin --vocab 450 --ctx 16",
                       "train.bin: token 470 at position 10 is not below the vocabulary size 450");

    /* Bad headers, a short split, missing partners, binary given as text. */
    corrupt_copy("train.bin", "trunc.bin", 1000, -1);
    expect_usage_error("--train-bin trunc.bin --val-bin val.bin", "too short for llm.c's 1024-byte header");
    corrupt_copy("train.bin", "trunc.bin", 1124, -1);
    expect_usage_error("--train-bin trunc.bin --val-bin val.bin",
                       "trunc.bin: the header says 3000 tokens (6000 bytes after it), the file has 100 bytes after it");
    write_tokens("few.bin", tok, 10, true);
    expect_usage_error("--train-bin train.bin --val-bin few.bin --ctx 16", "--ctx 16 is longer than the token files allow");
    expect_usage_error("--train-bin train.bin", "--train-bin and --val-bin go together");
    expect_usage_error("--data text.txt --train-bin train.bin --val-bin val.bin", "give one");
    expect_usage_error("--vocab 5", "--vocab applies to --train-bin only");
    expect_usage_error("--data train.bin", "is not text: a NUL byte at offset");
    expect_usage_error("--data train.bin", "for a pre-tokenized file use --train-bin and --val-bin");
}

static void test_dump_grads(void **s)
{
    (void)s;
    char out[4096];
    assert_int_equal(run("--dump-grads dump.st " TINY, out, sizeof out), 0);
    tg_st_file *f = tu_st_open("dump.st");
    const tg_st_tensor *loss = tg_safetensors_find(f, "loss");
    const tg_st_tensor *g = tg_safetensors_find(f, "grad.transformer.h.0.mlp.c_fc.weight");
    assert_non_null(loss);
    assert_non_null(g);
    assert_non_null(tg_safetensors_find(f, "batch.ids"));
    assert_non_null(tg_safetensors_find(f, "transformer.wte.weight"));
    assert_string_equal(tg_safetensors_meta(f, "dim"), "16");
    float l = *(const float *)loss->data;
    assert_true(l > 1.0f && l < 4.0f); /* near ln(11) = 2.4 at initialisation */
    double norm = 0;
    for (size_t i = 0; i < tg_shape_size(g->ndim, g->shape); i++)
        norm += (double)((const float *)g->data)[i] * ((const float *)g->data)[i];
    assert_true(norm > 0);
    tg_safetensors_close(f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_train_gpt PATH_TO_train_gpt\n");
        return 2;
    }
    exe = argv[1];
    if (!(dir = tu_tmp_dir_make("tg_train_gpt_"))) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_flags),      cmocka_unit_test(test_sort_task),
        cmocka_unit_test(test_text_and_log),   cmocka_unit_test(test_eval_full),
        cmocka_unit_test(test_resume_is_exact), cmocka_unit_test(test_thread_counts_identical),
        cmocka_unit_test(test_bad_checkpoints), cmocka_unit_test(test_dump_grads),
        cmocka_unit_test(test_block_variants),  cmocka_unit_test(test_crafted_checkpoints),
        cmocka_unit_test(test_divergence_keeps_checkpoint), cmocka_unit_test(test_save_targets),
        cmocka_unit_test(test_token_files),     cmocka_unit_test(test_llama_options),
        cmocka_unit_test(test_run_life),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (tu_tmp_dir_remove() != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
