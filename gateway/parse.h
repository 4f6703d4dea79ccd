/* parse.h -- pure parsing of what clients send: ids, query values, paths,
 * Origin allow-lists, client messages. No I/O. */
#ifndef GW_PARSE_H
#define GW_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Strict positive decimal id: digits only, no sign, no leading zero, at most
 * INT64_MAX. 0 and sets *id, or -1. */
int gw_parse_id(const char *s, int64_t *id);

/* Same over len bytes (not NUL-terminated). */
int gw_parse_id_n(const char *s, size_t len, int64_t *id);

/* The token of an "Authorization: Bearer <token>" header value, or NULL. */
const char *gw_bearer_token(const char *authorization);

/* 1 when origin is allowed by the comma-separated list (an empty list allows
 * everything; entries compare case-insensitively and exactly, "*" allows all). */
int gw_origin_allowed(const char *allow_list, const char *origin);

/* The requests the gateway answers over HTTP. */
typedef enum {
    GW_ROUTE_NOT_FOUND = 0,
    GW_ROUTE_WS,            /* /ws */
    GW_ROUTE_HEALTHZ,
    GW_ROUTE_READYZ,
    GW_ROUTE_METRICS,
    GW_ROUTE_STREAM,        /* /api/streams/<id> */
    GW_ROUTE_RANKING,       /* /api/ranking */
    GW_ROUTE_BAD_ID,        /* /api/streams/<not an id> */
    GW_ROUTE_CONFIG,        /* /api/config: what the web page needs (gateways, anonymous) */
    GW_ROUTE_CATALOG,       /* /api/catalog: live streams' titles and categories */
    GW_ROUTE_HISTORY,       /* /api/streams/<id>/history: the stream's 5-minute rollups */
} gw_route;

/* Route a request path (no query); sets *id for GW_ROUTE_STREAM and
 * GW_ROUTE_HISTORY. /api/streams/<not an id>[/history] is GW_ROUTE_BAD_ID;
 * /api/streams/<id>/<anything else> is GW_ROUTE_NOT_FOUND. */
gw_route gw_route_path(const char *path, int64_t *id);

/* A query value that must be a decimal integer in min..max: 0 and *out, or
 * -1 (empty, sign, leading zero, other characters, out of range). NULL
 * (parameter absent) gives def. */
int gw_parse_query_int(const char *s, int64_t min, int64_t max, int64_t def, int64_t *out);

/* What a client message is: {"type":"ping"} or anything else. */
typedef enum {
    GW_MSG_PING = 0,
    GW_MSG_NOT_JSON,        /* not a JSON object with a string "type" */
    GW_MSG_UNKNOWN_TYPE,    /* valid JSON, type we do not serve */
} gw_client_msg;

gw_client_msg gw_parse_client_msg(const char *buf, size_t len);

#endif
