/* test_faults.c -- vc-aggregator under faults, against the real Redis
 * Cluster and broker: kill -9 in a loop, two instances and a rebalance, a
 * Redis master killed mid-stream, FLUSHALL then rebuild (command and
 * automatic), gateway death by event time, sync repair, dead letters. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "vc_partition.h"

#define NSTREAMS 40

Test(faults, kill_9_at_random_moments_while_events_flow, .timeout = 600)
{
    h_ctx h;
    h_setup(&h, "kill9");
    h_workload *w = h_workload_new(42, 1000, NSTREAMS);
    unsigned r = 7;
    char port_env[64];
    int port = h_http_port(0);
    snprintf(port_env, sizeof(port_env), "VC_AGGREGATOR_HTTP_PORT=%d", port);
    const char *env[] = {port_env, NULL};
    for (int round = 0; round < 8; round++) {
        pid_t agg = h_agg_start(&h, env);
        /* kill while it applies, not while it joins the group */
        cr_assert(h_wait_assigned(port, 60), "round %d: no assignment within 60 s", round);
        int chunks = 1 + rand_r(&r) % 5;
        for (int c = 0; c < chunks; c++) {
            h_workload_run(&h, w, 300);
            rd_kafka_flush(h.rk, 10000);
            h_sleep_ms(rand_r(&r) % 700);
        }
        h_agg_stop(agg, SIGKILL);
    }
    pid_t agg = h_agg_start(&h, NULL);
    h_workload_run(&h, w, 300); /* the last instance has work of its own too */
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 120), "events not applied within 120 s after the last restart");
    h_workload_expect(&h, w);
    cr_expect_eq(h_agg_stop(agg, SIGTERM), 0);
    free(w);
    h_teardown(&h);
}

Test(faults, two_aggregators_and_a_rebalance, .timeout = 600)
{
    h_ctx h;
    h_setup(&h, "rebal");
    h_workload *w = h_workload_new(4242, 1000, NSTREAMS);
    const char *second[] = {"VC_AGGREGATOR_ID=agg-1", NULL};
    pid_t a = h_agg_start(&h, NULL);
    h_workload_run(&h, w, 1500);
    h_sync(&h);
    pid_t b = h_agg_start(&h, second); /* joins the group: partitions are shared */
    for (int i = 0; i < 10; i++) {
        h_workload_run(&h, w, 200);
        h_sleep_ms(300);
    }
    h_agg_stop(a, SIGKILL); /* dies: b takes every partition after the session timeout */
    h_workload_run(&h, w, 1500);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 120), "the survivor did not apply everything within 120 s");
    h_workload_expect(&h, w);
    cr_expect_eq(h_agg_stop(b, SIGTERM), 0);
    free(w);
    h_teardown(&h);
}

Test(faults, redis_master_killed_and_replica_promoted_mid_stream, .timeout = 600)
{
    h_ctx h;
    h_setup(&h, "failover");
    h_workload *w = h_workload_new(99, 1000, NSTREAMS);
    char port_env[64], kill_cmd[64], start_cmd[64];
    int port = h_http_port(0);
    snprintf(port_env, sizeof(port_env), "VC_AGGREGATOR_HTTP_PORT=%d", port);
    const char *env[] = {port_env, NULL};
    pid_t agg = h_agg_start(&h, env);
    h_workload_run(&h, w, 1500);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    /* the master of partition 0's slot, wherever earlier failovers moved it */
    int victim = h_master_of(&h, "vc:{vc.0}:meta");
    cr_assert_geq(victim, 0, "no master serves partition 0's slot");
    snprintf(kill_cmd, sizeof(kill_cmd), "kill redis %d", victim);
    snprintf(start_cmd, sizeof(start_cmd), "start redis %d", victim);
    cr_assert_eq(h_stack(&h, kill_cmd), 0, "stack %s", kill_cmd);
    for (int i = 0; i < 10; i++) {
        h_workload_run(&h, w, 150);
        h_sleep_ms(400);
    }
    h_sync(&h);
    int ok = h_wait_applied(&h, 120);
    int restarted = h_stack(&h, start_cmd);
    cr_assert(ok, "events not applied within 120 s of the failover");
    cr_expect_eq(restarted, 0, "stack %s", start_cmd);
    int promoted = h_master_of(&h, "vc:{vc.0}:meta");
    cr_expect(promoted >= 0 && promoted != victim, "partition 0's slot is served by node %d, not a promoted replica",
              promoted);
    /* the Redis client rides out the failover inside its retries (MOVED, reconnect), so the
     * aggregator may see no error at all: the counts below are what matters */
    h_workload_expect(&h, w);
    cr_expect_eq(h_agg_stop(agg, SIGTERM), 0);
    free(w);
    h_teardown(&h);
}

