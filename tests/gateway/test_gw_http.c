/* HTTP answers of a real vc-gateway on the local stack: a stream's history
 * (GET /api/streams/<id>/history) read from the stack's MariaDB reader
 * replica, its cache, its errors; the web page's static files from memory
 * with ETag / If-None-Match. Rows are seeded into the writer as the stack's
 * sink user and read back once the replica has them. */
#include <criterion/criterion.h>
#include <mysql.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gw_harness.h"

#define REPLICA_WAIT_MS 15000

/* Ids no other run used: the sink's user (the stack's VC_MYSQL_USER) may
 * insert rollups but not delete them, so the rows stay (under ids far
 * above any demo or load-test stream). */
static int64_t unique_stream(int k)
{
    return 1000000000000000LL + (int64_t)(time(NULL) % 100000000) * 1000000 + (int64_t)(getpid() % 10000) * 100 + k;
}

static MYSQL *db_connect(const char *host_var, const char *port_var)
{
    MYSQL *db = mysql_init(NULL);
    unsigned timeout = 5;

    cr_assert_not_null(db);
    mysql_options(db, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    cr_assert_not_null(mysql_real_connect(db, gwh_env(host_var), gwh_env("VC_MYSQL_USER"), gwh_env("VC_MYSQL_PASSWORD"),
                                          gwh_env("VC_MYSQL_DB"), (unsigned)atoi(gwh_env(port_var)), NULL, 0),
                       "mysql %s:%s: %s", gwh_env(host_var), gwh_env(port_var), mysql_error(db));
    cr_assert_eq(mysql_query(db, "SET time_zone = '+00:00'"), 0, "%s", mysql_error(db));
    return db;
}

static void db_exec(MYSQL *db, const char *q)
{
    cr_assert_eq(mysql_query(db, q), 0, "%s: %s", q, mysql_error(db));
}

typedef struct {
    int64_t start, seconds;
    const char *avg;             /* as inserted into DECIMAL(12,3) */
    const char *avg_json;        /* as the API must print it */
    int peak, min, distinct, joins, leaves;
} row;

static void seed(MYSQL *db, int64_t stream, const row *r)
{
    char q[1024];

    snprintf(q, sizeof(q),
             "INSERT INTO viewer_history (stream_id, recorded_at, bucket_seconds, peak_viewers, min_viewers, "
             "avg_viewers, joins, leaves, distinct_viewers, watch_seconds) VALUES (%lld, FROM_UNIXTIME(%lld), %lld, "
             "%d, %d, %s, %d, %d, %d, %s * %lld) ON DUPLICATE KEY UPDATE avg_viewers = VALUES(avg_viewers)",
             (long long)stream, (long long)r->start, (long long)r->seconds, r->peak, r->min, r->avg, r->joins,
             r->leaves, r->distinct, r->avg, (long long)r->seconds);
    db_exec(db, q);
}

/* Wait until the replica holds n rows of stream (replication is asynchronous). */
static void replica_wait(int64_t stream, long n)
{
    MYSQL *rd = db_connect("VC_MYSQL_READER_HOST", "VC_MYSQL_READER_PORT");
    int64_t deadline = gwh_now_ms() + REPLICA_WAIT_MS;
    char q[256];
    long got = -1;

    snprintf(q, sizeof(q), "SELECT COUNT(*) FROM viewer_history WHERE stream_id = %lld", (long long)stream);
    while (gwh_now_ms() < deadline) {
        MYSQL_RES *res;
        MYSQL_ROW r;

        db_exec(rd, q);
        res = mysql_store_result(rd);
        cr_assert_not_null(res);
        r = mysql_fetch_row(res);
        got = r && r[0] ? atol(r[0]) : -1;
        mysql_free_result(res);
        if (got == n)
            break;
        usleep(100 * 1000);
    }
    mysql_close(rd);
    cr_assert_eq(got, n, "the replica has %ld rows of stream %lld, want %ld", got, (long long)stream, n);
}

/* The answer the API must give for these rows (in order). */
static void expected(char *out, size_t size, int64_t stream, int hours, const row *rows, size_t n)
{
    size_t off = (size_t)snprintf(out, size, "{\"stream\":%lld,\"hours\":%d,\"buckets\":[", (long long)stream, hours);

    for (size_t i = 0; i < n; i++) {
        time_t t = (time_t)rows[i].start;
        struct tm tm;
        char at[32];

        gmtime_r(&t, &tm);
        strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
        off += (size_t)snprintf(out + off, size - off,
                                "%s{\"start\":%lld,\"at\":\"%s\",\"seconds\":%lld,\"avg\":%s,\"peak\":%d,\"min\":%d,"
                                "\"distinct\":%d,\"joins\":%d,\"leaves\":%d}",
                                i ? "," : "", (long long)rows[i].start, at, (long long)rows[i].seconds,
                                rows[i].avg_json, rows[i].peak, rows[i].min, rows[i].distinct, rows[i].joins,
                                rows[i].leaves);
    }
    snprintf(out + off, size - off, "]}");
}

static gwh_gateway gw;

static void setup(void)
{
    /* The stack's reader replica (VC_MYSQL_READER_*), a long cache so the
     * query counts below do not depend on the machine's speed. */
    static const char *const env[] = {"VC_GATEWAY_HISTORY_CACHE_SECONDS=600", NULL};

    gwh_env("VC_MYSQL_READER_HOST");
    gwh_env("VC_MYSQL_READER_PORT");
    gwh_gateway_start(&gw, env);
}

static void teardown(void)
{
    if (gw.pid > 0)
        gwh_gateway_stop(&gw, SIGKILL, 5000);
}

TestSuite(history, .init = setup, .fini = teardown, .timeout = 120);

Test(history, rollups_from_the_replica_in_order_within_the_hours)
{
    int64_t s = unique_stream(1), other = unique_stream(2);
    int64_t now = (int64_t)time(NULL), base = now - now % 300;
    /* Inserted out of order; 7 h old is outside the default 6 h. */
    row rows[] = {
        {base - 600, 300, "7", "7", 9, 4, 15, 6, 2},
        {base - 7 * 3600, 300, "1.000", "1", 1, 1, 1, 1, 1},
        {base - 3900, 300, "12.500", "12.5", 20, 5, 30, 3, 1},
        {base - 300, 300, "1234.567", "1234.567", 2000, 100, 2500, 400, 300},
        {base - 1800, 300, "0.125", "0.125", 1, 0, 2, 2, 2},
    };
    row six[] = {rows[2], rows[4], rows[0], rows[3]};          /* hours=6, by start */
    row eight[] = {rows[1], rows[2], rows[4], rows[0], rows[3]}; /* hours=8 */
    row one[] = {rows[4], rows[0], rows[3]};                   /* hours=1: base - 3900 is over an hour old */
    row other_row = {base - 300, 300, "99", "99", 99, 99, 99, 99, 99};
    MYSQL *db = db_connect("VC_MYSQL_HOST", "VC_MYSQL_PORT");
    char body[16384], want[16384], path[128];

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        seed(db, s, &rows[i]);
    seed(db, other, &other_row);
    replica_wait(s, 5);
    replica_wait(other, 1);

    snprintf(path, sizeof(path), "/api/streams/%lld/history", (long long)s);
    cr_assert_eq(gwh_http_get(gw.port, path, body, sizeof(body)), 200, "%s", body);
    expected(want, sizeof(want), s, 6, six, 4);
    cr_expect_str_eq(body, want, "default hours=6");

    snprintf(path, sizeof(path), "/api/streams/%lld/history?hours=8", (long long)s);
    cr_assert_eq(gwh_http_get(gw.port, path, body, sizeof(body)), 200, "%s", body);
    expected(want, sizeof(want), s, 8, eight, 5);
    cr_expect_str_eq(body, want, "hours=8");

    snprintf(path, sizeof(path), "/api/streams/%lld/history?hours=1", (long long)s);
    cr_assert_eq(gwh_http_get(gw.port, path, body, sizeof(body)), 200, "%s", body);
    expected(want, sizeof(want), s, 1, one, 3);
    cr_expect_str_eq(body, want, "hours=1");

    mysql_close(db);
}

Test(history, unknown_stream_is_an_empty_list)
{
    char body[1024], want[256], path[128];
    int64_t s = unique_stream(3);

    snprintf(path, sizeof(path), "/api/streams/%lld/history?hours=48", (long long)s);
    cr_assert_eq(gwh_http_get(gw.port, path, body, sizeof(body)), 200, "%s", body);
    snprintf(want, sizeof(want), "{\"stream\":%lld,\"hours\":48,\"buckets\":[]}", (long long)s);
    cr_expect_str_eq(body, want);
}

Test(history, bad_requests_are_400_with_a_json_error)
{
    static const char *const bad_hours[] = {"0", "49", "-1", "abc", "", "1.5", "06", "1%20", "99999999999999999999"};
    const char *want = "{\"error\":\"hours must be an integer from 1 to 48\"}\n";
    char body[1024], head[4096], path[256];

    for (size_t i = 0; i < sizeof(bad_hours) / sizeof(bad_hours[0]); i++) {
        snprintf(path, sizeof(path), "/api/streams/42/history?hours=%s", bad_hours[i]);
        cr_expect_eq(gwh_http_get_ex(gw.port, path, NULL, head, sizeof(head), body, sizeof(body)), 400,
                     "hours=%s: %s", bad_hours[i], body);
        cr_expect_str_eq(body, want, "hours=%s", bad_hours[i]);
        cr_expect(strcasestr(head, "content-type: application/json"), "hours=%s: %s", bad_hours[i], head);
    }
    cr_expect_eq(gwh_http_get(gw.port, "/api/streams/42/history?hours", body, sizeof(body)), 400, "%s", body);
    cr_expect_eq(gwh_http_get(gw.port, "/api/streams/42/history?x=1&hours", body, sizeof(body)), 400, "%s", body);
    {
        char longpath[1200];

        snprintf(longpath, sizeof(longpath), "/api/streams/42/history?hours=%01000d", 1);
        cr_expect_eq(gwh_http_get(gw.port, longpath, body, sizeof(body)), 400, "a 1000-digit value: %s", body);
    }
    cr_expect_eq(gwh_http_get(gw.port, "/api/streams/0/history", body, sizeof(body)), 400);
    cr_expect_str_eq(body, "{\"error\":\"malformed stream id\"}\n");
    cr_expect_eq(gwh_http_get(gw.port, "/api/streams/x/history", body, sizeof(body)), 400);
    cr_expect_eq(gwh_http_get(gw.port, "/api/streams/42/histories", body, sizeof(body)), 404);
    /* other parameters are ignored */
    cr_expect_eq(gwh_http_get(gw.port, "/api/streams/42/history?x=1&hours=2", body, sizeof(body)), 200, "%s", body);
    cr_expect_str_eq(body, "{\"stream\":42,\"hours\":2,\"buckets\":[]}");
}

Test(history, one_query_for_many_requests)
{
    enum { CLIENTS = 40 };
    int64_t s = unique_stream(4), now = (int64_t)time(NULL), base = now - now % 300;
    row r = {base - 900, 300, "3.5", "3.5", 5, 2, 6, 1, 0};
    MYSQL *db = db_connect("VC_MYSQL_HOST", "VC_MYSQL_PORT");
    char path[128], req[256], want[2048], body[2048];
    int fds[CLIENTS];
    double q0, h0, q1, h1;

    seed(db, s, &r);
    replica_wait(s, 1);
    expected(want, sizeof(want), s, 6, &r, 1);
    q0 = gwh_metric(gw.port, "vc_gateway_history_queries_total");
    h0 = gwh_metric(gw.port, "vc_gateway_history_cache_hits_total");
    cr_assert_geq(q0, 0);

    /* Many viewers open the page at once: every request is sent before any
     * answer is read; the gateway reads the database once. */
    snprintf(path, sizeof(path), "/api/streams/%lld/history", (long long)s);
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = gwh_tcp_connect(gw.port);
        cr_assert_geq(fds[i], 0);
        cr_assert_eq(write(fds[i], req, strlen(req)), (ssize_t)strlen(req));
    }
    for (int i = 0; i < CLIENTS; i++) {
        char resp[4096];
        size_t off = 0;
        ssize_t n;
        char *b;

        while (off + 1 < sizeof(resp) && (n = gwh_read_some(fds[i], resp + off, sizeof(resp) - 1 - off, 10000)) > 0) {
            off += (size_t)n;
            resp[off] = '\0';
            if ((b = strstr(resp, "\r\n\r\n")) != NULL && strlen(b + 4) >= strlen(want))
                break;
        }
        resp[off] = '\0';
        close(fds[i]);
        cr_assert(!strncmp(resp, "HTTP/1.1 200", 12), "client %d: %s", i, resp);
        b = strstr(resp, "\r\n\r\n");
        cr_assert_not_null(b, "client %d: %s", i, resp);
        cr_expect_str_eq(b + 4, want, "client %d", i);
    }
    /* and the next ones are served from memory */
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(gwh_http_get(gw.port, path, body, sizeof(body)), 200);
        cr_expect_str_eq(body, want);
    }
    q1 = gwh_metric(gw.port, "vc_gateway_history_queries_total");
    h1 = gwh_metric(gw.port, "vc_gateway_history_cache_hits_total");
    cr_expect_eq(q1 - q0, 1, "%d + 10 requests cost %.0f queries", CLIENTS, q1 - q0);
    cr_expect_geq(h1 - h0, 10, "cache hits %.0f", h1 - h0);
    mysql_close(db);
}

