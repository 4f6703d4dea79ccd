#include "sinktest.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vc_event.h"

extern char **environ;

const char *st_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        cr_assert_fail("%s is not set: run the integration tests on a stack (eval \"$(deploy/local/stack env)\")", name);
    return v;
}

int st_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

void st_unique(char *out, size_t size, const char *prefix)
{
    static int n;
    snprintf(out, size, "%s_%d_%ld_%d", prefix, (int)getpid(), (long)time(NULL) % 100000, n++);
}

#define STACK VC_REPO_DIR "/deploy/local/stack"

void st_db_create(const char *db)
{
    st_env("VC_STACK_DIR");
    const char *user = st_env("VC_MYSQL_USER");
    cr_assert_eq(st_sh(STACK " mysql admin -e \"DROP DATABASE IF EXISTS \\`%s\\`; CREATE DATABASE \\`%s\\`; "
                       "GRANT ALL ON \\`%s\\`.* TO '%s'@'%%'\"",
                       db, db, db, user),
                 0, "creating database %s", db);
    cr_assert_eq(st_sh("for f in " VC_REPO_DIR "/sql/migrations/[0-9]*.sql; do " STACK
                       " mysql admin %s < \"$f\" || exit 1; done",
                       db),
                 0, "migrating %s", db);
}

void st_topic_create(const char *topic, int partitions)
{
    st_env("VC_STACK_DIR");
    cr_assert_eq(st_sh(STACK " broker topic %s %d 1 >/dev/null", topic, partitions), 0, "creating topic %s", topic);
}

MYSQL *st_my_connect(const char *db)
{
    MYSQL *my = mysql_init(NULL);
    cr_assert_not_null(my);
    unsigned int t = 10;
    mysql_options(my, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    mysql_options(my, MYSQL_OPT_READ_TIMEOUT, &t);
    if (!mysql_real_connect(my, st_env("VC_MYSQL_HOST"), st_env("VC_MYSQL_USER"), getenv("VC_MYSQL_PASSWORD"), db,
                            (unsigned int)atoi(st_env("VC_MYSQL_PORT")), NULL, 0))
        cr_assert_fail("connect to %s: %s", db, mysql_error(my));
    mysql_query(my, "SET time_zone='+00:00'");
    return my;
}

int64_t st_my_int(MYSQL *my, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    if (mysql_query(my, sql))
        cr_assert_fail("%s: %s", sql, mysql_error(my));
    MYSQL_RES *res = mysql_store_result(my);
    cr_assert_not_null(res, "%s: no result", sql);
    MYSQL_ROW row = mysql_fetch_row(res);
    int64_t v = row && row[0] ? strtoll(row[0], NULL, 10) : -1;
    mysql_free_result(res);
    return v;
}

/* ---- the scenario ------------------------------------------------------ */

void st_scenario_default(st_scenario *s)
{
    memset(s, 0, sizeof *s);
    s->partitions = 4;
    s->streams = 12;
    s->users = 40;
    s->base_ms = 1795996200000LL; /* 2026-11-29 23:50:00 UTC: the run crosses midnight */
    s->step_ms = 150;
    s->events = 8000;             /* 20 minutes of event time */
    s->stream_base = 1000;
    s->seed = 42;
    s->slices = 1;
}

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

typedef struct {
    int64_t stream, user, conn;
    int gw;
} open_conn;

static int sending = 1; /* the generator runs whole; only the chosen range is sent */

static void produce_one(rd_kafka_t *rk, const char *topic, int partition, const vc_event *ev, int64_t counts[])
{
    if (!sending)
        return;
    uint8_t buf[VC_EVENT_ENCODED_MAX];
    size_t len;
    cr_assert_eq(vc_event_encode(ev, buf, sizeof buf, &len), VC_CODEC_OK, "encode");
    char key[32];
    snprintf(key, sizeof key, "%" PRId64, ev->stream_id);
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                                    RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(buf, len),
                                                    RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 50);
            continue;
        }
        cr_assert_eq(err, 0, "produce: %s", rd_kafka_err2str(err));
        break;
    }
    counts[partition]++;
}

static int delivery_failures;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    if (m->err)
        delivery_failures++;
}

