#include "http.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct sk_http {
    int fd;
    sk_metrics *m;
    atomic_int stop;
    pthread_t thread;
};

size_t sk_metrics_render(sk_metrics *m, char *buf, size_t size)
{
    uint64_t flushes = atomic_load(&m->flushes);
    int n = snprintf(buf, size,
        "# HELP vc_sink_events_total Events applied.\n# TYPE vc_sink_events_total counter\n"
        "vc_sink_events_total %" PRIu64 "\n"
        "# HELP vc_sink_dead_lettered_total Undecodable events sent to the dead-letter topic.\n"
        "# TYPE vc_sink_dead_lettered_total counter\nvc_sink_dead_lettered_total %" PRIu64 "\n"
        "# HELP vc_sink_lag_messages Messages behind the high watermarks of the assigned partitions.\n"
        "# TYPE vc_sink_lag_messages gauge\nvc_sink_lag_messages %" PRId64 "\n"
        "# TYPE vc_sink_assigned_partitions gauge\nvc_sink_assigned_partitions %" PRId64 "\n"
        "# HELP vc_sink_rows_written_total Rows written, per table.\n# TYPE vc_sink_rows_written_total counter\n"
        "vc_sink_rows_written_total{table=\"viewer_history\"} %" PRIu64 "\n"
        "vc_sink_rows_written_total{table=\"current_viewers\"} %" PRIu64 "\n"
        "vc_sink_rows_written_total{table=\"daily_statistics\"} %" PRIu64 "\n"
        "vc_sink_rows_written_total{table=\"user_sessions\"} %" PRIu64 "\n"
        "# TYPE vc_sink_checkpoint_bytes_total counter\nvc_sink_checkpoint_bytes_total %" PRIu64 "\n"
        "# HELP vc_sink_flush_seconds Duration of the partition flush transactions.\n"
        "# TYPE vc_sink_flush_seconds summary\nvc_sink_flush_seconds_sum %.3f\nvc_sink_flush_seconds_count %" PRIu64 "\n"
        "# TYPE vc_sink_flush_last_seconds gauge\nvc_sink_flush_last_seconds %.3f\n"
        "# HELP vc_sink_transaction_retries_total Database operations retried (server down, read-only, lost commit).\n"
        "# TYPE vc_sink_transaction_retries_total counter\nvc_sink_transaction_retries_total %" PRIu64 "\n"
        "# TYPE vc_sink_fenced_total counter\nvc_sink_fenced_total %" PRIu64 "\n"
        "# TYPE vc_sink_db_up gauge\nvc_sink_db_up %d\n",
        (uint64_t)atomic_load(&m->events), (uint64_t)atomic_load(&m->dead_lettered), (int64_t)atomic_load(&m->lag),
        (int64_t)atomic_load(&m->partitions), (uint64_t)atomic_load(&m->rows_viewer_history),
        (uint64_t)atomic_load(&m->rows_current_viewers), (uint64_t)atomic_load(&m->rows_daily_statistics),
        (uint64_t)atomic_load(&m->rows_user_sessions), (uint64_t)atomic_load(&m->checkpoint_bytes),
        (double)atomic_load(&m->flush_ms_sum) / 1000.0, flushes, (double)atomic_load(&m->flush_ms_last) / 1000.0,
        (uint64_t)atomic_load(&m->retries), (uint64_t)atomic_load(&m->fenced), atomic_load(&m->db_ok));
    if (n < 0)
        return 0;
    return (size_t)n < size ? (size_t)n : size - 1;
}

static void serve(sk_http *h, int c)
{
    char req[1024];
    struct pollfd pfd = {.fd = c, .events = POLLIN};
    size_t got = 0;
    while (got < sizeof req - 1 && poll(&pfd, 1, 1000) == 1) {
        ssize_t n = read(c, req + got, sizeof req - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        req[got] = 0;
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    req[got] = 0;
    char body[4096];
    const char *status = "200 OK";
    size_t blen;
    if (!strncmp(req, "GET /metrics", 12)) {
        blen = sk_metrics_render(h->m, body, sizeof body);
    } else if (!strncmp(req, "GET /healthz", 12)) {
        int ok = atomic_load(&h->m->db_ok) && atomic_load(&h->m->running);
        status = ok ? "200 OK" : "503 Service Unavailable";
        blen = (size_t)snprintf(body, sizeof body, "%s\n",
                                ok ? "ok" : (atomic_load(&h->m->running) ? "database unavailable, retrying" : "starting"));
    } else {
        status = "404 Not Found";
        blen = (size_t)snprintf(body, sizeof body, "not found\n");
    }
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      status, blen);
    if (write(c, head, (size_t)hl) == hl)
        (void)!write(c, body, blen);
}

static void *http_main(void *arg)
{
    sk_http *h = arg;
    while (!atomic_load(&h->stop)) {
        struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
        if (poll(&pfd, 1, 200) != 1)
            continue;
        int c = accept(h->fd, NULL, NULL);
        if (c < 0)
            continue;
        serve(h, c);
        close(c);
    }
    return NULL;
}

sk_http *sk_http_start(int port, sk_metrics *m, char *errstr, size_t errstr_size)
{
    sk_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    h->m = m;
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (h->fd < 0 || setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(h->fd, (struct sockaddr *)&sa, sizeof sa) || listen(h->fd, 16)) {
        snprintf(errstr, errstr_size, "http port %d: %s", port, strerror(errno));
        if (h->fd >= 0)
            close(h->fd);
        free(h);
        return NULL;
    }
    if (pthread_create(&h->thread, NULL, http_main, h)) {
        snprintf(errstr, errstr_size, "http thread: %s", strerror(errno));
        close(h->fd);
        free(h);
        return NULL;
    }
    return h;
}

void sk_http_stop(sk_http *h)
{
    if (!h)
        return;
    atomic_store(&h->stop, 1);
    pthread_join(h->thread, NULL);
    close(h->fd);
    free(h);
}
