/* test_recovery.c -- how vc-aggregator recovers its in-memory partition
 * state, against the real Redis Cluster and broker:
 *   - a checkpoint older than Redis: the events between them are replayed
 *     into memory only (no write), then counting goes on exactly;
 *   - no checkpoint: the log is replayed from its beginning into memory;
 *   - a checkpoint newer than Redis (Redis lost or missed writes): the
 *     partition's contract keys are restored from memory, key for key;
 *   - only contract keys are in Redis (no per-connection keys). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "vc_keys.h"
#include "vc_partition.h"

#define NSTREAMS 30

static int64_t produced(const h_ctx *h)
{
    int64_t n = 0;
    for (int p = 0; p < H_PARTITIONS; p++)
        n += h->last_offset[p] + 1;
    return n;
}

/* Every key in Redis is a contract key: meta, s:<stream>, rank, rank:c:<cat>. */
static void expect_only_contract_keys(const char *dump)
{
    const char *line = dump;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *tag = strstr(line, "}:");
        cr_assert_not_null(tag, "not a partition key: %.*s", (int)len, line);
        tag += 2;
        int ok = strncmp(tag, "meta ", 5) == 0 || strncmp(tag, "s:", 2) == 0 || strncmp(tag, "rank ", 5) == 0 ||
                 strncmp(tag, "rank:c:", 7) == 0;
        cr_expect(ok, "a key that is not part of the contract: %.*s", (int)(len > 120 ? 120 : len), line);
        if (ok && strncmp(tag, "meta ", 5) == 0) {
            int fields = 0;
            for (size_t k = 0; k < len; k++)
                fields += line[k] == '=';
            cr_expect_eq(fields, 1, "the meta hash holds only the offset: %.*s", (int)len, line);
        }
        line += len + (end ? 1 : 0);
    }
}

Test(recovery, a_checkpoint_older_than_redis_is_caught_up_in_memory_only, .timeout = 600)
{
    h_ctx h;
    h_setup(&h, "ckold");
    h_workload *w = h_workload_new(31, 2000, NSTREAMS);
    char port_env[64];
    int port = h_http_port(0);
    snprintf(port_env, sizeof(port_env), "VC_AGGREGATOR_HTTP_PORT=%d", port);

    /* phase A, then a clean stop: a checkpoint of every partition at its end */
    const char *ck[] = {port_env, "VC_CHECKPOINT_INTERVAL_S=1", NULL};
    pid_t agg = h_agg_start(&h, ck);
    cr_assert(h_wait_assigned(port, 60));
    h_workload_run(&h, w, 800);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 90));
    cr_expect_eq(h_agg_stop(agg, SIGTERM), 0);
    int64_t after_a = produced(&h);

    /* phase B by an instance that writes no checkpoint, killed -9 */
    const char *nock[] = {port_env, "VC_CHECKPOINT_INTERVAL_S=0", NULL};
    agg = h_agg_start(&h, nock);
    cr_assert(h_wait_assigned(port, 60));
    h_workload_run(&h, w, 600); /* leaves of phase A's connections too */
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 90));
    h_agg_stop(agg, SIGKILL);
    int64_t after_b = produced(&h);
    size_t nbefore, nafter;
    char *before = h_dump_keys(&h, &nbefore);

    /* recovery: checkpoint at A's end, Redis at B's end */
    agg = h_agg_start(&h, nock);
    cr_assert(h_wait_assigned(port, 60));
    long long replayed = h_wait_metric(port, "vc_aggregator_replayed_events_total", after_b - after_a, 60);
    cr_expect_eq(replayed, after_b - after_a, "phase B replayed into memory: %lld, want %lld", replayed,
                 (long long)(after_b - after_a));
    cr_expect_eq(h_metric(port, "vc_aggregator_events_total"), 0, "nothing written while catching up");
    cr_expect_eq(h_metric(port, "vc_aggregator_event_age_seconds_count"), 0, "replayed events have no age");
    char *mid = h_dump_keys(&h, &nafter);
    cr_expect_eq(nafter, nbefore);
    cr_expect(strcmp(before, mid) == 0, "Redis changed while the state was caught up in memory");
    free(mid);
    free(before);

    /* phase C depends on the state phase B left (its leaves close B's joins) */
    h_workload_run(&h, w, 600);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 90));
    h_workload_expect(&h, w);
    cr_expect_eq(h_metric(port, "vc_aggregator_events_total"), produced(&h) - after_b);
    /* every live event's age observed once, none later than +Inf */
    cr_expect_eq(h_metric(port, "vc_aggregator_event_age_seconds_count"), produced(&h) - after_b);
    cr_expect_eq(h_metric(port, "vc_aggregator_event_age_seconds_bucket{le=\"+Inf\"}"), produced(&h) - after_b);
    cr_expect_eq(h_agg_stop(agg, SIGTERM), 0);
    free(w);
    h_teardown(&h);
}