void st_produce(const st_scenario *s, const char *topic, int64_t counts[ST_MAX_PARTS])
{
    cr_assert(s->partitions <= ST_MAX_PARTS);
    memset(counts, 0, sizeof(int64_t) * ST_MAX_PARTS);
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", st_env("VC_KAFKA_BROKERS"), err, sizeof err);
    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    cr_assert_not_null(rk, "%s", err);
    delivery_failures = 0;

    uint64_t x = s->seed * 2654435761u + 1;
    open_conn *open = calloc((size_t)s->events + 1, sizeof *open);
    size_t nopen = 0;
    int64_t next_conn = 1;
    int64_t t = s->base_ms;
    int64_t next_hb = t;
    int gw2_dies_at = s->events * 6 / 10; /* gw-2 goes silent here: its viewers expire in event time */
    int per_slice = s->events / (s->slices > 0 ? s->slices : 1) + 1;
    int garbage_every = s->garbage > 0 ? s->events / (s->garbage + 1) : 0;
    int64_t seq[3] = {0, 0, 0};
    int garbage_sent = 0;
    int to = s->to_event > 0 ? s->to_event : s->events + 1;
    for (int i = 0; i < s->events; i++) {
        sending = i >= s->from_event && i < to;
        t += s->step_ms;
        while (next_hb <= t) {
            for (int g = 1; g <= 2; g++) {
                if (g == 2 && i >= gw2_dies_at)
                    continue;
                for (int p = 0; p < s->partitions; p++) {
                    vc_event ev;
                    vc_event_init(&ev);
                    ev.type = VC_EV_HEARTBEAT;
                    snprintf(ev.gateway_id, sizeof ev.gateway_id, "gw-%d", g);
                    ev.gateway_epoch = 1000 + g;
                    ev.seq = ++seq[g];
                    ev.ts_ms = next_hb;
                    produce_one(rk, topic, p, &ev, counts);
                }
            }
            next_hb += 5000;
        }
        vc_event ev;
        vc_event_init(&ev);
        int leave = nopen > 0 && (rnd(&x) % 100) < (nopen > (size_t)s->users ? 60 : 40);
        if (leave) {
            size_t k = rnd(&x) % nopen;
            open_conn c = open[k];
            open[k] = open[--nopen];
            if (c.gw == 2 && i >= gw2_dies_at) {
                i--; /* a dead gateway sends nothing */
                continue;
            }
            ev.type = VC_EV_LEAVE;
            ev.stream_id = c.stream;
            ev.user_id = c.user;
            ev.conn_id = c.conn;
            ev.reason = (rnd(&x) % 5) == 0 ? VC_LEAVE_HEARTBEAT_TIMEOUT : VC_LEAVE_CLIENT_CLOSED;
            snprintf(ev.gateway_id, sizeof ev.gateway_id, "gw-%d", c.gw);
            ev.gateway_epoch = 1000 + c.gw;
            ev.seq = ++seq[c.gw];
        } else {
            open_conn c;
            c.stream = s->stream_base + 1 + (int64_t)(rnd(&x) % (uint64_t)s->streams);
            c.user = (rnd(&x) % 10) < 7 ? 1 + (int64_t)(rnd(&x) % (uint64_t)s->users) : 0;
            c.conn = next_conn++;
            c.gw = i < gw2_dies_at ? 1 + (int)(rnd(&x) % 2) : 1;
            open[nopen++] = c;
            ev.type = VC_EV_JOIN;
            ev.stream_id = c.stream;
            ev.user_id = c.user;
            ev.conn_id = c.conn;
            snprintf(ev.gateway_id, sizeof ev.gateway_id, "gw-%d", c.gw);
            ev.gateway_epoch = 1000 + c.gw;
            ev.seq = ++seq[c.gw];
        }
        ev.ts_ms = t;
        int partition = (int)((ev.stream_id - s->stream_base - 1) % s->partitions);
        produce_one(rk, topic, partition, &ev, counts);
        if (garbage_every && i % garbage_every == garbage_every - 1 && garbage_sent < s->garbage && sending) {
            garbage_sent++;
            static const char junk[] = "\xc3\x01not-an-event";
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE((void *)junk, sizeof junk - 1),
                              RD_KAFKA_V_END);
            counts[partition]++;
        }
        if (s->slices > 1 && i % per_slice == per_slice - 1) {
            rd_kafka_flush(rk, 10000);
            sleep_ms(s->slice_sleep_ms);
        }
        rd_kafka_poll(rk, 0);
    }
    /* a last heartbeat well past the end closes the open buckets */
    sending = s->events >= s->from_event && s->events < to;
    for (int p = 0; p < s->partitions; p++) {
        vc_event ev;
        vc_event_init(&ev);
        ev.type = VC_EV_HEARTBEAT;
        snprintf(ev.gateway_id, sizeof ev.gateway_id, "gw-1");
        ev.gateway_epoch = 1001;
        ev.seq = ++seq[1];
        ev.ts_ms = t + 30000;
        produce_one(rk, topic, p, &ev, counts);
    }
    sending = 1;
    cr_assert_eq(rd_kafka_flush(rk, 30000), 0, "producer flush");
    cr_assert_eq(delivery_failures, 0, "delivery failures");
    rd_kafka_destroy(rk);
    free(open);
}