/* vc-aggregator rebuild on the test's topics; its output in the file out. */
static int run_rebuild(h_ctx *h, char *out, size_t size)
{
    snprintf(out, size, "/tmp/vc-agg-rebuild-%d.log", (int)getpid());
    pid_t rb = fork();
    if (rb == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        h_agg_env(h);
        if (freopen(out, "w", stderr) == NULL)
            _exit(126);
        execl(AGG_TEST_BIN, "vc-aggregator", "rebuild", (char *)NULL);
        _exit(127);
    }
    int status = -1;
    for (int i = 0; i < 3000; i++) {
        if (waitpid(rb, &status, WNOHANG) == rb)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        h_sleep_ms(100);
    }
    kill(rb, SIGKILL);
    waitpid(rb, &status, 0);
    return -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 1 << 20);
    if (f) {
        size_t n = fread(buf, 1, (1 << 20) - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    return buf;
}

Test(faults, rebuild_starts_from_the_newest_checkpoint, .timeout = 600)
{
    h_ctx h;
    size_t nbefore, nafter;
    h_setup(&h, "ckpt");
    h_workload *w = h_workload_new(11, 1000, NSTREAMS);
    char port_env[64];
    int port = h_http_port(0);
    snprintf(port_env, sizeof(port_env), "VC_AGGREGATOR_HTTP_PORT=%d", port);
    const char *env[] = {port_env, "VC_CHECKPOINT_INTERVAL_S=1", NULL};
    pid_t agg = h_agg_start(&h, env);
    h_workload_run(&h, w, 2000);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 90));
    /* wait for a checkpoint of every partition */
    int ok = 0;
    for (int i = 0; i < 300 && !ok; i++) {
        char *m = h_http_get(port, "/metrics");
        const char *c = m ? strstr(m, "\nvc_aggregator_checkpoints_total ") : NULL;
        ok = c && (int)strtol(c + strlen("\nvc_aggregator_checkpoints_total "), NULL, 10) >= H_PARTITIONS;
        free(m);
        if (!ok)
            h_sleep_ms(100);
    }
    cr_assert(ok, "no checkpoint of every partition within 30 s");
    cr_expect_eq(h_agg_stop(agg, SIGTERM), 0);
    /* events after the checkpoint, applied by an instance that writes none */
    const char *nockpt[] = {"VC_CHECKPOINT_INTERVAL_S=0", NULL};
    agg = h_agg_start(&h, nockpt);
    h_workload_run(&h, w, 500);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 90));
    cr_expect_eq(h_agg_stop(agg, SIGTERM), 0);
    char *before = h_dump_keys(&h, &nbefore);

    h_flush_redis(&h);
    char out[256];
    int rrc = run_rebuild(&h, out, sizeof(out));
    char *log = slurp(out);
    unlink(out);
    cr_assert_eq(rrc, 0, "vc-aggregator rebuild failed:\n%s", log);
    cr_expect(strstr(log, "restored the checkpoint") != NULL, "the rebuild did not use a checkpoint:\n%s", log);
    const char *done = strstr(log, "rebuild: done: ");
    cr_assert_not_null(done, "no summary:\n%s", log);
    long long replayed = strtoll(done + strlen("rebuild: done: "), NULL, 10);
    cr_expect_eq(replayed, 500, "only the events after the checkpoint are replayed:\n%s", log);
    char *after = h_dump_keys(&h, &nafter);
    cr_expect_eq(nafter, nbefore);
    cr_expect(strcmp(before, after) == 0, "the rebuilt keys differ from the keys before the flush");
    free(log);
    free(after);
    free(before);
    free(w);
    h_teardown(&h);
}

