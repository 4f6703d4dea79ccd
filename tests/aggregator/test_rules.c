/* test_rules.c -- the event-time rules of schemas/vc_rules.h. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vc_rules.h"

static vc_event ev_of(vc_event_type type, const char *gw, int64_t epoch, int64_t ts)
{
    vc_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.reason = VC_LEAVE_NONE;
    snprintf(ev.gateway_id, sizeof(ev.gateway_id), "%s", gw);
    ev.gateway_epoch = epoch;
    ev.ts_ms = ts;
    ev.stream_id = type == VC_EV_HEARTBEAT ? 0 : 7;
    return ev;
}

static int observe(vc_liveness *lv, const char *gw, int64_t epoch, int64_t ts,
                   vc_liveness_verdict *v, vc_gateway_gone *gone)
{
    vc_event ev = ev_of(VC_EV_HEARTBEAT, gw, epoch, ts);
    return vc_liveness_observe(lv, &ev, v, gone);
}

static vc_gateway_gone gone[VC_LIVENESS_MAX];

Test(liveness, silent_gateway_expires_after_timeout_and_not_before)
{
    vc_liveness *lv = vc_liveness_new(90000);
    vc_liveness_verdict v;

    cr_assert_eq(observe(lv, "a", 1, 1000, &v, gone), 0);
    cr_assert_eq(v.stale, 0);
    uint32_t a_id = v.id;
    cr_assert_eq(observe(lv, "b", 1, 1000, &v, gone), 0);
    /* b keeps heartbeating; a is silent. Exactly timeout behind: not yet. */
    for (int64_t t = 11000; t <= 91000; t += 10000)
        cr_assert_eq(observe(lv, "b", 1, t, &v, gone), 0, "expired too early at %lld", (long long)t);
    cr_assert_eq(vc_liveness_alive(lv), 2);
    /* One ms more: a is lost, in one step. */
    cr_assert_eq(observe(lv, "b", 1, 91001, &v, gone), 1);
    cr_assert_str_eq(gone[0].gateway_id, "a");
    cr_assert_eq(gone[0].epoch, 1);
    cr_assert_eq(gone[0].id, a_id);
    cr_assert_eq(gone[0].reason, VC_GONE_LOST);
    cr_assert_str_eq(vc_gone_reason_name(gone[0].reason), "gateway lost");
    cr_assert_eq(vc_liveness_alive(lv), 1);
    /* Reported once only. */
    cr_assert_eq(observe(lv, "b", 1, 101001, &v, gone), 0);
    cr_assert_eq(observe(lv, "b", 1, 111001, &v, gone), 0);
    /* b alone, silent for 100 s: no heartbeat of anyone reached the
     * partition, so the gap proves nothing and b's own next heartbeat does
     * not time b out (it used to: expired, then revived by that heartbeat,
     * its viewers removed although it was back). See tests/schemas/test_liveness.c. */
    cr_assert_eq(observe(lv, "b", 1, 211001, &v, gone), 0);
    cr_assert_eq(v.stale, 0);
    cr_assert_eq(vc_liveness_alive(lv), 1);
    vc_liveness_destroy(lv);
}

Test(liveness, event_time_only_late_events_do_not_move_the_clock)
{
    vc_liveness *lv = vc_liveness_new(1000);
    vc_liveness_verdict v;
    observe(lv, "a", 1, 5000, &v, gone);
    observe(lv, "b", 1, 5000, &v, gone);
    /* An old timestamp is a sign of life but leaves the clock alone. */
    cr_assert_eq(observe(lv, "a", 1, 100, &v, gone), 0);
    cr_assert_eq(vc_liveness_clock(lv), 5000);
    cr_assert_eq(observe(lv, "b", 1, 6000, &v, gone), 0);
    cr_assert_eq(observe(lv, "b", 1, 6001, &v, gone), 1);
    cr_assert_str_eq(gone[0].gateway_id, "a");
    vc_liveness_destroy(lv);
}

