/* web.c -- static files of the viewer web page (see web.h). */
#include "web.h"
#include "db.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <mysql.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "parse.h"

#define GW_STR_(x) #x
#define GW_STR(x) GW_STR_(x)

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

/* ---- the files in memory ---- */

static int name_ok(const char *name)
{
    if (name[0] == '\0' || name[0] == '.')
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '_' || *p == '-'))
            return 0;
    return 1;
}

static void etag_of(const char *body, size_t len, char out[24])
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)body[i];
        h *= 0x100000001b3ull;
    }
    snprintf(out, 24, "\"%016" PRIx64 "\"", h);
}

/* Add the files of root + rel (rel: "" or "/sub/dir"). 0 or -1 (errstr). */
static int files_walk(gw_web_files *w, const char *root, const char *rel, int depth, size_t max_total,
                      char *errstr, size_t errstr_size)
{
    char dir[PATH_MAX];
    DIR *d;
    struct dirent *e;
    int rc = 0;

    if (snprintf(dir, sizeof(dir), "%s%s", root, rel) >= (int)sizeof(dir)) {
        snprintf(errstr, errstr_size, "web root: path too long: %s%s", root, rel);
        return -1;
    }
    if ((d = opendir(dir)) == NULL) {
        snprintf(errstr, errstr_size, "web root: cannot read the folder %s: %s", dir, strerror(errno));
        return -1;
    }
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char sub[PATH_MAX], full[PATH_MAX];
        struct stat st;

        if (!name_ok(e->d_name))
            continue;   /* hidden names (., ..), odd characters: never served */
        if (snprintf(sub, sizeof(sub), "%s/%s", rel, e->d_name) >= (int)sizeof(sub) ||
            snprintf(full, sizeof(full), "%s%s", root, sub) >= (int)sizeof(full)) {
            snprintf(errstr, errstr_size, "web root: path too long under %s", dir);
            rc = -1;
            break;
        }
        if (lstat(full, &st) != 0) {
            snprintf(errstr, errstr_size, "web root: %s: %s", full, strerror(errno));
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            if (depth < GW_WEB_DEPTH_MAX)
                rc = files_walk(w, root, sub, depth + 1, max_total, errstr, errstr_size);
        } else if (S_ISREG(st.st_mode)) {
            gw_web_file *f;

            if (st.st_size > GW_WEB_FILE_MAX) {
                snprintf(errstr, errstr_size, "web root: %s is %lld bytes, over the bound of %d per file", full,
                         (long long)st.st_size, GW_WEB_FILE_MAX);
                rc = -1;
                break;
            }
            if (w->n == GW_WEB_FILES_MAX) {
                snprintf(errstr, errstr_size, "web root: more than %d files under %s", GW_WEB_FILES_MAX, root);
                rc = -1;
                break;
            }
            f = &w->files[w->n];
            memset(f, 0, sizeof(*f));
            if (gw_web_load(root, sub, &f->body, &f->len, &f->ctype) != GW_WEB_OK || (f->path = strdup(sub)) == NULL) {
                snprintf(errstr, errstr_size, "web root: cannot read %s", full);
                free(f->body);
                rc = -1;
                break;
            }
            {
                char *mem = malloc(GW_WEB_HEADROOM + f->len + 1);

                if (mem == NULL) {
                    snprintf(errstr, errstr_size, "out of memory");
                    free(f->body);
                    free(f->path);
                    rc = -1;
                    break;
                }
                memcpy(mem + GW_WEB_HEADROOM, f->body, f->len + 1);
                free(f->body);
                f->body = mem + GW_WEB_HEADROOM;
            }
            w->n++;
            w->total += f->len;
            if (w->total > max_total) {
                snprintf(errstr, errstr_size,
                         "web root: the files under %s are over %zu bytes together (the bound of what is served "
                         "from memory)", root, max_total);
                rc = -1;
                break;
            }
            etag_of(f->body, f->len, f->etag);
        } /* symlinks, sockets, devices: skipped */
    }
    closedir(d);
    return rc;
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const gw_web_file *)a)->path, ((const gw_web_file *)b)->path);
}

gw_web_files *gw_web_files_load(const char *root, size_t max_total, char *errstr, size_t errstr_size)
{
    gw_web_files *w = calloc(1, sizeof(*w));

    if (w == NULL || (w->files = calloc(GW_WEB_FILES_MAX, sizeof(*w->files))) == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        free(w);
        return NULL;
    }
    if (root == NULL || !*root) {
        snprintf(errstr, errstr_size, "web root: none given");
        gw_web_files_free(w);
        return NULL;
    }
    if (files_walk(w, root, "", 0, max_total, errstr, errstr_size) != 0) {
        gw_web_files_free(w);
        return NULL;
    }
    qsort(w->files, w->n, sizeof(*w->files), cmp_file);
    return w;
}

