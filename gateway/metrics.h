/* metrics.h -- the gateway's counters and their Prometheus text. */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "producer.h"
#include "reader.h"
#include "token.h"

typedef enum {
    GW_REJECT_BAD_STREAM = 0,   /* HTTP 400 */
    GW_REJECT_ORIGIN,           /* 403 */
    GW_REJECT_RATE,             /* 429 */
    GW_REJECT_CONNS_PER_IP,     /* 429 */
    GW_REJECT_IP_TABLE,         /* 503 */
    GW_REJECT_CAPACITY,         /* 503 */
    GW_REJECT_SHUTDOWN,         /* 503 */
    GW_REJECT_NO_TOKEN,         /* 4401 */
    GW_REJECT_TOKEN,            /* 4401, by gw_token_rc below */
    GW_REJECT__COUNT
} gw_reject;

const char *gw_reject_name(gw_reject r);

/* Closes we initiate for bad frames, by code. */
typedef enum {
    GW_BADFRAME_TOO_BIG = 0,    /* 1009 */
    GW_BADFRAME_BINARY,         /* 1003 */
    GW_BADFRAME_NOT_JSON,       /* 1003 */
    GW_BADFRAME_UNKNOWN_TYPE,   /* 1008 */
    GW_BADFRAME__COUNT
} gw_badframe;

typedef struct {
    int64_t connections;        /* viewers now */
    int64_t joins;
    int64_t leaves[4];          /* by vc_leave_reason */
    int64_t rejects[GW_REJECT__COUNT];
    int64_t token_rejects[GW_TOKEN__COUNT];
    int64_t badframes[GW_BADFRAME__COUNT];
    int64_t pushes_sent, pushes_superseded, pongs, pings_sent;
    int64_t http_requests;
    int64_t accept_errors;      /* accept() or lws adoption failed (e.g. out of descriptors) */
    int64_t heartbeats, syncs, sync_chunks;
    int64_t streams;
    int64_t fanouts;            /* count changes written to every viewer of the stream */
    double fanout_ms_sum, fanout_ms_last;
    /* GET /api/streams/<id>/history: requests, answered from the cache, database reads and failed ones
     * (copied from the history thread's stats before formatting) */
    int64_t history_requests, history_cache_hits, history_queries, history_query_errors;
    int64_t web_not_modified;   /* static files answered 304 (If-None-Match) */
} gw_metrics;

/* Write the Prometheus exposition into buf. Returns the length, or -1 if it
 * did not fit. */
int gw_metrics_format(char *buf, size_t size, const gw_metrics *m, const gw_producer_stats *ps,
                      const gw_reader_stats *rs, const char *gateway_id);

#endif
