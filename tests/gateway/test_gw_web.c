/* The web page's static files: what is served, what never is. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "web.h"

static char root[64];

static void write_file(const char *rel, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", root, rel);
    f = fopen(path, "w");
    cr_assert_not_null(f, "cannot create %s", path);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    char path[256];

    snprintf(root, sizeof(root), "/tmp/vc-web-test-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    snprintf(path, sizeof(path), "%s/css", root);
    cr_assert_eq(mkdir(path, 0755), 0);
    write_file("index.html", "<!doctype html><title>board</title>");
    write_file("app.js", "console.log(1);");
    write_file("css/site.css", "body{}");
    write_file(".secret", "no");
}

static void teardown(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(web, .init = setup, .fini = teardown);

static gw_web_rc load(const char *path, char **body, size_t *len, int *ctype)
{
    return gw_web_load(root, path, body, len, ctype);
}

Test(web, index_and_typed_files)
{
    char *body;
    size_t len;
    int ctype = -1;

    cr_assert_eq(load("/", &body, &len, &ctype), GW_WEB_OK);
    cr_assert_str_eq(body, "<!doctype html><title>board</title>");
    cr_assert_eq(len, strlen(body));
    cr_assert_eq(ctype, GW_CT_HTML);
    free(body);
    cr_assert_eq(load("/app.js", &body, &len, &ctype), GW_WEB_OK);
    cr_assert_eq(ctype, GW_CT_JS);
    free(body);
    cr_assert_eq(load("/css/site.css", &body, &len, &ctype), GW_WEB_OK);
    cr_assert_eq(ctype, GW_CT_CSS);
    cr_assert_str_eq(gw_content_types[ctype], "text/css; charset=utf-8");
    free(body);
}

Test(web, never_outside_the_root_nor_hidden)
{
    const char *bad[] = {"/../etc/passwd", "/css/../index.html", "/.secret", "//index.html", "/css//site.css",
                         "index.html", "/a b", "/%2e%2e/x", "/css/.", ""};
    char *body;
    size_t len;
    int ctype;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(load(bad[i], &body, &len, &ctype), GW_WEB_BAD_PATH, "'%s' not refused", bad[i]);
        cr_expect_null(body);
    }
}

Test(web, missing_files_folders_and_no_root)
{
    char *body;
    size_t len;
    int ctype;

    cr_expect_eq(load("/nope.html", &body, &len, &ctype), GW_WEB_NOT_FOUND);
    cr_expect_eq(load("/css", &body, &len, &ctype), GW_WEB_NOT_FOUND, "a folder is not a file");
    cr_expect_eq(load("/css/", &body, &len, &ctype), GW_WEB_NOT_FOUND, "no index.html in css/");
    cr_expect_eq(gw_web_load("", "/", &body, &len, &ctype), GW_WEB_NOT_FOUND);
    cr_expect_eq(gw_web_load(NULL, "/", &body, &len, &ctype), GW_WEB_NOT_FOUND);
}

Test(web, symlinks_are_not_followed)
{
    char link[256];

    snprintf(link, sizeof(link), "%s/passwd.html", root);
    cr_assert_eq(symlink("/etc/passwd", link), 0);
    char *body;
    size_t len;
    int ctype;
    cr_expect_eq(load("/passwd.html", &body, &len, &ctype), GW_WEB_NOT_FOUND);
}

Test(web, content_types_by_extension)
{
    cr_expect_eq(gw_web_ctype("a.html"), GW_CT_HTML);
    cr_expect_eq(gw_web_ctype("x/a.svg"), GW_CT_SVG);
    cr_expect_eq(gw_web_ctype("favicon.ico"), GW_CT_ICON);
    cr_expect_eq(gw_web_ctype("README"), GW_CT_TEXT);
    cr_expect_eq(gw_web_ctype("v1.0/README"), GW_CT_TEXT);
}

Test(web, peer_lists)
{
    cr_expect(gw_web_peers_ok(""));
    cr_expect(gw_web_peers_ok(NULL));
    cr_expect(gw_web_peers_ok("ws://127.0.0.1:20020/ws"));
    cr_expect(gw_web_peers_ok("ws://127.0.0.1:20020/ws,wss://gw.example.com/ws"));
    cr_expect_not(gw_web_peers_ok("http://127.0.0.1:20020/ws"), "not a WebSocket URL");
    cr_expect_not(gw_web_peers_ok("ws://"), "no host");
    cr_expect_not(gw_web_peers_ok("ws://a/ws,"), "empty entry");
    cr_expect_not(gw_web_peers_ok(",ws://a/ws"), "empty entry");
    cr_expect_not(gw_web_peers_ok("ws://a/ws, ws://b/ws"), "space");
    cr_expect_not(gw_web_peers_ok("ws://a/\"ws"), "quote");
    cr_expect_not(gw_web_peers_ok("ws://a/\\ws"), "backslash");
}

Test(web, config_json)
{
    char *j = gw_web_config_json("gw-1", 1, 1000, "ws://127.0.0.1:20020/ws,ws://127.0.0.1:20021/ws");

    cr_assert_not_null(j);
    cr_expect_str_eq(j, "{\"gateway\":\"gw-1\",\"anonymous\":true,\"tick_ms\":1000,"
                        "\"ws\":[\"ws://127.0.0.1:20020/ws\",\"ws://127.0.0.1:20021/ws\"]}");
    free(j);
    j = gw_web_config_json("gw-0", 0, 250, "");
    cr_assert_not_null(j);
    cr_expect_str_eq(j, "{\"gateway\":\"gw-0\",\"anonymous\":false,\"tick_ms\":250,\"ws\":[]}");
    free(j);
    j = gw_web_config_json("gw-0", 0, 250, "ftp://x");
    cr_assert_not_null(j);
    cr_expect_str_eq(j, "{\"gateway\":\"gw-0\",\"anonymous\":false,\"tick_ms\":250,\"ws\":[]}",
                     "an invalid list is never handed out");
    free(j);
}

Test(web, catalog_json)
{
    gw_catalog_stream st[] = {{1000, 2, "Late night \"talk\""}, {1001, 3, NULL}, {1002, 1, "bad \xff utf-8"}};
    gw_catalog_category cat[] = {{1, "Just Chatting"}, {2, "Games"}};
    char *j = gw_catalog_format(st, 3, cat, 2);

    cr_assert_not_null(j);
    cr_expect_str_eq(j, "{\"categories\":[{\"id\":1,\"name\":\"Just Chatting\"},{\"id\":2,\"name\":\"Games\"}],"
                        "\"streams\":[{\"stream\":1000,\"title\":\"Late night \\\"talk\\\"\",\"category\":2},"
                        "{\"stream\":1001,\"title\":\"\",\"category\":3},"
                        "{\"stream\":1002,\"title\":\"\",\"category\":1}]}");
    free(j);
    j = gw_catalog_format(NULL, 0, NULL, 0);
    cr_assert_not_null(j);
    cr_expect_str_eq(j, "{\"categories\":[],\"streams\":[]}");
    free(j);
}

Test(web, catalog_without_database_is_empty_then_stops)
{
    /* Nothing listens on port 1: the thread keeps trying, the catalog stays
     * unknown, and destroying it does not wait for anything. */
    gw_catalog_conf conf = {"127.0.0.1", 1, "u", "p", "vc", 100};
    char err[128];
    gw_catalog *c = gw_catalog_new(&conf, err, sizeof(err));

    cr_assert_not_null(c, "%s", err);
    usleep(300 * 1000);
    cr_expect_null(gw_catalog_json(c));
    gw_catalog_destroy(c);
    gw_catalog_destroy(NULL);
}

