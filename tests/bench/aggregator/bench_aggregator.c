/* bench_aggregator -- on a running local stack (source <(deploy/local/stack env)):
 *
 *   bench_aggregator [viewers] [churn]
 *
 * 1. produces a workload to a fresh 12-partition topic: `viewers` joins over
 *    2000 streams (a few large, many small; 80% signed-in users, some with
 *    two tabs), then `churn` leave+join pairs, plus gateway heartbeats;
 * 2. FLUSHALL, then times `vc-aggregator rebuild` replaying the whole topic
 *    into the cluster: events/s of one process;
 * 3. reads INFO memory of every master before and after: bytes per viewer;
 * 4. runs redis-benchmark -P 64 (SET, --cluster) against the same cluster:
 *    the pipelined ceiling, and prints the ratio.
 * Prints one Markdown table row set for the README.
 *
 *   bench_aggregator live [events_per_s] [seconds]
 *
 * runs one vc-aggregator on a fresh topic, produces joins and leaves at the
 * given rate (default 25000/s, 10 s) and measures, per event, the time from
 * its produce call to the moment its partition's applied offset in Redis
 * (meta hash, polled every millisecond) covers it: p50, p99, max; beside it
 * the Kafka-only floor of the same run (below) and the aggregator's own
 * event-age histogram (share of events within 50 ms).
 *
 *   bench_aggregator floor [events_per_s] [seconds] [producers] [linger_ms]
 *
 * the Kafka-only path alone: `producers` processes (like as many gateways)
 * share the rate into a fresh 12-partition topic, a bare consumer with the
 * aggregator's fetch settings measures produce call to receipt. */
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vc_event.h"
#include "vc_keys.h"
#include "vc_redis.h"
#include "vc_partition.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || !*v) {
        fprintf(stderr, "bench_aggregator: %s is not set (source <(deploy/local/stack env))\n", name);
        exit(2);
    }
    return v;
}

static double masters_cpu; /* used_cpu_user + used_cpu_sys over the masters, at the last call */

/* Sum of used_memory over the masters; flush first when flush. */
static long long masters_memory(const char *nodes, int flush)
{
    masters_cpu = 0;
    char buf[1024], *save = NULL;
    long long total = 0;
    snprintf(buf, sizeof(buf), "%s", nodes);
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char host[256];
        char *colon = strrchr(tok, ':');
        snprintf(host, sizeof(host), "%.*s", (int)(colon - tok), tok);
        struct timeval tv = {5, 0};
        redisContext *c = redisConnectWithTimeout(host, (int)strtol(colon + 1, NULL, 10), tv);
        if (c == NULL || c->err)
            continue;
        redisReply *r = redisCommand(c, "ROLE");
        int master = r && r->type == REDIS_REPLY_ARRAY && strcmp(r->element[0]->str, "master") == 0;
        freeReplyObject(r);
        if (master) {
            if (flush)
                freeReplyObject(redisCommand(c, "FLUSHALL"));
            r = redisCommand(c, "INFO memory");
            const char *u = r && r->str ? strstr(r->str, "used_memory:") : NULL;
            if (u)
                total += strtoll(u + 12, NULL, 10);
            freeReplyObject(r);
            r = redisCommand(c, "INFO cpu");
            const char *cu = r && r->str ? strstr(r->str, "used_cpu_user:") : NULL;
            const char *cs = r && r->str ? strstr(r->str, "used_cpu_sys:") : NULL;
            masters_cpu += (cu ? strtod(cu + 14, NULL) : 0) + (cs ? strtod(cs + 13, NULL) : 0);
            freeReplyObject(r);
        }
        redisFree(c);
    }
    return total;
}

static long long produced;

static void produce(rd_kafka_t *rk, const char *topic, const vc_event *ev, int32_t partition)
{
    uint8_t buf[512];
    size_t len;
    char key[VC_STREAM_KEY_MAX];
    size_t klen = vc_stream_key(ev->stream_id, key);
    if (vc_event_encode(ev, buf, sizeof(buf), &len) != VC_CODEC_OK) {
        fprintf(stderr, "encode failed\n");
        exit(1);
    }
    while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                             RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE(buf, len),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(rk, 10);
    produced++;
}

