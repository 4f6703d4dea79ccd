/* metrics.h -- vc-sink's counters, written by the consumer thread and read by
 * the HTTP thread (/metrics in Prometheus text format, /healthz). */
#ifndef SK_METRICS_H
#define SK_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    atomic_uint_fast64_t events;          /* messages applied */
    atomic_uint_fast64_t dead_lettered;   /* undecodable messages sent to the DLQ */
    atomic_uint_fast64_t flushes;
    atomic_uint_fast64_t flush_ms_sum;
    atomic_uint_fast64_t flush_ms_last;
    atomic_uint_fast64_t retries;         /* failed flush / load attempts retried */
    atomic_uint_fast64_t fenced;          /* flushes refused because another consumer wrote the partition */
    atomic_uint_fast64_t rows_viewer_history, rows_current_viewers, rows_daily_statistics, rows_user_sessions;
    atomic_uint_fast64_t checkpoint_bytes;
    atomic_int_fast64_t lag;              /* messages behind the high watermarks, assigned partitions */
    atomic_int_fast64_t partitions;       /* assigned */
    atomic_int db_ok;                     /* 0 while retrying the database */
    atomic_int running;
} sk_metrics;

/* Render the Prometheus text into buf; returns the length (truncated to size-1). */
size_t sk_metrics_render(sk_metrics *m, char *buf, size_t size);

#endif
