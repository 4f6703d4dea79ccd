/* lg_worker.c -- the epoll loop of a vc-loadgen worker (see lg_worker.h). */
#include "lg_worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <jwt.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lg_model.h"
#include "lg_ws.h"

#define IN_MAX 2048
#define OUT_MAX 1024
#define CLOSE_GRACE_MS 3000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 4000

enum { S_CONNECTING, S_HANDSHAKE, S_OPEN, S_CLOSING };

typedef struct lg_sock lg_sock;

typedef struct {
    lg_sock *s;        /* the current attempt or open connection */
    uint32_t gen;
    int64_t stream, user;
    char *token;       /* malloc'd JWT */
    int gw;            /* gateway of the next attempt */
    int want;          /* the controller wants it open */
    int fails;         /* consecutive failures, for the backoff */
    int64_t retry_at;  /* ms; 0 = nothing scheduled */
    int established;
    int queued;        /* waiting in the worker's FIFO for a handshake slot */
    uint32_t slot;
} lg_tab;

struct lg_sock {
    int fd, state, gw;
    lg_tab *tab;       /* NULL once the controller closed the tab */
    int64_t stream;    /* the stream it asked for */
    int dead;          /* closed; freed after the current epoll batch */
    int on_open;       /* on the open list (no deadline), else on the timed list */
    int inflight;      /* counted in the worker's handshakes in flight */
    lg_sock *prev, *next;
    int64_t t0_us, deadline_ms;
    int pollout;
    char key[LG_WS_KEY_LEN + 1];
    size_t inlen, outlen, outoff;
    uint8_t in[IN_MAX];
    uint8_t out[OUT_MAX];
};

typedef struct {
    const lg_worker_conf *c;
    int ep;
    lg_tab *tabs;
    uint32_t ntabs;
    lg_sock *socks;     /* connecting, handshaking or closing: they have a deadline */
    lg_sock *open_socks; /* open: no deadline, so the timers never walk them */
    size_t nsocks;
    int any_retry;      /* some tab may have a retry scheduled */
    lg_sock *graveyard; /* closed socks, freed after the epoll batch (linked by next) */
    lg_rng rng;
    uint32_t src_rr;
    lg_outq rep;
    int rep_pollout;
    char cmdbuf[sizeof(lg_cmd) * 256];
    size_t cmdlen;
    int quit;
    int inflight;        /* handshakes in flight (connecting or handshaking) */
    uint32_t *waitq;     /* FIFO of tab indexes waiting for a handshake slot */
    size_t wq_head, wq_len;
} worker;

/* ---- the byte queue ---- */

int lg_outq_push(lg_outq *q, const void *p, size_t n)
{
    if (q->off > 0 && q->off == q->len)
        q->off = q->len = 0;
    if (q->len + n > q->cap) {
        size_t live = q->len - q->off, cap = q->cap ? q->cap : 65536;

        if (q->off) {
            memmove(q->buf, q->buf + q->off, live);
            q->len = live;
            q->off = 0;
        }
        while (cap < q->len + n)
            cap *= 2;
        if (cap > q->max)
            return -1;
        if (cap > q->cap) {
            char *b = realloc(q->buf, cap);

            if (b == NULL)
                return -1;
            q->buf = b;
            q->cap = cap;
        }
    }
    memcpy(q->buf + q->len, p, n);
    q->len += n;
    return 0;
}

int lg_outq_flush(lg_outq *q, int fd)
{
    while (q->off < q->len) {
        ssize_t n = write(fd, q->buf + q->off, q->len - q->off);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return -1;
        }
        q->off += (size_t)n;
    }
    q->off = q->len = 0;
    return 0;
}

void lg_outq_free(lg_outq *q)
{
    free(q->buf);
    memset(q, 0, sizeof(*q));
}

/* ---- helpers ---- */

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t now_ms(void)
{
    return now_us() / 1000;
}

uint32_t lg_worker_src(int index, int k)
{
    return (127u << 24) | ((uint32_t)(10 + index) << 16) | ((uint32_t)(k / 250) << 8) | (uint32_t)(1 + k % 250);
}

static void report_raw(worker *w, int type, uint32_t slot, uint32_t gen, int64_t stream, int gw, int status,
                       int code, int64_t value)
{
    lg_rep r;

    memset(&r, 0, sizeof(r));
    r.type = (uint8_t)type;
    r.status = (uint8_t)status;
    r.code = (uint16_t)code;
    r.slot = slot;
    r.gen = gen;
    r.gw = (uint32_t)gw;
    r.value = value;
    r.stream = stream;
    if (lg_outq_push(&w->rep, &r, sizeof(r))) {
        fprintf(stderr, "vc-loadgen worker %d: report queue over its bound (controller stalled)\n", w->c->index);
        w->quit = 2;
    }
}

