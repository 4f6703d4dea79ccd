/* bench_jtv -- join-to-visible latency: from a viewer's join to another
 * viewer of the same stream seeing the new count.
 *
 *   bench_jtv --watch HOST:PORT [--join HOST:PORT] [--streams 20] [--samples 200]
 *             [--interval-ms 50] [--stream-base ID] [--src 127.8.0.1] [--timeout-s 30]
 *
 * Opens one watcher per stream (fresh stream ids, one viewer each) on the
 * --watch gateway and waits until every watcher is shown its own count (1).
 * Then, every --interval-ms, a new viewer (a new user, a real HS256 token
 * from VC_TOKEN_SECRET) joins the next stream round robin through the --join
 * gateway (default: the same one). The k-th joiner of a stream is visible
 * when that stream's watcher is pushed `"status":"live","viewers" >= 1 + k`.
 * The latency of a sample is from the joiner's 101 (the gateway accepted it
 * and produced its join) to that push; `from_request` also counts the
 * handshake. Everyone leaves at the end (close 1000).
 *
 * The figure is dominated by the gateway's tick (VC_TICK_MS, how often it
 * reads counts from Redis): report it next to the result. Output: one JSON
 * line. Not a test: it asserts nothing about time. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lg_ws.h"

#define IN_MAX 4096
#define MAX_CONNS 4096

typedef struct {
    int fd;
    int open;        /* handshake done */
    int watcher;     /* else a joiner */
    int stream;      /* index */
    int64_t t_sent;  /* us */
    char key[LG_WS_KEY_LEN + 1];
    size_t inlen;
    uint8_t in[IN_MAX];
} conn;

typedef struct {
    int stream;
    int64_t want;     /* the watcher must be shown at least this */
    int64_t t_sent, t_join, t_seen;
} sample;

static conn conns[MAX_CONNS];
static int nconns;

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static char *mint(const char *secret, int64_t user)
{
    jwt_t *jwt = NULL;
    char sub[24], *tok = NULL;
    long now = (long)time(NULL);

    if (jwt_new(&jwt))
        return NULL;
    snprintf(sub, sizeof(sub), "%lld", (long long)user);
    if (!jwt_add_grant(jwt, "sub", sub) && !jwt_add_grant_int(jwt, "iat", now) &&
        !jwt_add_grant_int(jwt, "exp", now + 3600) &&
        !jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)))
        tok = jwt_encode_str(jwt);
    jwt_free(jwt);
    return tok;
}

static int parse_addr(const char *s, struct sockaddr_in *a, char *host_port, size_t hp_size)
{
    char buf[48];
    char *colon;

    if (strlen(s) >= sizeof(buf))
        return -1;
    memcpy(buf, s, strlen(s) + 1);
    colon = strrchr(buf, ':');
    if (colon == NULL)
        return -1;
    *colon = '\0';
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, buf, &a->sin_addr) != 1 || (ntohl(a->sin_addr.s_addr) >> 24) != 127)
        return -1;
    snprintf(host_port, hp_size, "%.20s:%.6s", buf, colon + 1);
    return 0;
}

