/* The library's thread pool, and the one knob for it (and for OpenBLAS's).
 *
 * A kernel cuts its work into chunks whose boundaries come from the data's
 * shape alone, and tg_parallel_for hands the chunks out one at a time to
 * whichever thread asks next, the calling thread included. Two things follow.
 * No thread waits for another at a barrier except for the last chunk in
 * flight: a thread that lost its core to another process holds up one chunk,
 * not a whole static share, and a worker that has not woken yet is simply not
 * needed. And each chunk computes the same thing whichever thread runs it and
 * however many threads there are, so results are bit-identical for any thread
 * count (reductions across chunks are added in chunk order by their callers).
 *
 * Idle workers spin for a short while (so the many small parallel loops of a
 * training step follow each other without a sleep and wake-up in between),
 * then sleep on a condition variable, so they never take a busy machine's
 * cores for long. OpenMP's runtimes spin for much longer by default and read
 * their settings once, before any of our code runs, which is why the library
 * has its own pool. OMP_WAIT_POLICY=active or passive is still honoured:
 * long or no spinning.
 *
 * The pool's state is one 64-bit word, the job's generation in the high half
 * and the next unclaimed chunk in the low half, so a claim is one
 * compare-and-swap that also proves the job it claims from is still current.
 * Jobs alternate between two slots: the slot of generation g is rewritten for
 * g + 2 only after every chunk of g and g + 1 is done, so a worker holding a
 * claimed chunk of g reads a stable slot. */
#include "tapegrad_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#ifdef TG_HAVE_BLAS
#include <cblas.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* How long an idle worker spins before it sleeps, by default and under
 * OMP_WAIT_POLICY=active; passive means not at all. */
#define SPIN_NS_DEFAULT 50000L
#define SPIN_NS_ACTIVE 200000000L

typedef struct job_slot {
    tg_chunk_fn fn;
    void *ctx;
    atomic_long n, done;
} job_slot;

static struct pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t *workers;
    int threads; /* the caller plus threads - 1 workers; 0 until first use */
    long spin_ns;
    uint32_t gen; /* the last generation published (the caller's view) */
    atomic_uint_least64_t state;
    atomic_int sleepers;
    atomic_bool quit;
    atomic_flag busy; /* a caller is running a job */
    job_slot slots[2];
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .busy = ATOMIC_FLAG_INIT};

/* Set while a thread runs a chunk: a parallel loop inside one runs inline. */
static _Thread_local bool in_chunk;

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Claims and runs chunks of generation g until none are left. */
static void work(uint32_t g)
{
    job_slot *s = &pool.slots[g & 1];
    uint64_t v = atomic_load(&pool.state);
    for (;;) {
        if ((uint32_t)(v >> 32) != g || (long)(uint32_t)v >= atomic_load_explicit(&s->n, memory_order_relaxed))
            return;
        if (!atomic_compare_exchange_weak(&pool.state, &v, v + 1))
            continue;
        in_chunk = true;
        s->fn(s->ctx, (long)(uint32_t)v);
        in_chunk = false;
        atomic_fetch_add_explicit(&s->done, 1, memory_order_release);
        v = atomic_load(&pool.state);
    }
}

/* Waits for a generation other than seen (spinning, then asleep); returns it,
 * or seen when the pool is shutting down. */
static uint32_t next_gen(uint32_t seen)
{
    long deadline = now_ns() + pool.spin_ns;
    for (int i = 0;; i++) {
        uint32_t g = (uint32_t)(atomic_load(&pool.state) >> 32);
        if (g != seen || atomic_load(&pool.quit))
            return g;
        if ((i & 63) == 63 && now_ns() > deadline)
            break;
        cpu_relax();
    }
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add(&pool.sleepers, 1);
    uint32_t g;
    while ((g = (uint32_t)(atomic_load(&pool.state) >> 32)) == seen && !atomic_load(&pool.quit))
        pthread_cond_wait(&pool.wake, &pool.lock);
    atomic_fetch_sub(&pool.sleepers, 1);
    pthread_mutex_unlock(&pool.lock);
    return g;
}