static void report(worker *w, int type, const lg_tab *t, int gw, int status, int code, int64_t value)
{
    report_raw(w, type, t->slot, t->gen, t->stream, gw, status, code, value);
}

static char *mint(const worker *w, int64_t user)
{
    jwt_t *jwt = NULL;
    char sub[24], *tok = NULL;
    int64_t now = (int64_t)time(NULL);

    if (jwt_new(&jwt))
        return NULL;
    snprintf(sub, sizeof(sub), "%lld", (long long)user);
    if (!jwt_add_grant(jwt, "sub", sub) && !jwt_add_grant_int(jwt, "iat", (long)now) &&
        !jwt_add_grant_int(jwt, "exp", (long)(now + w->c->token_ttl_s)) &&
        !jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)w->c->secret, (int)strlen(w->c->secret)))
        tok = jwt_encode_str(jwt);
    jwt_free(jwt);
    return tok;
}

static void sock_events(worker *w, lg_sock *s, int pollout)
{
    struct epoll_event ev = {.events = EPOLLIN | (pollout ? EPOLLOUT : 0), .data.ptr = s};

    if (s->pollout == pollout)
        return;
    s->pollout = pollout;
    epoll_ctl(w->ep, EPOLL_CTL_MOD, s->fd, &ev);
}