/* The local ports of the gateway's (pid) TCP connections to the given
 * remote port, from ss (the history thread, the catalog thread and the
 * counts reader may each hold one); returns how many (at most max). */
static int gateway_local_ports(pid_t pid, int remote_port, int *ports, int max)
{
    char cmd[256], line[512], want[32];
    int n = 0;
    FILE *f;

    snprintf(cmd, sizeof(cmd), "ss -Htnp state established '( dport = :%d )' 2>/dev/null", remote_port);
    snprintf(want, sizeof(want), "pid=%d,", (int)pid);
    f = popen(cmd, "r");
    cr_assert_not_null(f);
    while (n < max && fgets(line, sizeof(line), f))
        if (strstr(line, want)) {
            char local[128];
            const char *colon;
            /* Recv-Q Send-Q Local:Port Peer:Port ... */
            if (sscanf(line, "%*s %*s %127s", local) == 1 && (colon = strrchr(local, ':')) != NULL)
                ports[n++] = atoi(colon + 1);
        }
    pclose(f);
    return n;
}

Test(history, a_connection_the_server_closed_is_reopened_not_a_503)
{
    int64_t s = unique_stream(6), now = (int64_t)time(NULL), base = now - now % 300;
    row r = {base - 600, 300, "4", "4", 4, 4, 4, 4, 4};
    MYSQL *db = db_connect("VC_MYSQL_HOST", "VC_MYSQL_PORT");
    MYSQL *rd;
    char path[128], body[2048], want[2048], q[256];
    int local[16], nlocal, killed = 0;

    seed(db, s, &r);
    replica_wait(s, 1);
    /* the first read opens the history thread's connection to the replica */
    snprintf(path, sizeof(path), "/api/streams/%lld/history?hours=2", (long long)s);
    cr_assert_eq(gwh_http_get(gw.port, path, body, sizeof(body)), 200, "%s", body);

    /* the server closes it (as wait_timeout or a replica restart would):
     * KILL the thread whose client is the gateway's connection (same user) */
    nlocal = gateway_local_ports(gw.pid, atoi(gwh_env("VC_MYSQL_READER_PORT")), local, 16);
    cr_assert_gt(nlocal, 0, "no connection of the gateway to the replica");
    rd = db_connect("VC_MYSQL_READER_HOST", "VC_MYSQL_READER_PORT");
    for (int i = 0; i < nlocal; i++) {
        snprintf(q, sizeof(q), "SELECT id FROM information_schema.PROCESSLIST WHERE host LIKE '%%:%d'", local[i]);
        db_exec(rd, q);
        MYSQL_RES *res = mysql_store_result(rd);
        cr_assert_not_null(res);
        MYSQL_ROW id;
        while ((id = mysql_fetch_row(res)) != NULL) {
            snprintf(q, sizeof(q), "KILL CONNECTION %s", id[0]);
            db_exec(rd, q);
            killed++;
        }
        mysql_free_result(res);
    }
    mysql_close(rd);
    cr_assert_eq(killed, nlocal, "killed %d of the gateway's %d connections", killed, nlocal);

    /* a key not in the cache: read on a fresh connection, answered 200 */
    snprintf(path, sizeof(path), "/api/streams/%lld/history?hours=3", (long long)s);
    cr_assert_eq(gwh_http_get(gw.port, path, body, sizeof(body)), 200, "%s", body);
    expected(want, sizeof(want), s, 3, &r, 1);
    cr_expect_str_eq(body, want);
    mysql_close(db);
}

