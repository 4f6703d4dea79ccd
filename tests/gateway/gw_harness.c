/* gw_harness.c -- see gw_harness.h. */
#include "gw_harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef GWH_GATEWAY_BIN
#error "GWH_GATEWAY_BIN must name the vc-gateway binary"
#endif
#ifndef GWH_LOG_DIR
#define GWH_LOG_DIR "/tmp"
#endif

extern char **environ;

int64_t gwh_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *gwh_env(const char *name)
{
    const char *v = getenv(name);

    if (v == NULL || !v[0])
        cr_assert_fail("%s is not set: run the integration tests with the local stack's environment "
                 "(eval \"$(deploy/local/stack env)\" or tests/run)", name);
    return v;
}

static int free_port(void)
{
    struct sockaddr_in a = {0};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

int gwh_tcp_connect(int port)
{
    struct sockaddr_in a = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Read exactly n bytes before deadline (monotonic ms). 0, -1 timeout, -2 EOF/error. */
static int read_full(int fd, void *buf, size_t n, int64_t deadline)
{
    size_t got = 0;

    while (got < n) {
        struct pollfd p = {fd, POLLIN, 0};
        int64_t left = deadline - gwh_now_ms();
        ssize_t r;

        if (left <= 0)
            return -1;
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0) {
            if (getenv("GWH_DEBUG"))
                fprintf(stderr, "read_full: r=%zd errno=%d (%s) got=%zu of %zu\n", r, errno, strerror(errno), got, n);
            return -2;
        }
        got += (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
    size_t off = 0;

    while (off < n) {
        ssize_t w = write(fd, (const char *)buf + off, n - off);

        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return -1;
        }
        off += (size_t)w;
    }
    return 0;
}

int gwh_http_get(int port, const char *path, char *body, size_t body_size)
{
    return gwh_http_get_ex(port, path, NULL, NULL, 0, body, body_size);
}

int gwh_http_get_ex(int port, const char *path, const char *headers, char *head, size_t head_size, char *body,
                    size_t body_size)
{
    char req[2048], resp[65536];
    int fd = gwh_tcp_connect(port), status = -1;
    size_t off = 0;
    int64_t deadline = gwh_now_ms() + 10000;
    char *p;

    if (body_size)
        body[0] = '\0';
    if (head_size)
        head[0] = '\0';
    if (fd < 0)
        return -1;
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n", path,
             headers ? headers : "");
    write_full(fd, req, strlen(req));
    while (off + 1 < sizeof(resp)) {
        struct pollfd pf = {fd, POLLIN, 0};
        int64_t left = deadline - gwh_now_ms();
        ssize_t r;

        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            break;
        r = read(fd, resp + off, sizeof(resp) - 1 - off);
        if (r <= 0)
            break;
        off += (size_t)r;
        resp[off] = '\0';
        /* lws keeps HTTP/1.1 alive despite Connection: close: stop at content-length. */
        if ((p = strstr(resp, "\r\n\r\n")) != NULL) {
            char *cl = strcasestr(resp, "content-length:");

            if (cl && cl < p && off - (size_t)(p + 4 - resp) >= (size_t)strtol(cl + 15, NULL, 10))
                break;
            if (!strncmp(resp + 8, " 304 ", 5)) /* never a body, whatever Content-Length says */
                break;
        }
    }
    close(fd);
    resp[off] = '\0';
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    if ((p = strstr(resp, "\r\n\r\n")) != NULL && body_size)
        snprintf(body, body_size, "%s", p + 4);
    if (p != NULL && head_size)
        snprintf(head, head_size, "%.*s", (int)(p + 2 - resp), resp);
    return status;
}

void gwh_gateway_start(gwh_gateway *g, const char *const *extra_env)
{
    gwh_gateway_start_on(g, 0, extra_env);
}

/* Whether the gateway's log holds text (it is the process's stderr). */
static int log_has(const char *log, const char *text)
{
    char buf[8192];
    FILE *f = fopen(log, "r");
    size_t n;

    if (f == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, text) != NULL;
}

void gwh_gateway_start_on(gwh_gateway *g, int port_wanted, const char *const *extra_env)
{
    static int seq;
    char port[32], id[96];
    int64_t deadline;

    gwh_env("VC_KAFKA_BROKERS");
    gwh_env("VC_REDIS_NODES");
    memset(g, 0, sizeof(*g));
    g->port = port_wanted ? port_wanted : free_port();
    snprintf(g->id, sizeof(g->id), "gwt-%d-%d-%lld", (int)getpid(), ++seq, (long long)(gwh_now_ms() % 100000));
    snprintf(g->log, sizeof(g->log), "%s/%s.log", GWH_LOG_DIR, g->id);
    snprintf(port, sizeof(port), "VC_GATEWAY_PORT=%d", g->port);
    snprintf(id, sizeof(id), "VC_GATEWAY_ID=%s", g->id);
    g->pid = fork();
    cr_assert_neq(g->pid, -1);
    if (g->pid == 0) {
        int fd = open(g->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */

        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        putenv(port);
        putenv(id);
        for (int i = 0; extra_env && extra_env[i]; i++)
            putenv((char *)extra_env[i]);
        execl(GWH_GATEWAY_BIN, "vc-gateway", (char *)NULL);
        _exit(127);
    }
    deadline = gwh_now_ms() + 15000;
    while (gwh_now_ms() < deadline) {
        char body[64];
        int st;

        if (waitpid(g->pid, &st, WNOHANG) == g->pid)
            cr_assert_fail("vc-gateway exited at start (status %d); see %s", st, g->log);
        /* On a port another process already serves (SO_REUSEPORT), /healthz
         * may be that one's answer: also wait for this one's own line. */
        if (gwh_http_get(g->port, "/healthz", body, sizeof(body)) == 200 && log_has(g->log, "listening on port"))
            return;
        usleep(50000);
    }
    kill(g->pid, SIGKILL);
    waitpid(g->pid, NULL, 0);
    cr_assert_fail("vc-gateway did not answer /healthz within 15 s; see %s", g->log);
}

int gwh_gateway_stop(gwh_gateway *g, int sig, int timeout_ms)
{
    int64_t deadline = gwh_now_ms() + timeout_ms;
    int st;

    if (g->pid <= 0)
        return -1;
    kill(g->pid, sig);
    while (gwh_now_ms() < deadline) {
        if (waitpid(g->pid, &st, WNOHANG) == g->pid) {
            g->pid = 0;
            return st;
        }
        usleep(20000);
    }
    kill(g->pid, SIGKILL);
    waitpid(g->pid, &st, 0);
    g->pid = 0;
    return -1;
}

int gwh_ws_connect(int port, const char *target, const char *headers, int *status)
{
    char req[8192], resp[4096];
    size_t off = 0;
    int fd = gwh_tcp_connect(port);
    int64_t deadline = gwh_now_ms() + 10000;

    *status = -1;
    if (fd < 0)
        return -1;
    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
             target, headers ? headers : "");
    if (write_full(fd, req, strlen(req))) {
        close(fd);
        return -1;
    }
    /* Byte by byte, so no frame byte is consumed with the headers. */
    while (off + 1 < sizeof(resp)) {
        if (read_full(fd, resp + off, 1, deadline))
            break;
        off++;
        resp[off] = '\0';
        if (off >= 4 && !memcmp(resp + off - 4, "\r\n\r\n", 4))
            break;
    }
    resp[off] = '\0';
    if (sscanf(resp, "HTTP/1.%*d %d", status) != 1)
        *status = -1;
    if (*status != 101) {
        close(fd);
        return -1;
    }
    return fd;
}

int gwh_ws_send(int fd, int opcode, const void *data, size_t len, int fin)
{
    unsigned char hdr[14], mask[4] = {0x12, 0x34, 0x56, 0x78};
    unsigned char *buf;
    size_t h = 0;
    int rc;

    hdr[h++] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126)
        hdr[h++] = (unsigned char)(0x80 | len);
    else if (len < 65536) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    memcpy(hdr + h, mask, 4);
    h += 4;
    buf = malloc(h + len);
    if (buf == NULL)
        return -1;
    memcpy(buf, hdr, h);
    for (size_t i = 0; i < len; i++)
        buf[h + i] = ((const unsigned char *)data)[i] ^ mask[i % 4];
    rc = write_full(fd, buf, h + len);
    free(buf);
    return rc;
}

