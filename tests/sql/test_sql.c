/* sql/: partition maintenance over month and year boundaries, the analysts'
 * queries' plans on the replica, the rights of every database user (sink,
 * analyst, gateway, aggregator): sql/roles.sql on users of the test's own and
 * the users the stack gives its gateways and aggregators.
 * Against the stack's writer and replica; each test makes its own database. */
#include <criterion/criterion.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinktest.h"

#define STACK VC_REPO_DIR "/deploy/local/stack"

static void exec(MYSQL *my, const char *sql)
{
    if (mysql_query(my, sql))
        cr_assert_fail("%s: %s", sql, mysql_error(my));
    do {
        MYSQL_RES *res = mysql_store_result(my);
        if (res)
            mysql_free_result(res);
    } while (mysql_next_result(my) == 0);
}

static void str1(MYSQL *my, const char *sql, char *out, size_t size)
{
    if (mysql_query(my, sql))
        cr_assert_fail("%s: %s", sql, mysql_error(my));
    MYSQL_RES *res = mysql_store_result(my);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    snprintf(out, size, "%s", row && row[0] ? row[0] : "");
    if (res)
        mysql_free_result(res);
}

static void partitions(MYSQL *my, const char *table, char *out, size_t size)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT GROUP_CONCAT(partition_name ORDER BY partition_ordinal_position) FROM information_schema.partitions "
             "WHERE table_schema = DATABASE() AND table_name = '%s'",
             table);
    str1(my, sql, out, size);
}

static void maintain(MYSQL *my, const char *today)
{
    char sql[128];
    snprintf(sql, sizeof sql, "CALL vc_partition_maintenance('%s')", today);
    exec(my, sql);
}

/* ---- partition maintenance --------------------------------------------- */