Test(faults, flushall_then_rebuild_restores_every_key, .timeout = 600)
{
    h_ctx h;
    size_t nbefore, nafter;
    h_setup(&h, "rebuild");
    h_workload *w = h_workload_new(7, 1000, NSTREAMS);
    /* a gateway restart and an expiry are part of the history too */
    pid_t agg = h_agg_start(&h, NULL);
    h_workload_run(&h, w, 3000);
    h_heartbeat_all(&h, "gw-c", 5, w->ts);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 90));
    cr_expect_eq(h_agg_stop(agg, SIGTERM), 0);
    char *before = h_dump_keys(&h, &nbefore);
    cr_assert_gt(nbefore, NSTREAMS);
    /* only contract keys: per stream s:, per partition meta and rank */
    cr_expect_leq(nbefore, NSTREAMS + 2 * H_PARTITIONS, "%zu keys: per-connection keys in Redis?", nbefore);
    cr_expect(strstr(before, ":u:") == NULL && strstr(before, ":g:") == NULL && strstr(before, ":gs:") == NULL,
              "aggregator-internal keys in Redis");

    /* the command */
    h_flush_redis(&h);
    char *empty = h_dump_keys(&h, &nafter);
    cr_assert_eq(nafter, 0);
    free(empty);
    char out[256];
    int rrc = run_rebuild(&h, out, sizeof(out));
    unlink(out);
    cr_assert_eq(rrc, 0, "vc-aggregator rebuild failed");
    char *after = h_dump_keys(&h, &nafter);
    cr_expect_eq(nafter, nbefore, "%zu keys after the rebuild, %zu before", nafter, nbefore);
    cr_expect(strcmp(before, after) == 0, "the rebuilt keys differ from the keys before the flush");
    free(after);

    /* automatic: a running aggregator finds its state gone and rebuilds it */
    char port_env[64];
    int port = h_http_port(0);
    snprintf(port_env, sizeof(port_env), "VC_AGGREGATOR_HTTP_PORT=%d", port);
    const char *env[] = {port_env, NULL};
    agg = h_agg_start(&h, env);
    cr_assert(h_wait_assigned(port, 60), "the aggregator did not take its partitions within 60 s");
    char *health = h_http_get(port, "/healthz");
    cr_expect_not_null(health, "/healthz answers 200");
    free(health);
    h_flush_redis(&h);
    after = NULL;
    for (int i = 0; i < 60; i++) {
        h_sleep_ms(500);
        free(after);
        after = h_dump_keys(&h, &nafter);
        if (strcmp(before, after) == 0)
            break;
    }
    cr_expect(strcmp(before, after) == 0, "the automatic rebuild did not restore every key within 30 s");
    char *metrics = h_http_get(port, "/metrics");
    cr_assert_not_null(metrics);
    cr_expect(strstr(metrics, "\nvc_aggregator_rebuilds_total 0\n") == NULL, "a rebuild is counted:\n%s", metrics);
    free(metrics);
    cr_expect_eq(h_agg_stop(agg, SIGTERM), 0);
    free(after);
    free(before);
    free(w);
    h_teardown(&h);
}

Test(faults, a_silent_gateway_loses_its_viewers_after_the_timeout_and_not_before, .timeout = 300)
{
    h_ctx h;
    h_setup(&h, "gwdeath");
    const char *env[] = {"VC_GATEWAY_TIMEOUT_MS=5000", NULL};
    pid_t agg = h_agg_start(&h, env);
    int64_t t = 1000000;
    h_heartbeat_all(&h, "gw-a", 1, t);
    h_heartbeat_all(&h, "gw-b", 1, t);
    for (int i = 0; i < 3; i++) {
        vc_event j = h_join(77, 10 + i, 100 + i, "gw-a", 1, t);
        h_produce(&h, &j);
    }
    vc_event jb = h_join(77, 50, 200, "gw-b", 1, t);
    h_produce(&h, &jb);
    /* gw-b keeps heartbeating, gw-a is silent: exactly the timeout is not yet over it */
    h_heartbeat_all(&h, "gw-b", 1, t + 3000);
    h_heartbeat_all(&h, "gw-b", 1, t + 5000);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    cr_expect_eq(h_stream_int(&h, 77, "viewers"), 4, "gw-a's viewers must stay until its timeout");
    h_heartbeat_all(&h, "gw-b", 1, t + 5001);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    cr_expect_eq(h_stream_int(&h, 77, "viewers"), 1, "gw-a silent for more than the timeout: its viewers leave");
    cr_expect_eq(h_rank_score(&h, 77, 0), 1);
    /* its viewers reconnect to gw-b and count once */
    for (int i = 0; i < 3; i++) {
        vc_event j = h_join(77, 10 + i, 300 + i, "gw-b", 1, t + 5002);
        h_produce(&h, &j);
    }
    /* a restart of gw-b (new epoch) ends the old epoch's viewers at once */
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    cr_expect_eq(h_stream_int(&h, 77, "viewers"), 4);
    h_heartbeat_all(&h, "gw-b", 2, t + 5003);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    cr_expect_eq(h_stream_int(&h, 77, "viewers"), 0, "a restarted gateway's old viewers are gone");
    cr_expect_eq(h_stream_int(&h, 77, "peak"), 4);
    cr_expect_eq(h_agg_stop(agg, SIGTERM), 0);
    h_teardown(&h);
}

