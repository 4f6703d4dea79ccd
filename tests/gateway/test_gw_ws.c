/* vc-gateway against real clients: a real gateway process on the local
 * stack, our raw WebSocket client, the events read back from Kafka. */
#include <criterion/criterion.h>
#include <jwt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gw_harness.h"

#define WAIT_MS 10000

static gwh_gateway gw;
static gwh_events *events;

static void start(const char *const *extra)
{
    events = gwh_events_new();
    gwh_gateway_start(&gw, extra);
}

static void stop(void)
{
    if (gw.pid > 0)
        gwh_gateway_stop(&gw, SIGKILL, 5000);
    gwh_events_destroy(events);
    events = NULL;
}

static void start_default(void)
{
    start(NULL);
}

static int64_t unique_stream(void)
{
    return 1000000 + (int64_t)(getpid() % 10000) * 1000 + (gwh_now_ms() % 1000);
}

static int connect_viewer(int64_t stream, const char *token, int *status)
{
    char target[4096];

    if (token)
        snprintf(target, sizeof(target), "/ws?stream=%lld&token=%s", (long long)stream, token);
    else
        snprintf(target, sizeof(target), "/ws?stream=%lld", (long long)stream);
    return gwh_ws_connect(gw.port, target, NULL, status);
}

/* A token signed by libjwt with any algorithm and key. */
static char *forge(jwt_alg_t alg, const char *key, const char *sub, long exp)
{
    jwt_t *jwt = NULL;
    char *s;

    jwt_new(&jwt);
    jwt_add_grant(jwt, "sub", sub);
    jwt_add_grant_int(jwt, "exp", exp);
    cr_assert_eq(jwt_set_alg(jwt, alg, (const unsigned char *)key, key ? (int)strlen(key) : 0), 0);
    s = jwt_encode_str(jwt);
    jwt_free(jwt);
    return s;
}

static void expect_unauthorized(const char *token, const char *reason_part)
{
    gwh_frame f;
    int status, fd = connect_viewer(unique_stream(), token, &status);

    cr_assert_eq(status, 101, "a bad token is refused after the upgrade, so browsers see the code");
    cr_assert_eq(gwh_ws_wait_close(fd, WAIT_MS, &f), 4401, "close code");
    if (reason_part)
        cr_expect(strstr(f.data, reason_part), "reason '%s' should mention %s", f.data, reason_part);
    close(fd);
}

TestSuite(gateway, .fini = stop, .timeout = 120);

Test(gateway, valid_token_joins_and_gets_a_count_then_leaves_on_close, .init = start_default)
{
    char tok[1024];
    gwh_frame f;
    int status, fd;
    int64_t stream = unique_stream();
    const vc_event *ev[4];

    gwh_token(4242, 300, tok, sizeof(tok));
    fd = connect_viewer(stream, tok, &status);
    cr_assert_eq(status, 101);
    cr_assert_eq(gwh_ws_wait_text(fd, "\"type\":\"count\"", WAIT_MS, &f), 0, "a count right after join");
    cr_assert(strstr(f.data, "\"status\":"));
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_JOIN, VC_LEAVE_NONE, 1, WAIT_MS), 1);
    gwh_events_get(events, gw.id, VC_EV_JOIN, ev, 4);
    cr_assert_eq(ev[0]->stream_id, stream);
    cr_assert_eq(ev[0]->user_id, 4242);
    cr_assert_gt(ev[0]->conn_id, 0);
    cr_assert_gt(ev[0]->gateway_epoch, 0);
    gwh_ws_send(fd, 8, "\x03\xe8", 2, 1);
    gwh_ws_wait_close(fd, WAIT_MS, &f);
    close(fd);
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_LEAVE, VC_LEAVE_CLIENT_CLOSED, 1, WAIT_MS), 1);
    gwh_events_get(events, gw.id, VC_EV_LEAVE, ev, 4);
    cr_assert_eq(ev[0]->conn_id, gwh_events_get(events, gw.id, VC_EV_JOIN, &ev[1], 1) ? ev[1]->conn_id : -1);
    cr_assert_gt(ev[0]->seq, ev[1]->seq, "seq increases within the epoch");
}

Test(gateway, bearer_header_is_accepted, .init = start_default)
{
    char tok[1024], hdr[1200];
    int status, fd;

    gwh_token(77, 300, tok, sizeof(tok));
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", tok);
    {
        char target[64];

        snprintf(target, sizeof(target), "/ws?stream=%lld", (long long)unique_stream());
        fd = gwh_ws_connect(gw.port, target, hdr, &status);
    }
    cr_assert_eq(status, 101);
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_JOIN, VC_LEAVE_NONE, 1, WAIT_MS), 1);
    close(fd);
}