Test(liveness, newer_epoch_ends_the_old_one_at_once_and_old_events_are_stale)
{
    vc_liveness *lv = vc_liveness_new(90000);
    vc_liveness_verdict v;
    observe(lv, "a", 100, 1000, &v, gone);
    uint32_t old_id = v.id;
    cr_assert_eq(observe(lv, "a", 200, 1001, &v, gone), 1);
    cr_assert_eq(gone[0].reason, VC_GONE_RESTARTED);
    cr_assert_eq(gone[0].epoch, 100);
    cr_assert_eq(gone[0].id, old_id);
    cr_assert_neq(v.id, old_id);
    cr_assert_eq(v.stale, 0);
    cr_assert_eq(observe(lv, "a", 100, 1002, &v, gone), 0);
    cr_assert_eq(v.stale, 1);
    cr_assert_eq(vc_liveness_alive(lv), 1);
    vc_liveness_destroy(lv);
}

Test(liveness, save_and_load_decide_the_same)
{
    vc_liveness *lv = vc_liveness_new(500), *copy;
    vc_liveness_verdict v, v2;
    vc_gateway_gone gone2[8];
    char err[128];
    for (int i = 0; i < 5; i++) {
        char gw[16];
        snprintf(gw, sizeof(gw), "gw-%d", i);
        observe(lv, gw, 1, 100 * i, &v, gone);
    }
    size_t need = vc_liveness_save(lv, NULL, 0);
    uint8_t *buf = malloc(need);
    cr_assert_eq(vc_liveness_save(lv, buf, need), need);
    copy = vc_liveness_load(buf, need, 500, err, sizeof(err));
    cr_assert_not_null(copy, "%s", err);
    cr_assert_eq(vc_liveness_clock(copy), vc_liveness_clock(lv));
    int n1 = observe(lv, "gw-4", 1, 750, &v, gone);
    int n2 = observe(copy, "gw-4", 1, 750, &v2, gone2);
    cr_assert_eq(n1, 3); /* gw-0, gw-1, gw-2 (0, 100, 200) are more than 500 behind 750 */
    cr_assert_eq(n2, n1);
    for (int i = 0; i < n1; i++) {
        cr_assert_str_eq(gone[i].gateway_id, gone2[i].gateway_id);
        cr_assert_eq(gone[i].id, gone2[i].id);
    }
    cr_assert_eq(v.id, v2.id);
    /* A new gateway gets the same id in both. */
    observe(lv, "new", 1, 751, &v, gone);
    observe(copy, "new", 1, 751, &v2, gone2);
    cr_assert_eq(v.id, v2.id);
    /* Corrupt input is refused. */
    buf[0] ^= 0xff;
    cr_assert_null(vc_liveness_load(buf, need, 500, err, sizeof(err)));
    buf[0] ^= 0xff;
    cr_assert_null(vc_liveness_load(buf, need - 1, 500, err, sizeof(err)));
    free(buf);
    vc_liveness_destroy(lv);
    vc_liveness_destroy(copy);
}

Test(liveness, table_is_bounded)
{
    vc_liveness *lv = vc_liveness_new(1000000);
    vc_liveness_verdict v;
    char gw[32];
    for (int i = 0; i < VC_LIVENESS_MAX; i++) {
        snprintf(gw, sizeof(gw), "g%d", i);
        observe(lv, gw, 1, 10, &v, gone);
        cr_assert_eq(v.stale, 0);
    }
    cr_assert_eq(observe(lv, "one-too-many", 1, 10, &v, gone), 0);
    cr_assert_eq(v.stale, 1);
    cr_assert_eq(vc_liveness_alive(lv), VC_LIVENESS_MAX);
    vc_liveness_destroy(lv);
}

static vc_event chunk_of(const char *gw, int64_t stream, int64_t snap, int chunk, int chunks,
                         int64_t first_conn, size_t n, int64_t ts)
{
    vc_event ev = ev_of(VC_EV_SYNC, gw, 1, ts);
    ev.stream_id = stream;
    ev.snapshot_id = snap;
    ev.chunk = chunk;
    ev.chunks = chunks;
    ev.nviewers = n;
    ev.viewers = calloc(n ? n : 1, sizeof(*ev.viewers));
    for (size_t i = 0; i < n; i++) {
        ev.viewers[i].conn_id = first_conn + (int64_t)i;
        ev.viewers[i].user_id = (int64_t)i % 3;
    }
    return ev;
}

