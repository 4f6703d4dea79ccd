/* vc_redis against a real Redis Cluster (3 masters + 3 replicas) named by
 * VC_REDIS_NODES. The tests move slots, fail over masters, pause, kill the
 * connections of and stop (SIGSTOP) nodes; each one puts the cluster back as
 * it found it (the fini below) and waits, bounded, for every node to agree.
 *
 * The cluster they expect (deploy/local/stack, tests/redis/dev_cluster.sh):
 * the nodes run on this machine (SIGSTOP by the pid INFO gives), every range
 * has a replica, cluster-node-timeout of at most about 3000 ms (a stopped
 * master must be replaced within 7 s), CLIENT, CLUSTER SETSLOT and MIGRATE
 * allowed; no DEBUG command needed. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vc_redis.h"

#define NODES_MAX 16
#define SETTLE_MS 30000

typedef struct {
    char host[64];
    int port;
} addr;

static addr g_node[NODES_MAX]; /* from VC_REDIS_NODES */
static int g_nnodes;
static int g_master0[16384];   /* port of each slot's master when the test began */
static int g_open_slot = -1;   /* a slot a test left MIGRATING/IMPORTING ... */
static int g_open_from, g_open_to; /* ... from this master to that one */
static char g_prefix[32];      /* keeps the keys of one run apart */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    usleep((useconds_t)ms * 1000);
}

static const char *host_of(int port)
{
    for (int i = 0; i < g_nnodes; i++)
        if (g_node[i].port == port)
            return g_node[i].host;
    return "127.0.0.1";
}

/* One admin command on a fresh connection (tests kill client connections). */
static redisReply *adm(int port, const char *fmt, ...)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(host_of(port), port, tv);
    cr_assert(c && !c->err, "admin connect to port %d: %s", port, c ? c->errstr : "oom");
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert(rep, "admin command on %d: %s", port, c->errstr);
    redisFree(c);
    return rep;
}

static void adm_ok(int port, const char *what, redisReply *rep)
{
    cr_assert(rep->type != REDIS_REPLY_ERROR, "%s on %d: %s", what, port, rep->str);
    freeReplyObject(rep);
}

static void node_id(int port, char *id, size_t size)
{
    redisReply *rep = adm(port, "CLUSTER MYID");
    cr_assert_eq(rep->type, REDIS_REPLY_STRING);
    snprintf(id, size, "%s", rep->str);
    freeReplyObject(rep);
}

/* Port of each slot's master and of one replica, as node port sees it. */
static void slot_map(int port, int *master, int *replica)
{
    redisReply *rep = adm(port, "CLUSTER SLOTS");
    cr_assert_eq(rep->type, REDIS_REPLY_ARRAY);
    for (int s = 0; s < 16384; s++)
        master[s] = replica[s] = -1;
    for (size_t k = 0; k < rep->elements; k++) {
        redisReply *e = rep->element[k];
        for (long long s = e->element[0]->integer; s <= e->element[1]->integer; s++) {
            master[s] = (int)e->element[2]->element[1]->integer;
            replica[s] = e->elements > 3 ? (int)e->element[3]->element[1]->integer : -1;
        }
    }
    freeReplyObject(rep);
}

static int info_has(int port, const char *section, const char *needle)
{
    redisReply *rep = adm(port, "INFO %s", section);
    int has = rep->type == REDIS_REPLY_STRING && strstr(rep->str, needle) != NULL;
    freeReplyObject(rep);
    return has;
}

/* Every node reports ok, the same slot map with a replica for every range,
 * no open slot, and every replica's link is up. */
static int cluster_settled(void)
{
    static int m0[16384], r0[16384], m[16384], r[16384];
    for (int i = 0; i < g_nnodes; i++) {
        int port = g_node[i].port;
        redisReply *rep = adm(port, "CLUSTER INFO");
        int ok = strstr(rep->str, "cluster_state:ok") != NULL;
        freeReplyObject(rep);
        rep = adm(port, "CLUSTER NODES");
        ok = ok && strchr(rep->str, '[') == NULL;
        freeReplyObject(rep);
        if (!ok || (info_has(port, "replication", "role:slave") &&
                    !info_has(port, "replication", "master_link_status:up")))
            return 0;
        slot_map(port, i ? m : m0, i ? r : r0);
        for (int s = 0; s < 16384; s++)
            if (m0[s] < 0 || r0[s] < 0 || (i && (m[s] != m0[s] || r[s] != r0[s])))
                return 0;
    }
    return 1;
}

static void wait_settled(const char *after)
{
    long long deadline = now_ms() + SETTLE_MS;
    while (!cluster_settled()) {
        cr_assert(now_ms() < deadline, "the cluster did not settle within %d ms after %s",
                  SETTLE_MS, after);
        sleep_ms(200);
    }
}

static void setslot(int port, int strict, const char *fmt, ...)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(host_of(port), port, tv);
    cr_assert(c && !c->err, "admin connect to port %d", port);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert(rep, "%s on %d: %s", fmt, port, c->errstr);
    cr_assert(!strict || rep->type != REDIS_REPLY_ERROR, "%s on %d: %s", fmt, port, rep->str);
    freeReplyObject(rep);
    redisFree(c);
}

