/* metrics.c -- counters, their Prometheus text and the HTTP thread. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const double latency_le_ms[AGG_LATENCY_BUCKETS] = {1,   2,   5,    10,   20,   50,
                                                          100, 250, 500, 1000, 5000, 1e300};

void agg_metrics_init(agg_metrics *m)
{
    memset(m, 0, sizeof(*m));
}

void agg_metrics_batch(agg_metrics *m, int64_t latency_us)
{
    for (int i = 0; i < AGG_LATENCY_BUCKETS; i++) {
        if ((double)latency_us <= latency_le_ms[i] * 1000.0) {
            atomic_fetch_add(&m->latency_bucket[i], 1);
            break;
        }
    }
    atomic_fetch_add(&m->latency_sum_us, (uint64_t)(latency_us > 0 ? latency_us : 0));
    atomic_fetch_add(&m->latency_count, 1);
    atomic_fetch_add(&m->batches, 1);
}

void agg_metrics_event_ages(agg_metrics *m, const int64_t *created_ms, size_t n, int64_t applied_ms)
{
    uint64_t count[AGG_LATENCY_BUCKETS] = {0}, sum = 0;
    for (size_t k = 0; k < n; k++) {
        int64_t age = applied_ms - created_ms[k];
        if (age < 0)
            age = 0; /* the producer's clock is ahead of ours */
        int i = 0;
        while (i < AGG_LATENCY_BUCKETS - 1 && (double)age > latency_le_ms[i])
            i++;
        count[i]++;
        sum += (uint64_t)age;
    }
    for (int i = 0; i < AGG_LATENCY_BUCKETS; i++)
        if (count[i])
            atomic_fetch_add(&m->age_bucket[i], count[i]);
    atomic_fetch_add(&m->age_sum_ms, sum);
    atomic_fetch_add(&m->age_count, n);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void agg_metrics_exec(agg_metrics *m, int start)
{
    atomic_store(&m->exec_since_ms, start ? mono_ms() : 0);
}

typedef struct {
    char *buf;
    size_t size, len;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (o->len >= o->size)
        return;
    va_start(ap, fmt);
    n = vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n < o->size - o->len ? (size_t)n : o->size - o->len;
}

#define COUNTER(o, name, help, v)                                                                  \
    put(o, "# HELP " name " " help "\n# TYPE " name " counter\n" name " %llu\n",                  \
        (unsigned long long)(v))

/* head: the HELP and TYPE lines, spelt out at the call (tests/deploy/check
 * finds the histograms by their TYPE line in the source) */
