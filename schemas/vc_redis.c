/* vc_redis.c -- a small Redis Cluster client on hiredis (see vc_redis.h).
 *
 * exec works in rounds. A round takes the commands that have no reply yet,
 * groups them into units, picks each unit's node, appends every unit of a node
 * to that node's output buffer, flushes all the nodes, then reads the replies
 * in order. Redirections and failures leave commands without a reply for the
 * next round.
 *
 * A unit is one command, except in a writable batch where the pending
 * commands of one slot form one unit wrapped in MULTI/EXEC: a redirection of
 * any of them (checked when queued) aborts the whole group, so a slot's
 * commands run all together or not at all and keep their relative order
 * across MOVED, ASK and TRYAGAIN. */
#include "vc_redis.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VC_REDIS_SLOTS 16384
#define VC_REDIS_NODES_MAX 64
#define VC_REDIS_ATTEMPTS 16                 /* rounds per exec */
#define VC_REDIS_BATCH_BYTES_MAX (256u << 20) /* formatted commands per batch */
#define VC_REDIS_WAIT_MS_MAX 500             /* between rounds, after a failure */
#define VC_REDIS_NODE_BACKOFF_MS_MAX 2000    /* between reconnects to one node */

typedef struct {
    char host[256];
    int port;
    redisContext *c;    /* NULL: not connected; idle between rounds */
    int readonly;       /* READONLY was sent on c */
    int failures;       /* consecutive connect or I/O failures */
    int64_t retry_at;   /* no reconnect before (ms, monotonic) */
} vc_node;

struct vc_redis {
    struct timeval tv;
    int read_replicas;
    int stale;          /* reload the slot map before the next round */
    int hint;           /* ask this node first when reloading (a MOVED target) */
    char err[512];      /* the last failure, for errstr */
    int nnodes;
    vc_node node[VC_REDIS_NODES_MAX];
    int16_t master[VC_REDIS_SLOTS], replica[VC_REDIS_SLOTS]; /* node index or -1 */
    int16_t next_master[VC_REDIS_SLOTS], next_replica[VC_REDIS_SLOTS];
};

typedef struct {
    size_t off, len;    /* the formatted command in b->buf */
    unsigned slot;
    int ask;            /* node named by an ASK redirection, or -1 */
    redisReply *reply;
} vc_cmd;

typedef struct {
    int first, count;   /* b->order[first .. first + count) */
    int node;           /* -1: no node reachable this round */
    int ask, multi;
} vc_unit;

struct vc_redis_batch {
    vc_redis *r;
    int readonly;
    vc_cmd *cmd;
    int ncmd, cap;
    int *order;         /* pending commands of a round, by slot in writable batches */
    vc_unit *unit;
    char *buf;
    size_t len, bufcap;
};

enum { VC_REPLY_DONE, VC_REPLY_MOVED, VC_REPLY_ASK, VC_REPLY_RETRY };

static const char VC_ASKING[] = "*1\r\n$6\r\nASKING\r\n";
static const char VC_MULTI[] = "*1\r\n$5\r\nMULTI\r\n";
static const char VC_EXEC[] = "*1\r\n$4\r\nEXEC\r\n";

static uint16_t crc16(const char *p, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)p[i] << 8);
        for (int k = 0; k < 8; k++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned vc_redis_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t start = (size_t)(open - key) + 1;
        const char *close = memchr(key + start, '}', len - start);
        if (close && close > key + start)
            return crc16(key + start, (size_t)(close - key) - start) & (VC_REDIS_SLOTS - 1);
    }
    return crc16(key, len) & (VC_REDIS_SLOTS - 1);
}

static int64_t now_ms(void)
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

/* hiredis writes with write(2): to a peer that has gone, it raises SIGPIPE,
 * which kills a process that does not ignore it. Public entry points hold it
 * back on the calling thread and drop the ones they caused. */
static void sigpipe_hold(sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

static void sigpipe_release(const sigset_t *old)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    struct timespec zero = {0, 0};
    if (!sigismember(old, SIGPIPE) && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE))
        sigtimedwait(&set, NULL, &zero);
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