Test(gateway, expired_token_closes_4401, .init = start_default)
{
    char tok[1024];

    gwh_token(5, -10, tok, sizeof(tok));
    expect_unauthorized(tok, "expired");
    cr_expect_eq(gwh_metric(gw.port, "vc_gateway_handshake_rejects_total{cause=\"token_expired\"}"), 1);
}

Test(gateway, forged_tokens_close_4401, .init = start_default)
{
    long exp = (long)time(NULL) + 300;
    char *wrong = forge(JWT_ALG_HS256, "not-the-secret", "5", exp);
    char *none = forge(JWT_ALG_NONE, NULL, "5", exp);
    char *hs512 = forge(JWT_ALG_HS512, gwh_env("VC_TOKEN_SECRET"), "5", exp);
    char *hs = forge(JWT_ALG_HS256, gwh_env("VC_TOKEN_SECRET"), "5", exp);
    char rs[2048];

    /* RS256 header over an HMAC signature made with the shared secret. */
    snprintf(rs, sizeof(rs), "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9%s", strchr(hs, '.'));
    expect_unauthorized(wrong, "bad_signature");
    expect_unauthorized(none, NULL);
    expect_unauthorized(hs512, "bad_alg");
    expect_unauthorized(rs, NULL);
    expect_unauthorized("garbage", NULL);
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_JOIN, VC_LEAVE_NONE, 1, 1500), 0, "no join for a forged token");
    free(wrong);
    free(none);
    free(hs512);
    free(hs);
}

Test(gateway, missing_token_closes_4401_without_the_anonymous_flag, .init = start_default)
{
    expect_unauthorized(NULL, "token required");
}

Test(gateway, two_tabs_of_one_user_are_two_joins_and_closing_one_is_one_leave, .init = start_default)
{
    char tok[1024];
    int st1, st2, a, b;
    int64_t stream = unique_stream();
    const vc_event *j[4], *l[4];
    gwh_frame f;

    gwh_token(31337, 300, tok, sizeof(tok));
    a = connect_viewer(stream, tok, &st1);
    b = connect_viewer(stream, tok, &st2);
    cr_assert_eq(st1, 101);
    cr_assert_eq(st2, 101);
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_JOIN, VC_LEAVE_NONE, 2, WAIT_MS), 2);
    cr_assert_eq(gwh_events_get(events, gw.id, VC_EV_JOIN, j, 4), 2);
    cr_assert_eq(j[0]->user_id, 31337);
    cr_assert_eq(j[1]->user_id, 31337);
    cr_assert_neq(j[0]->conn_id, j[1]->conn_id, "each tab is its own connection");
    close(a);
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_LEAVE, VC_LEAVE_NONE, 1, WAIT_MS), 1);
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_LEAVE, VC_LEAVE_NONE, 2, 1500), 1, "the other tab stays");
    gwh_events_get(events, gw.id, VC_EV_LEAVE, l, 4);
    cr_assert_eq(l[0]->user_id, 31337);
    gwh_ws_send_text(b, "{\"type\":\"ping\"}");
    cr_assert_eq(gwh_ws_wait_text(b, "pong", WAIT_MS, &f), 0, "the second tab still works");
    close(b);
}

Test(gateway, malformed_stream_id_is_http_400_before_upgrade, .init = start_default)
{
    const char *targets[] = {"/ws?stream=abc", "/ws?stream=0", "/ws?stream=-3", "/ws", "/ws?stream=99999999999999999999"};
    int status;

    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        cr_expect_eq(gwh_ws_connect(gw.port, targets[i], NULL, &status), -1);
        cr_expect_eq(status, 400, "%s", targets[i]);
    }
    cr_expect_eq(gwh_ws_connect(gw.port, "/other?stream=1", NULL, &status), -1);
    cr_expect_eq(status, 404);
    cr_expect_geq(gwh_metric(gw.port, "vc_gateway_handshake_rejects_total{cause=\"bad_stream\"}"), 5);
}

static int viewer(void)
{
    char tok[1024];
    int status, fd;
    gwh_frame f;

    gwh_token(9, 300, tok, sizeof(tok));
    fd = connect_viewer(unique_stream(), tok, &status);
    cr_assert_eq(status, 101);
    cr_assert_eq(gwh_ws_wait_text(fd, "count", WAIT_MS, &f), 0);
    return fd;
}

