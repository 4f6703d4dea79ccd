/* Counts pushed to viewers and served over HTTP, read from the real Redis
 * Cluster of the stack, with the degradation states: live, syncing, stale
 * (Redis paused: last known value, or the database row), counting. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw_harness.h"
#include "vc_keys.h"
#include "vc_partition.h"
#include "vc_redis.h"

#define WAIT_MS 10000

static gwh_gateway gw;
static gwh_events *events;
static vc_redis *redis;
static int32_t nparts;

static void setup(void)
{
    /* Read counts from the writer so a row written by the test is seen at once. */
    static const char *const env[] = {"VC_MYSQL_READER_HOST=", "VC_TICK_MS=200", NULL};
    vc_redis_conf rc = {gwh_env("VC_REDIS_NODES"), 0, 2000};
    char err[256];

    events = gwh_events_new();
    nparts = gwh_events_partitions(events);
    redis = vc_redis_new(&rc, err, sizeof(err));
    cr_assert_not_null(redis, "redis: %s", err);
    gwh_gateway_start(&gw, env);
}

static void teardown(void)
{
    if (gw.pid > 0)
        gwh_gateway_stop(&gw, SIGKILL, 5000);
    vc_redis_destroy(redis);
    gwh_events_destroy(events);
}

static int64_t unique_stream(int k)
{
    return 2000000 + (int64_t)(getpid() % 10000) * 100 + k;
}

static void redis_cmd(const char *key, const char *fmt, const char *a, const char *b)
{
    vc_redis_batch *batch = vc_redis_batch_new(redis, 0);
    char err[256];

    cr_assert_geq(vc_redis_batch_addf(batch, key, fmt, key, a, b), 0);
    cr_assert_eq(vc_redis_batch_exec(batch, err, sizeof(err)), 0, "%s", err);
    vc_redis_batch_destroy(batch);
}

static void set_count(int64_t stream, const char *viewers, const char *peak, const char *status)
{
    char key[VC_KEY_MAX];

    vc_key_stream(key, sizeof(key), vc_stream_partition(stream, nparts), stream);
    redis_cmd(key, "HSET %s viewers %s peak %s", viewers, peak);
    redis_cmd(key, "HSET %s status %s offset %s", status, "1");
}

static void del_count(int64_t stream)
{
    char key[VC_KEY_MAX];

    vc_key_stream(key, sizeof(key), vc_stream_partition(stream, nparts), stream);
    redis_cmd(key, "DEL %s%s%s", "", "");
}