static void sock_unlink(worker *w, lg_sock *s)
{
    lg_sock **head = s->on_open ? &w->open_socks : &w->socks;

    if (s->prev)
        s->prev->next = s->next;
    else
        *head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

static void sock_link(worker *w, lg_sock *s, int on_open)
{
    lg_sock **head = on_open ? &w->open_socks : &w->socks;

    s->on_open = on_open;
    s->prev = NULL;
    s->next = *head;
    if (*head)
        (*head)->prev = s;
    *head = s;
}

/* Close s at once; its memory is freed after the current epoll batch, whose
 * later events may still point at it (a command or a timer can close any
 * connection). */
static void sock_done_inflight(worker *w, lg_sock *s)
{
    if (s->inflight) {
        s->inflight = 0;
        w->inflight--;
    }
}

static void sock_free(worker *w, lg_sock *s)
{
    sock_done_inflight(w, s);
    if (s->tab && s->tab->s == s)
        s->tab->s = NULL;
    s->tab = NULL;
    epoll_ctl(w->ep, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    s->fd = -1;
    sock_unlink(w, s);
    w->nsocks--;
    s->dead = 1;
    s->next = w->graveyard;
    w->graveyard = s;
}

static void bury(worker *w)
{
    while (w->graveyard) {
        lg_sock *s = w->graveyard;

        w->graveyard = s->next;
        free(s);
    }
}

static void schedule_retry(worker *w, lg_tab *t, int from_gw)
{
    int shift = t->fails < 6 ? t->fails : 6;
    int64_t backoff = (int64_t)BACKOFF_MIN_MS << shift;

    if (backoff > BACKOFF_MAX_MS)
        backoff = BACKOFF_MAX_MS;
    backoff = backoff / 2 + (int64_t)(lg_rng_unit(&w->rng) * (double)backoff);
    t->fails++;
    t->gw = (from_gw + 1) % w->c->ngw;
    t->retry_at = now_ms() + backoff;
    w->any_retry = 1;
}

/* The connection of a wanted tab failed or went away: report, retry. */
static void sock_fail(worker *w, lg_sock *s, int code)
{
    lg_tab *t = s->tab;

    if (t && t->s == s) {
        if (t->established)
            report(w, LG_REP_DOWN, t, s->gw, 0, code, 0);
        else
            report(w, LG_REP_FAIL, t, s->gw, 0, code, 0);
        t->established = 0;
        t->s = NULL;
        if (t->want)
            schedule_retry(w, t, s->gw);
    }
    sock_free(w, s);
}

static int sock_flush(worker *w, lg_sock *s)
{
    while (s->outoff < s->outlen) {
        ssize_t n = send(s->fd, s->out + s->outoff, s->outlen - s->outoff, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                sock_events(w, s, 1);
                return 0;
            }
            return -1;
        }
        s->outoff += (size_t)n;
    }
    s->outoff = s->outlen = 0;
    sock_events(w, s, 0);
    return 0;
}

static int sock_queue_frame(worker *w, lg_sock *s, int opcode, const void *payload, size_t len)
{
    uint8_t mask[4];
    uint64_t m = lg_rng_next(&w->rng);
    int n;

    memcpy(mask, &m, 4);
    if (s->outoff && s->outoff == s->outlen)
        s->outoff = s->outlen = 0;
    n = lg_ws_frame(s->out + s->outlen, sizeof(s->out) - s->outlen, opcode, payload, len, mask);
    if (n < 0)
        return -1;
    s->outlen += (size_t)n;
    return 0;
}

static void tab_connect(worker *w, lg_tab *t)
{
    const lg_worker_conf *c = w->c;
    lg_sock *s;
    struct sockaddr_in src = {.sin_family = AF_INET};
    struct epoll_event ev;
    uint8_t nonce[16];
    char path[4400];
    int one = 1, n;

    t->retry_at = 0;
    if (c->max_inflight > 0 && w->inflight >= c->max_inflight) {
        /* Wait for a handshake slot (FIFO): overload queues here, not as
         * SYNs dropped by full accept queues and retransmitted for seconds. */
        if (!t->queued) {
            t->queued = 1;
            w->waitq[(w->wq_head + w->wq_len++) % w->ntabs] = (uint32_t)(t - w->tabs);
        }
        return;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        report(w, LG_REP_FAIL, t, t->gw, 0, LG_FAIL_SOCKET, 0);
        schedule_retry(w, t, t->gw);
        return;
    }
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        free(s);
        report(w, LG_REP_FAIL, t, t->gw, 0, LG_FAIL_SOCKET, 0);
        schedule_retry(w, t, t->gw);
        return;
    }
    s->gw = t->gw;
    s->tab = t;
    s->stream = t->stream;
    s->state = S_CONNECTING;
    s->t0_us = now_us();
    s->deadline_ms = s->t0_us / 1000 + c->handshake_timeout_ms;
    s->inflight = 1;
    w->inflight++;
    sock_link(w, s, 0);
    w->nsocks++;
    t->s = s;
    setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    src.sin_addr.s_addr = htonl(lg_worker_src(c->index, (int)(w->src_rr++ % (uint32_t)c->nsrc)));
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = s;
    s->pollout = 1;
    if (bind(s->fd, (struct sockaddr *)&src, sizeof(src)) ||
        epoll_ctl(w->ep, EPOLL_CTL_ADD, s->fd, &ev)) {
        sock_fail(w, s, LG_FAIL_SOCKET);
        return;
    }
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = lg_rng_next(&w->rng);

        memcpy(nonce + i, &r, 8);
    }
    lg_ws_make_key(nonce, s->key);
    snprintf(path, sizeof(path), "/ws?stream=%lld&token=%s", (long long)t->stream, t->token ? t->token : "");
    n = lg_ws_request((char *)s->out, sizeof(s->out), c->gw_host[s->gw], path, s->key);
    if (n < 0) {
        sock_fail(w, s, LG_FAIL_SOCKET);
        return;
    }
    s->outlen = (size_t)n;
    if (connect(s->fd, (struct sockaddr *)&c->gw[s->gw], sizeof(c->gw[s->gw])) && errno != EINPROGRESS)
        sock_fail(w, s, errno == ECONNREFUSED ? LG_FAIL_REFUSED : LG_FAIL_SOCKET);
}

/* The controller closes the tab's connection: a close frame (1000) when it
 * is open, else drop the attempt. The tab itself is free at once. */
static void tab_detach(worker *w, lg_tab *t)
{
    lg_sock *s = t->s;

    t->s = NULL;
    t->established = 0;
    t->retry_at = 0;
    t->fails = 0;
    if (s == NULL)
        return;
    s->tab = NULL;
    if (s->state == S_OPEN) {
        static const uint8_t bye[] = {0x03, 0xe8, 'b', 'y', 'e'};

        if (sock_queue_frame(w, s, LG_WS_CLOSE, bye, sizeof(bye)) || sock_flush(w, s)) {
            sock_free(w, s);
            return;
        }
        s->state = S_CLOSING;
        s->deadline_ms = now_ms() + CLOSE_GRACE_MS;
        sock_unlink(w, s);
        sock_link(w, s, 0);
    } else if (s->state == S_HANDSHAKE) {
        /* The request is out: the gateway may be counting this viewer
         * already. Let the handshake finish (then close it) so that every
         * connection the gateway established is known and accounted for. */
    } else {
        sock_free(w, s);
    }
}

