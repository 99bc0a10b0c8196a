/* Library checkpoints (tg_gpt_save, tg_checkpoint_*): a bit-exact round trip
 * of model, optimizer and metadata, and a reader that refuses every missing,
 * truncated, corrupt or crafted file with a message naming what is wrong:
 * numbers out of range or not numbers, shapes that disagree with the
 * configuration, values that are not finite. Also the strict number parsers
 * the reader and train_gpt's flags share. */
#include "test_util.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[512];


/* Every key a test checkpoint holds, for tu_st_rewrite. */
static const char *const keys[] = {"vocab", "ctx", "layers", "heads", "dim", "norm", "residual_scale",
                                   "optim_steps", "seed", "note"};
enum { N_KEYS = sizeof keys / sizeof keys[0] };

static const tg_gpt_config small = {.vocab = 11, .ctx = 8, .layers = 2, .heads = 2, .dim = 8, .norm = TG_PRE_LN};

/* A model and an AdamW that has taken three steps on random gradients, so
 * every moment is non-zero. */
static tg_gpt *trained(const tg_gpt_config *cfg, tg_adamw **opt)
{
    tg_gpt *m = tg_gpt_new(cfg, 7, err, sizeof err);
    assert_non_null(m);
    *opt = tg_adamw_new(m->params, m->n_params, 0.9f, 0.99f, 1e-8f, 0.1f);
    assert_non_null(*opt);
    tg_rng r;
    tg_rng_seed(&r, 3);
    for (int s = 0; s < 3; s++) {
        tg_zero_grad(m->params, m->n_params);
        for (int i = 0; i < m->n_params; i++) {
            tg_tensor *p = m->params[i];
            if (!p->grad)
                p->grad = calloc(p->size, sizeof *p->grad);
            for (size_t j = 0; j < p->size; j++)
                p->grad[j] = tg_rng_normal(&r);
        }
        tg_adamw_step(*opt, 1e-2f);
    }
    return m;
}

static void save_good(const char *name, const tg_gpt_config *cfg, bool with_opt)
{
    tg_adamw *opt;
    tg_gpt *m = trained(cfg, &opt);
    const char *k[] = {"seed", "note"}, *v[] = {"18446744073709551615", "hello"};
    if (tg_gpt_save(tu_tmp_path(name), m, with_opt ? opt : NULL, k, v, 2, err, sizeof err) != TG_OK)
        fail_msg("%s", err);
    tg_adamw_free(opt);
    tg_gpt_free(m);
}

static void expect_open_fails(const char *name, const char *message)
{
    err[0] = '\0';
    tg_checkpoint *c = tg_checkpoint_open(tu_tmp_path(name), err, sizeof err);
    if (c || !strstr(err, message) || !strstr(err, name))
        fail_msg("%s: opened %s, message '%s' (expected '%s')", name, c ? "fine" : "not", err, message);
}

