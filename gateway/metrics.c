/* metrics.c -- Prometheus text of the gateway's counters (see metrics.h). */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>

#include "vc_event.h"

static const char *const reject_names[GW_REJECT__COUNT] = {
    [GW_REJECT_BAD_STREAM] = "bad_stream", [GW_REJECT_ORIGIN] = "origin",
    [GW_REJECT_RATE] = "handshake_rate",   [GW_REJECT_CONNS_PER_IP] = "conns_per_ip",
    [GW_REJECT_IP_TABLE] = "ip_table_full", [GW_REJECT_CAPACITY] = "capacity",
    [GW_REJECT_SHUTDOWN] = "shutting_down", [GW_REJECT_NO_TOKEN] = "no_token",
    [GW_REJECT_TOKEN] = "token",
};

static const char *const badframe_names[GW_BADFRAME__COUNT] = {
    [GW_BADFRAME_TOO_BIG] = "too_big",
    [GW_BADFRAME_BINARY] = "binary",
    [GW_BADFRAME_NOT_JSON] = "not_json",
    [GW_BADFRAME_UNKNOWN_TYPE] = "unknown_type",
};

const char *gw_reject_name(gw_reject r)
{
    return (unsigned)r < GW_REJECT__COUNT ? reject_names[r] : "unknown";
}

typedef struct {
    char *buf;
    size_t size, off;
    int overflow;
} out_buf;

static void out(out_buf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out(out_buf *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->overflow)
        return;
    va_start(ap, fmt);
    n = vsnprintf(o->buf + o->off, o->size - o->off, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->size - o->off)
        o->overflow = 1;
    else
        o->off += (size_t)n;
}

