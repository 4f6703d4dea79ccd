/* Rollup values against hand-computed timelines. Times in seconds from a base. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollup.h"

#define S 1000LL
#define BASE 1795996800000LL /* 2026-11-30 00:00:00 UTC, a day boundary */

static sk_rollup_conf conf_of(int64_t rollup_s, int64_t timeout_s)
{
    sk_rollup_conf c = {.rollup_ms = rollup_s * S, .liveness_timeout_ms = timeout_s * S,
                        .sync_max_viewers = 10000, .sync_max_age_ms = 60 * S};
    return c;
}

static int64_t seq;

static void ev_apply(sk_rollup *r, vc_event_type type, const char *gw, int64_t stream, int64_t user,
                     int64_t conn, int64_t ts_ms, vc_leave_reason reason)
{
    vc_event ev;
    vc_event_init(&ev);
    ev.type = type;
    ev.stream_id = stream;
    ev.user_id = user;
    ev.conn_id = conn;
    snprintf(ev.gateway_id, sizeof ev.gateway_id, "%s", gw);
    ev.gateway_epoch = 1000;
    ev.seq = ++seq;
    ev.ts_ms = ts_ms;
    ev.reason = type == VC_EV_LEAVE ? reason : VC_LEAVE_NONE;
    cr_assert_eq(sk_rollup_apply(r, &ev), 0);
}

static void hb(sk_rollup *r, const char *gw, int64_t ts_ms) { ev_apply(r, VC_EV_HEARTBEAT, gw, 0, 0, 0, ts_ms, VC_LEAVE_NONE); }
static void join(sk_rollup *r, int64_t stream, int64_t user, int64_t conn, int64_t ts_ms)
{
    ev_apply(r, VC_EV_JOIN, "gw-a", stream, user, conn, ts_ms, VC_LEAVE_NONE);
}
static void leave(sk_rollup *r, int64_t stream, int64_t user, int64_t conn, int64_t ts_ms)
{
    ev_apply(r, VC_EV_LEAVE, "gw-a", stream, user, conn, ts_ms, VC_LEAVE_CLIENT_CLOSED);
}

static const sk_history_row *hist_at(const sk_rows *rows, int64_t stream, int64_t bucket_ms)
{
    for (size_t i = 0; i < rows->nhist; i++)
        if (rows->hist[i].stream_id == stream && rows->hist[i].bucket_ms == bucket_ms)
            return &rows->hist[i];
    return NULL;
}

static void expect_hist(const sk_rows *rows, int64_t stream, int64_t bucket_s, uint32_t peak, uint32_t min,
                        int64_t watch_ms, uint32_t joins, uint32_t leaves, uint32_t distinct)
{
    const sk_history_row *h = hist_at(rows, stream, BASE + bucket_s * S);
    cr_assert_not_null(h, "no row for bucket at +%llds", (long long)bucket_s);
    cr_expect_eq(h->peak, peak, "bucket +%llds peak %u", (long long)bucket_s, h->peak);
    cr_expect_eq(h->min, min, "bucket +%llds min %u", (long long)bucket_s, h->min);
    cr_expect_eq(h->watch_ms, watch_ms, "bucket +%llds watch %lld", (long long)bucket_s, (long long)h->watch_ms);
    cr_expect_eq(h->joins, joins, "bucket +%llds joins %u", (long long)bucket_s, h->joins);
    cr_expect_eq(h->leaves, leaves, "bucket +%llds leaves %u", (long long)bucket_s, h->leaves);
    cr_expect_eq(h->distinct, distinct, "bucket +%llds distinct %u", (long long)bucket_s, h->distinct);
}

static const sk_session_row *sess_of(const sk_rows *rows, int64_t conn)
{
    for (size_t i = 0; i < rows->nsess; i++)
        if (rows->sess[i].conn_id == conn)
            return &rows->sess[i];
    return NULL;
}