Test(gateway, bad_frames_get_their_close_codes, .init = start_default)
{
    gwh_frame f;
    char big[5000];
    int fd;

    memset(big, 'a', sizeof(big));
    fd = viewer();
    gwh_ws_send(fd, 1, big, sizeof(big), 1);
    cr_expect_eq(gwh_ws_wait_close(fd, WAIT_MS, &f), 1009, "oversized message");
    close(fd);

    fd = viewer();
    gwh_ws_send(fd, 1, big, 3000, 0); /* fragmented: 3000 + 3000 */
    gwh_ws_send(fd, 0, big, 3000, 1);
    cr_expect_eq(gwh_ws_wait_close(fd, WAIT_MS, &f), 1009, "oversized fragmented message");
    close(fd);

    fd = viewer();
    gwh_ws_send(fd, 2, "\x01\x02", 2, 1);
    cr_expect_eq(gwh_ws_wait_close(fd, WAIT_MS, &f), 1003, "binary frame");
    close(fd);

    fd = viewer();
    gwh_ws_send(fd, 1, "{\"type\":\"\xc3\x28\"}", 14, 1);
    cr_expect_eq(gwh_ws_wait_close(fd, WAIT_MS, &f), 1007, "invalid UTF-8");
    close(fd);

    fd = viewer();
    gwh_ws_send_text(fd, "{\"type\":\"vote\"}");
    cr_expect_eq(gwh_ws_wait_close(fd, WAIT_MS, &f), 1008, "unknown message type");
    close(fd);

    fd = viewer();
    gwh_ws_send_text(fd, "hello");
    cr_expect_eq(gwh_ws_wait_close(fd, WAIT_MS, &f), 1003, "not JSON");
    close(fd);

    cr_expect_eq(gwh_events_wait(events, gw.id, VC_EV_LEAVE, VC_LEAVE_NONE, 6, WAIT_MS), 6, "each closed viewer left");
}

Test(gateway, fragmented_ping_within_the_limit_is_answered, .init = start_default)
{
    gwh_frame f;
    int fd = viewer();

    gwh_ws_send(fd, 1, "{\"type\":", 8, 0);
    gwh_ws_send(fd, 0, "\"ping\"}", 7, 1);
    cr_assert_eq(gwh_ws_wait_text(fd, "{\"type\":\"pong\"}", WAIT_MS, &f), 0);
    close(fd);
}

Test(gateway, metrics_move, .init = start_default)
{
    char series[160];
    int fd;

    snprintf(series, sizeof(series), "vc_gateway_connections{gateway=\"%s\"}", gw.id);
    cr_assert_eq(gwh_metric(gw.port, "vc_gateway_joins_total"), 0);
    cr_assert_eq(gwh_metric(gw.port, series), 0);
    fd = viewer();
    cr_assert_eq(gwh_metric(gw.port, "vc_gateway_joins_total"), 1);
    cr_assert_eq(gwh_metric(gw.port, series), 1);
    cr_assert_geq(gwh_metric(gw.port, "vc_gateway_pushes_sent_total"), 1);
    close(fd);
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_LEAVE, VC_LEAVE_NONE, 1, WAIT_MS), 1);
    cr_assert_eq(gwh_metric(gw.port, "vc_gateway_leaves_total{reason=\"CLIENT_CLOSED\"}"), 1);
    cr_assert_eq(gwh_metric(gw.port, series), 0);
    cr_assert_geq(gwh_metric(gw.port, "vc_gateway_events_produced_total"), 2);
}

Test(gateway, health_and_readiness, .init = start_default)
{
    char body[512];

    cr_assert_eq(gwh_http_get(gw.port, "/healthz", body, sizeof(body)), 200);
    /* Ready needs Kafka metadata and a Redis answer: both come within a few seconds. */
    for (int i = 0; i < 100 && gwh_http_get(gw.port, "/readyz", body, sizeof(body)) != 200; i++)
        usleep(100000);
    cr_assert_eq(gwh_http_get(gw.port, "/readyz", body, sizeof(body)), 200, "%s", body);
    cr_assert_eq(gwh_http_get(gw.port, "/nope", body, sizeof(body)), 404);
    cr_assert_eq(gwh_http_get(gw.port, "/api/streams/x1", body, sizeof(body)), 400);
}

