/* test_apply.c -- a partition's in-memory state and the sealing of its Redis
 * write (aggregator/apply.h): counting rules, gateway death, sync repair and
 * the "syncing" hold, tombstones, checkpoints (save/load), memory-only
 * replay and restore, the script's replies. Pure: no server. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"

static const agg_rules_conf conf = {90000, 100000, 60000, 5000, 600000};

static vc_event ev_of(vc_event_type type, int64_t stream, int64_t user, int64_t conn, const char *gw,
                      int64_t ts)
{
    vc_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.stream_id = stream;
    ev.user_id = user;
    ev.conn_id = conn;
    ev.reason = type == VC_EV_LEAVE ? VC_LEAVE_CLIENT_CLOSED : VC_LEAVE_NONE;
    snprintf(ev.gateway_id, sizeof(ev.gateway_id), "%s", gw);
    ev.gateway_epoch = 1;
    ev.ts_ms = ts;
    return ev;
}

static int arg_is(const char **argv, const size_t *len, int i, const char *want)
{
    return len[i] == strlen(want) && memcmp(argv[i], want, len[i]) == 0;
}

static long long arg_ll(const char **argv, const size_t *len, int i)
{
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "%.*s", (int)len[i], argv[i]);
    return strtoll(tmp, NULL, 10);
}

/* The write sealed for stream id: 1 and its fields, 0 when not in the call. */
typedef struct {
    long long viewers, peak, offset, cat;
    char status[16];
} written;

static int sealed_stream(agg_part *p, int64_t id, written *w, int *nstreams)
{
    int argc;
    const char **argv;
    const size_t *len;
    cr_assert_eq(agg_part_seal(p, "sha", &argc, &argv, &len), 0);
    int n = (int)arg_ll(argv, len, 7);
    cr_assert_eq(argc, 8 + 6 * n, "argc %d for %d streams", argc, n);
    if (nstreams)
        *nstreams = n;
    for (int i = 0; i < n; i++) {
        int b = 8 + 6 * i;
        if (arg_ll(argv, len, b) != id)
            continue;
        w->viewers = arg_ll(argv, len, b + 1);
        w->peak = arg_ll(argv, len, b + 2);
        snprintf(w->status, sizeof(w->status), "%.*s", (int)len[b + 3], argv[b + 3]);
        w->offset = arg_ll(argv, len, b + 4);
        w->cat = len[b + 5] ? arg_ll(argv, len, b + 5) : 0;
        return 1;
    }
    return 0;
}

/* Commit the sealed call as if the script answered {0}. */
static void commit_ok(agg_part *p)
{
    redisReply item = {0}, *els[1] = {&item}, arr = {0};
    char err[128];
    int64_t stored;
    item.type = REDIS_REPLY_INTEGER;
    arr.type = REDIS_REPLY_ARRAY;
    arr.elements = 1;
    arr.element = els;
    int argc;
    const char **argv;
    const size_t *len;
    cr_assert_eq(agg_part_seal(p, "sha", &argc, &argv, &len), 0);
    cr_assert_eq(agg_part_commit(p, &arr, &stored, err, sizeof(err)), 0, "%s", err);
}

static int64_t viewers_of(agg_part *p, int64_t stream)
{
    agg_stream_view v;
    return agg_part_stream(p, stream, &v) ? v.viewers : -1;
}