static void node_close(vc_node *n)
{
    if (n->c)
        redisFree(n->c);
    n->c = NULL;
    n->readonly = 0;
}

/* Leave node n alone for a backoff (a replica's master serves meanwhile). */
static void node_avoid(vc_redis *r, vc_node *n, const char *why)
{
    snprintf(r->err, sizeof(r->err), "%.255s:%d: %.200s", n->host, n->port, why);
    if (n->failures < 16)
        n->failures++;
    int64_t wait = 50LL << (n->failures - 1);
    n->retry_at = now_ms() + (wait < VC_REDIS_NODE_BACKOFF_MS_MAX ? wait : VC_REDIS_NODE_BACKOFF_MS_MAX);
    r->stale = 1;
}

/* A connect or I/O failure: drop the connection, reconnect after a backoff. */
static void node_failed(vc_redis *r, vc_node *n, const char *why)
{
    node_avoid(r, n, why); /* why may be n->c->errstr */
    node_close(n);
}

/* The index of node host:port, added if new. When the table is full, the
 * entry of a node that is neither connected nor in the slot maps is reused
 * (a command sent to a wrong node only earns a redirection). -1 if none. */
static int node_get(vc_redis *r, const char *host, size_t hostlen, int port)
{
    if (hostlen == 0 || hostlen >= sizeof(r->node[0].host) || port <= 0 || port > 65535)
        return -1;
    for (int i = 0; i < r->nnodes; i++)
        if (r->node[i].port == port && strlen(r->node[i].host) == hostlen &&
            memcmp(r->node[i].host, host, hostlen) == 0)
            return i;
    int i = r->nnodes;
    if (i == VC_REDIS_NODES_MAX) {
        for (i = 0; i < VC_REDIS_NODES_MAX; i++) {
            int used = r->node[i].c != NULL || i == r->hint;
            for (int s = 0; s < VC_REDIS_SLOTS && !used; s++)
                used = r->master[s] == i || r->replica[s] == i || r->next_master[s] == i ||
                       r->next_replica[s] == i;
            if (!used)
                break;
        }
        if (i == VC_REDIS_NODES_MAX)
            return -1;
    } else {
        r->nnodes++;
    }
    vc_node *n = &r->node[i];
    memset(n, 0, sizeof(*n));
    memcpy(n->host, host, hostlen);
    n->port = port;
    return i;
}

/* The open connection to node i (connecting if needed), or NULL when the
 * node is backing off or cannot be reached. readonly: the connection must
 * have sent READONLY. */
static redisContext *node_conn(vc_redis *r, int i, int readonly)
{
    vc_node *n = &r->node[i];
    if (now_ms() < n->retry_at)
        return NULL;
    if (!n->c) {
        n->c = redisConnectWithTimeout(n->host, n->port, r->tv);
        if (!n->c || n->c->err) {
            node_failed(r, n, n->c ? n->c->errstr : "out of memory");
            return NULL;
        }
        if (redisSetTimeout(n->c, r->tv) != REDIS_OK) {
            node_failed(r, n, n->c->errstr);
            return NULL;
        }
    }
    if (readonly && !n->readonly) {
        redisReply *rep = redisCommand(n->c, "READONLY");
        int ok = rep && rep->type == REDIS_REPLY_STATUS;
        freeReplyObject(rep);
        if (!ok) {
            node_failed(r, n, rep ? "READONLY refused" : n->c->errstr);
            return NULL;
        }
        n->readonly = 1;
    }
    return n->c;
}

/* The node of a CLUSTER SLOTS address [host, port, ...]; an empty host
 * means the host of the node that answered. */
