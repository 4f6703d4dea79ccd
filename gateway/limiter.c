/* limiter.c -- per-IP connection cap and handshake token bucket (see limiter.h). */
#include "limiter.h"

#include <stdlib.h>
#include <string.h>

#include "vc_partition.h"

typedef struct ip_entry {
    struct ip_entry *next;
    uint32_t conns;
    double tokens;
    int64_t refill_ms;
    char ip[GW_LIMITER_IP_MAX];
} ip_entry;

struct gw_limiter {
    uint32_t max_conns;
    double rate, burst;
    size_t max_ips, nips;
    size_t nbuckets;        /* power of two */
    ip_entry **buckets;
};

gw_limiter *gw_limiter_new(uint32_t max_conns_per_ip, uint32_t rate, size_t max_ips)
{
    gw_limiter *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    l->max_conns = max_conns_per_ip;
    l->rate = rate;
    l->burst = 2.0 * rate;
    l->max_ips = max_ips;
    l->nbuckets = 1024;
    while (l->nbuckets < max_ips / 4 && l->nbuckets < (1u << 20))
        l->nbuckets <<= 1;
    l->buckets = calloc(l->nbuckets, sizeof(*l->buckets));
    if (l->buckets == NULL) {
        free(l);
        return NULL;
    }
    return l;
}

void gw_limiter_destroy(gw_limiter *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->nbuckets; i++)
        for (ip_entry *e = l->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(l->buckets);
    free(l);
}

static ip_entry **bucket_of(gw_limiter *l, const char *ip)
{
    return &l->buckets[vc_murmur2(ip, strlen(ip)) & (l->nbuckets - 1)];
}

static ip_entry *entry_find(gw_limiter *l, const char *ip)
{
    for (ip_entry *e = *bucket_of(l, ip); e; e = e->next)
        if (!strcmp(e->ip, ip))
            return e;
    return NULL;
}

static void refill(gw_limiter *l, ip_entry *e, int64_t now_ms)
{
    if (now_ms > e->refill_ms) {
        e->tokens += (double)(now_ms - e->refill_ms) * l->rate / 1000.0;
        if (e->tokens > l->burst)
            e->tokens = l->burst;
        e->refill_ms = now_ms;
    }
}

gw_limit_rc gw_limiter_admit(gw_limiter *l, const char *ip, int64_t now_ms)
{
    ip_entry *e = entry_find(l, ip);

    if (e == NULL) {
        ip_entry **b;

        if (l->nips >= l->max_ips)
            return GW_LIMIT_TABLE_FULL;
        e = calloc(1, sizeof(*e));
        if (e == NULL)
            return GW_LIMIT_TABLE_FULL;
        strncpy(e->ip, ip, sizeof(e->ip) - 1);
        e->tokens = l->burst;
        e->refill_ms = now_ms;
        b = bucket_of(l, e->ip);
        e->next = *b;
        *b = e;
        l->nips++;
    }
    refill(l, e, now_ms);
    if (e->tokens < 1.0)
        return GW_LIMIT_RATE;
    if (e->conns >= l->max_conns)
        return GW_LIMIT_CONNS;
    e->tokens -= 1.0;
    e->conns++;
    return GW_LIMIT_OK;
}

gw_limit_rc gw_limiter_check(gw_limiter *l, const char *ip, int64_t now_ms)
{
    ip_entry *e = entry_find(l, ip);

    if (e == NULL)
        return l->nips >= l->max_ips ? GW_LIMIT_TABLE_FULL : GW_LIMIT_OK;
    refill(l, e, now_ms);
    if (e->tokens < 1.0)
        return GW_LIMIT_RATE;
    if (e->conns >= l->max_conns)
        return GW_LIMIT_CONNS;
    return GW_LIMIT_OK;
}

void gw_limiter_release(gw_limiter *l, const char *ip)
{
    ip_entry *e = entry_find(l, ip);

    if (e != NULL && e->conns > 0)
        e->conns--;
}

void gw_limiter_sweep(gw_limiter *l, int64_t now_ms)
{
    for (size_t i = 0; i < l->nbuckets; i++) {
        ip_entry **pe = &l->buckets[i];

        while (*pe) {
            ip_entry *e = *pe;

            refill(l, e, now_ms);
            if (e->conns == 0 && e->tokens >= l->burst) {
                *pe = e->next;
                free(e);
                l->nips--;
            } else
                pe = &e->next;
        }
    }
}

size_t gw_limiter_size(const gw_limiter *l)
{
    return l->nips;
}
