/* http.h -- a minimal HTTP/1.0 endpoint for /metrics and /healthz on its own
 * thread (loopback or any address, one request per connection). */
#ifndef SK_HTTP_H
#define SK_HTTP_H

#include <stddef.h>

#include "metrics.h"

typedef struct sk_http sk_http;

/* Listen on port (all addresses) and serve m until sk_http_stop(). m must
 * outlive the server. NULL with errstr on failure. */
sk_http *sk_http_start(int port, sk_metrics *m, char *errstr, size_t errstr_size);
void sk_http_stop(sk_http *h); /* joins the thread; accepts NULL */

#endif