static int slots_node(vc_redis *r, int from, const redisReply *a)
{
    if (a->type != REDIS_REPLY_ARRAY || a->elements < 2 ||
        a->element[0]->type != REDIS_REPLY_STRING || a->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    const char *host = a->element[0]->str;
    size_t hostlen = a->element[0]->len;
    if (hostlen == 0) {
        host = r->node[from].host;
        hostlen = strlen(host);
    }
    if (hostlen == 1 && host[0] == '?')
        return -1;
    return node_get(r, host, hostlen, (int)a->element[1]->integer);
}

/* Replace the slot map by a CLUSTER SLOTS reply of node from. */
static int slots_load(vc_redis *r, int from, const redisReply *rep)
{
    vc_node *n = &r->node[from];
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(r->err, sizeof(r->err), "%.255s:%d: CLUSTER SLOTS: %.200s", n->host, n->port, rep->str);
        return -1;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0) {
        snprintf(r->err, sizeof(r->err), "%s:%d: CLUSTER SLOTS: no slots", n->host, n->port);
        return -1;
    }
    memset(r->next_master, 0xff, sizeof(r->next_master));
    memset(r->next_replica, 0xff, sizeof(r->next_replica));
    for (size_t k = 0; k < rep->elements; k++) {
        const redisReply *e = rep->element[k];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER || e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[0]->integer < 0 || e->element[1]->integer >= VC_REDIS_SLOTS ||
            e->element[0]->integer > e->element[1]->integer) {
            snprintf(r->err, sizeof(r->err), "%s:%d: CLUSTER SLOTS: bad reply", n->host, n->port);
            return -1;
        }
        int m = slots_node(r, from, e->element[2]);
        int rp = e->elements > 3 ? slots_node(r, from, e->element[3]) : -1;
        for (long long s = e->element[0]->integer; s <= e->element[1]->integer; s++) {
            r->next_master[s] = (int16_t)m;
            r->next_replica[s] = (int16_t)rp;
        }
    }
    memcpy(r->master, r->next_master, sizeof(r->master));
    memcpy(r->replica, r->next_replica, sizeof(r->replica));
    int used[VC_REDIS_NODES_MAX] = {0};
    for (int s = 0; s < VC_REDIS_SLOTS; s++) {
        if (r->master[s] >= 0)
            used[r->master[s]] = 1;
        if (r->replica[s] >= 0)
            used[r->replica[s]] = 1;
    }
    for (int i = 0; i < r->nnodes; i++)
        if (!used[i])
            node_close(&r->node[i]);
    return 0;
}

static int slots_refresh(vc_redis *r, char *errstr, size_t errstr_size)
{
    for (int k = -1; k < r->nnodes; k++) {
        int i = k < 0 ? r->hint : k;
        if (i < 0 || (k >= 0 && i == r->hint) || !node_conn(r, i, 0))
            continue;
        redisReply *rep = redisCommand(r->node[i].c, "CLUSTER SLOTS");
        if (!rep) {
            node_failed(r, &r->node[i], r->node[i].c->errstr);
            continue;
        }
        int rc = slots_load(r, i, rep);
        freeReplyObject(rep);
        if (rc == 0) {
            r->stale = 0;
            r->hint = -1;
            return 0;
        }
    }
    if (errstr_size)
        snprintf(errstr, errstr_size, "no node gave the slot map: %s", r->err);
    return -1;
}

int vc_redis_refresh(vc_redis *r, char *errstr, size_t errstr_size)
{
    sigset_t old;
    sigpipe_hold(&old);
    int rc = slots_refresh(r, errstr, errstr_size);
    sigpipe_release(&old);
    return rc;
}

vc_redis *vc_redis_new(const vc_redis_conf *conf, char *errstr, size_t errstr_size)
{
    vc_redis *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    int ms = conf->timeout_ms > 0 ? conf->timeout_ms : 1000;
    r->tv.tv_sec = ms / 1000;
    r->tv.tv_usec = (ms % 1000) * 1000;
    r->read_replicas = conf->read_replicas;
    r->hint = -1;
    memset(r->master, 0xff, sizeof(r->master));
    memset(r->replica, 0xff, sizeof(r->replica));
    memset(r->next_master, 0xff, sizeof(r->next_master));
    memset(r->next_replica, 0xff, sizeof(r->next_replica));
    for (const char *p = conf->nodes ? conf->nodes : ""; *p;) {
        p += strspn(p, " ,");
        size_t len = strcspn(p, " ,");
        if (len == 0)
            break;
        const char *colon = memrchr(p, ':', len);
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || end != p + len || node_get(r, p, (size_t)(colon - p), (int)port) < 0) {
            snprintf(errstr, errstr_size, "bad seed node \"%.*s\" (want host:port)", (int)len, p);
            vc_redis_destroy(r);
            return NULL;
        }
        p += len;
    }
    if (r->nnodes == 0) {
        snprintf(errstr, errstr_size, "no seed nodes");
        vc_redis_destroy(r);
        return NULL;
    }
    if (vc_redis_refresh(r, errstr, errstr_size) < 0) {
        vc_redis_destroy(r);
        return NULL;
    }
    return r;
}