Test(gateway, heartbeats_reach_every_partition)
{
    const char *env[] = {"VC_HEARTBEAT_SECONDS=1", NULL};
    const vc_event *hb[4096];
    size_t n;
    int seen[1024] = {0}, distinct = 0;

    start(env);
    cr_assert_geq(gwh_events_wait(events, gw.id, VC_EV_HEARTBEAT, VC_LEAVE_NONE, gwh_events_partitions(events), 20000),
                  gwh_events_partitions(events));
    n = gwh_events_get(events, gw.id, VC_EV_HEARTBEAT, hb, 4096);
    for (size_t i = 0; i < n; i++) {
        int32_t p = gwh_events_partition_of(events, hb[i]);

        cr_assert_eq(hb[i]->stream_id, 0);
        if (p >= 0 && p < 1024 && !seen[p]++)
            distinct++;
    }
    cr_assert_eq(distinct, gwh_events_partitions(events), "a heartbeat on every partition");
}

Test(gateway, sync_snapshot_lists_the_viewers)
{
    const char *env[] = {"VC_SYNC_SECONDS=1", NULL};
    const vc_event *sy[64];
    char tok[1024];
    int st, a, b;
    int64_t stream;
    size_t n;

    start(env);
    stream = unique_stream();
    gwh_token(501, 300, tok, sizeof(tok));
    a = connect_viewer(stream, tok, &st);
    gwh_token(502, 300, tok, sizeof(tok));
    b = connect_viewer(stream, tok, &st);
    cr_assert_geq(gwh_events_wait(events, gw.id, VC_EV_SYNC, VC_LEAVE_NONE, 2, 15000), 1);
    n = gwh_events_get(events, gw.id, VC_EV_SYNC, sy, 64);
    cr_assert_gt(n, 0);
    /* The last snapshot holds both viewers. */
    cr_assert_eq(sy[n - 1]->stream_id, stream);
    cr_assert_eq(sy[n - 1]->chunks, 1);
    cr_assert_eq(sy[n - 1]->nviewers, 2);
    cr_assert(sy[n - 1]->viewers[0].user_id == 501 || sy[n - 1]->viewers[0].user_id == 502);
    close(a);
    close(b);
}

Test(gateway, anonymous_viewers_with_the_flag)
{
    const char *env[] = {"VC_ALLOW_ANONYMOUS=1", NULL};
    const vc_event *j[2];
    int status, fd;

    start(env);
    fd = connect_viewer(unique_stream(), NULL, &status);
    cr_assert_eq(status, 101);
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_JOIN, VC_LEAVE_NONE, 1, WAIT_MS), 1);
    gwh_events_get(events, gw.id, VC_EV_JOIN, j, 2);
    cr_assert_eq(j[0]->user_id, 0, "anonymous: no user id");
    close(fd);
}

Test(gateway, sigterm_emits_leaves_closes_1001_and_exits)
{
    char tok[1024];
    int fds[3], status, st;
    gwh_frame f;
    int64_t t0;

    start(NULL);
    gwh_token(600, 300, tok, sizeof(tok));
    for (int i = 0; i < 3; i++) {
        fds[i] = connect_viewer(unique_stream() + i, tok, &status);
        cr_assert_eq(status, 101);
    }
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_JOIN, VC_LEAVE_NONE, 3, WAIT_MS), 3);
    t0 = gwh_now_ms();
    kill(gw.pid, SIGTERM);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(gwh_ws_wait_close(fds[i], WAIT_MS, &f), 1001, "viewer %d", i);
        close(fds[i]);
    }
    st = gwh_gateway_stop(&gw, 0, 10000);
    cr_assert_neq(st, -1, "exited within 10 s");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "clean exit, status %d", st);
    cr_assert_lt(gwh_now_ms() - t0, 10000);
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_LEAVE, VC_LEAVE_GATEWAY_SHUTDOWN, 3, WAIT_MS), 3,
                 "a GATEWAY_SHUTDOWN leave per viewer");
}

Test(gateway, sigkill_emits_nothing)
{
    int fd;

    start(NULL);
    fd = viewer();
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_JOIN, VC_LEAVE_NONE, 1, WAIT_MS), 1);
    gwh_gateway_stop(&gw, SIGKILL, 5000);
    close(fd);
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_LEAVE, VC_LEAVE_NONE, 1, 2000), 0);
}

