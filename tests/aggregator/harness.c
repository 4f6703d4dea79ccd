/* harness.c -- see harness.h. */
#include "harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vc_keys.h"
#include "vc_partition.h"

static const char *need_env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        cr_assert_fail("%s is not set: run the integration tests on a stack "
                 "(tests/run, or source <(deploy/local/stack env))", name);
    return v;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    h_ctx *h = opaque;
    (void)rk;
    if (msg->err)
        cr_log_error("delivery failed: %s", rd_kafka_err2str(msg->err));
    else if (msg->partition >= 0 && msg->partition < H_PARTITIONS && msg->offset > h->last_offset[msg->partition])
        h->last_offset[msg->partition] = msg->offset;
}

static int run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_cmd(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* A connection to host:port when that node answers and is a master, else NULL. */
static redisContext *connect_master(const char *host, int port, int timeout_s)
{
    struct timeval tv = {timeout_s, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (c == NULL || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisReply *role = redisCommand(c, "ROLE");
    int master = role && role->type == REDIS_REPLY_ARRAY && role->elements > 0 &&
                 role->element[0]->type == REDIS_REPLY_STRING && strcmp(role->element[0]->str, "master") == 0;
    if (role)
        freeReplyObject(role);
    if (!master) {
        redisFree(c);
        return NULL;
    }
    return c;
}

void h_flush_redis(h_ctx *h)
{
    char masters[512], *save = NULL;
    /* every node, asking each for its role: a failover may have moved the masters */
    snprintf(masters, sizeof(masters), "%s", h->redis_nodes);
    for (char *tok = strtok_r(masters, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char host[256];
        int port;
        const char *colon = strrchr(tok, ':');
        cr_assert_not_null(colon);
        snprintf(host, sizeof(host), "%.*s", (int)(colon - tok), tok);
        port = (int)strtol(colon + 1, NULL, 10);
        /* a master may be down in a fault test: flush what answers */
        redisContext *c = connect_master(host, port, 5);
        if (c == NULL)
            continue;
        redisReply *r = redisCommand(c, "FLUSHALL");
        if (r)
            freeReplyObject(r);
        r = redisCommand(c, "WAIT 1 5000");
        if (r)
            freeReplyObject(r);
        redisFree(c);
    }
}

void h_setup(h_ctx *h, const char *tag)
{
    char err[512];
    rd_kafka_conf_t *conf;
    const char *repo = AGG_TEST_REPO;

    memset(h, 0, sizeof(*h));
    h->brokers = need_env("VC_KAFKA_BROKERS");
    h->redis_nodes = need_env("VC_REDIS_NODES");
    h->redis_masters = need_env("VC_REDIS_MASTERS");
    h->stack_dir = need_env("VC_STACK_DIR");
    for (int i = 0; i < H_PARTITIONS; i++)
        h->last_offset[i] = -1;
    snprintf(h->topic, sizeof(h->topic), "agg.%s.%d.%ld", tag, (int)getpid(), (long)time(NULL));
    snprintf(h->dlq, sizeof(h->dlq), "%s.dlq", h->topic);
    snprintf(h->ckpt, sizeof(h->ckpt), "%s.ckpt", h->topic);
    snprintf(h->group, sizeof(h->group), "vc-aggregator-%s", h->topic);
    cr_assert_eq(run_cmd("VC_STACK_DIR='%s' '%s/deploy/local/stack' broker topic %s %d >/dev/null",
                         h->stack_dir, repo, h->topic, H_PARTITIONS), 0, "cannot create topic %s", h->topic);
    cr_assert_eq(run_cmd("VC_STACK_DIR='%s' '%s/deploy/local/stack' broker topic %s 1 >/dev/null",
                         h->stack_dir, repo, h->dlq), 0);
    cr_assert_eq(run_cmd("VC_STACK_DIR='%s' '%s/deploy/local/stack' broker topic %s 2 >/dev/null",
                         h->stack_dir, repo, h->ckpt), 0);
    h_flush_redis(h);

    vc_redis_conf rc = {h->redis_nodes, 0, 5000};
    h->redis = vc_redis_new(&rc, err, sizeof(err));
    cr_assert_not_null(h->redis, "redis: %s", err);

    conf = rd_kafka_conf_new();
    cr_assert_eq(rd_kafka_conf_set(conf, "bootstrap.servers", h->brokers, err, sizeof(err)), RD_KAFKA_CONF_OK);
    cr_assert_eq(rd_kafka_conf_set(conf, "partitioner", "murmur2_random", err, sizeof(err)), RD_KAFKA_CONF_OK);
    cr_assert_eq(rd_kafka_conf_set(conf, "linger.ms", "2", err, sizeof(err)), RD_KAFKA_CONF_OK);
    cr_assert_eq(rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err)), RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, h);
    h->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    cr_assert_not_null(h->rk, "producer: %s", err);
}

void h_teardown(h_ctx *h)
{
    if (h->rk) {
        rd_kafka_flush(h->rk, 10000);
        rd_kafka_destroy(h->rk);
    }
    vc_redis_destroy(h->redis);
}

void h_produce_raw(h_ctx *h, int64_t stream_key, const void *buf, size_t len)
{
    char key[VC_STREAM_KEY_MAX];
    size_t klen = vc_stream_key(stream_key, key);
    rd_kafka_resp_err_t err;
    do {
        err = rd_kafka_producev(h->rk, RD_KAFKA_V_TOPIC(h->topic), RD_KAFKA_V_KEY(key, klen),
                                RD_KAFKA_V_VALUE((void *)buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(h->rk, 10);
    } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
    cr_assert_eq(err, 0, "produce: %s", rd_kafka_err2str(err));
    rd_kafka_poll(h->rk, 0);
}

void h_produce(h_ctx *h, const vc_event *ev)
{
    uint8_t buf[VC_EVENT_ENCODED_MAX];
    size_t len = 0;
    vc_codec_rc rc = vc_event_encode(ev, buf, sizeof(buf), &len);
    cr_assert_eq(rc, VC_CODEC_OK, "encode: %s", vc_codec_strerror(rc));
    h_produce_raw(h, ev->stream_id, buf, len);
}

void h_sync(h_ctx *h)
{
    cr_assert_eq(rd_kafka_flush(h->rk, 30000), 0, "produce did not complete in 30 s");
}

void h_heartbeat_all(h_ctx *h, const char *gw, int64_t epoch, int64_t ts)
{
    /* A heartbeat has stream_id 0; find a key of every partition. */
    for (int p = 0; p < H_PARTITIONS; p++) {
        for (int64_t k = 1; k < 1000; k++) {
            if (vc_stream_partition(k, H_PARTITIONS) == p) {
                uint8_t buf[VC_EVENT_ENCODED_MAX];
                size_t len = 0;
                vc_event ev = h_heartbeat(gw, epoch, ts);
                cr_assert_eq(vc_event_encode(&ev, buf, sizeof(buf), &len), VC_CODEC_OK);
                h_produce_raw(h, k, buf, len);
                break;
            }
        }
    }
}

void h_agg_env(h_ctx *h)
{
    setenv("VC_EVENTS_TOPIC", h->topic, 1);
    setenv("VC_DLQ_TOPIC", h->dlq, 1);
    setenv("VC_CHECKPOINT_TOPIC", h->ckpt, 1);
    setenv("VC_AGGREGATOR_GROUP", h->group, 1);
    setenv("VC_AGGREGATOR_HTTP_PORT", "0", 1);
    setenv("VC_CATEGORY_REFRESH_MS", "0", 1);
}

pid_t h_agg_start(h_ctx *h, const char *const *extra)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        /* dies with the test process, even when an assertion ends the test early */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        h_agg_env(h);
        for (int i = 0; extra && extra[i]; i++) {
            char name[128];
            const char *eq = strchr(extra[i], '=');
            snprintf(name, sizeof(name), "%.*s", (int)(eq - extra[i]), extra[i]);
            setenv(name, eq + 1, 1);
        }
        execl(AGG_TEST_BIN, "vc-aggregator", (char *)NULL);
        _exit(127);
    }
    return pid;
}

int h_agg_stop(pid_t pid, int sig)
{
    int status = 0;
    kill(pid, sig);
    for (int i = 0; i < 6000; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}

redisReply *h_cmd(h_ctx *h, const char *key, const char *fmt, ...)
{
    char err[256];
    va_list ap;
    vc_redis_batch *b = vc_redis_batch_new(h->redis, 0);
    char cmd[1024];
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    /* simple commands only: space-separated arguments */
    const char *argv[32];
    size_t argvlen[32];
    int argc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(cmd, " ", &save); tok && argc < 32; tok = strtok_r(NULL, " ", &save)) {
        argv[argc] = tok;
        argvlen[argc++] = strlen(tok);
    }
    vc_redis_batch_add(b, key, argc, argv, argvlen);
    redisReply *copy = NULL;
    for (int attempt = 0; attempt < 20; attempt++) {
        if (vc_redis_batch_exec(b, err, sizeof(err)) == 0)
            break;
        sleep_ms(250);
    }
    const redisReply *r = vc_redis_batch_reply(b, 0);
    cr_assert_not_null(r, "redis: %s", err);
    /* deep copy of what the tests use: integers, strings, nil, arrays of strings */
    copy = calloc(1, sizeof(*copy));
    copy->type = r->type;
    copy->integer = r->integer;
    if (r->str) {
        copy->str = strndup(r->str, r->len);
        copy->len = r->len;
    }
    if (r->type == REDIS_REPLY_ARRAY) {
        copy->elements = r->elements;
        copy->element = calloc(r->elements + 1, sizeof(*copy->element));
        for (size_t i = 0; i < r->elements; i++) {
            redisReply *e = calloc(1, sizeof(*e));
            e->type = r->element[i]->type;
            e->integer = r->element[i]->integer;
            if (r->element[i]->str) {
                e->str = strndup(r->element[i]->str, r->element[i]->len);
                e->len = r->element[i]->len;
            }
            copy->element[i] = e;
        }
    }
    vc_redis_batch_destroy(b);
    return copy;
}

static char *stream_key(int64_t stream, char *buf)
{
    vc_key_stream(buf, VC_KEY_MAX, vc_stream_partition(stream, H_PARTITIONS), stream);
    return buf;
}

char *h_stream_str(h_ctx *h, int64_t stream, const char *field)
{
    char key[VC_KEY_MAX];
    redisReply *r = h_cmd(h, stream_key(stream, key), "HGET %s %s", key, field);
    char *s = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return s;
}

long long h_stream_int(h_ctx *h, int64_t stream, const char *field)
{
    char *s = h_stream_str(h, stream, field);
    long long v = s ? strtoll(s, NULL, 10) : -1;
    free(s);
    return v;
}

long long h_rank_score(h_ctx *h, int64_t stream, int64_t cat)
{
    char key[VC_KEY_MAX];
    int32_t p = vc_stream_partition(stream, H_PARTITIONS);
    if (cat > 0)
        vc_key_rank_category(key, sizeof(key), p, cat);
    else
        vc_key_rank(key, sizeof(key), p);
    redisReply *r = h_cmd(h, key, "ZSCORE %s %lld", key, (long long)stream);
    long long v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
    return v;
}

int h_wait_applied(h_ctx *h, int seconds)
{
    for (int i = 0; i < seconds * 10; i++) {
        int ok = 1;
        for (int p = 0; p < H_PARTITIONS && ok; p++) {
            char key[VC_KEY_MAX];
            if (h->last_offset[p] < 0)
                continue;
            vc_key_meta(key, sizeof(key), p);
            redisReply *r = h_cmd(h, key, "HGET %s offset", key);
            ok = r->type == REDIS_REPLY_STRING && strtoll(r->str, NULL, 10) >= h->last_offset[p];
            freeReplyObject(r);
        }
        if (ok)
            return 1;
        sleep_ms(100);
    }
    return 0;
}

vc_event h_join(int64_t stream, int64_t user, int64_t conn, const char *gw, int64_t epoch, int64_t ts)
{
    vc_event ev;
    static int64_t seq;
    vc_event_init(&ev);
    ev.type = VC_EV_JOIN;
    ev.stream_id = stream;
    ev.user_id = user;
    ev.conn_id = conn;
    snprintf(ev.gateway_id, sizeof(ev.gateway_id), "%s", gw);
    ev.gateway_epoch = epoch;
    ev.seq = ++seq;
    ev.ts_ms = ts;
    return ev;
}

vc_event h_leave(int64_t stream, int64_t conn, const char *gw, int64_t epoch, int64_t ts)
{
    vc_event ev = h_join(stream, 0, conn, gw, epoch, ts);
    ev.type = VC_EV_LEAVE;
    ev.reason = VC_LEAVE_CLIENT_CLOSED;
    return ev;
}

vc_event h_heartbeat(const char *gw, int64_t epoch, int64_t ts)
{
    vc_event ev = h_join(0, 0, 0, gw, epoch, ts);
    ev.type = VC_EV_HEARTBEAT;
    return ev;
}

static int model_stream(h_model *m, int64_t stream)
{
    for (int i = 0; i < m->n; i++)
        if (m->stream[i] == stream)
            return i;
    cr_assert_lt(m->n, H_MAX_STREAMS);
    m->stream[m->n] = stream;
    m->viewers[m->n] = 0;
    m->peak[m->n] = 0;
    return m->n++;
}

/* Counts per (stream, user) of open connections. */
static int model_user_conns(const h_model *m, int64_t stream, int64_t user)
{
    int n = 0;
    for (int i = 0; i < m->nconn; i++)
        n += m->conn_stream[i] == stream && m->conn_user[i] == user;
    return n;
}

void h_model_apply(h_model *m, const vc_event *ev)
{
    int s;
    if (ev->type == VC_EV_JOIN) {
        s = model_stream(m, ev->stream_id);
        if (ev->user_id == 0 || model_user_conns(m, ev->stream_id, ev->user_id) == 0)
            m->viewers[s]++;
        if (m->viewers[s] > m->peak[s])
            m->peak[s] = m->viewers[s];
        cr_assert_lt(m->nconn, 65536);
        m->conn[m->nconn] = ev->conn_id;
        m->conn_stream[m->nconn] = ev->stream_id;
        m->conn_user[m->nconn++] = ev->user_id;
    } else if (ev->type == VC_EV_LEAVE) {
        for (int i = 0; i < m->nconn; i++) {
            if (m->conn[i] == ev->conn_id && m->conn_stream[i] == ev->stream_id) {
                int64_t user = m->conn_user[i];
                m->nconn--;
                m->conn[i] = m->conn[m->nconn];
                m->conn_stream[i] = m->conn_stream[m->nconn];
                m->conn_user[i] = m->conn_user[m->nconn];
                s = model_stream(m, ev->stream_id);
                if (user == 0 || model_user_conns(m, ev->stream_id, user) == 0)
                    m->viewers[s]--;
                break;
            }
        }
    }
}

long long h_model_viewers(const h_model *m, int64_t stream)
{
    for (int i = 0; i < m->n; i++)
        if (m->stream[i] == stream)
            return m->viewers[i];
    return 0;
}

long long h_model_peak(const h_model *m, int64_t stream)
{
    for (int i = 0; i < m->n; i++)
        if (m->stream[i] == stream)
            return m->peak[i];
    return 0;
}

int h_stack(h_ctx *h, const char *args)
{
    return run_cmd("VC_STACK_DIR='%s' '%s/deploy/local/stack' %s >/dev/null 2>&1", h->stack_dir,
                   AGG_TEST_REPO, args);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join_reply(const redisReply *r, int pairs)
{
    size_t n = r->elements / (size_t)(pairs ? 2 : 1), total = 1;
    char **items = calloc(n + 1, sizeof(*items));
    char *out;
    for (size_t i = 0; i < n; i++) {
        const redisReply *a = r->element[pairs ? 2 * i : i];
        const redisReply *b = pairs ? r->element[2 * i + 1] : NULL;
        size_t len = a->len * 2 + (b ? b->len * 2 : 0) + 4;
        items[i] = malloc(len);
        size_t k = 0;
        for (size_t c = 0; c < a->len; c++)
            k += (size_t)snprintf(items[i] + k, len - k, "%02x", (unsigned char)a->str[c]);
        if (b) {
            items[i][k++] = '=';
            for (size_t c = 0; c < b->len; c++)
                k += (size_t)snprintf(items[i] + k, len - k, "%02x", (unsigned char)b->str[c]);
        }
        items[i][k] = '\0';
        total += k + 1;
    }
    if (n > 0)
        qsort(items, n, sizeof(*items), cmp_str);
    out = malloc(total);
    out[0] = '\0';
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(items[i]);
        memcpy(out + k, items[i], l);
        k += l;
        out[k++] = ',';
        free(items[i]);
    }
    out[k] = '\0';
    free(items);
    return out;
}

char *h_dump_keys(h_ctx *h, size_t *nkeys)
{
    char nodes[512], *save = NULL;
    char **lines = NULL;
    size_t n = 0, cap = 0, total = 1;
    snprintf(nodes, sizeof(nodes), "%s", h->redis_nodes);
    for (char *tok = strtok_r(nodes, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char host[256];
        const char *colon = strrchr(tok, ':');
        snprintf(host, sizeof(host), "%.*s", (int)(colon - tok), tok);
        redisContext *c = connect_master(host, (int)strtol(colon + 1, NULL, 10), 5);
        if (c == NULL)
            continue;
        char cursor[32] = "0";
        do {
            redisReply *r = redisCommand(c, "SCAN %s MATCH vc:* COUNT 1000", cursor);
            cr_assert(r && r->type == REDIS_REPLY_ARRAY);
            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
            for (size_t i = 0; i < r->element[1]->elements; i++) {
                const char *key = r->element[1]->element[i]->str;
                redisReply *t = redisCommand(c, "TYPE %s", key), *v = NULL;
                int pairs = 0;
                if (strcmp(t->str, "hash") == 0) {
                    v = redisCommand(c, "HGETALL %s", key);
                    pairs = 1;
                } else if (strcmp(t->str, "zset") == 0) {
                    v = redisCommand(c, "ZRANGE %s 0 -1 WITHSCORES", key);
                    pairs = 1;
                } else if (strcmp(t->str, "set") == 0) {
                    v = redisCommand(c, "SMEMBERS %s", key);
                } else {
                    v = redisCommand(c, "DUMP %s", key);
                }
                char *body = v->type == REDIS_REPLY_ARRAY ? join_reply(v, pairs) : strdup(v->str ? v->str : "");
                size_t len = strlen(key) + strlen(t->str) + strlen(body) + 3;
                if (n == cap) {
                    cap = cap ? cap * 2 : 256;
                    lines = realloc(lines, cap * sizeof(*lines));
                }
                lines[n] = malloc(len);
                snprintf(lines[n], len, "%s %s %s", key, t->str, body);
                total += len;
                n++;
                free(body);
                freeReplyObject(t);
                freeReplyObject(v);
            }
            freeReplyObject(r);
        } while (strcmp(cursor, "0") != 0);
        redisFree(c);
    }
    if (n > 0)
        qsort(lines, n, sizeof(*lines), cmp_str);
    char *out = malloc(total);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(lines[i]);
        memcpy(out + k, lines[i], l);
        k += l;
        out[k++] = '\n';
        free(lines[i]);
    }
    out[k] = '\0';
    free(lines);
    *nkeys = n;
    return out;
}

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

char *h_http_get(int port, const char *path)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char req[256], *buf = malloc(1 << 17);
    size_t len = 0;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (fd >= 0)
            close(fd);
        free(buf);
        return NULL;
    }
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        free(buf);
        return NULL;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, (1 << 17) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    char *out = body ? strdup(body + 4) : NULL;
    if (out && strncmp(buf, "HTTP/1.1 200", 12) != 0) {
        free(out);
        out = NULL;
    }
    free(buf);
    return out;
}

