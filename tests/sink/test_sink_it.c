/* vc-sink against the stack's real broker and MariaDB: exactly once under
 * kill -9, a MariaDB restart, a writer turning read-only, dead letters,
 * metrics. Each test produces its own events (schemas codec) to its own topic
 * and compares, row by row, a database written by a disturbed run with one
 * written by an undisturbed run of the same events. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sinktest.h"

#define WAIT_S 120

/* The HTTP port of test sink k: one the kernel says is free, kept per k so a
 * restarted sink comes back on the same port. Not a slot of the stack's port
 * range: those belong to the stack (its brokers listen on B+45..B+47). */
static int http_port(int k)
{
    static int ports[16];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd;

    cr_assert(k >= 0 && k < 16);
    if (ports[k])
        return ports[k];
    fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    ports[k] = ntohs(a.sin_port);
    return ports[k];
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int64_t total_of(const int64_t counts[ST_MAX_PARTS])
{
    int64_t t = 0;
    for (int p = 0; p < ST_MAX_PARTS; p++)
        t += counts[p];
    return t;
}

/* An undisturbed run of the topic into a fresh database. */
static void reference_run(const char *db, const char *topic, int64_t total)
{
    char group[64];
    st_unique(group, sizeof group, "ref");
    st_db_create(db);
    pid_t pid = st_sink_start(db, group, topic, http_port(0), NULL);
    int ok = st_wait_offsets(db, group, topic, total, WAIT_S, pid);
    int rc = st_sink_stop(pid);
    cr_assert_eq(rc, 0, "reference sink exit status %d", rc);
    cr_assert_eq(ok, 0, "the reference sink did not consume the %lld events within %d s", (long long)total, WAIT_S);
    cr_assert_gt(st_rows(db, "viewer_history"), 0);
    cr_assert_gt(st_rows(db, "user_sessions"), 0);
}

static void expect_same(const char *ref, const char *db)
{
    cr_expect_eq(st_db_compare(ref, db), 0, "%s differs from the undisturbed run %s (see stderr)", db, ref);
}

/* ---- kill -9 in a loop while events flow ------------------------------- */

typedef struct {
    char db[64], group[64], topic[64];
    volatile int producing;
    int kills;
    int kills_after_progress;  /* kills that found offsets stored: restarts from a checkpoint */
    int port;
    pid_t pid;
} killer_arg;

/* Stored offsets of the group, without asserting (runs on its own thread). */
static long long stored_offsets(const killer_arg *a)
{
    MYSQL *my = mysql_init(NULL);
    long long v = -1;
    if (my && mysql_real_connect(my, getenv("VC_MYSQL_HOST"), getenv("VC_MYSQL_USER"), getenv("VC_MYSQL_PASSWORD"),
                                 a->db, (unsigned int)atoi(getenv("VC_MYSQL_PORT")), NULL, 0)) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT COALESCE(SUM(next_offset),0) FROM sink_offsets WHERE consumer_group='%s'",
                 a->group);
        MYSQL_RES *res = mysql_query(my, sql) ? NULL : mysql_store_result(my);
        MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
        if (row && row[0])
            v = atoll(row[0]);
        if (res)
            mysql_free_result(res);
    }
    mysql_close(my);
    return v;
}

/* Start, let it work 4-9 s (joining the group takes about 3 s), kill -9; again. */
static void *killer(void *p)
{
    killer_arg *a = p;
    unsigned int r = 12345;
    long long last = 0;
    while (a->producing || a->kills < 8) {
        a->pid = st_sink_start(a->db, a->group, a->topic, a->port, NULL);
        sleep_ms(4000 + (int)(rand_r(&r) % 5000));
        kill(a->pid, SIGKILL);
        waitpid(a->pid, NULL, 0);
        a->kills++;
        long long now = stored_offsets(a);
        if (now > last)
            a->kills_after_progress++;
        last = now;
        if (a->kills > 40)
            break;
    }
    return NULL;
}