int gwh_ws_send_text(int fd, const char *text)
{
    return gwh_ws_send(fd, 1, text, strlen(text), 1);
}

int gwh_ws_recv(int fd, int timeout_ms, gwh_frame *f)
{
    unsigned char h[2], ext[8];
    int64_t deadline = gwh_now_ms() + timeout_ms;
    uint64_t len;
    int rc;

    memset(f, 0, sizeof(*f));
    rc = read_full(fd, h, 2, deadline);
    if (rc) {
        f->opcode = rc;
        return rc;
    }
    f->opcode = h[0] & 0x0f;
    len = h[1] & 0x7f;
    /* The frame has started: the rest follows at once; never stop mid-frame. */
    deadline = gwh_now_ms() + 5000;
    if (len == 126) {
        if (read_full(fd, ext, 2, deadline))
            return f->opcode = -2;
        len = ((uint64_t)ext[0] << 8) | ext[1];
    } else if (len == 127) {
        if (read_full(fd, ext, 8, deadline))
            return f->opcode = -2;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | ext[i];
    }
    if (len >= sizeof(f->data))
        return f->opcode = -2;
    if (len && read_full(fd, f->data, (size_t)len, deadline))
        return f->opcode = -2;
    f->len = (size_t)len;
    f->data[len] = '\0';
    if (f->opcode == 8 && len >= 2) {
        f->close_code = ((unsigned char)f->data[0] << 8) | (unsigned char)f->data[1];
        memmove(f->data, f->data + 2, len - 2);
        f->data[len - 2] = '\0';
        f->len = (size_t)len - 2;
    }
    return f->opcode;
}