/* Opens the migration of slot from master port `from` to master port `to`. */
static void open_slot(int slot, int from, int to, int strict)
{
    char from_id[64], to_id[64];
    node_id(from, from_id, sizeof(from_id));
    node_id(to, to_id, sizeof(to_id));
    g_open_slot = slot;
    g_open_from = from;
    g_open_to = to;
    setslot(to, strict, "CLUSTER SETSLOT %d IMPORTING %s", slot, from_id);
    setslot(from, strict, "CLUSTER SETSLOT %d MIGRATING %s", slot, to_id);
}

/* Moves the keys left in the open slot, then gives the slot to its target. */
static void close_slot(void)
{
    int slot = g_open_slot, from = g_open_from, to = g_open_to;
    char to_id[64];
    node_id(to, to_id, sizeof(to_id));
    for (;;) {
        redisReply *keys = adm(from, "CLUSTER GETKEYSINSLOT %d 100", slot);
        size_t n = keys->elements;
        for (size_t k = 0; k < n; k++)
            adm_ok(from, "MIGRATE",
                   adm(from, "MIGRATE %s %d %s 0 5000 REPLACE", host_of(to), to, keys->element[k]->str));
        freeReplyObject(keys);
        if (n == 0)
            break;
    }
    setslot(to, 1, "CLUSTER SETSLOT %d NODE %s", slot, to_id);
    setslot(from, 1, "CLUSTER SETSLOT %d NODE %s", slot, to_id);
    for (int i = 0; i < g_nnodes; i++)
        if (g_node[i].port != from && g_node[i].port != to &&
            info_has(g_node[i].port, "replication", "role:master"))
            setslot(g_node[i].port, 1, "CLUSTER SETSLOT %d NODE %s", slot, to_id);
    g_open_slot = -1;
}

static void migrate_slot(int slot, int from, int to)
{
    open_slot(slot, from, to, 1);
    close_slot();
}

/* CLUSTER FAILOVER on a replica, then wait until it is master and settled. */
static void failover_to(int replica)
{
    adm_ok(replica, "CLUSTER FAILOVER", adm(replica, "CLUSTER FAILOVER"));
    long long deadline = now_ms() + SETTLE_MS;
    while (!info_has(replica, "replication", "role:master")) {
        cr_assert(now_ms() < deadline, "replica %d did not take over", replica);
        sleep_ms(100);
    }
    wait_settled("a failover");
}

static void setup(void)
{
    const char *env = getenv("VC_REDIS_NODES");
    cr_assert(env && *env, "VC_REDIS_NODES is not set: start the local stack "
                           "(deploy/local/stack) or tests/redis/dev_cluster.sh and export it");
    g_nnodes = 0;
    for (const char *p = env; *p && g_nnodes < NODES_MAX;) {
        addr *a = &g_node[g_nnodes++];
        cr_assert(sscanf(p, "%63[^:]:%d", a->host, &a->port) == 2, "bad VC_REDIS_NODES: %s", env);
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }
    cr_assert_eq(g_nnodes, 6, "VC_REDIS_NODES must name 3 masters + 3 replicas: %s", env);
    snprintf(g_prefix, sizeof(g_prefix), "vctest:%d", (int)getpid());
    wait_settled("the previous test");
    int replica[16384];
    slot_map(g_node[0].port, g_master0, replica);
}

/* Back to the layout found by setup: close an open slot, fail back, move
 * slots home. */
static void teardown(void)
{
    if (g_nnodes == 0)
        return;
    if (g_open_slot >= 0) { /* finish it, then move the slot home below */
        open_slot(g_open_slot, g_open_from, g_open_to, 0);
        close_slot();
    }
    wait_settled("the test"); /* a demoted master has become a replica */
    int master[16384], replica[16384];
    for (int pass = 0; pass < 2; pass++) {
        slot_map(g_node[0].port, master, replica);
        for (int s = 0; s < 16384; s++)
            if (master[s] != g_master0[s] && replica[s] == g_master0[s]) {
                failover_to(g_master0[s]);
                slot_map(g_node[0].port, master, replica);
            }
    }
    for (int s = 0; s < 16384; s++)
        if (master[s] != g_master0[s])
            migrate_slot(s, master[s], g_master0[s]);
    wait_settled("restoring the cluster");
    for (int i = 0; i < g_nnodes; i++) { /* keys a failed test left */
        if (!info_has(g_node[i].port, "replication", "role:master"))
            continue;
        redisReply *keys = adm(g_node[i].port, "KEYS %s:*", g_prefix);
        for (size_t k = 0; k < keys->elements; k++)
            freeReplyObject(adm(g_node[i].port, "DEL %s", keys->element[k]->str));
        freeReplyObject(keys);
    }
}

TestSuite(redis_cluster, .init = setup, .fini = teardown, .timeout = 120);

static vc_redis *client(int read_replicas, int timeout_ms)
{
    char err[256] = "";
    vc_redis_conf conf = {getenv("VC_REDIS_NODES"), read_replicas, timeout_ms};
    vc_redis *r = vc_redis_new(&conf, err, sizeof(err));
    cr_assert(r, "vc_redis_new: %s", err);
    return r;
}

