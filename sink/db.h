/* db.h -- the sink's MariaDB writer: one transaction per partition flush.
 *
 * A flush writes the rows of sk_rows (multi-row INSERT ... ON DUPLICATE KEY
 * UPDATE, chunked), the partition's next offset and its checkpoint, and
 * commits. The stored offset doubles as a fence: the flush first locks the
 * partition's sink_offsets row and checks that it still holds the offset this
 * process loaded or last wrote; anything else means another consumer wrote
 * the partition since (a rebalance), and the flush is refused (SK_DB_FENCED).
 *
 * Errors are classified: SK_DB_RETRY (server down, restarting, read-only,
 * deadlock: nothing was written, close + reconnect + try again later),
 * SK_DB_FENCED (reload the checkpoint), SK_DB_FATAL (schema or data error).
 * A commit whose outcome is unknown (the connection dropped during COMMIT) is
 * resolved by reconnecting and reading the stored offset. */
#ifndef SK_DB_H
#define SK_DB_H

#include <stddef.h>
#include <stdint.h>

#include "rollup.h"

typedef enum {
    SK_DB_OK = 0,
    SK_DB_RETRY,
    SK_DB_FENCED,
    SK_DB_FATAL,
} sk_db_rc;

const char *sk_db_rc_name(sk_db_rc rc);

typedef struct {
    const char *host;
    int port;
    const char *user;
    const char *password;
    const char *db;
    int timeout_s;            /* connect / read / write timeout */
} sk_db_conf;

/* Rows written by the flushes of this writer, per table. */
typedef struct {
    uint64_t viewer_history, current_viewers, daily_statistics, daily_broadcaster_statistics,
        user_sessions, checkpoints;
    uint64_t checkpoint_bytes;
} sk_db_counts;

typedef struct sk_db sk_db;

/* Copies the strings of conf. Does not connect. NULL on allocation failure. */
sk_db *sk_db_new(const sk_db_conf *conf);
void sk_db_destroy(sk_db *db); /* accepts NULL */

/* Connect if not connected (UTC session, autocommit off). */
sk_db_rc sk_db_connect(sk_db *db, char *errstr, size_t errstr_size);
/* Drop the connection (the next call reconnects). */
void sk_db_disconnect(sk_db *db);

/* Load a partition's stored next offset (-1 if none) and checkpoint (*blob
 * malloc'ed, caller frees; NULL and *len 0 if none). */
sk_db_rc sk_db_load(sk_db *db, const char *group, const char *topic, int32_t partition,
                    int64_t *next_offset, uint8_t **blob, size_t *len, char *errstr, size_t errstr_size);

/* One transaction: rows + next_offset + checkpoint, fenced on expect_offset
 * (-1: the partition has no stored offset yet). On SK_DB_OK the data is
 * committed and counts (if not NULL) is incremented. */
sk_db_rc sk_db_flush(sk_db *db, const char *group, const char *topic, int32_t partition,
                     const sk_rows *rows, int64_t expect_offset, int64_t next_offset,
                     const uint8_t *blob, size_t len, sk_db_counts *counts,
                     char *errstr, size_t errstr_size);

/* CALL vc_partition_maintenance(UTC_DATE()). */
sk_db_rc sk_db_maintain(sk_db *db, char *errstr, size_t errstr_size);

/* Format an event time (ms since the epoch) as 'YYYY-MM-DD HH:MM:SS.mmm' (UTC). */
void sk_db_time(int64_t ms, char *out, size_t size);

#endif