void vc_redis_destroy(vc_redis *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->nnodes; i++)
        node_close(&r->node[i]);
    free(r);
}

vc_redis_batch *vc_redis_batch_new(vc_redis *r, int readonly)
{
    vc_redis_batch *b = calloc(1, sizeof(*b));
    if (b) {
        b->r = r;
        b->readonly = readonly;
    }
    return b;
}

void vc_redis_batch_reset(vc_redis_batch *b)
{
    for (int i = 0; i < b->ncmd; i++)
        freeReplyObject(b->cmd[i].reply);
    b->ncmd = 0;
    b->len = 0;
}

void vc_redis_batch_destroy(vc_redis_batch *b)
{
    if (!b)
        return;
    vc_redis_batch_reset(b);
    free(b->cmd);
    free(b->order);
    free(b->unit);
    free(b->buf);
    free(b);
}

/* Room for one more command of len bytes; -1 over the bounds. */
static int batch_reserve(vc_redis_batch *b, size_t len)
{
    if (b->ncmd >= VC_REDIS_BATCH_MAX || len > VC_REDIS_BATCH_BYTES_MAX - b->len)
        return -1;
    if (b->ncmd == b->cap) {
        int cap = b->cap ? b->cap * 2 : 64;
        vc_cmd *cmd = realloc(b->cmd, (size_t)cap * sizeof(*cmd));
        if (cmd)
            b->cmd = cmd;
        int *order = realloc(b->order, (size_t)cap * sizeof(*order));
        if (order)
            b->order = order;
        vc_unit *unit = realloc(b->unit, (size_t)cap * sizeof(*unit));
        if (unit)
            b->unit = unit;
        if (!cmd || !order || !unit)
            return -1;
        b->cap = cap;
    }
    if (b->len + len > b->bufcap) {
        size_t cap = b->bufcap ? b->bufcap : 4096;
        while (cap < b->len + len)
            cap *= 2;
        char *buf = realloc(b->buf, cap);
        if (!buf)
            return -1;
        b->buf = buf;
        b->bufcap = cap;
    }
    return 0;
}

static int batch_push(vc_redis_batch *b, const char *key, size_t len)
{
    vc_cmd *c = &b->cmd[b->ncmd];
    c->off = b->len;
    c->len = len;
    c->slot = vc_redis_key_slot(key, strlen(key));
    c->ask = -1;
    c->reply = NULL;
    b->len += len;
    return b->ncmd++;
}

int vc_redis_batch_add(vc_redis_batch *b, const char *key, int argc, const char **argv,
                       const size_t *argvlen)
{
    if (!key || argc < 1)
        return -1;
    size_t len = 32;
    for (int i = 0; i < argc; i++)
        len += 32 + (argvlen ? argvlen[i] : strlen(argv[i]));
    if (batch_reserve(b, len) < 0)
        return -1;
    char *p = b->buf + b->len;
    p += snprintf(p, 32, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        size_t n = argvlen ? argvlen[i] : strlen(argv[i]);
        p += snprintf(p, 32, "$%zu\r\n", n);
        memcpy(p, argv[i], n);
        memcpy(p + n, "\r\n", 2);
        p += n + 2;
    }
    return batch_push(b, key, (size_t)(p - (b->buf + b->len)));
}

int vc_redis_batch_addf(vc_redis_batch *b, const char *key, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    int i = -1;
    if (key && len > 0 && batch_reserve(b, (size_t)len) == 0) {
        memcpy(b->buf + b->len, cmd, (size_t)len);
        i = batch_push(b, key, (size_t)len);
    }
    if (len > 0)
        redisFreeCommand(cmd);
    return i;
}

