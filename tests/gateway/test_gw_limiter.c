/* Per-IP caps: open connections and the handshake token bucket. */
#include <criterion/criterion.h>

#include "limiter.h"

Test(limiter, connection_cap_per_ip)
{
    gw_limiter *l = gw_limiter_new(2, 1000, 100);

    cr_assert_eq(gw_limiter_admit(l, "10.0.0.1", 0), GW_LIMIT_OK);
    cr_assert_eq(gw_limiter_admit(l, "10.0.0.1", 0), GW_LIMIT_OK);
    cr_assert_eq(gw_limiter_check(l, "10.0.0.1", 0), GW_LIMIT_CONNS);
    cr_assert_eq(gw_limiter_admit(l, "10.0.0.1", 0), GW_LIMIT_CONNS);
    cr_assert_eq(gw_limiter_admit(l, "10.0.0.2", 0), GW_LIMIT_OK, "other IPs are not affected");
    gw_limiter_release(l, "10.0.0.1");
    cr_assert_eq(gw_limiter_admit(l, "10.0.0.1", 0), GW_LIMIT_OK);
    gw_limiter_destroy(l);
}

Test(limiter, handshake_rate_bucket_refills)
{
    gw_limiter *l = gw_limiter_new(1000, 2, 100); /* 2/s, burst 4 */
    int ok = 0;

    for (int i = 0; i < 10; i++)
        ok += gw_limiter_admit(l, "10.0.0.1", 1000) == GW_LIMIT_OK;
    cr_assert_eq(ok, 4, "burst is twice the rate");
    cr_assert_eq(gw_limiter_admit(l, "10.0.0.1", 1000), GW_LIMIT_RATE);
    cr_assert_eq(gw_limiter_admit(l, "10.0.0.1", 1500), GW_LIMIT_OK, "half a second refills one token");
    cr_assert_eq(gw_limiter_admit(l, "10.0.0.1", 1500), GW_LIMIT_RATE);
    gw_limiter_destroy(l);
}

Test(limiter, table_is_bounded_and_swept)
{
    gw_limiter *l = gw_limiter_new(10, 10, 2);

    cr_assert_eq(gw_limiter_admit(l, "a", 0), GW_LIMIT_OK);
    cr_assert_eq(gw_limiter_admit(l, "b", 0), GW_LIMIT_OK);
    cr_assert_eq(gw_limiter_admit(l, "c", 0), GW_LIMIT_TABLE_FULL);
    gw_limiter_release(l, "a");
    gw_limiter_sweep(l, 10000);
    cr_assert_eq(gw_limiter_size(l), 1, "an idle IP with a full bucket is forgotten, a connected one kept");
    cr_assert_eq(gw_limiter_admit(l, "c", 10000), GW_LIMIT_OK);
    gw_limiter_destroy(l);
}