Test(gateway, silent_viewer_times_out)
{
    const char *env[] = {"VC_PING_SECONDS=1", "VC_IDLE_TIMEOUT_SECONDS=3", NULL};
    gwh_frame f;
    int fd, pings = 0, code;
    int64_t deadline;

    start(env);
    fd = viewer();
    /* Read but never answer: the raw client does not pong. */
    deadline = gwh_now_ms() + 15000;
    code = -1;
    while (gwh_now_ms() < deadline) {
        int op = gwh_ws_recv(fd, 1000, &f);

        if (op == 9)
            pings++;
        if (op == 8) {
            code = f.close_code;
            break;
        }
        if (op == -2) {
            code = 0;
            break;
        }
    }
    cr_assert_geq(pings, 1, "the gateway pings an idle viewer");
    cr_assert_neq(code, -1, "closed");
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_LEAVE, VC_LEAVE_HEARTBEAT_TIMEOUT, 1, WAIT_MS), 1);
    close(fd);
}

Test(gateway, answering_pings_keeps_a_viewer)
{
    const char *env[] = {"VC_PING_SECONDS=1", "VC_IDLE_TIMEOUT_SECONDS=3", NULL};
    gwh_frame f;
    int fd;
    int64_t deadline;

    start(env);
    fd = viewer();
    deadline = gwh_now_ms() + 5000;
    while (gwh_now_ms() < deadline) {
        int op = gwh_ws_recv(fd, 500, &f);

        cr_assert_neq(op, 8, "closed although it answered pings");
        cr_assert_neq(op, -2);
        if (op == 9)
            gwh_ws_send(fd, 10, f.data, f.len, 1);
    }
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_LEAVE, VC_LEAVE_NONE, 1, 500), 0);
    close(fd);
}

Test(gateway, slow_handshake_times_out)
{
    const char *env[] = {"VC_HANDSHAKE_TIMEOUT_SECONDS=2", NULL};
    const char partial[] = "GET /ws?stream=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n";
    char buf[256];
    int fd;
    ssize_t r;
    int64_t t0;

    start(env);
    fd = gwh_tcp_connect(gw.port);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, partial, sizeof(partial) - 1), (ssize_t)(sizeof(partial) - 1));
    t0 = gwh_now_ms();
    r = gwh_read_some(fd, buf, sizeof(buf), 15000);
    cr_assert_leq(r, 0, "the half-open handshake is dropped, not answered");
    cr_assert_lt(gwh_now_ms() - t0, 15000, "dropped within the bound");
    close(fd);
}

Test(gateway, per_ip_connection_cap)
{
    const char *env[] = {"VC_MAX_CONNS_PER_IP=2", NULL};
    char tok[1024], target[2048];
    int st, a, b, c;

    start(env);
    gwh_token(8, 300, tok, sizeof(tok));
    snprintf(target, sizeof(target), "/ws?stream=5&token=%s", tok);
    a = gwh_ws_connect(gw.port, target, NULL, &st);
    cr_assert_eq(st, 101);
    b = gwh_ws_connect(gw.port, target, NULL, &st);
    cr_assert_eq(st, 101);
    c = gwh_ws_connect(gw.port, target, NULL, &st);
    cr_assert_eq(c, -1);
    cr_assert_eq(st, 429, "third connection from one IP");
    close(a);
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_LEAVE, VC_LEAVE_NONE, 1, WAIT_MS), 1);
    c = gwh_ws_connect(gw.port, target, NULL, &st);
    cr_assert_eq(st, 101, "a slot is free again");
    close(b);
    close(c);
    cr_assert_geq(gwh_metric(gw.port, "vc_gateway_handshake_rejects_total{cause=\"conns_per_ip\"}"), 1);
}