Test(sql, partition_maintenance_across_month_and_year_boundaries, .timeout = 300)
{
    char db[64], got[8192];
    st_unique(db, sizeof db, "sk_sql_part");
    st_db_create(db);
    MYSQL *my = st_my_connect(db);
    /* start from nothing but the catch-all, whatever today's date is */
    exec(my, "ALTER TABLE viewer_history PARTITION BY RANGE COLUMNS (recorded_at) "
             "(PARTITION p_future VALUES LESS THAN (MAXVALUE))");
    exec(my, "ALTER TABLE user_sessions PARTITION BY RANGE COLUMNS (left_at) "
             "(PARTITION p_future VALUES LESS THAN (MAXVALUE))");

    maintain(my, "2026-12-30");
    partitions(my, "viewer_history", got, sizeof got);
    cr_expect_str_eq(got, "p202612,p202701,p202702,p202703,p_future", "3 months ahead across the new year");
    partitions(my, "user_sessions", got, sizeof got);
    cr_expect_str_eq(got, "p20261230,p20261231,p20270101,p20270102,p20270103,p20270104,p20270105,p20270106,p_future",
                     "7 days ahead across the new year");
    maintain(my, "2026-12-30");
    partitions(my, "user_sessions", got, sizeof got);
    cr_expect_str_eq(got, "p20261230,p20261231,p20270101,p20270102,p20270103,p20270104,p20270105,p20270106,p_future",
                     "idempotent");

    exec(my, "INSERT INTO viewer_history (stream_id, recorded_at, bucket_seconds, peak_viewers, min_viewers, avg_viewers,"
             " joins, leaves, distinct_viewers, watch_seconds) VALUES"
             " (1, '2026-12-15 10:00:00', 300, 1, 1, 1, 0, 0, 1, 300), (1, '2027-01-15 10:00:00', 300, 1, 1, 1, 0, 0, 1, 300)");
    exec(my, "INSERT INTO user_sessions (stream_id, gateway_id, conn_id, left_at, joined_at, user_id, watch_seconds,"
             " leave_reason) VALUES (1, 'gw', 1, '2026-12-30 12:00:00', '2026-12-30 11:00:00', 5, 3600, 'client_closed'),"
             " (1, 'gw', 2, '2027-01-02 12:00:00', '2027-01-02 11:00:00', 5, 3600, 'client_closed')");
    exec(my, "COMMIT");

    /* a month later: daily ones before 2027-01-01 (30 days) expire, with their rows */
    maintain(my, "2027-01-31");
    partitions(my, "viewer_history", got, sizeof got);
    cr_expect_str_eq(got, "p202612,p202701,p202702,p202703,p202704,p_future");
    partitions(my, "user_sessions", got, sizeof got);
    cr_expect_str_eq(got, "p20270101,p20270102,p20270103,p20270104,p20270105,p20270106,p20270131,p20270201,p20270202,"
                          "p20270203,p20270204,p20270205,p20270206,p20270207,p_future",
                     "expired days dropped; the gap since the last run is one partition");
    cr_expect_eq(st_my_int(my, "SELECT COUNT(*) FROM user_sessions"), 1, "the 2026-12-30 session is gone");
    cr_expect_eq(st_my_int(my, "SELECT conn_id FROM user_sessions"), 2);

    /* a year later, over the next new year: 12 months kept, December 2026 still in */
    maintain(my, "2027-12-31");
    partitions(my, "viewer_history", got, sizeof got);
    cr_expect_str_eq(got, "p202612,p202701,p202702,p202703,p202704,p202712,p202801,p202802,p202803,p_future");
    cr_expect_eq(st_my_int(my, "SELECT COUNT(*) FROM viewer_history"), 2);
    maintain(my, "2028-01-01");
    partitions(my, "viewer_history", got, sizeof got);
    cr_expect_str_eq(got, "p202701,p202702,p202703,p202704,p202712,p202801,p202802,p202803,p202804,p_future",
                     "December 2026 is older than 12 months on 2028-01-01");
    cr_expect_eq(st_my_int(my, "SELECT COUNT(*) FROM viewer_history"), 1);
    cr_expect_eq(st_my_int(my, "SELECT COUNT(*) FROM viewer_history WHERE recorded_at = '2027-01-15 10:00:00'"), 1);
    partitions(my, "user_sessions", got, sizeof got);
    cr_expect_str_eq(got, "p20271231,p20280101,p20280102,p20280103,p20280104,p20280105,p20280106,p20280107,p20280108,"
                          "p_future", "the last 30 days and 7 ahead");
    cr_expect_eq(st_my_int(my, "SELECT COUNT(*) FROM user_sessions"), 0);

    /* the daily event is there, at 02:00 */
    cr_expect_eq(st_my_int(my, "SELECT COUNT(*) FROM information_schema.events WHERE event_schema = DATABASE() AND "
                               "event_name = 'ev_vc_partition_maintenance' AND interval_value = '1' AND "
                               "interval_field = 'DAY' AND TIME(starts) = '02:00:00' AND status = 'ENABLED'"),
                 1);
    mysql_close(my);
}

/* ---- the analysts' queries on the replica ------------------------------ */

static MYSQL *analyst_connect(const char *host_var, const char *port_var, const char *db)
{
    MYSQL *my = mysql_init(NULL);
    unsigned int t = 10;
    mysql_options(my, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    mysql_options(my, MYSQL_OPT_READ_TIMEOUT, &t);
    if (!mysql_real_connect(my, st_env(host_var), st_env("VC_MYSQL_ANALYST_USER"), st_env("VC_MYSQL_ANALYST_PASSWORD"),
                            db, (unsigned int)atoi(st_env(port_var)), NULL, 0))
        cr_assert_fail("analyst connect to %s:%s: %s", getenv(host_var), getenv(port_var), mysql_error(my));
    return my;
}

/* The query of a sql/queries file: comments and the final ';' removed. */
static void query_text(const char *name, char *out, size_t size)
{
    char path[512], line[1024];
    snprintf(path, sizeof path, VC_REPO_DIR "/sql/queries/%s.sql", name);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    size_t len = 0;
    int header = 0;
    out[0] = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "-- ", 3) && len == 0) {
            header = 1;
            continue;
        }
        size_t n = strlen(line);
        cr_assert_lt(len + n, size);
        memcpy(out + len, line, n + 1);
        len += n;
    }
    fclose(f);
    cr_assert(header, "%s has no header comment", path);
    while (len && (out[len - 1] == '\n' || out[len - 1] == ' ' || out[len - 1] == ';'))
        out[--len] = 0;
}