/* The timeline of the two-tab user (100) and one anonymous viewer on stream 7, 10 s buckets:
 *  0-2 nobody, 2 join u100/c1, 4 join u100/c2 (2nd tab), 5 join anon/c3, 8 leave c1,
 *  12 leave c2 (u100 gone), 15 join u100/c4 (back, same bucket: counted once), 18 leave c3,
 *  20-40 no events (two empty buckets with one viewer), 47 leave c4, 50-60 nobody. */
static void timeline(sk_rollup *r)
{
    hb(r, "gw-a", BASE);
    join(r, 7, 100, 1, BASE + 2 * S);
    join(r, 7, 100, 2, BASE + 4 * S);
    join(r, 7, 0, 3, BASE + 5 * S);
    leave(r, 7, 100, 1, BASE + 8 * S);
    leave(r, 7, 100, 2, BASE + 12 * S);
    join(r, 7, 100, 4, BASE + 15 * S);
    leave(r, 7, 0, 3, BASE + 18 * S);
    hb(r, "gw-a", BASE + 25 * S);
    hb(r, "gw-a", BASE + 35 * S);
    hb(r, "gw-a", BASE + 45 * S);
    leave(r, 7, 100, 4, BASE + 47 * S);
    hb(r, "gw-a", BASE + 55 * S);
    hb(r, "gw-a", BASE + 65 * S);
}

Test(rollup, hand_computed_timeline_with_empty_buckets)
{
    sk_rollup_conf c = conf_of(10, 90);
    sk_rollup *r = sk_rollup_new(&c);
    timeline(r);
    const sk_rows *rows = sk_rollup_rows(r);
    cr_assert_eq(rows->nhist, 5, "buckets 0..40 have rows, 50 and 60 do not: %zu", rows->nhist);
    /* [0,10): 1 viewer 2-5, 2 viewers 5-10 -> 3 + 10 = 13 viewer-seconds */
    expect_hist(rows, 7, 0, 2, 0, 13 * S, 3, 1, 2);
    /* [10,20): 2 (10-12), 1 (12-15), 2 (15-18), 1 (18-20) -> 4 + 3 + 6 + 2 = 15 */
    expect_hist(rows, 7, 10, 2, 1, 15 * S, 1, 2, 2);
    /* no events: one viewer all along */
    expect_hist(rows, 7, 20, 1, 1, 10 * S, 0, 0, 1);
    expect_hist(rows, 7, 30, 1, 1, 10 * S, 0, 0, 1);
    /* [40,50): 1 viewer until 47 */
    expect_hist(rows, 7, 40, 1, 0, 7 * S, 0, 1, 1);
    cr_expect_null(hist_at(rows, 7, BASE + 50 * S));

    cr_assert_eq(rows->nsess, 4);
    const sk_session_row *s = sess_of(rows, 2);
    cr_assert_not_null(s);
    cr_expect_eq(s->user_id, 100);
    cr_expect_eq(s->joined_ms, BASE + 4 * S);
    cr_expect_eq(s->left_ms, BASE + 12 * S);
    cr_expect_eq(s->reason, SK_END_CLIENT_CLOSED);
    cr_expect_str_eq(s->gateway_id, "gw-a");
    s = sess_of(rows, 3);
    cr_assert_not_null(s);
    cr_expect_eq(s->user_id, 0);
    cr_expect_eq(s->left_ms - s->joined_ms, 13 * S);

    const sk_current_row *cur = sk_map_get(&rows->current, (sk_key){7, 0});
    cr_assert_not_null(cur);
    cr_expect_eq(cur->viewers, 0);
    cr_expect_eq(cur->peak, 2);
    cr_expect_eq(cur->peak_ms, BASE + 5 * S);
    cr_expect_eq(cur->arrivals, 2, "u100 and the anonymous viewer: %llu", (unsigned long long)cur->arrivals);
    cr_expect_eq(cur->updated_ms, BASE + 50 * S);
    cr_expect_eq(cur->started_ms, BASE + 2 * S);

    const sk_daily_row *d = sk_map_get(&rows->daily, (sk_key){(uint64_t)BASE, 7});
    cr_assert_not_null(d);
    cr_expect_eq(d->peak, 2);
    cr_expect_eq(d->live_s, 50);
    cr_expect_eq(d->watch_ms, 55 * S);
    cr_expect_eq(d->joins, 4);
    cr_expect_eq(d->leaves, 4);
    cr_expect_eq(d->sessions, 4);
    cr_expect_eq(sk_rollup_streams(r), 0, "an empty stream is forgotten");
    sk_rollup_destroy(r);
}