Test(sink_it, kill9_in_a_loop_equals_a_crash_free_run, .timeout = 600)
{
    killer_arg a = {.producing = 1, .port = http_port(1)};
    st_unique(a.topic, sizeof a.topic, "sk_kill");
    st_unique(a.db, sizeof a.db, "sk_kill");
    st_unique(a.group, sizeof a.group, "kill");
    st_scenario s;
    st_scenario_default(&s);
    s.events = 16000;
    s.slices = 20;
    s.slice_sleep_ms = 1500;
    st_topic_create(a.topic, s.partitions);
    st_db_create(a.db);

    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, killer, &a), 0);
    int64_t counts[ST_MAX_PARTS];
    st_produce(&s, a.topic, counts);
    a.producing = 0;
    pthread_join(th, NULL);
    cr_log_info("killed vc-sink %d times, %d after it had stored progress", a.kills, a.kills_after_progress);
    cr_assert_geq(a.kills, 8);
    cr_assert_geq(a.kills_after_progress, 3, "too few restarts from a stored checkpoint");

    int64_t total = total_of(counts);
    pid_t pid = st_sink_start(a.db, a.group, a.topic, a.port, NULL);
    int ok = st_wait_offsets(a.db, a.group, a.topic, total, WAIT_S, pid);
    int rc = st_sink_stop(pid);
    cr_assert_eq(rc, 0, "vc-sink exit status %d", rc);
    cr_assert_eq(ok, 0, "the last sink did not finish the topic");

    char ref[64];
    st_unique(ref, sizeof ref, "sk_kill_ref");
    reference_run(ref, a.topic, total);
    expect_same(ref, a.db);
    /* the scenario's silent gateway lost its viewers in event time */
    MYSQL *my = st_my_connect(ref);
    cr_expect_gt(st_my_int(my, "SELECT COUNT(*) FROM user_sessions WHERE leave_reason='gateway_dead'"), 0);
    mysql_close(my);
}

/* ---- two sinks in one group: rebalances while events flow --------------- */

/* Partitions a sink reports as assigned (its /metrics), -1 if it does not answer. */
static int assigned(int port)
{
    char body[8192];
    if (st_http_get(port, "/metrics", body, sizeof body) != 200)
        return -1;
    const char *p = strstr(body, "\nvc_sink_assigned_partitions ");
    return p ? atoi(p + strlen("\nvc_sink_assigned_partitions ")) : -1;
}

static int wait_assigned(int port, int timeout_s)
{
    for (int i = 0; i < timeout_s * 10; i++) {
        if (assigned(port) > 0)
            return 0;
        sleep_ms(100);
    }
    return -1;
}

Test(sink_it, rebalances_between_two_sinks_equal_a_single_run, .timeout = 600)
{
    char topic[64], db[64], ref[80], group[64];
    st_unique(topic, sizeof topic, "sk_rebal");
    st_unique(db, sizeof db, "sk_rebal");
    snprintf(ref, sizeof ref, "%s_ref", db);
    st_unique(group, sizeof group, "rebal");
    st_scenario s;
    st_scenario_default(&s);
    st_topic_create(topic, s.partitions);
    st_db_create(db);

    /* first half with two members in the group (how the broker splits the
     * partitions between them is its business; the rows must not care) */
    pid_t a = st_sink_start(db, group, topic, http_port(6), NULL);
    cr_assert_eq(wait_assigned(http_port(6), 30), 0, "the first sink got no partition");
    pid_t b = st_sink_start(db, group, topic, http_port(7), NULL);
    cr_assert_eq(wait_assigned(http_port(7), 30), 0, "the second sink got no partition");
    int64_t first[ST_MAX_PARTS], second[ST_MAX_PARTS];
    s.to_event = s.events / 2;
    st_produce(&s, topic, first);
    sleep_ms(3000);
    /* one dies: the other takes its partitions over from their checkpoints */
    kill(a, SIGKILL);
    waitpid(a, NULL, 0);
    s.from_event = s.events / 2;
    s.to_event = s.events * 3 / 4;
    st_produce(&s, topic, second);
    cr_assert_eq(wait_assigned(http_port(7), 30), 0);
    /* and a new one joins: partitions move back */
    a = st_sink_start(db, group, topic, http_port(6), NULL);
    cr_assert_eq(wait_assigned(http_port(6), 30), 0, "the new sink got no partition");
    int64_t third[ST_MAX_PARTS];
    s.from_event = s.events * 3 / 4;
    s.to_event = 0;
    st_produce(&s, topic, third);
    int64_t total = total_of(first) + total_of(second) + total_of(third);
    int ok = st_wait_offsets(db, group, topic, total, WAIT_S, b);
    int rca = st_sink_stop(a), rcb = st_sink_stop(b);
    cr_assert_eq(ok, 0, "the two sinks did not finish the topic");
    cr_expect_eq(rca, 0);
    cr_expect_eq(rcb, 0);
    reference_run(ref, topic, total);
    expect_same(ref, db);
}

