/* Helpers shared by the cmocka tests. */
#ifndef TG_TEST_UTIL_H
#define TG_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tapegrad.h"

/* A parameter filled from N(0, std), seeded per call site. */
tg_tensor *tu_param(tg_rng *r, const int *shape, int ndim, float std);
#define TU_SHAPE(...) ((const int[]){__VA_ARGS__}), (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int))

/* Runs tg_gradcheck with the four-point stencil and fails the test, naming
 * the worst element, when the relative error exceeds tol. */
void tu_gradcheck(const char *what, tg_loss_fn fn, void *ctx, tg_tensor *const *wrt, int n, double tol);

/* Loads a fixture written by tests/fixtures/make_fixtures.py: a text file of
 * whitespace-separated floats. Returns a malloc'd array and its length, or
 * fails the test when the file is missing. */
float *tu_fixture(const char *name, size_t *n);

/* A scratch directory for one test program: tu_tmp_dir_make creates it
 * under $TMPDIR, else /tmp (prefix + random letters) and returns its path,
 * NULL on failure; tu_tmp_path gives dir/name (four results stay valid at a
 * time); tu_tmp_dir_remove deletes it with everything in it, 0 on success. */
const char *tu_tmp_dir_make(const char *prefix);
const char *tu_tmp_path(const char *name);
int tu_tmp_dir_remove(void);

/* Runs the shell command cmd inside the scratch directory and puts its
 * output in out (at most len - 1 bytes, terminated): stdout and stderr, or
 * with stderr_only stderr alone (stdout discarded). The output passes
 * through the file tu_run.txt there. Returns the exit status; fails the
 * test when the command did not exit normally. */
int tu_run(const char *cmd, bool stderr_only, char *out, size_t len);

/* The safetensors file name in the scratch directory, opened; fails the
 * test with the reader's message when it cannot be read. */
tg_st_file *tu_st_open(const char *name);

/* Writes len bytes to the file name in the scratch directory. */
void tu_write_file(const char *name, const void *data, size_t len);

/* Largest |a - b| over n elements. */
double tu_max_abs_diff(const float *a, const float *b, size_t n);

/* One change for tu_st_rewrite: set metadata key to value (value NULL:
 * drop the key), and/or change tensor: data[index] = number when poke, its
 * first dimension to rows when rows > 0 (data cut or padded with zeros),
 * or drop it. */
typedef struct tu_edit {
    const char *key, *value;
    const char *tensor;
    bool poke, drop;
    size_t index;
    float number;
    int rows;
} tu_edit;

/* Copies the safetensors file src to dst with the edit applied. The reader
 * cannot list metadata keys, so keys[0..n_keys) names those to carry over
 * (absent ones are skipped). Fails the test when src cannot be read. */
void tu_st_rewrite(const char *src, const char *dst, const char *const *keys, int n_keys, tu_edit e);

#endif
