/* The Prometheus text of the gateway's counters. */
#include <criterion/criterion.h>
#include <string.h>

#include "metrics.h"

Test(metrics, series_carry_the_counters)
{
    gw_metrics m = {0};
    gw_producer_stats ps = {0};
    gw_reader_stats rs = {0};
    char buf[16384];

    m.connections = 3;
    m.joins = 7;
    m.leaves[VC_LEAVE_HEARTBEAT_TIMEOUT] = 2;
    m.rejects[GW_REJECT_ORIGIN] = 4;
    m.token_rejects[GW_TOKEN_EXPIRED] = 5;
    m.badframes[GW_BADFRAME_TOO_BIG] = 6;
    ps.queue_len = 11;
    ps.delivery_errors = 12;
    rs.reads = 4;
    rs.read_ms_sum = 2000;
    rs.redis_up = 1;
    cr_assert_gt(gw_metrics_format(buf, sizeof(buf), &m, &ps, &rs, "gw-9"), 0);
    cr_expect(strstr(buf, "\nvc_gateway_connections{gateway=\"gw-9\"} 3\n"));
    cr_expect(strstr(buf, "\nvc_gateway_joins_total 7\n"));
    cr_expect(strstr(buf, "\nvc_gateway_leaves_total{reason=\"HEARTBEAT_TIMEOUT\"} 2\n"));
    cr_expect(strstr(buf, "\nvc_gateway_handshake_rejects_total{cause=\"origin\"} 4\n"));
    cr_expect(strstr(buf, "\nvc_gateway_handshake_rejects_total{cause=\"token_expired\"} 5\n"));
    cr_expect(strstr(buf, "\nvc_gateway_bad_frames_total{kind=\"too_big\"} 6\n"));
    cr_expect(strstr(buf, "\nvc_gateway_producer_queue_depth 11\n"));
    cr_expect(strstr(buf, "\nvc_gateway_delivery_errors_total 12\n"));
    cr_expect(strstr(buf, "\nvc_gateway_redis_read_seconds_sum 2.000000\n"));
    cr_expect(strstr(buf, "\nvc_gateway_redis_up 1\n"));
}

Test(metrics, too_small_a_buffer_is_an_error)
{
    gw_metrics m = {0};
    gw_producer_stats ps = {0};
    gw_reader_stats rs = {0};
    char buf[100];

    cr_assert_eq(gw_metrics_format(buf, sizeof(buf), &m, &ps, &rs, "gw"), -1);
}