/* A gateway whose database settings point where nothing listens. */
static int dead_port(void)
{
    int fd = gwh_tcp_connect(1);

    cr_assert_lt(fd, 0, "something listens on port 1");
    return 1;
}

Test(history, database_unreachable_is_503_and_the_gateway_keeps_serving)
{
    static char reader_port[64], writer_port[64];
    const char *env[] = {reader_port, writer_port, "VC_GATEWAY_CATALOG_SECONDS=0", NULL};
    gwh_gateway dead;
    char body[1024], path[128];

    snprintf(reader_port, sizeof(reader_port), "VC_MYSQL_READER_PORT=%d", dead_port());
    snprintf(writer_port, sizeof(writer_port), "VC_MYSQL_PORT=%d", dead_port());
    gwh_gateway_start(&dead, env);
    snprintf(path, sizeof(path), "/api/streams/%lld/history", (long long)unique_stream(5));
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(gwh_http_get(dead.port, path, body, sizeof(body)), 503, "%s", body);
        cr_expect_str_eq(body, "{\"error\":\"history unavailable: the database cannot be reached\"}");
        cr_expect_eq(gwh_http_get(dead.port, "/healthz", body, sizeof(body)), 200);
        cr_expect_str_eq(body, "ok\n");
    }
    cr_expect_eq(gwh_http_get(dead.port, "/api/streams/1/history?hours=0", body, sizeof(body)), 400,
                 "bad requests are still 400");
    cr_expect_geq(gwh_metric(dead.port, "vc_gateway_history_errors_total"), 1);
    cr_expect_eq(gwh_gateway_stop(&dead, SIGTERM, 15000) >= 0, 1, "exits on SIGTERM");
}

