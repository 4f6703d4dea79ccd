/* vc_redis.h -- a small Redis Cluster client on hiredis, shared by the gateway
 * (reads counts and rankings, replicas allowed) and the aggregator (applies
 * batches). hiredis has no cluster support: this routes by CRC16 hash slot from
 * CLUSTER SLOTS, follows MOVED and ASK, refreshes the slot map after a failover
 * and reconnects with backoff.
 *
 * It is synchronous and pipelined: a batch sends every command to its node in
 * one write per node, then reads the replies. Callers never do one round trip
 * per event. Not thread-safe: one vc_redis per thread. Calls hold SIGPIPE back
 * on the calling thread while they write (a closed connection is an error,
 * not a signal), so the process need not ignore it. */
#ifndef VC_REDIS_H
#define VC_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>

typedef struct vc_redis vc_redis;
typedef struct vc_redis_batch vc_redis_batch;

typedef struct {
    const char *nodes;      /* seed nodes, "host:port,host:port" */
    int read_replicas;      /* 1: batches marked read-only may go to replicas */
    int timeout_ms;         /* connect and command timeout */
} vc_redis_conf;

/* CRC16 (XMODEM) hash slot of key, honouring {hash tags}, 0..16383. */
unsigned vc_redis_key_slot(const char *key, size_t len);

/* Connect to the first seed that answers and load the slot map. Returns NULL
 * and fills errstr when no seed answers or none is a cluster node. */
vc_redis *vc_redis_new(const vc_redis_conf *conf, char *errstr, size_t errstr_size);
void vc_redis_destroy(vc_redis *r); /* accepts NULL */

/* Reload the slot map from any reachable node. 0 or -1 (errstr). */
int vc_redis_refresh(vc_redis *r, char *errstr, size_t errstr_size);

/* A batch of commands. readonly != 0 lets the batch read from replicas when
 * the client was created with read_replicas. */
vc_redis_batch *vc_redis_batch_new(vc_redis *r, int readonly);
void vc_redis_batch_destroy(vc_redis_batch *b); /* accepts NULL */
/* Forget the commands and replies, keep the buffers. */
void vc_redis_batch_reset(vc_redis_batch *b);

/* Append a command routed by the slot of key (which should be one of its
 * arguments). Arguments are copied. Returns the command's index, or -1 when
 * the batch is over its bound (VC_REDIS_BATCH_MAX commands, or 256 MiB of
 * formatted commands), key is NULL or argc < 1. */
#define VC_REDIS_BATCH_MAX 65536
int vc_redis_batch_add(vc_redis_batch *b, const char *key, int argc, const char **argv,
                       const size_t *argvlen);
/* printf-style, like redisCommand(); key routes it as above. */
int vc_redis_batch_addf(vc_redis_batch *b, const char *key, const char *fmt, ...);

/* Send every command, pipelined per node; follow MOVED (refresh the map and
 * resend) and ASK; retry a command a bounded number of times. Returns 0 when
 * every command has a reply (a reply may itself be a Redis error such as a
 * script error: check its type), -1 when a node could not be reached after
 * the retries (errstr says which). Commands are not reordered within a slot.
 *
 * In a writable batch the commands of one slot are sent as one MULTI/EXEC
 * group: they run together, in order, or not at all (a redirection aborts the
 * group, which is resent whole). So a group mixing keys on both sides of a
 * slot migration waits (TRYAGAIN) until the migration ends, and timeout_ms
 * must cover the run of the largest group. Readonly batches send plain
 * commands. exec sends only the commands that have no reply yet: after -1,
 * calling it again resumes in order. A connection lost after sending leaves
 * it unknown whether the commands ran: they are resent (at least once). */
int vc_redis_batch_exec(vc_redis_batch *b, char *errstr, size_t errstr_size);

/* The reply of command i after a successful exec (NULL for a command that
 * has none yet); owned by the batch, valid until the next reset, exec or
 * destroy. */
const redisReply *vc_redis_batch_reply(const vc_redis_batch *b, int i);
int vc_redis_batch_count(const vc_redis_batch *b);

#endif