static void test_round_trip(void **s)
{
    (void)s;
    const tg_norm_place norms[] = {TG_PRE_LN, TG_DEEPNORM, TG_REZERO, TG_POST_LN};
    for (int k = 0; k < 4; k++) {
        tg_gpt_config cfg = small;
        cfg.norm = norms[k];
        if (k == 3) /* the LLaMA-style options */
            cfg.normtype = TG_RMSNORM, cfg.mlp = TG_MLP_SWIGLU, cfg.pos = TG_POS_ROPE, cfg.dropout = 0.1f;
        tg_adamw *opt;
        tg_gpt *m = trained(&cfg, &opt);
        const char *mk[] = {"seed", "note"}, *mv[] = {"9007199254740993", "a \"quoted\" note"};
        const char *path = tu_tmp_path("rt.st");
        assert_int_equal(tg_gpt_save(path, m, opt, mk, mv, 2, err, sizeof err), TG_OK);

        tg_checkpoint *c = tg_checkpoint_open(path, err, sizeof err);
        if (!c)
            fail_msg("%s", err);
        const tg_gpt_config *got = tg_checkpoint_config(c);
        assert_int_equal(got->vocab, 11);
        assert_int_equal(got->ctx, 8);
        assert_int_equal(got->layers, 2);
        assert_int_equal(got->heads, 2);
        assert_int_equal(got->dim, 8);
        assert_int_equal(got->norm, norms[k]);
        assert_int_equal(got->normtype, cfg.normtype);
        assert_int_equal(got->mlp, cfg.mlp);
        assert_int_equal(got->pos, cfg.pos);
        assert_true(got->dropout == cfg.dropout);
        assert_true(got->residual_scale == m->cfg.residual_scale);
        assert_true(tg_checkpoint_has_optimizer(c));
        assert_string_equal(tg_checkpoint_meta(c, "note"), "a \"quoted\" note");
        uint64_t seed;
        assert_int_equal(tg_checkpoint_meta_u64(c, "seed", &seed, err, sizeof err), TG_OK);
        assert_true(seed == 9007199254740993ull); /* 2^53 + 1: no trip through a double */

        tg_gpt *m2 = tg_checkpoint_model(c, err, sizeof err);
        assert_non_null(m2);
        assert_true(m2->cfg.residual_scale == m->cfg.residual_scale);
        tg_adamw *opt2 = tg_adamw_new(m2->params, m2->n_params, 0.9f, 0.99f, 1e-8f, 0.1f);
        assert_int_equal(tg_checkpoint_optimizer(c, m2, opt2, err, sizeof err), TG_OK);
        assert_int_equal(tg_adamw_steps(opt2), 3);
        assert_int_equal(m2->n_params, m->n_params);
        for (int i = 0; i < m->n_params; i++) {
            size_t bytes = m->params[i]->size * sizeof(float);
            assert_string_equal(m2->params[i]->name, m->params[i]->name);
            assert_memory_equal(m2->params[i]->data, m->params[i]->data, bytes);
            assert_memory_equal(tg_adamw_m(opt2, i), tg_adamw_m(opt, i), bytes);
            assert_memory_equal(tg_adamw_v(opt2, i), tg_adamw_v(opt, i), bytes);
        }
        /* The optimizer of another model is refused. */
        assert_int_equal(tg_checkpoint_optimizer(c, m2, opt, err, sizeof err), TG_ERR_ARG);
        tg_checkpoint_close(c);

        tg_gpt *m3 = tg_gpt_load(path, err, sizeof err);
        assert_non_null(m3);
        for (int i = 0; i < m->n_params; i++)
            assert_memory_equal(m3->params[i]->data, m->params[i]->data, m->params[i]->size * sizeof(float));
        tg_gpt_free(m3);
        tg_adamw_free(opt2);
        tg_gpt_free(m2);
        tg_adamw_free(opt);
        tg_gpt_free(m);
    }

    /* Without the optimizer: no moments in the file, and none to read. */
    save_good("model.st", &small, false);
    tg_checkpoint *c = tg_checkpoint_open(tu_tmp_path("model.st"), err, sizeof err);
    assert_non_null(c);
    assert_false(tg_checkpoint_has_optimizer(c));
    assert_null(tg_checkpoint_meta(c, "optim_steps"));
    tg_gpt *m = tg_checkpoint_model(c, err, sizeof err);
    tg_adamw *opt = tg_adamw_new(m->params, m->n_params, 0.9f, 0.99f, 1e-8f, 0.1f);
    assert_int_equal(tg_checkpoint_optimizer(c, m, opt, err, sizeof err), TG_ERR_ARG);
    assert_non_null(strstr(err, "no optimizer state"));
    tg_adamw_free(opt);
    tg_gpt_free(m);
    tg_checkpoint_close(c);
}

