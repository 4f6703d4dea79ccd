/* parse.c -- pure parsing of client input (see parse.h). */
#include "parse.h"

#include <jansson.h>
#include <string.h>
#include <strings.h>

int gw_parse_id_n(const char *s, size_t len, int64_t *id)
{
    uint64_t v = 0;

    if (s == NULL || len == 0 || len > 19 || s[0] == '0')
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return -1;
    *id = (int64_t)v;
    return 0;
}

int gw_parse_id(const char *s, int64_t *id)
{
    if (s == NULL)
        return -1;
    return gw_parse_id_n(s, strlen(s), id);
}

const char *gw_bearer_token(const char *authorization)
{
    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    authorization += 7;
    while (*authorization == ' ')
        authorization++;
    return *authorization ? authorization : NULL;
}

int gw_origin_allowed(const char *allow_list, const char *origin)
{
    const char *p = allow_list;
    size_t olen;

    if (allow_list == NULL || !allow_list[0])
        return 1;
    if (origin == NULL)
        return 0;
    olen = strlen(origin);
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);

        while (n && *p == ' ')
            p++, n--;
        while (n && p[n - 1] == ' ')
            n--;
        if ((n == 1 && *p == '*') || (n == olen && strncasecmp(p, origin, n) == 0))
            return 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

gw_route gw_route_path(const char *path, int64_t *id)
{
    static const char streams[] = "/api/streams/";
    int64_t unused;

    if (id == NULL)
        id = &unused;

    if (path == NULL)
        return GW_ROUTE_NOT_FOUND;
    if (!strcmp(path, "/ws"))
        return GW_ROUTE_WS;
    if (!strcmp(path, "/healthz"))
        return GW_ROUTE_HEALTHZ;
    if (!strcmp(path, "/readyz"))
        return GW_ROUTE_READYZ;
    if (!strcmp(path, "/metrics"))
        return GW_ROUTE_METRICS;
    if (!strcmp(path, "/api/ranking"))
        return GW_ROUTE_RANKING;
    if (!strcmp(path, "/api/config"))
        return GW_ROUTE_CONFIG;
    if (!strcmp(path, "/api/catalog"))
        return GW_ROUTE_CATALOG;
    if (!strncmp(path, streams, sizeof(streams) - 1)) {
        const char *rest = path + sizeof(streams) - 1, *slash = strchr(rest, '/');

        if (slash == NULL)
            return gw_parse_id(rest, id) ? GW_ROUTE_BAD_ID : GW_ROUTE_STREAM;
        if (gw_parse_id_n(rest, (size_t)(slash - rest), id))
            return GW_ROUTE_BAD_ID;
        return !strcmp(slash, "/history") ? GW_ROUTE_HISTORY : GW_ROUTE_NOT_FOUND;
    }
    return GW_ROUTE_NOT_FOUND;
}

int gw_parse_query_int(const char *s, int64_t min, int64_t max, int64_t def, int64_t *out)
{
    int64_t v;

    if (s == NULL) {
        *out = def;
        return 0;
    }
    if (!strcmp(s, "0"))
        v = 0;
    else if (gw_parse_id(s, &v))
        return -1;
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

gw_client_msg gw_parse_client_msg(const char *buf, size_t len)
{
    json_error_t err;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
    gw_client_msg m = GW_MSG_NOT_JSON;
    const char *type;

    if (root == NULL)
        return GW_MSG_NOT_JSON;
    if (json_is_object(root) && (type = json_string_value(json_object_get(root, "type"))) != NULL)
        m = strcmp(type, "ping") == 0 ? GW_MSG_PING : GW_MSG_UNKNOWN_TYPE;
    json_decref(root);
    return m;
}