Test(recovery, without_a_checkpoint_the_log_is_replayed_into_memory_from_its_beginning, .timeout = 600)
{
    h_ctx h;
    h_setup(&h, "nock");
    h_workload *w = h_workload_new(77, 2000, NSTREAMS);
    char port_env[64];
    int port = h_http_port(0);
    snprintf(port_env, sizeof(port_env), "VC_AGGREGATOR_HTTP_PORT=%d", port);
    const char *nock[] = {port_env, "VC_CHECKPOINT_INTERVAL_S=0", NULL};
    pid_t agg = h_agg_start(&h, nock);
    cr_assert(h_wait_assigned(port, 60));
    h_workload_run(&h, w, 1000);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 90));
    h_agg_stop(agg, SIGKILL);
    int64_t n = produced(&h);

    agg = h_agg_start(&h, nock);
    cr_assert(h_wait_assigned(port, 60));
    long long replayed = h_wait_metric(port, "vc_aggregator_replayed_events_total", n, 60);
    cr_expect_eq(replayed, n, "the whole log replayed into memory: %lld of %lld", replayed, (long long)n);
    h_workload_run(&h, w, 800);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 90));
    h_workload_expect(&h, w);
    size_t nkeys;
    char *dump = h_dump_keys(&h, &nkeys);
    cr_assert_gt(nkeys, 0);
    expect_only_contract_keys(dump);
    free(dump);
    cr_expect_eq(h_agg_stop(agg, SIGTERM), 0);
    free(w);
    h_teardown(&h);
}

