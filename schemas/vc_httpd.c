/* vc_httpd.c -- see vc_httpd.h. */
#include "vc_httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct vc_httpd {
    int fd;
    vc_httpd_handler fn;
    void *ud;
    atomic_int stop;
    pthread_t thread;
    char body[VC_HTTPD_BODY_MAX];
};

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static int write_all(int c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(c, p, n, MSG_NOSIGNAL); /* a client gone early is no SIGPIPE */

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read the request head (bounded, 1 s per read), answer, and return. */
static void serve(vc_httpd *h, int c)
{
    char req[1024], path[256], head[256];
    struct pollfd pfd = {.fd = c, .events = POLLIN};
    const char *ctype = "text/plain; charset=utf-8";
    size_t got = 0, blen = 0;
    int status, hl;

    while (got < sizeof(req) - 1 && poll(&pfd, 1, 1000) == 1) {
        ssize_t n = read(c, req + got, sizeof(req) - 1 - got);

        if (n <= 0)
            break;
        got += (size_t)n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    req[got] = '\0';
    if (strncmp(req, "GET ", 4) != 0) {
        status = 405;
        blen = (size_t)snprintf(h->body, sizeof(h->body), "only GET\n");
    } else {
        size_t n = strcspn(req + 4, " \r\n");

        if (n == 0 || n >= sizeof(path)) {
            status = 400;
            blen = (size_t)snprintf(h->body, sizeof(h->body), "bad request line\n");
        } else {
            memcpy(path, req + 4, n);
            path[n] = '\0';
            status = h->fn(h->ud, path, h->body, sizeof(h->body), &blen, &ctype);
            if (blen > sizeof(h->body))
                blen = sizeof(h->body);
        }
    }
    hl = snprintf(head, sizeof(head),
                  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                  status, status_text(status), ctype, blen);
    if (hl > 0 && (size_t)hl < sizeof(head) && write_all(c, head, (size_t)hl) == 0)
        (void)write_all(c, h->body, blen);
}

static void *httpd_main(void *arg)
{
    vc_httpd *h = arg;

    while (!atomic_load(&h->stop)) {
        struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
        int c;

        if (poll(&pfd, 1, 200) != 1)
            continue;
        c = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        serve(h, c);
        close(c);
    }
    return NULL;
}

vc_httpd *vc_httpd_start(const char *addr, int port, vc_httpd_handler fn, void *ud, char *errstr,
                         size_t errstr_size)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    vc_httpd *h;
    int one = 1;

    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        snprintf(errstr, errstr_size, "http address '%s' is not an IPv4 address", addr);
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    h->fn = fn;
    h->ud = ud;
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->fd < 0 || setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(h->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(h->fd, 16) < 0) {
        snprintf(errstr, errstr_size, "http on %s:%d: %s", addr, port, strerror(errno));
        goto fail;
    }
    if ((errno = pthread_create(&h->thread, NULL, httpd_main, h)) != 0) {
        snprintf(errstr, errstr_size, "http thread: %s", strerror(errno));
        goto fail;
    }
    return h;
fail:
    if (h->fd >= 0)
        close(h->fd);
    free(h);
    return NULL;
}

void vc_httpd_stop(vc_httpd *h)
{
    if (h == NULL)
        return;
    atomic_store(&h->stop, 1);
    pthread_join(h->thread, NULL);
    close(h->fd);
    free(h);
}
