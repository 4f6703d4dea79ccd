/* test_liveness.c -- the gateway liveness rule of schemas/vc_rules.h against
 * hand-built partition logs: broker-outage backlogs that reach the partition
 * one after the other, a killed gateway, a gateway that dies during an
 * outage, producers that still queue their heartbeats, a lone gateway, the
 * version-1 saved state, and replay determinism across save/load. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vc_rules.h"

#define S 1000LL
#define TIMEOUT (90 * S)
#define PERIOD (10 * S)

static vc_gateway_gone gone[VC_LIVENESS_MAX];

/* Feeds one event; returns how many epochs are gone and, if who is not
 * NULL, whether the gateway named who is one of them. */
static int feed(vc_liveness *lv, vc_event_type type, const char *gw, int64_t epoch, int64_t ts,
                vc_liveness_verdict *v, const char *who, int *who_gone)
{
    vc_event ev;
    vc_liveness_verdict scratch;
    vc_event_init(&ev);
    ev.type = type;
    snprintf(ev.gateway_id, sizeof(ev.gateway_id), "%s", gw);
    ev.gateway_epoch = epoch;
    ev.ts_ms = ts;
    ev.stream_id = type == VC_EV_HEARTBEAT ? 0 : 7;
    ev.conn_id = type == VC_EV_HEARTBEAT ? 0 : 1;
    int n = vc_liveness_observe(lv, &ev, v ? v : &scratch, gone);
    if (who_gone != NULL) {
        *who_gone = 0;
        for (int i = 0; i < n; i++)
            if (strcmp(gone[i].gateway_id, who) == 0)
                *who_gone = 1;
    }
    return n;
}

static int hb(vc_liveness *lv, const char *gw, int64_t ts)
{
    return feed(lv, VC_EV_HEARTBEAT, gw, 1, ts, NULL, NULL, NULL);
}

static int join(vc_liveness *lv, const char *gw, int64_t ts)
{
    return feed(lv, VC_EV_JOIN, gw, 1, ts, NULL, NULL, NULL);
}

/* Live traffic of the named gateways from `from` to `to`: each heartbeats
 * every PERIOD (gateway i at +i ms) and joins once in between. Returns the
 * number of gone epochs reported. */
static int live(vc_liveness *lv, const char *const *gws, int n, int64_t from, int64_t to)
{
    int total = 0;
    for (int64_t t = from; t <= to; t += PERIOD)
        for (int i = 0; i < n; i++) {
            total += hb(lv, gws[i], t + i);
            total += join(lv, gws[i], t + PERIOD / 2 + i);
        }
    return total;
}

/* What a gateway's queue holds after an outage [from, to) when the gateway
 * skips heartbeats to a partition that does not acknowledge (gateway/producer.c):
 * the joins and leaves of the outage, every 7 s, and no heartbeat. */
static int backlog(vc_liveness *lv, const char *gw, int64_t from, int64_t to)
{
    int total = 0;
    for (int64_t t = from + 3 * S; t < to; t += 7 * S)
        total += join(lv, gw, t);
    return total;
}

Test(liveness_outage, backlogs_one_after_the_other_expire_nobody)
{
    vc_liveness *lv = vc_liveness_new(TIMEOUT);
    const char *gws[] = {"a", "b", "c"};
    int64_t down = 100 * S, up = 400 * S; /* 300 s outage, over three timeouts */

    cr_assert_eq(live(lv, gws, 3, 0, down - PERIOD), 0);
    int64_t live_before = vc_liveness_live_clock(lv);
    /* a's whole backlog, then b's, then c's */
    cr_assert_eq(backlog(lv, "a", down, up), 0, "a's backlog expired someone");
    cr_assert_eq(backlog(lv, "b", down, up), 0, "b's backlog expired someone");
    cr_assert_eq(backlog(lv, "c", down, up), 0);
    cr_expect_eq(vc_liveness_live_clock(lv), live_before, "joins and leaves do not move the live clock");
    cr_expect_geq(vc_liveness_clock(lv), up - 7 * S, "the event-time clock still follows ts");
    /* the first heartbeat after the outage ticks 1.5 periods at most */
    cr_assert_eq(hb(lv, "a", up + 1 * S), 0);
    cr_expect_leq(vc_liveness_live_clock(lv) - live_before, PERIOD + PERIOD / 2);
    cr_assert_eq(live(lv, gws, 3, up + 2 * S, up + 10 * TIMEOUT), 0, "nobody may be lost after the outage");
    cr_expect_eq(vc_liveness_alive(lv), 3);
    vc_liveness_destroy(lv);
}