/* Acts on a redirection or a transient cluster error. MOVED updates the slot
 * and reloads the map before the next round; ASK sets *ask for one retry. */
static int reply_kind(vc_redis *r, int from, const redisReply *rep, int *ask)
{
    if (rep->type != REDIS_REPLY_ERROR)
        return VC_REPLY_DONE;
    int moved = strncmp(rep->str, "MOVED ", 6) == 0;
    if (moved || strncmp(rep->str, "ASK ", 4) == 0) {
        char *end;
        unsigned long slot = strtoul(rep->str + (moved ? 6 : 4), &end, 10);
        if (*end != ' ' || slot >= VC_REDIS_SLOTS)
            return VC_REPLY_DONE;
        const char *addr = end + 1, *colon = strrchr(addr, ':');
        if (!colon)
            return VC_REPLY_DONE;
        int port = (int)strtol(colon + 1, NULL, 10);
        int n = colon == addr ? node_get(r, r->node[from].host, strlen(r->node[from].host), port)
                              : node_get(r, addr, (size_t)(colon - addr), port);
        if (n < 0) {
            r->stale = 1;
            return VC_REPLY_RETRY;
        }
        if (!moved) {
            *ask = n;
            return VC_REPLY_ASK;
        }
        r->master[slot] = (int16_t)n;
        r->stale = 1;
        r->hint = n;
        return VC_REPLY_MOVED;
    }
    /* TRYAGAIN: a slot group split by a migration in progress; READONLY: a
     * script sent to a replica on a READONLY connection. */
    if (strncmp(rep->str, "CLUSTERDOWN", 11) == 0 || strncmp(rep->str, "TRYAGAIN", 8) == 0 ||
        strncmp(rep->str, "READONLY", 8) == 0) {
        r->stale = 1;
        return VC_REPLY_RETRY;
    }
    /* A node loading its data, or a replica cut from its master. */
    if (strncmp(rep->str, "LOADING", 7) == 0 || strncmp(rep->str, "MASTERDOWN", 10) == 0) {
        node_avoid(r, &r->node[from], rep->str);
        return VC_REPLY_RETRY;
    }
    return VC_REPLY_DONE;
}

/* Reads the replies of unit u from node j. -1: the connection failed or
 * answered out of protocol; commands left without a reply are retried. */