typedef struct {
    double *sent;
    int32_t *part;
    int64_t *off;
} live_ctx;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The gateway's producer settings (gateway/producer.c): the latency measured
 * is the one a viewer's join sees. */
static rd_kafka_t *gateway_like_producer(const char *brokers, const char *linger_ms)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", linger_ms, err, sizeof(err));
    rd_kafka_conf_set(conf, "acks", "all", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == NULL)
        fprintf(stderr, "producer: %s\n", err);
    return rk;
}

/* The floor of the live figure, measured in the same run: the same producer
 * at the same rate into a fresh topic of the same broker, read by a bare
 * consumer with the aggregator's fetch settings (aggregator/service.c) that
 * does nothing else; per message, produce call to receipt. Whatever the
 * aggregator adds (decode, apply, the Redis write, the bench's 1 ms poll of
 * Redis) is the difference to the live row. Fills p50/p99 in ms; 0 on success. */
static int kafka_floor(const char *brokers, const char *stack, long rate, long seconds, int parts, int producers,
                       const char *linger_ms, double *p50, double *p99)
{
    char topic[128], cmd[1024], err[512];
    rate = rate / producers * producers; /* each producer sends rate / producers */
    size_t total = (size_t)(rate * seconds);
    snprintf(topic, sizeof(topic), "bench.floor.%d", (int)getpid());
    snprintf(cmd, sizeof(cmd), "VC_STACK_DIR='%s' '%s/deploy/local/stack' broker topic %s %d >/dev/null", stack,
             AGG_BENCH_REPO, topic, parts);
    if (system(cmd) != 0)
        return -1;
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "bootstrap.servers", brokers, err, sizeof(err));
        rd_kafka_conf_set(c, "group.id", topic, err, sizeof(err));
        rd_kafka_conf_set(c, "auto.offset.reset", "earliest", err, sizeof(err));
        rd_kafka_conf_set(c, "fetch.wait.max.ms", "10", err, sizeof(err));
        rd_kafka_conf_set(c, "queued.min.messages", "1000000", err, sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
        if (rk == NULL)
            _exit(1);
        rd_kafka_poll_set_consumer(rk);
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
        double *lat = calloc(total, sizeof(double)), end = now_s() + (double)seconds + 60;
        rd_kafka_message_t *ms[5000];
        size_t n = 0;
        while (n < total && now_s() < end) {
            rd_kafka_message_t *first = rd_kafka_consume_queue(q, 20);
            if (first == NULL)
                continue;
            ms[0] = first;
            ssize_t k = 1 + rd_kafka_consume_batch_queue(q, 0, ms + 1, 4999);
            double t = now_s();
            for (ssize_t i = 0; i < k; i++) {
                double sent;
                if (!ms[i]->err && ms[i]->len == sizeof(sent)) {
                    memcpy(&sent, ms[i]->payload, sizeof(sent));
                    if (sent > 0 && n < total)
                        lat[n++] = t - sent;
                }
                rd_kafka_message_destroy(ms[i]);
            }
        }
        qsort(lat, n, sizeof(*lat), cmp_double);
        double r[2] = {n ? lat[n / 2] * 1e3 : -1, n == total ? lat[(size_t)((double)n * 0.99)] * 1e3 : -1};
        if (write(fd[1], r, sizeof(r)) != (ssize_t)sizeof(r))
            _exit(1);
        rd_kafka_queue_destroy(q);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        _exit(0);
    }
    close(fd[1]);
    /* producers - 1 more processes, like as many gateways; each sends
     * rate / producers */
    pid_t kids[64];
    int me = 0, nkids = 0;
    for (int i = 1; i < producers && i < 64; i++) {
        pid_t k = fork();
        if (k == 0) {
            me = i;
            break;
        }
        if (k > 0)
            kids[nkids++] = k;
    }
    rate /= producers;
    total = (size_t)(rate * seconds);
    rd_kafka_t *rk = gateway_like_producer(brokers, linger_ms);
    if (rk == NULL)
        return -1;
    /* a warm-up message per partition, then wait for the group */
    double zero = 0;
    for (int p = 0; p < parts; p++)
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p), RD_KAFKA_V_VALUE(&zero, sizeof(zero)),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    rd_kafka_flush(rk, 10000);
    struct timespec settle = {5, 0};
    nanosleep(&settle, NULL);
    double t0 = now_s();
    size_t sent = 0;
    for (long k = 0; sent < total; k++) {
        double t = t0 + (double)k * 0.001, n = now_s();
        if (n < t) {
            struct timespec ts = {0, (long)((t - n) * 1e9)};
            nanosleep(&ts, NULL);
        }
        size_t want = (size_t)((now_s() - t0) * (double)rate);
        for (; sent < want && sent < total; sent++) {
            double at = now_s();
            while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION((int32_t)(sent % (size_t)parts)),
                                     RD_KAFKA_V_VALUE(&at, sizeof(at)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                     RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 1);
        }
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 10000);
    rd_kafka_destroy(rk);
    if (me > 0)
        _exit(0);
    double r[2] = {-1, -1};
    int status;
    for (int i = 0; i < nkids; i++)
        waitpid(kids[i], &status, 0);
    ssize_t got = read(fd[0], r, sizeof(r));
    close(fd[0]);
    waitpid(pid, &status, 0);
    *p50 = r[0];
    *p99 = r[1];
    return got == (ssize_t)sizeof(r) && r[1] >= 0 ? 0 : -1;
}