Test(liveness_outage, a_backlog_that_arrives_after_the_others_fresh_heartbeats_is_in_time)
{
    vc_liveness *lv = vc_liveness_new(TIMEOUT);
    const char *ab[] = {"a", "b"};
    const char *abc[] = {"a", "b", "c"};
    int64_t down = 100 * S, up = 400 * S;

    cr_assert_eq(live(lv, abc, 3, 0, down - PERIOD), 0);
    cr_assert_eq(backlog(lv, "a", down, up), 0);
    cr_assert_eq(backlog(lv, "b", down, up), 0);
    /* a and b are live again for 60 s before c's queue reaches the partition
     * (60 s + 1.5 periods < the timeout) */
    cr_assert_eq(live(lv, ab, 2, up, up + 60 * S), 0, "c lost while its backlog is on the way");
    cr_assert_eq(backlog(lv, "c", down, up), 0);
    cr_assert_eq(live(lv, abc, 3, up + 70 * S, up + 5 * TIMEOUT), 0);
    cr_expect_eq(vc_liveness_alive(lv), 3);
    vc_liveness_destroy(lv);
}

Test(liveness_dead, a_killed_gateway_is_lost_after_the_timeout_and_not_before)
{
    vc_liveness *lv = vc_liveness_new(TIMEOUT);
    const char *abd[] = {"a", "b", "d"};
    const char *ab[] = {"a", "b"};
    int lost_at = 0, lost = 0;

    cr_assert_eq(live(lv, abd, 3, 0, 50 * S), 0);
    int64_t d_last = 50 * S + 2 + PERIOD / 2; /* d's last sign of life: its join */
    /* kill -9 of d: nothing more from it; a and b go on */
    for (int64_t t = 60 * S; t <= 300 * S && !lost; t += PERIOD) {
        for (int i = 0; i < 2 && !lost; i++) {
            int who;
            feed(lv, VC_EV_HEARTBEAT, ab[i], 1, t + i, NULL, "d", &who);
            if (who) {
                lost = 1;
                lost_at = (int)(t + i);
                break;
            }
            cr_assert_eq(feed(lv, VC_EV_JOIN, ab[i], 1, t + PERIOD / 2 + i, NULL, NULL, NULL), 0,
                         "a join expired someone (only heartbeats tick the live clock)");
        }
    }
    cr_assert(lost, "d was never lost");
    cr_expect_gt(lost_at - d_last, TIMEOUT, "lost before the timeout: at %d", lost_at);
    cr_expect_leq(lost_at - d_last, TIMEOUT + PERIOD, "lost later than the next heartbeat after the timeout");
    cr_expect_eq(vc_liveness_alive(lv), 2);
    vc_liveness_destroy(lv);
}

Test(liveness_dead, a_gateway_that_dies_during_an_outage_is_lost_after_it)
{
    vc_liveness *lv = vc_liveness_new(TIMEOUT);
    const char *ad[] = {"a", "d"};
    int64_t down = 100 * S, up = 400 * S;
    int64_t lost_at = 0;

    cr_assert_eq(live(lv, ad, 2, 0, down - PERIOD), 0);
    /* d dies at 150 s: its queue (the outage's events) dies with it. */
    cr_assert_eq(backlog(lv, "a", down, up), 0);
    for (int64_t t = up; t <= up + 3 * TIMEOUT && !lost_at; t += PERIOD) {
        int who;
        feed(lv, VC_EV_HEARTBEAT, "a", 1, t, NULL, "d", &who);
        if (who)
            lost_at = t;
    }
    cr_assert_neq(lost_at, 0, "d was never lost");
    /* The outage itself does not count (nobody could be heard), so d goes
     * about a timeout after the partition is live again: less the 1.5
     * periods the first heartbeat after the outage counts, and never sooner
     * after d's last event than the timeout. */
    cr_expect_geq(lost_at - up, TIMEOUT - PERIOD - PERIOD / 2, "lost %lld ms after the outage",
                  (long long)(lost_at - up));
    cr_expect_leq(lost_at - up, TIMEOUT + PERIOD);
    cr_expect_gt(lost_at - (down - PERIOD / 2), TIMEOUT);
    cr_expect_eq(vc_liveness_alive(lv), 1);
    vc_liveness_destroy(lv);
}