static void copy_prefix(const char *from, const char *to, long keep, long flip_at)
{
    FILE *fp = fopen(tu_tmp_path(from), "rb");
    assert_non_null(fp);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    if (keep >= 0 && (size_t)keep < n)
        n = (size_t)keep;
    if (flip_at >= 0)
        buf[flip_at] = '!';
    fp = fopen(tu_tmp_path(to), "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, n, fp), n);
    fclose(fp);
}

static void test_bad_files(void **s)
{
    (void)s;
    expect_open_fails("missing.st", "No such file");
    assert_int_equal(mkdir(tu_tmp_path("adir.st"), 0700), 0);
    expect_open_fails("adir.st", "not a regular file");
    save_good("good.st", &small, true);
    copy_prefix("good.st", "trunc.st", 3000, -1);
    expect_open_fails("trunc.st", "truncated");
    copy_prefix("good.st", "json.st", -1, 8);
    expect_open_fails("json.st", "JSON");
}

static void rewrite(const char *to, tu_edit e)
{
    tu_st_rewrite(tu_tmp_path("good.st"), tu_tmp_path(to), keys, N_KEYS, e);
}

static void test_bad_metadata(void **s)
{
    (void)s;
    save_good("good.st", &small, true);
    const char *bad_layers[] = {"1e300", "nan", "-3", "2.5", "99999999999999999999", "", " 2", "2 ", "+2", "0x2",
                                "0", "4097"};
    for (size_t i = 0; i < sizeof bad_layers / sizeof *bad_layers; i++) {
        rewrite("meta.st", (tu_edit){.key = "layers", .value = bad_layers[i]});
        char want[128];
        snprintf(want, sizeof want, "metadata 'layers' is '%s', expected an integer from 1 to 4096", bad_layers[i]);
        expect_open_fails("meta.st", want);
    }
    rewrite("meta.st", (tu_edit){.key = "dim", .value = NULL});
    expect_open_fails("meta.st", "no metadata 'dim'");
    rewrite("meta.st", (tu_edit){.key = "norm", .value = "sideways"});
    expect_open_fails("meta.st", "metadata 'norm' is 'sideways'");
    rewrite("meta.st", (tu_edit){.key = "residual_scale", .value = "inf"});
    expect_open_fails("meta.st", "metadata 'residual_scale' is 'inf'");
    rewrite("meta.st", (tu_edit){.key = "heads", .value = "3"});
    expect_open_fails("meta.st", "heads must divide dim");
    rewrite("meta.st", (tu_edit){.key = "normtype", .value = "batchnorm"});
    expect_open_fails("meta.st", "metadata 'normtype' is 'batchnorm', expected layernorm or rmsnorm");
    rewrite("meta.st", (tu_edit){.key = "mlp", .value = "relu"});
    expect_open_fails("meta.st", "metadata 'mlp' is 'relu', expected gelu or swiglu");
    rewrite("meta.st", (tu_edit){.key = "pos", .value = "alibi"});
    expect_open_fails("meta.st", "metadata 'pos' is 'alibi', expected learned or rope");
    rewrite("meta.st", (tu_edit){.key = "dropout", .value = "1"});
    expect_open_fails("meta.st", "metadata 'dropout' is '1'");
    rewrite("meta.st", (tu_edit){.key = "dropout", .value = "nan"});
    expect_open_fails("meta.st", "metadata 'dropout' is 'nan'");
    /* A LayerNorm model's file that claims RMSNorm has bias tensors no
     * RMSNorm model has. */
    rewrite("meta.st", (tu_edit){.key = "normtype", .value = "rmsnorm"});
    expect_open_fails("meta.st", "ln_1.bias");
    rewrite("meta.st", (tu_edit){.key = "optim_steps", .value = "-1"});
    expect_open_fails("meta.st", "metadata 'optim_steps' is '-1'");

    /* A configuration that disagrees with the tensors: one layer fewer
     * leaves block 1's tensors unexplained; a larger vocabulary needs a
     * larger embedding. */
    rewrite("meta.st", (tu_edit){.key = "layers", .value = "1"});
    expect_open_fails("meta.st", "is not part of a model of layers 1");
    rewrite("meta.st", (tu_edit){.key = "vocab", .value = "12"});
    expect_open_fails("meta.st", "tensor 'transformer.wte.weight' is F32 [11,8], the configuration needs F32 [12,8]");
    rewrite("meta.st", (tu_edit){.key = "layers", .value = "4096"});
    expect_open_fails("meta.st", "no tensor 'transformer.h.2.ln_1.weight' (a model of layers 4096");

    /* The typed getters: the key and the value in every message. */
    rewrite("meta.st", (tu_edit){.key = "seed", .value = "18446744073709551616"});
    tg_checkpoint *c = tg_checkpoint_open(tu_tmp_path("meta.st"), err, sizeof err);
    assert_non_null(c);
    uint64_t u = 5;
    assert_int_equal(tg_checkpoint_meta_u64(c, "seed", &u, err, sizeof err), TG_ERR_FORMAT);
    assert_non_null(strstr(err, "metadata 'seed' is '18446744073709551616'"));
    assert_true(u == 5);
    long long v;
    assert_int_equal(tg_checkpoint_meta_int(c, "note", 0, 9, &v, err, sizeof err), TG_ERR_FORMAT);
    assert_non_null(strstr(err, "'note' is 'hello'"));
    assert_int_equal(tg_checkpoint_meta_int(c, "absent", 0, 9, &v, err, sizeof err), TG_ERR_FORMAT);
    assert_non_null(strstr(err, "no metadata 'absent'"));
    float f;
    assert_int_equal(tg_checkpoint_meta_float(c, "dim", 0.0, 4.0, &f, err, sizeof err), TG_ERR_FORMAT);
    assert_non_null(strstr(err, "'dim' is '8', expected a finite number from 0 to 4"));
    assert_int_equal(tg_checkpoint_meta_float(c, "dim", 0.0, 8.0, &f, err, sizeof err), TG_OK);
    assert_true(f == 8.0f);
    tg_checkpoint_close(c);
}

static void test_bad_tensors(void **s)
{
    (void)s;
    save_good("good.st", &small, true);
    rewrite("shape.st", (tu_edit){.tensor = "transformer.h.1.mlp.c_fc.weight", .rows = 31});
    expect_open_fails("shape.st", "tensor 'transformer.h.1.mlp.c_fc.weight' is F32 [31,8], the configuration needs F32 [32,8]");
    rewrite("drop.st", (tu_edit){.tensor = "optim.v.transformer.ln_f.bias", .drop = true});
    expect_open_fails("drop.st", "optim.v.transformer.ln_f.bias");
    rewrite("drop.st", (tu_edit){.tensor = "transformer.wpe.weight", .drop = true});
    expect_open_fails("drop.st", "no tensor 'transformer.wpe.weight'");

    /* Values that are not finite: found with the tensor's name and index. */
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
        rewrite("nan.st", (tu_edit){.tensor = "transformer.h.0.attn.c_attn.weight", .poke = true, .index = 17,
                                    .number = bad[k]});
        tg_checkpoint *c = tg_checkpoint_open(tu_tmp_path("nan.st"), err, sizeof err);
        assert_non_null(c); /* the structure is fine: the values are checked as they are read */
        assert_null(tg_checkpoint_model(c, err, sizeof err));
        assert_non_null(strstr(err, "tensor 'transformer.h.0.attn.c_attn.weight' holds"));
        assert_non_null(strstr(err, "at index 17"));
        tg_checkpoint_close(c);
        assert_null(tg_gpt_load(tu_tmp_path("nan.st"), err, sizeof err));
    }
    const char *moments[] = {"optim.m.transformer.wte.weight", "optim.v.transformer.h.1.ln_2.bias"};
    const float values[] = {NAN, -1.0f};
    for (int k = 0; k < 2; k++) {
        rewrite("mom.st", (tu_edit){.tensor = moments[k], .poke = true, .index = 3, .number = values[k]});
        tg_checkpoint *c = tg_checkpoint_open(tu_tmp_path("mom.st"), err, sizeof err);
        assert_non_null(c);
        tg_gpt *m = tg_checkpoint_model(c, err, sizeof err);
        assert_non_null(m);
        tg_adamw *opt = tg_adamw_new(m->params, m->n_params, 0.9f, 0.99f, 1e-8f, 0.1f);
        assert_int_equal(tg_checkpoint_optimizer(c, m, opt, err, sizeof err), TG_ERR_FORMAT);
        assert_non_null(strstr(err, moments[k]));
        assert_non_null(strstr(err, "at index 3"));
        for (int i = 0; i < m->n_params; i++) /* left unchanged */
            for (size_t j = 0; j < m->params[i]->size; j++)
                assert_true(tg_adamw_m(opt, i)[j] == 0.0f && tg_adamw_v(opt, i)[j] == 0.0f);
        assert_int_equal(tg_adamw_steps(opt), 0);
        tg_adamw_free(opt);
        tg_gpt_free(m);
        tg_checkpoint_close(c);
    }
}