int h_http_port(int i)
{
    return (int)strtol(need_env("VC_PORT_BASE"), NULL, 10) + 39 - i;
}

int h_wait_assigned(int port, int seconds)
{
    char want[64];
    snprintf(want, sizeof(want), "vc_aggregator_lag{partition=\"%d\"}", H_PARTITIONS - 1);
    for (int i = 0; i < seconds * 10; i++) {
        char *m = h_http_get(port, "/metrics");
        int ok = m && strstr(m, want) != NULL;
        free(m);
        if (ok)
            return 1;
        sleep_ms(100);
    }
    return 0;
}

int h_master_of(h_ctx *h, const char *key)
{
    int base = (int)strtol(need_env("VC_PORT_BASE"), NULL, 10);
    (void)h;
    for (int i = 0; i < 6; i++) {
        struct timeval tv = {2, 0};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", base + i, tv);
        if (c == NULL || c->err) {
            if (c)
                redisFree(c);
            continue;
        }
        redisReply *r = redisCommand(c, "EXISTS %s", key);
        int owner = r && r->type == REDIS_REPLY_INTEGER;
        if (r)
            freeReplyObject(r);
        redisFree(c);
        if (owner)
            return i;
    }
    return -1;
}

int h_pause_masters(h_ctx *h, int ms)
{
    int base = (int)strtol(need_env("VC_PORT_BASE"), NULL, 10), paused = 0;
    (void)h;
    for (int i = 0; i < 6; i++) {
        redisContext *c = connect_master("127.0.0.1", base + i, 2);
        if (c == NULL)
            continue;
        redisReply *r = redisCommand(c, "CLIENT PAUSE %d ALL", ms);
        paused += r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        redisFree(c);
    }
    return paused;
}

