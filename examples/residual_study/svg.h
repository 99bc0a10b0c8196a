/* A small SVG line-plot writer: axes with ticks and labels, one polyline per
 * series, a legend, linear or log axes. */
#ifndef RESIDUAL_STUDY_SVG_H
#define RESIDUAL_STUDY_SVG_H

#include <stdbool.h>
#include <stdio.h>

typedef struct svg_series {
    const char *label;
    const double *x, *y;
    int n;
    bool dashed;   /* drawn dashed and without markers (references, a second style) */
    int color;     /* index into the palette; -1 picks by position */
} svg_series;

typedef struct svg_plot {
    const char *title, *xlabel, *ylabel;
    bool log_x, log_y;
    const svg_series *series;
    int n_series;
} svg_plot;

/* Writes the plot as a standalone SVG document. Points that are not finite,
 * or not positive on a log axis, break their line rather than bend it. */
void svg_write(FILE *f, const svg_plot *p);

#endif
