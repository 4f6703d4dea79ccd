/* metrics.c -- counters, their Prometheus text and the HTTP thread. */
#include "metrics.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

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

size_t agg_metrics_render(agg_metrics *m, char *buf, size_t size)
{
    static const char *tiers[3] = {"quiet", "syncing", "rebuild"};
    out o = {buf, size, 0};
    uint64_t cum = 0;

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
    COUNTER(&o, "vc_aggregator_checkpoints_total", "Partition checkpoints written.",
            atomic_load(&m->checkpoints));
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
    put(&o, "# HELP vc_aggregator_batch_seconds Time from poll to the batch applied in Redis.\n"
            "# TYPE vc_aggregator_batch_seconds histogram\n");
    for (int i = 0; i < AGG_LATENCY_BUCKETS; i++) {
        cum += atomic_load(&m->latency_bucket[i]);
        if (i == AGG_LATENCY_BUCKETS - 1)
            put(&o, "vc_aggregator_batch_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        else
            put(&o, "vc_aggregator_batch_seconds_bucket{le=\"%g\"} %llu\n", latency_le_ms[i] / 1000.0,
                (unsigned long long)cum);
    }
    put(&o, "vc_aggregator_batch_seconds_sum %.6f\nvc_aggregator_batch_seconds_count %llu\n",
        (double)atomic_load(&m->latency_sum_us) / 1e6, (unsigned long long)atomic_load(&m->latency_count));
    return o.len;
}

struct agg_http {
    agg_metrics *m;
    int fd;
    atomic_int stop;
    pthread_t thread;
};

static void http_serve_one(agg_http *h, int fd)
{
    char req[2048], *body = NULL, head[256];
    size_t len = 0, body_len = 0, cap = 1 << 16;
    const char *status = "200 OK", *type = "text/plain; version=0.0.4";
    struct timeval tv = {1, 0};

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    while (len < sizeof(req) - 1) {
        ssize_t n = recv(fd, req + len, sizeof(req) - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    req[len] = '\0';
    body = malloc(cap);
    if (body == NULL)
        return;
    if (strncmp(req, "GET /metrics", 12) == 0) {
        body_len = agg_metrics_render(h->m, body, cap);
    } else if (strncmp(req, "GET /healthz", 12) == 0) {
        int64_t since = atomic_load(&h->m->exec_since_ms);
        int up = atomic_load(&h->m->redis_up) && (since == 0 || mono_ms() - since <= AGG_HEALTH_STUCK_MS);
        status = up ? "200 OK" : "503 Service Unavailable";
        type = "text/plain";
        body_len = (size_t)snprintf(body, cap, "%s\n", up ? "ok" : "redis unavailable");
    } else {
        status = "404 Not Found";
        type = "text/plain";
        body_len = (size_t)snprintf(body, cap, "not found\n");
    }
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, type, body_len);
    if (send(fd, head, (size_t)n, MSG_NOSIGNAL) == n)
        (void)send(fd, body, body_len, MSG_NOSIGNAL);
    free(body);
}

static void *http_main(void *arg)
{
    agg_http *h = arg;
    while (!atomic_load(&h->stop)) {
        struct pollfd pfd = {h->fd, POLLIN, 0};
        if (poll(&pfd, 1, 200) <= 0)
            continue;
        int fd = accept(h->fd, NULL, NULL);
        if (fd < 0)
            continue;
        http_serve_one(h, fd);
        close(fd);
    }
    return NULL;
}

agg_http *agg_http_start(agg_metrics *m, int port, char *errstr, size_t errstr_size)
{
    agg_http *h = calloc(1, sizeof(*h));
    struct sockaddr_in sa;
    int one = 1;

    if (h == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    h->m = m;
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->fd < 0)
        goto fail;
    setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(h->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(h->fd, 16) < 0)
        goto fail;
    if (pthread_create(&h->thread, NULL, http_main, h) != 0)
        goto fail;
    return h;
fail:
    snprintf(errstr, errstr_size, "http on 127.0.0.1:%d: %s", port, strerror(errno));
    if (h->fd >= 0)
        close(h->fd);
    free(h);
    return NULL;
}

void agg_http_stop(agg_http *h)
{
    if (h == NULL)
        return;
    atomic_store(&h->stop, 1);
    pthread_join(h->thread, NULL);
    close(h->fd);
    free(h);
}
