/* gw_load -- WebSocket load generator for the gateway benchmarks.
 *
 * Opens --n connections to ws://127.0.0.1:PORT/ws?stream=S[&token=T] from
 * source address 127.0.0.SRC (so several processes on several source
 * addresses stay under the per-process open-files cap), at most --inflight
 * handshakes at a time, and reports the accept rate. Then it holds the
 * connections --hold seconds; with --marker it records when each connection
 * first receives a text containing the marker (fan-out timing) and reports
 * the first and last arrival (CLOCK_REALTIME ms). Output: one JSON line. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { C_CONNECTING, C_SENT, C_OPEN, C_DEAD };

typedef struct {
    int fd;
    uint8_t state;
    uint8_t marked;
    uint16_t got;
} conn;

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
    char req[4096], srcip[32], buf[4096];
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
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n",
                      stream, token[0] ? "&token=" : "", token);
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
            e.events = EPOLLOUT | EPOLLIN;
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

                if (r <= 0 || strncmp(buf, "HTTP/1.1 101", 12) != 0) {
                    if (!failed)
                        fprintf(stderr, "gw_load: handshake: %s\n", r < 0 ? strerror(errno) : r == 0 ? "EOF" : buf);
                    x->state = C_DEAD;
                    failed++;
                    inflight--;
                    close(x->fd);
                    continue;
                }
                buf[r] = '\0';
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
