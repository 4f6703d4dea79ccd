#include "http.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "vc_httpd.h"

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

/* The routes: /metrics, and /healthz (503 while the database is unavailable). */
static int route(void *ud, const char *path, char *body, size_t size, size_t *len, const char **ctype)
{
    sk_metrics *m = ud;

    if (!strcmp(path, "/metrics")) {
        *ctype = "text/plain; version=0.0.4";
        *len = sk_metrics_render(m, body, size);
        return 200;
    }
    if (!strcmp(path, "/healthz")) {
        int ok = atomic_load(&m->db_ok) && atomic_load(&m->running);

        *len = (size_t)snprintf(body, size, "%s\n",
                                ok ? "ok" : (atomic_load(&m->running) ? "database unavailable, retrying" : "starting"));
        return ok ? 200 : 503;
    }
    *len = (size_t)snprintf(body, size, "not found\n");
    return 404;
}

sk_http *sk_http_start(int port, sk_metrics *m, char *errstr, size_t errstr_size)
{
    return vc_httpd_start("0.0.0.0", port, route, m, errstr, errstr_size);
}

void sk_http_stop(sk_http *h)
{
    vc_httpd_stop(h);
}