static int unit_read(vc_redis_batch *b, const vc_unit *u, int j, int *wait)
{
    vc_redis *r = b->r;
    redisContext *c = r->node[j].c;
    redisReply *rep = NULL;
    int ask = -1, kind = VC_REPLY_DONE, ok;
    for (int k = 0; k < u->count; k++)
        b->cmd[b->order[u->first + k]].ask = -1;
    if (u->ask >= 0) {
        if (redisGetReply(c, (void **)&rep) != REDIS_OK)
            return -1;
        ok = rep->type == REDIS_REPLY_STATUS;
        freeReplyObject(rep);
        if (!ok)
            return -1;
    }
    if (!u->multi) {
        vc_cmd *cmd = &b->cmd[b->order[u->first]];
        if (redisGetReply(c, (void **)&rep) != REDIS_OK)
            return -1;
        kind = reply_kind(r, j, rep, &ask);
        if (kind == VC_REPLY_DONE) {
            cmd->reply = rep;
            return 0;
        }
        freeReplyObject(rep);
        cmd->ask = ask;
        *wait |= kind == VC_REPLY_RETRY;
        return 0;
    }
    /* MULTI, one +QUEUED or error per command, then EXEC. Queue-time errors
     * wait in cmd->reply until EXEC says whether the group ran. */
    if (redisGetReply(c, (void **)&rep) != REDIS_OK)
        return -1;
    ok = rep->type == REDIS_REPLY_STATUS;
    freeReplyObject(rep);
    int rc = ok ? 0 : -1;
    for (int k = 0; k < u->count && rc == 0; k++) {
        vc_cmd *cmd = &b->cmd[b->order[u->first + k]];
        if (redisGetReply(c, (void **)&rep) != REDIS_OK) {
            rc = -1;
        } else if (rep->type == REDIS_REPLY_ERROR) {
            cmd->reply = rep;
        } else {
            freeReplyObject(rep);
        }
    }
    redisReply *exec = NULL;
    int ran = 0;
    if (rc == 0 && redisGetReply(c, (void **)&exec) != REDIS_OK)
        rc = -1;
    if (rc == 0 && exec->type == REDIS_REPLY_ARRAY && exec->elements == (size_t)u->count) {
        for (int k = 0; k < u->count; k++) {
            vc_cmd *cmd = &b->cmd[b->order[u->first + k]];
            freeReplyObject(cmd->reply);
            cmd->reply = exec->element[k];
            exec->element[k] = NULL;
        }
        ran = 1;
    } else if (rc == 0 && exec->type == REDIS_REPLY_ERROR && strncmp(exec->str, "EXECABORT", 9) != 0) {
        kind = reply_kind(r, j, exec, &ask); /* the group was redirected as a whole */
        if (kind == VC_REPLY_DONE)
            rc = -1;
    } else if (rc == 0 && exec->type != REDIS_REPLY_ERROR) {
        rc = -1;
    }
    freeReplyObject(exec);
    /* Not run (EXECABORT): a redirected command makes the group retry; any
     * other queue-time error is that command's reply, the others retry. */
    for (int k = 0; k < u->count && !ran; k++) {
        vc_cmd *cmd = &b->cmd[b->order[u->first + k]];
        if (!cmd->reply)
            continue;
        int kk = rc == 0 && kind == VC_REPLY_DONE ? reply_kind(r, j, cmd->reply, &ask) : VC_REPLY_RETRY;
        if (kk != VC_REPLY_DONE) {
            freeReplyObject(cmd->reply);
            cmd->reply = NULL;
            if (kind == VC_REPLY_DONE)
                kind = kk;
        }
    }
    if (rc == 0 && kind == VC_REPLY_ASK)
        for (int k = 0; k < u->count; k++)
            if (!b->cmd[b->order[u->first + k]].reply)
                b->cmd[b->order[u->first + k]].ask = ask;
    *wait |= kind == VC_REPLY_RETRY;
    return rc;
}

static int cmp_slot(const void *x, const void *y, void *arg)
{
    const vc_cmd *cmd = arg;
    int i = *(const int *)x, j = *(const int *)y;
    if (cmd[i].slot != cmd[j].slot)
        return cmd[i].slot < cmd[j].slot ? -1 : 1;
    return (i > j) - (i < j);
}

static int unit_node(vc_redis_batch *b, const vc_unit *u)
{
    vc_redis *r = b->r;
    unsigned slot = b->cmd[b->order[u->first]].slot;
    /* A readonly batch sends READONLY on every connection it uses (harmless
     * on a master) so that it is never sent behind appended commands. */
    int ro = b->readonly && r->read_replicas;
    if (u->ask >= 0)
        return node_conn(r, u->ask, ro) ? u->ask : -1;
    int rp = r->replica[slot], m = r->master[slot];
    if (ro && rp >= 0 && node_conn(r, rp, 1))
        return rp;
    if (m >= 0 && node_conn(r, m, ro))
        return m;
    if (m < 0)
        snprintf(r->err, sizeof(r->err), "slot %u has no master", slot);
    r->stale = 1;
    return -1;
}

static int unit_send(const vc_redis_batch *b, const vc_unit *u, redisContext *c)
{
    int rc = REDIS_OK;
    if (u->ask >= 0)
        rc |= redisAppendFormattedCommand(c, VC_ASKING, sizeof(VC_ASKING) - 1);
    if (u->multi)
        rc |= redisAppendFormattedCommand(c, VC_MULTI, sizeof(VC_MULTI) - 1);
    for (int i = 0; i < u->count; i++) {
        const vc_cmd *cmd = &b->cmd[b->order[u->first + i]];
        rc |= redisAppendFormattedCommand(c, b->buf + cmd->off, cmd->len);
    }
    if (u->multi)
        rc |= redisAppendFormattedCommand(c, VC_EXEC, sizeof(VC_EXEC) - 1);
    return rc;
}