static void exec_ok(vc_redis_batch *b)
{
    char err[512] = "";
    cr_assert_eq(vc_redis_batch_exec(b, err, sizeof(err)), 0, "exec: %s", err);
}

static void expect_str(const vc_redis_batch *b, int i, const char *want)
{
    const redisReply *rep = vc_redis_batch_reply(b, i);
    cr_assert(rep, "no reply %d", i);
    cr_assert_eq(rep->type, REDIS_REPLY_STRING, "reply %d: type %d %s", i, rep->type,
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "");
    cr_assert_str_eq(rep->str, want, "reply %d", i);
}

static void expect_int(const vc_redis_batch *b, int i, long long want)
{
    const redisReply *rep = vc_redis_batch_reply(b, i);
    cr_assert(rep, "no reply %d", i);
    cr_assert_eq(rep->type, REDIS_REPLY_INTEGER, "reply %d: type %d %s", i, rep->type,
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "");
    cr_assert_eq(rep->integer, want, "reply %d", i);
}

/* A key of this run in slot `slot`: "<prefix>:{<tag>}:<name>". */
static void slot_key(char *key, size_t size, unsigned slot, const char *name)
{
    static int tag[16384], ntags;
    char t[32];
    for (int i = 0; ntags < 16384; i++) {
        int n = snprintf(t, sizeof(t), "t%d", i);
        unsigned s = vc_redis_key_slot(t, (size_t)n);
        if (!tag[s]) {
            tag[s] = i + 1;
            ntags++;
        }
    }
    snprintf(key, size, "%s:{t%d}:%s", g_prefix, tag[slot] - 1, name);
}

/* errorstat_<code> count of a node (how many such errors it replied). */
static long long error_count(int port, const char *code)
{
    char needle[64];
    snprintf(needle, sizeof(needle), "errorstat_%s:count=", code);
    redisReply *rep = adm(port, "INFO errorstats");
    const char *p = strstr(rep->str, needle);
    long long n = p ? atoll(p + strlen(needle)) : 0;
    freeReplyObject(rep);
    return n;
}

/* Reads use GETRANGE, which nothing else in the stack sends, and are
 * counted per node. */
static long long get_calls(int port)
{
    redisReply *rep = adm(port, "INFO commandstats");
    const char *p = strstr(rep->str, "cmdstat_getrange:calls=");
    long long n = p ? atoll(p + strlen("cmdstat_getrange:calls=")) : 0;
    freeReplyObject(rep);
    return n;
}

static int other_master(int port)
{
    for (int s = 0; s < 16384; s++)
        if (g_master0[s] != port)
            return g_master0[s];
    return -1;
}

Test(redis_cluster, a_batch_over_every_slot_keeps_the_order_of_its_replies)
{
    vc_redis *r = client(0, 2000);
    vc_redis_batch *b = vc_redis_batch_new(r, 0);
    static char key[16384][64];
    char val[32];
    for (unsigned s = 0; s < 16384; s++) {
        slot_key(key[s], sizeof(key[s]), s, "v");
        snprintf(val, sizeof(val), "%u", s);
        cr_assert_eq(vc_redis_batch_addf(b, key[s], "SET %s %s", key[s], val), (int)(3 * s));
        cr_assert_eq(vc_redis_batch_addf(b, key[s], "APPEND %s x", key[s]), (int)(3 * s + 1));
        cr_assert_eq(vc_redis_batch_addf(b, key[s], "GET %s", key[s]), (int)(3 * s + 2));
    }
    exec_ok(b);
    cr_assert_eq(vc_redis_batch_count(b), 3 * 16384);
    for (unsigned s = 0; s < 16384; s++) {
        snprintf(val, sizeof(val), "%ux", s);
        const redisReply *ok = vc_redis_batch_reply(b, (int)(3 * s));
        cr_assert(ok && ok->type == REDIS_REPLY_STATUS, "SET %u", s);
        expect_int(b, (int)(3 * s + 1), (long long)strlen(val));
        expect_str(b, (int)(3 * s + 2), val);
    }
    /* The same through the argv form, read back, then cleaned up. */
    vc_redis_batch_reset(b);
    cr_assert_eq(vc_redis_batch_count(b), 0);
    for (unsigned s = 0; s < 16384; s += 7) {
        const char *argv[] = {"GET", key[s]};
        cr_assert_eq(vc_redis_batch_add(b, key[s], 2, argv, NULL), (int)(s / 7));
    }
    exec_ok(b);
    for (unsigned s = 0; s < 16384; s += 7) {
        snprintf(val, sizeof(val), "%ux", s);
        expect_str(b, (int)(s / 7), val);
    }
    vc_redis_batch_reset(b);
    for (unsigned s = 0; s < 16384; s++)
        vc_redis_batch_addf(b, key[s], "DEL %s", key[s]);
    exec_ok(b);
    for (unsigned s = 0; s < 16384; s++)
        expect_int(b, (int)s, 1);
    vc_redis_batch_destroy(b);
    vc_redis_destroy(r);
}