Test(rollup, session_spanning_bucket_and_day_boundary)
{
    sk_rollup_conf c = conf_of(10, 90);
    sk_rollup *r = sk_rollup_new(&c);
    hb(r, "gw-a", BASE - 20 * S);
    join(r, 5, 42, 1, BASE - 12 * S);
    hb(r, "gw-a", BASE - 5 * S);
    hb(r, "gw-a", BASE + 5 * S);
    leave(r, 5, 42, 1, BASE + 13 * S);
    hb(r, "gw-a", BASE + 25 * S);
    const sk_rows *rows = sk_rollup_rows(r);
    cr_assert_eq(rows->nhist, 4);
    expect_hist(rows, 5, -20, 1, 0, 2 * S, 1, 0, 1);
    expect_hist(rows, 5, -10, 1, 1, 10 * S, 0, 0, 1);
    expect_hist(rows, 5, 0, 1, 1, 10 * S, 0, 0, 1);
    expect_hist(rows, 5, 10, 1, 0, 3 * S, 0, 1, 1);
    const sk_daily_row *d0 = sk_map_get(&rows->daily, (sk_key){(uint64_t)(BASE - 86400 * S), 5});
    const sk_daily_row *d1 = sk_map_get(&rows->daily, (sk_key){(uint64_t)BASE, 5});
    cr_assert_not_null(d0);
    cr_assert_not_null(d1);
    cr_expect_eq(d0->watch_ms, 12 * S);
    cr_expect_eq(d0->live_s, 20);
    cr_expect_eq(d0->joins, 1);
    cr_expect_eq(d0->sessions, 0);
    cr_expect_eq(d1->watch_ms, 13 * S);
    cr_expect_eq(d1->live_s, 20);
    cr_expect_eq(d1->leaves, 1);
    cr_expect_eq(d1->sessions, 1, "the session counts on the day it ended");
    cr_assert_eq(rows->nsess, 1);
    cr_expect_eq(rows->sess[0].joined_ms, BASE - 12 * S);
    cr_expect_eq(rows->sess[0].left_ms, BASE + 13 * S);
    sk_rollup_destroy(r);
}

Test(rollup, silent_gateway_loses_its_viewers_in_event_time)
{
    sk_rollup_conf c = conf_of(10, 30);
    sk_rollup *r = sk_rollup_new(&c);
    hb(r, "gw-a", BASE);
    ev_apply(r, VC_EV_JOIN, "gw-b", 9, 1, 11, BASE + 1 * S, VC_LEAVE_NONE);
    ev_apply(r, VC_EV_JOIN, "gw-b", 9, 2, 12, BASE + 1 * S, VC_LEAVE_NONE);
    join(r, 9, 3, 13, BASE + 2 * S);
    hb(r, "gw-a", BASE + 31 * S); /* 30 s behind: not yet expired */
    cr_expect_eq(sk_rollup_conns(r), 3);
    hb(r, "gw-a", BASE + 32 * S);
    cr_expect_eq(sk_rollup_conns(r), 1);
    const sk_rows *rows = sk_rollup_rows(r);
    cr_assert_eq(rows->nsess, 2);
    cr_expect_eq(rows->sess[0].reason, SK_END_GATEWAY_DEAD);
    cr_expect_eq(rows->sess[0].left_ms, BASE + 32 * S);
    cr_expect_str_eq(rows->sess[0].gateway_id, "gw-b");
    hb(r, "gw-a", BASE + 45 * S);
    /* [30,40): 3 viewers until 32, then 1 */
    expect_hist(rows, 9, 30, 3, 1, (3 * 2 + 1 * 8) * S, 0, 2, 3);
    sk_rollup_destroy(r);
}