Test(apply, seals_the_touched_streams_with_offsets_and_the_expected_offset)
{
    agg_part *p = agg_part_new(3, &conf);
    cr_assert_not_null(p);
    agg_part_set_applied(p, 9);
    vc_event j = ev_of(VC_EV_JOIN, 77, 5, 123456789012345LL, "gw", 1000);
    vc_event l = ev_of(VC_EV_LEAVE, 77, 0, 123456789012345LL, "gw", 1001);
    vc_event j2 = ev_of(VC_EV_JOIN, 78, 0, 9, "gw", 1001);
    /* a fresh state has position -1: an offset at or below the position is a duplicate */
    cr_assert_eq(agg_part_add(p, &j, 10, 4), AGG_ADD_PACKED);
    cr_assert_eq(agg_part_add(p, &j, 10, 4), AGG_ADD_DUPLICATE);
    cr_assert_eq(agg_part_add(p, &l, 11, 0), AGG_ADD_PACKED);
    cr_assert_eq(agg_part_add(p, &j2, 12, 0), AGG_ADD_PACKED);
    cr_assert_eq(agg_part_skip(p, 13), AGG_ADD_NOOP);
    cr_assert_eq(agg_part_position(p), 13);
    cr_assert_eq(agg_part_pending(p), 4);
    cr_assert(agg_part_needs_write(p));

    int argc;
    const char **argv;
    const size_t *len;
    cr_assert_eq(agg_part_seal(p, "abc", &argc, &argv, &len), 0);
    cr_assert_eq(argc, 8 + 2 * 6);
    cr_assert(arg_is(argv, len, 0, "EVALSHA"));
    cr_assert(arg_is(argv, len, 1, "abc"));
    cr_assert(arg_is(argv, len, 2, "1"));
    cr_assert(arg_is(argv, len, 3, "vc:{vc.3}:meta"));
    cr_assert(arg_is(argv, len, 4, "vc:{vc.3}:"));
    cr_assert(arg_is(argv, len, 5, "13"), "the batch's last offset");
    cr_assert(arg_is(argv, len, 6, "9"), "the offset Redis must hold");
    cr_assert(arg_is(argv, len, 7, "2"), "two streams touched");
    const char *want[] = {"77", "0", "1", "live", "11", "4", "78", "1", "1", "live", "12", ""};
    for (int i = 0; i < 12; i++)
        cr_assert(arg_is(argv, len, 8 + i, want[i]), "arg %d: %.*s", 8 + i, (int)len[8 + i], argv[8 + i]);
    cr_assert_eq(agg_part_seal(p, NULL, &argc, &argv, &len), 0);
    cr_assert(arg_is(argv, len, 0, "EVAL"));
    cr_assert_str_eq(argv[1], agg_apply_script);

    commit_ok(p);
    cr_assert_eq(agg_part_applied(p), 13);
    cr_assert_not(agg_part_needs_write(p));
    cr_assert_eq(agg_part_dirty(p), 0);
    /* nothing to write: the call only checks the offset */
    cr_assert_eq(agg_part_seal(p, "abc", &argc, &argv, &len), 0);
    cr_assert_eq(argc, 8);
    cr_assert(arg_is(argv, len, 5, "13"));
    cr_assert(arg_is(argv, len, 6, "13"));
    agg_part_destroy(p);
}

Test(apply, distinct_users_anonymous_peak_and_leave_before_join)
{
    agg_part *p = agg_part_new(0, &conf);
    int64_t off = 0;
    vc_event evs[] = {
        ev_of(VC_EV_JOIN, 5, 7, 1, "gw", 10),  /* user 7, tab 1 */
        ev_of(VC_EV_JOIN, 5, 7, 2, "gw", 11),  /* user 7, tab 2: still 1 */
        ev_of(VC_EV_JOIN, 5, 7, 3, "gw2", 12), /* user 7 on another gateway: still 1 */
        ev_of(VC_EV_JOIN, 5, 0, 4, "gw", 13),  /* anonymous: 2 */
        ev_of(VC_EV_JOIN, 5, 0, 5, "gw", 14),  /* anonymous: 3 */
        ev_of(VC_EV_LEAVE, 5, 0, 1, "gw", 15), /* one of user 7's tabs: 3 */
        ev_of(VC_EV_LEAVE, 5, 0, 4, "gw", 16), /* anonymous: 2 */
        ev_of(VC_EV_LEAVE, 5, 0, 9, "gw", 17), /* unknown: a tombstone, never negative */
        ev_of(VC_EV_JOIN, 5, 8, 9, "gw", 18),  /* its late join nets to nothing */
        ev_of(VC_EV_LEAVE, 5, 0, 2, "gw", 19),
        ev_of(VC_EV_LEAVE, 5, 0, 3, "gw2", 20), /* user 7's last tab: 1 */
    };
    long long want[] = {1, 1, 1, 2, 3, 3, 2, 2, 2, 2, 1};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        cr_assert_eq(agg_part_add(p, &evs[i], off++, 0), AGG_ADD_PACKED);
        cr_assert_eq(viewers_of(p, 5), want[i], "after event %zu: %lld viewers", i, (long long)viewers_of(p, 5));
    }
    written w;
    cr_assert(sealed_stream(p, 5, &w, NULL));
    cr_assert_eq(w.viewers, 1);
    cr_assert_eq(w.peak, 3);
    cr_assert_eq(w.offset, 10);
    cr_assert_str_eq(w.status, "live");
    cr_assert_eq(agg_part_tombstones(p), 0, "the late join consumed the tombstone");
    cr_assert_eq(agg_part_connections(p), 1);
    /* the last connection leaves: every index of the gateway epochs goes */
    vc_event l = ev_of(VC_EV_LEAVE, 5, 0, 5, "gw", 21);
    agg_part_add(p, &l, off++, 0);
    cr_assert_eq(viewers_of(p, 5), 0);
    cr_assert_eq(agg_part_connections(p), 0);
    cr_assert_eq(agg_part_shares(p), 0);
    cr_assert_eq(agg_part_gateways(p), 0);
    agg_part_destroy(p);
}

