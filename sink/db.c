#include "db.h"

#include <errno.h>
#include <inttypes.h>
#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SK_DB_ROWS_PER_STMT 5000
#define SK_SQL_MAX (32u << 20) /* one statement never exceeds this (max_allowed_packet is 64M+) */

struct sk_db {
    char *host, *user, *password, *name;
    int port;
    int timeout_s;
    MYSQL *my;
};

typedef struct {
    char *p;
    size_t len, cap;
    int err;                  /* over SK_SQL_MAX or out of memory */
} sqlbuf;

const char *sk_db_rc_name(sk_db_rc rc)
{
    switch (rc) {
    case SK_DB_OK: return "ok";
    case SK_DB_RETRY: return "retry";
    case SK_DB_FENCED: return "fenced";
    case SK_DB_FATAL: return "fatal";
    }
    return "?";
}

static void sb_reserve(sqlbuf *b, size_t n)
{
    if (b->err || b->len + n + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + n + 1)
        cap *= 2;
    if (cap > SK_SQL_MAX) {
        b->err = 1;
        return;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->err = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

__attribute__((format(printf, 2, 3))) static void sb_printf(sqlbuf *b, const char *fmt, ...)
{
    for (int pass = 0; pass < 2 && !b->err; pass++) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = b->cap ? vsnprintf(b->p + b->len, room, fmt, ap) : -2;
        va_end(ap);
        if (n >= 0 && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        sb_reserve(b, n >= 0 ? (size_t)n + 1 : 256);
    }
    if (!b->err)
        b->err = 1;
}

static void sb_reset(sqlbuf *b)
{
    b->len = 0;
    b->err = 0;
    if (b->p)
        b->p[0] = 0;
}

void sk_db_time(int64_t ms, char *out, size_t size)
{
    int64_t sec = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int frac = (int)(ms - sec * 1000);
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    /* A year beyond 9999 would not fit DATETIME(3) anyway: an empty string
     * then, which the server refuses, rather than a truncated time. */
    if (snprintf(out, size, "%04d-%02d-%02d %02d:%02d:%02d.%03d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac) >= (int)size && size > 0)
        out[0] = '\0';
}

static void sk_db_date(int64_t ms, char *out, size_t size)
{
    char tmp[32];
    sk_db_time(ms, tmp, sizeof tmp);
    snprintf(out, size, "%.10s", tmp);
}

/* milli-units as a DECIMAL literal */
static void milli(int64_t v, char *out, size_t size)
{
    snprintf(out, size, "%s%" PRId64 ".%03" PRId64, v < 0 ? "-" : "", (v < 0 ? -v : v) / 1000,
             (v < 0 ? -v : v) % 1000);
}

static char *dupstr(const char *s) { return strdup(s ? s : ""); }

sk_db *sk_db_new(const sk_db_conf *conf)
{
    sk_db *db = calloc(1, sizeof *db);
    if (!db)
        return NULL;
    db->host = dupstr(conf->host);
    db->user = dupstr(conf->user);
    db->password = dupstr(conf->password);
    db->name = dupstr(conf->db);
    db->port = conf->port;
    db->timeout_s = conf->timeout_s > 0 ? conf->timeout_s : 10;
    if (!db->host || !db->user || !db->password || !db->name) {
        sk_db_destroy(db);
        return NULL;
    }
    return db;
}

void sk_db_disconnect(sk_db *db)
{
    if (db->my) {
        mysql_close(db->my);
        db->my = NULL;
    }
}

void sk_db_destroy(sk_db *db)
{
    if (!db)
        return;
    sk_db_disconnect(db);
    free(db->host);
    free(db->user);
    free(db->password);
    free(db->name);
    free(db);
}

/* Retryable: the server is down, restarting, read-only, or gave up on us. */
static sk_db_rc classify(unsigned int err)
{
    switch (err) {
    case ER_OPTION_PREVENTS_STATEMENT: /* read_only: a writer that was failed over */
    case ER_READ_ONLY_MODE:
    case ER_LOCK_DEADLOCK:
    case ER_LOCK_WAIT_TIMEOUT:
    case ER_SERVER_SHUTDOWN:
    case ER_CONNECTION_KILLED:
    case ER_QUERY_INTERRUPTED:
    case ER_CON_COUNT_ERROR:
    case ER_TOO_MANY_USER_CONNECTIONS:
    case ER_HOST_IS_BLOCKED:
    case ER_UNKNOWN_COM_ERROR:
    case 4031: /* client interaction timeout */
        return SK_DB_RETRY;
    default:
        /* 2000-2999 are the client's own errors: connection trouble */
        return err >= 2000 && err < 3000 ? SK_DB_RETRY : SK_DB_FATAL;
    }
}

/* Fill errstr from the connection's last error, drop the connection (the next
 * call reconnects) and classify. */
static sk_db_rc fail(sk_db *db, const char *what, char *errstr, size_t errstr_size)
{
    unsigned int err = db->my ? mysql_errno(db->my) : CR_OUT_OF_MEMORY;
    snprintf(errstr, errstr_size, "%s: %u %s", what, err, db->my ? mysql_error(db->my) : "no connection");
    sk_db_disconnect(db);
    return classify(err);
}

sk_db_rc sk_db_connect(sk_db *db, char *errstr, size_t errstr_size)
{
    if (db->my)
        return SK_DB_OK;
    db->my = mysql_init(NULL);
    if (!db->my) {
        snprintf(errstr, errstr_size, "mysql_init: out of memory");
        return SK_DB_RETRY;
    }
    unsigned int t = (unsigned int)db->timeout_s;
    my_bool no = 0;
    mysql_options(db->my, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    mysql_options(db->my, MYSQL_OPT_READ_TIMEOUT, &t);
    mysql_options(db->my, MYSQL_OPT_WRITE_TIMEOUT, &t);
    mysql_options(db->my, MYSQL_OPT_RECONNECT, &no); /* a silent reconnect would lose the transaction */
    mysql_options(db->my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (!mysql_real_connect(db->my, db->host, db->user, db->password, db->name, (unsigned int)db->port,
                            NULL, 0))
        return fail(db, "connect", errstr, errstr_size);
    if (mysql_query(db->my, "SET time_zone = '+00:00', tx_isolation = 'READ-COMMITTED'") ||
        mysql_autocommit(db->my, 0))
        return fail(db, "session setup", errstr, errstr_size);
    return SK_DB_OK;
}

static sk_db_rc query(sk_db *db, const char *sql, size_t len, const char *what, char *errstr, size_t errstr_size)
{
    if (mysql_real_query(db->my, sql, (unsigned long)len))
        return fail(db, what, errstr, errstr_size);
    MYSQL_RES *res = mysql_store_result(db->my);
    if (res)
        mysql_free_result(res);
    else if (mysql_field_count(db->my) != 0)
        return fail(db, what, errstr, errstr_size);
    return SK_DB_OK;
}

static void rollback(sk_db *db)
{
    if (db->my && mysql_rollback(db->my))
        sk_db_disconnect(db);
}

/* Read the stored next offset (-1: none) and optionally the checkpoint. */
static sk_db_rc read_offset(sk_db *db, const char *group, const char *topic, int32_t partition, int lock,
                            int64_t *next_offset, char *errstr, size_t errstr_size)
{
    char g[2 * 128 + 1], t[2 * 249 + 1], sql[1024];
    mysql_real_escape_string(db->my, g, group, (unsigned long)strnlen(group, 128));
    mysql_real_escape_string(db->my, t, topic, (unsigned long)strnlen(topic, 249));
    int n = snprintf(sql, sizeof sql,
                     "SELECT next_offset FROM sink_offsets WHERE consumer_group='%s' AND topic='%s' "
                     "AND kpartition=%d%s",
                     g, t, (int)partition, lock ? " FOR UPDATE" : "");
    if (mysql_real_query(db->my, sql, (unsigned long)n))
        return fail(db, "read offset", errstr, errstr_size);
    MYSQL_RES *res = mysql_store_result(db->my);
    if (!res)
        return fail(db, "read offset", errstr, errstr_size);
    MYSQL_ROW row = mysql_fetch_row(res);
    *next_offset = row && row[0] ? strtoll(row[0], NULL, 10) : -1;
    mysql_free_result(res);
    return SK_DB_OK;
}

sk_db_rc sk_db_load(sk_db *db, const char *group, const char *topic, int32_t partition,
                    int64_t *next_offset, uint8_t **blob, size_t *len, char *errstr, size_t errstr_size)
{
    *blob = NULL;
    *len = 0;
    sk_db_rc rc = sk_db_connect(db, errstr, errstr_size);
    if (rc)
        return rc;
    /* one consistent read of both rows */
    if (mysql_query(db->my, "START TRANSACTION WITH CONSISTENT SNAPSHOT"))
        return fail(db, "load", errstr, errstr_size);
    rc = read_offset(db, group, topic, partition, 0, next_offset, errstr, errstr_size);
    if (rc)
        return rc;
    char g[2 * 128 + 1], t[2 * 249 + 1], sql[1024];
    mysql_real_escape_string(db->my, g, group, (unsigned long)strnlen(group, 128));
    mysql_real_escape_string(db->my, t, topic, (unsigned long)strnlen(topic, 249));
    int n = snprintf(sql, sizeof sql,
                     "SELECT format, state FROM sink_checkpoints WHERE consumer_group='%s' AND topic='%s' "
                     "AND kpartition=%d",
                     g, t, (int)partition);
    if (mysql_real_query(db->my, sql, (unsigned long)n))
        return fail(db, "load checkpoint", errstr, errstr_size);
    MYSQL_RES *res = mysql_store_result(db->my);
    if (!res)
        return fail(db, "load checkpoint", errstr, errstr_size);
    MYSQL_ROW row = mysql_fetch_row(res);
    unsigned long *lens = row ? mysql_fetch_lengths(res) : NULL;
    if (row && row[1] && lens[1] > 0) {
        *blob = malloc(lens[1]);
        if (!*blob) {
            mysql_free_result(res);
            rollback(db);
            snprintf(errstr, errstr_size, "load checkpoint: out of memory (%lu bytes)", lens[1]);
            return SK_DB_FATAL;
        }
        memcpy(*blob, row[1], lens[1]);
        *len = lens[1];
    }
    mysql_free_result(res);
    rollback(db);
    if (*next_offset >= 0 && !*blob) {
        snprintf(errstr, errstr_size, "partition %d has an offset but no checkpoint", (int)partition);
        return SK_DB_FATAL;
    }
    return SK_DB_OK;
}

/* ---- the flush --------------------------------------------------------- */

static sk_db_rc run(sk_db *db, sqlbuf *b, const char *what, char *errstr, size_t errstr_size)
{
    if (b->err) {
        snprintf(errstr, errstr_size, "%s: statement too large or out of memory", what);
        return SK_DB_FATAL;
    }
    sk_db_rc rc = query(db, b->p, b->len, what, errstr, errstr_size);
    sb_reset(b);
    return rc;
}

/* One table's rows as multi-row INSERT ... ON DUPLICATE KEY UPDATE
 * statements of at most SK_DB_ROWS_PER_STMT rows: up_row() opens a row (the
 * statement's head before the first one, a comma before the others), the
 * caller appends the row's values, up_done() closes the statement with its
 * update clause and runs it after every SK_DB_ROWS_PER_STMT rows and after the
 * last one. */
typedef struct {
    sk_db *db;
    sqlbuf *b;
    const char *what;  /* the table, for errors */
    const char *head;  /* "INSERT INTO t (...) VALUES " */
    const char *tail;  /* " ON DUPLICATE KEY UPDATE ..." */
    size_t n, total;
} upsert;

static void up_row(upsert *u)
{
    sb_printf(u->b, "%s", u->b->len == 0 ? u->head : ",");
}

static sk_db_rc up_done(upsert *u, char *errstr, size_t errstr_size)
{
    if (++u->n % SK_DB_ROWS_PER_STMT != 0 && u->n != u->total)
        return SK_DB_OK;
    sb_printf(u->b, "%s", u->tail);
    return run(u->db, u->b, u->what, errstr, errstr_size);
}

/* ---- master data of the flushed streams -------------------------------- */

/* What `streams` says about a stream, looked up once per flush for all of its
 * streams (batched IN lists), so that the rows carry broadcaster and category
 * as literals instead of one sub-query per row. */
typedef struct {
    int known;
    int64_t broadcaster_id;
    int64_t category_id;
    char status[16];
    char started_at[32];      /* '' when NULL */
} sk_master;

static sk_db_rc master_chunk(sk_db *db, sqlbuf *b, sk_map *master, char *errstr, size_t errstr_size)
{
    sb_printf(b, ")");
    if (b->err) {
        snprintf(errstr, errstr_size, "streams look-up: statement too large");
        return SK_DB_FATAL;
    }
    if (mysql_real_query(db->my, b->p, (unsigned long)b->len))
        return fail(db, "streams look-up", errstr, errstr_size);
    sb_reset(b);
    MYSQL_RES *res = mysql_store_result(db->my);
    if (!res)
        return fail(db, "streams look-up", errstr, errstr_size);
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        sk_master *m = sk_map_get(master, (sk_key){(uint64_t)strtoll(row[0], NULL, 10), 0});
        if (!m)
            continue;
        m->known = 1;
        m->broadcaster_id = strtoll(row[1], NULL, 10);
        m->category_id = strtoll(row[2], NULL, 10);
        snprintf(m->status, sizeof m->status, "%s", row[3] ? row[3] : "live");
        snprintf(m->started_at, sizeof m->started_at, "%s", row[4] ? row[4] : "");
    }
    mysql_free_result(res);
    return SK_DB_OK;
}

static sk_db_rc master_load(sk_db *db, sqlbuf *b, const sk_rows *rows, sk_map *master, char *errstr,
                            size_t errstr_size)
{
    const sk_map *srcs[2] = {&rows->current, &rows->daily};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < srcs[k]->cap; i++) {
            if (!srcs[k]->used[i])
                continue;
            int64_t id = k == 0 ? ((const sk_current_row *)sk_map_val(srcs[k], i))->stream_id
                                : ((const sk_daily_row *)sk_map_val(srcs[k], i))->stream_id;
            if (!sk_map_put(master, (sk_key){(uint64_t)id, 0}, NULL)) {
                snprintf(errstr, errstr_size, "streams look-up: out of memory");
                return SK_DB_FATAL;
            }
        }
    size_t n = 0;
    for (size_t i = 0; i < master->cap; i++) {
        if (!master->used[i])
            continue;
        sb_printf(b, n % SK_DB_ROWS_PER_STMT == 0
                         ? "SELECT stream_id, broadcaster_id, category_id, status, started_at FROM streams "
                           "WHERE stream_id IN (%" PRId64
                         : ",%" PRId64,
                  (int64_t)master->keys[i].a);
        if (++n % SK_DB_ROWS_PER_STMT == 0) {
            sk_db_rc rc = master_chunk(db, b, master, errstr, errstr_size);
            if (rc)
                return rc;
        }
    }
    if (n % SK_DB_ROWS_PER_STMT)
        return master_chunk(db, b, master, errstr, errstr_size);
    return SK_DB_OK;
}

static const sk_master *master_of(const sk_map *master, int64_t stream_id)
{
    static const sk_master unknown = {0};
    const sk_master *m = sk_map_get(master, (sk_key){(uint64_t)stream_id, 0});
    return m ? m : &unknown;
}

/* "bid,cid" literals (NULL,NULL when the stream is not known) */
static void master_ids(const sk_master *m, char *out, size_t size)
{
    if (m->known)
        snprintf(out, size, "%" PRId64 ",%" PRId64, m->broadcaster_id, m->category_id);
    else
        snprintf(out, size, "NULL,NULL");
}

/* ---- the flush --------------------------------------------------------- */

static sk_db_rc write_history(sk_db *db, sqlbuf *b, const sk_rows *rows, const sk_map *master, char *errstr,
                              size_t errstr_size)
{
    upsert u = {db, b, "viewer_history",
                "INSERT INTO viewer_history (stream_id, recorded_at, bucket_seconds, broadcaster_id, category_id, "
                "peak_viewers, min_viewers, avg_viewers, joins, leaves, distinct_viewers, watch_seconds) VALUES ",
                " ON DUPLICATE KEY UPDATE bucket_seconds=VALUES(bucket_seconds), "
                "peak_viewers=VALUES(peak_viewers), min_viewers=VALUES(min_viewers), "
                "avg_viewers=VALUES(avg_viewers), joins=VALUES(joins), leaves=VALUES(leaves), "
                "distinct_viewers=VALUES(distinct_viewers), watch_seconds=VALUES(watch_seconds)",
                0, rows->nhist};
    for (size_t i = 0; i < rows->nhist; i++) {
        const sk_history_row *h = &rows->hist[i];
        char ts[32], avg[32], watch[32], ids[48];
        sk_db_time(h->bucket_ms, ts, sizeof ts);
        milli(h->bucket_s ? (h->watch_ms + h->bucket_s / 2) / h->bucket_s : 0, avg, sizeof avg);
        milli(h->watch_ms, watch, sizeof watch);
        master_ids(master_of(master, h->stream_id), ids, sizeof ids);
        up_row(&u);
        sb_printf(b, "(%" PRId64 ",'%.19s',%u,%s,%u,%u,%s,%u,%u,%u,%s)", h->stream_id, ts, h->bucket_s, ids, h->peak,
                  h->min, avg, h->joins, h->leaves, h->distinct, watch);
        sk_db_rc rc = up_done(&u, errstr, errstr_size);
        if (rc)
            return rc;
    }
    return SK_DB_OK;
}

/* Assignments see the columns assigned before them: peak_at before
 * peak_viewers, status and started_at before broadcaster_id. Master data fills
 * a row that had none; later changes of `streams` arrive through its
 * triggers. */
static sk_db_rc write_current(sk_db *db, sqlbuf *b, const sk_rows *rows, const sk_map *master, char *errstr,
                              size_t errstr_size)
{
    upsert u = {db, b, "current_viewers",
                "INSERT INTO current_viewers (stream_id, broadcaster_id, category_id, status, viewer_count, "
                "peak_viewers, peak_at, total_viewers, started_at, updated_at) VALUES ",
                " ON DUPLICATE KEY UPDATE "
                "peak_at=IF(VALUES(peak_viewers) > peak_viewers, VALUES(peak_at), peak_at), "
                "peak_viewers=GREATEST(peak_viewers, VALUES(peak_viewers)), "
                "viewer_count=VALUES(viewer_count), total_viewers=total_viewers + VALUES(total_viewers), "
                "updated_at=VALUES(updated_at), "
                "status=IF(broadcaster_id IS NULL AND VALUES(broadcaster_id) IS NOT NULL, VALUES(status), status), "
                "started_at=IF(broadcaster_id IS NULL AND VALUES(broadcaster_id) IS NOT NULL, "
                "LEAST(started_at, VALUES(started_at)), started_at), "
                "category_id=COALESCE(category_id, VALUES(category_id)), "
                "broadcaster_id=COALESCE(broadcaster_id, VALUES(broadcaster_id))",
                0, rows->current.len};
    for (size_t i = 0; i < rows->current.cap; i++) {
        if (!rows->current.used[i])
            continue;
        const sk_current_row *c = sk_map_val(&rows->current, i);
        const sk_master *m = master_of(master, c->stream_id);
        char peak_at[32], started[32], updated[32], ids[48];
        sk_db_time(c->peak_ms, peak_at, sizeof peak_at);
        sk_db_time(c->started_ms, started, sizeof started);
        sk_db_time(c->updated_ms, updated, sizeof updated);
        master_ids(m, ids, sizeof ids);
        up_row(&u);
        sb_printf(b, "(%" PRId64 ",%s,'%s',%u,%u,'%s',%" PRIu64 ",'%s','%s')", c->stream_id, ids,
                  m->known ? m->status : "live", c->viewers, c->peak, peak_at, c->arrivals,
                  m->known && m->started_at[0] ? m->started_at : started, updated);
        sk_db_rc rc = up_done(&u, errstr, errstr_size);
        if (rc)
            return rc;
    }
    return SK_DB_OK;
}

/* Per-broadcaster days are the view daily_broadcaster_statistics over these
 * rows (sql/migrations/004): nothing more to write for them. */
static sk_db_rc write_daily(sk_db *db, sqlbuf *b, const sk_rows *rows, const sk_map *master, char *errstr,
                            size_t errstr_size)
{
    upsert u = {db, b, "daily_statistics",
                "INSERT INTO daily_statistics (stat_date, stream_id, broadcaster_id, category_id, "
                "peak_viewers, live_seconds, watch_seconds, joins, leaves, sessions) VALUES ",
                " ON DUPLICATE KEY UPDATE broadcaster_id=COALESCE(broadcaster_id, VALUES(broadcaster_id)), "
                "category_id=COALESCE(category_id, VALUES(category_id)), "
                "peak_viewers=GREATEST(peak_viewers, VALUES(peak_viewers)), "
                "live_seconds=live_seconds + VALUES(live_seconds), "
                "watch_seconds=watch_seconds + VALUES(watch_seconds), joins=joins + VALUES(joins), "
                "leaves=leaves + VALUES(leaves), sessions=sessions + VALUES(sessions)",
                0, rows->daily.len};
    for (size_t i = 0; i < rows->daily.cap; i++) {
        if (!rows->daily.used[i])
            continue;
        const sk_daily_row *d = sk_map_val(&rows->daily, i);
        char day[16], watch[32], ids[48];
        sk_db_date(d->day_ms, day, sizeof day);
        milli(d->watch_ms, watch, sizeof watch);
        master_ids(master_of(master, d->stream_id), ids, sizeof ids);
        up_row(&u);
        sb_printf(b, "('%s',%" PRId64 ",%s,%u,%u,%s,%u,%u,%u)", day, d->stream_id, ids, d->peak, d->live_s, watch,
                  d->joins, d->leaves, d->sessions);
        sk_db_rc rc = up_done(&u, errstr, errstr_size);
        if (rc)
            return rc;
    }
    return SK_DB_OK;
}

static sk_db_rc write_sessions(sk_db *db, sqlbuf *b, const sk_rows *rows, char *errstr, size_t errstr_size)
{
    upsert u = {db, b, "user_sessions",
                "INSERT INTO user_sessions (stream_id, gateway_id, conn_id, left_at, joined_at, user_id, "
                "watch_seconds, leave_reason) VALUES ",
                " ON DUPLICATE KEY UPDATE joined_at=VALUES(joined_at)", 0, rows->nsess};
    for (size_t i = 0; i < rows->nsess; i++) {
        const sk_session_row *s = &rows->sess[i];
        char gw[2 * VC_GATEWAY_ID_MAX + 1], left[32], joined[32], watch[32], user[32];
        mysql_real_escape_string(db->my, gw, s->gateway_id, (unsigned long)strnlen(s->gateway_id, VC_GATEWAY_ID_MAX));
        sk_db_time(s->left_ms, left, sizeof left);
        sk_db_time(s->joined_ms, joined, sizeof joined);
        milli(s->left_ms - s->joined_ms, watch, sizeof watch);
        if (s->user_id > 0)
            snprintf(user, sizeof user, "%" PRId64, s->user_id);
        else
            snprintf(user, sizeof user, "NULL");
        up_row(&u);
        sb_printf(b, "(%" PRId64 ",'%s',%" PRId64 ",'%s','%s',%s,%s,'%s')", s->stream_id, gw, s->conn_id, left,
                  joined, user, watch, sk_end_reason_sql(s->reason));
        sk_db_rc rc = up_done(&u, errstr, errstr_size);
        if (rc)
            return rc;
    }
    return SK_DB_OK;
}

static sk_db_rc write_bookkeeping(sk_db *db, sqlbuf *b, const char *group, const char *topic, int32_t partition,
                                  int64_t next_offset, const uint8_t *blob, size_t len, char *errstr,
                                  size_t errstr_size)
{
    char g[2 * 128 + 1], t[2 * 249 + 1];
    mysql_real_escape_string(db->my, g, group, (unsigned long)strnlen(group, 128));
    mysql_real_escape_string(db->my, t, topic, (unsigned long)strnlen(topic, 249));
    sb_printf(b, "INSERT INTO sink_offsets (consumer_group, topic, kpartition, next_offset, flushes) "
                 "VALUES ('%s','%s',%d,%" PRId64 ",1) ON DUPLICATE KEY UPDATE next_offset=VALUES(next_offset), "
                 "flushes=flushes+1",
              g, t, (int)partition, next_offset);
    sk_db_rc rc = run(db, b, "sink_offsets", errstr, errstr_size);
    if (rc)
        return rc;

    static const char sql[] = "INSERT INTO sink_checkpoints (consumer_group, topic, kpartition, format, state) "
                              "VALUES (?,?,?,?,?) ON DUPLICATE KEY UPDATE format=VALUES(format), state=VALUES(state)";
    MYSQL_STMT *stmt = mysql_stmt_init(db->my);
    if (!stmt)
        return fail(db, "checkpoint", errstr, errstr_size);
    int format = SK_CHECKPOINT_FORMAT, part = partition;
    unsigned long glen = (unsigned long)strlen(group), tlen = (unsigned long)strlen(topic),
                  blen = (unsigned long)len;
    MYSQL_BIND bind[5];
    memset(bind, 0, sizeof bind);
    bind[0].buffer_type = MYSQL_TYPE_STRING;
    bind[0].buffer = (void *)group;
    bind[0].length = &glen;
    bind[1].buffer_type = MYSQL_TYPE_STRING;
    bind[1].buffer = (void *)topic;
    bind[1].length = &tlen;
    bind[2].buffer_type = MYSQL_TYPE_LONG;
    bind[2].buffer = &part;
    bind[3].buffer_type = MYSQL_TYPE_LONG;
    bind[3].buffer = &format;
    bind[4].buffer_type = MYSQL_TYPE_LONG_BLOB;
    bind[4].buffer = (void *)blob;
    bind[4].length = &blen;
    if (mysql_stmt_prepare(stmt, sql, sizeof sql - 1) || mysql_stmt_bind_param(stmt, bind) ||
        mysql_stmt_execute(stmt)) {
        unsigned int err = mysql_stmt_errno(stmt);
        snprintf(errstr, errstr_size, "checkpoint: %u %s", err, mysql_stmt_error(stmt));
        mysql_stmt_close(stmt);
        sk_db_disconnect(db);
        return classify(err);
    }
    mysql_stmt_close(stmt);
    return SK_DB_OK;
}

sk_db_rc sk_db_flush(sk_db *db, const char *group, const char *topic, int32_t partition,
                     const sk_rows *rows, int64_t expect_offset, int64_t next_offset,
                     const uint8_t *blob, size_t len, sk_db_counts *counts,
                     char *errstr, size_t errstr_size)
{
    sk_db_rc rc = sk_db_connect(db, errstr, errstr_size);
    if (rc)
        return rc;
    if (mysql_query(db->my, "START TRANSACTION"))
        return fail(db, "begin", errstr, errstr_size);
    int64_t stored;
    rc = read_offset(db, group, topic, partition, 1, &stored, errstr, errstr_size);
    if (rc)
        return rc;
    if (stored != expect_offset) {
        rollback(db);
        snprintf(errstr, errstr_size, "partition %d: stored offset %" PRId64 ", expected %" PRId64
                 " (written by another consumer)", (int)partition, stored, expect_offset);
        return SK_DB_FENCED;
    }
    sqlbuf b = {0};
    sk_map master;
    if (sk_map_init(&master, sizeof(sk_master)) < 0) {
        rollback(db);
        snprintf(errstr, errstr_size, "out of memory");
        return SK_DB_FATAL;
    }
    rc = master_load(db, &b, rows, &master, errstr, errstr_size);
    if (!rc)
        rc = write_history(db, &b, rows, &master, errstr, errstr_size);
    if (!rc)
        rc = write_current(db, &b, rows, &master, errstr, errstr_size);
    if (!rc)
        rc = write_daily(db, &b, rows, &master, errstr, errstr_size);
    sk_map_free(&master);
    if (!rc)
        rc = write_sessions(db, &b, rows, errstr, errstr_size);
    if (!rc)
        rc = write_bookkeeping(db, &b, group, topic, partition, next_offset, blob, len, errstr, errstr_size);
    free(b.p);
    if (rc) {
        rollback(db);
        return rc;
    }
    if (mysql_commit(db->my)) {
        /* The outcome is unknown (the connection may have dropped after the
         * server committed): the stored offset tells. */
        char why[256], err2[256];
        sk_db_rc frc = fail(db, "commit", why, sizeof why);
        if (sk_db_connect(db, err2, sizeof err2) != SK_DB_OK ||
            read_offset(db, group, topic, partition, 0, &stored, err2, sizeof err2) != SK_DB_OK) {
            snprintf(errstr, errstr_size, "%s; outcome unknown, reading it back failed: %s", why, err2);
            return SK_DB_RETRY; /* the next attempt is fenced on expect_offset: it redoes or reloads */
        }
        rollback(db);
        if (stored == expect_offset) {
            snprintf(errstr, errstr_size, "%s; not committed, redo", why);
            return frc == SK_DB_FATAL ? SK_DB_FATAL : SK_DB_RETRY;
        }
        if (stored != next_offset) {
            snprintf(errstr, errstr_size, "%s; stored offset %" PRId64 " is neither", why, stored);
            return SK_DB_FENCED;
        }
        /* committed after all */
    }
    if (counts) {
        counts->viewer_history += rows->nhist;
        counts->current_viewers += rows->current.len;
        counts->daily_statistics += rows->daily.len;
        counts->user_sessions += rows->nsess;
        counts->checkpoints++;
        counts->checkpoint_bytes += len;
    }
    return SK_DB_OK;
}

sk_db_rc sk_db_maintain(sk_db *db, char *errstr, size_t errstr_size)
{
    sk_db_rc rc = sk_db_connect(db, errstr, errstr_size);
    if (rc)
        return rc;
    static const char sql[] = "CALL vc_partition_maintenance(UTC_DATE())";
    if (mysql_real_query(db->my, sql, sizeof sql - 1))
        return fail(db, "partition maintenance", errstr, errstr_size);
    do {
        MYSQL_RES *res = mysql_store_result(db->my);
        if (res)
            mysql_free_result(res);
    } while (mysql_next_result(db->my) == 0);
    if (mysql_commit(db->my))
        return fail(db, "partition maintenance", errstr, errstr_size);
    return SK_DB_OK;
}
