/* plot_log: train_gpt's --log CSV as an SVG of training and validation loss
 * against step.
 *
 *   plot_log LOG.csv OUT.svg [--title TEXT] [--log-y]
 *
 * The CSV is read strictly: the header train_gpt writes, then rows of
 * step,loss,val_loss,lr,grad_norm,seconds with val_loss empty on steps
 * without an evaluation. A malformed row is an error naming its line (exit
 * 2), so a plot never silently drops data. The SVG is written to a temporary
 * file and renamed, so a failed run leaves no half plot. */
#include "tapegrad.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HEADER "step,loss,val_loss,lr,grad_norm,seconds"

typedef struct series {
    double *x, *y;
    int n, cap;
} series;

static bool push(series *s, double x, double y)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 256;
        double *nx = realloc(s->x, (size_t)cap * sizeof *nx);
        if (nx)
            s->x = nx;
        double *ny = nx ? realloc(s->y, (size_t)cap * sizeof *ny) : NULL;
        if (!ny)
            return false;
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n++] = y;
    return true;
}

/* A finite number filling the whole field [s, end); false otherwise. */
static bool number(const char *s, const char *end, double *v)
{
    char *stop;
    if (s == end)
        return false;
    errno = 0;
    *v = strtod(s, &stop);
    return stop == end && !errno && isfinite(*v);
}

/* One data row into the two series; a message in why on failure. */
static bool parse_row(char *line, series *train, series *val, const char **why)
{
    char *field[6], *p = line;
    int k = 0;
    for (;;) {
        if (k == 6)
            return *why = "expected 6 comma-separated fields", false;
        field[k++] = p;
        if (!(p = strchr(p, ',')))
            break;
        *p++ = '\0';
    }
    double step, loss, v;
    if (k != 6)
        return *why = "expected 6 comma-separated fields", false;
    if (!number(field[0], field[0] + strlen(field[0]), &step) || step < 0 || step != floor(step))
        return *why = "step is not a non-negative integer", false;
    if (!number(field[1], field[1] + strlen(field[1]), &loss))
        return *why = "loss is not a finite number", false;
    if (!push(train, step, loss))
        return *why = "out of memory", false;
    if (!*field[2])
        return true;
    if (!number(field[2], field[2] + strlen(field[2]), &v))
        return *why = "val_loss is neither empty nor a finite number", false;
    if (!push(val, step, v))
        return *why = "out of memory", false;
    return true;
}

static int read_log(const char *path, series *train, series *val)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "plot_log: cannot open %s: %s\n", path, strerror(errno));
        return 2;
    }
    char line[512];
    const char *why = NULL;
    long no = 0;
    while (!why && fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        no++;
        if (len && line[len - 1] == '\n')
            line[--len] = '\0';
        else if (!feof(f))
            why = "line too long";
        if (len && line[len - 1] == '\r')
            line[--len] = '\0';
        if (why)
            break;
        if (no == 1) {
            if (strcmp(line, HEADER))
                why = "not a train_gpt log (header is not " HEADER ")";
        } else {
            parse_row(line, train, val, &why);
        }
    }
    bool read_error = ferror(f);
    fclose(f);
    if (why || read_error) {
        fprintf(stderr, "plot_log: %s: line %ld: %s\n", path, no, why ? why : "read error");
        return 2;
    }
    if (!train->n) {
        fprintf(stderr, "plot_log: %s: no data rows\n", path);
        return 2;
    }
    return 0;
}

static int write_plot(const char *path, const char *title, bool log_y, const series *train, const series *val)
{
    tg_svg_series se[2] = {{"training loss", train->x, train->y, train->n, false, 0},
                           {"validation loss", val->x, val->y, val->n, false, 1}};
    tg_svg_plot p = {title, "step", "loss", false, log_y, se, val->n ? 2 : 1};
    size_t len = strlen(path) + 5;
    char *tmp = malloc(len);
    if (!tmp) {
        fprintf(stderr, "plot_log: out of memory\n");
        return 1;
    }
    snprintf(tmp, len, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    bool ok = f && tg_svg_write(f, &p) == TG_OK;
    ok = f && !fclose(f) && ok && !rename(tmp, path);
    if (!ok) {
        fprintf(stderr, "plot_log: cannot write %s: %s\n", path, strerror(errno));
        remove(tmp);
    }
    free(tmp);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *title = "training run";
    bool log_y = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: plot_log LOG.csv OUT.svg [--title TEXT] [--log-y]\n"
                   "Plots training and validation loss against step from train_gpt's --log CSV.\n");
            return 0;
        }
        if (!strcmp(argv[i], "--log-y"))
            log_y = true;
        else if (!strcmp(argv[i], "--title") && i + 1 < argc)
            title = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "plot_log: unknown flag or missing value '%s' (try --help)\n", argv[i]);
            return 2;
        } else if (!in)
            in = argv[i];
        else if (!out)
            out = argv[i];
        else {
            fprintf(stderr, "plot_log: one LOG.csv and one OUT.svg expected, got '%s' too\n", argv[i]);
            return 2;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "plot_log: usage: plot_log LOG.csv OUT.svg [--title TEXT] [--log-y]\n");
        return 2;
    }
    series train = {0}, val = {0};
    int rc = read_log(in, &train, &val);
    if (!rc)
        rc = write_plot(out, title, log_y, &train, &val);
    if (!rc)
        printf("wrote %s (%d training points, %d validation points)\n", out, train.n, val.n);
    free(train.x);
    free(train.y);
    free(val.x);
    free(val.y);
    return rc;
}