Test(apply, a_silent_gateway_loses_its_viewers_after_the_timeout_and_not_before)
{
    agg_rules_conf c = conf;
    c.gateway_timeout_ms = 1000;
    agg_part *p = agg_part_new(0, &c);
    vc_event a = ev_of(VC_EV_JOIN, 5, 1, 1, "a", 100), a2 = ev_of(VC_EV_JOIN, 6, 0, 2, "a", 100);
    vc_event bj = ev_of(VC_EV_JOIN, 5, 2, 3, "b", 100);
    vc_event b = ev_of(VC_EV_HEARTBEAT, 0, 0, 0, "b", 1100);
    vc_event b2 = ev_of(VC_EV_HEARTBEAT, 0, 0, 0, "b", 1101);
    agg_part_add(p, &a, 0, 0);
    agg_part_add(p, &a2, 1, 0);
    agg_part_add(p, &bj, 2, 0);
    cr_assert_eq(agg_part_add(p, &b, 3, 0), AGG_ADD_NOOP, "exactly the timeout: not yet");
    cr_assert_eq(viewers_of(p, 5), 2);
    cr_assert_eq(agg_part_add(p, &b2, 4, 0), AGG_ADD_PACKED);
    cr_assert_eq(viewers_of(p, 5), 1);
    cr_assert_eq(viewers_of(p, 6), 0);
    cr_assert_eq(agg_part_gateways(p), 1, "gateway a's indexes are gone");
    agg_stats st;
    agg_part_take_stats(p, &st);
    cr_assert_eq(st.gone, 1);
    cr_assert_eq(st.expired_viewers, 2);
    written w;
    cr_assert(sealed_stream(p, 6, &w, NULL));
    cr_assert_eq(w.offset, 4, "the expiry is the stream's latest change");
    /* a restart of b (newer epoch) ends the old epoch at once; its events are stale after */
    vc_event r = ev_of(VC_EV_HEARTBEAT, 0, 0, 0, "b", 1102);
    r.gateway_epoch = 2;
    agg_part_add(p, &r, 5, 0);
    cr_assert_eq(viewers_of(p, 5), 0);
    vc_event old = ev_of(VC_EV_JOIN, 5, 9, 9, "b", 1103);
    cr_assert_eq(agg_part_add(p, &old, 6, 0), AGG_ADD_STALE);
    cr_assert_eq(viewers_of(p, 5), 0);
    cr_assert_eq(agg_part_gateways(p), 0);
    agg_part_destroy(p);
}

static vc_event snapshot(int64_t stream, const char *gw, int64_t id, const int64_t *conns, const int64_t *users,
                         size_t n, int64_t ts)
{
    vc_event ev = ev_of(VC_EV_SYNC, stream, 0, 0, gw, ts);
    ev.snapshot_id = id;
    ev.chunks = 1;
    ev.nviewers = n;
    ev.viewers = calloc(n ? n : 1, sizeof(*ev.viewers));
    for (size_t i = 0; i < n; i++) {
        ev.viewers[i].conn_id = conns[i];
        ev.viewers[i].user_id = users[i];
        ev.viewers[i].joined_ms = 1;
    }
    return ev;
}