/* ---- the sink process -------------------------------------------------- */

/* Sinks still running when a test process exits (a failed assertion) are killed. */
static pid_t started[256];
static int nstarted;

static void kill_leftovers(void)
{
    for (int i = 0; i < nstarted; i++)
        if (started[i] > 0 && kill(started[i], SIGKILL) == 0)
            waitpid(started[i], NULL, 0);
}

pid_t st_sink_start(const char *db, const char *group, const char *topic, int http_port, const char *const *extra_env)
{
    const char *keep[] = {"VC_KAFKA_BROKERS", "VC_MYSQL_HOST", "VC_MYSQL_PORT", "VC_MYSQL_USER", "VC_MYSQL_PASSWORD",
                          "PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"};
    char *envp[64];
    char store[32][512];
    int n = 0;
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        const char *v = getenv(keep[i]);
        if (v) {
            snprintf(store[n], sizeof store[n], "%s=%s", keep[i], v);
            envp[n] = store[n];
            n++;
        }
    }
    snprintf(store[n], sizeof store[n], "VC_MYSQL_DB=%s", db);
    envp[n] = store[n];
    n++;
    snprintf(store[n], sizeof store[n], "VC_SINK_GROUP=%s", group);
    envp[n] = store[n];
    n++;
    snprintf(store[n], sizeof store[n], "VC_EVENTS_TOPIC=%s", topic);
    envp[n] = store[n];
    n++;
    snprintf(store[n], sizeof store[n], "VC_SINK_HTTP_PORT=%d", http_port);
    envp[n] = store[n];
    n++;
    snprintf(store[n], sizeof store[n], "VC_DLQ_TOPIC=%s.dlq", topic);
    envp[n] = store[n];
    n++;
    static const char *defaults[] = {"VC_ROLLUP_SECONDS=10", "VC_GATEWAY_TIMEOUT_MS=20000",
                                     "VC_SINK_FLUSH_INTERVAL_MS=300", "VC_SINK_RETRY_MAX_MS=500",
                                     "VC_SINK_DB_TIMEOUT_S=3", "VC_SINK_MAINTENANCE=1",
                                     "VC_SINK_SESSION_TIMEOUT_MS=3000", "VC_SINK_MAX_POLL_INTERVAL_MS=6000"};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        envp[n++] = (char *)defaults[i];
    for (int i = 0; extra_env && extra_env[i] && n < 62; i++)
        envp[n++] = (char *)extra_env[i];
    envp[n] = NULL;
    char *argv[] = {(char *)VC_SINK_BIN, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, VC_SINK_BIN, NULL, NULL, argv, envp);
    cr_assert_eq(rc, 0, "spawn %s: %s", VC_SINK_BIN, strerror(rc));
    if (nstarted == 0)
        atexit(kill_leftovers);
    if (nstarted < (int)(sizeof started / sizeof started[0]))
        started[nstarted++] = pid;
    /* up once its HTTP endpoint answers (its signal handlers are in place then) */
    int64_t end = mono_ms() + 20000;
    char body[256];
    while (mono_ms() < end && st_http_get(http_port, "/healthz", body, sizeof body) < 0) {
        if (waitpid(pid, &rc, WNOHANG) == pid)
            break;
        sleep_ms(20);
    }
    return pid;
}

static int wait_pid(pid_t pid, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    int status;
    while (mono_ms() < end) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        sleep_ms(20);
    }
    return -1;
}

int st_sink_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    int rc = wait_pid(pid, 30000);
    if (rc < 0) {
        kill(pid, SIGKILL);
        wait_pid(pid, 5000);
        cr_assert_fail("vc-sink %d did not stop within 30 s", (int)pid);
    }
    return rc;
}

void st_sink_kill9(pid_t pid)
{
    kill(pid, SIGKILL);
    cr_assert_geq(wait_pid(pid, 10000), 0, "vc-sink %d did not die", (int)pid);
}

/* Sum of the stored offsets, or -1 on any error (never asserts: the
 * connection may be killed on purpose by a test). */