static void histogram(out *o, const char *head, const char *name, atomic_uint_fast64_t *bucket, double sum,
                      uint64_t count)
{
    uint64_t cum = 0;
    put(o, "%s", head);
    for (int i = 0; i < AGG_LATENCY_BUCKETS; i++) {
        cum += atomic_load(&bucket[i]);
        if (i == AGG_LATENCY_BUCKETS - 1)
            put(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
        else
            put(o, "%s_bucket{le=\"%g\"} %llu\n", name, latency_le_ms[i] / 1000.0, (unsigned long long)cum);
    }
    put(o, "%s_sum %.6f\n%s_count %llu\n", name, sum, name, (unsigned long long)count);
}

size_t agg_metrics_render(agg_metrics *m, char *buf, size_t size)
{
    static const char *tiers[3] = {"quiet", "syncing", "rebuild"};
    out o = {buf, size, 0};

    COUNTER(&o, "vc_aggregator_events_total", "Events applied (offsets advanced).", atomic_load(&m->events));
    COUNTER(&o, "vc_aggregator_batches_total", "Batches applied.", atomic_load(&m->batches));
    COUNTER(&o, "vc_aggregator_dead_letters_total", "Messages sent to the dead-letter topic.",
            atomic_load(&m->dead_letters));
    COUNTER(&o, "vc_aggregator_stale_events_total", "Events of superseded gateway epochs, ignored.",
            atomic_load(&m->stale_events));
    COUNTER(&o, "vc_aggregator_gateways_expired_total", "Gateway epochs gone (lost or restarted), per partition.",
            atomic_load(&m->gateways_expired));
    COUNTER(&o, "vc_aggregator_viewers_expired_total", "Viewers removed because their gateway was gone.",
            atomic_load(&m->viewers_expired));
    COUNTER(&o, "vc_aggregator_redis_errors_total", "Failed batch executions (retried).",
            atomic_load(&m->redis_errors));
    COUNTER(&o, "vc_aggregator_state_reloads_total", "Partition states reloaded because Redis held another offset.",
            atomic_load(&m->gaps));
    COUNTER(&o, "vc_aggregator_rebuilds_total", "Partitions restored from checkpoint and log.",
            atomic_load(&m->rebuilds));
    COUNTER(&o, "vc_aggregator_checkpoints_total", "Partition checkpoints delivered to the checkpoint topic.",
            atomic_load(&m->checkpoints));
    COUNTER(&o, "vc_aggregator_replayed_events_total",
            "Events replayed into memory only on recovery (Redis already held their effect).",
            atomic_load(&m->replayed));
    COUNTER(&o, "vc_aggregator_tombstones_dropped_total", "Unmatched leaves forgotten after the tombstone TTL.",
            atomic_load(&m->tombstones_dropped));
    put(&o, "# HELP vc_aggregator_state_connections Open connections held in memory for the owned partitions.\n"
            "# TYPE vc_aggregator_state_connections gauge\nvc_aggregator_state_connections %lld\n",
        (long long)atomic_load(&m->state_connections));
    put(&o, "# HELP vc_aggregator_state_streams Streams held in memory for the owned partitions.\n"
            "# TYPE vc_aggregator_state_streams gauge\nvc_aggregator_state_streams %lld\n",
        (long long)atomic_load(&m->state_streams));
    put(&o, "# HELP vc_aggregator_repairs_total Sync snapshots compared, by drift tier.\n"
            "# TYPE vc_aggregator_repairs_total counter\n");
    for (int i = 0; i < 3; i++)
        put(&o, "vc_aggregator_repairs_total{tier=\"%s\"} %llu\n", tiers[i],
            (unsigned long long)atomic_load(&m->repairs[i]));
    put(&o, "# HELP vc_aggregator_rebuild_remaining Events still to replay in a running rebuild.\n"
            "# TYPE vc_aggregator_rebuild_remaining gauge\nvc_aggregator_rebuild_remaining %lld\n",
        (long long)atomic_load(&m->rebuild_remaining));
    put(&o, "# HELP vc_aggregator_redis_up 1 when the last batch reached Redis.\n"
            "# TYPE vc_aggregator_redis_up gauge\nvc_aggregator_redis_up %d\n",
        atomic_load(&m->redis_up));
    put(&o, "# HELP vc_aggregator_lag Messages behind the partition's high watermark.\n"
            "# TYPE vc_aggregator_lag gauge\n");
    for (int p = 0; p < AGG_MAX_PARTITIONS; p++)
        if (atomic_load(&m->assigned[p]))
            put(&o, "vc_aggregator_lag{partition=\"%d\"} %lld\n", p, (long long)atomic_load(&m->lag[p]));
    histogram(&o,
              "# HELP vc_aggregator_batch_seconds Time from poll to the batch applied in Redis.\n"
              "# TYPE vc_aggregator_batch_seconds histogram\n",
              "vc_aggregator_batch_seconds", m->latency_bucket, (double)atomic_load(&m->latency_sum_us) / 1e6,
              atomic_load(&m->latency_count));
    histogram(&o,
              "# HELP vc_aggregator_event_age_seconds Time from an event's creation (its Kafka timestamp) to its "
              "effect in Redis; live events only.\n"
              "# TYPE vc_aggregator_event_age_seconds histogram\n",
              "vc_aggregator_event_age_seconds", m->age_bucket, (double)atomic_load(&m->age_sum_ms) / 1e3,
              atomic_load(&m->age_count));
    return o.len;
}

/* The routes: /metrics, and /healthz (503 while Redis is down or an apply
 * has been stuck for AGG_HEALTH_STUCK_MS). */
static int http_route(void *ud, const char *path, char *body, size_t size, size_t *len, const char **ctype)
{
    agg_metrics *m = ud;

    if (strcmp(path, "/metrics") == 0) {
        *ctype = "text/plain; version=0.0.4";
        *len = agg_metrics_render(m, body, size);
        return 200;
    }
    if (strcmp(path, "/healthz") == 0) {
        int64_t since = atomic_load(&m->exec_since_ms);
        int up = atomic_load(&m->redis_up) && (since == 0 || mono_ms() - since <= AGG_HEALTH_STUCK_MS);

        *len = (size_t)snprintf(body, size, "%s\n", up ? "ok" : "redis unavailable");
        return up ? 200 : 503;
    }
    *len = (size_t)snprintf(body, size, "not found\n");
    return 404;
}

agg_http *agg_http_start(agg_metrics *m, const char *addr, int port, char *errstr, size_t errstr_size)
{
    return vc_httpd_start(addr, port, http_route, m, errstr, errstr_size);
}

void agg_http_stop(agg_http *h)
{
    vc_httpd_stop(h);
}