static vc_event sync_of(int64_t stream, const char *gw, int64_t snap, const int64_t *conns, const int64_t *users,
                        size_t n, int64_t ts)
{
    vc_event ev = h_heartbeat(gw, 1, ts);
    ev.type = VC_EV_SYNC;
    ev.stream_id = stream;
    ev.snapshot_id = snap;
    ev.chunk = 0;
    ev.chunks = 1;
    ev.nviewers = n;
    ev.viewers = calloc(n ? n : 1, sizeof(*ev.viewers));
    for (size_t i = 0; i < n; i++) {
        ev.viewers[i].conn_id = conns[i];
        ev.viewers[i].user_id = users[i];
        ev.viewers[i].joined_ms = ts - 1;
    }
    return ev;
}

Test(faults, a_sync_with_drift_repairs_the_gateway_share, .timeout = 300)
{
    h_ctx h;
    h_setup(&h, "sync");
    pid_t agg = h_agg_start(&h, NULL);
    int64_t t = 5000000, conns[16], users[16];
    for (int i = 0; i < 10; i++) {
        vc_event j = h_join(88, 100 + i, 1 + i, "gw-a", 1, t);
        h_produce(&h, &j);
        conns[i] = 1 + i;
        users[i] = 100 + i;
    }
    vc_event other = h_join(88, 500, 99, "gw-b", 1, t);
    h_produce(&h, &other);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    cr_expect_eq(h_stream_int(&h, 88, "viewers"), 11);
    /* gw-a really holds conns 1..8 and 11 (user 111): 2 ghosts, 1 missing: 30% -> syncing */
    conns[8] = 11;
    users[8] = 111;
    vc_event s1 = sync_of(88, "gw-a", 1, conns, users, 9, t + 1);
    h_produce(&h, &s1);
    vc_event_free(&s1);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    cr_expect_eq(h_stream_int(&h, 88, "viewers"), 10, "the share of gw-a is replaced by its snapshot");
    char *status = h_stream_str(&h, 88, "status");
    cr_expect_str_eq(status, "syncing");
    free(status);
    /* a matching snapshot: no drift, the stream is live again */
    vc_event s2 = sync_of(88, "gw-a", 2, conns, users, 9, t + 2);
    h_produce(&h, &s2);
    vc_event_free(&s2);
    /* a chunked snapshot of gw-b with one ghost less than it holds: 1 of 1 -> rebuild tier, count 9 */
    int64_t none = 0;
    vc_event c0 = sync_of(88, "gw-b", 3, &none, &none, 0, t + 3);
    c0.chunks = 2;
    vc_event c1 = sync_of(88, "gw-b", 3, &none, &none, 0, t + 3);
    c1.chunk = 1;
    c1.chunks = 2;
    h_produce(&h, &c0);
    h_produce(&h, &c1);
    vc_event_free(&c0);
    vc_event_free(&c1);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    cr_expect_eq(h_stream_int(&h, 88, "viewers"), 9);
    status = h_stream_str(&h, 88, "status");
    cr_expect_str_eq(status, "syncing", "a large drift marks the stream syncing");
    free(status);
    /* "syncing" is held for --syncing-hold-ms (15 s) of event time after the last
     * drift (t + 3), whether or not another snapshot comes: heartbeats move the clock */
    h_heartbeat_all(&h, "gw-a", 1, t + 3 + 14999);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    status = h_stream_str(&h, 88, "status");
    cr_expect_str_eq(status, "syncing", "still within the hold");
    free(status);
    h_heartbeat_all(&h, "gw-a", 1, t + 3 + 15000);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    status = h_stream_str(&h, 88, "status");
    cr_expect_str_eq(status, "live", "the repaired stream is live again once the hold has passed");
    free(status);
    cr_expect_eq(h_stream_int(&h, 88, "viewers"), 9);
    cr_expect_eq(h_agg_stop(agg, SIGTERM), 0);
    h_teardown(&h);
}

