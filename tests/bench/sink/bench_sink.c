/* bench_sink: vc-sink speed figures for sink/README.md (never run by ctest).
 *
 *   bench_sink flush   [streams=100000] [viewers_per_stream=1]
 *       one partition holding `streams` live streams closes a bucket: the time
 *       of the one transaction that writes their viewer_history, current_viewers,
 *       daily_statistics rows, the offset and the checkpoint.
 *   bench_sink rollup  [events=2000000]
 *       decode + apply throughput of the pure logic (events/s, one core).
 *   bench_sink catchup [events=1000000] [partitions=12]
 *       produce events to a fresh topic (7,000 per second of event time, the
 *       seed's peak), then time vc-sink from start until it has stored the
 *       offsets of all of them (events/s end to end; flush interval 10 s,
 *       1-minute buckets so that buckets close within the ~100,000 messages per
 *       partition that the mock broker retains).
 *
 * Needs a stack (eval "$(deploy/local/stack env)" with set -a); creates its
 * own database and topic. Build without sanitizers for meaningful figures. */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "rollup.h"
#include "vc_event.h"

#define STACK VC_REPO_DIR "/deploy/local/stack"
#define BASE_MS 1795996800000LL

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "bench_sink: %s is not set (eval the stack's env with set -a)\n", name);
        exit(2);
    }
    return v;
}

static void sh(const char *cmd)
{
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_sink: failed: %s\n", cmd);
        exit(1);
    }
}

static void db_create(const char *db)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             STACK " mysql admin -e \"DROP DATABASE IF EXISTS \\`%s\\`; CREATE DATABASE \\`%s\\`; "
                   "GRANT ALL ON \\`%s\\`.* TO '%s'@'%%'\" && for f in " VC_REPO_DIR
                   "/sql/migrations/[0-9]*.sql; do " STACK " mysql admin %s < \"$f\" || exit 1; done",
             db, db, db, env("VC_MYSQL_USER"), db);
    sh(cmd);
}

static void ev_set(vc_event *ev, vc_event_type type, int64_t stream, int64_t user, int64_t conn, int64_t ts)
{
    vc_event_init(ev);
    ev->type = type;
    ev->stream_id = stream;
    ev->user_id = user;
    ev->conn_id = conn;
    snprintf(ev->gateway_id, sizeof ev->gateway_id, "gw-bench");
    ev->gateway_epoch = 1;
    ev->seq = conn + 1;
    ev->ts_ms = ts;
    ev->reason = type == VC_EV_LEAVE ? VC_LEAVE_CLIENT_CLOSED : VC_LEAVE_NONE;
}