Test(redis_cluster, an_error_reply_is_the_commands_reply)
{
    vc_redis *r = client(0, 2000);
    vc_redis_batch *b = vc_redis_batch_new(r, 0);
    char k[64], other[64];
    slot_key(k, sizeof(k), 42, "str");
    slot_key(other, sizeof(other), 9000, "alone");
    vc_redis_batch_addf(b, k, "SET %s abc", k);
    vc_redis_batch_addf(b, k, "LPUSH %s x", k);          /* runtime error in a group */
    vc_redis_batch_addf(b, k, "GET %s %s", k, k);         /* wrong arity: refused when queued */
    vc_redis_batch_addf(b, k, "APPEND %s d", k);
    vc_redis_batch_addf(b, other, "HSET %s", other);     /* alone in its slot */
    vc_redis_batch_addf(b, k, "EVAL %s 1 %s", "return redis.error_reply('BOOM no')", k);
    exec_ok(b);
    const redisReply *rep = vc_redis_batch_reply(b, 1);
    cr_assert(rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "WRONGTYPE", 9) == 0);
    rep = vc_redis_batch_reply(b, 2);
    cr_assert(rep && rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "wrong number"), "%s",
              rep ? rep->str : "none");
    expect_int(b, 3, 4);
    rep = vc_redis_batch_reply(b, 4);
    cr_assert(rep && rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "wrong number"));
    rep = vc_redis_batch_reply(b, 5);
    cr_assert(rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "BOOM", 4) == 0);
    cr_assert_null(vc_redis_batch_reply(b, 6));
    vc_redis_batch_reset(b);
    vc_redis_batch_addf(b, k, "DEL %s", k);
    exec_ok(b);
    vc_redis_batch_destroy(b);
    vc_redis_destroy(r);
}

Test(redis_cluster, a_batch_over_its_bound_is_refused)
{
    vc_redis *r = client(0, 2000);
    vc_redis_batch *b = vc_redis_batch_new(r, 0);
    char k[64];
    slot_key(k, sizeof(k), 7, "bound");
    for (int i = 0; i < VC_REDIS_BATCH_MAX; i++)
        cr_assert_eq(vc_redis_batch_addf(b, k, "INCR %s", k), i);
    cr_assert_eq(vc_redis_batch_addf(b, k, "INCR %s", k), -1);
    const char *argv[] = {"INCR", k};
    cr_assert_eq(vc_redis_batch_add(b, k, 2, argv, NULL), -1);
    cr_assert_eq(vc_redis_batch_count(b), VC_REDIS_BATCH_MAX);
    exec_ok(b);
    expect_int(b, VC_REDIS_BATCH_MAX - 1, VC_REDIS_BATCH_MAX);
    vc_redis_batch_reset(b);
    vc_redis_batch_addf(b, k, "DEL %s", k);
    exec_ok(b);
    vc_redis_batch_destroy(b);
    vc_redis_destroy(r);
}

Test(redis_cluster, no_cluster_node_answers)
{
    char err[256] = "";
    vc_redis_conf conf = {"127.0.0.1:1", 0, 500};
    cr_assert_null(vc_redis_new(&conf, err, sizeof(err)));
    cr_assert(strstr(err, "127.0.0.1:1"), "errstr: %s", err);
    conf.nodes = "nonsense";
    cr_assert_null(vc_redis_new(&conf, err, sizeof(err)));
    cr_assert(strstr(err, "nonsense"), "errstr: %s", err);
}

Test(redis_cluster, moved_after_a_migration_is_followed_and_the_map_refreshed)
{
    vc_redis *r = client(0, 2000);
    vc_redis_batch *b = vc_redis_batch_new(r, 0);
    const unsigned slot = 1234;
    char k[64], k2[64];
    slot_key(k, sizeof(k), slot, "moved");
    slot_key(k2, sizeof(k2), slot, "moved2");
    vc_redis_batch_addf(b, k, "SET %s 10", k);
    exec_ok(b);
    int from = g_master0[slot], to = other_master(from);
    migrate_slot(slot, from, to);

    vc_redis_batch_reset(b);
    vc_redis_batch_addf(b, k, "INCR %s", k);   /* a single command */
    exec_ok(b);
    expect_int(b, 0, 11);
    vc_redis_batch_reset(b);
    vc_redis_batch_addf(b, k, "INCR %s", k);   /* a slot group */
    vc_redis_batch_addf(b, k2, "SET %s a", k2);
    vc_redis_batch_addf(b, k, "INCR %s", k);
    exec_ok(b);
    expect_int(b, 0, 12);
    expect_int(b, 2, 13);

    long long moved = error_count(from, "MOVED");
    vc_redis_batch_reset(b);
    vc_redis_batch_addf(b, k, "GET %s", k);
    exec_ok(b);
    expect_str(b, 0, "13");
    cr_expect_eq(error_count(from, "MOVED"), moved, "the map was not refreshed after MOVED");

    migrate_slot(slot, to, from);
    vc_redis_batch_reset(b);
    vc_redis_batch_addf(b, k, "GET %s", k);
    vc_redis_batch_addf(b, k, "DEL %s %s", k, k2);
    exec_ok(b);
    expect_str(b, 0, "13");
    expect_int(b, 1, 2);
    vc_redis_batch_destroy(b);
    vc_redis_destroy(r);
}

