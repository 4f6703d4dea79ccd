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
 * Prints one Markdown table row set for the README. */
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vc_event.h"
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

/* Sum of used_memory over the masters; flush first when flush. */
static long long masters_memory(const char *nodes, int flush)
{
    char buf[1024], *save = NULL;
    long long total = 0;
    snprintf(buf, sizeof(buf), "%s", nodes);
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char host[256];
        char *colon = strrchr(tok, ':');
        snprintf(host, sizeof(host), "%.*s", (int)(colon - tok), tok);
        struct timeval tv = {5, 0};
        redisContext *c = redisConnectWithTimeout(host, atoi(colon + 1), tv);
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
                total += atoll(u + 12);
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

int main(int argc, char **argv)
{
    long viewers = argc > 1 ? atol(argv[1]) : 200000, churn = argc > 2 ? atol(argv[2]) : 400000;
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

    long long mem0 = masters_memory(nodes, 1);
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
    waitpid(pid, &status, 0);
    double secs = now_s() - r0;
    long long mem1 = masters_memory(nodes, 0);
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
    printf("| events replayed | seconds | events/s (one vc-aggregator) | redis-benchmark SET -P 64 (ops/s) | ratio | viewers | Redis bytes/viewer |\n");
    printf("|---|---|---|---|---|---|---|\n");
    printf("| %lld | %.1f | %.0f | %.0f | %.2f | %ld | %.0f |\n", produced, secs, rate, ceiling,
           ceiling > 0 ? rate / ceiling : 0, viewers, (double)(mem1 - mem0) / (double)viewers);
    free(cstream);
    free(cuser);
    free(cconn);
    return 0;
}