Test(recovery, a_checkpoint_newer_than_redis_restores_the_contract_keys, .timeout = 600)
{
    h_ctx h;
    h_setup(&h, "cknew");
    h_workload *w = h_workload_new(5, 2000, NSTREAMS);
    char port_env[64];
    int port = h_http_port(0);
    snprintf(port_env, sizeof(port_env), "VC_AGGREGATOR_HTTP_PORT=%d", port);
    const char *ck[] = {port_env, "VC_CHECKPOINT_INTERVAL_S=1", NULL};
    pid_t agg = h_agg_start(&h, ck);
    cr_assert(h_wait_assigned(port, 60));
    h_workload_run(&h, w, 1500);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 90));
    cr_expect_eq(h_agg_stop(agg, SIGTERM), 0); /* checkpoints at the end */
    size_t nbefore, nafter;
    char *before = h_dump_keys(&h, &nbefore);

    /* Redis loses the last writes: older offsets, a wrong count and rank */
    for (int p = 0; p < H_PARTITIONS; p++) {
        char meta[VC_KEY_MAX];
        if (h.last_offset[p] < 10)
            continue;
        vc_key_meta(meta, sizeof(meta), p);
        freeReplyObject(h_cmd(&h, meta, "HSET %s offset %lld", meta, (long long)(h.last_offset[p] - 10)));
    }
    char sk[VC_KEY_MAX], rk[VC_KEY_MAX];
    int32_t p0 = vc_stream_partition(2000, H_PARTITIONS);
    vc_key_stream(sk, sizeof(sk), p0, 2000);
    vc_key_rank(rk, sizeof(rk), p0);
    freeReplyObject(h_cmd(&h, sk, "HSET %s viewers 999", sk));
    freeReplyObject(h_cmd(&h, rk, "ZADD %s 999 2000", rk));
    char *damaged = h_dump_keys(&h, &nafter);
    cr_assert(strcmp(before, damaged) != 0);
    free(damaged);

    const char *nock[] = {port_env, "VC_CHECKPOINT_INTERVAL_S=0", NULL};
    agg = h_agg_start(&h, nock);
    cr_assert(h_wait_assigned(port, 60));
    char *after = NULL;
    for (int i = 0; i < 60; i++) {
        free(after);
        after = h_dump_keys(&h, &nafter);
        if (strcmp(before, after) == 0)
            break;
        h_sleep_ms(500);
    }
    cr_expect_eq(nafter, nbefore);
    cr_expect(strcmp(before, after) == 0, "the contract keys were not restored from the checkpoint");
    expect_only_contract_keys(after);
    /* and counting goes on from there */
    h_workload_run(&h, w, 500);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 90));
    h_workload_expect(&h, w);
    cr_expect_eq(h_agg_stop(agg, SIGTERM), 0);
    free(after);
    free(before);
    free(w);
    h_teardown(&h);
}

Test(recovery, checkpoints_of_another_events_topic_are_ignored, .timeout = 600)
{
    h_ctx h;
    char topic[sizeof(h.topic)], other[sizeof(h.topic)], cmd[512], group[200], ev_env[256], group_env[256];
    h_setup(&h, "shared");
    snprintf(topic, sizeof(topic), "%s", h.topic);
    snprintf(other, sizeof(other), "%.80s.o", h.topic);
    snprintf(cmd, sizeof(cmd), "broker topic %s %d", other, H_PARTITIONS);
    cr_assert_eq(h_stack(&h, cmd), 0, "cannot create %s", other);

    /* another events topic whose aggregator checkpoints into the same checkpoint topic
     * (a misconfiguration): same streams, few events, so its offsets lie inside ours */
    h_workload *wo = h_workload_new(3, 2000, NSTREAMS);
    snprintf(h.topic, sizeof(h.topic), "%s", other);
    h_workload_run(&h, wo, 60);
    h_sync(&h);
    snprintf(ev_env, sizeof(ev_env), "VC_EVENTS_TOPIC=%s", other);
    snprintf(group, sizeof(group), "%s.o", h.group);
    snprintf(group_env, sizeof(group_env), "VC_AGGREGATOR_GROUP=%s", group);
    const char *oenv[] = {ev_env, group_env, "VC_CHECKPOINT_INTERVAL_S=1", NULL};
    pid_t agg = h_agg_start(&h, oenv);
    cr_assert(h_wait_applied(&h, 90));
    cr_expect_eq(h_agg_stop(agg, SIGTERM), 0); /* its checkpoints are on the shared topic now */

    /* our topic, from an empty Redis: the foreign checkpoints must not be restored */
    snprintf(h.topic, sizeof(h.topic), "%s", topic);
    for (int p = 0; p < H_PARTITIONS; p++)
        h.last_offset[p] = -1;
    h_flush_redis(&h);
    h_workload *w = h_workload_new(4, 2000, NSTREAMS);
    h_workload_run(&h, w, 600);
    h_sync(&h);
    agg = h_agg_start(&h, NULL);
    cr_assert(h_wait_applied(&h, 90));
    h_workload_expect(&h, w);
    cr_expect_eq(h_agg_stop(agg, SIGTERM), 0);
    free(w);
    free(wo);
    h_teardown(&h);
}
