/* Timing helpers for the benchmarks: best-of-N wall time. */
#ifndef TG_BENCH_UTIL_H
#define TG_BENCH_UTIL_H

#include <time.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs fn(ctx) until at least min_seconds have passed (and at least 3 times)
 * and returns the fastest single run in seconds. */
static inline double bench_best(void (*fn)(void *), void *ctx, double min_seconds)
{
    double best = 1e30, start = bench_now();
    fn(ctx); /* warm-up: caches, packing buffers, thread pools */
    for (int runs = 0; runs < 3 || bench_now() - start < min_seconds; runs++) {
        double t0 = bench_now();
        fn(ctx);
        double dt = bench_now() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

#endif
