/* metrics.h -- counters of vc-aggregator and the small HTTP server that
 * serves them: GET /metrics (Prometheus text) and GET /healthz.
 * Counters are atomics: the consumer thread writes, the HTTP thread reads. */
#ifndef AGG_METRICS_H
#define AGG_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "vc_httpd.h"

#define AGG_MAX_PARTITIONS 256
#define AGG_LATENCY_BUCKETS 12

typedef struct {
    atomic_uint_fast64_t events;          /* events applied (offsets advanced) */
    atomic_uint_fast64_t batches;
    atomic_uint_fast64_t dead_letters;
    atomic_uint_fast64_t stale_events;    /* from superseded gateway epochs */
    atomic_uint_fast64_t gateways_expired;
    atomic_uint_fast64_t viewers_expired;
    atomic_uint_fast64_t repairs[3];      /* by vc_drift_level */
    atomic_uint_fast64_t redis_errors;
    atomic_uint_fast64_t gaps;            /* state reloaded from Redis */
    atomic_uint_fast64_t rebuilds;        /* partitions restored from the log */
    atomic_uint_fast64_t checkpoints;     /* checkpoints delivered to the checkpoint topic */
    atomic_uint_fast64_t replayed;        /* events replayed into memory only (Redis had them) */
    atomic_uint_fast64_t tombstones_dropped;
    atomic_int_fast64_t state_connections; /* open connections held in memory (owned partitions) */
    atomic_int_fast64_t state_streams;
    atomic_int_fast64_t rebuild_remaining; /* events still to replay in a rebuild */
    atomic_int redis_up;
    atomic_int_fast64_t exec_since_ms;    /* monotonic start of the Redis call in flight, 0: none */
    atomic_int assigned[AGG_MAX_PARTITIONS];
    atomic_int_fast64_t lag[AGG_MAX_PARTITIONS];
    atomic_uint_fast64_t latency_bucket[AGG_LATENCY_BUCKETS]; /* cumulative at render */
    atomic_uint_fast64_t latency_sum_us, latency_count;
    atomic_uint_fast64_t age_bucket[AGG_LATENCY_BUCKETS]; /* event age when applied, cumulative at render */
    atomic_uint_fast64_t age_sum_ms, age_count;
} agg_metrics;

void agg_metrics_init(agg_metrics *m);
/* Record one batch's latency (poll to applied). */
void agg_metrics_batch(agg_metrics *m, int64_t latency_us);
/* Record the age of n events whose effect Redis now holds: applied_ms minus
 * each event's creation time (the Kafka message timestamp, wall clock ms). */
void agg_metrics_event_ages(agg_metrics *m, const int64_t *created_ms, size_t n, int64_t applied_ms);
/* Mark a Redis call in flight (start) or done (!start): /healthz reports a
 * call stuck for more than AGG_HEALTH_STUCK_MS as Redis unavailable. */
#define AGG_HEALTH_STUCK_MS 5000
void agg_metrics_exec(agg_metrics *m, int start);
/* Render the Prometheus text into buf; returns its length (truncated at size). */
size_t agg_metrics_render(agg_metrics *m, char *buf, size_t size);

typedef vc_httpd agg_http;
/* Serve /metrics and /healthz on addr:port from a thread (schemas/vc_httpd).
 * NULL + errstr on failure. */
agg_http *agg_http_start(agg_metrics *m, const char *addr, int port, char *errstr, size_t errstr_size);
void agg_http_stop(agg_http *h); /* accepts NULL */

#endif