Test(redis_cluster, ask_during_a_migration_is_followed_without_updating_the_map)
{
    vc_redis *r = client(0, 2000);
    vc_redis_batch *b = vc_redis_batch_new(r, 0);
    const unsigned slot = 15000;
    char moved[64], stays[64], fresh[64];
    slot_key(moved, sizeof(moved), slot, "a");
    slot_key(stays, sizeof(stays), slot, "b");
    slot_key(fresh, sizeof(fresh), slot, "c");
    vc_redis_batch_addf(b, moved, "SET %s 1", moved);
    vc_redis_batch_addf(b, stays, "SET %s 1", stays);
    exec_ok(b);

    int from = g_master0[slot], to = other_master(from);
    open_slot((int)slot, from, to, 1);
    adm_ok(from, "MIGRATE", adm(from, "MIGRATE %s %d %s 0 5000", host_of(to), to, moved));

    long long asks = error_count(from, "ASK");
    vc_redis_batch_reset(b);
    vc_redis_batch_addf(b, moved, "INCR %s", moved);   /* alone: ASK to the target */
    exec_ok(b);
    expect_int(b, 0, 2);
    cr_assert_gt(error_count(from, "ASK"), asks);

    /* Had ASK updated the map, the target would now answer MOVED. */
    long long moved_back = error_count(to, "MOVED");
    asks = error_count(from, "ASK");
    vc_redis_batch_reset(b);
    vc_redis_batch_addf(b, moved, "INCR %s", moved);   /* a group on the moved key */
    vc_redis_batch_addf(b, moved, "INCR %s", moved);
    exec_ok(b);
    expect_int(b, 0, 3);
    expect_int(b, 1, 4);
    cr_assert_gt(error_count(from, "ASK"), asks, "the map was updated by ASK");

    asks = error_count(from, "ASK");
    vc_redis_batch_reset(b);
    vc_redis_batch_addf(b, fresh, "SET %s new", fresh); /* a new key goes to the target */
    exec_ok(b);
    cr_assert_gt(error_count(from, "ASK"), asks, "the map was updated by ASK");
    cr_assert_eq(error_count(to, "MOVED"), moved_back, "the map was updated by ASK");
    redisReply *rep = adm(to, "CLUSTER COUNTKEYSINSLOT %u", slot);
    cr_assert_eq(rep->integer, 2, "keys of the slot on the target");
    freeReplyObject(rep);

    /* A group over keys on both sides cannot run anywhere (TRYAGAIN): none of
     * it runs, and the same batch, executed again once the migration is over,
     * runs all of it in order. */
    vc_redis_batch_reset(b);
    vc_redis_batch_addf(b, stays, "INCR %s", stays);
    vc_redis_batch_addf(b, moved, "INCR %s", moved);
    vc_redis_batch_addf(b, stays, "INCR %s", stays);
    char err[512] = "";
    cr_assert_eq(vc_redis_batch_exec(b, err, sizeof(err)), -1);
    cr_assert_null(vc_redis_batch_reply(b, 0));
    rep = adm(from, "GET %s", stays);
    cr_assert_str_eq(rep->str, "1", "part of an aborted group ran");
    freeReplyObject(rep);

    close_slot();
    exec_ok(b);
    expect_int(b, 0, 2);
    expect_int(b, 1, 5);
    expect_int(b, 2, 3);
    /* teardown moves the slot home */
    vc_redis_batch_reset(b);
    vc_redis_batch_addf(b, moved, "DEL %s %s %s", moved, stays, fresh);
    exec_ok(b);
    expect_int(b, 0, 3);
    vc_redis_batch_destroy(b);
    vc_redis_destroy(r);
}

Test(redis_cluster, the_client_keeps_working_across_a_failover)
{
    vc_redis *r = client(1, 2000);
    vc_redis_batch *b = vc_redis_batch_new(r, 0);
    const unsigned slot = 6000;
    char k[64];
    slot_key(k, sizeof(k), slot, "failover");
    vc_redis_batch_addf(b, k, "SET %s 1", k);
    exec_ok(b);
    int master[16384], replica[16384];
    slot_map(g_node[0].port, master, replica);
    int promoted = replica[slot];
    failover_to(promoted);

    vc_redis_batch_reset(b);
    vc_redis_batch_addf(b, k, "INCR %s", k);
    exec_ok(b);
    expect_int(b, 0, 2);
    vc_redis_batch *rb = vc_redis_batch_new(r, 1);
    long long calls = get_calls(promoted);
    for (long long t = now_ms() + 5000;; sleep_ms(100)) { /* the new replica syncs */
        vc_redis_batch_reset(rb);
        vc_redis_batch_addf(rb, k, "GETRANGE %s 0 -1", k);
        exec_ok(rb);
        const redisReply *rep = vc_redis_batch_reply(rb, 0);
        if (rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "2") == 0)
            break;
        cr_assert_lt(now_ms(), t, "the old master never served the new value");
    }
    cr_expect_eq(get_calls(promoted), calls, "a read went to the new master, not its replica");

    vc_redis_batch_reset(b);
    vc_redis_batch_addf(b, k, "DEL %s", k);
    exec_ok(b);
    vc_redis_batch_destroy(rb);
    vc_redis_batch_destroy(b);
    vc_redis_destroy(r);
}