Test(rollup, sync_snapshot_repairs_ghosts_and_missing)
{
    sk_rollup_conf c = conf_of(10, 90);
    sk_rollup *r = sk_rollup_new(&c);
    hb(r, "gw-a", BASE);
    join(r, 3, 1, 1, BASE + 1 * S);
    join(r, 3, 2, 2, BASE + 1 * S);
    vc_sync_viewer v[2] = {{.conn_id = 2, .user_id = 2, .joined_ms = BASE + 1 * S},
                           {.conn_id = 5, .user_id = 0, .joined_ms = BASE + 3 * S}};
    vc_event ev;
    vc_event_init(&ev);
    ev.type = VC_EV_SYNC;
    ev.stream_id = 3;
    snprintf(ev.gateway_id, sizeof ev.gateway_id, "gw-a");
    ev.gateway_epoch = 1000;
    ev.seq = ++seq;
    ev.ts_ms = BASE + 4 * S;
    ev.snapshot_id = 1;
    ev.chunk = 0;
    ev.chunks = 1;
    ev.nviewers = 2;
    ev.viewers = v;
    cr_assert_eq(sk_rollup_apply(r, &ev), 0);
    cr_expect_eq(sk_rollup_conns(r), 2, "conn 1 is a ghost, conn 5 was missing");
    const sk_rows *rows = sk_rollup_rows(r);
    cr_assert_eq(rows->nsess, 1);
    cr_expect_eq(rows->sess[0].conn_id, 1);
    cr_expect_eq(rows->sess[0].reason, SK_END_REPAIR);
    sk_rollup_destroy(r);
}

/* Stopping anywhere, saving, loading and going on gives the rows of an uninterrupted run. */
Test(rollup, checkpoint_round_trip_continues_identically)
{
    sk_rollup_conf c = conf_of(10, 90);
    sk_rollup *whole = sk_rollup_new(&c);
    timeline(whole);
    const sk_rows *want = sk_rollup_rows(whole);

    for (int cut = 1; cut < 14; cut++) {
        sk_rollup *r = sk_rollup_new(&c);
        /* replay the timeline, saving + reloading after `cut` events */
        sk_rollup *part = sk_rollup_new(&c);
        int n = 0;
        struct { vc_event_type t; int64_t stream, user, conn, ts; } evs[] = {
            {VC_EV_HEARTBEAT, 0, 0, 0, 0}, {VC_EV_JOIN, 7, 100, 1, 2}, {VC_EV_JOIN, 7, 100, 2, 4},
            {VC_EV_JOIN, 7, 0, 3, 5}, {VC_EV_LEAVE, 7, 100, 1, 8}, {VC_EV_LEAVE, 7, 100, 2, 12},
            {VC_EV_JOIN, 7, 100, 4, 15}, {VC_EV_LEAVE, 7, 0, 3, 18}, {VC_EV_HEARTBEAT, 0, 0, 0, 25},
            {VC_EV_HEARTBEAT, 0, 0, 0, 35}, {VC_EV_HEARTBEAT, 0, 0, 0, 45}, {VC_EV_LEAVE, 7, 100, 4, 47},
            {VC_EV_HEARTBEAT, 0, 0, 0, 55}, {VC_EV_HEARTBEAT, 0, 0, 0, 65}};
        sk_rows got = {0};
        size_t nh = 0, ns = 0;
        sk_history_row hist[16];
        sk_session_row sess[16];
        for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
            ev_apply(part, evs[i].t, "gw-a", evs[i].stream, evs[i].user, evs[i].conn,
                     BASE + evs[i].ts * S, VC_LEAVE_CLIENT_CLOSED);
            if (++n == cut) {
                const sk_rows *pr = sk_rollup_rows(part);
                for (size_t k = 0; k < pr->nhist; k++)
                    hist[nh++] = pr->hist[k];
                for (size_t k = 0; k < pr->nsess; k++)
                    sess[ns++] = pr->sess[k];
                size_t len;
                uint8_t *blob = sk_rollup_save(part, &len);
                cr_assert_not_null(blob);
                char err[128];
                sk_rollup_destroy(part);
                part = sk_rollup_load(&c, blob, len, err, sizeof err);
                cr_assert_not_null(part, "%s", err);
                free(blob);
            }
        }
        const sk_rows *pr = sk_rollup_rows(part);
        for (size_t k = 0; k < pr->nhist; k++)
            hist[nh++] = pr->hist[k];
        for (size_t k = 0; k < pr->nsess; k++)
            sess[ns++] = pr->sess[k];
        cr_assert_eq(nh, want->nhist, "cut %d", cut);
        cr_assert_eq(ns, want->nsess, "cut %d", cut);
        for (size_t k = 0; k < nh; k++)
            cr_expect_eq(memcmp(&hist[k], &want->hist[k], sizeof hist[k]), 0, "cut %d hist %zu", cut, k);
        for (size_t k = 0; k < ns; k++)
            cr_expect_eq(memcmp(&sess[k], &want->sess[k], sizeof sess[k]), 0, "cut %d sess %zu", cut, k);
        (void)got;
        sk_rollup_destroy(part);
        sk_rollup_destroy(r);
    }
    sk_rollup_destroy(whole);
}

