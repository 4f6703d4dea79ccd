/* vc_httpd.h -- the small HTTP server the aggregator and the sink use
 * for /metrics and /healthz: its own thread, one request per connection,
 * bounded request and response sizes. (The gateway serves HTTP through
 * libwebsockets on its event loop instead.) It answers HTTP/1.1 with
 * Connection: close. Shared code, written once. */
#ifndef VC_HTTPD_H
#define VC_HTTPD_H

#include <stddef.h>

#define VC_HTTPD_BODY_MAX (256 * 1024)

typedef struct vc_httpd vc_httpd;

/* Answer one GET: write at most body_size bytes into body, set *body_len and
 * *content_type (a static string), return the HTTP status (200, 404, 503,
 * ...). Called on the server's thread. */
typedef int (*vc_httpd_handler)(void *ud, const char *path, char *body, size_t body_size,
                                size_t *body_len, const char **content_type);

/* Listen on addr:port ("0.0.0.0" for every address, "127.0.0.1" for
 * loopback only) and serve until vc_httpd_stop(). ud is passed to fn and must
 * outlive the server. NULL with errstr on failure (e.g. the port is taken). */
vc_httpd *vc_httpd_start(const char *addr, int port, vc_httpd_handler fn, void *ud, char *errstr,
                         size_t errstr_size);
/* Stop, join the thread and close; accepts NULL. */
void vc_httpd_stop(vc_httpd *h);

#endif