/* Connect (loopback: immediate) and send the opening handshake. */
static int open_conn(const struct sockaddr_in *gw, const char *host_port, const struct sockaddr_in *src,
                     int64_t stream_id, int64_t user, const char *secret, int watcher, int stream)
{
    conn *c;
    char path[1024], req[2048];
    uint8_t nonce[16];
    char *tok;
    int one = 1, n;

    if (nconns == MAX_CONNS)
        return -1;
    c = &conns[nconns];
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* one source address per 32 connections: the gateway caps connections
     * and handshakes per IP address */
    {
        struct sockaddr_in a = *src;

        a.sin_addr.s_addr = htonl(ntohl(src->sin_addr.s_addr) + (uint32_t)(nconns / 32));
        if (bind(c->fd, (const struct sockaddr *)&a, sizeof(a)) ||
            connect(c->fd, (const struct sockaddr *)gw, sizeof(*gw))) {
            fprintf(stderr, "bench_jtv: connect %s: %s\n", host_port, strerror(errno));
            close(c->fd);
            return -1;
        }
    }
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = rng();

        memcpy(nonce + i, &r, 8);
    }
    lg_ws_make_key(nonce, c->key);
    tok = mint(secret, user);
    if (tok == NULL) {
        close(c->fd);
        return -1;
    }
    snprintf(path, sizeof(path), "/ws?stream=%lld&token=%s", (long long)stream_id, tok);
    free(tok);
    n = lg_ws_request(req, sizeof(req), host_port, path, c->key);
    c->t_sent = now_us();
    if (n < 0 || write(c->fd, req, (size_t)n) != n) {
        close(c->fd);
        return -1;
    }
    c->watcher = watcher;
    c->stream = stream;
    nconns++;
    return nconns - 1;
}

static void send_frame(conn *c, int opcode, const void *payload, size_t len)
{
    uint8_t out[256], mask[4];
    uint64_t m = rng();
    int n;

    memcpy(mask, &m, 4);
    n = lg_ws_frame(out, sizeof(out), opcode, payload, len, mask);
    if (n > 0 && write(c->fd, out, (size_t)n) != n)
        fprintf(stderr, "bench_jtv: short write\n");
}

/* A count pushed as live: its viewers, else -1. */
static int64_t live_count(const uint8_t *p, size_t len)
{
    json_error_t err;
    json_t *j = json_loadb((const char *)p, len, 0, &err);
    int64_t v = -1;

    if (j == NULL)
        return -1;
    if (json_is_string(json_object_get(j, "type")) && strcmp(json_string_value(json_object_get(j, "type")), "count") == 0 &&
        json_is_string(json_object_get(j, "status")) && strcmp(json_string_value(json_object_get(j, "status")), "live") == 0 &&
        json_is_integer(json_object_get(j, "viewers")))
        v = (int64_t)json_integer_value(json_object_get(j, "viewers"));
    json_decref(j);
    return v;
}

static int sum_reopened(const int *r, int n)
{
    int t = 0;

    for (int i = 0; i < n; i++)
        t += r[i];
    return t;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

static double pct(const int64_t *v, size_t n, double q)
{
    size_t i;

    if (n == 0)
        return 0;
    i = (size_t)(q * (double)n);
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1000.0;
}

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return def;
}