Test(rollup, corrupt_checkpoint_is_refused)
{
    sk_rollup_conf c = conf_of(10, 90);
    sk_rollup *r = sk_rollup_new(&c);
    timeline(r);
    join(r, 8, 1, 99, BASE + 70 * S);
    size_t len;
    uint8_t *blob = sk_rollup_save(r, &len);
    char err[128];
    cr_expect_null(sk_rollup_load(&c, blob, len - 3, err, sizeof err));
    sk_rollup_conf other = conf_of(300, 90);
    cr_expect_null(sk_rollup_load(&other, blob, len, err, sizeof err));
    free(blob);
    sk_rollup_destroy(r);
}

/* A stream that empties is forgotten; when it comes back before the rows are
 * flushed, its current row still carries the first start and the higher peak
 * (what the database would hold had each bucket been flushed on its own). */
Test(rollup, current_row_merges_a_forgotten_stream)
{
    sk_rollup_conf c = conf_of(10, 90);
    sk_rollup *r = sk_rollup_new(&c);
    hb(r, "gw-a", BASE);
    join(r, 4, 1, 1, BASE + 1 * S);
    join(r, 4, 2, 2, BASE + 2 * S);
    leave(r, 4, 1, 1, BASE + 3 * S);
    leave(r, 4, 2, 2, BASE + 4 * S);
    hb(r, "gw-a", BASE + 15 * S); /* closes [0,10); the empty stream is forgotten */
    hb(r, "gw-a", BASE + 25 * S);
    cr_expect_eq(sk_rollup_streams(r), 0);
    join(r, 4, 3, 3, BASE + 31 * S);
    hb(r, "gw-a", BASE + 45 * S);
    const sk_rows *rows = sk_rollup_rows(r);
    const sk_current_row *cur = sk_map_get(&rows->current, (sk_key){4, 0});
    cr_assert_not_null(cur);
    cr_expect_eq(cur->peak, 2);
    cr_expect_eq(cur->peak_ms, BASE + 2 * S);
    cr_expect_eq(cur->started_ms, BASE + 1 * S);
    cr_expect_eq(cur->viewers, 1);
    cr_expect_eq(cur->arrivals, 3);
    cr_expect_eq(cur->updated_ms, BASE + 40 * S);
    sk_rollup_destroy(r);
}

/* The partition hears nothing for an hour (every gateway down): the viewers
 * count until their gateway's timeout after the last event, not the whole hour. */