static int parse_count(const uint8_t *p, size_t len, int *status, int64_t *viewers)
{
    json_error_t err;
    json_t *j = json_loadb((const char *)p, len, 0, &err), *v;
    const char *type, *st;

    if (j == NULL)
        return -1;
    type = json_string_value(json_object_get(j, "type"));
    if (type == NULL || strcmp(type, "count") != 0) {
        int rc = type && strcmp(type, "pong") == 0 ? 1 : -1;

        json_decref(j);
        return rc;
    }
    st = json_string_value(json_object_get(j, "status"));
    *status = st == NULL                     ? LG_ST_OTHER
              : strcmp(st, "live") == 0      ? LG_ST_LIVE
              : strcmp(st, "syncing") == 0   ? LG_ST_SYNCING
              : strcmp(st, "stale") == 0     ? LG_ST_STALE
              : strcmp(st, "counting") == 0  ? LG_ST_COUNTING
                                             : LG_ST_OTHER;
    v = json_object_get(j, "viewers");
    *viewers = json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
    json_decref(j);
    return 0;
}

/* Frames from the server in s->in. Returns -1 when s was freed. */
static int sock_frames(worker *w, lg_sock *s)
{
    size_t off = 0;

    for (;;) {
        lg_ws_frame_in f;
        long n = lg_ws_parse_frame(s->in + off, s->inlen - off, IN_MAX - 16, &f);

        if (n == 0)
            break;
        if (n < 0 || f.masked || !f.fin || f.opcode == LG_WS_BINARY || f.opcode == LG_WS_CONT) {
            sock_fail(w, s, LG_FAIL_PROTO);
            return -1;
        }
        off += (size_t)n;
        if (f.opcode == LG_WS_TEXT) {
            int status = 0, rc;
            int64_t viewers = 0;

            rc = parse_count(f.payload, f.len, &status, &viewers);
            if (rc < 0) {
                sock_fail(w, s, LG_FAIL_PROTO);
                return -1;
            }
            if (rc == 0 && s->tab)
                report(w, LG_REP_COUNT, s->tab, s->gw, status, 0, viewers);
        } else if (f.opcode == LG_WS_PING) {
            if (s->state == S_OPEN && (sock_queue_frame(w, s, LG_WS_PONG, f.payload, f.len) || sock_flush(w, s))) {
                sock_fail(w, s, 0);
                return -1;
            }
        } else if (f.opcode == LG_WS_CLOSE) {
            int code = f.len >= 2 ? (f.payload[0] << 8) | f.payload[1] : 1005;

            if (s->state == S_OPEN) {
                uint8_t echo[2] = {(uint8_t)(code >> 8), (uint8_t)code};

                if (sock_queue_frame(w, s, LG_WS_CLOSE, echo, f.len >= 2 ? 2 : 0) == 0)
                    (void)sock_flush(w, s);
                sock_fail(w, s, code);
            } else {
                sock_free(w, s);
            }
            return -1;
        }
    }
    memmove(s->in, s->in + off, s->inlen - off);
    s->inlen -= off;
    return 0;
}

static void sock_readable(worker *w, lg_sock *s)
{
    for (;;) {
        ssize_t n;

        if (s->inlen == sizeof(s->in)) {
            sock_fail(w, s, LG_FAIL_PROTO);
            return;
        }
        n = recv(s->fd, s->in + s->inlen, sizeof(s->in) - s->inlen, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            sock_fail(w, s, s->state == S_OPEN ? 0 : LG_FAIL_EOF);
            return;
        }
        if (n == 0) {
            if (s->state == S_CLOSING)
                sock_free(w, s);
            else
                sock_fail(w, s, s->state == S_OPEN ? 0 : LG_FAIL_EOF);
            return;
        }
        s->inlen += (size_t)n;
        if (s->state == S_HANDSHAKE) {
            int status = 0, ok = 0, h = lg_ws_parse_response((const char *)s->in, s->inlen, s->key, &status, &ok);

            if (h == 0)
                continue;
            if (h < 0) {
                sock_fail(w, s, LG_FAIL_BADHS);
                return;
            }
            if (status != 101) {
                sock_fail(w, s, status);
                return;
            }
            if (!ok) {
                sock_fail(w, s, LG_FAIL_BADHS);
                return;
            }
            memmove(s->in, s->in + h, s->inlen - (size_t)h);
            s->inlen -= (size_t)h;
            s->state = S_OPEN;
            sock_done_inflight(w, s);
            sock_unlink(w, s);
            sock_link(w, s, 1);
            if (s->tab) {
                s->tab->established = 1;
                s->tab->fails = 0;
                report(w, LG_REP_EST, s->tab, s->gw, 0, 0, now_us() - s->t0_us);
            } else {
                static const uint8_t bye[] = {0x03, 0xe8, 'b', 'y', 'e'};

                /* Closed by the controller during its handshake. */
                report_raw(w, LG_REP_EST, LG_SLOT_NONE, 0, s->stream, s->gw, 0, 0, now_us() - s->t0_us);
                if (sock_queue_frame(w, s, LG_WS_CLOSE, bye, sizeof(bye)) || sock_flush(w, s)) {
                    sock_free(w, s);
                    return;
                }
                s->state = S_CLOSING;
                s->deadline_ms = now_ms() + CLOSE_GRACE_MS;
                sock_unlink(w, s);
                sock_link(w, s, 0);
            }
        }
        if (s->state == S_OPEN || s->state == S_CLOSING) {
            if (sock_frames(w, s))
                return;
        }
    }
}