/* One round: send what has no reply yet, read the answers. Returns how many
 * commands still have no reply; *wait asks for a pause before the next. */
static int batch_round(vc_redis_batch *b, int *wait)
{
    vc_redis *r = b->r;
    int npending = 0, nunit = 0;
    for (int i = 0; i < b->ncmd; i++)
        if (!b->cmd[i].reply)
            b->order[npending++] = i;
    if (npending == 0)
        return 0;
    if (!b->readonly)
        qsort_r(b->order, (size_t)npending, sizeof(int), cmp_slot, b->cmd);
    for (int k = 0; k < npending; k++) {
        const vc_cmd *cmd = &b->cmd[b->order[k]];
        vc_unit *last = nunit ? &b->unit[nunit - 1] : NULL;
        if (!b->readonly && last && b->cmd[b->order[last->first]].slot == cmd->slot &&
            last->ask == cmd->ask) {
            last->count++;
            continue;
        }
        b->unit[nunit++] = (vc_unit){.first = k, .count = 1, .ask = cmd->ask};
    }
    int used[VC_REDIS_NODES_MAX] = {0};
    for (int k = 0; k < nunit; k++) {
        vc_unit *u = &b->unit[k];
        u->multi = !b->readonly && u->count > 1;
        u->node = unit_node(b, u);
        if (u->node < 0) {
            *wait = 1;
            continue;
        }
        used[u->node] = 1;
        if (unit_send(b, u, r->node[u->node].c) != REDIS_OK) {
            node_failed(r, &r->node[u->node], "out of memory");
            used[u->node] = 0;
            *wait = 1;
        }
    }
    for (int j = 0; j < r->nnodes; j++) {
        int done = 0;
        while (used[j] && !done) {
            if (redisBufferWrite(r->node[j].c, &done) != REDIS_OK) {
                node_failed(r, &r->node[j], r->node[j].c->errstr);
                used[j] = 0;
                *wait = 1;
            }
        }
    }
    for (int j = 0; j < r->nnodes; j++) {
        for (int k = 0; k < nunit && used[j]; k++) {
            if (b->unit[k].node == j && unit_read(b, &b->unit[k], j, wait) < 0) {
                node_failed(r, &r->node[j], r->node[j].c->err ? r->node[j].c->errstr
                                                                : "unexpected reply");
                used[j] = 0;
                *wait = 1;
            }
        }
        if (used[j])
            r->node[j].failures = 0;
    }
    int left = 0;
    for (int k = 0; k < npending; k++)
        left += b->cmd[b->order[k]].reply == NULL;
    return left;
}

int vc_redis_batch_exec(vc_redis_batch *b, char *errstr, size_t errstr_size)
{
    vc_redis *r = b->r;
    int left = 0;
    sigset_t old;
    sigpipe_hold(&old);
    r->err[0] = '\0';
    for (int attempt = 0; attempt < VC_REDIS_ATTEMPTS; attempt++) {
        int wait = 0;
        if (r->stale)
            slots_refresh(r, NULL, 0);
        left = batch_round(b, &wait);
        if (left == 0)
            break;
        if (wait && attempt + 1 < VC_REDIS_ATTEMPTS) {
            int ms = 10 << (attempt < 6 ? attempt : 6);
            sleep_ms(ms < VC_REDIS_WAIT_MS_MAX ? ms : VC_REDIS_WAIT_MS_MAX);
        }
    }
    sigpipe_release(&old);
    if (left == 0)
        return 0;
    snprintf(errstr, errstr_size, "%d of %d commands without a reply after %d attempts%s%s", left,
             b->ncmd, VC_REDIS_ATTEMPTS, r->err[0] ? ": " : "", r->err);
    return -1;
}

const redisReply *vc_redis_batch_reply(const vc_redis_batch *b, int i)
{
    return i >= 0 && i < b->ncmd ? b->cmd[i].reply : NULL;
}

int vc_redis_batch_count(const vc_redis_batch *b)
{
    return b->ncmd;
}