Test(apply, a_sync_snapshot_replaces_the_share_and_syncing_clears_after_the_hold)
{
    agg_part *p = agg_part_new(0, &conf); /* hold 5000 ms */
    int64_t off = 0, conns[16], users[16];
    for (int i = 0; i < 10; i++) {
        vc_event j = ev_of(VC_EV_JOIN, 8, 100 + i, 1 + i, "a", 1000);
        agg_part_add(p, &j, off++, 0);
        conns[i] = 1 + i;
        users[i] = 100 + i;
    }
    vc_event other = ev_of(VC_EV_JOIN, 8, 500, 99, "b", 1000);
    agg_part_add(p, &other, off++, 0);
    commit_ok(p);
    /* a quiet snapshot: nothing changes, status stays live */
    vc_event s0 = snapshot(8, "a", 1, conns, users, 10, 1001);
    agg_part_add(p, &s0, off++, 0);
    vc_event_free(&s0);
    agg_stream_view v;
    cr_assert(agg_part_stream(p, 8, &v));
    cr_assert_eq(v.viewers, 11);
    cr_assert_not(v.syncing);
    /* a holds 1..8 and 11 (user 111): 2 ghosts, 1 missing of 10 -> 30%: syncing */
    conns[8] = 11;
    users[8] = 111;
    vc_event s1 = snapshot(8, "a", 2, conns, users, 9, 2000);
    cr_assert_eq(agg_part_add(p, &s1, off++, 0), AGG_ADD_PACKED);
    vc_event_free(&s1);
    cr_assert(agg_part_stream(p, 8, &v));
    cr_assert_eq(v.viewers, 10);
    cr_assert(v.syncing);
    agg_stats st;
    agg_part_take_stats(p, &st);
    cr_assert_eq(st.repairs[VC_DRIFT_QUIET], 1);
    cr_assert_eq(st.repairs[VC_DRIFT_SYNCING], 1);
    cr_assert_eq(st.added, 1);
    cr_assert_eq(st.removed, 2);
    written w;
    cr_assert(sealed_stream(p, 8, &w, NULL));
    cr_assert_str_eq(w.status, "syncing");
    commit_ok(p);
    /* the hold is event time: a heartbeat at exactly the bound is not over it... */
    vc_event hb = ev_of(VC_EV_HEARTBEAT, 0, 0, 0, "a", 6999);
    agg_part_add(p, &hb, off++, 0);
    cr_assert(agg_part_stream(p, 8, &v));
    cr_assert(v.syncing);
    /* ...one at the bound is, and the stream is written live again */
    vc_event hb2 = ev_of(VC_EV_HEARTBEAT, 0, 0, 0, "a", 7000);
    agg_part_add(p, &hb2, off++, 0);
    cr_assert(agg_part_stream(p, 8, &v));
    cr_assert_not(v.syncing);
    cr_assert(sealed_stream(p, 8, &w, NULL));
    cr_assert_str_eq(w.status, "live");
    cr_assert_eq(w.offset, off - 1);
    /* an empty snapshot of b: its one viewer is a ghost -> rebuild tier */
    vc_event s2 = snapshot(8, "b", 3, NULL, NULL, 0, 7001);
    agg_part_add(p, &s2, off++, 0);
    vc_event_free(&s2);
    cr_assert_eq(viewers_of(p, 8), 9);
    agg_part_take_stats(p, &st);
    cr_assert_eq(st.repairs[VC_DRIFT_REBUILD], 1);
    cr_assert(agg_part_stream(p, 8, &v));
    cr_assert(v.syncing);
    cr_assert_eq(agg_part_gateways(p), 1, "b holds nothing any more");
    agg_part_destroy(p);
}

