/* One knob for every thread pool the library uses: OpenMP kernels and, when
 * linked, OpenBLAS. */
#include "tapegrad.h"

#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef TG_HAVE_BLAS
#include <cblas.h>
#endif

int tg_set_threads(int n)
{
    if (n < 1) {
        const char *env = getenv("TG_NUM_THREADS");
        n = env ? atoi(env) : 0;
    }
#ifdef _OPENMP
    if (n >= 1)
        omp_set_num_threads(n);
    n = omp_get_max_threads();
#else
    n = 1;
#endif
#ifdef TG_HAVE_BLAS
    openblas_set_num_threads(n);
#endif
    return n;
}