static int feed(vc_sync_asm *sa, vc_event ev, vc_sync_snapshot *out)
{
    int rc = vc_sync_asm_add(sa, &ev, out);
    free(ev.viewers);
    return rc;
}

Test(sync_asm, chunks_in_order_yield_the_whole_set)
{
    vc_sync_asm *sa = vc_sync_asm_new(100000, 60000);
    vc_sync_snapshot snap;
    cr_assert_eq(feed(sa, chunk_of("a", 7, 1, 0, 3, 0, 10, 100), &snap), 0);
    cr_assert_eq(feed(sa, chunk_of("a", 7, 1, 1, 3, 10, 10, 101), &snap), 0);
    cr_assert_eq(vc_sync_asm_pending(sa), 1);
    cr_assert_eq(feed(sa, chunk_of("a", 7, 1, 2, 3, 20, 5, 102), &snap), 1);
    cr_assert_eq(snap.nviewers, 25);
    for (size_t i = 0; i < 25; i++)
        cr_assert_eq(snap.viewers[i].conn_id, (int64_t)i);
    cr_assert_eq(snap.stream_id, 7);
    cr_assert_eq(snap.snapshot_id, 1);
    cr_assert_str_eq(snap.gateway_id, "a");
    cr_assert_eq(vc_sync_asm_pending(sa), 0);
    vc_sync_snapshot_free(&snap);
    /* A single-chunk snapshot, even empty, completes at once. */
    cr_assert_eq(feed(sa, chunk_of("a", 8, 2, 0, 1, 0, 0, 103), &snap), 1);
    cr_assert_eq(snap.nviewers, 0);
    vc_sync_snapshot_free(&snap);
    vc_sync_asm_destroy(sa);
}

Test(sync_asm, gaps_and_superseded_snapshots_are_dropped)
{
    vc_sync_asm *sa = vc_sync_asm_new(100000, 60000);
    vc_sync_snapshot snap;
    feed(sa, chunk_of("a", 7, 1, 0, 3, 0, 10, 100), &snap);
    cr_assert_eq(feed(sa, chunk_of("a", 7, 1, 2, 3, 20, 10, 101), &snap), 0); /* gap */
    cr_assert_eq(vc_sync_asm_pending(sa), 0);
    feed(sa, chunk_of("a", 7, 1, 0, 2, 0, 10, 100), &snap);
    feed(sa, chunk_of("a", 7, 2, 0, 2, 100, 3, 100), &snap); /* newer snapshot restarts */
    cr_assert_eq(vc_sync_asm_pending(sa), 1);
    cr_assert_eq(feed(sa, chunk_of("a", 7, 1, 1, 2, 10, 10, 101), &snap), 0); /* old one's chunk */
    cr_assert_eq(feed(sa, chunk_of("a", 7, 2, 1, 2, 103, 2, 101), &snap), 1);
    cr_assert_eq(snap.nviewers, 5);
    cr_assert_eq(snap.viewers[0].conn_id, 100);
    vc_sync_snapshot_free(&snap);
    /* Different streams and gateways assemble side by side. */
    feed(sa, chunk_of("a", 1, 5, 0, 2, 0, 1, 200), &snap);
    feed(sa, chunk_of("b", 1, 5, 0, 2, 50, 1, 200), &snap);
    cr_assert_eq(vc_sync_asm_pending(sa), 2);
    vc_sync_asm_forget_gateway(sa, "b", 1);
    cr_assert_eq(vc_sync_asm_pending(sa), 1);
    cr_assert_eq(feed(sa, chunk_of("a", 1, 5, 1, 2, 1, 1, 201), &snap), 1);
    cr_assert_eq(snap.nviewers, 2);
    vc_sync_snapshot_free(&snap);
    cr_assert_gt(vc_sync_asm_dropped(sa), 0);
    vc_sync_asm_destroy(sa);
}