void gw_web_files_free(gw_web_files *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->files[i].path);
        free(w->files[i].body - GW_WEB_HEADROOM);
    }
    free(w->files);
    free(w);
}

gw_web_rc gw_web_files_find(const gw_web_files *w, const char *path, const gw_web_file **out)
{
    char key[PATH_MAX];
    size_t plen;
    gw_web_file probe, *f;

    *out = NULL;
    if (path == NULL || !path_ok(path))
        return GW_WEB_BAD_PATH;
    if (w == NULL)
        return GW_WEB_NOT_FOUND;
    plen = strlen(path);
    if (snprintf(key, sizeof(key), "%s%s", path, path[plen - 1] == '/' ? "index.html" : "") >= (int)sizeof(key))
        return GW_WEB_NOT_FOUND;
    probe.path = key;
    f = bsearch(&probe, w->files, w->n, sizeof(*w->files), cmp_file);
    if (f == NULL)
        return GW_WEB_NOT_FOUND;
    *out = f;
    return GW_WEB_OK;
}

int gw_web_etag_match(const char *inm, const char *etag)
{
    size_t elen;
    const char *p = inm;

    if (inm == NULL || etag == NULL)
        return 0;
    elen = strlen(etag);
    while (*p) {
        const char *start, *end;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        if (*p == '*')
            return 1;
        if (!strncmp(p, "W/", 2))
            p += 2;
        start = p;
        if (*p == '"') {   /* a quoted tag may hold commas */
            end = strchr(p + 1, '"');
            end = end ? end + 1 : p + strlen(p);
        } else {
            end = p;
            while (*end && *end != ',')
                end++;
        }
        if ((size_t)(end - start) == elen && !strncmp(start, etag, elen))
            return 1;
        p = end;
        while (*p && *p != ',')
            p++;
    }
    return 0;
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

/* ---- the catalog ---- */

static json_t *utf8_or_empty(const char *s)
{
    json_t *j = json_string(s ? s : "");

    return j ? j : json_string("");
}

char *gw_catalog_format(const gw_catalog_stream *streams, size_t nstreams, const gw_catalog_category *cats,
                        size_t ncats)
{
    json_t *root = json_object(), *js = json_array(), *jc = json_array();
    char *out = NULL;
    int bad = root == NULL || js == NULL || jc == NULL;

    for (size_t i = 0; !bad && i < ncats; i++) {
        json_t *o = json_object();

        bad |= o == NULL || json_object_set_new(o, "id", json_integer(cats[i].id)) ||
               json_object_set_new(o, "name", utf8_or_empty(cats[i].name)) || json_array_append_new(jc, o);
    }
    for (size_t i = 0; !bad && i < nstreams; i++) {
        json_t *o = json_object();

        bad |= o == NULL || json_object_set_new(o, "stream", json_integer(streams[i].stream)) ||
               json_object_set_new(o, "title", utf8_or_empty(streams[i].title)) ||
               json_object_set_new(o, "category", json_integer(streams[i].category)) ||
               json_array_append_new(js, o);
    }
    if (!bad)
        bad |= json_object_set(root, "categories", jc) || json_object_set(root, "streams", js);
    if (!bad)
        out = json_dumps(root, JSON_COMPACT);
    json_decref(js);
    json_decref(jc);
    json_decref(root);
    return out;
}

struct gw_catalog {
    gw_catalog_conf conf;         /* its strings are not kept: see dbc */
    gw_db_conf dbc;               /* the database settings, owned */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stop;
    char *json;                   /* latest, under mu */
    MYSQL *db;                    /* thread only */
    int warned;                   /* thread only: categories unreadable, said once */
};

static MYSQL *catalog_connect(gw_catalog *c)
{
    char err[256];
    return gw_db_connect(&c->dbc, 3, 3, NULL, err, sizeof(err));
}

/* One read of the catalog into a new JSON text, or NULL (the connection is
 * dropped on a server error and made again next time). */
static char *catalog_read(gw_catalog *c)
{
    gw_catalog_stream *st = NULL;
    gw_catalog_category *cat = NULL;
    size_t nst = 0, ncat = 0;
    MYSQL_RES *res;
    MYSQL_ROW row;
    char *json = NULL;

    if (c->db == NULL && (c->db = catalog_connect(c)) == NULL)
        return NULL;
    if (mysql_query(c->db, "SELECT stream_id, category_id, title FROM streams WHERE status = 'live' "
                           "ORDER BY stream_id LIMIT " GW_STR(GW_CATALOG_STREAMS_MAX)) != 0 ||
        (res = mysql_store_result(c->db)) == NULL) {
        mysql_close(c->db);
        c->db = NULL;
        return NULL;
    }
    st = calloc(mysql_num_rows(res) + 1, sizeof(*st));
    while (st && (row = mysql_fetch_row(res)) != NULL) {
        if (row[0] == NULL || gw_parse_id(row[0], &st[nst].stream))
            continue;
        st[nst].category = row[1] ? strtoll(row[1], NULL, 10) : 0;
        st[nst].title = row[2] ? strdup(row[2]) : NULL;
        nst++;
    }
    mysql_free_result(res);
    /* The category names need SELECT on categories (vc_gateway_reader has
     * it; a user without it, e.g. the sink's, gets ids only). */
    if (mysql_query(c->db, "SELECT category_id, name FROM categories ORDER BY category_id LIMIT " GW_STR(
                               GW_CATALOG_CATEGORIES_MAX)) == 0 &&
        (res = mysql_store_result(c->db)) != NULL) {
        cat = calloc(mysql_num_rows(res) + 1, sizeof(*cat));
        while (cat && (row = mysql_fetch_row(res)) != NULL) {
            if (row[0] == NULL || gw_parse_id(row[0], &cat[ncat].id))
                continue;
            cat[ncat].name = row[1] ? strdup(row[1]) : NULL;
            ncat++;
        }
        mysql_free_result(res);
    } else if (!c->warned) {
        c->warned = 1;
        fprintf(stderr, "vc-gateway: catalog: category names not readable (%s); the page shows ids\n",
                mysql_error(c->db));
    }
    if (st != NULL)
        json = gw_catalog_format(st, nst, cat, ncat);
    for (size_t i = 0; i < nst; i++)
        free((char *)st[i].title);
    for (size_t i = 0; i < ncat; i++)
        free((char *)cat[i].name);
    free(st);
    free(cat);
    return json;
}

static void *catalog_main(void *arg)
{
    gw_catalog *c = arg;

    mysql_thread_init();
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        char *json;
        struct timespec ts;

        pthread_mutex_unlock(&c->mu);
        json = catalog_read(c);
        pthread_mutex_lock(&c->mu);
        if (json) {
            free(c->json);
            c->json = json;
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += c->conf.refresh_ms / 1000;
        ts.tv_nsec += (long)(c->conf.refresh_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!c->stop && pthread_cond_timedwait(&c->cond, &c->mu, &ts) == 0)
            ;
    }
    pthread_mutex_unlock(&c->mu);
    if (c->db)
        mysql_close(c->db);
    c->db = NULL;
    mysql_thread_end();
    return NULL;
}

gw_catalog *gw_catalog_new(const gw_catalog_conf *conf, char *errstr, size_t errstr_size)
{
    gw_catalog *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    c->conf = *conf;
    c->conf.mysql_host = c->conf.mysql_user = c->conf.mysql_password = c->conf.mysql_db = NULL;
    if (gw_db_conf_copy(&c->dbc, conf->mysql_host, conf->mysql_port, conf->mysql_user, conf->mysql_password,
                        conf->mysql_db) < 0) {
        snprintf(errstr, errstr_size, "out of memory");
        free(c);
        return NULL;
    }
    if (c->conf.refresh_ms < 100)
        c->conf.refresh_ms = 100;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cond, NULL);
    if (pthread_create(&c->thread, NULL, catalog_main, c) != 0) {
        snprintf(errstr, errstr_size, "catalog: cannot start its thread");
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cond);
        gw_db_conf_free(&c->dbc);
        free(c);
        return NULL;
    }
    return c;
}

char *gw_catalog_json(gw_catalog *c)
{
    char *json = NULL;

    if (c == NULL)
        return NULL;
    pthread_mutex_lock(&c->mu);
    if (c->json)
        json = strdup(c->json);
    pthread_mutex_unlock(&c->mu);
    return json;
}

void gw_catalog_destroy(gw_catalog *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cond);
    free(c->json);
    gw_db_conf_free(&c->dbc);
    free(c);
}