/* Gateways built before the rule queue their heartbeats too: a's backlog then
 * ticks the live clock like live heartbeats, and b (behind it) is lost. But
 * only once: b's late events are signs of life where they stand in the log,
 * so b is alive from its first one on and stays alive through its backlog
 * (it used to be expired again at each of them). */
Test(liveness_outage, queued_heartbeats_lose_the_gateway_behind_once_not_at_each_late_event)
{
    vc_liveness *lv = vc_liveness_new(TIMEOUT);
    const char *ab[] = {"a", "b"};
    int64_t down = 100 * S, up = 400 * S;
    int b_lost = 0, who;
    vc_liveness_verdict v;

    cr_assert_eq(live(lv, ab, 2, 0, down - PERIOD), 0);
    feed(lv, VC_EV_JOIN, "b", 1, 1, &v, NULL, NULL);
    uint32_t b_id = v.id;
    for (int64_t t = down; t < up; t += PERIOD) { /* a's backlog, heartbeats included */
        feed(lv, VC_EV_HEARTBEAT, "a", 1, t, NULL, "b", &who);
        b_lost += who;
        feed(lv, VC_EV_JOIN, "a", 1, t + 3 * S, NULL, "b", &who);
        b_lost += who;
    }
    cr_assert_eq(b_lost, 1, "b lost %d times", b_lost);
    for (int64_t t = down; t < up; t += PERIOD) { /* b's backlog */
        cr_assert_eq(feed(lv, VC_EV_HEARTBEAT, "b", 1, t + 1, &v, NULL, NULL), 0, "b flapped at %lld",
                     (long long)t);
        cr_assert_eq(v.stale, 0);
        cr_assert_eq(v.id, b_id, "a revived gateway keeps its id");
        cr_assert_eq(feed(lv, VC_EV_JOIN, "b", 1, t + 4 * S, NULL, NULL, NULL), 0);
    }
    cr_assert_eq(live(lv, ab, 2, up, up + 3 * TIMEOUT), 0);
    cr_expect_eq(vc_liveness_alive(lv), 2);
    vc_liveness_destroy(lv);
}

Test(liveness_lone, a_lone_gateway_does_not_time_itself_out)
{
    vc_liveness *lv = vc_liveness_new(TIMEOUT);
    vc_liveness_verdict v;
    for (int64_t t = 0; t <= 50 * S; t += PERIOD)
        cr_assert_eq(hb(lv, "a", t), 0);
    /* a hears nothing from itself for 5 minutes (a stall, or an outage of
     * the only gateway): its own next heartbeat does not remove its viewers */
    cr_assert_eq(feed(lv, VC_EV_HEARTBEAT, "a", 1, 350 * S, &v, NULL, NULL), 0);
    cr_assert_eq(v.stale, 0);
    cr_assert_eq(vc_liveness_alive(lv), 1);
    for (int64_t t = 360 * S; t <= 700 * S; t += PERIOD)
        cr_assert_eq(hb(lv, "a", t), 0);
    vc_liveness_destroy(lv);
}

/* Writes what vc_liveness_save() wrote before the live clock ("VCL1"). */
static size_t v1_state(uint8_t *b, int64_t timeout, int64_t clock, uint32_t next_id, int n,
                       const char *const *ids, const int64_t *last, const uint8_t *state)
{
    size_t o = 0;
    memcpy(b, "VCL1", 4);
    o = 4;
#define PUT(v, k)                                                                                  \
    do {                                                                                           \
        for (int q = 0; q < (k); q++)                                                              \
            b[o++] = (uint8_t)((uint64_t)(v) >> (8 * q));                                          \
    } while (0)
    PUT(timeout, 8);
    PUT(clock, 8);
    PUT(next_id, 4);
    PUT(n, 4);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(ids[i]);
        b[o++] = (uint8_t)len;
        memcpy(b + o, ids[i], len);
        o += len;
        PUT(1, 8); /* epoch */
        PUT(last[i], 8);
        PUT(i + 1, 4); /* id */
        b[o++] = state[i];
    }