/* CLIENT PAUSE every node of the cluster for ms (reads and writes). */
static void pause_redis(int ms)
{
    char nodes[1024], *save = NULL;

    snprintf(nodes, sizeof(nodes), "%s", gwh_env("VC_REDIS_NODES"));
    for (char *n = strtok_r(nodes, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(n, ':');
        redisContext *c;
        redisReply *r;

        *colon = '\0';
        c = redisConnect(n, atoi(colon + 1));
        cr_assert(c && !c->err, "connect %s", n);
        r = redisCommand(c, "CLIENT PAUSE %d ALL", ms);
        cr_assert(r && r->type == REDIS_REPLY_STATUS, "CLIENT PAUSE on %s", n);
        freeReplyObject(r);
        redisFree(c);
    }
}

static int viewer(int64_t stream, int user)
{
    char tok[1024], target[2048];
    int st, fd;

    gwh_token(user, 300, tok, sizeof(tok));
    snprintf(target, sizeof(target), "/ws?stream=%lld&token=%s", (long long)stream, tok);
    fd = gwh_ws_connect(gw.port, target, NULL, &st);
    cr_assert_eq(st, 101);
    return fd;
}

TestSuite(counts, .init = setup, .fini = teardown, .timeout = 120);

Test(counts, live_count_is_pushed_and_changes_are_pushed_once)
{
    int64_t s = unique_stream(1);
    char want[256];
    gwh_frame f;
    int fd, a;

    set_count(s, "5", "7", "live");
    fd = viewer(s, 1);
    snprintf(want, sizeof(want), "{\"type\":\"count\",\"stream\":%lld,\"viewers\":5,\"peak\":7,\"status\":\"live\"}",
             (long long)s);
    cr_assert_eq(gwh_ws_wait_text(fd, want, WAIT_MS, &f), 0, "got %s", f.data);
    set_count(s, "6", "7", "live");
    cr_assert_eq(gwh_ws_wait_text(fd, "\"viewers\":6,\"peak\":7,\"status\":\"live\"", WAIT_MS, &f), 0);
    cr_assert_geq(gwh_metric(gw.port, "vc_gateway_fanout_seconds_count"), 1, "fan-out measured");
    /* Unchanged: nothing more is pushed for a while. */
    cr_assert_eq(gwh_ws_recv(fd, 1000, &f), -1, "no push without a change, got %s", f.data);
    /* A second viewer gets the current count right after join. */
    a = viewer(s, 2);
    cr_assert_eq(gwh_ws_wait_text(a, "\"viewers\":6", WAIT_MS, &f), 0);
    set_count(s, "6", "7", "syncing");
    cr_assert_eq(gwh_ws_wait_text(fd, "\"status\":\"syncing\"", WAIT_MS, &f), 0);
    close(fd);
    close(a);
    del_count(s);
}

Test(counts, no_count_yet_is_counting)
{
    int64_t s = unique_stream(2);
    char want[128];
    gwh_frame f;
    int fd;

    del_count(s);
    fd = viewer(s, 1);
    snprintf(want, sizeof(want), "{\"type\":\"count\",\"stream\":%lld,\"status\":\"counting\"}", (long long)s);
    cr_assert_eq(gwh_ws_wait_text(fd, want, WAIT_MS, &f), 0, "got %s", f.data);
    close(fd);
}

Test(counts, redis_unreachable_shows_the_last_value_as_stale_then_live_again)
{
    int64_t s = unique_stream(3);
    gwh_frame f;
    int fd;

    set_count(s, "11", "12", "live");
    fd = viewer(s, 1);
    cr_assert_eq(gwh_ws_wait_text(fd, "\"viewers\":11,\"peak\":12,\"status\":\"live\"", WAIT_MS, &f), 0);
    pause_redis(4000);
    cr_assert_eq(gwh_ws_wait_text(fd, "\"viewers\":11,\"peak\":12,\"status\":\"stale\"", WAIT_MS, &f), 0,
                 "stale while Redis does not answer");
    {
        char body[256];

        cr_expect_eq(gwh_http_get(gw.port, "/readyz", body, sizeof(body)), 503, "not ready without Redis: %s", body);
    }
    cr_assert_eq(gwh_ws_wait_text(fd, "\"status\":\"live\"", 15000, &f), 0, "live again after the pause");
    close(fd);
    del_count(s);
}

Test(counts, nothing_known_falls_back_to_the_database_row)
{
    int64_t s = unique_stream(4);
    MYSQL *db = mysql_init(NULL);
    char q[512], want[128];
    gwh_frame f;
    int fd;

    cr_assert_not_null(mysql_real_connect(db, gwh_env("VC_MYSQL_HOST"), gwh_env("VC_MYSQL_USER"),
                                          gwh_env("VC_MYSQL_PASSWORD"), gwh_env("VC_MYSQL_DB"),
                                          (unsigned)atoi(gwh_env("VC_MYSQL_PORT")), NULL, 0),
                       "mysql: %s", mysql_error(db));
    snprintf(q, sizeof(q),
             "INSERT INTO current_viewers (stream_id, viewer_count, peak_viewers, started_at, updated_at) "
             "VALUES (%lld, 321, 654, NOW(3), NOW(3)) ON DUPLICATE KEY UPDATE viewer_count = 321, "
             "peak_viewers = 654, updated_at = NOW(3)", (long long)s);
    cr_assert_eq(mysql_query(db, q), 0, "%s", mysql_error(db));
    del_count(s);
    /* Long enough that the viewer's first read meets the paused Redis even
     * when a loaded machine delays the handshake (the fallback is only taken
     * when Redis does not answer). */
    pause_redis(8000);
    fd = viewer(s, 1);
    snprintf(want, sizeof(want), "\"stream\":%lld,\"viewers\":321,\"peak\":654,\"status\":\"stale\"", (long long)s);
    cr_assert_eq(gwh_ws_wait_text(fd, want, WAIT_MS, &f), 0, "got %s", f.data);
    close(fd);
    snprintf(q, sizeof(q), "DELETE FROM current_viewers WHERE stream_id = %lld", (long long)s);
    mysql_query(db, q);
    mysql_close(db);
    usleep(8200 * 1000); /* let the pause end before the next test */
}

Test(counts, api_stream_and_ranking)
{
    int64_t s = unique_stream(5), t = unique_stream(6);
    char body[4096], path[128], key[VC_KEY_MAX], want[256], score[32], member[32];
    int st;

    set_count(s, "42", "50", "live");
    snprintf(path, sizeof(path), "/api/streams/%lld", (long long)s);
    st = gwh_http_get(gw.port, path, body, sizeof(body));
    cr_assert_eq(st, 200);
    snprintf(want, sizeof(want), "\"stream\":%lld,\"viewers\":42,\"peak\":50,\"status\":\"live\"", (long long)s);
    cr_assert(strstr(body, want), "got %s", body);

    /* Two streams on the ranking of category 9 (each in its own partition's ZSET). */
    vc_key_rank_category(key, sizeof(key), vc_stream_partition(s, nparts), 9);
    snprintf(score, sizeof(score), "%d", 42);
    snprintf(member, sizeof(member), "%lld", (long long)s);
    redis_cmd(key, "ZADD %s %s %s", score, member);
    vc_key_rank_category(key, sizeof(key), vc_stream_partition(t, nparts), 9);
    snprintf(member, sizeof(member), "%lld", (long long)t);
    redis_cmd(key, "ZADD %s %s %s", "100", member);
    st = gwh_http_get(gw.port, "/api/ranking?limit=2&category=9", body, sizeof(body));
    cr_assert_eq(st, 200, "%s", body);
    snprintf(want, sizeof(want), "{\"category\":9,\"streams\":[{\"stream\":%lld,\"viewers\":100},{\"stream\":%lld,\"viewers\":42}]}",
             (long long)t, (long long)s);
    cr_assert_str_eq(body, want);
    st = gwh_http_get(gw.port, "/api/ranking?limit=1&category=9", body, sizeof(body));
    cr_assert(strstr(body, member) && !strstr(body, "\"viewers\":42"), "limit 1: %s", body);
    cr_assert_eq(gwh_http_get(gw.port, "/api/ranking?limit=x", body, sizeof(body)), 400);
    vc_key_rank_category(key, sizeof(key), vc_stream_partition(t, nparts), 9);
    redis_cmd(key, "ZREM %s %s%s", member, "");
    vc_key_rank_category(key, sizeof(key), vc_stream_partition(s, nparts), 9);
    snprintf(member, sizeof(member), "%lld", (long long)s);
    redis_cmd(key, "ZREM %s %s%s", member, "");
    del_count(s);
}
