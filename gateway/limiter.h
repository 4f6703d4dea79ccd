/* limiter.h -- per-IP caps: open connections and a handshake-rate token
 * bucket. Pure (the caller passes the time); the table is bounded. */
#ifndef GW_LIMITER_H
#define GW_LIMITER_H

#include <stddef.h>
#include <stdint.h>

typedef struct gw_limiter gw_limiter;

typedef enum {
    GW_LIMIT_OK = 0,
    GW_LIMIT_RATE,          /* handshakes from this IP too fast */
    GW_LIMIT_CONNS,         /* too many open connections from this IP */
    GW_LIMIT_TABLE_FULL,    /* too many distinct IPs tracked */
} gw_limit_rc;

#define GW_LIMITER_IP_MAX 64

/* rate handshakes per second with a burst of 2 * rate; at most max_ips IPs
 * tracked at once. NULL on allocation failure. */
gw_limiter *gw_limiter_new(uint32_t max_conns_per_ip, uint32_t rate, size_t max_ips);
void gw_limiter_destroy(gw_limiter *l); /* accepts NULL */

/* A handshake from ip at now_ms: on GW_LIMIT_OK the IP holds one more
 * connection, to be given back with gw_limiter_release(). */
gw_limit_rc gw_limiter_admit(gw_limiter *l, const char *ip, int64_t now_ms);
void gw_limiter_release(gw_limiter *l, const char *ip);

/* What gw_limiter_admit() would answer, without taking anything. */
gw_limit_rc gw_limiter_check(gw_limiter *l, const char *ip, int64_t now_ms);

/* Forget IPs with no connection and a full bucket. */
void gw_limiter_sweep(gw_limiter *l, int64_t now_ms);
size_t gw_limiter_size(const gw_limiter *l);

#endif