/* The pid of node port, from INFO server (the nodes run on this machine). */
static pid_t node_pid(int port)
{
    redisReply *rep = adm(port, "INFO server");
    const char *p = strstr(rep->str, "process_id:");
    pid_t pid = p ? (pid_t)atol(p + strlen("process_id:")) : 0;
    freeReplyObject(rep);
    cr_assert_gt(pid, 0, "no process_id from node %d", port);
    return pid;
}

Test(redis_cluster, a_dead_master_is_replaced_and_found_from_a_fresh_map)
{
    vc_redis *r = client(0, 300);
    vc_redis_batch *b = vc_redis_batch_new(r, 0);
    const unsigned slot = 12000;
    char k[64];
    slot_key(k, sizeof(k), slot, "takeover");
    vc_redis_batch_addf(b, k, "SET %s 1", k);
    exec_ok(b);
    vc_redis_batch_reset(b);
    vc_redis_batch_addf(b, k, "WAIT 1 2000"); /* on the same connection as the SET */
    exec_ok(b);
    expect_int(b, 0, 1);
    int master[16384], replica[16384];
    slot_map(g_node[0].port, master, replica);
    int old = master[slot], promoted = replica[slot];

    /* The master stops dead (SIGSTOP: it neither answers nor redirects) for
     * 8 s, long past cluster-node-timeout: its replica takes over. A child
     * process sends SIGCONT, whatever happens to this one. */
    pid_t pid = node_pid(old);
    pid_t waker = fork();
    cr_assert_neq(waker, -1);
    if (waker == 0) {
        int rc = kill(pid, SIGSTOP);
        sleep_ms(8000);
        _exit(kill(pid, SIGCONT) == 0 && rc == 0 ? 0 : 1);
    }
    for (long long t = now_ms() + 7000; !info_has(promoted, "replication", "role:master");
         sleep_ms(100))
        cr_assert_lt(now_ms(), t, "replica %d did not take over from the stopped master %d",
                     promoted, old);

    vc_redis_batch_reset(b);
    vc_redis_batch_addf(b, k, "INCR %s", k);
    exec_ok(b);
    expect_int(b, 0, 2);
    cr_assert_eq(waitpid(waker, NULL, WNOHANG), 0,
                 "the client waited for the old master to come back instead of reloading its map");
    redisReply *rep = adm(promoted, "GET %s", k);
    cr_assert(rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "2") == 0);
    freeReplyObject(rep);
    int status = 0;
    cr_assert_eq(waitpid(waker, &status, 0), waker);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "SIGSTOP/SIGCONT of pid %d failed",
              (int)pid);

    vc_redis_batch_reset(b);
    vc_redis_batch_addf(b, k, "DEL %s", k);
    exec_ok(b);
    vc_redis_batch_destroy(b);
    vc_redis_destroy(r);
    /* teardown waits for the old master to rejoin as a replica, fails back */
}

Test(redis_cluster, killed_connections_are_reopened)
{
    vc_redis *r = client(0, 2000);
    vc_redis_batch *b = vc_redis_batch_new(r, 0);
    char key[3][64];
    for (int i = 0; i < 3; i++) {
        slot_key(key[i], sizeof(key[i]), (unsigned)(i * 5461 + 100), "kill");
        vc_redis_batch_addf(b, key[i], "SET %s before", key[i]);
    }
    exec_ok(b);
    /* Name this client's connections, then kill them (and only them). */
    char name[32];
    snprintf(name, sizeof(name), "vctest%d", (int)getpid());
    vc_redis_batch_reset(b);
    for (int i = 0; i < 3; i++)
        vc_redis_batch_addf(b, key[i], "CLIENT SETNAME %s", name);
    exec_ok(b);
    int killed = 0;
    for (int i = 0; i < g_nnodes; i++) {
        redisReply *list = adm(g_node[i].port, "CLIENT LIST");
        for (const char *p = list->str; (p = strstr(p, "id=")); p++) {
            long long id = atoll(p + 3);
            const char *eol = strchr(p, '\n'), *nm = strstr(p, " name=");
            if (nm && (!eol || nm < eol) && strncmp(nm + 6, name, strlen(name)) == 0 &&
                nm[6 + strlen(name)] == ' ') {
                redisReply *rep = adm(g_node[i].port, "CLIENT KILL ID %lld", id);
                killed += rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : 0;
                freeReplyObject(rep);
            }
        }
        freeReplyObject(list);
    }
    cr_assert_eq(killed, 3, "killed %d connections of this client", killed);
    /* Megabytes for a closed connection: more than one write(2), the later
     * ones after the peer's reset (EPIPE, and SIGPIPE unless held back). */
    vc_redis_batch_reset(b);
    static char big[1 << 20];
    memset(big, 'x', sizeof(big));
    for (int n = 0; n < 16; n++) {
        const char *argv[] = {"SET", key[1], big};
        const size_t argvlen[] = {3, strlen(key[1]), sizeof(big)};
        vc_redis_batch_add(b, key[1], 3, argv, argvlen);
    }
    for (int i = 0; i < 3; i++)
        vc_redis_batch_addf(b, key[i], i == 1 ? "STRLEN %s" : "GET %s", key[i]);
    exec_ok(b);
    expect_str(b, 16, "before");
    expect_int(b, 17, sizeof(big));
    expect_str(b, 18, "before");

    /* A master that stops answering for longer than the timeout. */
    vc_redis *quick = client(0, 300);
    vc_redis_batch *qb = vc_redis_batch_new(quick, 0);
    vc_redis_batch_addf(qb, key[0], "GET %s", key[0]);
    exec_ok(qb);
    int port = g_master0[100];
    adm_ok(port, "CLIENT PAUSE", adm(port, "CLIENT PAUSE 1500 ALL"));
    vc_redis_batch_reset(qb);
    vc_redis_batch_addf(qb, key[0], "SET %s after", key[0]);
    vc_redis_batch_addf(qb, key[0], "GET %s", key[0]);
    exec_ok(qb);
    expect_str(qb, 1, "after");
    vc_redis_batch_destroy(qb);
    vc_redis_destroy(quick);

    vc_redis_batch_reset(b);
    for (int i = 0; i < 3; i++)
        vc_redis_batch_addf(b, key[i], "DEL %s", key[i]);
    exec_ok(b);
    vc_redis_batch_destroy(b);
    vc_redis_destroy(r);
}