Test(gateway, per_ip_handshake_rate)
{
    const char *env[] = {"VC_HANDSHAKES_PER_IP_PER_SEC=1", NULL};
    char tok[1024], target[2048];
    int st, fds[6], refused = 0;

    start(env);
    gwh_token(8, 300, tok, sizeof(tok));
    snprintf(target, sizeof(target), "/ws?stream=5&token=%s", tok);
    for (int i = 0; i < 6; i++) {
        fds[i] = gwh_ws_connect(gw.port, target, NULL, &st);
        refused += st == 429;
    }
    cr_assert_geq(refused, 3, "burst of 2 at 1/s: most of 6 quick handshakes are refused");
    for (int i = 0; i < 6; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

Test(gateway, origin_allow_list)
{
    const char *env[] = {"VC_ALLOWED_ORIGINS=https://ok.example", NULL};
    char tok[1024], target[2048];
    int st, fd;

    start(env);
    gwh_token(8, 300, tok, sizeof(tok));
    snprintf(target, sizeof(target), "/ws?stream=5&token=%s", tok);
    fd = gwh_ws_connect(gw.port, target, "Origin: https://evil.example\r\n", &st);
    cr_assert_eq(fd, -1);
    cr_assert_eq(st, 403);
    fd = gwh_ws_connect(gw.port, target, "Origin: https://ok.example\r\n", &st);
    cr_assert_eq(st, 101);
    close(fd);
    fd = gwh_ws_connect(gw.port, target, NULL, &st);
    cr_assert_eq(st, 101, "a non-browser client without Origin, with a token");
    close(fd);
}

static int stack(const char *args)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "%s/deploy/local/stack %s >/dev/null 2>&1", GWH_REPO, args);
    return system(cmd);
}

Test(gateway, kafka_outage_is_visible_and_repaired_by_a_sync)
{
    char body[512];
    int fd, ready = 1;
    int64_t deadline;

    gwh_env("VC_STACK_DIR");
    start(NULL);
    fd = viewer();
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_JOIN, VC_LEAVE_NONE, 1, WAIT_MS), 1);
    cr_assert_eq(stack("broker down -1"), 0, "stack broker down -1");
    deadline = gwh_now_ms() + 20000;
    while (gwh_now_ms() < deadline && (ready = gwh_http_get(gw.port, "/readyz", body, sizeof(body)) == 200))
        usleep(200000);
    cr_expect_not(ready, "not ready while Kafka is down");
    /* Viewers keep watching meanwhile. */
    gwh_ws_send_text(fd, "{\"type\":\"ping\"}");
    {
        gwh_frame f;

        cr_expect_eq(gwh_ws_wait_text(fd, "pong", WAIT_MS, &f), 0);
    }
    cr_assert_eq(stack("broker up -1"), 0, "stack broker up -1");
    /* The periodic sync is 60 s away: a sync now is the outage repair. */
    cr_assert_geq(gwh_events_wait(events, gw.id, VC_EV_SYNC, VC_LEAVE_NONE, 1, 30000), 1, "a sync after the outage");
    cr_assert_geq(gwh_metric(gw.port, "vc_gateway_kafka_outages_total"), 1);
    close(fd);
}

Test(gateway, two_processes_share_a_port_and_a_draining_one_stops_accepting)
{
    const char *env[] = {"VC_GATEWAY_REUSE_PORT=1", NULL};
    gwh_gateway other;
    char tok[1024], target[2048];
    int fds[20], st, a, b;

    start(env);
    gwh_gateway_start_on(&other, gw.port, env);
    gwh_token(12, 300, tok, sizeof(tok));
    snprintf(target, sizeof(target), "/ws?stream=%lld&token=%s", (long long)unique_stream(), tok);
    for (int i = 0; i < 20; i++) {
        fds[i] = gwh_ws_connect(gw.port, target, NULL, &st);
        cr_assert_eq(st, 101);
    }
    a = gwh_events_wait(events, gw.id, VC_EV_JOIN, VC_LEAVE_NONE, 20, 3000);
    b = gwh_events_wait(events, other.id, VC_EV_JOIN, VC_LEAVE_NONE, 20 - a, WAIT_MS);
    cr_assert_eq(a + b, 20, "every connection joined on one of the two");
    cr_assert_gt(a, 0, "the kernel spread connections over both processes");
    cr_assert_gt(b, 0, "the kernel spread connections over both processes");
    /* Draining: the first closes its listening socket, the port keeps working. */
    kill(gw.pid, SIGTERM);
    cr_assert_eq(gwh_events_wait(events, gw.id, VC_EV_LEAVE, VC_LEAVE_GATEWAY_SHUTDOWN, a, WAIT_MS), a);
    for (int i = 0; i < 5; i++) {
        int fd = gwh_ws_connect(gw.port, target, NULL, &st);

        cr_assert_eq(st, 101, "new viewers reach the other process");
        close(fd);
    }
    cr_assert_eq(gwh_events_wait(events, other.id, VC_EV_JOIN, VC_LEAVE_NONE, b + 5, WAIT_MS), b + 5);
    for (int i = 0; i < 20; i++)
        close(fds[i]);
    gwh_gateway_stop(&other, SIGTERM, 10000);
}
