/* web.c -- static files of the viewer web page (see web.h). */
#include "web.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const gw_content_types[GW_CT_COUNT] = {
    [GW_CT_JSON] = "application/json",
    [GW_CT_PROMETHEUS] = "text/plain; version=0.0.4",
    [GW_CT_TEXT] = "text/plain; charset=utf-8",
    [GW_CT_HTML] = "text/html; charset=utf-8",
    [GW_CT_CSS] = "text/css; charset=utf-8",
    [GW_CT_JS] = "text/javascript; charset=utf-8",
    [GW_CT_SVG] = "image/svg+xml",
    [GW_CT_ICON] = "image/x-icon",
};

int gw_web_ctype(const char *name)
{
    static const struct {
        const char *ext;
        int ctype;
    } map[] = {{".html", GW_CT_HTML}, {".css", GW_CT_CSS}, {".js", GW_CT_JS},
               {".json", GW_CT_JSON}, {".svg", GW_CT_SVG}, {".ico", GW_CT_ICON}};
    const char *dot = strrchr(name, '.');

    if (dot != NULL && strchr(dot, '/') == NULL)
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
            if (strcmp(dot, map[i].ext) == 0)
                return map[i].ctype;
    return GW_CT_TEXT;
}

/* A request path we may serve: '/' then segments of [A-Za-z0-9._-] that do
 * not start with a dot, separated by single slashes. */
static int path_ok(const char *path)
{
    const char *p = path;

    if (*p++ != '/')
        return 0;
    while (*p) {
        if (*p == '.' || *p == '/')   /* hidden name, "..", or an empty segment */
            return 0;
        while (*p && *p != '/') {
            char c = *p++;

            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-'))
                return 0;
        }
        if (*p == '/')
            p++;
    }
    return 1;
}

gw_web_rc gw_web_load(const char *root, const char *path, char **body, size_t *len, int *ctype)
{
    char file[PATH_MAX];
    size_t plen;
    struct stat st;
    char *buf;
    size_t got = 0;
    int fd, n;

    *body = NULL;
    *len = 0;
    if (root == NULL || !*root)
        return GW_WEB_NOT_FOUND;
    if (path == NULL || !path_ok(path))
        return GW_WEB_BAD_PATH;
    plen = strlen(path);
    n = snprintf(file, sizeof(file), "%s%s%s", root, path, path[plen - 1] == '/' ? "index.html" : "");
    if (n < 0 || (size_t)n >= sizeof(file))
        return GW_WEB_NOT_FOUND;
    fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOMEM || errno == EMFILE || errno == ENFILE ? GW_WEB_ERROR : GW_WEB_NOT_FOUND;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > GW_WEB_FILE_MAX) {
        close(fd);
        return GW_WEB_NOT_FOUND;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return GW_WEB_ERROR;
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != (size_t)st.st_size) {
        free(buf);
        return GW_WEB_ERROR;
    }
    buf[got] = '\0';
    *body = buf;
    *len = got;
    *ctype = gw_web_ctype(file);
    return GW_WEB_OK;
}

static int peer_ok(const char *s, size_t n)
{
    size_t skip = n >= 5 && !strncmp(s, "ws://", 5) ? 5 : n >= 6 && !strncmp(s, "wss://", 6) ? 6 : 0;

    if (skip == 0 || n <= skip || n > 512)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\'' || s[i] == '\\')
            return 0;
    return 1;
}

int gw_web_peers_ok(const char *list)
{
    const char *p = list;

    if (list == NULL || !*list)
        return 1;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);

        if (!peer_ok(p, n))
            return 0;
        if (comma == NULL)
            return 1;
        p = comma + 1;
    }
}

char *gw_web_config_json(const char *gateway_id, int anonymous, int tick_ms, const char *peer_ws)
{
    json_t *root = json_object(), *ws = json_array();
    char *out = NULL;
    int bad = root == NULL || ws == NULL;

    if (!bad && peer_ws && *peer_ws && gw_web_peers_ok(peer_ws)) {
        const char *p = peer_ws;

        for (;;) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);

            bad |= json_array_append_new(ws, json_stringn(p, n)) != 0;
            if (comma == NULL)
                break;
            p = comma + 1;
        }
    }
    if (!bad) {
        bad |= json_object_set_new(root, "gateway", json_string(gateway_id ? gateway_id : "")) != 0;
        bad |= json_object_set_new(root, "anonymous", json_boolean(anonymous)) != 0;
        bad |= json_object_set_new(root, "tick_ms", json_integer(tick_ms)) != 0;
        bad |= json_object_set(root, "ws", ws) != 0;
    }
    if (!bad)
        out = json_dumps(root, JSON_COMPACT);
    json_decref(ws);
    json_decref(root);
    return out;
}