/* The share of the aggregator's live events applied within le seconds of
 * their creation, from its vc_aggregator_event_age_seconds histogram; -1 if
 * unreadable. */
static double age_share(const char *port, const char *le)
{
    char cmd[256], line[512], want[64];
    double in = -1, count = -1;
    snprintf(cmd, sizeof(cmd), "curl -s --max-time 5 http://127.0.0.1:%s/metrics", port);
    snprintf(want, sizeof(want), "vc_aggregator_event_age_seconds_bucket{le=\"%s\"} ", le);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, want, strlen(want)) == 0)
            in = strtod(line + strlen(want), NULL);
        else if (strncmp(line, "vc_aggregator_event_age_seconds_count ", 38) == 0)
            count = strtod(line + 38, NULL);
    }
    pclose(f);
    return in >= 0 && count > 0 ? in / count : -1;
}

static int live(int argc, char **argv)
{
    long rate = argc > 2 ? strtol(argv[2], NULL, 10) : 25000, seconds = argc > 3 ? strtol(argv[3], NULL, 10) : 10;
    const char *brokers = env("VC_KAFKA_BROKERS"), *nodes = env("VC_REDIS_NODES"), *stack = env("VC_STACK_DIR");
    const int parts = 12;
    size_t total = (size_t)(rate * seconds), sent = 0;
    char topic[128], group[160], cmd[1024], err[512];
    live_ctx lc = {calloc(total, sizeof(double)), calloc(total, sizeof(int32_t)), calloc(total, sizeof(int64_t))};
    double applied_at_tick[64];
    int64_t applied[64];

    snprintf(topic, sizeof(topic), "bench.live.%d", (int)getpid());
    snprintf(group, sizeof(group), "bench-live-%d", (int)getpid());
    snprintf(cmd, sizeof(cmd), "VC_STACK_DIR='%s' '%s/deploy/local/stack' broker topic %s %d >/dev/null", stack,
             AGG_BENCH_REPO, topic, parts);
    if (system(cmd) != 0)
        return 1;
    masters_memory(nodes, 1);
    for (size_t i = 0; i < total; i++)
        lc.off[i] = -1;

    double floor50 = -1, floor99 = -1;
    if (kafka_floor(brokers, stack, rate, seconds, parts, 1, "5", &floor50, &floor99) != 0)
        fprintf(stderr, "the Kafka-only floor was not measured\n");
    rd_kafka_t *rk = gateway_like_producer(brokers, "5");
    vc_redis_conf rconf = {nodes, 0, 2000};
    vc_redis *r = vc_redis_new(&rconf, err, sizeof(err));
    if (rk == NULL || r == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    vc_redis_batch *b = vc_redis_batch_new(r, 0);

    /* the aggregator's own view (its event-age histogram) is read from its
     * metrics port: AGG_BENCH_HTTP_PORT, else the stack's port base + 39 */
    char http_port[24];
    snprintf(http_port, sizeof(http_port), "%s", getenv("AGG_BENCH_HTTP_PORT") ? getenv("AGG_BENCH_HTTP_PORT") : "");
    if (!*http_port)
        snprintf(http_port, sizeof(http_port), "%ld", strtol(env("VC_PORT_BASE"), NULL, 10) + 39);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("VC_EVENTS_TOPIC", topic, 1);
        setenv("VC_AGGREGATOR_GROUP", group, 1);
        setenv("VC_CHECKPOINT_TOPIC", "bench.agg.none", 1);
        setenv("VC_CHECKPOINT_INTERVAL_S", "0", 1); /* the replay must not find checkpoints of a live run */
        setenv("VC_CATEGORY_REFRESH_MS", "0", 1);
        setenv("VC_AGGREGATOR_HTTP_PORT", http_port, 1);
        execl(AGG_BENCH_BIN, "vc-aggregator", (char *)NULL);
        _exit(127);
    }
    /* wait for the group: a heartbeat in every partition, applied */
    for (int p = 0; p < parts; p++)
        applied[p] = -1;
    vc_event ev;
    for (int p = 0; p < parts; p++) {
        vc_event_init(&ev);
        ev.type = VC_EV_HEARTBEAT;
        snprintf(ev.gateway_id, sizeof(ev.gateway_id), "gw-0");
        ev.gateway_epoch = 1;
        ev.ts_ms = 1;
        uint8_t buf[256];
        size_t len;
        vc_event_encode(&ev, buf, sizeof(buf), &len);
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p), RD_KAFKA_V_VALUE(buf, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    }
    rd_kafka_flush(rk, 10000);

    /* the applied offset of every partition, polled; returns 1 when all >= want */
    double t_wait = now_s();
    for (;;) {
        int ready = 1;
        vc_redis_batch_reset(b);
        for (int p = 0; p < parts; p++) {
            char key[VC_KEY_MAX];
            vc_key_meta(key, sizeof(key), p);
            vc_redis_batch_addf(b, key, "HGET %s offset", key);
        }
        if (vc_redis_batch_exec(b, err, sizeof(err)) == 0)
            for (int p = 0; p < parts; p++) {
                const redisReply *rr = vc_redis_batch_reply(b, p);
                ready &= rr && rr->type == REDIS_REPLY_STRING && strtoll(rr->str, NULL, 10) >= 0;
            }
        else
            ready = 0;
        if (ready)
            break;
        if (now_s() - t_wait > 60) {
            fprintf(stderr, "the aggregator did not start within 60 s\n");
            kill(pid, SIGKILL);
            return 1;
        }
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }

    /* produce at the rate, poll Redis every tick */
    double *lat = calloc(total, sizeof(double));
    size_t nlat = 0, next_check = 0;
    int64_t *conns = calloc(total, sizeof(int64_t));
    int64_t *streams = calloc(total, sizeof(int64_t));
    size_t nopen = 0;
    unsigned seed = 3;
    double t0 = now_s(), tick = 0.001;
    int64_t next_conn = 1, next_off[64];
    for (int p = 0; p < parts; p++)
        next_off[p] = 1; /* offset 0: the warm-up heartbeat */
    for (long k = 0;; k++) {
        double t = t0 + (double)k * tick, n = now_s();
        if (n < t) {
            struct timespec ts = {0, (long)((t - n) * 1e9)};
            nanosleep(&ts, NULL);
        }
        size_t want = (size_t)((now_s() - t0) * (double)rate);
        if (want > total)
            want = total;
        while (sent < want) {
            vc_event_init(&ev);
            snprintf(ev.gateway_id, sizeof(ev.gateway_id), "gw-%d", (int)(sent % 20));
            ev.gateway_epoch = 1;
            ev.ts_ms = 1000 + (int64_t)sent;
            if (nopen > 1000 && rand_r(&seed) % 2) {
                size_t j = (size_t)rand_r(&seed) % nopen;
                ev.type = VC_EV_LEAVE;
                ev.reason = VC_LEAVE_CLIENT_CLOSED;
                ev.stream_id = streams[j];
                ev.conn_id = conns[j];
                snprintf(ev.gateway_id, sizeof(ev.gateway_id), "gw-%d", (int)((conns[j] - 1) % 20));
                conns[j] = conns[--nopen];
                streams[j] = streams[nopen];
            } else {
                ev.type = VC_EV_JOIN;
                ev.stream_id = 1 + rand_r(&seed) % 500;
                ev.user_id = 1 + rand_r(&seed) % 100000;
                ev.conn_id = next_conn++;
                snprintf(ev.gateway_id, sizeof(ev.gateway_id), "gw-%d", (int)((ev.conn_id - 1) % 20));
                conns[nopen] = ev.conn_id;
                streams[nopen++] = ev.stream_id;
            }
            uint8_t buf[256];
            size_t len;
            char key[VC_STREAM_KEY_MAX];
            size_t klen = vc_stream_key(ev.stream_id, key);
            vc_event_encode(&ev, buf, sizeof(buf), &len);
            int32_t ep = vc_stream_partition(ev.stream_id, parts);
            lc.sent[sent] = now_s();
            /* one idempotent producer, explicit partitions: offsets are sequential, no need
             * to wait for delivery reports to know them */
            lc.part[sent] = ep;
            lc.off[sent] = next_off[ep]++;
            if (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(ep),
                                  RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE(buf, len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) != 0)
                break;
            sent++;
        }
        rd_kafka_poll(rk, 0);
        /* the applied offsets now */
        vc_redis_batch_reset(b);
        for (int p = 0; p < parts; p++) {
            char mk[VC_KEY_MAX];
            vc_key_meta(mk, sizeof(mk), p);
            vc_redis_batch_addf(b, mk, "HGET %s offset", mk);
        }
        double tq = now_s();
        if (vc_redis_batch_exec(b, err, sizeof(err)) == 0)
            for (int p = 0; p < parts; p++) {
                const redisReply *rr = vc_redis_batch_reply(b, p);
                if (rr && rr->type == REDIS_REPLY_STRING)
                    applied[p] = strtoll(rr->str, NULL, 10);
                applied_at_tick[p] = tq;
            }
        /* events whose offset is known and covered */
        while (next_check < sent && lc.off[next_check] >= 0 && applied[lc.part[next_check]] >= lc.off[next_check]) {
            lat[nlat++] = applied_at_tick[lc.part[next_check]] - lc.sent[next_check];
            next_check++;
        }
        /* events further on may be covered out of order: check a window */
        for (size_t i = next_check; i < sent && i < next_check + 5000; i++) {
            if (lc.off[i] >= 0 && lc.part[i] >= 0 && applied[lc.part[i]] >= lc.off[i] && lc.sent[i] > 0) {
                lat[nlat++] = applied_at_tick[lc.part[i]] - lc.sent[i];
                lc.sent[i] = 0; /* counted */
                lc.off[i] = -2;
            }
        }
        while (next_check < sent && lc.off[next_check] == -2)
            next_check++;
        if (sent == total && next_check == total)
            break;
        if (now_s() - t0 > (double)seconds + 60) {
            fprintf(stderr, "not every event applied within 60 s after the end\n");
            break;
        }
    }
    double dur = now_s() - t0;
    double within50 = age_share(http_port, "0.05");
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
    qsort(lat, nlat, sizeof(*lat), cmp_double);
    double la[3];
    getloadavg(la, 3);
    printf("| rate (events/s) | events | p50 (ms) | p99 (ms) | max (ms) | Kafka-only p50 (ms) | Kafka-only p99 (ms) | "
           "aggregator's events within 50 ms | load average |\n|---|---|---|---|---|---|---|---|---|\n");
    printf("| %ld | %zu | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f%% | %.1f |\n", rate, nlat,
           nlat ? lat[nlat / 2] * 1e3 : 0, nlat ? lat[(size_t)((double)nlat * 0.99)] * 1e3 : 0,
           nlat ? lat[nlat - 1] * 1e3 : 0, floor50, floor99, within50 * 100, la[0]);
    (void)dur;
    masters_memory(nodes, 1);
    rd_kafka_destroy(rk);
    vc_redis_batch_destroy(b);
    vc_redis_destroy(r);
    return 0;
}