static void *worker_main(void *arg)
{
    uint32_t seen = (uint32_t)(uintptr_t)arg;
    for (;;) {
        seen = next_gen(seen);
        if (atomic_load(&pool.quit)) {
            tg_gemm_thread_exit();
            return NULL;
        }
        work(seen);
    }
}

static void stop_workers(void)
{
    atomic_store(&pool.quit, true);
    pthread_mutex_lock(&pool.lock);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < pool.threads - 1; i++)
        pthread_join(pool.workers[i], NULL);
    free(pool.workers);
    pool.workers = NULL;
    atomic_store(&pool.quit, false);
}

/* A positive count from the environment variable name, or 0. */
static int env_threads(const char *name)
{
    const char *s = getenv(name);
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    return s && end != s && *end == '\0' && v >= 1 && v <= TG_MAX_THREADS ? (int)v : 0;
}

static int default_threads(void)
{
    int n = env_threads("TG_NUM_THREADS");
    if (!n)
        n = env_threads("OMP_NUM_THREADS");
    if (!n) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores < 1 ? 1 : cores > TG_MAX_THREADS ? TG_MAX_THREADS : (int)cores;
    }
    return n;
}

static long spin_ns(void)
{
    const char *p = getenv("OMP_WAIT_POLICY");
    if (p && !strcasecmp(p, "active"))
        return SPIN_NS_ACTIVE;
    if (p && !strcasecmp(p, "passive"))
        return 0;
    return SPIN_NS_DEFAULT;
}

/* Starts n - 1 workers. When threads cannot be had, fewer run (at least the
 * caller), which changes the speed and never the results. */
static void start_workers(int n)
{
    pool.spin_ns = spin_ns();
    pool.workers = n > 1 ? malloc((size_t)(n - 1) * sizeof *pool.workers) : NULL;
    int started = 0;
    while (pool.workers && started < n - 1 &&
           pthread_create(&pool.workers[started], NULL, worker_main, (void *)(uintptr_t)pool.gen) == 0)
        started++;
    pool.threads = started + 1;
}

int tg_set_threads(int n)
{
    if (n < 0 || n > TG_MAX_THREADS)
        return -1;
    if (!n)
        n = default_threads();
    if (n != pool.threads) {
        if (pool.threads)
            stop_workers();
        start_workers(n);
    }
#ifdef TG_HAVE_BLAS
    openblas_set_num_threads(pool.threads);
#endif
    return pool.threads;
}

int tg_get_threads(void)
{
    return pool.threads ? pool.threads : tg_set_threads(0);
}

void tg_parallel_for(long n, tg_chunk_fn fn, void *ctx)
{
    if (n < 1)
        return;
    /* Inline: one chunk, nested in a chunk, one thread, or the pool busy
     * with another calling thread's job. */
    if (n == 1 || in_chunk || tg_get_threads() == 1 || n > UINT32_MAX || atomic_flag_test_and_set(&pool.busy)) {
        for (long i = 0; i < n; i++)
            fn(ctx, i);
        return;
    }
    uint32_t g = ++pool.gen;
    job_slot *s = &pool.slots[g & 1];
    s->fn = fn;
    s->ctx = ctx;
    atomic_store(&s->n, n);
    atomic_store(&s->done, 0);
    atomic_store(&pool.state, (uint64_t)g << 32);
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
    work(g);
    /* The last chunks run on other threads; if one of them lost its core,
     * yield ours rather than spin against it. */
    for (int i = 0; atomic_load_explicit(&s->done, memory_order_acquire) < n; i++) {
        if (i < 4096)
            cpu_relax();
        else
            sched_yield();
    }
    atomic_flag_clear(&pool.busy);
}
