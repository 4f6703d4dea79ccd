/* web.c -- static files of the viewer web page (see web.h). */
#include "web.h"

#include <errno.h>
#include <fcntl.h>
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