Test(redis_cluster, readonly_batches_read_replicas_and_fall_back_to_masters)
{
    vc_redis *r = client(1, 300);
    vc_redis_batch *w = vc_redis_batch_new(r, 0), *rb = vc_redis_batch_new(r, 1);
    enum { N = 300 };
    static char key[N][64];
    for (int i = 0; i < N; i++) {
        slot_key(key[i], sizeof(key[i]), (unsigned)(i * 54), "ro");
        vc_redis_batch_addf(w, key[i], "SET %s %d", key[i], i);
    }
    exec_ok(w);
    long long before[NODES_MAX];
    for (int i = 0; i < g_nnodes; i++)
        before[i] = get_calls(g_node[i].port);
    for (long long t = now_ms() + 5000;; sleep_ms(100)) { /* replicas catch up */
        vc_redis_batch_reset(rb);
        for (int i = 0; i < N; i++)
            vc_redis_batch_addf(rb, key[i], "GETRANGE %s 0 -1", key[i]);
        exec_ok(rb);
        int same = 0;
        for (int i = 0; i < N; i++) {
            const redisReply *rep = vc_redis_batch_reply(rb, i);
            same += rep->type == REDIS_REPLY_STRING && atoi(rep->str) == i;
        }
        if (same == N)
            break;
        cr_assert_lt(now_ms(), t, "replicas did not catch up");
    }
    for (int i = 0; i < g_nnodes; i++) {
        int is_master = info_has(g_node[i].port, "replication", "role:master");
        long long calls = get_calls(g_node[i].port) - before[i];
        if (is_master)
            cr_expect_eq(calls, 0, "master %d served %lld reads", g_node[i].port, calls);
        else
            cr_expect_gt(calls, 0, "replica %d served no read", g_node[i].port);
    }

    /* Replicas that stop answering: the masters serve the reads. */
    int is_master[NODES_MAX];
    for (int i = 0; i < g_nnodes; i++) {
        is_master[i] = info_has(g_node[i].port, "replication", "role:master");
        before[i] = is_master[i] ? get_calls(g_node[i].port) : 0;
    }
    for (int i = 0; i < g_nnodes; i++)
        if (!is_master[i])
            adm_ok(g_node[i].port, "CLIENT PAUSE", adm(g_node[i].port, "CLIENT PAUSE 2000 ALL"));
    vc_redis_batch_reset(rb);
    for (int i = 0; i < N; i++)
        vc_redis_batch_addf(rb, key[i], "GETRANGE %s 0 -1", key[i]);
    exec_ok(rb);
    for (int i = 0; i < N; i++) {
        char want[16];
        snprintf(want, sizeof(want), "%d", i);
        expect_str(rb, i, want);
    }
    long long master_calls = 0;
    for (int i = 0; i < g_nnodes; i++)
        if (is_master[i])
            master_calls += get_calls(g_node[i].port) - before[i];
    cr_expect_geq(master_calls, N, "the reads did not fall back to the masters");
    sleep_ms(2000); /* the pause ends */

    vc_redis_batch_reset(w);
    for (int i = 0; i < N; i++)
        vc_redis_batch_addf(w, key[i], "DEL %s", key[i]);
    exec_ok(w);
    vc_redis_batch_destroy(rb);
    vc_redis_batch_destroy(w);
    vc_redis_destroy(r);
}

/* The migrating process below: plain hiredis, an exit code, no Criterion. */
static int quiet_cmd(int port, const char *fmt, ...)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(host_of(port), port, tv);
    if (!c || c->err) {
        redisFree(c);
        return -1;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    int rc = rep && rep->type != REDIS_REPLY_ERROR ? 0 : -1;
    if (rc < 0)
        fprintf(stderr, "%s on %d: %s\n", fmt, port, rep ? rep->str : c->errstr);
    freeReplyObject(rep);
    redisFree(c);
    return rc;
}