#undef PUT
    return o;
}

Test(liveness_state, a_version_1_state_loads_and_decides_as_it_did)
{
    uint8_t b[256];
    const char *ids[] = {"a", "b", "z"};
    const int64_t last[] = {1000, 5000, 4000};
    const uint8_t state[] = {0, 0, 1}; /* z expired */
    char err[128];
    size_t n = v1_state(b, 1000, 5000, 4, 3, ids, last, state);
    vc_liveness *lv = vc_liveness_load(b, n, 1000, err, sizeof(err));
    vc_liveness_verdict v;
    int who;

    cr_assert_not_null(lv, "%s", err);
    cr_expect_eq(vc_liveness_clock(lv), 5000);
    cr_expect_eq(vc_liveness_live_clock(lv), 5000);
    cr_expect_eq(vc_liveness_alive(lv), 2);
    /* b's next heartbeat: a (1000) is more than 1000 behind it, as before */
    cr_assert_eq(feed(lv, VC_EV_HEARTBEAT, "b", 1, 5001, &v, "a", &who), 1);
    cr_assert(who);
    cr_assert_eq(v.id, 2, "ids carry over");
    /* z's late event revives it with its id */
    cr_assert_eq(feed(lv, VC_EV_JOIN, "z", 1, 4500, &v, NULL, NULL), 0);
    cr_assert_eq(v.id, 3);
    cr_assert_eq(vc_liveness_alive(lv), 2);
    /* a new gateway gets the next id */
    feed(lv, VC_EV_HEARTBEAT, "new", 1, 5002, &v, NULL, NULL);
    cr_assert_eq(v.id, 4);
    /* it saves as version 2 */
    uint8_t out[512];
    size_t m = vc_liveness_save(lv, NULL, 0);
    cr_assert_leq(m, sizeof(out));
    vc_liveness_save(lv, out, m);
    cr_assert(memcmp(out, "VCL2", 4) == 0);
    vc_liveness_destroy(lv);
    /* broken version 1 bytes are refused */
    cr_assert_null(vc_liveness_load(b, n - 1, 1000, err, sizeof(err)));
    b[n - 1] = 7; /* state */
    cr_assert_null(vc_liveness_load(b, n, 1000, err, sizeof(err)));
}

/* A pseudo-random partition log with every case above in it. */
typedef struct {
    vc_event_type type;
    char gw[8];
    int64_t epoch, ts;
} ev_rec;

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static size_t build_log(ev_rec *log, size_t cap, uint64_t seed)
{
    size_t n = 0;
    uint64_t x = seed;
    int64_t epoch[4] = {1, 1, 1, 1};
    int dead[4] = {0};
    const char *names[4] = {"g0", "g1", "g2", "g3"};
    int64_t t = 1000;
#define ADD(ty, g, ts_)                                                                            \
    do {                                                                                           \
        if (n < cap) {                                                                             \
            log[n].type = (ty);                                                                    \
            snprintf(log[n].gw, sizeof(log[n].gw), "%s", names[g]);                                \
            log[n].epoch = epoch[g];                                                               \
            log[n].ts = (ts_);                                                                     \
            n++;                                                                                   \
        }                                                                                          \
    } while (0)
    for (int round = 0; round < 400; round++) {
        t += PERIOD;
        int what = (int)(rnd(&x) % 40);
        if (what == 0) { /* an outage: backlogs in a random order */
            int64_t up = t + (int64_t)(rnd(&x) % (4 * TIMEOUT));
            int order[4] = {0, 1, 2, 3};
            for (int i = 3; i > 0; i--) {
                int j = (int)(rnd(&x) % (uint64_t)(i + 1)), tmp = order[i];
                order[i] = order[j];
                order[j] = tmp;
            }
            for (int k = 0; k < 4; k++)
                if (!dead[order[k]])
                    for (int64_t u = t; u < up; u += 5 * S + (int64_t)(rnd(&x) % (5 * S)))
                        ADD(rnd(&x) % 3 ? VC_EV_JOIN : VC_EV_LEAVE, order[k], u);
            t = up;
        } else if (what == 1) {
            dead[rnd(&x) % 4] = 1; /* kill -9 */
        } else if (what == 2) {
            int g = (int)(rnd(&x) % 4);
            dead[g] = 0; /* (re)start with a new epoch */
            epoch[g]++;
        }
        for (int g = 0; g < 4; g++) {
            if (dead[g])
                continue;
            ADD(VC_EV_HEARTBEAT, g, t + g);
            if (rnd(&x) % 2)
                ADD(VC_EV_JOIN, g, t + g + (int64_t)(rnd(&x) % PERIOD));
            if (rnd(&x) % 17 == 0) /* a late event */
                ADD(VC_EV_LEAVE, g, t - (int64_t)(rnd(&x) % (3 * TIMEOUT)));
        }
    }
#undef ADD
    return n;
}