static int64_t status_of(MYSQL *my, const char *name)
{
    char sql[128], v[64];
    snprintf(sql, sizeof sql, "SELECT VARIABLE_VALUE FROM information_schema.session_status WHERE VARIABLE_NAME='%s'",
             name);
    str1(my, sql, v, sizeof v);
    return atoll(v);
}

/* EXPLAIN the query; with `strict`, fail on a whole-table or whole-index scan,
 * a filesort or a temporary table, and expect `key` on the first table. Then
 * run it and fail if it sorted or grouped on disk. */
static void check_plan(MYSQL *my, const char *name, int strict, const char *key)
{
    char q[8192], sql[8300];
    query_text(name, q, sizeof q);
    snprintf(sql, sizeof sql, "EXPLAIN %s", q);
    if (mysql_query(my, sql))
        cr_assert_fail("%s: EXPLAIN: %s", name, mysql_error(my));
    MYSQL_RES *res = mysql_store_result(my);
    cr_assert_not_null(res);
    unsigned int nf = mysql_num_fields(res);
    MYSQL_FIELD *fields = mysql_fetch_fields(res);
    int f_table = -1, f_type = -1, f_key = -1, f_extra = -1;
    for (unsigned int i = 0; i < nf; i++) {
        if (!strcmp(fields[i].name, "table")) f_table = (int)i;
        if (!strcmp(fields[i].name, "type")) f_type = (int)i;
        if (!strcmp(fields[i].name, "key")) f_key = (int)i;
        if (!strcmp(fields[i].name, "Extra")) f_extra = (int)i;
    }
    cr_assert(f_table >= 0 && f_type >= 0 && f_key >= 0 && f_extra >= 0);
    MYSQL_ROW row;
    int first = 1;
    while ((row = mysql_fetch_row(res))) {
        const char *table = row[f_table] ? row[f_table] : "", *type = row[f_type] ? row[f_type] : "",
                   *k = row[f_key] ? row[f_key] : "", *extra = row[f_extra] ? row[f_extra] : "";
        cr_log_info("%s: table=%s type=%s key=%s extra=%s", name, table, type, k, extra);
        if (strict) {
            cr_expect(strcmp(type, "ALL") && strcmp(type, "index"), "%s scans all of %s (type %s)", name, table, type);
            cr_expect_null(strstr(extra, "filesort"), "%s sorts %s: %s", name, table, extra);
            cr_expect_null(strstr(extra, "temporary"), "%s uses a temporary table for %s: %s", name, table, extra);
            if (first && key)
                cr_expect_str_eq(k, key, "%s reads %s through %s", name, table, k);
        }
        first = 0;
    }
    mysql_free_result(res);

    int64_t disk_tmp = status_of(my, "CREATED_TMP_DISK_TABLES"), merges = status_of(my, "SORT_MERGE_PASSES");
    if (mysql_query(my, q))
        cr_assert_fail("%s: %s", name, mysql_error(my));
    res = mysql_store_result(my);
    cr_assert_not_null(res, "%s: %s", name, mysql_error(my));
    cr_log_info("%s: %llu rows", name, (unsigned long long)mysql_num_rows(res));
    cr_expect_gt(mysql_num_rows(res), 0, "%s answers something on the test data", name);
    mysql_free_result(res);
    cr_expect_eq(status_of(my, "CREATED_TMP_DISK_TABLES"), disk_tmp, "%s made a temporary table on disk", name);
    cr_expect_eq(status_of(my, "SORT_MERGE_PASSES"), merges, "%s sorted on disk", name);
}

