/* lg_model.c -- see lg_model.h. */
#include "lg_model.h"

#include <math.h>
#include <stdlib.h>

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void lg_rng_seed(lg_rng *r, uint64_t seed)
{
    r->s[0] = splitmix(&seed);
    r->s[1] = splitmix(&seed);
}

/* xorshift128+ */
uint64_t lg_rng_next(lg_rng *r)
{
    uint64_t a = r->s[0], b = r->s[1];

    r->s[0] = b;
    a ^= a << 23;
    r->s[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
    return r->s[1] + b;
}

double lg_rng_unit(lg_rng *r)
{
    return (double)(lg_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

double lg_rng_exp(lg_rng *r, double mean)
{
    return -mean * log(1.0 - lg_rng_unit(r));
}

int lg_zipf_init(lg_zipf *z, size_t n, double s)
{
    double sum = 0;

    z->n = n;
    z->cdf = n ? malloc(n * sizeof(double)) : NULL;
    if (z->cdf == NULL)
        return -1;
    for (size_t k = 0; k < n; k++) {
        sum += 1.0 / pow((double)(k + 1), s);
        z->cdf[k] = sum;
    }
    for (size_t k = 0; k < n; k++)
        z->cdf[k] /= sum;
    z->cdf[n - 1] = 1.0;
    return 0;
}

void lg_zipf_free(lg_zipf *z)
{
    free(z->cdf);
    z->cdf = NULL;
    z->n = 0;
}

size_t lg_zipf_draw(const lg_zipf *z, lg_rng *r)
{
    double u = lg_rng_unit(r);
    size_t lo = 0, hi = z->n - 1;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (z->cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}
