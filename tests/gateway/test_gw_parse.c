/* Parsing of what clients send: ids, queries, paths, origins, messages. */
#include <criterion/criterion.h>
#include <string.h>

#include "parse.h"

Test(parse, ids_are_strict_positive_decimals)
{
    int64_t id;

    cr_assert_eq(gw_parse_id("1", &id), 0);
    cr_assert_eq(id, 1);
    cr_assert_eq(gw_parse_id("9223372036854775807", &id), 0);
    cr_assert_eq(id, INT64_MAX);
    const char *bad[] = {"", "0", "01", "-1", "+1", "1a", " 1", "1 ", "9223372036854775808", "99999999999999999999", "0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(gw_parse_id(bad[i], &id), -1, "'%s' accepted", bad[i]);
    cr_expect_eq(gw_parse_id(NULL, &id), -1);
}

Test(parse, bearer_tokens)
{
    cr_assert_str_eq(gw_bearer_token("Bearer abc.def"), "abc.def");
    cr_assert_str_eq(gw_bearer_token("bearer  x"), "x");
    cr_assert_null(gw_bearer_token("Basic Zm9v"));
    cr_assert_null(gw_bearer_token("Bearer "));
    cr_assert_null(gw_bearer_token(NULL));
}

Test(parse, origin_allow_list)
{
    cr_assert(gw_origin_allowed("", "https://evil.example"));
    cr_assert(gw_origin_allowed("https://a.example, https://b.example", "https://b.example"));
    cr_assert(gw_origin_allowed("https://a.example", "HTTPS://A.EXAMPLE"));
    cr_assert_not(gw_origin_allowed("https://a.example", "https://a.example.evil"));
    cr_assert_not(gw_origin_allowed("https://a.example", "https://a.exampl"));
    cr_assert_not(gw_origin_allowed("https://a.example", NULL));
    cr_assert(gw_origin_allowed("*", "https://x"));
}

Test(parse, routes)
{
    int64_t id = 0;

    cr_assert_eq(gw_route_path("/ws", &id), GW_ROUTE_WS);
    cr_assert_eq(gw_route_path("/healthz", &id), GW_ROUTE_HEALTHZ);
    cr_assert_eq(gw_route_path("/readyz", &id), GW_ROUTE_READYZ);
    cr_assert_eq(gw_route_path("/metrics", &id), GW_ROUTE_METRICS);
    cr_assert_eq(gw_route_path("/api/ranking", &id), GW_ROUTE_RANKING);
    cr_assert_eq(gw_route_path("/api/config", &id), GW_ROUTE_CONFIG);
    cr_assert_eq(gw_route_path("/api/config/", &id), GW_ROUTE_NOT_FOUND);
    cr_assert_eq(gw_route_path("/api/catalog", &id), GW_ROUTE_CATALOG);
    cr_assert_eq(gw_route_path("/api/streams/77", &id), GW_ROUTE_STREAM);
    cr_assert_eq(id, 77);
    cr_assert_eq(gw_route_path("/api/streams/7x", &id), GW_ROUTE_BAD_ID);
    cr_assert_eq(gw_route_path("/api/streams/", NULL), GW_ROUTE_BAD_ID);
    cr_assert_eq(gw_route_path("/ws/", &id), GW_ROUTE_NOT_FOUND);
    cr_assert_eq(gw_route_path("/", &id), GW_ROUTE_NOT_FOUND);
}

Test(parse, history_routes)
{
    int64_t id = 0;

    cr_assert_eq(gw_route_path("/api/streams/42/history", &id), GW_ROUTE_HISTORY);
    cr_assert_eq(id, 42);
    cr_assert_eq(gw_route_path("/api/streams/9223372036854775807/history", &id), GW_ROUTE_HISTORY);
    cr_assert_eq(id, INT64_MAX);
    cr_assert_eq(gw_route_path("/api/streams/42/history/", &id), GW_ROUTE_NOT_FOUND);
    cr_assert_eq(gw_route_path("/api/streams/42/historyx", &id), GW_ROUTE_NOT_FOUND);
    cr_assert_eq(gw_route_path("/api/streams/42/", &id), GW_ROUTE_NOT_FOUND);
    cr_assert_eq(gw_route_path("/api/streams/42/other", &id), GW_ROUTE_NOT_FOUND);
    cr_assert_eq(gw_route_path("/api/streams/0/history", &id), GW_ROUTE_BAD_ID);
    cr_assert_eq(gw_route_path("/api/streams/x1/history", &id), GW_ROUTE_BAD_ID);
    cr_assert_eq(gw_route_path("/api/streams//history", &id), GW_ROUTE_BAD_ID);
    cr_assert_eq(gw_route_path("/api/streams/9223372036854775808/history", &id), GW_ROUTE_BAD_ID);
    cr_assert_eq(gw_route_path("/api/streams/-1/history", &id), GW_ROUTE_BAD_ID);
    /* the count route is unchanged */
    cr_assert_eq(gw_route_path("/api/streams/43", &id), GW_ROUTE_STREAM);
    cr_assert_eq(id, 43);
}

Test(parse, bounded_query_integers)
{
    int64_t v = -7;

    cr_assert_eq(gw_parse_query_int(NULL, 1, 48, 6, &v), 0);
    cr_assert_eq(v, 6, "absent: the default");
    cr_assert_eq(gw_parse_query_int("1", 1, 48, 6, &v), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(gw_parse_query_int("48", 1, 48, 6, &v), 0);
    cr_assert_eq(v, 48);
    v = -7;
    cr_assert_eq(gw_parse_query_int("0", 1, 48, 6, &v), -1);
    cr_assert_eq(gw_parse_query_int("49", 1, 48, 6, &v), -1);
    cr_assert_eq(gw_parse_query_int("", 1, 48, 6, &v), -1);
    cr_assert_eq(gw_parse_query_int("-1", 1, 48, 6, &v), -1);
    cr_assert_eq(gw_parse_query_int("+3", 1, 48, 6, &v), -1);
    cr_assert_eq(gw_parse_query_int("03", 1, 48, 6, &v), -1);
    cr_assert_eq(gw_parse_query_int("3h", 1, 48, 6, &v), -1);
    cr_assert_eq(gw_parse_query_int("1.5", 1, 48, 6, &v), -1);
    cr_assert_eq(gw_parse_query_int("99999999999999999999", 1, 48, 6, &v), -1);
    cr_assert_eq(v, -7, "untouched on error");
    cr_assert_eq(gw_parse_query_int("0", 0, 10, 5, &v), 0);
    cr_assert_eq(v, 0, "0 where the range allows it");
}

Test(parse, client_messages)
{
    const char *ping = "{\"type\":\"ping\"}";
    const char *other = "{\"type\":\"join\",\"stream\":1}";

    cr_assert_eq(gw_parse_client_msg(ping, strlen(ping)), GW_MSG_PING);
    cr_assert_eq(gw_parse_client_msg(other, strlen(other)), GW_MSG_UNKNOWN_TYPE);
    cr_assert_eq(gw_parse_client_msg("ping", 4), GW_MSG_NOT_JSON);
    cr_assert_eq(gw_parse_client_msg("[1]", 3), GW_MSG_NOT_JSON);
    cr_assert_eq(gw_parse_client_msg("{\"type\":1}", 10), GW_MSG_NOT_JSON);
    cr_assert_eq(gw_parse_client_msg("{\"type\":\"ping\",\"type\":\"x\"}", 27), GW_MSG_NOT_JSON);
}
