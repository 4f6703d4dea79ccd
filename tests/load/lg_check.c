/* lg_check.c -- HTTP and Redis views of the counts (see lg_check.h). */
#include "lg_check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lg_worker.h"
#include "vc_keys.h"
#include "vc_partition.h"

#define INFLIGHT 256
#define RESP_MAX 2048

typedef struct {
    int fd;
    size_t idx;
    int sent;
    char req[160];
    size_t reqlen;
    char resp[RESP_MAX];
    size_t resplen;
} req;

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void parse_answer(const req *q, lg_api_ans *a)
{
    const char *body;
    json_error_t err;
    json_t *j, *v;
    const char *st;

    if (q->resplen < 12 || strncmp(q->resp, "HTTP/1.", 7) != 0)
        return;
    a->http = (int)strtol(q->resp + 9, NULL, 10);
    body = memmem(q->resp, q->resplen, "\r\n\r\n", 4);
    if (body == NULL)
        return;
    body += 4;
    j = json_loadb(body, q->resplen - (size_t)(body - q->resp), 0, &err);
    if (j == NULL)
        return;
    st = json_string_value(json_object_get(j, "status"));
    a->status = st == NULL                   ? LG_ST_OTHER
                : strcmp(st, "live") == 0    ? LG_ST_LIVE
                : strcmp(st, "syncing") == 0 ? LG_ST_SYNCING
                : strcmp(st, "stale") == 0   ? LG_ST_STALE
                : strcmp(st, "counting") == 0 ? LG_ST_COUNTING
                                             : LG_ST_OTHER;
    v = json_object_get(j, "viewers");
    a->viewers = json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
    json_decref(j);
}

static int req_start(req *q, const struct sockaddr_in *gw, int64_t stream, uint32_t src)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int one = 1;

    q->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (q->fd < 0)
        return -1;
    setsockopt(q->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    sa.sin_addr.s_addr = htonl(src);
    (void)bind(q->fd, (struct sockaddr *)&sa, sizeof(sa));
    q->sent = 0;
    q->resplen = 0;
    q->reqlen = (size_t)snprintf(q->req, sizeof(q->req),
                                 "GET /api/streams/%lld HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n",
                                 (long long)stream, ntohs(gw->sin_port));
    if (connect(q->fd, (const struct sockaddr *)gw, sizeof(*gw)) && errno != EINPROGRESS) {
        close(q->fd);
        q->fd = -1;
        return -1;
    }
    return 0;
}

void lg_api_query(const struct sockaddr_in *gws, int ngw, const int64_t *streams, size_t n, lg_api_ans *ans,
                  int timeout_ms, uint32_t src)
{
    size_t total = n * (size_t)ngw, next = 0, active = 0;
    req *qs = calloc(INFLIGHT, sizeof(req));
    struct pollfd pfd[INFLIGHT];
    int64_t deadline = mono_ms() + timeout_ms;

    for (size_t i = 0; i < total; i++) {
        ans[i].http = 0;
        ans[i].status = LG_ST_NONE;
        ans[i].viewers = -1;
    }
    if (qs == NULL)
        return;
    for (int i = 0; i < INFLIGHT; i++)
        qs[i].fd = -1;
    while (next < total || active > 0) {
        int np = 0, rc;
        int64_t left;

        for (int i = 0; i < INFLIGHT && next < total; i++) {
            if (qs[i].fd >= 0)
                continue;
            qs[i].idx = next++;
            if (req_start(&qs[i], &gws[qs[i].idx % (size_t)ngw], streams[qs[i].idx / (size_t)ngw], src) == 0)
                active++;
        }
        for (int i = 0; i < INFLIGHT; i++) {
            pfd[i].fd = qs[i].fd;
            pfd[i].events = qs[i].fd < 0 ? 0 : qs[i].sent ? POLLIN : POLLOUT;
            pfd[i].revents = 0;
            np++;
        }
        left = deadline - mono_ms();
        if (left <= 0)
            break;
        rc = poll(pfd, (nfds_t)np, (int)(left < 100 ? left : 100));
        if (rc < 0 && errno != EINTR)
            break;
        for (int i = 0; i < INFLIGHT; i++) {
            req *q = &qs[i];
            int done = 0;

            if (q->fd < 0 || pfd[i].revents == 0)
                continue;
            if (!q->sent) {
                ssize_t w = send(q->fd, q->req, q->reqlen, MSG_NOSIGNAL);

                if (w == (ssize_t)q->reqlen)
                    q->sent = 1;
                else if (!(w < 0 && errno == EAGAIN))
                    done = 1;
            } else {
                ssize_t r = recv(q->fd, q->resp + q->resplen, sizeof(q->resp) - 1 - q->resplen, 0);

                if (r > 0) {
                    q->resplen += (size_t)r;
                    if (q->resplen == sizeof(q->resp) - 1)
                        done = 1;
                } else if (!(r < 0 && (errno == EAGAIN || errno == EINTR))) {
                    done = 1;
                }
                if (done)
                    parse_answer(q, &ans[q->idx]);
            }
            if (done) {
                close(q->fd);
                q->fd = -1;
                active--;
            }
        }
    }
    for (int i = 0; i < INFLIGHT; i++)
        if (qs[i].fd >= 0)
            close(qs[i].fd);
    free(qs);
}