/* tg_gpt_save never writes a value that is not finite, and leaves the file
 * that was there alone. */
static void test_save_refuses_nan(void **s)
{
    (void)s;
    save_good("keep.st", &small, true);
    tg_adamw *opt;
    tg_gpt *m = trained(&small, &opt);
    tg_adamw_v(opt, 5)[2] = INFINITY;
    assert_int_equal(tg_gpt_save(tu_tmp_path("keep.st"), m, opt, NULL, NULL, 0, err, sizeof err), TG_ERR_ARG);
    assert_non_null(strstr(err, "optim.v.transformer.h.0.attn.c_attn.bias[2] is inf"));
    tg_adamw_v(opt, 5)[2] = 0.0f;
    m->params[1]->data[0] = NAN;
    assert_int_equal(tg_gpt_save(tu_tmp_path("keep.st"), m, NULL, NULL, NULL, 0, err, sizeof err), TG_ERR_ARG);
    assert_non_null(strstr(err, "transformer.wpe.weight[0] is nan"));
    tg_checkpoint *c = tg_checkpoint_open(tu_tmp_path("keep.st"), err, sizeof err);
    assert_non_null(c); /* still the good file */
    tg_checkpoint_close(c);

    /* A caller's key may not shadow the library's. */
    m->params[1]->data[0] = 0.0f;
    const char *k[] = {"layers"}, *v[] = {"9"};
    assert_int_equal(tg_gpt_save(tu_tmp_path("dup.st"), m, opt, k, v, 1, err, sizeof err), TG_ERR_ARG);
    assert_non_null(strstr(err, "duplicate metadata key \"layers\""));
    tg_adamw_free(opt);
    tg_gpt_free(m);
}

