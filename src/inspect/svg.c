/* The SVG plot writer. Ticks fall on 1, 2, 5 x 10^k on linear axes and on
 * decades (with 2 and 5 between when the range is short) on log axes; the
 * legend sits right of the plot so it never covers a line. */
#include "tapegrad_internal.h"

#include <math.h>
#include <string.h>

enum { WIDTH = 820, HEIGHT = 460, LEFT = 80, RIGHT = 610, TOP = 40, BOTTOM = 400, MAX_TICKS = 40 };

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                      "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f"};
#define N_COLORS ((int)(sizeof palette / sizeof palette[0]))

typedef struct axis {
    bool log;
    double lo, hi;            /* in axis units: log10 of the value on a log axis */
    double ticks[MAX_TICKS];  /* in axis units */
    int n_ticks;
} axis;

static bool usable(double v, bool log) { return isfinite(v) && (!log || v > 0); }
static double to_axis(double v, bool log) { return log ? log10(v) : v; }

static void escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

static void data_range(const tg_svg_plot *p, bool is_x, bool log, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int s = 0; s < p->n_series; s++)
        for (int i = 0; i < p->series[s].n; i++) {
            double x = p->series[s].x[i], y = p->series[s].y[i], v = is_x ? x : y;
            if (usable(x, p->log_x) && usable(y, p->log_y)) {
                *lo = fmin(*lo, to_axis(v, log));
                *hi = fmax(*hi, to_axis(v, log));
            }
        }
    if (!isfinite(*lo)) /* nothing to draw: any range will do */
        *lo = 0, *hi = 1;
    if (*hi - *lo < 1e-12 * fmax(1.0, fabs(*hi))) {
        double pad = fmax(fabs(*hi) * 0.1, log ? 0.5 : 1.0);
        *lo -= pad, *hi += pad;
    }
}

/* Linear ticks: the 1-2-5 step giving at most 8 intervals; the range widens
 * to whole steps. */
static void linear_ticks(axis *a)
{
    const double mult[] = {1, 2, 5, 10};
    double span = a->hi - a->lo, mag = pow(10.0, floor(log10(span / 5.0)));
    int i = 0;
    while (i < 3 && span / (mult[i] * mag) > 8)
        i++;
    double step = mult[i] * mag;
    a->lo = floor(a->lo / step + 1e-9) * step;
    a->hi = ceil(a->hi / step - 1e-9) * step;
    a->n_ticks = 0;
    for (double v = a->lo; v <= a->hi + step * 1e-6 && a->n_ticks < MAX_TICKS; v += step)
        a->ticks[a->n_ticks++] = fabs(v) < step * 1e-9 ? 0.0 : v;
}

/* Log ticks every decade (every few decades on a long axis), with 2x and 5x
 * between when the axis spans under 2 decades; the range widens to the
 * nearest ticks around the data. */
static void log_ticks(axis *a)
{
    const double sub[] = {1, 2, 5};
    bool fine = a->hi - a->lo < 2.0;
    double first = floor(a->lo), decades = ceil(a->hi) - first;
    double every = fine ? 1.0 : fmax(1.0, ceil(decades / 10.0));
    double all[MAX_TICKS] = {0};
    int n = 0;
    for (double d = first; d <= a->hi + every && n < MAX_TICKS - 3; d += every)
        for (int k = 0; k < (fine ? 3 : 1); k++)
            all[n++] = d + log10(sub[k]);
    double lo = all[0], hi = all[n - 1];
    for (int i = 0; i < n; i++) {
        if (all[i] <= a->lo + 1e-9)
            lo = all[i];
        if (all[i] >= a->hi - 1e-9) {
            hi = all[i];
            break;
        }
    }
    a->lo = lo;
    a->hi = hi;
    a->n_ticks = 0;
    for (int i = 0; i < n; i++)
        if (all[i] >= lo - 1e-9 && all[i] <= hi + 1e-9)
            a->ticks[a->n_ticks++] = all[i];
}

static axis make_axis(const tg_svg_plot *p, bool is_x)
{
    axis a = {.log = is_x ? p->log_x : p->log_y};
    data_range(p, is_x, a.log, &a.lo, &a.hi);
    if (a.log)
        log_ticks(&a);
    else
        linear_ticks(&a);
    return a;
}

static double px(const axis *a, double v) { return LEFT + (to_axis(v, a->log) - a->lo) / (a->hi - a->lo) * (RIGHT - LEFT); }
static double py(const axis *a, double v) { return BOTTOM - (to_axis(v, a->log) - a->lo) / (a->hi - a->lo) * (BOTTOM - TOP); }

static void tick_label(char *buf, size_t len, const axis *a, double t)
{
    double v = a->log ? pow(10.0, t) : t;
    snprintf(buf, len, "%g", fabs(v) < 1e-300 ? 0.0 : v);
}