Test(sync_asm, memory_and_age_are_bounded)
{
    vc_sync_asm *sa = vc_sync_asm_new(15, 1000);
    vc_sync_snapshot snap;
    feed(sa, chunk_of("a", 7, 1, 0, 3, 0, 10, 100), &snap);
    cr_assert_eq(feed(sa, chunk_of("a", 7, 1, 1, 3, 10, 10, 101), &snap), 0);
    cr_assert_eq(vc_sync_asm_pending(sa), 0, "over the viewer bound must drop");
    feed(sa, chunk_of("a", 7, 2, 0, 2, 0, 5, 200), &snap);
    /* Another stream's chunk far later in event time ages the first out. */
    feed(sa, chunk_of("a", 9, 3, 0, 2, 0, 5, 1201), &snap);
    cr_assert_eq(vc_sync_asm_pending(sa), 1);
    cr_assert_eq(feed(sa, chunk_of("a", 7, 2, 1, 2, 5, 5, 1202), &snap), 0);
    vc_sync_asm_destroy(sa);
}

Test(sync_asm, save_and_load_continue_the_assembly)
{
    vc_sync_asm *sa = vc_sync_asm_new(1000, 60000), *copy;
    vc_sync_snapshot snap;
    char err[128];
    cr_assert_eq(vc_sync_asm_save(sa, NULL, 0), 16);
    feed(sa, chunk_of("gw", 7, 1, 0, 2, 0, 4, 100), &snap);
    size_t need = vc_sync_asm_save(sa, NULL, 0);
    uint8_t *buf = malloc(need);
    vc_sync_asm_save(sa, buf, need);
    copy = vc_sync_asm_load(buf, need, 1000, 60000, err, sizeof(err));
    cr_assert_not_null(copy, "%s", err);
    cr_assert_eq(feed(copy, chunk_of("gw", 7, 1, 1, 2, 4, 4, 101), &snap), 1);
    cr_assert_eq(snap.nviewers, 8);
    cr_assert_eq(snap.viewers[3].conn_id, 3);
    cr_assert_eq(snap.viewers[3].user_id, 0);
    cr_assert_eq(snap.viewers[7].conn_id, 7);
    vc_sync_snapshot_free(&snap);
    cr_assert_null(vc_sync_asm_load(buf, need - 3, 1000, 60000, err, sizeof(err)));
    free(buf);
    vc_sync_asm_destroy(sa);
    vc_sync_asm_destroy(copy);
}

Test(drift, tiers_and_denominators)
{
    cr_assert_eq(vc_drift_tier(0, 0, 0), VC_DRIFT_QUIET);
    cr_assert_eq(vc_drift_tier(100, 0, 0), VC_DRIFT_QUIET);
    cr_assert_eq(vc_drift_tier(100, 9, 0), VC_DRIFT_QUIET);      /* 9 / 109 */
    cr_assert_eq(vc_drift_tier(100, 0, 9), VC_DRIFT_QUIET);      /* 9 / 100 */
    cr_assert_eq(vc_drift_tier(100, 0, 10), VC_DRIFT_SYNCING);   /* 10 / 100 */
    cr_assert_eq(vc_drift_tier(100, 0, 30), VC_DRIFT_SYNCING);   /* 30 / 100 */
    cr_assert_eq(vc_drift_tier(100, 0, 31), VC_DRIFT_REBUILD);
    cr_assert_eq(vc_drift_tier(100, 12, 0), VC_DRIFT_SYNCING);   /* 12 / 112 */
    cr_assert_eq(vc_drift_tier(100, 50, 0), VC_DRIFT_REBUILD);   /* 50 / 150 */
    cr_assert_eq(vc_drift_tier(0, 5, 0), VC_DRIFT_REBUILD);      /* nothing held, 5 found */
    cr_assert_eq(vc_drift_tier(10, 1, 1), VC_DRIFT_SYNCING);     /* 2 / 10 */
    cr_assert_str_eq(vc_drift_level_name(VC_DRIFT_SYNCING), "syncing");
}
