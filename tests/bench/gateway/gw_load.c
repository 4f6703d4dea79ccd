/* gw_load -- WebSocket load generator for the gateway benchmarks.
 *
 * Opens --n connections to ws://127.0.0.1:PORT/ws?stream=S[&token=T] from
 * source address 127.0.0.SRC (so several processes on several source
 * addresses stay under the per-process open-files cap), at most --inflight
 * handshakes at a time, and reports the accept rate. Then it holds the
 * connections --hold seconds; with --marker it records when each connection
 * first receives a text containing the marker (fan-out timing) and reports
 * the first and last arrival (CLOCK_REALTIME ms). Output: one JSON line.
 *
 * A real RFC 6455 client handshake: a fresh random Sec-WebSocket-Key per
 * connection, and the answer must be 101 with Upgrade: websocket,
 * Connection: Upgrade and the Sec-WebSocket-Accept derived from that key
 * (SHA-1, section 4.2.2); anything else counts as failed. It is kept cheap
 * because it shares the CPU with the server it measures: the request is
 * written right after connect() (on loopback the TCP handshake has completed
 * by then; EPOLLOUT is only waited for when the write would block), so a
 * connection costs one epoll_ctl and one wake-up for the answer. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <openssl/sha.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { C_CONNECTING, C_SENT, C_OPEN, C_DEAD };

typedef struct {
    int fd;
    uint8_t state;
    uint8_t marked;
    char accept[29];            /* the Sec-WebSocket-Accept this connection's key asks for */
} conn;

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* xorshift64*: a fresh nonce per connection; seeded from getrandom(). */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static size_t b64(const unsigned char *in, size_t len, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;

    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);

        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < len ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? t[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

/* A new key written into the request at key_at; the expected accept into c. */
static void new_key(conn *c, char *key_at)
{
    unsigned char raw[16], md[SHA_DIGEST_LENGTH];
    char in[24 + sizeof(WS_GUID)];
    uint64_t a = rng_next(), b = rng_next();

    memcpy(raw, &a, 8);
    memcpy(raw + 8, &b, 8);
    b64(raw, 16, in); /* 24 characters */
    memcpy(key_at, in, 24);
    memcpy(in + 24, WS_GUID, sizeof(WS_GUID) - 1);
    SHA1((const unsigned char *)in, 24 + sizeof(WS_GUID) - 1, md);
    b64(md, sizeof(md), c->accept); /* 28 characters */
}

/* The value of header name (with the ": ") in the response head, or NULL. */
static const char *header(const char *head, const char *name, size_t *len)
{
    size_t n = strlen(name);

    for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
        if (!strncasecmp(p + 2, name, n)) {
            const char *v = p + 2 + n, *e = strstr(v, "\r\n");

            while (*v == ' ')
                v++;
            *len = e ? (size_t)(e - v) : strlen(v);
            return v;
        }
    }
    return NULL;
}

/* 0 when buf holds a complete, valid 101 answer for c (RFC 6455 4.1, the
 * client's checks); else why not. */
static const char *check_101(const conn *c, const char *buf)
{
    const char *v;
    size_t len;

    if (strncmp(buf, "HTTP/1.1 101 ", 13) != 0)
        return "status is not 101";
    if (strstr(buf, "\r\n\r\n") == NULL)
        return "incomplete response head";
    if ((v = header(buf, "upgrade:", &len)) == NULL || len != 9 || strncasecmp(v, "websocket", 9))
        return "no Upgrade: websocket";
    if ((v = header(buf, "connection:", &len)) == NULL || memmem(v, len, "pgrade", 6) == NULL)
        return "no Connection: Upgrade";
    if ((v = header(buf, "sec-websocket-accept:", &len)) == NULL || len != 28 || memcmp(v, c->accept, 28))
        return "wrong Sec-WebSocket-Accept";
    return NULL;
}