Test(sql, analyst_queries_use_their_indexes_on_the_replica, .timeout = 600)
{
    char db[64], pos[256], sql[512];
    st_unique(db, sizeof db, "sk_sql_plan");
    st_db_create(db);
    cr_assert_eq(st_sh(STACK " mysql admin -e \"GRANT SELECT, SHOW VIEW ON \\`%s\\`.* TO '%s'@'%%'\"", db,
                       st_env("VC_MYSQL_ANALYST_USER")),
                 0);
    MYSQL *w = st_my_connect(db);
    /* 20 categories, 2000 broadcasters and streams (70% live), 200 streams with a day of history */
    exec(w, "INSERT INTO categories SELECT seq, CONCAT('cat', seq), CONCAT('cat-', seq) FROM seq_1_to_20");
    exec(w, "INSERT INTO users (user_id, username) SELECT seq, CONCAT('u', seq) FROM seq_1_to_2000");
    exec(w, "INSERT INTO broadcasters (broadcaster_id, user_id, channel_name) SELECT seq, seq, CONCAT('ch', seq) "
            "FROM seq_1_to_2000");
    exec(w, "INSERT INTO streams SELECT seq, seq, 1 + seq % 20, CONCAT('stream ', seq), "
            "IF(seq % 10 < 7, 'live', 'ended'), '2026-11-20 00:00:00' + INTERVAL seq MINUTE, NULL FROM seq_1_to_2000");
    exec(w, "INSERT INTO current_viewers (stream_id, broadcaster_id, category_id, status, viewer_count, peak_viewers, "
            "total_viewers, started_at, updated_at) SELECT stream_id, broadcaster_id, category_id, status, "
            "(stream_id * 7919) % 5000, 5000, 10000, started_at, '2026-11-21' FROM streams");
    exec(w, "INSERT INTO viewer_history (stream_id, recorded_at, bucket_seconds, broadcaster_id, category_id, "
            "peak_viewers, min_viewers, avg_viewers, joins, leaves, distinct_viewers, watch_seconds) "
            "SELECT s.stream_id, '2026-11-20 00:00:00' + INTERVAL q.seq * 300 SECOND, 300, s.broadcaster_id, "
            "s.category_id, 100 + q.seq, q.seq, 50 + q.seq, 10, 9, 120, (50 + q.seq) * 300 "
            "FROM streams s JOIN seq_0_to_287 q WHERE s.stream_id <= 200");
    exec(w, "INSERT INTO daily_statistics (stat_date, stream_id, broadcaster_id, category_id, peak_viewers, "
            "live_seconds, watch_seconds, joins, leaves, sessions) SELECT '2026-11-01' + INTERVAL q.seq DAY, "
            "s.stream_id, s.broadcaster_id, s.category_id, 100, 3600, 360000, 10, 10, 10 "
            "FROM streams s JOIN seq_0_to_29 q WHERE s.stream_id <= 200");
    exec(w, "COMMIT");
    exec(w, "ANALYZE TABLE current_viewers, viewer_history, daily_statistics, streams");
    str1(w, "SELECT @@gtid_binlog_pos", pos, sizeof pos);
    mysql_close(w);

    MYSQL *r = analyst_connect("VC_MYSQL_READER_HOST", "VC_MYSQL_READER_PORT", db);
    snprintf(sql, sizeof sql, "SELECT MASTER_GTID_WAIT('%s', 60)", pos);
    cr_assert_eq(st_my_int(r, "%s", sql), 0, "the replica did not catch up within 60 s");
    exec(r, "SET @category_id = 3, @broadcaster_id = 42, @stream_id = 42, @day = '2026-11-20', "
            "@from = '2026-11-01', @to = '2026-12-01'");
    check_plan(r, "live_ranking", 1, "ix_cv_ranking");
    check_plan(r, "live_ranking_category", 1, "ix_cv_category_ranking");
    check_plan(r, "broadcaster_history", 1, "ix_vh_broadcaster");
    check_plan(r, "stream_graph", 1, "PRIMARY");
    check_plan(r, "daily_statistics", 1, "ix_ds_stream");
    check_plan(r, "daily_top_broadcasters", 0, NULL);
    check_plan(r, "broadcaster_growth", 0, NULL);
    check_plan(r, "peak_hours_category", 0, NULL);
    mysql_close(r);
}

