/* rollup.h -- the sink's pure logic: one Kafka partition's events in, rows out.
 *
 * Per partition, in event time, an sk_rollup tracks the open connections and
 * the distinct viewers of every stream (a user with several connections counts
 * once; an anonymous viewer counts per connection), the partition clock and the
 * gateway liveness / sync snapshots through schemas/vc_rules.h (the very rules
 * the aggregator applies), and closes fixed buckets of rollup_ms aligned on
 * the epoch. Closing a bucket produces, for every stream that had a viewer or
 * an event in it, one history row, the stream's current row and its daily
 * deltas; a connection that ends produces a session row.
 *
 * Event time: the partition clock is the largest ts_ms seen (vc_liveness). An
 * event is applied at max(ts_ms, start of the open bucket, the stream's last
 * change), so a late event never rewrites a closed bucket. Bucket b is closed
 * by the first event whose ts pushes the clock to or past its end. Output is a
 * function of the events alone, so a replay from a checkpoint produces exactly
 * the rows a run without the replay produced.
 *
 * No I/O, no wall clock. Not thread-safe. */
#ifndef SK_ROLLUP_H
#define SK_ROLLUP_H

#include <stddef.h>
#include <stdint.h>

#include "map.h"
#include "vc_event.h"

#define SK_CHECKPOINT_FORMAT 1

typedef enum {
    SK_END_CLIENT_CLOSED = 0,
    SK_END_HEARTBEAT_TIMEOUT,
    SK_END_GATEWAY_SHUTDOWN,
    SK_END_REJECTED,
    SK_END_GATEWAY_DEAD,      /* gateway epoch expired or restarted (vc_liveness) */
    SK_END_REPAIR,            /* not in the gateway's sync snapshot */
} sk_end_reason;

/* The user_sessions.leave_reason value of a reason. */
const char *sk_end_reason_sql(sk_end_reason reason);

typedef struct {
    int64_t stream_id;
    int64_t bucket_ms;        /* bucket start */
    uint32_t bucket_s;
    uint32_t peak, min;
    int64_t watch_ms;         /* integral of the distinct count over the bucket */
    uint32_t joins, leaves, distinct;
} sk_history_row;

typedef struct {
    int64_t stream_id;
    uint32_t viewers;         /* distinct viewers at updated_ms */
    uint32_t peak;            /* highest count seen by this state */
    int64_t peak_ms;
    uint64_t arrivals;        /* new viewers since the previous current row (add to total) */
    int64_t started_ms;       /* first event of the stream seen */
    int64_t updated_ms;       /* end of the bucket */
} sk_current_row;

typedef struct {
    int64_t day_ms;           /* UTC midnight */
    int64_t stream_id;
    uint32_t peak;            /* max of the bucket peaks */
    uint32_t live_s;
    int64_t watch_ms;
    uint32_t joins, leaves, sessions;
} sk_daily_row;               /* deltas to add */

typedef struct {
    int64_t stream_id;
    char gateway_id[VC_GATEWAY_ID_MAX + 1];
    int64_t conn_id;
    int64_t user_id;          /* 0: anonymous */
    int64_t joined_ms, left_ms;
    sk_end_reason reason;
} sk_session_row;

/* Rows produced since the last sk_rollup_rows_clear(). The maps hold
 * sk_current_row (key: stream) and sk_daily_row (key: day, stream). */
typedef struct {
    sk_history_row *hist;
    size_t nhist, hist_cap;
    sk_session_row *sess;
    size_t nsess, sess_cap;
    sk_map current;
    sk_map daily;
} sk_rows;

typedef struct {
    int64_t rollup_ms;            /* > 0, a multiple of 1000 */
    int64_t liveness_timeout_ms;  /* vc_liveness */
    size_t sync_max_viewers;      /* vc_sync_asm */
    int64_t sync_max_age_ms;
} sk_rollup_conf;

typedef struct sk_rollup sk_rollup;

/* NULL on allocation failure. */
sk_rollup *sk_rollup_new(const sk_rollup_conf *conf);
void sk_rollup_destroy(sk_rollup *r); /* accepts NULL */

/* Apply the partition's next event. Returns 0, or -1 on allocation failure
 * (the state is then unusable: destroy it and reload the checkpoint). */
int sk_rollup_apply(sk_rollup *r, const vc_event *ev);

/* Rows waiting to be written; valid until the next apply or clear. */
const sk_rows *sk_rollup_rows(const sk_rollup *r);
size_t sk_rollup_rows_pending(const sk_rollup *r); /* hist + sess + current + daily */
void sk_rollup_rows_clear(sk_rollup *r);

/* Number of streams / open connections tracked, the partition clock. */
size_t sk_rollup_streams(const sk_rollup *r);
size_t sk_rollup_conns(const sk_rollup *r);
int64_t sk_rollup_clock(const sk_rollup *r);

/* Serialise the open state (not the pending rows) into a new buffer that the
 * caller frees; sets *len. NULL on allocation failure. */
uint8_t *sk_rollup_save(const sk_rollup *r, size_t *len);
/* Rebuild from sk_rollup_save() bytes; len 0 gives a fresh state. NULL with
 * errstr filled on bad bytes or a format of another rollup_ms. */
sk_rollup *sk_rollup_load(const sk_rollup_conf *conf, const uint8_t *buf, size_t len,
                          char *errstr, size_t errstr_size);

#endif