/* ---- a random workload with its ground truth ------------------------------ */

static const char *const workload_gws[2] = {"gw-a", "gw-b"};

h_workload *h_workload_new(unsigned seed, int64_t first_stream, int nstreams)
{
    h_workload *w = calloc(1, sizeof(*w));

    cr_assert_not_null(w);
    w->seed = seed;
    w->ts = 1700000000000LL;
    w->first_stream = first_stream;
    w->nstreams = nstreams;
    return w;
}

/* Leaves pick any open connection, also those of earlier phases. */
void h_workload_run(h_ctx *h, h_workload *w, int events)
{
    for (int i = 0; i < events; i++) {
        vc_event ev;
        if (w->nopen > 0 && rand_r(&w->seed) % 100 < 40) {
            int k = rand_r(&w->seed) % w->nopen;
            ev = h_leave(w->open_stream[k], w->open_conn[k], workload_gws[w->open_gw[k]], 1, w->ts++);
            w->nopen--;
            w->open_conn[k] = w->open_conn[w->nopen];
            w->open_stream[k] = w->open_stream[w->nopen];
            w->open_gw[k] = w->open_gw[w->nopen];
        } else {
            int64_t stream = w->first_stream + rand_r(&w->seed) % w->nstreams;
            int64_t user = rand_r(&w->seed) % 100 < 20 ? 0 : 1 + rand_r(&w->seed) % 200;
            int gw = rand_r(&w->seed) % 2;
            cr_assert_lt(w->nopen, 65536, "workload: too many open connections");
            ev = h_join(stream, user, ++w->next_conn, workload_gws[gw], 1, w->ts++);
            w->open_conn[w->nopen] = ev.conn_id;
            w->open_stream[w->nopen] = stream;
            w->open_gw[w->nopen++] = gw;
        }
        h_produce(h, &ev);
        h_model_apply(&w->m, &ev);
    }
}