/* ---- the files in memory ---- */

Test(web, files_are_loaded_once_and_served_from_memory)
{
    char err[256], path[256], link[256];
    gw_web_files *w;
    const gw_web_file *f, *g;

    snprintf(link, sizeof(link), "%s/passwd.html", root);
    cr_assert_eq(symlink("/etc/passwd", link), 0);
    snprintf(link, sizeof(link), "%s/etc", root);
    cr_assert_eq(symlink("/etc", link), 0);
    write_file("bad name.html", "odd characters: never served");
    w = gw_web_files_load(root, GW_WEB_TOTAL_MAX, err, sizeof(err));
    cr_assert_not_null(w, "%s", err);
    cr_expect_eq(w->n, 3, "index.html, app.js, css/site.css; no hidden, odd or symlinked names: %zu", w->n);
    cr_expect_eq(w->total, strlen("<!doctype html><title>board</title>") + strlen("console.log(1);") + strlen("body{}"));

    cr_assert_eq(gw_web_files_find(w, "/", &f), GW_WEB_OK);
    cr_expect_str_eq(f->path, "/index.html");
    cr_expect_eq(f->len, strlen("<!doctype html><title>board</title>"));
    cr_expect_eq(memcmp(f->body, "<!doctype html><title>board</title>", f->len), 0);
    cr_expect_eq(f->ctype, GW_CT_HTML);
    cr_expect_eq(strlen(f->etag), 18, "a quoted 64-bit hash: %s", f->etag);
    cr_expect_eq(f->etag[0], '"');
    cr_expect_eq(gw_web_files_find(w, "/index.html", &g), GW_WEB_OK);
    cr_expect_eq(f, g, "/ is /index.html");
    cr_assert_eq(gw_web_files_find(w, "/css/site.css", &g), GW_WEB_OK);
    cr_expect_eq(g->ctype, GW_CT_CSS);
    cr_expect_str_neq(g->etag, f->etag, "different content, different tag");

    /* The files changing on disk after the start does not change what is served. */
    write_file("app.js", "console.log(2); // changed");
    cr_assert_eq(gw_web_files_find(w, "/app.js", &g), GW_WEB_OK);
    cr_expect_eq(g->len, strlen("console.log(1);"));
    cr_expect_eq(memcmp(g->body, "console.log(1);", g->len), 0);
    snprintf(path, sizeof(path), "%s", g->etag);

    cr_expect_eq(gw_web_files_find(w, "/nope.html", &g), GW_WEB_NOT_FOUND);
    cr_expect_null(g);
    cr_expect_eq(gw_web_files_find(w, "/css", &g), GW_WEB_NOT_FOUND);
    cr_expect_eq(gw_web_files_find(w, "/css/", &g), GW_WEB_NOT_FOUND);
    cr_expect_eq(gw_web_files_find(w, "/passwd.html", &g), GW_WEB_NOT_FOUND);
    cr_expect_eq(gw_web_files_find(w, "/etc/passwd", &g), GW_WEB_NOT_FOUND);
    cr_expect_eq(gw_web_files_find(w, "/.secret", &g), GW_WEB_BAD_PATH);
    cr_expect_eq(gw_web_files_find(w, "/../etc/passwd", &g), GW_WEB_BAD_PATH);
    cr_expect_eq(gw_web_files_find(NULL, "/", &g), GW_WEB_NOT_FOUND);
    gw_web_files_free(w);
    gw_web_files_free(NULL);

    /* A changed file gets another tag at the next start. */
    w = gw_web_files_load(root, GW_WEB_TOTAL_MAX, err, sizeof(err));
    cr_assert_not_null(w, "%s", err);
    cr_assert_eq(gw_web_files_find(w, "/app.js", &g), GW_WEB_OK);
    cr_expect_eq(g->len, strlen("console.log(2); // changed"));
    cr_expect_str_neq(g->etag, path, "the old tag no longer matches");
    gw_web_files_free(w);
}