int lg_redis_query(vc_redis *r, int32_t partitions, const int64_t *streams, size_t n, lg_redis_ans *ans,
                   char *errstr, size_t errstr_size)
{
    vc_redis_batch *b = vc_redis_batch_new(r, 1);
    int rc = 0;

    if (b == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char key[VC_KEY_MAX];

        vc_key_stream(key, sizeof(key), vc_stream_partition(streams[i], partitions), streams[i]);
        if (vc_redis_batch_addf(b, key, "HMGET %s %s %s", key, VC_FIELD_VIEWERS, VC_FIELD_STATUS) < 0) {
            snprintf(errstr, errstr_size, "batch over its bound");
            rc = -1;
            goto out;
        }
    }
    if (vc_redis_batch_exec(b, errstr, errstr_size)) {
        rc = -1;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *rep = vc_redis_batch_reply(b, (int)i);

        ans[i].found = 0;
        ans[i].viewers = -1;
        ans[i].syncing = 0;
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            snprintf(errstr, errstr_size, "unexpected reply to HMGET of stream %lld", (long long)streams[i]);
            rc = -1;
            goto out;
        }
        if (rep->element[0]->type == REDIS_REPLY_STRING) {
            ans[i].found = 1;
            ans[i].viewers = strtoll(rep->element[0]->str, NULL, 10);
        }
        if (rep->element[1]->type == REDIS_REPLY_STRING && strcmp(rep->element[1]->str, "syncing") == 0)
            ans[i].syncing = 1;
    }
out:
    vc_redis_batch_destroy(b);
    return rc;
}

/* "vc:{vc.P}:u:<stream>" or "vc:{vc.P}:g:<G>:<stream>" -> stream, else -1. */
static int64_t leftover_stream(const char *key)
{
    const char *p = strstr(key, "}:"), *last;

    if (p == NULL || (strncmp(p + 2, "u:", 2) != 0 && strncmp(p + 2, "g:", 2) != 0))
        return -1;
    last = strrchr(key, ':');
    return last ? strtoll(last + 1, NULL, 10) : -1;
}

/* Members of the index set key that are streams in [lo, hi]. */
static long index_members_in(redisContext *c, const char *key, int64_t lo, int64_t hi)
{
    redisReply *rep = redisCommand(c, "SMEMBERS %s", key);
    long n = 0;

    if (rep && rep->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < rep->elements; i++) {
            int64_t s = rep->element[i]->str ? strtoll(rep->element[i]->str, NULL, 10) : -1;

            n += s >= lo && s <= hi;
        }
    freeReplyObject(rep);
    return n;
}

long lg_redis_leftovers(const char *nodes, int64_t stream_lo, int64_t stream_hi, char *sample, size_t sample_size,
                        long *index_members)
{
    char *copy = strdup(nodes), *save = NULL;
    long found = 0;
    size_t used = 0;

    *index_members = 0;
    if (copy == NULL)
        return -1;
    if (sample_size)
        sample[0] = '\0';
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(tok, ':');
        struct timeval tv = {2, 0};
        redisContext *c;
        redisReply *rep;
        char cursor[32] = "0";
        int master;

        if (colon == NULL)
            continue;
        *colon = '\0';
        c = redisConnectWithTimeout(tok, (int)strtol(colon + 1, NULL, 10), tv);
        if (c == NULL || c->err) {
            /* A node that is down (a fault case) holds nothing we can see:
             * its replica answers for its slots. */
            redisFree(c);
            continue;
        }
        redisSetTimeout(c, tv);
        rep = redisCommand(c, "ROLE");
        master = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                 rep->element[0]->type == REDIS_REPLY_STRING && strcmp(rep->element[0]->str, "master") == 0;
        freeReplyObject(rep);
        while (master) {
            rep = redisCommand(c, "SCAN %s MATCH vc:* COUNT 1000", cursor);
            if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
                freeReplyObject(rep);
                found = -1;
                break;
            }
            snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
            for (size_t i = 0; i < rep->element[1]->elements; i++) {
                const char *key = rep->element[1]->element[i]->str;
                const char *gs = strstr(key, "}:gs:");
                int64_t s = leftover_stream(key);

                if (gs != NULL) {
                    *index_members += index_members_in(c, key, stream_lo, stream_hi);
                    continue;
                }
                if (s < stream_lo || s > stream_hi)
                    continue;
                found++;
                if (used + strlen(key) + 2 < sample_size && found <= 5)
                    used += (size_t)snprintf(sample + used, sample_size - used, "%s%s", used ? " " : "", key);
            }
            freeReplyObject(rep);
            if (strcmp(cursor, "0") == 0)
                break;
        }
        redisFree(c);
        if (found < 0)
            break;
    }
    free(copy);
    return found;
}