Test(apply, tombstones_are_forgotten_after_their_ttl_in_event_time)
{
    agg_rules_conf c = conf;
    c.tombstone_ttl_ms = 10000;
    agg_part *p = agg_part_new(0, &c);
    vc_event l = ev_of(VC_EV_LEAVE, 5, 0, 1, "a", 1000);
    agg_part_add(p, &l, 0, 0);
    cr_assert_eq(agg_part_tombstones(p), 1);
    vc_event hb = ev_of(VC_EV_HEARTBEAT, 0, 0, 0, "a", 8000);
    agg_part_add(p, &hb, 1, 0);
    cr_assert_eq(agg_part_tombstones(p), 1, "younger than the TTL: kept");
    vc_event hb2 = ev_of(VC_EV_HEARTBEAT, 0, 0, 0, "a", 16000);
    agg_part_add(p, &hb2, 2, 0);
    cr_assert_eq(agg_part_tombstones(p), 0);
    cr_assert_eq(agg_part_shares(p), 0);
    cr_assert_eq(agg_part_gateways(p), 0);
    agg_stats st;
    agg_part_take_stats(p, &st);
    cr_assert_eq(st.tombstones_dropped, 1);
    agg_part_destroy(p);
}

/* Random churn over few streams, users with several tabs, anonymous
 * viewers, two gateways: the state equals a naive model after every event. */
typedef struct {
    int64_t conn, stream, user;
} mconn;

static long long model_viewers(const mconn *open, int n, int64_t stream)
{
    long long v = 0;
    for (int i = 0; i < n; i++) {
        if (open[i].stream != stream)
            continue;
        int first = 1;
        for (int k = 0; k < i && open[i].user > 0; k++)
            if (open[k].stream == stream && open[k].user == open[i].user)
                first = 0;
        v += first;
    }
    return v;
}

Test(apply, random_churn_matches_the_model_and_a_saved_state_decides_the_same)
{
    agg_part *p = agg_part_new(1, &conf), *q = NULL;
    mconn *open = calloc(4096, sizeof(*open));
    int nopen = 0;
    unsigned seed = 5;
    int64_t next_conn = 1, off = 0, ts = 1000;
    static const char *gws[2] = {"a", "b"};
    for (int e = 0; e < 6000; e++) {
        vc_event ev;
        if (nopen > 0 && rand_r(&seed) % 5 < 2) {
            int k = (int)((unsigned)rand_r(&seed) % (unsigned)nopen);
            ev = ev_of(VC_EV_LEAVE, open[k].stream, 0, open[k].conn, gws[open[k].conn % 2], ts++);
            open[k] = open[--nopen];
        } else {
            int64_t stream = 1 + rand_r(&seed) % 6, user = rand_r(&seed) % 4 == 0 ? 0 : 1 + rand_r(&seed) % 20;
            ev = ev_of(VC_EV_JOIN, stream, user, next_conn, gws[next_conn % 2], ts++);
            open[nopen++] = (mconn){next_conn++, stream, user};
        }
        cr_assert_eq(agg_part_add(p, &ev, off, 0), AGG_ADD_PACKED);
        if (q)
            cr_assert_eq(agg_part_add(q, &ev, off, 0), AGG_ADD_PACKED);
        off++;
        for (int64_t s = 1; s <= 6; s++) {
            long long want = model_viewers(open, nopen, s);
            cr_assert(viewers_of(p, s) == want || (want == 0 && viewers_of(p, s) == -1),
                      "event %d stream %lld: %lld viewers, model %lld", e, (long long)s,
                      (long long)viewers_of(p, s), want);
        }
        if (e == 2500) {
            /* checkpoint: the loaded state goes on in lockstep */
            uint8_t *buf;
            size_t len;
            char err[128];
            cr_assert_eq(agg_part_save(p, &buf, &len), 0);
            q = agg_part_load(1, &conf, buf, len, err, sizeof(err));
            cr_assert_not_null(q, "%s", err);
            cr_assert_eq(agg_part_position(q), agg_part_position(p));
            cr_assert_eq(agg_part_connections(q), agg_part_connections(p));
            /* a damaged state is refused, never half-loaded */
            for (size_t cut = 0; cut < len; cut += len / 7 + 1) {
                agg_part *bad = agg_part_load(1, &conf, buf, cut, err, sizeof(err));
                cr_assert_null(bad, "a state cut at %zu bytes loaded", cut);
            }
            free(buf);
        }
    }
    cr_assert_eq((long long)agg_part_connections(p), nopen);
    cr_assert_eq(agg_part_connections(q), agg_part_connections(p));
    agg_part_mark_all(p);
    agg_part_mark_all(q);
    for (int64_t s = 1; s <= 6; s++) {
        written a, b;
        int na, nb;
        cr_assert(sealed_stream(p, s, &a, &na));
        cr_assert(sealed_stream(q, s, &b, &nb));
        cr_assert_eq(na, 6, "a restore writes every stream");
        cr_assert_eq(nb, na);
        cr_assert_eq(a.viewers, b.viewers);
        cr_assert_eq(a.peak, b.peak);
        cr_assert_eq(a.offset, b.offset);
    }
    free(open);
    agg_part_destroy(p);
    agg_part_destroy(q);
}