static void sock_writable(worker *w, lg_sock *s)
{
    if (s->state == S_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);

        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            sock_fail(w, s, err == ECONNREFUSED ? LG_FAIL_REFUSED : LG_FAIL_SOCKET);
            return;
        }
        s->state = S_HANDSHAKE;
    }
    if (sock_flush(w, s))
        sock_fail(w, s, s->state == S_OPEN ? 0 : LG_FAIL_EOF);
}

static void handle_cmd(worker *w, const lg_cmd *cmd)
{
    lg_tab *t;
    uint32_t i;

    if (cmd->type == LG_CMD_QUIT) {
        w->quit = 1;
        return;
    }
    if (cmd->slot % (uint32_t)w->c->nworkers != (uint32_t)w->c->index)
        return;
    i = cmd->slot / (uint32_t)w->c->nworkers;
    if (i >= w->ntabs)
        return;
    t = &w->tabs[i];
    tab_detach(w, t);
    t->want = 0;
    t->gen = cmd->gen;
    if (cmd->type != LG_CMD_OPEN)
        return;
    if (t->token == NULL || t->user != cmd->user) {
        free(t->token);
        t->user = cmd->user;
        t->token = mint(w, cmd->user);
    }
    t->stream = cmd->stream;
    t->gw = cmd->gw % w->c->ngw;
    t->want = 1;
    tab_connect(w, t);
}

static int read_cmds(worker *w)
{
    for (;;) {
        ssize_t n = read(w->c->cmd_fd, w->cmdbuf + w->cmdlen, sizeof(w->cmdbuf) - w->cmdlen);
        size_t off = 0;

        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        if (n == 0)
            return -1;
        w->cmdlen += (size_t)n;
        while (w->cmdlen - off >= sizeof(lg_cmd)) {
            lg_cmd cmd;

            memcpy(&cmd, w->cmdbuf + off, sizeof(cmd));
            off += sizeof(cmd);
            handle_cmd(w, &cmd);
        }
        memmove(w->cmdbuf, w->cmdbuf + off, w->cmdlen - off);
        w->cmdlen -= off;
    }
}

/* Tabs waiting for a handshake slot connect as slots free up. */
static void drain_waitq(worker *w)
{
    while (w->wq_len > 0 && w->inflight < w->c->max_inflight) {
        lg_tab *t = &w->tabs[w->waitq[w->wq_head]];

        w->wq_head = (w->wq_head + 1) % w->ntabs;
        w->wq_len--;
        t->queued = 0;
        if (t->want && t->s == NULL)
            tab_connect(w, t);
    }
}

static void timers(worker *w, int64_t now)
{
    /* Walk the tabs only while a retry may be scheduled, and only the
     * sockets that have a deadline: a worker holds ~17,000 open ones in the
     * headline run, and this runs 20 times a second. */
    if (w->any_retry) {
        w->any_retry = 0;
        for (uint32_t i = 0; i < w->ntabs; i++) {
            lg_tab *t = &w->tabs[i];

            if (t->want && t->s == NULL && t->retry_at && !t->queued) {
                if (t->retry_at <= now)
                    tab_connect(w, t);
                else
                    w->any_retry = 1;
            }
        }
    }
    for (lg_sock *s = w->socks, *next; s; s = next) {
        next = s->next;
        if (s->state != S_OPEN && s->deadline_ms <= now) {
            if (s->state == S_CLOSING) {
                sock_free(w, s);
            } else {
                if (s->state == S_HANDSHAKE)
                    /* The gateway may or may not have established it. */
                    report_raw(w, LG_REP_UNKNOWN, LG_SLOT_NONE, 0, s->stream, s->gw, 0, 0, 0);
                sock_fail(w, s, LG_FAIL_TIMEOUT);
            }
        }
    }
}