static int64_t now_ms(int clock)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
    int port = atoi(arg(argc, argv, "--port", "0"));
    int n = atoi(arg(argc, argv, "--n", "1000"));
    int src = atoi(arg(argc, argv, "--src", "2"));
    int inflight_max = atoi(arg(argc, argv, "--inflight", "512"));
    int hold = atoi(arg(argc, argv, "--hold", "0"));
    const char *stream = arg(argc, argv, "--stream", "1");
    const char *token = arg(argc, argv, "--token", "");
    const char *marker = arg(argc, argv, "--marker", "");
    char req[4096], srcip[32], buf[4096], *key_at;
    int reqlen, ep = epoll_create1(0), started = 0, open = 0, failed = 0, inflight = 0, marked = 0;
    conn *c = calloc((size_t)n, sizeof(*c));
    struct epoll_event evs[256];
    int64_t t0, t_open = 0, first_mark = 0, last_mark = 0, deadline;

    if (port <= 0 || c == NULL) {
        fprintf(stderr, "usage: gw_load --port P --n N [--src 2] [--stream S] [--token T] [--inflight 512] "
                        "[--hold S] [--marker TEXT]\n");
        return 2;
    }
    snprintf(srcip, sizeof(srcip), "127.0.0.%d", src);
    reqlen = snprintf(req, sizeof(req),
                      "GET /ws?stream=%s%s%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: ________________________\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n",
                      stream, token[0] ? "&token=" : "", token);
    key_at = strstr(req, "Key: ") + 5;
    if (getrandom(&rng_state, sizeof(rng_state), 0) != sizeof(rng_state) || rng_state == 0)
        rng_state = (uint64_t)now_ms(CLOCK_REALTIME) * 2654435761u + (uint64_t)getpid();
    t0 = now_ms(CLOCK_MONOTONIC);
    deadline = t0 + 120000;
    while ((open + failed < n) && now_ms(CLOCK_MONOTONIC) < deadline) {
        int k;

        while (started < n && inflight < inflight_max) {
            struct sockaddr_in a = {0}, s = {0};
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
            struct epoll_event e;

            if (fd < 0) {
                failed++;
                started++;
                continue;
            }
            s.sin_family = AF_INET;
            inet_pton(AF_INET, srcip, &s.sin_addr);
            /* Pick the port at connect() (4-tuple), not at bind(): a bind()
             * scan over ports in TIME_WAIT from earlier runs is slow. */
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
            bind(fd, (struct sockaddr *)&s, sizeof(s));
            a.sin_family = AF_INET;
            a.sin_port = htons((uint16_t)port);
            inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
            c[started].fd = fd;
            c[started].state = C_CONNECTING;
            if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) {
                if (!failed)
                    fprintf(stderr, "gw_load: connect: %s\n", strerror(errno));
                close(fd);
                c[started].state = C_DEAD;
                failed++;
                started++;
                continue;
            }
            /* On loopback the handshake is done when connect() returns:
             * write at once; wait for EPOLLOUT only if that would block. */
            new_key(&c[started], key_at);
            if (write(fd, req, (size_t)reqlen) == reqlen) {
                c[started].state = C_SENT;
                e.events = EPOLLIN;
            } else if (errno == EAGAIN || errno == ENOTCONN) {
                e.events = EPOLLOUT | EPOLLIN;
            } else {
                close(fd);
                c[started].state = C_DEAD;
                failed++;
                started++;
                continue;
            }
            e.data.u32 = (uint32_t)started;
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
            started++;
            inflight++;
        }
        k = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < k; i++) {
            conn *x = &c[evs[i].data.u32];

            if (x->state == C_CONNECTING && (evs[i].events & EPOLLOUT)) {
                struct epoll_event e = {EPOLLIN, {.u32 = evs[i].data.u32}};

                new_key(x, key_at);
                if (write(x->fd, req, (size_t)reqlen) != reqlen) {
                    x->state = C_DEAD;
                    failed++;
                    inflight--;
                    close(x->fd);
                    continue;
                }
                x->state = C_SENT;
                epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &e);
            } else if (x->state == C_SENT && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                ssize_t r = read(x->fd, buf, sizeof(buf) - 1);
                const char *why = r < 0 ? strerror(errno) : r == 0 ? "EOF" : NULL;

                if (r > 0) {
                    buf[r] = '\0';
                    why = check_101(x, buf);
                }
                if (why) {
                    if (!failed)
                        fprintf(stderr, "gw_load: handshake: %s\n", why);
                    x->state = C_DEAD;
                    failed++;
                    inflight--;
                    close(x->fd);
                    continue;
                }
                x->state = C_OPEN;
                open++;
                inflight--;
                if (marker[0] && strstr(buf, marker)) {
                    x->marked = 1;
                    marked++;
                }
            } else if (x->state == C_OPEN) {
                if (read(x->fd, buf, sizeof(buf)) <= 0) {
                    x->state = C_DEAD;
                    close(x->fd);
                }
            }
        }
    }
    t_open = now_ms(CLOCK_MONOTONIC) - t0;
    fprintf(stderr, "gw_load %s: %d open, %d failed in %lld ms\n", srcip, open, failed, (long long)t_open);
    if (getenv("GW_LOAD_READY"))
        close(creat(getenv("GW_LOAD_READY"), 0644));
    deadline = now_ms(CLOCK_MONOTONIC) + (int64_t)hold * 1000;
    while (now_ms(CLOCK_MONOTONIC) < deadline && !(marker[0] && marked >= open)) {
        int k = epoll_wait(ep, evs, 256, 100);

        for (int i = 0; i < k; i++) {
            conn *x = &c[evs[i].data.u32];
            ssize_t r;

            if (x->state != C_OPEN)
                continue;
            r = read(x->fd, buf, sizeof(buf) - 1);
            if (r <= 0) {
                x->state = C_DEAD;
                close(x->fd);
                continue;
            }
            buf[r] = '\0';
            /* Frames are tiny text: search the raw bytes (the marker has no NUL). */
            if (marker[0] && !x->marked && memmem(buf, (size_t)r, marker, strlen(marker))) {
                int64_t t = now_ms(CLOCK_REALTIME);

                x->marked = 1;
                if (!marked++)
                    first_mark = t;
                last_mark = t;
            }
        }
    }
    printf("{\"src\":\"%s\",\"open\":%d,\"failed\":%d,\"connect_ms\":%lld,\"rate\":%.0f,\"marked\":%d,"
           "\"first_mark_ms\":%lld,\"last_mark_ms\":%lld}\n",
           srcip, open, failed, (long long)t_open, t_open ? open * 1000.0 / (double)t_open : 0.0, marked,
           (long long)first_mark, (long long)last_mark);
    fflush(stdout);
    for (int i = 0; i < n; i++)
        if (c[i].state == C_OPEN || c[i].state == C_SENT || c[i].state == C_CONNECTING)
            close(c[i].fd);
    free(c);
    return 0;
}
