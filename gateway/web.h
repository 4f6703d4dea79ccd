/* web.h -- the viewer web page's static files (HTML, CSS, JavaScript),
 * served by the gateway from the folder --web-root names (empty: none).
 *
 * Only plain names are served: a path of [A-Za-z0-9._-] segments without
 * "..", a leading dot or empty segments; "/" and any path ending in "/"
 * mean its index.html. Regular files up to GW_WEB_FILE_MAX bytes. */
#ifndef GW_WEB_H
#define GW_WEB_H

#include <stddef.h>
#include <stdint.h>

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

/* ---- the page's files, loaded once at start and served from memory ---- */

#define GW_WEB_TOTAL_MAX (4 * 1024 * 1024)  /* every file together; beyond it the gateway refuses to start */
#define GW_WEB_FILES_MAX 256
#define GW_WEB_DEPTH_MAX 8

#define GW_WEB_HEADROOM 64  /* bytes before each body, free for lws_write() (LWS_PRE) */

typedef struct {
    char *path;           /* the request path that names it: "/stream.html", "/img/a.svg" */
    char *body;           /* GW_WEB_HEADROOM bytes after the start of its allocation */
    size_t len;
    int ctype;
    char etag[24];        /* strong validator of the content: "\"<16 hex digits>\"" (quotes included) */
} gw_web_file;

typedef struct gw_web_files {
    gw_web_file *files;   /* sorted by path */
    size_t n;
    size_t total;         /* bytes of every body */
} gw_web_files;

/* Load every servable file under root: names of [A-Za-z0-9._-] not
 * starting with a dot, folders down to GW_WEB_DEPTH_MAX, no symlinks (files
 * or folders), regular files only; anything else is skipped. NULL with
 * errstr when root cannot be read, a file cannot be read or is over
 * GW_WEB_FILE_MAX, or there are more than max_total bytes or
 * GW_WEB_FILES_MAX files. */
gw_web_files *gw_web_files_load(const char *root, size_t max_total, char *errstr, size_t errstr_size);
void gw_web_files_free(gw_web_files *w);   /* accepts NULL */

/* The file a request path names ("/" and "dir/" mean their index.html):
 * GW_WEB_OK and *out, GW_WEB_BAD_PATH, or GW_WEB_NOT_FOUND (also when w is NULL). */
gw_web_rc gw_web_files_find(const gw_web_files *w, const char *path, const gw_web_file **out);

/* 1 when an If-None-Match header value matches etag: "*", or one of its
 * comma-separated entity tags equals etag (weak comparison: a W/ prefix is
 * ignored, as RFC 9110 asks for If-None-Match). */
int gw_web_etag_match(const char *if_none_match, const char *etag);

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

/* ---- the catalog: live streams' titles and categories, for the page ----
 *
 * The platform's master data (sql/migrations/001_master_data.sql) is read
 * from MariaDB by a thread of its own every refresh_ms, off the loop, and
 * kept as one JSON text that GET /api/catalog hands out:
 *   {"categories":[{"id":C,"name":N},...],"streams":[{"stream":S,"title":T,"category":C},...]}
 * Only live streams, at most GW_CATALOG_STREAMS_MAX of them (the page only
 * decorates ranked ids with it). A category name that cannot be read (no
 * SELECT on categories for the database user) leaves "categories" empty. */
#define GW_CATALOG_STREAMS_MAX 10000
#define GW_CATALOG_CATEGORIES_MAX 1000

typedef struct {
    int64_t stream, category;
    const char *title;
} gw_catalog_stream;

typedef struct {
    int64_t id;
    const char *name;
} gw_catalog_category;

/* The catalog JSON of these rows (malloc'd, caller frees; NULL when out of
 * memory). Titles and names that are not valid UTF-8 become "". */
char *gw_catalog_format(const gw_catalog_stream *streams, size_t nstreams, const gw_catalog_category *cats,
                        size_t ncats);

typedef struct gw_catalog gw_catalog;

typedef struct {
    const char *mysql_host;       /* NULL or empty: no catalog */
    int mysql_port;
    const char *mysql_user, *mysql_password, *mysql_db;
    int refresh_ms;
} gw_catalog_conf;

/* Start the catalog thread (the strings are copied). NULL with errstr when
 * the thread cannot start. */
gw_catalog *gw_catalog_new(const gw_catalog_conf *conf, char *errstr, size_t errstr_size);

/* A copy of the latest catalog JSON (caller frees), or NULL when none has
 * been read yet. Any thread. */
char *gw_catalog_json(gw_catalog *c);

/* Stop the thread (waits for a query in flight, bounded by the connection
 * timeouts) and free everything. Accepts NULL. */
void gw_catalog_destroy(gw_catalog *c);

#endif