Test(rollup, a_long_silence_ends_the_viewers_at_the_timeout)
{
    sk_rollup_conf c = conf_of(10, 30);
    sk_rollup *r = sk_rollup_new(&c);
    hb(r, "gw-a", BASE);
    join(r, 7, 1, 1, BASE + 2 * S);
    hb(r, "gw-a", BASE + 5 * S);
    hb(r, "gw-b", BASE + 3600 * S); /* another gateway, an hour later */
    const sk_rows *rows = sk_rollup_rows(r);
    /* [0,10) .. [30,40): gw-a's last sign of life 5 s + 30 s timeout = 35 s */
    cr_expect_eq(rows->nhist, 4, "rows up to the timeout only: %zu", rows->nhist);
    expect_hist(rows, 7, 30, 1, 0, 5 * S, 0, 1, 1);
    cr_expect_null(hist_at(rows, 7, BASE + 40 * S));
    cr_assert_eq(rows->nsess, 1);
    cr_expect_eq(rows->sess[0].left_ms, BASE + 35 * S);
    cr_expect_eq(rows->sess[0].reason, SK_END_GATEWAY_DEAD);
    cr_expect_eq(sk_rollup_streams(r), 0);
    sk_rollup_destroy(r);
}

/* A broker outage longer than the timeout: gw-a's backlog reaches the
 * partition first, then gw-b's (the gateways skip heartbeats to a partition
 * that does not acknowledge them, so the backlogs hold joins and leaves only:
 * schemas/vc_rules.h). gw-b's viewers stay: no session ends "gateway_dead",
 * and each of them counts through the outage's buckets. */
Test(rollup, an_outage_backlog_does_not_end_the_sessions_of_the_gateway_behind_it)
{
    sk_rollup_conf c = conf_of(60, 90);
    sk_rollup *r = sk_rollup_new(&c);
    for (int64_t t = 0; t <= 60; t += 10) {
        hb(r, "gw-a", BASE + t * S);
        hb(r, "gw-b", BASE + t * S + 1);
    }
    ev_apply(r, VC_EV_JOIN, "gw-b", 5, 1, 100, BASE + 61 * S, VC_LEAVE_NONE);
    ev_apply(r, VC_EV_JOIN, "gw-b", 5, 2, 101, BASE + 62 * S, VC_LEAVE_NONE);
    hb(r, "gw-a", BASE + 70 * S);
    hb(r, "gw-b", BASE + 70 * S + 1);
    /* outage [75 s, 375 s): gw-a's backlog, then gw-b's */
    for (int64_t t = 80; t < 375; t += 20)
        ev_apply(r, VC_EV_JOIN, "gw-a", 6, 0, 1000 + t, BASE + t * S, VC_LEAVE_NONE);
    ev_apply(r, VC_EV_JOIN, "gw-b", 5, 3, 102, BASE + 200 * S, VC_LEAVE_NONE);
    ev_apply(r, VC_EV_LEAVE, "gw-b", 5, 3, 102, BASE + 300 * S, VC_LEAVE_CLIENT_CLOSED);
    for (int64_t t = 380; t <= 600; t += 10) {
        hb(r, "gw-a", BASE + t * S);
        hb(r, "gw-b", BASE + t * S + 1);
    }
    const sk_rows *rows = sk_rollup_rows(r);
    for (size_t i = 0; i < rows->nsess; i++)
        cr_expect_neq(rows->sess[i].reason, SK_END_GATEWAY_DEAD, "session of %s conn %lld ended as gateway_dead",
                      rows->sess[i].gateway_id, (long long)rows->sess[i].conn_id);
    cr_assert_eq(rows->nsess, 1, "only the viewer who left has a finished session");
    cr_expect_eq(rows->sess[0].conn_id, 102);
    /* stream 5 through the outage's buckets (closed by gw-a's backlog, before
     * gw-b's arrived): gw-b's two viewers all along, never 0 */
    for (int64_t b = 120; b <= 300; b += 60) {
        const sk_history_row *h = hist_at(rows, 5, BASE + b * S);
        cr_assert_not_null(h, "no row for stream 5 at +%llds", (long long)b);
        cr_expect_geq(h->min, 2, "stream 5 at +%llds: min %u", (long long)b, h->min);
    }
    expect_hist(rows, 5, 120, 2, 2, 2 * 60 * S, 0, 0, 2);
    cr_expect_eq(sk_rollup_conns(r), 2 + 15, "gw-b's two viewers and gw-a's 15 of the outage are open");
    sk_rollup_destroy(r);
}