Test(history, reads_the_reader_not_the_writer)
{
    /* Reader unreachable, writer up: the history is not read from the
     * writer behind the operator's back (the writer is not for analysts'
     * reads); without a reader configured it is (next test). */
    static char reader_port[64];
    const char *env[] = {reader_port, "VC_GATEWAY_CATALOG_SECONDS=0", NULL};
    gwh_gateway g;
    char body[1024];

    snprintf(reader_port, sizeof(reader_port), "VC_MYSQL_READER_PORT=%d", dead_port());
    gwh_gateway_start(&g, env);
    cr_expect_eq(gwh_http_get(g.port, "/api/streams/7/history", body, sizeof(body)), 503, "%s", body);
    gwh_gateway_stop(&g, SIGKILL, 5000);
}

Test(history, without_a_reader_the_writer_and_the_cache_expires)
{
    static const char *const env[] = {"VC_MYSQL_READER_HOST=", "VC_GATEWAY_HISTORY_CACHE_SECONDS=1",
                                      "VC_GATEWAY_CATALOG_SECONDS=0", NULL};
    int64_t s = unique_stream(6), now = (int64_t)time(NULL), base = now - now % 300;
    row rows[] = {{base - 1200, 300, "4", "4", 4, 4, 4, 4, 4}, {base - 900, 300, "5", "5", 5, 5, 5, 5, 5}};
    MYSQL *db = db_connect("VC_MYSQL_HOST", "VC_MYSQL_PORT");
    gwh_gateway g;
    char path[128], body[4096], want[4096];

    seed(db, s, &rows[0]);
    gwh_gateway_start(&g, env);
    snprintf(path, sizeof(path), "/api/streams/%lld/history", (long long)s);
    cr_assert_eq(gwh_http_get(g.port, path, body, sizeof(body)), 200, "%s", body);
    expected(want, sizeof(want), s, 6, rows, 1);
    cr_expect_str_eq(body, want, "the writer's row at once");
    /* A new bucket is seen once the cached answer is older than 1 s. */
    seed(db, s, &rows[1]);
    usleep(1300 * 1000);
    cr_assert_eq(gwh_http_get(g.port, path, body, sizeof(body)), 200, "%s", body);
    expected(want, sizeof(want), s, 6, rows, 2);
    cr_expect_str_eq(body, want, "after the cache time");
    gwh_gateway_stop(&g, SIGKILL, 5000);
    mysql_close(db);
}