int gw_metrics_format(char *buf, size_t size, const gw_metrics *m, const gw_producer_stats *ps,
                      const gw_reader_stats *rs, const char *gateway_id)
{
    out_buf o = {buf, size, 0, 0};

    out(&o, "# HELP vc_gateway_connections Viewer WebSocket connections held now.\n"
            "# TYPE vc_gateway_connections gauge\nvc_gateway_connections{gateway=\"%s\"} %lld\n",
        gateway_id, (long long)m->connections);
    out(&o, "# HELP vc_gateway_streams Streams with at least one viewer here.\n"
            "# TYPE vc_gateway_streams gauge\nvc_gateway_streams %lld\n", (long long)m->streams);
    out(&o, "# HELP vc_gateway_joins_total Join events emitted.\n"
            "# TYPE vc_gateway_joins_total counter\nvc_gateway_joins_total %lld\n", (long long)m->joins);
    out(&o, "# HELP vc_gateway_leaves_total Leave events emitted, by reason.\n# TYPE vc_gateway_leaves_total counter\n");
    for (int r = 0; r < 4; r++)
        out(&o, "vc_gateway_leaves_total{reason=\"%s\"} %lld\n", vc_leave_reason_name((vc_leave_reason)r),
            (long long)m->leaves[r]);
    out(&o, "# HELP vc_gateway_handshake_rejects_total Handshakes refused, by cause.\n"
            "# TYPE vc_gateway_handshake_rejects_total counter\n");
    for (int r = 0; r < GW_REJECT__COUNT; r++) {
        if (r == GW_REJECT_TOKEN)
            continue;
        out(&o, "vc_gateway_handshake_rejects_total{cause=\"%s\"} %lld\n", reject_names[r], (long long)m->rejects[r]);
    }
    for (int t = 1; t < GW_TOKEN__COUNT; t++)
        out(&o, "vc_gateway_handshake_rejects_total{cause=\"token_%s\"} %lld\n", gw_token_strerror((gw_token_rc)t),
            (long long)m->token_rejects[t]);
    out(&o, "# HELP vc_gateway_bad_frames_total Connections closed for a bad client frame.\n"
            "# TYPE vc_gateway_bad_frames_total counter\n");
    for (int b = 0; b < GW_BADFRAME__COUNT; b++)
        out(&o, "vc_gateway_bad_frames_total{kind=\"%s\"} %lld\n", badframe_names[b], (long long)m->badframes[b]);
    out(&o, "# HELP vc_gateway_pushes_sent_total Count messages written to viewers.\n"
            "# TYPE vc_gateway_pushes_sent_total counter\nvc_gateway_pushes_sent_total %lld\n",
        (long long)m->pushes_sent);
    out(&o, "# HELP vc_gateway_pushes_superseded_total Count messages a slow viewer skipped for a newer one.\n"
            "# TYPE vc_gateway_pushes_superseded_total counter\nvc_gateway_pushes_superseded_total %lld\n",
        (long long)m->pushes_superseded);
    out(&o, "# HELP vc_gateway_fanout_seconds From a count change read to its write to the last viewer of the stream.\n"
            "# TYPE vc_gateway_fanout_seconds summary\nvc_gateway_fanout_seconds_sum %.6f\n"
            "vc_gateway_fanout_seconds_count %lld\n",
        m->fanout_ms_sum / 1000.0, (long long)m->fanouts);
    out(&o, "# TYPE vc_gateway_fanout_last_seconds gauge\nvc_gateway_fanout_last_seconds %.6f\n",
        m->fanout_ms_last / 1000.0);
    out(&o, "# TYPE vc_gateway_pongs_total counter\nvc_gateway_pongs_total %lld\n", (long long)m->pongs);
    out(&o, "# TYPE vc_gateway_pings_sent_total counter\nvc_gateway_pings_sent_total %lld\n", (long long)m->pings_sent);
    out(&o, "# TYPE vc_gateway_accept_errors_total counter\nvc_gateway_accept_errors_total %lld\n",
        (long long)m->accept_errors);
    out(&o, "# TYPE vc_gateway_http_requests_total counter\nvc_gateway_http_requests_total %lld\n",
        (long long)m->http_requests);
    out(&o, "# TYPE vc_gateway_heartbeats_total counter\nvc_gateway_heartbeats_total %lld\n", (long long)m->heartbeats);
    out(&o, "# TYPE vc_gateway_sync_snapshots_total counter\nvc_gateway_sync_snapshots_total %lld\n",
        (long long)m->syncs);
    out(&o, "# TYPE vc_gateway_sync_chunks_total counter\nvc_gateway_sync_chunks_total %lld\n",
        (long long)m->sync_chunks);
    out(&o, "# HELP vc_gateway_producer_queue_depth Events waiting in librdkafka.\n"
            "# TYPE vc_gateway_producer_queue_depth gauge\nvc_gateway_producer_queue_depth %lld\n",
        (long long)ps->queue_len);
    out(&o, "# TYPE vc_gateway_events_produced_total counter\nvc_gateway_events_produced_total %lld\n",
        (long long)ps->produced);
    out(&o, "# TYPE vc_gateway_events_delivered_total counter\nvc_gateway_events_delivered_total %lld\n",
        (long long)ps->delivered);
    out(&o, "# HELP vc_gateway_delivery_errors_total Events Kafka did not take after retries.\n"
            "# TYPE vc_gateway_delivery_errors_total counter\nvc_gateway_delivery_errors_total %lld\n",
        (long long)ps->delivery_errors);
    out(&o, "# TYPE vc_gateway_produce_queue_full_total counter\nvc_gateway_produce_queue_full_total %lld\n",
        (long long)ps->queue_full);
    out(&o, "# TYPE vc_gateway_produce_errors_total counter\nvc_gateway_produce_errors_total %lld\n",
        (long long)ps->produce_errors);
    out(&o, "# TYPE vc_gateway_kafka_outages_total counter\nvc_gateway_kafka_outages_total %lld\n",
        (long long)ps->outages);
    out(&o, "# HELP vc_gateway_redis_reads_total Pipelined count reads from Redis.\n"
            "# TYPE vc_gateway_redis_reads_total counter\nvc_gateway_redis_reads_total %lld\n",
        (long long)rs->reads);
    out(&o, "# TYPE vc_gateway_redis_read_errors_total counter\nvc_gateway_redis_read_errors_total %lld\n",
        (long long)rs->read_errors);
    out(&o, "# HELP vc_gateway_redis_read_seconds Time of the pipelined count reads.\n"
            "# TYPE vc_gateway_redis_read_seconds summary\nvc_gateway_redis_read_seconds_sum %.6f\n"
            "vc_gateway_redis_read_seconds_count %lld\n",
        rs->read_ms_sum / 1000.0, (long long)rs->reads);
    out(&o, "# TYPE vc_gateway_redis_read_last_seconds gauge\nvc_gateway_redis_read_last_seconds %.6f\n",
        rs->read_ms_last / 1000.0);
    out(&o, "# TYPE vc_gateway_redis_up gauge\nvc_gateway_redis_up %d\n", rs->redis_up);
    out(&o, "# TYPE vc_gateway_db_reads_total counter\nvc_gateway_db_reads_total %lld\n", (long long)rs->db_reads);
    out(&o, "# TYPE vc_gateway_db_read_errors_total counter\nvc_gateway_db_read_errors_total %lld\n",
        (long long)rs->db_errors);
    out(&o, "# HELP vc_gateway_history_requests_total Stream history requests (GET /api/streams/<id>/history).\n"
            "# TYPE vc_gateway_history_requests_total counter\nvc_gateway_history_requests_total %lld\n",
        (long long)m->history_requests);
    out(&o, "# TYPE vc_gateway_history_cache_hits_total counter\nvc_gateway_history_cache_hits_total %lld\n",
        (long long)m->history_cache_hits);
    out(&o, "# HELP vc_gateway_history_queries_total Reads of viewer_history from MariaDB (failed ones included).\n"
            "# TYPE vc_gateway_history_queries_total counter\nvc_gateway_history_queries_total %lld\n",
        (long long)m->history_queries);
    out(&o, "# TYPE vc_gateway_history_errors_total counter\nvc_gateway_history_errors_total %lld\n",
        (long long)m->history_query_errors);
    out(&o, "# TYPE vc_gateway_web_not_modified_total counter\nvc_gateway_web_not_modified_total %lld\n",
        (long long)m->web_not_modified);
    return o.overflow ? -1 : (int)o.off;
}