static void test_null_arguments(void **s)
{
    (void)s;
    tg_adamw *opt;
    tg_gpt *m = trained(&small, &opt);
    assert_int_equal(tg_gpt_save(NULL, m, opt, NULL, NULL, 0, err, sizeof err), TG_ERR_ARG);
    assert_int_equal(tg_gpt_save(tu_tmp_path("x.st"), NULL, NULL, NULL, NULL, 0, err, sizeof err), TG_ERR_ARG);
    assert_int_equal(tg_gpt_save(tu_tmp_path("x.st"), m, opt, NULL, NULL, 1, err, sizeof err), TG_ERR_ARG);
    assert_int_equal(tg_gpt_save(tu_tmp_path("x.st"), m, opt, NULL, NULL, 0, NULL, 0), TG_OK);
    assert_null(tg_checkpoint_open(NULL, err, sizeof err));
    assert_null(tg_checkpoint_open(NULL, NULL, 0));
    assert_null(tg_checkpoint_config(NULL));
    assert_null(tg_checkpoint_meta(NULL, "x"));
    assert_false(tg_checkpoint_has_optimizer(NULL));
    assert_null(tg_checkpoint_model(NULL, err, sizeof err));
    assert_int_equal(tg_checkpoint_optimizer(NULL, m, opt, err, sizeof err), TG_ERR_ARG);
    long long v;
    assert_int_equal(tg_checkpoint_meta_int(NULL, "x", 0, 1, &v, err, sizeof err), TG_ERR_ARG);
    tg_checkpoint *c = tg_checkpoint_open(tu_tmp_path("x.st"), err, sizeof err);
    assert_non_null(c);
    assert_null(tg_checkpoint_meta(c, NULL));
    assert_int_equal(tg_checkpoint_meta_int(c, NULL, 0, 1, &v, err, sizeof err), TG_ERR_ARG);
    assert_int_equal(tg_checkpoint_meta_int(c, "dim", 0, 100, NULL, err, sizeof err), TG_ERR_ARG);
    assert_int_equal(tg_checkpoint_meta_u64(c, "dim", NULL, err, sizeof err), TG_ERR_ARG);
    assert_int_equal(tg_checkpoint_meta_float(c, "dim", 0, 1, NULL, err, sizeof err), TG_ERR_ARG);
    assert_int_equal(tg_checkpoint_optimizer(c, NULL, opt, err, sizeof err), TG_ERR_ARG);
    tg_checkpoint_close(c);
    tg_checkpoint_close(NULL);
    tg_adamw_free(opt);
    tg_gpt_free(m);
}