/* ---- static files ---- */

static void header_value(const char *head, const char *name, char *out, size_t size)
{
    const char *p = strcasestr(head, name);
    size_t n;

    out[0] = '\0';
    if (p == NULL)
        return;
    p += strlen(name);
    while (*p == ' ')
        p++;
    n = strcspn(p, "\r\n");
    snprintf(out, size, "%.*s", (int)n, p);
}

static char *read_repo_file(const char *rel)
{
    char path[512];
    FILE *f;
    long n;
    char *buf;

    snprintf(path, sizeof(path), "%s/%s", GWH_REPO, rel);
    f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

Test(web, static_files_with_etag_and_304)
{
    static char root[600];
    const char *env[] = {root, "VC_GATEWAY_CATALOG_SECONDS=0", NULL};
    gwh_gateway g;
    static char body[65536], head[4096];
    char etag[128], ctype[128], cc[128], inm[256];
    char *js = read_repo_file("gateway/web/stream.js"), *html = read_repo_file("gateway/web/index.html");

    snprintf(root, sizeof(root), "VC_GATEWAY_WEB_ROOT=%s/gateway/web", GWH_REPO);
    gwh_gateway_start(&g, env);

    cr_assert_eq(gwh_http_get_ex(g.port, "/stream.js", NULL, head, sizeof(head), body, sizeof(body)), 200);
    cr_expect_str_eq(body, js, "the file's bytes");
    header_value(head, "\ncontent-type:", ctype, sizeof(ctype));
    cr_expect_str_eq(ctype, "text/javascript; charset=utf-8");
    header_value(head, "\netag:", etag, sizeof(etag));
    cr_assert(strlen(etag) == 18 && etag[0] == '"' && etag[17] == '"', "a strong ETag: [%s] in %s", etag, head);
    header_value(head, "\ncache-control:", cc, sizeof(cc));
    cr_expect_str_eq(cc, "no-cache");

    /* Revalidation: the same tag is 304 without a body, with the tag. */
    snprintf(inm, sizeof(inm), "If-None-Match: %s\r\n", etag);
    cr_assert_eq(gwh_http_get_ex(g.port, "/stream.js", inm, head, sizeof(head), body, sizeof(body)), 304, "%s", head);
    cr_expect_str_eq(body, "", "no body with a 304");
    header_value(head, "\netag:", cc, sizeof(cc));
    cr_expect_str_eq(cc, etag);
    header_value(head, "\ncontent-length:", cc, sizeof(cc));
    cr_expect_eq(atol(cc), (long)strlen(js), "the length a 200 would have (RFC 9110 8.6): %s", cc);
    snprintf(inm, sizeof(inm), "If-None-Match: \"x\", W/%s\r\n", etag);
    cr_expect_eq(gwh_http_get_ex(g.port, "/stream.js", inm, head, sizeof(head), body, sizeof(body)), 304,
                 "one of a list, weak");
    cr_expect_eq(gwh_metric(g.port, "vc_gateway_web_not_modified_total"), 2);

    /* The connection stays open after a 304: the next request on it is answered. */
    {
        int fd = gwh_tcp_connect(g.port);
        char req[512], resp[16384] = "";
        size_t off = 0;
        ssize_t n;

        cr_assert_geq(fd, 0);
        snprintf(req, sizeof(req), "GET /stream.js HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-None-Match: %s\r\n\r\n", etag);
        cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
        while (!strstr(resp, "\r\n\r\n") && (n = gwh_read_some(fd, resp + off, sizeof(resp) - 1 - off, 10000)) > 0) {
            off += (size_t)n;
            resp[off] = '\0';
        }
        cr_assert(!strncmp(resp, "HTTP/1.1 304", 12), "%s", resp);
        cr_expect_str_eq(strstr(resp, "\r\n\r\n"), "\r\n\r\n", "nothing after the 304's headers");
        snprintf(req, sizeof(req), "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req), "the connection is still open");
        off = 0;
        resp[0] = '\0';
        while ((n = gwh_read_some(fd, resp + off, sizeof(resp) - 1 - off, 10000)) > 0) {
            char *b;

            off += (size_t)n;
            resp[off] = '\0';
            if ((b = strstr(resp, "\r\n\r\n")) != NULL && strlen(b + 4) >= strlen(html))
                break;
        }
        cr_assert(!strncmp(resp, "HTTP/1.1 200", 12), "second request on the connection: %s", resp);
        cr_expect_str_eq(strstr(resp, "\r\n\r\n") + 4, html);
        close(fd);
    }

    /* Another tag, or another file with this tag: the body. */
    cr_expect_eq(gwh_http_get_ex(g.port, "/stream.js", "If-None-Match: \"0000000000000000\"\r\n", head, sizeof(head),
                                 body, sizeof(body)),
                 200);
    cr_expect_str_eq(body, js);
    snprintf(inm, sizeof(inm), "If-None-Match: %s\r\n", etag);
    cr_expect_eq(gwh_http_get_ex(g.port, "/", inm, head, sizeof(head), body, sizeof(body)), 200);
    cr_expect_str_eq(body, html, "/ is index.html");
    header_value(head, "\ncontent-type:", ctype, sizeof(ctype));
    cr_expect_str_eq(ctype, "text/html; charset=utf-8");

    cr_expect_eq(gwh_http_get(g.port, "/nope.html", body, sizeof(body)), 404);
    cr_expect_eq(gwh_http_get(g.port, "/.hidden", body, sizeof(body)), 400);
    cr_expect_eq(gwh_http_get(g.port, "/README.md", body, sizeof(body)), 200, "every plain file of the folder");
    gwh_gateway_stop(&g, SIGKILL, 5000);
    free(js);
    free(html);
}

Test(web, a_web_root_over_4_mb_refuses_to_start)
{
    char dir[] = "/tmp/vc-gw-big-XXXXXX", path[256], cmd[512], log[4096];
    int st;
    FILE *f;
    size_t n;

    cr_assert_not_null(mkdtemp(dir));
    for (int i = 0; i < 5; i++) { /* 5 files of 1 MB: each allowed, together over the bound */
        snprintf(path, sizeof(path), "%s/f%d.js", dir, i);
        f = fopen(path, "w");
        cr_assert_not_null(f);
        cr_assert_eq(ftruncate(fileno(f), 1024 * 1024), 0);
        fclose(f);
    }
    snprintf(cmd, sizeof(cmd),
             "VC_GATEWAY_WEB_ROOT=%s VC_GATEWAY_PORT=1 VC_ALLOW_ANONYMOUS=1 timeout 20 %s > %s/log 2>&1", dir,
             GWH_GATEWAY_BIN, dir);
    st = system(cmd);
    cr_assert(WIFEXITED(st), "status %d", st);
    cr_expect_eq(WEXITSTATUS(st), 1, "exit status");
    snprintf(path, sizeof(path), "%s/log", dir);
    f = fopen(path, "r");
    cr_assert_not_null(f);
    n = fread(log, 1, sizeof(log) - 1, f);
    log[n] = '\0';
    fclose(f);
    cr_expect(strstr(log, "over 4194304 bytes") && strstr(log, dir), "a clear error: %s", log);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}
