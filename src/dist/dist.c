/* Data-parallel training over MPI: the job (init, rank, size), agreeing on
 * failure, and the one gradient sum a step makes.
 *
 * Built without MPI (Meson option mpi disabled or Open MPI not found), or run
 * without a launcher, the process is rank 0 of 1 and every collective below is
 * the identity, so programs call the same functions either way.
 *
 * MPI_Init runs only when a launcher started us: Open MPI's singleton start
 * spawns a daemon and costs over a second here, which a plain run should not
 * pay. */
#include "tapegrad_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef TG_HAVE_MPI
#include <mpi.h>
#endif

static int dist_rank = 0, dist_size = 1;
static bool dist_mpi = false; /* we called MPI_Init and owe an MPI_Finalize */

#ifdef TG_HAVE_MPI
/* Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE; MPICH's Hydra and Slurm's PMI
 * set PMI_SIZE; PMIx launchers set PMIX_RANK. */
static bool launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}
#endif

bool tg_dist_enabled(void)
{
#ifdef TG_HAVE_MPI
    return true;
#else
    return false;
#endif
}

tg_status tg_dist_init(int *argc, char ***argv, char *err, size_t errlen)
{
#ifdef TG_HAVE_MPI
    if (dist_mpi || !launched())
        return TG_OK;
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        snprintf(err, errlen, "MPI_Init failed");
        return TG_ERR_IO;
    }
    dist_mpi = true;
    /* Errors come back as codes, so a failed collective is reported, not
     * aborted in the middle of a line. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &dist_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &dist_size);
#else
    (void)argc;
    (void)argv;
#endif
    (void)err;
    (void)errlen;
    return TG_OK;
}

void tg_dist_finalize(void)
{
#ifdef TG_HAVE_MPI
    if (dist_mpi)
        MPI_Finalize();
#endif
    dist_mpi = false;
    dist_rank = 0;
    dist_size = 1;
}

int tg_dist_rank(void)
{
    return dist_rank;
}

int tg_dist_size(void)
{
    return dist_size;
}

/* One MPI_Allreduce of [status, -rank if failed else -size] with MPI_MAX:
 * the worst status and the lowest failing rank in one round trip. */
int tg_dist_agree(int status, const char *message)
{
    int worst = status, first = status > 0 ? dist_rank : dist_size;
#ifdef TG_HAVE_MPI
    if (dist_size > 1) {
        int in[2] = {status, -first}, out[2];
        if (MPI_Allreduce(in, out, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS) {
            fprintf(stderr, "rank %d: MPI_Allreduce failed while the ranks compared their status\n", dist_rank);
            return status > 1 ? status : 1;
        }
        worst = out[0];
        first = -out[1];
    }
#endif
    if (first == dist_rank && message && *message) {
        fputs(message, stderr);
        fflush(stderr);
    }
    return worst;
}

tg_status tg_dist_sum(double *x, int n)
{
    if (!x || n < 0)
        return TG_ERR_ARG;
#ifdef TG_HAVE_MPI
    if (dist_size > 1 && MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        return TG_ERR_IO;
#endif
    return TG_OK;
}

/* FNV-1a over the bytes of every parameter's data. */
static uint64_t params_hash(tg_tensor *const *params, int n)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) {
        const unsigned char *b = (const unsigned char *)params[i]->data;
        for (size_t k = 0; k < params[i]->size * sizeof(float); k++)
            h = (h ^ b[k]) * 1099511628211ull;
    }
    return h;
}

tg_status tg_dist_check_same(tg_tensor *const *params, int n, bool *same)
{
    if (!params || n < 0 || !same)
        return TG_ERR_ARG;
    for (int i = 0; i < n; i++)
        if (!params[i] || !params[i]->data)
            return TG_ERR_ARG;
    *same = true;
#ifdef TG_HAVE_MPI
    if (dist_size > 1) {
        /* max(h) and max(~h) = ~min(h): equal hashes everywhere iff they meet. */
        uint64_t h = params_hash(params, n), in[2] = {h, ~h}, out[2];
        if (MPI_Allreduce(in, out, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS)
            return TG_ERR_IO;
        *same = out[0] == ~out[1];
    }
#else
    (void)params_hash;
#endif
    return TG_OK;
}

/* ---- the gradient buffer ---------------------------------------------------- */

struct tg_dist_grads {
    tg_tensor **params;
    int n, extra;
    size_t total;   /* gradient floats, then `extra` */
    float *buf;
    double seconds; /* the last sum, wall clock */
};

tg_dist_grads *tg_dist_grads_new(tg_tensor *const *params, int n, int extra)
{
    if (!params || n < 1 || extra < 0)
        return NULL;
    size_t total = (size_t)extra;
    for (int i = 0; i < n; i++) {
        if (!params[i] || !params[i]->grad)
            return NULL;
        total += params[i]->size;
    }
    if (total > (size_t)INT32_MAX) /* MPI counts are int */
        return NULL;
    tg_dist_grads *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->params = malloc((size_t)n * sizeof *g->params);
    g->buf = calloc(total ? total : 1, sizeof *g->buf);
    if (!g->params || !g->buf) {
        tg_dist_grads_free(g);
        return NULL;
    }
    memcpy(g->params, params, (size_t)n * sizeof *params);
    g->n = n;
    g->extra = extra;
    g->total = total;
    return g;
}

void tg_dist_grads_free(tg_dist_grads *g)
{
    if (!g)
        return;
    free(g->params);
    free(g->buf);
    free(g);
}

float *tg_dist_grads_extra(tg_dist_grads *g)
{
    return g ? g->buf + (g->total - (size_t)g->extra) : NULL;
}

double tg_dist_grads_seconds(const tg_dist_grads *g)
{
    return g ? g->seconds : 0.0;
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Packs weight * grad of every parameter into the one buffer, in the list's
 * order, then one MPI_Allreduce sums the buffers. Open MPI picks its reduction
 * tree from the message size and the number of ranks, never from arrival
 * times, so the sums do not depend on timing. With one rank the gradients are
 * only scaled. */
tg_status tg_dist_grads_sum(tg_dist_grads *g, float weight)
{
    if (!g)
        return TG_ERR_ARG;
    double t0 = wall();
    float *p = g->buf;
    for (int i = 0; i < g->n; i++) {
        const float *gr = g->params[i]->grad;
        for (size_t k = 0; k < g->params[i]->size; k++)
            p[k] = weight * gr[k];
        p += g->params[i]->size;
    }
    tg_status st = TG_OK;
#ifdef TG_HAVE_MPI
    if (dist_size > 1 &&
        MPI_Allreduce(MPI_IN_PLACE, g->buf, (int)g->total, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        st = TG_ERR_IO;
#endif
    p = g->buf;
    for (int i = 0; st == TG_OK && i < g->n; i++) {
        memcpy(g->params[i]->grad, p, g->params[i]->size * sizeof *p);
        p += g->params[i]->size;
    }
    g->seconds = wall() - t0;
    return st;
}