Test(faults, a_garbage_message_lands_in_the_dead_letter_topic, .timeout = 300)
{
    h_ctx h;
    char err[256];
    h_setup(&h, "dlq");
    pid_t agg = h_agg_start(&h, NULL);
    vc_event j = h_join(66, 1, 1, "gw-a", 1, 1000);
    h_produce(&h, &j);
    h_produce_raw(&h, 66, "not an event", 12);
    vc_event j2 = h_join(66, 3, 3, "gw-a", 1, 1002);
    h_produce(&h, &j2);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60), "consumption must go on past a bad message");
    cr_expect_eq(h_stream_int(&h, 66, "viewers"), 2);

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", h.brokers, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "dlq-reader", err, sizeof(err));
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, h.dlq, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, list);
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_message_t *msg = NULL;
    for (int i = 0; i < 300 && msg == NULL; i++) {
        msg = rd_kafka_consumer_poll(c, 100);
        if (msg && msg->err) {
            rd_kafka_message_destroy(msg);
            msg = NULL;
        }
    }
    cr_assert_not_null(msg, "no dead letter within 30 s");
    cr_expect_eq(msg->len, 12);
    cr_expect(memcmp(msg->payload, "not an event", 12) == 0);
    rd_kafka_headers_t *hdrs = NULL;
    const void *val;
    size_t len;
    cr_assert_eq(rd_kafka_message_headers(msg, &hdrs), 0);
    cr_assert_eq(rd_kafka_header_get_last(hdrs, "vc-error", &val, &len), 0, "the reason header");
    cr_expect_gt(len, 0);
    cr_assert_eq(rd_kafka_header_get_last(hdrs, "vc-source-offset", &val, &len), 0);
    cr_expect_eq(len, 1);
    cr_expect_eq(((const char *)val)[0], '1');
    rd_kafka_message_destroy(msg);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    cr_expect_eq(h_agg_stop(agg, SIGTERM), 0);
    h_teardown(&h);
}

Test(faults, a_redis_outage_pauses_consumption_and_it_resumes_after, .timeout = 600)
{
    h_ctx h;
    h_setup(&h, "outage");
    h_workload *w = h_workload_new(2024, 1000, NSTREAMS);
    char port_env[64];
    int port = h_http_port(0);
    snprintf(port_env, sizeof(port_env), "VC_AGGREGATOR_HTTP_PORT=%d", port);
    const char *env[] = {port_env, NULL};
    pid_t agg = h_agg_start(&h, env);
    cr_assert(h_wait_assigned(port, 60));
    h_workload_run(&h, w, 1000);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    /* longer than the Redis client's own retries (16 rounds), so the aggregator sees it */
    cr_assert_eq(h_pause_masters(&h, 60000), 3, "could not pause the three masters");
    int64_t paused_at = time(NULL);
    h_workload_run(&h, w, 1000);
    h_sync(&h);
    /* while Redis does not answer: no offset moves, and /healthz says so */
    int unhealthy = 0;
    while (time(NULL) - paused_at < 58) {
        char *hz = h_http_get(port, "/healthz");
        unhealthy |= hz == NULL;
        free(hz);
        h_sleep_ms(500);
    }
    cr_expect(unhealthy, "/healthz never reported the outage");
    cr_assert(h_wait_applied(&h, 120), "consumption did not resume after the outage");
    h_workload_expect(&h, w);
    cr_expect_eq(h_agg_stop(agg, SIGTERM), 0);
    free(w);
    h_teardown(&h);
}
