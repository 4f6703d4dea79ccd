/* gw_harness.h -- what the gateway's integration tests share: a real
 * vc-gateway process on the local stack, a minimal raw WebSocket client
 * (it can send the malformed frames a library would refuse to), HTTP GET,
 * and a Kafka reader of the events topic. Every wait is bounded. */
#ifndef GW_HARNESS_H
#define GW_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vc_event.h"

/* The stack's coordinate `name`; fails the test when the environment lacks it. */
const char *gwh_env(const char *name);

typedef struct {
    pid_t pid;
    int port;
    char id[64];
    char log[256];
} gwh_gateway;

/* Start vc-gateway on a free port with the stack's environment plus extra
 * "KEY=VALUE" entries (NULL-terminated, may be NULL); waits for /healthz.
 * The gateway id is unique per call. Fails the test on error. */
void gwh_gateway_start(gwh_gateway *g, const char *const *extra_env);
/* The same on a given port (port 0: a free one). */
void gwh_gateway_start_on(gwh_gateway *g, int port, const char *const *extra_env);
/* Send sig and wait up to timeout_ms for the exit. Returns the wait status,
 * or -1 when it did not exit (it is then killed). */
int gwh_gateway_stop(gwh_gateway *g, int sig, int timeout_ms);

/* GET path; returns the HTTP status (or -1) and the body in body. */
int gwh_http_get(int port, const char *path, char *body, size_t body_size);
/* The same with extra request header lines (each ending in \r\n; may be
 * NULL), and the response's status line and headers in head (may be NULL). */
int gwh_http_get_ex(int port, const char *path, const char *headers, char *head, size_t head_size, char *body,
                    size_t body_size);

/* Open a TCP connection and send the upgrade for target ("/ws?stream=1")
 * with extra header lines (each ending in \r\n; may be NULL). Returns the
 * fd and sets *status to the HTTP status (101 on success); on a non-101
 * answer the fd is closed and -1 returned. */
int gwh_ws_connect(int port, const char *target, const char *headers, int *status);

/* Send one masked frame (fin set unless fin == 0). 0 or -1. */
int gwh_ws_send(int fd, int opcode, const void *data, size_t len, int fin);
int gwh_ws_send_text(int fd, const char *text);

typedef struct {
    int opcode;               /* 1 text, 2 binary, 8 close, 9 ping, 10 pong; -1 timeout, -2 EOF */
    size_t len;
    char data[8192];          /* NUL-terminated */
    int close_code;           /* opcode 8 */
} gwh_frame;

/* Next frame within timeout_ms. Pings are returned, not answered. */
int gwh_ws_recv(int fd, int timeout_ms, gwh_frame *f);
/* Skip frames (pings, counts) until a close or EOF within timeout_ms;
 * returns the close code, 0 for EOF without close, -1 for a timeout. */
int gwh_ws_wait_close(int fd, int timeout_ms, gwh_frame *f);
/* Next text frame whose data contains needle, within timeout_ms; 0 or -1. */
int gwh_ws_wait_text(int fd, const char *needle, int timeout_ms, gwh_frame *f);

/* A token from `vc-gateway token`: for user with ttl seconds and the stack's secret. */
void gwh_token(int64_t user, long ttl, char *out, size_t size);

/* Events of one gateway id, read from the events topic. */
typedef struct gwh_events gwh_events;
gwh_events *gwh_events_new(void);
void gwh_events_destroy(gwh_events *ev);
/* Read until at least n events of gateway_id match (type, and reason unless
 * reason is VC_LEAVE_NONE), or timeout_ms. Returns how many match. */
int gwh_events_wait(gwh_events *ev, const char *gateway_id, vc_event_type type, vc_leave_reason reason, int n,
                    int timeout_ms);
/* The matching events seen so far (valid until the next wait/destroy). */
size_t gwh_events_get(gwh_events *ev, const char *gateway_id, vc_event_type type, const vc_event **out, size_t max);
int32_t gwh_events_partitions(gwh_events *ev);
/* Partition each event came from, parallel to the order of gwh_events_get. */
int32_t gwh_events_partition_of(gwh_events *ev, const vc_event *e);

/* A metric's value from /metrics ("name" or "name{labels}" exactly), or -1. */
double gwh_metric(int port, const char *series);

int64_t gwh_now_ms(void);

/* A plain TCP connection to 127.0.0.1:port, or -1. */
int gwh_tcp_connect(int port);
/* read() with a timeout: bytes read, 0 on EOF, -1 on timeout or error. */
ssize_t gwh_read_some(int fd, void *buf, size_t size, int timeout_ms);

#endif
