/* Running as one of N ranks under mpirun: the same global batch as one
 * process, split by rows; gradients summed with one collective a step; output
 * from rank 0 only; a failure anywhere stops every rank with one message. */
#include "train_gpt.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int dist_begin(dist_state *ds, int *argc, char ***argv)
{
    char err[256];
    *ds = (dist_state){.saved_stderr = -1};
    if (tg_dist_init(argc, argv, err, sizeof err) != TG_OK) {
        fprintf(stderr, "train_gpt: %s\n", err);
        return 1;
    }
    ds->rank = tg_dist_rank();
    ds->size = tg_dist_size();
    if (ds->rank == 0)
        return 0;
    /* Every rank checks the flags and files; rank 0 speaks for all, and the
     * others' messages wait in a file in case only they failed. */
    if (!freopen("/dev/null", "w", stdout) || !(ds->held = tmpfile())) {
        fprintf(stderr, "train_gpt: rank %d: cannot redirect its output\n", ds->rank);
        return 1;
    }
    fflush(stderr);
    ds->saved_stderr = dup(STDERR_FILENO);
    if (ds->saved_stderr < 0 || dup2(fileno(ds->held), STDERR_FILENO) < 0) {
        fprintf(stderr, "train_gpt: rank %d: cannot hold its error output\n", ds->rank);
        return 1;
    }
    return 0;
}

const char *dist_check_options(const dist_state *ds, const options *o)
{
    static char msg[160];
    if (ds->size == 1)
        return NULL;
    if (o->batch % ds->size) {
        snprintf(msg, sizeof msg, "--batch %d must be divisible by the number of ranks (%d): it is the global batch",
                 o->batch, ds->size);
        return msg;
    }
    if (o->dump_grads)
        return "--dump-grads runs in one process, not under mpirun";
    /* Every rank would draw its masks from the same stream for different
     * rows: not the masks one process draws, and correlated across ranks. */
    if (o->dropout > 0)
        return "--dropout runs in one process, not under mpirun (the ranks would share one mask stream)";
    return NULL;
}

bool dist_prepare(dist_state *ds, const tg_gpt *m)
{
    /* Extra floats: this rank's weighted loss and whether its step failed. */
    return ds->size == 1 || (ds->grads = tg_dist_grads_new(m->params, m->n_params, 2)) != NULL;
}

int dist_setup_done(dist_state *ds, int rc)
{
    char msg[1024] = "";
    if (ds->saved_stderr >= 0) {
        fflush(stderr);
        dup2(ds->saved_stderr, STDERR_FILENO);
        close(ds->saved_stderr);
        ds->saved_stderr = -1;
        rewind(ds->held);
        size_t n = fread(msg, 1, sizeof msg - 1, ds->held);
        msg[n] = '\0';
        fclose(ds->held);
        ds->held = NULL;
    }
    /* --help is -1 on every rank: no failure, nothing more to do. */
    return tg_dist_agree(rc, msg);
}

/* Both tasks score the same number of targets in every row (the sort task
 * its last SORT_LEN positions, text every position), so each rank's weight
 * is 1/N and the weighted sum is the mean over the global batch. Counting
 * keeps it the exact mean should a task ever score rows unevenly. */
void dist_slice(const dist_state *ds, const int *targets, int batch, int ctx, int *first, int *rows, float *weight)
{
    *rows = batch / ds->size;
    *first = *rows * ds->rank;
    *weight = 1.0f;
    if (ds->size == 1)
        return;
    long mine = 0, all = 0;
    for (long i = 0; i < (long)batch * ctx; i++) {
        bool scored = targets[i] >= 0;
        all += scored;
        mine += scored && i / ctx >= *first && i / ctx < *first + *rows;
    }
    *weight = all ? (float)((double)mine / (double)all) : 0.0f;
}

bool dist_sum_grads(dist_state *ds, float weight, float *loss, const char *failure)
{
    char msg[600];
    if (failure)
        snprintf(msg, sizeof msg, "\ntrain_gpt: %s\n", failure);
    if (ds->size == 1) {
        if (failure)
            fputs(msg, stderr);
        return !failure;
    }
    float *extra = tg_dist_grads_extra(ds->grads);
    extra[0] = failure ? 0.0f : weight * *loss;
    extra[1] = failure ? 1.0f : 0.0f;
    tg_status st = tg_dist_grads_sum(ds->grads, weight);
    ds->sum_seconds += tg_dist_grads_seconds(ds->grads);
    if (st != TG_OK) {
        fprintf(stderr, "\ntrain_gpt: rank %d: MPI_Allreduce of the gradients failed\n", ds->rank);
        return false;
    }
    if (extra[1] > 0.0f) {
        tg_dist_agree(failure ? 1 : 0, failure ? msg : NULL);
        return false;
    }
    *loss = extra[0];
    return true;
}

void dist_progress_note(const dist_state *ds, double elapsed, char *buf, size_t len)
{
    if (ds->size == 1 || elapsed <= 0.0)
        *buf = '\0';
    else
        snprintf(buf, len, "  allreduce %.0f%%", 100.0 * ds->sum_seconds / elapsed);
}

bool dist_check_same(const dist_state *ds, const tg_gpt *m)
{
    bool same = true;
    if (ds->size == 1)
        return true;
    if (tg_dist_check_same(m->params, m->n_params, &same) != TG_OK || !same) {
        if (ds->rank == 0)
            fprintf(stderr, "train_gpt: the ranks' parameters %s\n",
                    same ? "could not be compared (MPI failed)" : "differ; nothing was saved");
        return false;
    }
    return true;
}

int dist_end(dist_state *ds, int rc)
{
    /* Rank 0 printed its own failures (saving, reporting) already. */
    if (ds->size > 1)
        rc = tg_dist_agree(rc, NULL);
    tg_dist_grads_free(ds->grads);
    ds->grads = NULL;
    tg_dist_finalize();
    return rc;
}
