/* http.h -- /metrics and /healthz of vc-sink, served by schemas/vc_httpd on its own
 * thread (every address, one request per connection). */
#ifndef SK_HTTP_H
#define SK_HTTP_H

#include <stddef.h>

#include "metrics.h"
#include "vc_httpd.h"

typedef vc_httpd sk_http;

/* Listen on port (all addresses) and serve m until sk_http_stop(). m must
 * outlive the server. NULL with errstr on failure. */
sk_http *sk_http_start(int port, sk_metrics *m, char *errstr, size_t errstr_size);
void sk_http_stop(sk_http *h); /* joins the thread; accepts NULL */

#endif
