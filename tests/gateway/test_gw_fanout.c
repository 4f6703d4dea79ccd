/* The fan-out writer: one frame to many sockets, split over two threads. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fanout.h"

/* n socket pairs: fds[i] is the writing end, peers[i] the reading end. */
static void pairs(int *fds, int *peers, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int sv[2];

        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0, "socketpair: %s", strerror(errno));
        fds[i] = sv[0];
        peers[i] = sv[1];
    }
}

static void every_peer_got(const int *peers, size_t n, const unsigned char *frame, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char buf[256];
        ssize_t r = recv(peers[i], buf, sizeof(buf), MSG_DONTWAIT);

        cr_assert_eq(r, (ssize_t)len, "peer %zu got %zd bytes", i, r);
        cr_assert_eq(memcmp(buf, frame, len), 0, "peer %zu got other bytes", i);
    }
}

static void close_all(const int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

Test(fanout, text_header_lengths)
{
    unsigned char h[10];

    cr_assert_eq(gw_fanout_text_header(h, 5), 2);
    cr_assert_eq(h[0], 0x81);
    cr_assert_eq(h[1], 5);
    cr_assert_eq(gw_fanout_text_header(h, 125), 2);
    cr_assert_eq(h[1], 125);
    cr_assert_eq(gw_fanout_text_header(h, 126), 4);
    cr_assert_eq(h[1], 126);
    cr_assert_eq(h[2], 0);
    cr_assert_eq(h[3], 126);
    cr_assert_eq(gw_fanout_text_header(h, 70000), 10);
    cr_assert_eq(h[1], 127);
    cr_assert_eq(h[7], 0x01);
    cr_assert_eq(h[8], 0x11);
    cr_assert_eq(h[9], 0x70);
}

/* Enough sockets for the split: both threads' halves arrive, whole. */
Test(fanout, split_over_two_threads_reaches_every_socket)
{
    enum { SPLIT = 1000, N = SPLIT + 101 };
    static int fds[N], peers[N];
    static ssize_t sent[N];
    const char text[] = "{\"type\":\"count\",\"stream\":42,\"viewers\":7,\"peak\":9,\"status\":\"live\"}";
    unsigned char frame[10 + sizeof(text)];
    size_t h = gw_fanout_text_header(frame, sizeof(text) - 1), len = h + sizeof(text) - 1;
    gw_fanout *f = gw_fanout_new(SPLIT);
    struct rlimit rl;
    cpu_set_t cpus;

    if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) < 2)
        cr_assert_null(f, "no helper thread on one CPU");
    else
        cr_assert_not_null(f);
    /* 2 descriptors a socket pair: over a soft limit of 1024. */
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    cr_assert_geq(rl.rlim_cur, (rlim_t)(2 * N + 64), "need %d open files", 2 * N + 64);
    memcpy(frame + h, text, sizeof(text) - 1);
    pairs(fds, peers, N);
    for (int round = 0; round < 3; round++) {
        memset(sent, 0, sizeof(sent));
        cr_assert_eq(gw_fanout_send(f, fds, sent, N, frame, len), N);
        for (size_t i = 0; i < N; i++)
            cr_assert_eq(sent[i], (ssize_t)len, "socket %zu: %zd", i, sent[i]);
        every_peer_got(peers, N, frame, len);
    }
    gw_fanout_destroy(f);
    gw_fanout_destroy(NULL);
    close_all(fds, N);
    close_all(peers, N);
}

/* Without a helper (NULL) the caller writes them all; a closed peer and a
 * full socket are reported per socket, the others still get the frame. */
Test(fanout, errors_are_per_socket)
{
    enum { N = 8 };
    int fds[N], peers[N];
    ssize_t sent[N];
    unsigned char frame[] = {0x81, 2, 'h', 'i'}, fill[4096];
    int full = 3, gone = 5;

    pairs(fds, peers, N);
    close(peers[gone]);
    peers[gone] = -1;
    fcntl(fds[full], F_SETFL, O_NONBLOCK);
    memset(fill, 'x', sizeof(fill));
    while (send(fds[full], fill, sizeof(fill), MSG_DONTWAIT) > 0)
        ;
    cr_assert_eq(gw_fanout_send(NULL, fds, sent, N, frame, sizeof(frame)), N - 2);
    cr_assert_eq(sent[gone], -EPIPE);
    cr_assert(sent[full] == -EAGAIN || (sent[full] > 0 && sent[full] < (ssize_t)sizeof(frame)),
              "full socket: %zd", sent[full]);
    for (size_t i = 0; i < N; i++) {
        unsigned char buf[8];

        if ((int)i == gone || (int)i == full)
            continue;
        cr_assert_eq(sent[i], (ssize_t)sizeof(frame));
        cr_assert_eq(recv(peers[i], buf, sizeof(buf), MSG_DONTWAIT), (ssize_t)sizeof(frame));
    }
    close_all(fds, N);
    for (size_t i = 0; i < N; i++)
        if (peers[i] >= 0)
            close(peers[i]);
}