Test(apply, events_redis_already_holds_are_replayed_into_memory_only)
{
    agg_part *p = agg_part_new(2, &conf);
    vc_event j1 = ev_of(VC_EV_JOIN, 5, 1, 1, "a", 10), j2 = ev_of(VC_EV_JOIN, 5, 2, 2, "a", 11);
    vc_event l1 = ev_of(VC_EV_LEAVE, 5, 0, 1, "a", 12);
    agg_part_set_applied(p, 1); /* Redis holds offsets 0..1 */
    agg_part_add(p, &j1, 0, 0);
    cr_assert_not(agg_part_needs_write(p), "behind what Redis holds: nothing to write");
    agg_part_add(p, &j2, 1, 0);
    cr_assert_not(agg_part_needs_write(p), "at what Redis holds: the streams are as Redis has them");
    int argc;
    const char **argv;
    const size_t *len;
    cr_assert_eq(agg_part_seal(p, "x", &argc, &argv, &len), 0);
    cr_assert(arg_is(argv, len, 5, "1"));
    cr_assert(arg_is(argv, len, 6, "1"));
    cr_assert_eq(argc, 8, "only a check of the offset");
    agg_part_add(p, &l1, 2, 0);
    cr_assert(agg_part_needs_write(p));
    written w;
    cr_assert(sealed_stream(p, 5, &w, NULL));
    cr_assert_eq(w.viewers, 1, "the replayed joins are in the state");
    cr_assert_eq(w.peak, 2);
    agg_stats st;
    agg_part_take_stats(p, &st);
    cr_assert_eq(st.replayed, 2);
    cr_assert_eq(st.events, 1);
    agg_part_destroy(p);
}

Test(apply, commit_reads_the_script_reply)
{
    char err[128];
    agg_part *p = agg_part_new(1, &conf);
    vc_event j = ev_of(VC_EV_JOIN, 8, 1, 1, "gw", 10);
    agg_part_add(p, &j, 0, 0);
    int argc;
    const char **argv;
    const size_t *len;
    agg_part_seal(p, "x", &argc, &argv, &len);
    redisReply items[2], *els[2] = {&items[0], &items[1]}, arr = {0};
    memset(items, 0, sizeof(items));
    items[0].type = items[1].type = REDIS_REPLY_INTEGER;
    arr.type = REDIS_REPLY_ARRAY;
    arr.element = els;
    int64_t stored;
    /* a gap reply: nothing is committed */
    arr.elements = 2;
    items[0].integer = 1;
    items[1].integer = -1;
    cr_assert_eq(agg_part_commit(p, &arr, &stored, err, sizeof(err)), 1);
    cr_assert_eq(stored, -1);
    cr_assert_eq(agg_part_applied(p), -1);
    cr_assert(agg_part_needs_write(p));
    /* an error reply */
    redisReply e = {0};
    e.type = REDIS_REPLY_ERROR;
    e.str = "NOSCRIPT No matching script";
    e.len = strlen(e.str);
    cr_assert_eq(agg_part_commit(p, &e, &stored, err, sizeof(err)), -1);
    cr_assert(strncmp(err, "NOSCRIPT", 8) == 0);
    /* success */
    arr.elements = 1;
    items[0].integer = 0;
    cr_assert_eq(agg_part_commit(p, &arr, &stored, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(agg_part_applied(p), 0);
    cr_assert_eq(agg_part_pending(p), 0);
    cr_assert_not(agg_part_needs_write(p));
    /* a restore after Redis lost the partition writes the stream again */
    agg_part_set_applied(p, -1);
    agg_part_mark_all(p);
    written w;
    cr_assert(sealed_stream(p, 8, &w, NULL));
    cr_assert_eq(w.viewers, 1);
    agg_part_destroy(p);
}
