/* harness.h -- what the aggregator's integration tests share: the stack's
 * coordinates, a fresh topic, a producer of vc events, vc-aggregator
 * processes, reading Redis, and a ground-truth model of the counts. */
#ifndef AGG_TEST_HARNESS_H
#define AGG_TEST_HARNESS_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <sys/types.h>

#include "vc_event.h"
#include "vc_redis.h"

#define H_PARTITIONS 4
#define H_MAX_STREAMS 4096

typedef struct {
    const char *brokers, *redis_nodes, *redis_masters, *stack_dir;
    char topic[96], dlq[128], ckpt[128], group[160];
    rd_kafka_t *rk;
    vc_redis *redis;
    int64_t last_offset[H_PARTITIONS]; /* of produced messages, from delivery reports */
} h_ctx;

/* Read the environment (the test fails when a coordinate is missing), flush
 * Redis, create a fresh topic named after tag, make a producer. */
void h_setup(h_ctx *h, const char *tag);
void h_teardown(h_ctx *h);

/* FLUSHALL on every master. */
void h_flush_redis(h_ctx *h);

/* Produce one event (keyed by stream id) or raw bytes; h_sync waits for delivery. */
void h_produce(h_ctx *h, const vc_event *ev);
void h_produce_raw(h_ctx *h, int64_t stream_key, const void *buf, size_t len);
void h_sync(h_ctx *h);

/* Start vc-aggregator on the test's topic; extra: NULL-terminated "NAME=value" list. */
pid_t h_agg_start(h_ctx *h, const char *const *extra);
/* In a child process: the environment of a vc-aggregator on the test's topics. */
void h_agg_env(h_ctx *h);
/* Send sig and reap it (bounded: SIGKILL after 60 s). Returns the exit status. */
int h_agg_stop(pid_t pid, int sig);

/* Wait (bounded by seconds) until every partition's applied offset in Redis
 * reaches what was produced. Returns 1 when reached. */
int h_wait_applied(h_ctx *h, int seconds);

/* A field of a stream's hash as integer (-1 when missing) / string (caller frees, NULL when missing). */
long long h_stream_int(h_ctx *h, int64_t stream, const char *field);
char *h_stream_str(h_ctx *h, int64_t stream, const char *field);
/* The score of stream in its partition's rank (or category rank if cat > 0); -1 when absent. */
long long h_rank_score(h_ctx *h, int64_t stream, int64_t cat);
/* A command to the node of key, reply owned by caller (freeReplyObject). */
redisReply *h_cmd(h_ctx *h, const char *key, const char *fmt, ...);

/* Events. */
vc_event h_join(int64_t stream, int64_t user, int64_t conn, const char *gw, int64_t epoch, int64_t ts);
vc_event h_leave(int64_t stream, int64_t conn, const char *gw, int64_t epoch, int64_t ts);
vc_event h_heartbeat(const char *gw, int64_t epoch, int64_t ts);
/* Sends a heartbeat of gw to every partition (as a gateway does). */
void h_heartbeat_all(h_ctx *h, const char *gw, int64_t epoch, int64_t ts);

/* Ground truth: the counts the events imply. */
typedef struct {
    int64_t stream[H_MAX_STREAMS];
    long long viewers[H_MAX_STREAMS], peak[H_MAX_STREAMS];
    int n;
    /* open connections: conn -> (stream, user) */
    int64_t conn[65536], conn_stream[65536], conn_user[65536];
    int nconn;
} h_model;
void h_model_apply(h_model *m, const vc_event *ev);
long long h_model_viewers(const h_model *m, int64_t stream);
long long h_model_peak(const h_model *m, int64_t stream);

/* A random workload of joins and leaves (40% leaves of any open connection)
 * over streams [first_stream, first_stream + nstreams) on two gateways
 * (gw-a, gw-b, epoch 1), 20% anonymous, with its own ground truth. */
typedef struct {
    h_model m;
    int64_t open_conn[65536], open_stream[65536];
    int open_gw[65536];
    int nopen;
    int64_t next_conn, ts;
    unsigned seed;
    int64_t first_stream;
    int nstreams;
} h_workload;
h_workload *h_workload_new(unsigned seed, int64_t first_stream, int nstreams); /* free() it */
/* Produce that many more events and apply them to the ground truth. */
void h_workload_run(h_ctx *h, h_workload *w, int events);
/* Every stream's viewers, peak and rank in Redis equal the ground truth. */
void h_workload_expect(h_ctx *h, const h_workload *w);

/* A counter of the aggregator's /metrics on port (-1 when not readable). */
long long h_metric(int port, const char *name);
/* Wait (bounded) until metric name reaches at least want; its last value. */
long long h_wait_metric(int port, const char *name, long long want, int seconds);
void h_sleep_ms(int ms);

#endif

/* Every vc:* key of the cluster with its type and contents, one line per key,
 * sorted: two dumps compare with strcmp. Caller frees. */
char *h_dump_keys(h_ctx *h, size_t *nkeys);
/* Run the stack script with arguments (e.g. "kill redis 0"); returns its exit status. */
int h_stack(h_ctx *h, const char *args);

/* GET path from 127.0.0.1:port; the body (caller frees) or NULL. */
char *h_http_get(int port, const char *path);
/* A port for an aggregator's HTTP in this stack's range (VC_PORT_BASE + 39 - i). */
int h_http_port(int i);
/* Wait (bounded) until the aggregator on port reports all H_PARTITIONS assigned. */
int h_wait_assigned(int port, int seconds);
/* Index (0..5, port VC_PORT_BASE + i) of the master serving key, or -1. */
int h_master_of(h_ctx *h, const char *key);
/* CLIENT PAUSE ms ALL on every master: Redis unavailable to clients for ms. Returns the masters paused. */
int h_pause_masters(h_ctx *h, int ms);