Test(web, files_over_the_bound_refuse_to_load)
{
    char err[256];
    size_t total = strlen("<!doctype html><title>board</title>") + strlen("console.log(1);") + strlen("body{}");
    gw_web_files *w;

    w = gw_web_files_load(root, total, err, sizeof(err));
    cr_assert_not_null(w, "exactly the bound is fine: %s", err);
    gw_web_files_free(w);
    w = gw_web_files_load(root, total - 1, err, sizeof(err));
    cr_assert_null(w);
    cr_expect(strstr(err, "over") && strstr(err, root), "a clear error: %s", err);

    w = gw_web_files_load("/nonexistent/vc-web", GW_WEB_TOTAL_MAX, err, sizeof(err));
    cr_assert_null(w);
    cr_expect(strstr(err, "/nonexistent/vc-web"), "names the folder: %s", err);

    {
        char path[256];
        FILE *f;

        snprintf(path, sizeof(path), "%s/big.js", root);
        f = fopen(path, "w");
        cr_assert_not_null(f);
        cr_assert_eq(ftruncate(fileno(f), GW_WEB_FILE_MAX + 1), 0);
        fclose(f);
        w = gw_web_files_load(root, GW_WEB_TOTAL_MAX, err, sizeof(err));
        cr_assert_null(w);
        cr_expect(strstr(err, "big.js"), "names the file: %s", err);
    }
}

Test(web, if_none_match)
{
    const char *tag = "\"0123456789abcdef\"";

    cr_expect(gw_web_etag_match("\"0123456789abcdef\"", tag));
    cr_expect(gw_web_etag_match("W/\"0123456789abcdef\"", tag), "weak comparison");
    cr_expect(gw_web_etag_match("\"x\", \"0123456789abcdef\"", tag));
    cr_expect(gw_web_etag_match("\"a,b\",\"0123456789abcdef\"", tag), "a comma inside a quoted tag");
    cr_expect(gw_web_etag_match("*", tag));
    cr_expect(!gw_web_etag_match("\"0123456789abcdee\"", tag));
    cr_expect(!gw_web_etag_match("0123456789abcdef", tag), "unquoted is another tag");
    cr_expect(!gw_web_etag_match("\"0123456789abcdef", tag));
    cr_expect(!gw_web_etag_match("", tag));
    cr_expect(!gw_web_etag_match(NULL, tag));
    cr_expect(!gw_web_etag_match("\"a,\"0123456789abcdef\"", tag));
}
