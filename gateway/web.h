/* web.h -- the viewer web page's static files (HTML, CSS, JavaScript),
 * served by the gateway from the folder --web-root names (empty: none).
 *
 * Only plain names are served: a path of [A-Za-z0-9._-] segments without
 * "..", a leading dot or empty segments; "/" and any path ending in "/"
 * mean its index.html. Regular files up to GW_WEB_FILE_MAX bytes. */
#ifndef GW_WEB_H
#define GW_WEB_H

#include <stddef.h>

#define GW_WEB_FILE_MAX (1024 * 1024)

/* Content types of HTTP answers (gw_session.ctype indexes this table). */
enum {
    GW_CT_JSON = 0,
    GW_CT_PROMETHEUS,
    GW_CT_TEXT,
    GW_CT_HTML,
    GW_CT_CSS,
    GW_CT_JS,
    GW_CT_SVG,
    GW_CT_ICON,
    GW_CT_COUNT
};
extern const char *const gw_content_types[GW_CT_COUNT];

typedef enum {
    GW_WEB_OK = 0,
    GW_WEB_NOT_FOUND,   /* no such file, not a regular file, too large, or no web root */
    GW_WEB_BAD_PATH,    /* a path we never serve (.., hidden names, odd characters) */
    GW_WEB_ERROR,       /* out of memory or a read error */
} gw_web_rc;

/* The content type index for a file name, by its extension (GW_CT_TEXT when unknown). */
int gw_web_ctype(const char *name);

/* Load the file that request path names under root into *body (malloc'd,
 * the caller frees) of *len bytes, with its content type in *ctype. */
gw_web_rc gw_web_load(const char *root, const char *path, char **body, size_t *len, int *ctype);

/* 1 when list is empty or a comma-separated list of ws:// or wss:// URLs
 * (each 6..512 bytes of printable ASCII without spaces, quotes or
 * backslashes), else 0. */
int gw_web_peers_ok(const char *list);

/* The JSON of GET /api/config (malloc'd, NULL when out of memory):
 * {"gateway":ID,"anonymous":BOOL,"tick_ms":N,"ws":[URL,...]}: the page
 * connects to its own origin first and, when that socket is lost, to the
 * other URLs of "ws" (empty: its own origin only). */
char *gw_web_config_json(const char *gateway_id, int anonymous, int tick_ms, const char *peer_ws);

#endif