static int bench_flush(int streams, int per_stream)
{
    const char *db = "vc_bench_flush";
    db_create(db);
    char cmd[1024];
    /* master data, so that the broadcaster/category look-ups find rows */
    snprintf(cmd, sizeof cmd,
             STACK " mysql admin %s -e \"INSERT INTO categories SELECT seq, CONCAT('c', seq), CONCAT('c', seq) FROM "
                   "seq_1_to_20; INSERT INTO users (user_id, username) SELECT seq, CONCAT('u', seq) FROM seq_1_to_%d; "
                   "INSERT INTO broadcasters (broadcaster_id, user_id, channel_name) SELECT seq, seq, 'c' FROM "
                   "seq_1_to_%d; INSERT INTO streams SELECT seq, seq, 1 + seq %% 20, 't', 'live', NULL, NULL FROM "
                   "seq_1_to_%d\"",
             db, streams, streams, streams);
    sh(cmd);

    sk_rollup_conf conf = {.rollup_ms = 300000, .liveness_timeout_ms = 3600000, .sync_max_viewers = 1000000,
                           .sync_max_age_ms = 60000};
    sk_rollup *r = sk_rollup_new(&conf);
    vc_event ev;
    int64_t conn = 0;
    ev_set(&ev, VC_EV_HEARTBEAT, 0, 0, 0, BASE_MS);
    sk_rollup_apply(r, &ev);
    for (int s = 1; s <= streams; s++)
        for (int v = 0; v < per_stream; v++) {
            ev_set(&ev, VC_EV_JOIN, s, 1 + (conn % 1000000), conn, BASE_MS + 1000 + s % 250000);
            conn++;
            sk_rollup_apply(r, &ev);
        }
    /* the previous bucket was flushed: clear, then close the live one */
    sk_rollup_rows_clear(r);
    ev_set(&ev, VC_EV_HEARTBEAT, 0, 0, 0, BASE_MS + 300000);
    sk_rollup_apply(r, &ev);

    sk_db_conf dconf = {.host = env("VC_MYSQL_HOST"), .port = atoi(env("VC_MYSQL_PORT")), .user = env("VC_MYSQL_USER"),
                        .password = getenv("VC_MYSQL_PASSWORD"), .db = db, .timeout_s = 120};
    sk_db *sdb = sk_db_new(&dconf);
    char err[512];
    if (sk_db_connect(sdb, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* the first bucket inserts every row; the next ones update current_viewers and the daily rows */
    for (int k = 0; k < 3; k++) {
        if (k > 0) {
            ev_set(&ev, VC_EV_HEARTBEAT, 0, 0, 0, BASE_MS + 300000 * (k + 1));
            sk_rollup_apply(r, &ev);
        }
        const sk_rows *rows = sk_rollup_rows(r);
        double t0 = now_s();
        size_t len;
        uint8_t *blob = sk_rollup_save(r, &len);
        double t1 = now_s();
        sk_db_counts counts = {0};
        sk_db_rc rc = sk_db_flush(sdb, "bench", "bench", 0, rows, k == 0 ? -1 : k, k + 1, blob, len, &counts, err,
                                  sizeof err);
        double t2 = now_s();
        if (rc) {
            fprintf(stderr, "flush: %s\n", err);
            return 1;
        }
        printf("flush %d: %d streams x %d viewers: %zu viewer_history + %zu current_viewers + %zu daily_statistics "
               "rows, checkpoint %.1f MB (serialised in %.3f s); transaction committed in %.3f s\n",
               k + 1, streams, per_stream, rows->nhist, rows->current.len, rows->daily.len, len / 1e6, t1 - t0, t2 - t1);
        free(blob);
        sk_rollup_rows_clear(r);
    }
    sk_db_destroy(sdb);
    sk_rollup_destroy(r);
    return 0;
}

/* A deterministic stream of encoded events over `streams` streams. */
typedef struct {
    uint8_t *buf;
    size_t *off, *len;
    int64_t *stream;
    size_t n;
} encoded;

static encoded make_events(size_t n, int streams)
{
    encoded e = {malloc(n * 48), calloc(n, sizeof(size_t)), calloc(n, sizeof(size_t)), calloc(n, sizeof(int64_t)), n};
    size_t pos = 0;
    int64_t *open_conn = calloc((size_t)streams, sizeof(int64_t));
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int s = (int)(x % (uint64_t)streams);
        vc_event ev;
        int64_t ts = BASE_MS + (int64_t)i / 7; /* ~7000 events per event-time second: the seed's peak */
        if (i % 50 == 0)
            ev_set(&ev, VC_EV_HEARTBEAT, 0, 0, 0, ts);
        else if (open_conn[s] > 0 && (x >> 20) % 2)
            ev_set(&ev, VC_EV_LEAVE, s + 1, 1 + (int64_t)(x >> 40) % 100000, open_conn[s]--, ts);
        else
            ev_set(&ev, VC_EV_JOIN, s + 1, 1 + (int64_t)(x >> 40) % 100000, ++open_conn[s], ts);
        uint8_t tmp[VC_EVENT_ENCODED_MAX];
        size_t len;
        if (vc_event_encode(&ev, tmp, sizeof tmp, &len) != VC_CODEC_OK || len > 48)
            abort();
        memcpy(e.buf + pos, tmp, len);
        e.off[i] = pos;
        e.len[i] = len;
        e.stream[i] = ev.stream_id;
        pos += len;
    }
    free(open_conn);
    return e;
}

static int bench_rollup(size_t n)
{
    encoded e = make_events(n, 10000);
    sk_rollup_conf conf = {.rollup_ms = 300000, .liveness_timeout_ms = 90000, .sync_max_viewers = 1000000,
                           .sync_max_age_ms = 60000};
    sk_rollup *r = sk_rollup_new(&conf);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        vc_event ev;
        vc_event_init(&ev);
        if (vc_event_decode(e.buf + e.off[i], e.len[i], &ev, NULL, 0) != VC_CODEC_OK || sk_rollup_apply(r, &ev))
            abort();
        vc_event_free(&ev);
        if (sk_rollup_rows_pending(r) > 200000)
            sk_rollup_rows_clear(r);
    }
    double t = now_s() - t0;
    printf("rollup: %zu events decoded and applied in %.2f s: %.0f events/s (one core)\n", n, t, n / t);
    sk_rollup_destroy(r);
    return 0;
}