static int quiet_migrate(int slot, int from, int to, const char *from_id, const char *to_id,
                         char (*keys)[64], int nkeys)
{
    if (quiet_cmd(to, "CLUSTER SETSLOT %d IMPORTING %s", slot, from_id) < 0 ||
        quiet_cmd(from, "CLUSTER SETSLOT %d MIGRATING %s", slot, to_id) < 0)
        return -1;
    /* One key at a time, with a pause between: writers see the slot split. */
    for (int k = 0; k < nkeys; k++) {
        if (quiet_cmd(from, "MIGRATE %s %d %s 0 5000", host_of(to), to, keys[k]) < 0)
            return -1;
        sleep_ms(10);
    }
    if (quiet_cmd(to, "CLUSTER SETSLOT %d NODE %s", slot, to_id) < 0 ||
        quiet_cmd(from, "CLUSTER SETSLOT %d NODE %s", slot, to_id) < 0)
        return -1;
    for (int i = 0; i < g_nnodes; i++)
        if (g_node[i].port != from && g_node[i].port != to &&
            info_has(g_node[i].port, "replication", "role:master") &&
            quiet_cmd(g_node[i].port, "CLUSTER SETSLOT %d NODE %s", slot, to_id) < 0)
            return -1;
    sleep_ms(30);
    return 0;
}

/* Scripts over a shared list and one of four counters: were a script kept
 * back (TRYAGAIN, its counter not migrated yet) while a later one ran, the
 * list would show it. */
Test(redis_cluster, a_slot_keeps_the_order_of_its_commands_while_it_migrates)
{
    enum { NKEYS = 5 };
    const unsigned slot = 3333;
    char key[NKEYS][64]; /* the list, then the counters */
    slot_key(key[0], sizeof(key[0]), slot, "list");
    for (int i = 1; i < NKEYS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "counter%d", i);
        slot_key(key[i], sizeof(key[i]), slot, name);
    }
    int a = g_master0[slot], b = other_master(a);
    char a_id[64], b_id[64];
    node_id(a, a_id, sizeof(a_id));
    node_id(b, b_id, sizeof(b_id));
    freeReplyObject(adm(a, "RPUSH %s start", key[0]));
    for (int i = 1; i < NKEYS; i++)
        freeReplyObject(adm(a, "SET %s 0", key[i]));

    g_open_slot = (int)slot; /* for teardown, should the migrations fail */
    g_open_from = a;
    g_open_to = b;
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int rc = 0;
        for (int i = 0; i < 6 && rc == 0; i++)
            rc = i % 2 == 0 ? quiet_migrate((int)slot, a, b, a_id, b_id, key, NKEYS)
                            : quiet_migrate((int)slot, b, a, b_id, a_id, key, NKEYS);
        _exit(rc == 0 ? 0 : 1);
    }

    vc_redis *r = client(0, 2000);
    vc_redis_batch *bt = vc_redis_batch_new(r, 0);
    int n = 0, status = 0, batches = 0, resumed = 0;
    char err[512];
    const char *script = "redis.call('RPUSH', KEYS[1], ARGV[1]) return redis.call('INCR', KEYS[2])";
    while (waitpid(pid, &status, WNOHANG) == 0) {
        vc_redis_batch_reset(bt);
        for (int i = 0; i < 20; i++, n++) {
            const char *counter = key[1 + n % (NKEYS - 1)];
            vc_redis_batch_addf(bt, key[0], "EVAL %s 2 %s %s %d", script, key[0], counter, n);
        }
        int tries = 0;
        while (vc_redis_batch_exec(bt, err, sizeof(err)) < 0) { /* resume */
            cr_assert_lt(++tries, 10, "exec: %s", err);
            resumed++;
        }
        for (int i = 0; i < 20; i++) {
            const redisReply *rep = vc_redis_batch_reply(bt, i);
            cr_assert_eq(rep->type, REDIS_REPLY_INTEGER, "%s",
                         rep->type == REDIS_REPLY_ERROR ? rep->str : "not an integer");
        }
        batches++;
    }
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the migrations failed");
    g_open_slot = -1;

    redisReply *rep = adm(a, "LRANGE %s 0 -1", key[0]);
    cr_assert_eq(rep->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(rep->elements, (size_t)n + 1, "%zu elements for %d RPUSH (%d batches)",
                 rep->elements, n, batches);
    for (int i = 0; i < n; i++)
        cr_assert_eq(atoi(rep->element[i + 1]->str), i, "element %d is %s", i + 1,
                     rep->element[i + 1]->str);
    freeReplyObject(rep);
    long long sum = 0;
    for (int i = 1; i < NKEYS; i++) {
        rep = adm(a, "GET %s", key[i]);
        sum += atoll(rep->str);
        freeReplyObject(rep);
    }
    cr_assert_eq(sum, n);
    cr_log_info("%d batches, %d resumed after a failed exec", batches, resumed);
    for (int i = 0; i < NKEYS; i++)
        freeReplyObject(adm(a, "DEL %s", key[i]));
    vc_redis_batch_destroy(bt);
    vc_redis_destroy(r);
}
