/* sql/: partition maintenance over month and year boundaries, the analysts'
 * queries' plans on the replica, the analyst's and the sink's rights.
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
