/* What a viewer is shown: the degradation rules and the count message. */
#include <criterion/criterion.h>
#include <string.h>

#include "count.h"

static gw_count_obs redis(int64_t v, int64_t p, int syncing)
{
    gw_count_obs o = {0};

    o.redis_ok = 1;
    o.redis_found = 1;
    o.viewers = v;
    o.peak = p;
    o.syncing = syncing;
    return o;
}

Test(count, redis_value_is_live)
{
    gw_count_memory mem = {0};
    gw_count_obs o = redis(10, 12, 0);
    gw_count c = gw_count_next(&mem, &o);

    cr_assert_eq(c.status, GW_COUNT_LIVE);
    cr_assert_eq(c.viewers, 10);
    cr_assert_eq(c.peak, 12);
}

Test(count, syncing_stream_shows_syncing)
{
    gw_count_memory mem = {0};
    gw_count_obs o = redis(3, 5, 1);

    cr_assert_eq(gw_count_next(&mem, &o).status, GW_COUNT_SYNCING);
}

Test(count, absent_hash_is_counting)
{
    gw_count_memory mem = {0};
    gw_count_obs o = {.redis_ok = 1};

    cr_assert_eq(gw_count_next(&mem, &o).status, GW_COUNT_COUNTING);
}

Test(count, redis_down_shows_last_known_as_stale)
{
    gw_count_memory mem = {0};
    gw_count_obs up = redis(7, 9, 0), down = {.db_found = 1, .db_viewers = 1, .db_peak = 1};
    gw_count c;

    gw_count_next(&mem, &up);
    c = gw_count_next(&mem, &down);
    cr_assert_eq(c.status, GW_COUNT_STALE);
    cr_assert_eq(c.viewers, 7, "last known value wins over the database");
    cr_assert_eq(c.peak, 9);
}

Test(count, redis_down_nothing_known_uses_database_row)
{
    gw_count_memory mem = {0};
    gw_count_obs down = {.db_found = 1, .db_viewers = 4, .db_peak = 8};
    gw_count c = gw_count_next(&mem, &down);

    cr_assert_eq(c.status, GW_COUNT_STALE);
    cr_assert_eq(c.viewers, 4);
    cr_assert_eq(c.peak, 8);
}

Test(count, nothing_at_all_is_counting)
{
    gw_count_memory mem = {0};
    gw_count_obs down = {0};

    cr_assert_eq(gw_count_next(&mem, &down).status, GW_COUNT_COUNTING);
}

Test(count, recovery_goes_back_to_live)
{
    gw_count_memory mem = {0};
    gw_count_obs a = redis(1, 1, 0), down = {0}, b = redis(2, 2, 0);

    gw_count_next(&mem, &a);
    cr_assert_eq(gw_count_next(&mem, &down).status, GW_COUNT_STALE);
    cr_assert_eq(gw_count_next(&mem, &b).status, GW_COUNT_LIVE);
}

Test(count, equality_drives_pushes)
{
    gw_count a = {GW_COUNT_LIVE, 1, 2}, b = {GW_COUNT_LIVE, 1, 2}, c = {GW_COUNT_STALE, 1, 2},
             d = {GW_COUNT_LIVE, 1, 3}, e = {GW_COUNT_COUNTING, 5, 5}, f = {GW_COUNT_COUNTING, 0, 0};

    cr_assert(gw_count_equal(&a, &b));
    cr_assert_not(gw_count_equal(&a, &c));
    cr_assert_not(gw_count_equal(&a, &d));
    cr_assert(gw_count_equal(&e, &f), "counting carries no number");
}

Test(count, message_format)
{
    char buf[GW_COUNT_MSG_MAX];
    gw_count live = {GW_COUNT_LIVE, 1234, 2000}, counting = {GW_COUNT_COUNTING, 0, 0};

    cr_assert_gt(gw_count_format(buf, sizeof(buf), 42, &live), 0);
    cr_assert_str_eq(buf, "{\"type\":\"count\",\"stream\":42,\"viewers\":1234,\"peak\":2000,\"status\":\"live\"}");
    cr_assert_gt(gw_count_format(buf, sizeof(buf), 42, &counting), 0);
    cr_assert_str_eq(buf, "{\"type\":\"count\",\"stream\":42,\"status\":\"counting\"}");
    cr_assert_eq(gw_count_format(buf, 10, 42, &live), -1);
}