static int64_t stored_sum(MYSQL **my, const char *db, const char *group, const char *topic)
{
    if (!*my) {
        *my = mysql_init(NULL);
        unsigned int t = 5;
        mysql_options(*my, MYSQL_OPT_CONNECT_TIMEOUT, &t);
        mysql_options(*my, MYSQL_OPT_READ_TIMEOUT, &t);
        if (!mysql_real_connect(*my, getenv("VC_MYSQL_HOST"), getenv("VC_MYSQL_USER"), getenv("VC_MYSQL_PASSWORD"),
                                NULL, (unsigned int)atoi(getenv("VC_MYSQL_PORT")), NULL, 0)) {
            mysql_close(*my);
            *my = NULL;
            return -1;
        }
    }
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT COALESCE(SUM(next_offset), 0) FROM `%s`.sink_offsets WHERE consumer_group='%s' AND topic='%s'", db,
             group, topic);
    MYSQL_RES *res = mysql_query(*my, sql) ? NULL : mysql_store_result(*my);
    if (!res) {
        mysql_close(*my);
        *my = NULL;
        return -1;
    }
    MYSQL_ROW row = mysql_fetch_row(res);
    int64_t v = row && row[0] ? strtoll(row[0], NULL, 10) : -1;
    mysql_free_result(res);
    return v;
}

int st_wait_offsets(const char *db, const char *group, const char *topic, int64_t total, int timeout_s, pid_t pid)
{
    st_env("VC_MYSQL_HOST");
    MYSQL *my = NULL;
    int64_t end = mono_ms() + timeout_s * 1000LL;
    int64_t got = -1;
    while (mono_ms() < end) {
        got = stored_sum(&my, db, group, topic);
        if (got >= total)
            break;
        if (pid > 0) {
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                fprintf(stderr, "vc-sink %d exited early (status %d)\n", (int)pid, status);
                break;
            }
        }
        sleep_ms(200);
    }
    if (my)
        mysql_close(my);
    if (got != total)
        fprintf(stderr, "offsets of %s in %s: %" PRId64 " of %" PRId64 "\n", group, db, got, total);
    return got == total ? 0 : -1;
}

int64_t st_rows(const char *db, const char *table)
{
    MYSQL *my = st_my_connect(db);
    int64_t n = st_my_int(my, "SELECT COUNT(*) FROM `%s`", table);
    mysql_close(my);
    return n;
}

static const struct {
    const char *table, *order;
} data_tables[] = {
    {"viewer_history", "stream_id, recorded_at"},
    {"current_viewers", "stream_id"},
    {"daily_statistics", "stat_date, stream_id"},
    {"daily_broadcaster_statistics", "broadcaster_id, stat_date"},
    {"user_sessions", "stream_id, gateway_id, conn_id, left_at"},
};

int st_db_compare(const char *db_a, const char *db_b)
{
    MYSQL *my = st_my_connect(db_a);
    int diffs = 0;
    for (size_t t = 0; t < sizeof data_tables / sizeof data_tables[0]; t++) {
        MYSQL_RES *res[2];
        const char *dbs[2] = {db_a, db_b};
        for (int k = 0; k < 2; k++) {
            char sql[512];
            snprintf(sql, sizeof sql, "SELECT * FROM `%s`.`%s` ORDER BY %s", dbs[k], data_tables[t].table,
                     data_tables[t].order);
            if (mysql_query(my, sql))
                cr_assert_fail("%s: %s", sql, mysql_error(my));
            res[k] = mysql_store_result(my);
            cr_assert_not_null(res[k]);
        }
        uint64_t na = mysql_num_rows(res[0]), nb = mysql_num_rows(res[1]);
        if (na != nb) {
            fprintf(stderr, "%s: %" PRIu64 " rows in %s, %" PRIu64 " in %s\n", data_tables[t].table, na, db_a, nb, db_b);
            diffs++;
        }
        unsigned int nf = mysql_num_fields(res[0]);
        MYSQL_FIELD *fields = mysql_fetch_fields(res[0]);
        for (uint64_t r = 0; r < na && r < nb; r++) {
            MYSQL_ROW ra = mysql_fetch_row(res[0]), rb = mysql_fetch_row(res[1]);
            for (unsigned int f = 0; f < nf; f++) {
                const char *a = ra[f] ? ra[f] : "NULL", *b = rb[f] ? rb[f] : "NULL";
                if (strcmp(a, b)) {
                    if (diffs < 20)
                        fprintf(stderr, "%s row %" PRIu64 " column %s: '%s' vs '%s'\n", data_tables[t].table, r,
                                fields[f].name, a, b);
                    diffs++;
                }
            }
        }
        mysql_free_result(res[0]);
        mysql_free_result(res[1]);
    }
    mysql_close(my);
    return diffs;
}

int st_http_get(int port, const char *path, char *buf, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        close(fd);
        return -1;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    while (got < size - 1 && poll(&pfd, 1, 5000) == 1) {
        ssize_t r = read(fd, buf + got, size - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = 0;
    close(fd);
    int status = -1;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    return status;
}
