/* exp and tanh that vectorise. Without -ffast-math GCC calls libm's scalar
 * expf/tanhf once per element, and in the shakespeare model those calls were
 * a third of the training time. These are branch-free (selects and clamps
 * only), so a loop that calls them compiles to straight vector code.
 *
 * tg_vexp:  x = n ln2 + r with |r| <= ln2/2 (ln2 split in two parts so the
 *          reduction is exact), exp(r) by its Taylor series to r^7
 *          (truncation below 2e-9), then 2^n placed in the exponent bits.
 *          Relative error within 2e-7 of expf on [-87, 88] (tested); the
 *          input is clamped there, so it never returns inf or a subnormal.
 *          A NaN passes the clamp's comparisons and comes out NaN; its n is
 *          replaced by 0 before the conversion to an integer, which for NaN
 *          would be undefined behaviour.
 * tg_vtanh: (e - 1) / (e + 1) with e = exp(2u) for |u| >= 0.25, and below
 *          that the odd Taylor series to u^9 (error below 1e-9), which avoids
 *          the cancellation of e - 1 near 0. Absolute error within 2e-7. */
#ifndef TG_VMATH_H
#define TG_VMATH_H

#include <stdint.h>
#include <string.h>

static inline float tg_vexp(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* Adding and taking away 1.5 * 2^23 rounds to an integer in the FPU's
     * round-to-nearest; floorf would stop GCC from vectorising the loop. */
    float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693145752f - n * 1.42860677e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    n = n == n ? n : 0.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float tg_vtanh(float u)
{
    float c = u < -9.0f ? -9.0f : u > 9.0f ? 9.0f : u;
    float e = tg_vexp(2.0f * c);
    float big = (e - 1.0f) / (e + 1.0f);
    float u2 = u * u;
    float s = 62.0f / 2835.0f;
    s = s * u2 - 17.0f / 315.0f;
    s = s * u2 + 2.0f / 15.0f;
    s = s * u2 - 1.0f / 3.0f;
    float small = u + u * u2 * s;
    return u * u < 0.0625f ? small : big;
}

#endif
