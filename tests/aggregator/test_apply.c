/* test_apply.c -- the pure packing of a partition's batch (aggregator/apply.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "apply.h"

static const agg_rules_conf conf = {90000, 100000, 60000};

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

Test(apply, packs_joins_and_leaves_with_offsets_and_gateway_ids)
{
    char err[128];
    agg_part *p = agg_part_new(3, &conf, 9, NULL, 0, NULL, 0, err, sizeof(err));
    cr_assert_not_null(p, "%s", err);
    vc_event j = ev_of(VC_EV_JOIN, 77, 5, 123456789012345LL, "gw", 1000);
    vc_event l = ev_of(VC_EV_LEAVE, 77, 0, 123456789012345LL, "gw", 1001);
    cr_assert_eq(agg_part_add(p, &j, 9, 0), AGG_ADD_DUPLICATE, "offsets at or below the applied one are skipped");
    cr_assert_eq(agg_part_add(p, &j, 10, 4), AGG_ADD_PACKED);
    cr_assert_eq(agg_part_add(p, &l, 11, 0), AGG_ADD_PACKED);
    cr_assert_eq(agg_part_add(p, &l, 11, 0), AGG_ADD_DUPLICATE);
    cr_assert_eq(agg_part_skip(p, 12), AGG_ADD_NOOP);
    cr_assert_eq(agg_part_position(p), 12);
    cr_assert_eq(agg_part_pending(p), 3);

    int argc;
    const char **argv;
    const size_t *len;
    cr_assert_eq(agg_part_seal(p, "abc", &argc, &argv, &len), 0);
    cr_assert_eq(argc, 9 + 7 + 5);
    cr_assert(arg_is(argv, len, 0, "EVALSHA"));
    cr_assert(arg_is(argv, len, 1, "abc"));
    cr_assert(arg_is(argv, len, 2, "1"));
    cr_assert(arg_is(argv, len, 3, "vc:{vc.3}:meta"));
    cr_assert(arg_is(argv, len, 4, "vc:{vc.3}:"));
    cr_assert(arg_is(argv, len, 5, "12"), "the batch's last offset");
    cr_assert(arg_is(argv, len, 6, "9"), "the offset Redis must hold");
    const char *want[] = {"J", "10", "77", "123456789012345", "5", "1", "4",
                          "L", "11", "77", "123456789012345", "1"};
    for (int i = 0; i < 12; i++)
        cr_assert(arg_is(argv, len, 9 + i, want[i]), "arg %d: %.*s", 9 + i, (int)len[9 + i], argv[9 + i]);

    /* without a sha: EVAL with the script source */
    cr_assert_eq(agg_part_seal(p, NULL, &argc, &argv, &len), 0);
    cr_assert(arg_is(argv, len, 0, "EVAL"));
    cr_assert_str_eq(argv[1], agg_apply_script);
    agg_part_destroy(p);
}

Test(apply, a_silent_gateway_becomes_an_expire_before_the_event)
{
    char err[128];
    agg_rules_conf c = {1000, 1000, 1000};
    agg_part *p = agg_part_new(0, &c, -1, NULL, 0, NULL, 0, err, sizeof(err));
    vc_event a = ev_of(VC_EV_JOIN, 5, 1, 1, "a", 100);
    vc_event b = ev_of(VC_EV_HEARTBEAT, 0, 0, 0, "b", 1100);
    vc_event b2 = ev_of(VC_EV_HEARTBEAT, 0, 0, 0, "b", 1101);
    cr_assert_eq(agg_part_add(p, &a, 0, 0), AGG_ADD_PACKED);
    cr_assert_eq(agg_part_add(p, &b, 1, 0), AGG_ADD_NOOP, "exactly the timeout: not yet");
    cr_assert_eq(agg_part_add(p, &b2, 2, 0), AGG_ADD_PACKED);
    cr_assert_eq(agg_part_gone(p), 1);
    int argc;
    const char **argv;
    const size_t *len;
    agg_part_seal(p, "x", &argc, &argv, &len);
    cr_assert_eq(argc, 9 + 7 + 3);
    cr_assert(arg_is(argv, len, 16, "X"));
    cr_assert(arg_is(argv, len, 17, "2"));
    cr_assert(arg_is(argv, len, 18, "1"), "the id of gateway a");
    /* the rule state travels with the batch and reloads to the same decisions */
    agg_part *q = agg_part_new(0, &c, 2, (const uint8_t *)argv[7], len[7], (const uint8_t *)argv[8], len[8],
                               err, sizeof(err));
    cr_assert_not_null(q, "%s", err);
    vc_event a2 = ev_of(VC_EV_JOIN, 5, 1, 2, "a", 1102);
    cr_assert_eq(agg_part_add(q, &a2, 3, 0), AGG_ADD_PACKED);
    agg_part_seal(q, "x", &argc, &argv, &len);
    cr_assert(arg_is(argv, len, 9 + 5, "1"), "a revived gateway keeps its id");
    agg_part_destroy(p);
    agg_part_destroy(q);
}

Test(apply, commit_reads_the_script_reply)
{
    char err[128];
    agg_part *p = agg_part_new(1, &conf, -1, NULL, 0, NULL, 0, err, sizeof(err));
    vc_event j = ev_of(VC_EV_JOIN, 8, 1, 1, "gw", 10);
    agg_part_add(p, &j, 0, 0);
    redisReply *els[10], arr = {0};
    redisReply items[10];
    memset(items, 0, sizeof(items));
    for (int i = 0; i < 10; i++) {
        items[i].type = REDIS_REPLY_INTEGER;
        items[i].integer = i == 0 ? 0 : i;
        els[i] = &items[i];
    }
    arr.type = REDIS_REPLY_ARRAY;
    arr.elements = 10;
    arr.element = els;
    agg_result res;
    int64_t stored;
    cr_assert_eq(agg_part_commit(p, &arr, &res, &stored, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(res.applied, 1);
    cr_assert_eq(res.repairs[VC_DRIFT_REBUILD], 5);
    cr_assert_eq(res.expired_viewers, 9);
    cr_assert_eq(agg_part_applied(p), 0);
    cr_assert_eq(agg_part_pending(p), 0);
    /* a gap reply */
    arr.elements = 2;
    items[0].integer = 1;
    items[1].integer = -1;
    cr_assert_eq(agg_part_commit(p, &arr, &res, &stored, err, sizeof(err)), 1);
    cr_assert_eq(stored, -1);
    /* an error reply */
    redisReply e = {0};
    e.type = REDIS_REPLY_ERROR;
    e.str = "NOSCRIPT No matching script";
    e.len = strlen(e.str);
    cr_assert_eq(agg_part_commit(p, &e, &res, &stored, err, sizeof(err)), -1);
    cr_assert(strncmp(err, "NOSCRIPT", 8) == 0);
    agg_part_destroy(p);
}