int gwh_ws_wait_close(int fd, int timeout_ms, gwh_frame *f)
{
    int64_t deadline = gwh_now_ms() + timeout_ms;

    while (gwh_now_ms() < deadline) {
        int op = gwh_ws_recv(fd, (int)(deadline - gwh_now_ms()), f);

        if (op == 8)
            return f->close_code;
        if (op == -2)
            return 0;
        if (op == -1)
            return -1;
    }
    return -1;
}

int gwh_ws_wait_text(int fd, const char *needle, int timeout_ms, gwh_frame *f)
{
    int64_t deadline = gwh_now_ms() + timeout_ms;

    while (gwh_now_ms() < deadline) {
        int op = gwh_ws_recv(fd, (int)(deadline - gwh_now_ms()), f);

        if (op == 1 && strstr(f->data, needle))
            return 0;
        if (op < 0 || op == 8)
            return -1;
    }
    return -1;
}

void gwh_token(int64_t user, long ttl, char *out, size_t size)
{
    char cmd[512];
    FILE *p;

    gwh_env("VC_TOKEN_SECRET");
    snprintf(cmd, sizeof(cmd), "%s token --user %lld --ttl %ld", GWH_GATEWAY_BIN, (long long)user, ttl);
    p = popen(cmd, "r");
    cr_assert_not_null(p);
    cr_assert_not_null(fgets(out, (int)size, p), "vc-gateway token printed nothing");
    pclose(p);
    out[strcspn(out, "\r\n")] = '\0';
}

/* ---- events ---- */

typedef struct {
    vc_event ev;
    int32_t partition;
} seen_event;

struct gwh_events {
    rd_kafka_t *rk;
    int32_t partitions;
    seen_event *seen;
    size_t n, cap;
};