/* CPU seconds (user + system) of the stack's broker process so far, -1 if unknown. */
static double broker_cpu(const char *stack)
{
    char path[512], buf[1024];
    snprintf(path, sizeof(path), "%s/run/broker.pid", stack);
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    /* after the comm: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "live") == 0)
        return live(argc, argv);
    if (argc > 1 && strcmp(argv[1], "floor") == 0) {
        long rate = argc > 2 ? strtol(argv[2], NULL, 10) : 25000, seconds = argc > 3 ? strtol(argv[3], NULL, 10) : 8;
        int producers = argc > 4 ? atoi(argv[4]) : 1;
        const char *linger = argc > 5 ? argv[5] : "5";
        double p50 = -1, p99 = -1, la[3];
        if (producers < 1 || producers > 64 || rate < producers || seconds < 1) {
            fprintf(stderr, "usage: bench_aggregator floor [events_per_s] [seconds] [producers 1-64] [linger_ms]\n");
            return 2;
        }
        int rc = kafka_floor(env("VC_KAFKA_BROKERS"), env("VC_STACK_DIR"), rate, seconds, 12, producers, linger, &p50,
                             &p99);
        char p99s[64] = "not all received within 60 s";
        if (rc == 0)
            snprintf(p99s, sizeof(p99s), "%.1f", p99);
        getloadavg(la, 3);
        printf("| rate (events/s) | producers | linger.ms | Kafka-only p50 (ms) | Kafka-only p99 (ms) | load average |\n"
               "|---|---|---|---|---|---|\n| %ld | %d | %s | %.1f | %s | %.1f |\n",
               rate, producers, linger, p50, p99s, la[0]);
        return rc == 0 ? 0 : 1;
    }
    long viewers = argc > 1 ? strtol(argv[1], NULL, 10) : 200000, churn = argc > 2 ? strtol(argv[2], NULL, 10) : 400000;
    const char *brokers = env("VC_KAFKA_BROKERS"), *nodes = env("VC_REDIS_NODES"), *stack = env("VC_STACK_DIR");
    char topic[128], cmd[1024], err[512];
    const int parts = 12, nstreams = 2000;
    snprintf(topic, sizeof(topic), "bench.agg.%d", (int)getpid());
    snprintf(cmd, sizeof(cmd), "VC_STACK_DIR='%s' '%s/deploy/local/stack' broker topic %s %d >/dev/null", stack,
             AGG_BENCH_REPO, topic, parts);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot create %s\n", topic);
        return 1;
    }

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "20", err, sizeof(err));
    rd_kafka_conf_set(conf, "batch.num.messages", "10000", err, sizeof(err));
    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }

    /* conn_id -> stream, user of the open connections */
    int64_t *cstream = calloc((size_t)viewers, sizeof(*cstream)), *cuser = calloc((size_t)viewers, sizeof(*cuser));
    int64_t *cconn = calloc((size_t)viewers, sizeof(*cconn));
    int64_t next_conn = 1, ts = 1700000000000LL;
    unsigned seed = 1;
    vc_event ev;
    double t0 = now_s();
    for (long i = 0; i < viewers; i++) {
        /* streams: a heavy head (power law) */
        double u = (double)rand_r(&seed) / RAND_MAX;
        int64_t stream = 1 + (int64_t)((double)nstreams * u * u * u);
        int64_t user = rand_r(&seed) % 100 < 20 ? 0 : 1 + rand_r(&seed) % (viewers * 4 / 5 + 1);
        vc_event_init(&ev);
        ev.type = VC_EV_JOIN;
        ev.stream_id = stream;
        ev.user_id = user;
        ev.conn_id = next_conn++;
        snprintf(ev.gateway_id, sizeof(ev.gateway_id), "gw-%d", (int)(i % 20));
        ev.gateway_epoch = 1;
        ev.seq = i;
        ev.ts_ms = ts + i / 10;
        produce(rk, topic, &ev, vc_stream_partition(stream, parts));
        cstream[i] = stream;
        cuser[i] = user;
        cconn[i] = ev.conn_id;
    }
    for (long i = 0; i < churn; i++) {
        long k = rand_r(&seed) % viewers;
        vc_event_init(&ev);
        ev.type = VC_EV_LEAVE;
        ev.reason = VC_LEAVE_CLIENT_CLOSED;
        ev.stream_id = cstream[k];
        ev.conn_id = cconn[k];
        snprintf(ev.gateway_id, sizeof(ev.gateway_id), "gw-%d", (int)((cconn[k] - 1) % 20));
        ev.gateway_epoch = 1;
        ev.ts_ms = ts + viewers / 10 + i / 10;
        produce(rk, topic, &ev, vc_stream_partition(ev.stream_id, parts));
        ev.type = VC_EV_JOIN;
        ev.reason = VC_LEAVE_NONE;
        ev.user_id = cuser[k];
        ev.conn_id = next_conn++;
        snprintf(ev.gateway_id, sizeof(ev.gateway_id), "gw-%d", (int)((ev.conn_id - 1) % 20));
        produce(rk, topic, &ev, vc_stream_partition(ev.stream_id, parts));
        cconn[k] = ev.conn_id;
        if (i % 20000 == 0) /* gateways heartbeat in every partition */
            for (int g = 0; g < 20; g++)
                for (int p = 0; p < parts; p++) {
                    vc_event_init(&ev);
                    ev.type = VC_EV_HEARTBEAT;
                    snprintf(ev.gateway_id, sizeof(ev.gateway_id), "gw-%d", g);
                    ev.gateway_epoch = 1;
                    ev.ts_ms = ts + viewers / 10 + i / 10;
                    produce(rk, topic, &ev, p);
                }
    }
    rd_kafka_flush(rk, 120000);
    rd_kafka_destroy(rk);
    printf("produced %lld events in %.1f s\n", produced, now_s() - t0);

    /* the RSS of a vc-aggregator rebuild with an empty state (an empty topic):
     * the baseline of the per-viewer RSS below */
    long base_rss_kb = 0;
    {
        char empty[160];
        snprintf(empty, sizeof(empty), "%s.empty", topic);
        snprintf(cmd, sizeof(cmd), "VC_STACK_DIR='%s' '%s/deploy/local/stack' broker topic %s %d >/dev/null", stack,
                 AGG_BENCH_REPO, empty, parts);
        if (system(cmd) == 0) {
            masters_memory(nodes, 1);
            pid_t bp = fork();
            if (bp == 0) {
                setenv("VC_EVENTS_TOPIC", empty, 1);
                setenv("VC_CHECKPOINT_TOPIC", "bench.agg.none", 1);
                setenv("VC_CATEGORY_REFRESH_MS", "0", 1);
                setenv("VC_AGGREGATOR_HTTP_PORT", "0", 1);
                if (freopen("/dev/null", "w", stderr) == NULL)
                    _exit(126);
                execl(AGG_BENCH_BIN, "vc-aggregator", "rebuild", (char *)NULL);
                _exit(127);
            }
            int bst;
            struct rusage bru;
            wait4(bp, &bst, 0, &bru);
            base_rss_kb = bru.ru_maxrss;
        }
    }

    long long mem0 = masters_memory(nodes, 1);
    double cpu0 = masters_cpu;
    double bcpu0 = broker_cpu(stack);
    double r0 = now_s();
    pid_t pid = fork();
    if (pid == 0) {
        setenv("VC_EVENTS_TOPIC", topic, 1);
        setenv("VC_CHECKPOINT_TOPIC", "bench.agg.none", 1);
        setenv("VC_CATEGORY_REFRESH_MS", "0", 1);
        setenv("VC_AGGREGATOR_HTTP_PORT", "0", 1);
        execl(AGG_BENCH_BIN, "vc-aggregator", "rebuild", (char *)NULL);
        _exit(127);
    }
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    double secs = now_s() - r0;
    long long mem1 = masters_memory(nodes, 0);
    double agg_cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                     (double)ru.ru_stime.tv_usec / 1e6;
    double bcpu1 = broker_cpu(stack);
    double loadavg[3] = {0, 0, 0};
    getloadavg(loadavg, 3);
    printf("CPU seconds during the replay: vc-aggregator %.2f, Redis masters %.2f, broker %.2f (wall %.1f; "
           "load average %.1f); %.0f events per vc-aggregator CPU-second\n", agg_cpu, masters_cpu - cpu0,
           bcpu0 >= 0 && bcpu1 >= 0 ? bcpu1 - bcpu0 : -1.0, secs, loadavg[0],
           agg_cpu > 0 ? (double)produced / agg_cpu : 0.0);
    printf("vc-aggregator max RSS: %.1f MB (empty state: %.1f MB): %.0f bytes per viewer above the empty state "
           "(includes librdkafka's fetch queue)\n", (double)ru.ru_maxrss / 1024.0, (double)base_rss_kb / 1024.0,
           (double)(ru.ru_maxrss - base_rss_kb) * 1024.0 / (double)viewers);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "rebuild failed\n");
        return 1;
    }
    double rate = (double)produced / secs;

    /* the ceiling: pipelined SETs by redis-benchmark against the same cluster */
    char first[256];
    snprintf(first, sizeof(first), "%s", nodes);
    char *comma = strchr(first, ',');
    if (comma)
        *comma = '\0';
    char *colon = strrchr(first, ':');
    *colon = '\0';
    snprintf(cmd, sizeof(cmd),
             "redis-benchmark -h %s -p %s --cluster -t set -P 64 -n 2000000 -r 1000000 -q 2>/dev/null | "
             "tr '\\r' '\\n' | grep -o 'SET: [0-9.]*' | tail -1 | grep -o '[0-9.]*$'", first, colon + 1);
    FILE *f = popen(cmd, "r");
    double ceiling = 0;
    if (f) {
        if (fscanf(f, "%lf", &ceiling) != 1)
            ceiling = 0;
        pclose(f);
    }
    masters_memory(nodes, 1);
    printf("Redis used_memory after the replay minus before: %lld bytes: %.0f per viewer, %.0f per stream (%d streams)\n",
           mem1 - mem0, (double)(mem1 - mem0) / (double)viewers, (double)(mem1 - mem0) / (double)nstreams, nstreams);
    printf("| events replayed | seconds | events/s (one vc-aggregator) | redis-benchmark SET -P 64 (ops/s) | ratio | viewers | Redis bytes/viewer |\n");
    printf("|---|---|---|---|---|---|---|\n");
    printf("| %lld | %.1f | %.0f | %.0f | %.2f | %ld | %.0f |\n", produced, secs, rate, ceiling,
           ceiling > 0 ? rate / ceiling : 0, viewers, (double)(mem1 - mem0) / (double)viewers);
    free(cstream);
    free(cuser);
    free(cconn);
    return 0;
}
