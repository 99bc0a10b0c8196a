/* Strict number parsing for flags and file metadata: the same rules for
 * both, so a value in a file is checked exactly as the flag would be.
 * strtoll and friends skip leading space, accept a '+', and stop quietly at
 * the first foreign character; each of those is refused here. */
#include "tapegrad.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* The first character may start a number: a digit, or '-' when allowed. */
static bool starts_number(const char *s, bool minus)
{
    return s && ((*s >= '0' && *s <= '9') || (minus && *s == '-' && s[1] >= '0' && s[1] <= '9'));
}

/* Only digits after an optional '-': strtoll would read "0x10" as 16 with
 * base 0, and with base 10 it stops at 'x', which the end check catches;
 * this keeps the rule readable. */
static bool all_digits(const char *s)
{
    if (*s == '-')
        s++;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

bool tg_parse_int(const char *s, long long lo, long long hi, long long *out)
{
    if (!starts_number(s, true) || !all_digits(s) || !out)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool tg_parse_u64(const char *s, uint64_t *out)
{
    if (!starts_number(s, false) || !all_digits(s) || !out)
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > UINT64_MAX)
        return false;
    *out = (uint64_t)v;
    return true;
}

/* Hex floats ("0x1p3") are refused: no file or flag here writes them. */
bool tg_parse_float(const char *s, double lo, double hi, float *out)
{
    if (!s || !out || !(starts_number(s, true) || (*s == '.' || (*s == '-' && s[1] == '.'))))
        return false;
    for (const char *p = s; *p; p++)
        if (*p == 'x' || *p == 'X')
            return false;
    char *end;
    double v = strtod(s, &end); /* an underflow to 0 or a subnormal is fine */
    if (*end || !isfinite(v) || v < lo || v > hi)
        return false;
    float f = (float)v;
    if (!isfinite(f))
        return false;
    *out = f;
    return true;
}