/* ---- disturbances while events flow ------------------------------------ */

/* The first half of the events is consumed and stored; then `disturb` runs,
 * the second half is produced and consumed while the database cannot take
 * it, `heal` runs, and the database must end up as the undisturbed run's. */
static void disturbed_run(const char *name, const char *disturb, const char *heal, int expect_stall)
{
    char topic[64], db[64], ref[80], group[64];
    st_unique(topic, sizeof topic, name);
    st_unique(db, sizeof db, name);
    snprintf(ref, sizeof ref, "%s_ref", db);
    st_unique(group, sizeof group, name);
    st_scenario s;
    st_scenario_default(&s);
    st_topic_create(topic, s.partitions);
    st_db_create(db);
    int port = http_port(2);
    pid_t pid = st_sink_start(db, group, topic, port, (const char *const[]){"VC_SINK_MAINTENANCE=0", NULL});

    int64_t first[ST_MAX_PARTS], second[ST_MAX_PARTS];
    s.to_event = s.events / 2;
    st_produce(&s, topic, first);
    int ok = st_wait_offsets(db, group, topic, total_of(first), WAIT_S, pid);
    cr_assert_eq(ok, 0, "the first half was not stored");

    cr_assert_eq(st_sh("%s", disturb), 0, "%s", disturb);
    s.from_event = s.events / 2;
    s.to_event = 0;
    st_produce(&s, topic, second);
    int64_t total = total_of(first) + total_of(second);
    sleep_ms(3000);
    char body[8192];
    int health = st_http_get(port, "/healthz", body, sizeof body);
    cr_assert_eq(st_sh("%s", heal), 0, "%s", heal);
    MYSQL *my = st_my_connect(db);
    int64_t stored = st_my_int(my, "SELECT SUM(next_offset) FROM sink_offsets WHERE consumer_group='%s'", group);
    mysql_close(my);
    if (expect_stall)
        cr_expect_eq(stored, total_of(first), "nothing was committed while the database refused writes");
    cr_expect_eq(health, 503, "healthz during the outage: %d %s", health, body);

    ok = st_wait_offsets(db, group, topic, total, WAIT_S, pid);
    cr_expect_eq(st_http_get(port, "/metrics", body, sizeof body), 200);
    cr_expect_null(strstr(body, "vc_sink_transaction_retries_total 0\n"), "retries were counted:\n%s", body);
    cr_expect_not_null(strstr(body, "vc_sink_db_up 1\n"), "%s", body);
    int rc = st_sink_stop(pid);
    cr_assert_eq(rc, 0, "vc-sink exit status %d", rc);
    cr_assert_eq(ok, 0, "the sink did not finish after the database came back");
    reference_run(ref, topic, total);
    expect_same(ref, db);
}

Test(sink_it, mariadb_restart_mid_run_loses_nothing, .timeout = 600)
{
    disturbed_run("sk_restart", VC_REPO_DIR "/deploy/local/stack stop mariadb >/dev/null 2>&1",
                  VC_REPO_DIR "/deploy/local/stack start mariadb >/dev/null 2>&1", 0);
}

/* What Aurora's old writer answers after a failover. */
Test(sink_it, read_only_writer_is_retried_until_writable, .timeout = 600)
{
    disturbed_run("sk_ro", VC_REPO_DIR "/deploy/local/stack mysql admin -e 'SET GLOBAL read_only=ON'",
                  VC_REPO_DIR "/deploy/local/stack mysql admin -e 'SET GLOBAL read_only=OFF'", 1);
}

/* ---- connections killed at any statement, COMMIT included --------------- */