static void test_parse_numbers(void **s)
{
    (void)s;
    long long i = 42;
    assert_true(tg_parse_int("-17", -20, 20, &i) && i == -17);
    assert_true(tg_parse_int("9223372036854775807", 0, LLONG_MAX, &i) && i == LLONG_MAX);
    const char *not_int[] = {"", "-", "1.0", "1e3", "0x10", " 1", "1 ", "+1", "9223372036854775808", "21", "abc"};
    for (size_t k = 0; k < sizeof not_int / sizeof *not_int; k++) {
        i = 42;
        if (tg_parse_int(not_int[k], -20, 20, &i) || i != 42)
            fail_msg("tg_parse_int accepted '%s'", not_int[k]);
    }
    uint64_t u = 0;
    assert_true(tg_parse_u64("18446744073709551615", &u) && u == UINT64_MAX);
    assert_true(tg_parse_u64("9007199254740993", &u) && u == 9007199254740993ull);
    assert_false(tg_parse_u64("18446744073709551616", &u));
    assert_false(tg_parse_u64("-1", &u));
    assert_false(tg_parse_u64("1e3", &u));
    float f = 0;
    assert_true(tg_parse_float("1e-3", 0, 1, &f) && f == 1e-3f);
    assert_true(tg_parse_float(".5", 0, 1, &f) && f == 0.5f);
    assert_true(tg_parse_float("0.100000001", 0, 1, &f) && f == 0.1f); /* %.9g round-trips */
    const char *not_float[] = {"nan", "inf", "-inf", "1e300", "0x1p3", "", " 1", "1,0", "2", "-0.5", "+0.5"};
    for (size_t k = 0; k < sizeof not_float / sizeof *not_float; k++) {
        f = 7;
        if (tg_parse_float(not_float[k], -0.25, 1, &f) || f != 7)
            fail_msg("tg_parse_float accepted '%s'", not_float[k]);
    }
    assert_false(tg_parse_float("1e39", 0, 1e300, &f)); /* finite double, not a float */
    assert_false(tg_parse_int(NULL, 0, 1, &i));
    assert_false(tg_parse_float("1", 0, 1, NULL));
}

/* tg_gpt_config_param lists what tg_gpt_new builds, in every variant. */
static void test_config_params(void **s)
{
    (void)s;
    for (int norm = TG_PRE_LN; norm <= TG_REZERO; norm++) {
        tg_gpt_config cfg = small;
        cfg.norm = (tg_norm_place)norm;
        tg_gpt *m = tg_gpt_new(&cfg, 1, err, sizeof err);
        assert_non_null(m);
        assert_int_equal(tg_gpt_config_params(&cfg), m->n_params);
        for (int i = 0; i < m->n_params; i++) {
            char name[64];
            int ndim, shape[TG_MAX_DIMS];
            assert_true(tg_gpt_config_param(&cfg, i, name, sizeof name, &ndim, shape));
            assert_string_equal(name, m->params[i]->name);
            assert_int_equal(ndim, m->params[i]->ndim);
            for (int d = 0; d < ndim; d++)
                assert_int_equal(shape[d], m->params[i]->shape[d]);
        }
        assert_false(tg_gpt_config_param(&cfg, m->n_params, (char[8]){0}, 8, &(int){0}, (int[4]){0}));
        static const char *const names[] = {"pre", "post", "deepnorm", "rezero"};
        assert_string_equal(tg_norm_name(cfg.norm), names[norm]);
        tg_norm_place back;
        assert_true(tg_norm_parse(tg_norm_name(cfg.norm), &back) && back == cfg.norm);
        tg_gpt_free(m);
    }
    tg_gpt_config huge = small;
    huge.layers = TG_GPT_MAX_LAYERS + 1;
    assert_int_equal(tg_gpt_config_check(&huge, err, sizeof err), TG_ERR_ARG);
    assert_int_equal(tg_gpt_config_params(&huge), -1);
    assert_null(tg_gpt_new(&huge, 1, err, sizeof err));
    assert_null(tg_norm_name((tg_norm_place)9));
    assert_false(tg_norm_parse("Pre", &(tg_norm_place){0}));
}

int main(void)
{
    const char *dir = tu_tmp_dir_make("tg_ckpt_");
    if (!dir) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),      cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bad_metadata),    cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_save_refuses_nan), cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_parse_numbers),   cmocka_unit_test(test_config_params),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (tu_tmp_dir_remove() != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
