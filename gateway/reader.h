/* reader.h -- the counts reader: a thread of its own that reads, once a tick,
 * the Redis stream hashes of every stream this gateway holds (one pipelined
 * batch, replicas allowed), falls back to the database's current_viewers
 * rows, applies the degradation rules (count.h) and hands the results to
 * the loop thread. It also answers the HTTP API's reads (one stream, the
 * ranking). The loop never blocks on it: requests and results cross under a
 * mutex, and the reader wakes the loop through the wake callback. */
#ifndef GW_READER_H
#define GW_READER_H

#include <stddef.h>
#include <stdint.h>

#include "count.h"
#include "producer.h"

typedef struct gw_reader gw_reader;

typedef struct {
    const char *redis_nodes;
    int redis_timeout_ms;
    const char *mysql_host;   /* NULL or "": no database fallback */
    int mysql_port;
    const char *mysql_user, *mysql_password, *mysql_db;
    gw_producer *producer;    /* partition count (metadata is refreshed here) */
    void (*wake)(void *arg);  /* called from the reader thread; must be thread-safe */
    void *wake_arg;
} gw_reader_conf;

typedef struct {
    int64_t stream_id;
    gw_count count;
} gw_reader_result;

#define GW_RANKING_LIMIT_MAX 100

typedef struct {
    int64_t category;         /* 0: every category */
    int limit;
    int ok;                   /* 0: Redis unreachable, json is an error object */
    char *json;               /* owned by the result */
} gw_ranking_result;

typedef struct {
    int64_t reads, read_errors;     /* Redis batches */
    double read_ms_sum, read_ms_last;
    int64_t db_reads, db_errors;
    int redis_up;
    int64_t redis_ok_ms;            /* monotonic time of the last Redis answer, 0: never */
} gw_reader_stats;

/* Start the thread. conf's strings are copied. NULL and errstr on failure. */
gw_reader *gw_reader_new(const gw_reader_conf *conf, char *errstr, size_t errstr_size);
/* Stop and join the thread, free everything. Accepts NULL. */
void gw_reader_destroy(gw_reader *r);

/* Loop thread, once a tick: the streams held now. Takes ownership of ids
 * (malloc'd) and wakes the reader. */
void gw_reader_post_streams(gw_reader *r, int64_t *ids, size_t n);
/* Loop thread: read this stream once even if not held (HTTP API). */
void gw_reader_want_stream(gw_reader *r, int64_t stream_id);
/* Loop thread: compute this ranking (limit clamped to 1..GW_RANKING_LIMIT_MAX). */
void gw_reader_want_ranking(gw_reader *r, int64_t category, int limit);

/* Loop thread: take every result since the last call. The caller frees the
 * arrays with free() and each ranking's json with free(). */
void gw_reader_take(gw_reader *r, gw_reader_result **res, size_t *nres, gw_ranking_result **rank,
                    size_t *nrank);

void gw_reader_get_stats(gw_reader *r, gw_reader_stats *st);

/* Pure: merge per-partition ZREVRANGE WITHSCORES answers (member, score
 * pairs) into the top `limit` as a JSON object {"category":C,"streams":[{"stream":S,"viewers":N},...]}.
 * Returns a malloc'd string or NULL. */
typedef struct {
    int64_t stream_id;
    int64_t viewers;
} gw_rank_entry;
char *gw_ranking_json(int64_t category, gw_rank_entry *entries, size_t n, int limit);

#endif