Test(sink_it, connections_killed_mid_transaction_change_nothing, .timeout = 600)
{
    char topic[64], db[64], ref[80], group[64];
    st_unique(topic, sizeof topic, "sk_ckill");
    st_unique(db, sizeof db, "sk_ckill");
    snprintf(ref, sizeof ref, "%s_ref", db);
    st_unique(group, sizeof group, "ckill");
    st_scenario s;
    st_scenario_default(&s);
    s.slices = 10;
    s.slice_sleep_ms = 500;
    st_topic_create(topic, s.partitions);
    st_db_create(db);
    int port = http_port(5);
    /* small flushes, many transactions to hit */
    pid_t pid = st_sink_start(db, group, topic, port,
                              (const char *const[]){"VC_SINK_POLL_BATCH=50", "VC_SINK_FLUSH_INTERVAL_MS=0", NULL});
    /* kill the sink's connections to its database, every 100 ms, while it works */
    char killer[1024];
    snprintf(killer, sizeof killer,
             "( for i in $(seq 1 120); do " VC_REPO_DIR "/deploy/local/stack mysql admin -N -e \"SELECT CONCAT('KILL "
             "CONNECTION ', id, ';') FROM information_schema.processlist WHERE db = '%s' AND user = '%s'\" | " VC_REPO_DIR
             "/deploy/local/stack mysql admin -f >/dev/null 2>&1; sleep 0.1; done ) >/dev/null 2>&1 & echo $! > /tmp/%s.pid",
             db, st_env("VC_MYSQL_USER"), db);
    cr_assert_eq(st_sh("%s", killer), 0);
    int64_t counts[ST_MAX_PARTS];
    st_produce(&s, topic, counts);
    int64_t total = total_of(counts);
    int ok = st_wait_offsets(db, group, topic, total, WAIT_S, pid);
    st_sh("kill $(cat /tmp/%s.pid) 2>/dev/null; rm -f /tmp/%s.pid", db, db);
    char body[8192];
    cr_expect_eq(st_http_get(port, "/metrics", body, sizeof body), 200);
    cr_expect_null(strstr(body, "vc_sink_transaction_retries_total 0\n"), "connections were killed:\n%s", body);
    int rc = st_sink_stop(pid);
    cr_assert_eq(rc, 0, "vc-sink exit status %d", rc);
    cr_assert_eq(ok, 0, "the sink did not finish");
    reference_run(ref, topic, total);
    expect_same(ref, db);
}

/* ---- dead letters and metrics ------------------------------------------ */

Test(sink_it, undecodable_events_go_to_the_dead_letter_topic, .timeout = 300)
{
    char topic[64], db[64], group[64], dlq[80];
    st_unique(topic, sizeof topic, "sk_dlq");
    st_unique(db, sizeof db, "sk_dlq");
    st_unique(group, sizeof group, "dlq");
    snprintf(dlq, sizeof dlq, "%s.dlq", topic);
    st_scenario s;
    st_scenario_default(&s);
    s.events = 2000;
    s.garbage = 5;
    st_topic_create(topic, s.partitions);
    st_topic_create(dlq, 1);
    int64_t counts[ST_MAX_PARTS];
    st_produce(&s, topic, counts);
    int64_t total = total_of(counts);
    st_db_create(db);
    int port = http_port(4);
    pid_t pid = st_sink_start(db, group, topic, port, NULL);
    int ok = st_wait_offsets(db, group, topic, total, WAIT_S, pid);
    char body[8192];
    cr_expect_eq(st_http_get(port, "/metrics", body, sizeof body), 200);
    cr_expect_eq(st_http_get(port, "/healthz", body + 4096, 4096), 200);
    int rc = st_sink_stop(pid);
    cr_assert_eq(rc, 0, "vc-sink exit status %d", rc);
    cr_assert_eq(ok, 0, "the sink did not get past the undecodable events");
    cr_expect_not_null(strstr(body, "vc_sink_dead_lettered_total 5\n"), "%s", body);
    cr_expect_null(strstr(body, "vc_sink_rows_written_total{table=\"viewer_history\"} 0\n"), "%s", body);

    /* the five messages are on the DLQ with their reason */
    cr_assert_eq(st_sh("timeout 60 kcat -C -b %s -t %s -o beginning -c 5 -e -f '%%h\\n' > /tmp/%s.h 2>/dev/null",
                       st_env("VC_KAFKA_BROKERS"), dlq, dlq),
                 0, "reading the DLQ");
    cr_expect_eq(st_sh("test $(grep -c 'reason=' /tmp/%s.h) -eq 5", dlq), 0, "5 messages with a reason header");
    st_sh("rm -f /tmp/%s.h", dlq);
}