void h_workload_expect(h_ctx *h, const h_workload *w)
{
    for (int s = 0; s < w->nstreams; s++) {
        int64_t id = w->first_stream + s;
        long long want = h_model_viewers(&w->m, id), got = h_stream_int(h, id, "viewers");
        if (want == 0 && got == -1)
            continue;
        cr_expect_eq(got, want, "stream %lld: %lld viewers in Redis, %lld in the events", (long long)id, got, want);
        cr_expect_eq(h_stream_int(h, id, "peak"), h_model_peak(&w->m, id), "peak of stream %lld", (long long)id);
        cr_expect_eq(h_rank_score(h, id, 0), want > 0 ? want : -1, "rank of stream %lld", (long long)id);
    }
}

void h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

long long h_metric(int port, const char *name)
{
    char want[128];
    char *m = h_http_get(port, "/metrics");
    long long v = -1;
    snprintf(want, sizeof(want), "\n%s ", name);
    const char *c = m ? strstr(m, want) : NULL;
    if (c)
        v = strtoll(c + strlen(want), NULL, 10);
    free(m);
    return v;
}

long long h_wait_metric(int port, const char *name, long long want, int seconds)
{
    long long v = -1;
    for (int i = 0; i < seconds * 10; i++) {
        v = h_metric(port, name);
        if (v >= want)
            break;
        h_sleep_ms(100);
    }
    return v;
}
