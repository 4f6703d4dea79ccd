/* lg_model.h -- the random model of vc-loadgen: a seeded generator, Zipf
 * stream popularity and exponential watch times. Pure, deterministic for a
 * seed. */
#ifndef LG_MODEL_H
#define LG_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[2];
} lg_rng;

void lg_rng_seed(lg_rng *r, uint64_t seed);
uint64_t lg_rng_next(lg_rng *r);
/* Uniform in [0, 1). */
double lg_rng_unit(lg_rng *r);
/* Exponential with the given mean (> 0). */
double lg_rng_exp(lg_rng *r, double mean);

/* Zipf over ranks 0..n-1: P(k) proportional to 1 / (k+1)^s. */
typedef struct {
    size_t n;
    double *cdf; /* owned */
} lg_zipf;

/* 0, or -1 on allocation failure or n == 0. */
int lg_zipf_init(lg_zipf *z, size_t n, double s);
void lg_zipf_free(lg_zipf *z);
size_t lg_zipf_draw(const lg_zipf *z, lg_rng *r);

#endif
