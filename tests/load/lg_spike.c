/* lg_spike.c -- see lg_spike.h. */
#include "lg_spike.h"

#include <math.h>
#include <stdio.h>

#define LG_NEVER 1e300

int lg_spike_plan_check(const lg_spike_plan *p, char *errstr, int errstr_size)
{
    const char *why = NULL;

    if (p->at < 0 || p->arrive_s < 0 || p->every < 0 || p->length < 0)
        why = "spike times must not be negative";
    else if (p->every > 0 && p->length <= 0)
        why = "a repeated spike needs a length (the star must end before the next one)";
    else if (p->every > 0 && p->length > p->every)
        why = "the spike length must not exceed --spike-every";
    else if (p->length > 0 && p->length <= p->arrive_s)
        why = "the spike length must exceed the arrival window (--spike X:Y)";
    if (why == NULL)
        return 0;
    snprintf(errstr, (size_t)errstr_size, "%s", why);
    return -1;
}

int lg_spike_count(const lg_spike_plan *p)
{
    double n;

    if (p->at >= p->duration)
        return 0;
    if (p->every <= 0)
        return 1;
    /* starts at + k * every < duration, k = 0 .. n - 1 */
    n = ceil((p->duration - p->at) / p->every);
    return n > 1e6 ? 1000000 : (int)n;
}

double lg_spike_start(const lg_spike_plan *p, int k)
{
    return p->at + (double)k * p->every;
}

double lg_spike_end(const lg_spike_plan *p, int k)
{
    return p->length > 0 ? lg_spike_start(p, k) + p->length : LG_NEVER;
}

int lg_spike_live_at(const lg_spike_plan *p, double t)
{
    int k, n = lg_spike_count(p);

    if (n == 0 || t < p->at)
        return -1;
    k = p->every > 0 ? (int)floor((t - p->at) / p->every) : 0;
    if (k >= n)
        k = n - 1;
    return t < lg_spike_end(p, k) ? k : -1;
}