int main(int argc, char **argv)
{
    const char *watch = arg(argc, argv, "--watch", NULL), *join = arg(argc, argv, "--join", NULL);
    const char *secret = getenv("VC_TOKEN_SECRET"), *srcs = arg(argc, argv, "--src", "127.8.0.1");
    int nstreams = atoi(arg(argc, argv, "--streams", "20")), nsamples = atoi(arg(argc, argv, "--samples", "200"));
    int interval_ms = atoi(arg(argc, argv, "--interval-ms", "50"));
    double timeout_s = atof(arg(argc, argv, "--timeout-s", "30"));
    int64_t stream_base = atoll(arg(argc, argv, "--stream-base", "0"));
    struct sockaddr_in gw_w, gw_j, src = {.sin_family = AF_INET};
    char hp_w[80], hp_j[80];
    int64_t *shown, *joined, t0, next_join, deadline;
    int *watcher_of, *reopened, started = 0, resolved = 0, ready = 0, failed = 0;
    sample *smp;
    struct pollfd *pfd;

    if (watch == NULL || secret == NULL || !secret[0] || nstreams < 1 || nsamples < 1 || interval_ms < 1 ||
        nstreams + nsamples > MAX_CONNS || parse_addr(watch, &gw_w, hp_w, sizeof(hp_w)) ||
        parse_addr(join ? join : watch, &gw_j, hp_j, sizeof(hp_j)) || inet_pton(AF_INET, srcs, &src.sin_addr) != 1) {
        fprintf(stderr, "usage: bench_jtv --watch HOST:PORT [--join HOST:PORT] [--streams 20] [--samples 200] "
                        "[--interval-ms 50] [--stream-base ID] [--src 127.8.0.1] [--timeout-s 30]\n"
                        "(VC_TOKEN_SECRET must be set; loopback only)\n");
        return 2;
    }
    rng_state ^= (uint64_t)now_us() * 2654435761u;
    if (stream_base == 0) /* fresh streams: nobody else watches them */
        stream_base = 9000000000LL + (int64_t)(time(NULL) % 1000000) * 1000;
    shown = calloc((size_t)nstreams, sizeof(int64_t));
    joined = calloc((size_t)nstreams, sizeof(int64_t));
    watcher_of = calloc((size_t)nstreams, sizeof(int));
    reopened = calloc((size_t)nstreams, sizeof(int));
    smp = calloc((size_t)nsamples, sizeof(sample));
    pfd = calloc(MAX_CONNS, sizeof(struct pollfd));
    if (!shown || !joined || !watcher_of || !reopened || !smp || !pfd)
        return 2;
    for (int s = 0; s < nstreams; s++) {
        watcher_of[s] = open_conn(&gw_w, hp_w, &src, stream_base + s, 500000000 + stream_base % 1000000 * 100 + s,
                                  secret, 1, s);
        if (watcher_of[s] < 0)
            return 1;
        shown[s] = -1;
    }
    t0 = now_us();
    next_join = -1; /* once every watcher is shown 1 */
    deadline = t0 + (int64_t)(timeout_s * 1e6);
    while (now_us() < deadline) {
        int64_t now = now_us();
        int k, wait_ms = 1;

        if (next_join < 0 && ready == nstreams)
            next_join = now;
        if (next_join >= 0 && started < nsamples && now >= next_join) {
            int s = started % nstreams;
            int64_t user = 600000000 + stream_base % 1000000 * 1000 + started;

            if (open_conn(&gw_j, hp_j, &src, stream_base + s, user, secret, 0, s) < 0)
                return 1;
            smp[started].stream = s;
            smp[started].t_sent = conns[nconns - 1].t_sent;
            started++;
            next_join += (int64_t)interval_ms * 1000;
        }
        if (started == nsamples && resolved == nsamples)
            break;
        for (int i = 0; i < nconns; i++) {
            pfd[i].fd = conns[i].fd;
            pfd[i].events = POLLIN;
        }
        k = poll(pfd, (nfds_t)nconns, wait_ms);
        if (k <= 0)
            continue;
        now = now_us();
        for (int i = 0; i < nconns; i++) {
            conn *c = &conns[i];
            ssize_t r;
            size_t off = 0;

            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) || c->fd < 0)
                continue;
            r = read(c->fd, c->in + c->inlen, IN_MAX - c->inlen);
            if (r <= 0) {
                fprintf(stderr, "bench_jtv: a %s connection closed (%s)\n", c->watcher ? "watcher" : "joiner", r < 0 ? strerror(errno) : "EOF");
                close(c->fd);
                c->fd = -1;
                failed++;
                if (c->watcher && reopened[c->stream] < 5) {
                    /* a loaded gateway may drop a connection: watch again (the
                     * new watcher is pushed the current count right after join) */
                    int s = c->stream;

                    reopened[s]++;
                    for (int j = 0; j < started; j++) /* what it had not seen yet is lost */
                        if (smp[j].stream == s && smp[j].t_join && !smp[j].t_seen) {
                            smp[j].t_seen = -1;
                            resolved++;
                        }
                    if (shown[s] >= 1)
                        ready--;
                    shown[s] = -1;
                    watcher_of[s] = open_conn(&gw_w, hp_w, &src, stream_base + s,
                                              500000000 + stream_base % 1000000 * 100 + s, secret, 1, s);
                }
                continue;
            }
            c->inlen += (size_t)r;
            if (!c->open) {
                int status = 0, ok = 0, h = lg_ws_parse_response((const char *)c->in, c->inlen, c->key, &status, &ok);

                if (h == 0)
                    continue;
                if (h < 0 || status != 101 || !ok) {
                    fprintf(stderr, "bench_jtv: handshake refused (HTTP %d): %.60s\n", status, (const char *)c->in);
                    close(c->fd);
                    c->fd = -1;
                    failed++;
                    continue;
                }
                c->open = 1;
                off = (size_t)h;
                if (!c->watcher) {
                    /* the joiner is in: which sample is it? the oldest open one of its stream */
                    for (int j = 0; j < started; j++)
                        if (smp[j].stream == c->stream && smp[j].t_join == 0) {
                            smp[j].t_join = now;
                            smp[j].want = 1 + ++joined[c->stream];
                            break;
                        }
                }
            }
            for (;;) {
                lg_ws_frame_in f;
                long n = lg_ws_parse_frame(c->in + off, c->inlen - off, IN_MAX - 16, &f);

                if (n <= 0)
                    break;
                off += (size_t)n;
                if (f.opcode == LG_WS_PING) {
                    send_frame(c, LG_WS_PONG, f.payload, f.len);
                } else if (f.opcode == LG_WS_TEXT && c->watcher) {
                    int64_t v = live_count(f.payload, f.len);

                    if (v < 0)
                        continue;
                    if (shown[c->stream] < 1 && v >= 1)
                        ready++;
                    shown[c->stream] = v;
                    for (int j = 0; j < started; j++)
                        if (smp[j].stream == c->stream && smp[j].t_join && !smp[j].t_seen && v >= smp[j].want) {
                            smp[j].t_seen = now;
                            resolved++;
                        }
                }
            }
            memmove(c->in, c->in + off, c->inlen - off);
            c->inlen -= off;
        }
    }
    {
        int64_t *lat = calloc((size_t)nsamples, sizeof(int64_t)), *lat_req = calloc((size_t)nsamples, sizeof(int64_t));
        size_t n = 0;
        static const uint8_t bye[] = {0x03, 0xe8};

        for (int j = 0; j < started; j++)
            if (smp[j].t_seen > 0) {
                lat[n] = smp[j].t_seen - smp[j].t_join;
                lat_req[n++] = smp[j].t_seen - smp[j].t_sent;
            }
        qsort(lat, n, sizeof(int64_t), cmp_i64);
        qsort(lat_req, n, sizeof(int64_t), cmp_i64);
        printf("{\"watch\":\"%s\",\"join\":\"%s\",\"streams\":%d,\"samples\":%d,\"resolved\":%zu,\"failed\":%d,"
               "\"watchers_ready\":%d,\"watchers_reopened\":%d,\"p50_ms\":%.1f,\"p90_ms\":%.1f,\"p99_ms\":%.1f,\"max_ms\":%.1f,"
               "\"from_request_p50_ms\":%.1f,\"from_request_p99_ms\":%.1f}\n",
               hp_w, hp_j, nstreams, started, n, failed, ready, sum_reopened(reopened, nstreams), pct(lat, n, 0.5), pct(lat, n, 0.9), pct(lat, n, 0.99),
               n ? (double)lat[n - 1] / 1000.0 : 0, pct(lat_req, n, 0.5), pct(lat_req, n, 0.99));
        fflush(stdout);
        for (int i = 0; i < nconns; i++)
            if (conns[i].fd >= 0) {
                if (conns[i].open)
                    send_frame(&conns[i], LG_WS_CLOSE, bye, sizeof(bye));
                close(conns[i].fd);
            }
        free(lat);
        free(lat_req);
        return n == (size_t)nsamples && ready == nstreams ? 0 : 1;
    }
}
