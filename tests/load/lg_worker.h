/* lg_worker.h -- a vc-loadgen worker process: one epoll loop holding
 * thousands of WebSocket viewers, driven by the controller over a pipe.
 *
 * The controller owns the ground truth and decides every open and close;
 * a worker executes them and reports what its connections see. A tab is a
 * numbered slot (slot % nworkers == worker index); each command carries the
 * slot's generation, and every report names it, so the controller can drop
 * reports about a tab's previous life. A connection the server closes (or
 * that breaks) is reconnected by the worker itself, to the next gateway,
 * with a small jittered backoff, as a real client would. */
#ifndef LG_WORKER_H
#define LG_WORKER_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#define LG_GW_MAX 16

enum {
    LG_CMD_OPEN = 1, /* open (or refresh: close the current and open a new) the slot's tab */
    LG_CMD_CLOSE,    /* close the slot's tab (close frame 1000) */
    LG_CMD_QUIT,     /* close everything and exit */
};

typedef struct {
    uint8_t type;
    uint8_t gw;      /* gateway to try first */
    uint16_t pad;
    uint32_t slot;
    uint32_t gen;
    uint32_t pad2;
    int64_t stream;
    int64_t user;
} lg_cmd;

enum {
    LG_REP_EST = 1,  /* the tab's connection is open; value = handshake time in us, gw */
    LG_REP_DOWN,     /* an open connection went away; code = close code, 0 = lost; it reconnects */
    LG_REP_FAIL,     /* an attempt failed; code = HTTP status, or LG_FAIL_*; it retries */
    LG_REP_COUNT,    /* a count was pushed; status = LG_ST_*, value = viewers */
    LG_REP_UNKNOWN,  /* a handshake timed out after its request was sent: the
                      * gateway may or may not have counted it */
};

/* The slot of reports about a connection whose tab was closed during its
 * handshake (it is still accounted for, by stream). */
#define LG_SLOT_NONE UINT32_MAX

enum {
    LG_FAIL_SOCKET = 1,    /* socket/bind/connect error */
    LG_FAIL_REFUSED = 2,   /* connection refused */
    LG_FAIL_EOF = 3,       /* closed during the handshake */
    LG_FAIL_TIMEOUT = 4,   /* handshake not answered in time */
    LG_FAIL_BADHS = 5,     /* 101 without the right Upgrade/Connection/Accept */
    LG_FAIL_PROTO = 6,     /* a frame breaking RFC 6455 or not a count message */
};

enum { LG_ST_NONE = 0, LG_ST_LIVE, LG_ST_SYNCING, LG_ST_STALE, LG_ST_COUNTING, LG_ST_OTHER };

typedef struct {
    uint8_t type;
    uint8_t status;
    uint16_t code;
    uint32_t slot;
    uint32_t gen;
    uint32_t gw;
    int64_t value;
    int64_t stream;  /* the tab's stream */
} lg_rep;

/* A byte queue with a hard cap, for the non-blocking pipes. */
typedef struct {
    char *buf;
    size_t off, len, cap, max;
} lg_outq;

/* Append n bytes; -1 when the queue would exceed its max. */
int lg_outq_push(lg_outq *q, const void *p, size_t n);
/* Write what fd takes. 0 (possibly partial), -1 on a write error. */
int lg_outq_flush(lg_outq *q, int fd);
void lg_outq_free(lg_outq *q);

typedef struct {
    int index, nworkers;
    int cmd_fd, rep_fd;          /* read commands, write reports (owned) */
    int ngw;
    struct sockaddr_in gw[LG_GW_MAX];
    char gw_host[LG_GW_MAX][32]; /* "127.0.0.1:port" for the Host header */
    int nsrc;                    /* source addresses 127.(10+index).x.y to spread over */
    const char *secret;          /* HS256 token secret */
    int64_t token_ttl_s;
    uint32_t slots;              /* total slots over all workers */
    uint64_t seed;
    int handshake_timeout_ms;
    int max_inflight;            /* handshakes in flight at most (0 = no bound); the
                                  * others wait in a FIFO inside the worker */
} lg_worker_conf;

/* The source address k (host order) of worker index. */
uint32_t lg_worker_src(int index, int k);

/* Run until QUIT or the command pipe closes. Returns the exit status. */
int lg_worker_run(const lg_worker_conf *conf);

#endif
