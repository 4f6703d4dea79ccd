/* history.h -- a stream's 5-minute rollups (viewer_history, written by
 * vc-sink) for GET /api/streams/<id>/history?hours=N, read from the MariaDB
 * reader replica (the writer when no reader is configured) by a thread of
 * its own: the loop thread never blocks on the database.
 *
 * Answers are cached per (stream, hours) for cache_ms: the rollups change
 * every 5 minutes, and thousands of viewers opening one star's page must
 * cost one query, not thousands. A read that is already queued or running
 * is not queued again: every request for it waits for the same answer.
 * Errors (database unreachable) are cached for GW_HISTORY_ERROR_CACHE_MS. */
#ifndef GW_HISTORY_H
#define GW_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#define GW_HISTORY_HOURS_DEFAULT 6
#define GW_HISTORY_HOURS_MIN 1
#define GW_HISTORY_HOURS_MAX 48
#define GW_HISTORY_ROWS_MAX 2000          /* 48 h of 5-minute buckets is 576 */
#define GW_HISTORY_QUEUE_MAX 256          /* distinct reads waiting for the thread */
#define GW_HISTORY_CACHE_SLOTS 1024       /* (stream, hours) answers kept */
#define GW_HISTORY_CACHE_BYTES (16 * 1024 * 1024)
#define GW_HISTORY_ERROR_CACHE_MS 2000
#define GW_HISTORY_RETRY_MS 2000          /* no new connection attempt sooner after a failed one */

/* One rollup row. avg_milli: the time-weighted average in thousandths (the
 * column is DECIMAL(12,3)), so the JSON carries it exactly. */
typedef struct {
    int64_t start;                        /* bucket start, Unix seconds (UTC) */
    int64_t seconds;                      /* bucket length */
    int64_t avg_milli;
    int64_t peak, min, distinct, joins, leaves;
} gw_history_row;

/* Pure: the answer's JSON (malloc'd, NULL when out of memory):
 *   {"stream":S,"hours":H,"buckets":[{"start":T,"at":"YYYY-MM-DDTHH:MM:SSZ","seconds":300,
 *     "avg":12.5,"peak":20,"min":5,"distinct":30,"joins":3,"leaves":1},...]}
 * rows in the order given (the query sorts them by start). */
char *gw_history_format(int64_t stream, int hours, const gw_history_row *rows, size_t n);

/* Pure: "12.500" / "7" / "0.25" -> thousandths; 0 or -1 when not a
 * non-negative decimal with at most 3 fraction digits. */
int gw_history_parse_milli(const char *s, int64_t *milli);

typedef struct gw_history gw_history;

typedef struct {
    const char *mysql_host;               /* NULL or empty: no database, every read answers 503 */
    int mysql_port;
    const char *mysql_user, *mysql_password, *mysql_db;
    int cache_ms;                         /* how long a successful answer is served from memory */
    void (*wake)(void *arg);              /* called from the thread when answers are ready; thread-safe */
    void *wake_arg;
} gw_history_conf;

typedef struct {
    int64_t stream;
    int hours;
    int status;                           /* 200 or 503 */
    char *json;                           /* owned by the answer */
} gw_history_answer;

typedef struct {
    int64_t queries, query_errors;        /* database reads (thread) */
    int64_t cache_hits, requests;         /* gw_history_lookup calls answered from memory / all */
} gw_history_stats;

/* Start the thread (strings copied). NULL with errstr on failure. */
gw_history *gw_history_new(const gw_history_conf *conf, char *errstr, size_t errstr_size);

/* Stop the thread (waits for a query in flight, bounded by the connection
 * timeouts) and free everything. Accepts NULL. */
void gw_history_destroy(gw_history *h);

/* Any thread: the cached answer for (stream, hours) if still fresh: 1 and
 * *status, *json (malloc'd copy, caller frees). Else 0: the read is queued
 * (unless it already is) and its answer arrives through gw_history_take;
 * *status = 503 and *json = NULL with 1 when the queue is full. */
int gw_history_lookup(gw_history *h, int64_t stream, int hours, int *status, char **json);

/* Loop thread: every answer read since the last call (caller frees the
 * array and each json). */
void gw_history_take(gw_history *h, gw_history_answer **out, size_t *n);

void gw_history_get_stats(gw_history *h, gw_history_stats *st);

#endif