int lg_worker_run(const lg_worker_conf *c)
{
    worker w;
    struct epoll_event evs[256];
    int64_t next_timers = 0, quit_deadline = 0;
    int rc = 0;

    memset(&w, 0, sizeof(w));
    w.c = c;
    w.rep.max = (size_t)256 << 20;
    lg_rng_seed(&w.rng, c->seed * 7919 + (uint64_t)c->index);
    w.ntabs = (c->slots + (uint32_t)c->nworkers - 1) / (uint32_t)c->nworkers;
    w.tabs = calloc(w.ntabs ? w.ntabs : 1, sizeof(lg_tab));
    w.waitq = calloc(w.ntabs ? w.ntabs : 1, sizeof(uint32_t));
    w.ep = epoll_create1(EPOLL_CLOEXEC);
    if (w.tabs == NULL || w.waitq == NULL || w.ep < 0) {
        fprintf(stderr, "vc-loadgen worker %d: out of memory\n", c->index);
        return 1;
    }
    for (uint32_t i = 0; i < w.ntabs; i++)
        w.tabs[i].slot = i * (uint32_t)c->nworkers + (uint32_t)c->index;
    fcntl(c->cmd_fd, F_SETFL, O_NONBLOCK);
    fcntl(c->rep_fd, F_SETFL, O_NONBLOCK);
    {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

        epoll_ctl(w.ep, EPOLL_CTL_ADD, c->cmd_fd, &ev);
    }
    for (;;) {
        int n = epoll_wait(w.ep, evs, 256, 20);
        int64_t now;

        if (n < 0 && errno != EINTR) {
            rc = 1;
            break;
        }
        for (int i = 0; i < n; i++) {
            lg_sock *s = evs[i].data.ptr;

            if (s == NULL) {
                if (read_cmds(&w) && !w.quit)
                    w.quit = 1;
                continue;
            }
            if (s == (lg_sock *)&w.rep || s->dead)
                continue;
            if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
                if (s->state == S_CONNECTING || s->outlen > s->outoff || (evs[i].events & EPOLLOUT)) {
                    sock_writable(&w, s);
                    continue;
                }
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                sock_readable(&w, s);
        }
        now = now_ms();
        if (now >= next_timers) {
            timers(&w, now);
            next_timers = now + 50;
        }
        bury(&w);
        if (!w.quit)
            drain_waitq(&w);
        if (lg_outq_flush(&w.rep, c->rep_fd)) {
            rc = 1;
            break; /* the controller is gone */
        }
        if (w.rep.len > w.rep.off && !w.rep_pollout) {
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = &w.rep};

            epoll_ctl(w.ep, EPOLL_CTL_ADD, c->rep_fd, &ev);
            w.rep_pollout = 1;
        } else if (w.rep.len == w.rep.off && w.rep_pollout) {
            epoll_ctl(w.ep, EPOLL_CTL_DEL, c->rep_fd, NULL);
            w.rep_pollout = 0;
        }
        if (w.quit) {
            if (w.quit == 2) {
                rc = 1;
                break;
            }
            if (quit_deadline == 0) {
                for (uint32_t i = 0; i < w.ntabs; i++) {
                    w.tabs[i].want = 0;
                    tab_detach(&w, &w.tabs[i]);
                }
                quit_deadline = now + CLOSE_GRACE_MS;
            }
            if (w.nsocks == 0 || now >= quit_deadline)
                break;
        }
    }
    while (w.socks)
        sock_free(&w, w.socks);
    while (w.open_socks)
        sock_free(&w, w.open_socks);
    bury(&w);
    for (uint32_t i = 0; i < w.ntabs; i++)
        free(w.tabs[i].token);
    free(w.tabs);
    free(w.waitq);
    lg_outq_flush(&w.rep, c->rep_fd);
    lg_outq_free(&w.rep);
    close(w.ep);
    close(c->cmd_fd);
    close(c->rep_fd);
    return rc;
}