typedef struct {
    int ngone;
    char gone[8][VC_GATEWAY_ID_MAX + 1];
    uint32_t gone_id[8];
    int stale;
    uint32_t id;
} decision;

static void run(const ev_rec *log, size_t n, decision *out, int reload)
{
    vc_liveness *lv = vc_liveness_new(TIMEOUT);
    uint8_t *buf = malloc(1 << 20);
    char err[128];
    for (size_t i = 0; i < n; i++) {
        vc_liveness_verdict v;
        vc_event ev;
        vc_event_init(&ev);
        ev.type = log[i].type;
        snprintf(ev.gateway_id, sizeof(ev.gateway_id), "%s", log[i].gw);
        ev.gateway_epoch = log[i].epoch;
        ev.ts_ms = log[i].ts;
        int k = vc_liveness_observe(lv, &ev, &v, gone);
        cr_assert_leq(k, 8);
        memset(&out[i], 0, sizeof(out[i]));
        out[i].ngone = k;
        for (int j = 0; j < k; j++) {
            cr_assert_lt(snprintf(out[i].gone[j], sizeof(out[i].gone[j]), "%s", gone[j].gateway_id),
                         (int)sizeof(out[i].gone[j]));
            out[i].gone_id[j] = gone[j].id;
        }
        out[i].stale = v.stale;
        out[i].id = v.id;
        if (reload && i % reload == 0) { /* a checkpoint, a crash, a restart from it */
            size_t len = vc_liveness_save(lv, NULL, 0);
            cr_assert_leq(len, (size_t)1 << 20);
            cr_assert_eq(vc_liveness_save(lv, buf, len), len);
            vc_liveness_destroy(lv);
            lv = vc_liveness_load(buf, len, TIMEOUT, err, sizeof(err));
            cr_assert_not_null(lv, "%s", err);
        }
    }
    free(buf);
    vc_liveness_destroy(lv);
}

Test(liveness_state, replay_decides_the_same_with_or_without_checkpoints)
{
    size_t cap = 20000;
    ev_rec *log = calloc(cap, sizeof(*log));
    decision *a = calloc(cap, sizeof(*a)), *b = calloc(cap, sizeof(*b)), *c = calloc(cap, sizeof(*c));
    int total_gone = 0;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        size_t n = build_log(log, cap, seed * 0x9e3779b97f4a7c15ULL);
        cr_assert_lt(n, cap);
        run(log, n, a, 0);
        run(log, n, b, 0);
        run(log, n, c, 1 + (int)seed * 3);
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(memcmp(&a[i], &b[i], sizeof(a[i])), 0, "replay differs at event %zu", i);
            cr_assert_eq(a[i].ngone, c[i].ngone, "seed %llu event %zu: save/load changed the decision",
                         (unsigned long long)seed, i);
            for (int j = 0; j < a[i].ngone; j++) {
                cr_assert_str_eq(a[i].gone[j], c[i].gone[j]);
                cr_assert_eq(a[i].gone_id[j], c[i].gone_id[j]);
            }
            cr_assert_eq(a[i].stale, c[i].stale);
            cr_assert_eq(a[i].id, c[i].id);
            total_gone += a[i].ngone;
        }
    }
    cr_assert_gt(total_gone, 0, "the logs should lose and restart gateways");
    free(log);
    free(a);
    free(b);
    free(c);
}
