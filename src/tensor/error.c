/* The library's one error record outside tapes: the message of the calling
 * thread's latest failure, and the names of the statuses. Per thread, so two
 * threads building models at once never read each other's message. */
#include "tapegrad_internal.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[512];

const char *tg_status_str(tg_status s)
{
    switch (s) {
    case TG_OK: return "ok";
    case TG_ERR_SHAPE: return "shape mismatch";
    case TG_ERR_ARG: return "bad argument";
    case TG_ERR_NOMEM: return "out of memory";
    case TG_ERR_IO: return "input/output error";
    case TG_ERR_FORMAT: return "bad file format";
    }
    return "unknown status";
}

const char *tg_last_error(void) { return last_error; }

tg_status tg_verror(char *err, size_t errlen, tg_status s, const char *fmt, va_list ap)
{
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    if (err && errlen)
        snprintf(err, errlen, "%s", last_error);
    return s;
}

tg_status tg_error(char *err, size_t errlen, tg_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tg_verror(err, errlen, s, fmt, ap);
    va_end(ap);
    return s;
}