gwh_events *gwh_events_new(void)
{
    gwh_events *ev = calloc(1, sizeof(*ev));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *topic = getenv("VC_EVENTS_TOPIC") ? getenv("VC_EVENTS_TOPIC") : "vc.events";
    char err[512], group[64];
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_partition_list_t *parts;
    rd_kafka_topic_t *rkt;

    snprintf(group, sizeof(group), "gwtest-%d", (int)getpid());
    rd_kafka_conf_set(conf, "bootstrap.servers", gwh_env("VC_KAFKA_BROKERS"), err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
    ev->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    cr_assert_not_null(ev->rk, "consumer: %s", err);
    rkt = rd_kafka_topic_new(ev->rk, topic, NULL);
    cr_assert_eq(rd_kafka_metadata(ev->rk, 0, rkt, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR, "metadata of %s", topic);
    cr_assert_eq(md->topic_cnt, 1);
    ev->partitions = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    cr_assert_gt(ev->partitions, 0, "topic %s has no partitions", topic);
    parts = rd_kafka_topic_partition_list_new(ev->partitions);
    for (int32_t p = 0; p < ev->partitions; p++) {
        int64_t lo, hi;

        cr_assert_eq(rd_kafka_query_watermark_offsets(ev->rk, topic, p, &lo, &hi, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = hi;
    }
    cr_assert_eq(rd_kafka_assign(ev->rk, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(parts);
    return ev;
}

void gwh_events_destroy(gwh_events *ev)
{
    if (ev == NULL)
        return;
    for (size_t i = 0; i < ev->n; i++)
        vc_event_free(&ev->seen[i].ev);
    free(ev->seen);
    rd_kafka_consumer_close(ev->rk);
    rd_kafka_destroy(ev->rk);
    free(ev);
}

static int matches(const vc_event *e, const char *gateway_id, vc_event_type type, vc_leave_reason reason)
{
    return !strcmp(e->gateway_id, gateway_id) && e->type == type && (reason == VC_LEAVE_NONE || e->reason == reason);
}

static int count_matching(gwh_events *ev, const char *gateway_id, vc_event_type type, vc_leave_reason reason)
{
    int n = 0;

    for (size_t i = 0; i < ev->n; i++)
        n += matches(&ev->seen[i].ev, gateway_id, type, reason);
    return n;
}

int gwh_events_wait(gwh_events *ev, const char *gateway_id, vc_event_type type, vc_leave_reason reason, int n,
                    int timeout_ms)
{
    int64_t deadline = gwh_now_ms() + timeout_ms;

    while (count_matching(ev, gateway_id, type, reason) < n && gwh_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ev->rk, 100);
        char err[256];

        if (m == NULL)
            continue;
        if (!m->err) {
            seen_event s;

            vc_event_init(&s.ev);
            s.partition = m->partition;
            cr_assert_eq(vc_event_decode(m->payload, m->len, &s.ev, err, sizeof(err)), VC_CODEC_OK,
                         "an event on the topic does not decode: %s", err);
            if (ev->n == ev->cap) {
                ev->cap = ev->cap ? ev->cap * 2 : 256;
                ev->seen = realloc(ev->seen, ev->cap * sizeof(*ev->seen));
                cr_assert_not_null(ev->seen);
            }
            ev->seen[ev->n++] = s;
        }
        rd_kafka_message_destroy(m);
    }
    return count_matching(ev, gateway_id, type, reason);
}

size_t gwh_events_get(gwh_events *ev, const char *gateway_id, vc_event_type type, const vc_event **out, size_t max)
{
    size_t k = 0;

    for (size_t i = 0; i < ev->n && k < max; i++)
        if (matches(&ev->seen[i].ev, gateway_id, type, VC_LEAVE_NONE))
            out[k++] = &ev->seen[i].ev;
    return k;
}

int32_t gwh_events_partitions(gwh_events *ev)
{
    return ev->partitions;
}

int32_t gwh_events_partition_of(gwh_events *ev, const vc_event *e)
{
    for (size_t i = 0; i < ev->n; i++)
        if (&ev->seen[i].ev == e)
            return ev->seen[i].partition;
    return -1;
}

double gwh_metric(int port, const char *series)
{
    static char body[65536];
    size_t n = strlen(series);

    if (gwh_http_get(port, "/metrics", body, sizeof(body)) != 200)
        return -1;
    for (char *line = body; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, series, n) && line[n] == ' ')
            return strtod(line + n + 1, NULL);
    return -1;
}

ssize_t gwh_read_some(int fd, void *buf, size_t size, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};

    if (poll(&p, 1, timeout_ms) <= 0)
        return -1;
    return read(fd, buf, size);
}