static int bench_catchup(size_t n, int partitions)
{
    char topic[64], db[64], cmd[512];
    snprintf(topic, sizeof topic, "vc_bench_catchup_%d", (int)getpid());
    snprintf(db, sizeof db, "vc_bench_catchup");
    snprintf(cmd, sizeof cmd, STACK " broker topic %s %d 1 >/dev/null", topic, partitions);
    sh(cmd);
    db_create(db);
    encoded e = make_events(n, 10000);

    char kerr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", env("VC_KAFKA_BROKERS"), kerr, sizeof kerr);
    rd_kafka_conf_set(conf, "linger.ms", "20", kerr, sizeof kerr);
    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", kerr, sizeof kerr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof kerr);
    for (size_t i = 0; i < n; i++) {
        /* heartbeats go to every partition in the real system; here, to the partition of the index */
        int p = e.stream[i] ? (int)(e.stream[i] % partitions) : (int)(i % (size_t)partitions);
        while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p),
                                 RD_KAFKA_V_VALUE((void *)(e.buf + e.off[i]), e.len[i]), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 120000);
    rd_kafka_destroy(rk);

    char *envp[32];
    char store[16][512];
    const char *keep[] = {"VC_KAFKA_BROKERS", "VC_MYSQL_HOST", "VC_MYSQL_PORT", "VC_MYSQL_USER", "VC_MYSQL_PASSWORD", "PATH",
                          "VC_SINK_HTTP_PORT"};
    int k = 0;
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        snprintf(store[k], sizeof store[k], "%s=%s", keep[i], getenv(keep[i]) ? getenv(keep[i]) : "");
        envp[k] = store[k];
        k++;
    }
    snprintf(store[k], sizeof store[k], "VC_MYSQL_DB=%s", db);
    envp[k] = store[k];
    k++;
    snprintf(store[k], sizeof store[k], "VC_EVENTS_TOPIC=%s", topic);
    envp[k] = store[k];
    k++;
    snprintf(store[k], sizeof store[k], "VC_SINK_GROUP=bench-%d", (int)getpid());
    envp[k] = store[k];
    k++;
    envp[k++] = "VC_SINK_FLUSH_INTERVAL_MS=10000";
    envp[k++] = "VC_ROLLUP_SECONDS=60"; /* buckets close within the events the mock broker retains */
    envp[k++] = "VC_SINK_POLL_BATCH=20000";
    envp[k] = NULL;
    char *argv[] = {(char *)VC_SINK_BIN, NULL};
    double t0 = now_s();
    pid_t pid;
    if (posix_spawn(&pid, VC_SINK_BIN, NULL, NULL, argv, envp)) {
        perror("spawn");
        return 1;
    }
    MYSQL *my = mysql_init(NULL);
    if (!mysql_real_connect(my, env("VC_MYSQL_HOST"), env("VC_MYSQL_USER"), getenv("VC_MYSQL_PASSWORD"), db,
                            (unsigned)atoi(env("VC_MYSQL_PORT")), NULL, 0)) {
        fprintf(stderr, "%s\n", mysql_error(my));
        return 1;
    }
    int64_t got = 0;
    int exited = 0;
    while (now_s() - t0 < 1800) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            /* e.g. its metrics port is taken: VC_SINK_HTTP_PORT names a free one */
            fprintf(stderr, "bench_sink: vc-sink exited (status %d) before storing every offset\n", status);
            exited = 1;
            break;
        }
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT COALESCE(SUM(next_offset),0) FROM sink_offsets WHERE topic='%s'", topic);
        if (mysql_query(my, sql) == 0) {
            MYSQL_RES *res = mysql_store_result(my);
            MYSQL_ROW row = mysql_fetch_row(res);
            got = row && row[0] ? atoll(row[0]) : 0;
            mysql_free_result(res);
        }
        if (got >= (int64_t)n)
            break;
        usleep(100000);
    }
    double t = now_s() - t0;
    if (getenv("VC_SINK_HTTP_PORT")) {
        char cmd2[256];
        snprintf(cmd2, sizeof cmd2, "curl -s http://127.0.0.1:%s/metrics | grep -E '^vc_sink_'",
                 getenv("VC_SINK_HTTP_PORT"));
        if (system(cmd2) != 0)
            fprintf(stderr, "no metrics\n");
    }
    if (!exited) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    mysql_close(my);
    printf("catchup: %" PRId64 " of %zu events over %d partitions stored in %.2f s (from process start, incl. group "
           "join): %.0f events/s\n",
           got, n, partitions, t, got / t);
    return got >= (int64_t)n ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "flush"))
        return bench_flush(argc > 2 ? atoi(argv[2]) : 100000, argc > 3 ? atoi(argv[3]) : 1);
    if (!strcmp(mode, "rollup"))
        return bench_rollup(argc > 2 ? (size_t)atol(argv[2]) : 2000000);
    if (!strcmp(mode, "catchup"))
        return bench_catchup(argc > 2 ? (size_t)atol(argv[2]) : 1000000, argc > 3 ? atoi(argv[3]) : 12);
    fprintf(stderr, "usage: bench_sink flush [streams] [viewers_per_stream] | rollup [events] | catchup [events] "
                    "[partitions]\n");
    return 2;
}