/* ---- rights ------------------------------------------------------------ */

static unsigned int try_sql(MYSQL *my, const char *sql)
{
    if (mysql_query(my, sql))
        return mysql_errno(my);
    MYSQL_RES *res = mysql_store_result(my);
    if (res)
        mysql_free_result(res);
    return 0;
}

/* No right to write; on the replica, which is read-only, refused either way. */
static int denied(unsigned int e, int replica)
{
    return e == ER_TABLEACCESS_DENIED_ERROR || (replica && e == ER_OPTION_PREVENTS_STATEMENT);
}

static MYSQL *user_connect(const char *host, const char *port, const char *user, const char *password, const char *db)
{
    MYSQL *my = mysql_init(NULL);
    unsigned int t = 10;
    mysql_options(my, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    mysql_options(my, MYSQL_OPT_READ_TIMEOUT, &t);
    if (!mysql_real_connect(my, host, user, password, db, (unsigned int)atoi(port), NULL, 0))
        cr_assert_fail("connect as %s to %s:%s/%s: %s", user, host, port, db, mysql_error(my));
    return my;
}

/* The role active right after connecting (the user's default role). */
static void expect_role(MYSQL *my, const char *role, const char *who)
{
    char got[128];
    str1(my, "SELECT CURRENT_ROLE()", got, sizeof got);
    cr_expect_str_eq(got, role, "%s's default role", who);
}

#define EXPECT_READS(my, who, sql) cr_expect_eq(try_sql(my, sql), 0, "%s: %s: %s", who, sql, mysql_error(my))
#define EXPECT_NO_RIGHT(my, who, sql) \
    cr_expect_eq(try_sql(my, sql), ER_TABLEACCESS_DENIED_ERROR, "%s must not be allowed: %s", who, sql)

/* vc_gateway_reader: reads what vc-gateway reads (the fallback counts, the web
 * page's catalog, the history's 5-minute rollups), nothing else, and writes
 * nothing. On the writer, so that a refused write can only be a missing right. */
static void check_gateway_rights(MYSQL *my, const char *who)
{
    expect_role(my, "vc_gateway_reader", who);
    EXPECT_READS(my, who, "SELECT stream_id, viewer_count, peak_viewers FROM current_viewers WHERE stream_id IN (1, 2)");
    EXPECT_READS(my, who, "SELECT stream_id, category_id, title FROM streams WHERE status = 'live' LIMIT 10");
    EXPECT_READS(my, who, "SELECT category_id, name FROM categories LIMIT 10");
    EXPECT_READS(my, who, "SELECT recorded_at, peak_viewers, avg_viewers FROM viewer_history WHERE stream_id = 1 "
                          "ORDER BY recorded_at DESC LIMIT 12");
    EXPECT_NO_RIGHT(my, who, "INSERT INTO current_viewers (stream_id, started_at, updated_at) VALUES (1, NOW(), NOW())");
    EXPECT_NO_RIGHT(my, who, "UPDATE current_viewers SET viewer_count = 0");
    EXPECT_NO_RIGHT(my, who, "UPDATE streams SET title = 'x'");
    EXPECT_NO_RIGHT(my, who, "INSERT INTO categories VALUES (99, 'x', 'x')");
    EXPECT_NO_RIGHT(my, who, "DELETE FROM viewer_history");
    EXPECT_NO_RIGHT(my, who, "SELECT COUNT(*) FROM users");
    EXPECT_NO_RIGHT(my, who, "SELECT COUNT(*) FROM user_sessions");
    EXPECT_NO_RIGHT(my, who, "SELECT COUNT(*) FROM daily_statistics");
    EXPECT_NO_RIGHT(my, who, "SELECT COUNT(*) FROM sink_offsets");
    cr_expect_neq(try_sql(my, "CREATE TABLE gateway_was_here (i INT)"), 0, "%s must not create tables", who);
    cr_expect_neq(try_sql(my, "DROP TABLE current_viewers"), 0, "%s must not drop tables", who);
    cr_expect_neq(try_sql(my, "CALL vc_partition_maintenance('2030-01-01')"), 0,
                  "%s must not run the partition maintenance", who);
}

/* vc_aggregator_reader: the streams' categories, nothing else, no writes. */
static void check_aggregator_rights(MYSQL *my, const char *who)
{
    expect_role(my, "vc_aggregator_reader", who);
    EXPECT_READS(my, who, "SELECT stream_id, category_id FROM streams WHERE stream_id IN (1, 2, 3)");
    EXPECT_NO_RIGHT(my, who, "INSERT INTO current_viewers (stream_id, started_at, updated_at) VALUES (1, NOW(), NOW())");
    EXPECT_NO_RIGHT(my, who, "UPDATE streams SET category_id = 1");
    EXPECT_NO_RIGHT(my, who, "INSERT INTO streams (stream_id, broadcaster_id, category_id) VALUES (1, 1, 1)");
    EXPECT_NO_RIGHT(my, who, "SELECT COUNT(*) FROM users");
    EXPECT_NO_RIGHT(my, who, "SELECT COUNT(*) FROM current_viewers");
    EXPECT_NO_RIGHT(my, who, "SELECT COUNT(*) FROM categories");
    EXPECT_NO_RIGHT(my, who, "SELECT COUNT(*) FROM viewer_history");
    EXPECT_NO_RIGHT(my, who, "SELECT COUNT(*) FROM user_sessions");
    cr_expect_neq(try_sql(my, "CREATE TABLE aggregator_was_here (i INT)"), 0, "%s must not create tables", who);
    cr_expect_neq(try_sql(my, "CALL vc_partition_maintenance('2030-01-01')"), 0,
                  "%s must not run the partition maintenance", who);
}

/* The users the stack gives its gateways and aggregators (deploy/local/stack:
 * VC_MYSQL_GATEWAY_USER / VC_MYSQL_AGGREGATOR_USER, roles from sql/roles.sql
 * on every `stack up`), on the stack's own database: their rights on the
 * writer, and on the replica (where the gateway reads) that they connect with
 * the same role and still cannot write. */
Test(sql, the_gateway_and_the_aggregator_only_read, .timeout = 120)
{
    const char *db = st_env("VC_MYSQL_DB");
    const char *gu = st_env("VC_MYSQL_GATEWAY_USER"), *gp = st_env("VC_MYSQL_GATEWAY_PASSWORD");
    const char *au = st_env("VC_MYSQL_AGGREGATOR_USER"), *ap = st_env("VC_MYSQL_AGGREGATOR_PASSWORD");
    cr_assert_str_neq(gu, st_env("VC_MYSQL_USER"), "the gateway must not connect as the sink's user");
    cr_assert_str_neq(au, st_env("VC_MYSQL_USER"), "the aggregator must not connect as the sink's user");
    cr_assert_str_neq(gu, au, "the gateway and the aggregator need users of their own");

    MYSQL *g = user_connect(st_env("VC_MYSQL_HOST"), st_env("VC_MYSQL_PORT"), gu, gp, db);
    check_gateway_rights(g, "the gateway's user on the writer");
    mysql_close(g);
    MYSQL *a = user_connect(st_env("VC_MYSQL_HOST"), st_env("VC_MYSQL_PORT"), au, ap, db);
    check_aggregator_rights(a, "the aggregator's user on the writer");
    mysql_close(a);

    g = user_connect(st_env("VC_MYSQL_READER_HOST"), st_env("VC_MYSQL_READER_PORT"), gu, gp, db);
    expect_role(g, "vc_gateway_reader", "the gateway's user on the replica");
    EXPECT_READS(g, "the gateway's user on the replica", "SELECT category_id, name FROM categories LIMIT 10");
    EXPECT_READS(g, "the gateway's user on the replica", "SELECT stream_id FROM viewer_history LIMIT 1");
    cr_expect(denied(try_sql(g, "INSERT INTO current_viewers (stream_id, started_at, updated_at) VALUES (1, NOW(), NOW())"), 1),
              "the gateway's user wrote on the replica");
    EXPECT_NO_RIGHT(g, "the gateway's user on the replica", "SELECT COUNT(*) FROM users");
    mysql_close(g);
    a = user_connect(st_env("VC_MYSQL_READER_HOST"), st_env("VC_MYSQL_READER_PORT"), au, ap, db);
    expect_role(a, "vc_aggregator_reader", "the aggregator's user on the replica");
    EXPECT_READS(a, "the aggregator's user on the replica", "SELECT stream_id, category_id FROM streams LIMIT 1");
    EXPECT_NO_RIGHT(a, "the aggregator's user on the replica", "SELECT COUNT(*) FROM users");
    mysql_close(a);
}

Test(sql, the_analyst_cannot_write, .timeout = 120)
{
    const char *db = st_env("VC_MYSQL_DB");
    const char *where[][2] = {{"VC_MYSQL_READER_HOST", "VC_MYSQL_READER_PORT"}, {"VC_MYSQL_HOST", "VC_MYSQL_PORT"}};
    for (int i = 0; i < 2; i++) {
        MYSQL *my = analyst_connect(where[i][0], where[i][1], db);
        cr_expect_eq(try_sql(my, "SELECT COUNT(*) FROM current_viewers"), 0, "the analyst reads");
        unsigned int e;
        e = try_sql(my, "INSERT INTO current_viewers (stream_id, started_at, updated_at) VALUES (1, NOW(), NOW())");
        cr_expect(denied(e, i == 0), "INSERT on %s: %u", where[i][0], e);
        e = try_sql(my, "UPDATE viewer_history SET peak_viewers = 0");
        cr_expect(denied(e, i == 0), "UPDATE on %s: %u", where[i][0], e);
        e = try_sql(my, "DELETE FROM user_sessions");
        cr_expect(denied(e, i == 0), "DELETE on %s: %u", where[i][0], e);
        e = try_sql(my, "CREATE TABLE analyst_was_here (i INT)");
        cr_expect_neq(e, 0, "CREATE TABLE on %s", where[i][0]);
        e = try_sql(my, "CALL vc_partition_maintenance('2030-01-01')");
        cr_expect_neq(e, 0, "partition maintenance on %s", where[i][0]);
        mysql_close(my);
    }
}

/* sql/roles.sql applied to users of its own: the sink's role writes what the
 * sink writes and nothing else; the analyst's role only reads; the gateway's
 * and the aggregator's roles read what their service reads. The gateway's and
 * the aggregator's users start with every right on the database (as a careless
 * bootstrap would give): the script must take them away. Applied twice: it is
 * re-runnable. */
Test(sql, roles_give_the_sink_only_what_it_writes, .timeout = 300)
{
    char db[64], su[64], au[64], gu[64], agu[64];
    st_unique(db, sizeof db, "sk_sql_roles");
    st_unique(su, sizeof su, "sks");
    st_unique(au, sizeof au, "ska");
    st_unique(gu, sizeof gu, "skg");
    st_unique(agu, sizeof agu, "skr");
    st_db_create(db);
    cr_assert_eq(st_sh(STACK " mysql admin -e \"CREATE USER '%s'@'%%' IDENTIFIED BY 'pw-s'; "
                       "CREATE USER '%s'@'%%' IDENTIFIED BY 'pw-a'; CREATE USER '%s'@'%%' IDENTIFIED BY 'pw-g'; "
                       "CREATE USER '%s'@'%%' IDENTIFIED BY 'pw-r'; GRANT ALL ON \\`%s\\`.* TO '%s'@'%%'; "
                       "GRANT ALL ON \\`%s\\`.* TO '%s'@'%%'\"",
                       su, au, gu, agu, db, gu, db, agu),
                 0);
    for (int run = 0; run < 2; run++)
        cr_assert_eq(st_sh("sed -e 's/@DB@/%s/g' -e 's/@SINK_USER@/%s/g' -e 's/@ANALYST_USER@/%s/g' "
                           "-e 's/@GATEWAY_USER@/%s/g' -e 's/@AGGREGATOR_USER@/%s/g' " VC_REPO_DIR
                           "/sql/roles.sql | " STACK " mysql admin",
                           db, su, au, gu, agu),
                     0, "applying sql/roles.sql (run %d)", run + 1);

    MYSQL *s = mysql_init(NULL);
    cr_assert_not_null(mysql_real_connect(s, st_env("VC_MYSQL_HOST"), su, "pw-s", db,
                                          (unsigned int)atoi(st_env("VC_MYSQL_PORT")), NULL, 0), "%s", mysql_error(s));
    cr_expect_eq(try_sql(s, "INSERT INTO current_viewers (stream_id, viewer_count, started_at, updated_at) "
                            "VALUES (1, 1, NOW(), NOW()) ON DUPLICATE KEY UPDATE viewer_count = 2"), 0, "%s", mysql_error(s));
    cr_expect_eq(try_sql(s, "INSERT INTO viewer_history (stream_id, recorded_at, bucket_seconds, peak_viewers, "
                            "min_viewers, avg_viewers, joins, leaves, distinct_viewers, watch_seconds) VALUES "
                            "(1, NOW(), 300, 1, 1, 1, 0, 0, 1, 300)"), 0, "%s", mysql_error(s));
    cr_expect_eq(try_sql(s, "INSERT INTO sink_offsets (consumer_group, topic, kpartition, next_offset) VALUES "
                            "('g', 't', 0, 1) ON DUPLICATE KEY UPDATE next_offset = 2"), 0, "%s", mysql_error(s));
    cr_expect_eq(try_sql(s, "SELECT next_offset FROM sink_offsets FOR UPDATE"), 0, "%s", mysql_error(s));
    cr_expect_eq(try_sql(s, "SELECT broadcaster_id FROM streams"), 0, "%s", mysql_error(s));
    cr_expect_eq(try_sql(s, "CALL vc_partition_maintenance(UTC_DATE())"), 0, "%s", mysql_error(s));
    cr_expect_eq(try_sql(s, "COMMIT"), 0);
    cr_expect_eq(try_sql(s, "DELETE FROM user_sessions"), ER_TABLEACCESS_DENIED_ERROR);
    cr_expect_eq(try_sql(s, "INSERT INTO streams (stream_id, broadcaster_id, category_id) VALUES (1, 1, 1)"),
                 ER_TABLEACCESS_DENIED_ERROR);
    cr_expect_eq(try_sql(s, "UPDATE users SET username = 'x'"), ER_TABLEACCESS_DENIED_ERROR);
    cr_expect_neq(try_sql(s, "DROP TABLE viewer_history"), 0);
    cr_expect_neq(try_sql(s, "ALTER TABLE viewer_history DROP PARTITION p_future"), 0);
    mysql_close(s);

    MYSQL *a = mysql_init(NULL);
    cr_assert_not_null(mysql_real_connect(a, st_env("VC_MYSQL_HOST"), au, "pw-a", db,
                                          (unsigned int)atoi(st_env("VC_MYSQL_PORT")), NULL, 0), "%s", mysql_error(a));
    cr_expect_eq(try_sql(a, "SELECT COUNT(*) FROM current_viewers"), 0, "%s", mysql_error(a));
    cr_expect_eq(try_sql(a, "INSERT INTO categories VALUES (99, 'x', 'x')"), ER_TABLEACCESS_DENIED_ERROR);
    mysql_close(a);

    MYSQL *g = user_connect(st_env("VC_MYSQL_HOST"), st_env("VC_MYSQL_PORT"), gu, "pw-g", db);
    check_gateway_rights(g, "the gateway's user");
    mysql_close(g);
    MYSQL *r = user_connect(st_env("VC_MYSQL_HOST"), st_env("VC_MYSQL_PORT"), agu, "pw-r", db);
    check_aggregator_rights(r, "the aggregator's user");
    mysql_close(r);
    st_sh(STACK " mysql admin -e \"DROP USER '%s'@'%%'; DROP USER '%s'@'%%'; DROP USER '%s'@'%%'; DROP USER '%s'@'%%'\"",
          su, au, gu, agu);
}
