/* xoshiro128+ seeded through splitmix64: fast, small, and the same stream on
 * every platform, so runs with the same seed are reproducible. */
#include "tapegrad.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void tg_rng_seed(tg_rng *r, uint64_t seed)
{
    if (!r)
        return;
    for (int i = 0; i < 4; i += 2) {
        uint64_t v = splitmix64(&seed);
        r->s[i] = (uint32_t)v;
        r->s[i + 1] = (uint32_t)(v >> 32);
    }
}

static uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

/* 0 for a NULL generator: no state to advance. */
uint32_t tg_rng_u32(tg_rng *r)
{
    if (!r)
        return 0;
    uint32_t *s = r->s;
    uint32_t result = s[0] + s[3];
    uint32_t t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
}

float tg_rng_uniform(tg_rng *r) { return (float)(tg_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

/* Box-Muller in double; one of the pair is dropped to keep no hidden state. */
float tg_rng_normal(tg_rng *r)
{
    double u1 = ((double)(tg_rng_u32(r) >> 8) + 1.0) / 16777217.0;
    double u2 = (double)(tg_rng_u32(r) >> 8) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void tg_fill_normal(tg_tensor *t, tg_rng *r, float mean, float std)
{
    for (size_t i = 0; t && r && i < t->size; i++)
        t->data[i] = mean + std * tg_rng_normal(r);
}