static void draw_axes(FILE *f, const tg_svg_plot *p, const axis *ax, const axis *ay)
{
    char buf[32];
    fprintf(f, "<rect x='%d' y='%d' width='%d' height='%d' fill='none' stroke='#333'/>\n", LEFT, TOP,
            RIGHT - LEFT, BOTTOM - TOP);
    for (int i = 0; i < ax->n_ticks; i++) {
        double x = LEFT + (ax->ticks[i] - ax->lo) / (ax->hi - ax->lo) * (RIGHT - LEFT);
        tick_label(buf, sizeof buf, ax, ax->ticks[i]);
        fprintf(f, "<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' stroke='#ddd'/>\n", x, TOP, x, BOTTOM);
        fprintf(f, "<text x='%.1f' y='%d' text-anchor='middle'>%s</text>\n", x, BOTTOM + 18, buf);
    }
    for (int i = 0; i < ay->n_ticks; i++) {
        double y = BOTTOM - (ay->ticks[i] - ay->lo) / (ay->hi - ay->lo) * (BOTTOM - TOP);
        tick_label(buf, sizeof buf, ay, ay->ticks[i]);
        fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#ddd'/>\n", LEFT, y, RIGHT, y);
        fprintf(f, "<text x='%d' y='%.1f' text-anchor='end'>%s</text>\n", LEFT - 6, y + 4, buf);
    }
    fprintf(f, "<text x='%d' y='%d' text-anchor='middle' font-size='15'>", (LEFT + RIGHT) / 2, TOP - 14);
    escape(f, p->title);
    fprintf(f, "</text>\n<text x='%d' y='%d' text-anchor='middle'>", (LEFT + RIGHT) / 2, BOTTOM + 42);
    escape(f, p->xlabel);
    fprintf(f, "</text>\n<text transform='translate(18 %d) rotate(-90)' text-anchor='middle'>", (TOP + BOTTOM) / 2);
    escape(f, p->ylabel);
    fputs("</text>\n", f);
}

static void draw_series(FILE *f, const tg_svg_plot *p, const axis *ax, const axis *ay, int s)
{
    const tg_svg_series *se = &p->series[s];
    const char *color = palette[(se->color >= 0 ? se->color : s) % N_COLORS];
    bool open = false;
    for (int i = 0; i < se->n; i++) {
        if (!usable(se->x[i], p->log_x) || !usable(se->y[i], p->log_y)) {
            if (open)
                fputs("'/>\n", f);
            open = false;
            continue;
        }
        if (!open)
            fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='2'%s points='", color,
                    se->dashed ? " stroke-dasharray='6 4'" : "");
        fprintf(f, "%s%.1f,%.1f", open ? " " : "", px(ax, se->x[i]), py(ay, se->y[i]));
        open = true;
    }
    if (open)
        fputs("'/>\n", f);
    for (int i = 0; se->n <= 40 && !se->dashed && i < se->n; i++) /* markers while they stay legible */
        if (usable(se->x[i], p->log_x) && usable(se->y[i], p->log_y))
            fprintf(f, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n", px(ax, se->x[i]), py(ay, se->y[i]), color);
}

static void draw_legend(FILE *f, const tg_svg_plot *p)
{
    for (int s = 0; s < p->n_series; s++) {
        const tg_svg_series *se = &p->series[s];
        int y = TOP + 10 + 22 * s;
        fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='%s' stroke-width='2'%s/>\n", RIGHT + 16, y,
                RIGHT + 46, y, palette[(se->color >= 0 ? se->color : s) % N_COLORS],
                se->dashed ? " stroke-dasharray='6 4'" : "");
        fprintf(f, "<text x='%d' y='%d'>", RIGHT + 52, y + 4);
        escape(f, se->label);
        fputs("</text>\n", f);
    }
}

tg_status tg_svg_write(FILE *f, const tg_svg_plot *p)
{
    if (!f || !p || p->n_series < 0 || (p->n_series && !p->series))
        return tg_error(NULL, 0, TG_ERR_ARG, "tg_svg_write: f, p and p->series must be non-NULL, n_series >= 0");
    for (int s = 0; s < p->n_series; s++)
        if (p->series[s].n < 0 || (p->series[s].n && (!p->series[s].x || !p->series[s].y)))
            return tg_error(NULL, 0, TG_ERR_ARG, "tg_svg_write: series %d has n %d or NULL x/y", s, p->series[s].n);
    axis ax = make_axis(p, true), ay = make_axis(p, false);
    fprintf(f, "<?xml version='1.0' encoding='UTF-8'?>\n"
               "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' viewBox='0 0 %d %d' "
               "font-family='sans-serif' font-size='12'>\n"
               "<rect width='100%%' height='100%%' fill='white'/>\n",
            WIDTH, HEIGHT, WIDTH, HEIGHT);
    draw_axes(f, p, &ax, &ay);
    for (int s = 0; s < p->n_series; s++)
        draw_series(f, p, &ax, &ay, s);
    draw_legend(f, p);
    fputs("</svg>\n", f);
    return ferror(f) ? tg_error(NULL, 0, TG_ERR_IO, "tg_svg_write: the stream reported a write error") : TG_OK;
}
