/* apply.h -- one Kafka partition's authoritative state, held in process
 * memory, and the Redis write of a batch of its events.
 *
 * Pure: no I/O. The service feeds decoded events in partition order with
 * agg_part_add(): each is applied to the in-memory state at once (every
 * connection per gateway epoch and stream, every user's open connections per
 * stream, the streams' counts, peak, status and category, the gateway
 * liveness and sync assembly of schemas/vc_rules.h). The streams an event
 * changed become "dirty". agg_part_seal() turns the dirty streams into ONE
 * call of the apply script (agg_apply_script) that writes only the contract
 * keys (s:<stream>, rank, rank:c:<cat>, the meta hash's offset), guarded by
 * the offset Redis must hold; agg_part_commit() reads its reply. So Redis
 * costs per touched stream per batch, not per event.
 *
 * Recovery: the state serialises (agg_part_save) into a checkpoint and loads
 * back (agg_part_load). Events at offsets at or below what Redis already
 * holds (agg_part_set_applied) are replayed into memory only: the state
 * moves, no write is sealed until the position reaches the applied offset.
 * agg_part_mark_all() makes the next seal write every stream of the
 * partition (a restore after Redis lost the partition or fell behind). */
#ifndef AGG_APPLY_H
#define AGG_APPLY_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "vc_event.h"
#include "vc_rules.h"

/* The Lua source of the apply script (SCRIPT LOAD it on every master). */
extern const char agg_apply_script[];

/* Field of the partition's meta hash (vc:{vc.P}:meta). */
#define AGG_META_OFFSET "offset"   /* last applied Kafka offset */

#define AGG_SYNCING_HOLD_DEFAULT_MS 15000
#define AGG_TOMBSTONE_TTL_DEFAULT_MS 600000

typedef struct {
    int64_t gateway_timeout_ms;    /* vc_liveness timeout */
    size_t sync_max_viewers;       /* vc_sync_asm bounds */
    int64_t sync_max_age_ms;
    int64_t syncing_hold_ms;       /* event time a stream shows "syncing" after a drift >= 10% */
    int64_t tombstone_ttl_ms;      /* event time after which an unmatched leave is forgotten */
} agg_rules_conf;

/* What one event did. */
typedef enum {
    AGG_ADD_PACKED = 0,    /* changed the state (a join, leave, snapshot or expiry) */
    AGG_ADD_NOOP,          /* advances the offset only (heartbeat, buffered sync chunk) */
    AGG_ADD_DUPLICATE,     /* offset <= the position: ignored */
    AGG_ADD_STALE,         /* from a superseded gateway epoch: ignored */
    AGG_ADD_NOMEM,         /* allocation failed: the state is no longer trustworthy */
} agg_add_rc;

typedef struct agg_part agg_part;

/* What the events after the applied offset did (for metrics), since the
 * last commit. Events replayed into memory only (offset <= applied) are
 * counted in replayed and nowhere else. */
typedef struct {
    uint64_t events;               /* offsets advanced past the applied one */
    uint64_t replayed;             /* events replayed into memory only */
    uint64_t gone;                 /* gateway epochs gone */
    uint64_t expired_viewers;      /* connections removed with them */
    uint64_t stale;                /* events of superseded epochs */
    uint64_t repairs[3];           /* snapshots compared, by vc_drift_level */
    uint64_t held, added, removed; /* summed over the snapshots */
    uint64_t tombstones_dropped;   /* unmatched leaves forgotten after tombstone_ttl_ms */
} agg_stats;

/* An empty state (nothing applied: position and applied -1). NULL on
 * allocation failure. */
agg_part *agg_part_new(int32_t partition, const agg_rules_conf *conf);
void agg_part_destroy(agg_part *p); /* accepts NULL */

/* Serialise the whole state (versioned, little-endian; see apply.c) into a
 * malloc'ed buffer. 0, or -1 on allocation failure. */
int agg_part_save(const agg_part *p, uint8_t **out, size_t *len);
/* Rebuild a state saved by agg_part_save() (its position is the saved one,
 * applied is -1 until agg_part_set_applied). NULL + errstr when the bytes
 * are not a valid saved state. */
agg_part *agg_part_load(int32_t partition, const agg_rules_conf *conf, const uint8_t *buf, size_t len,
                        char *errstr, size_t errstr_size);

int32_t agg_part_partition(const agg_part *p);
/* The last offset Redis holds for this partition (-1: none). */
int64_t agg_part_applied(const agg_part *p);
/* The last offset applied to the memory state (-1: none). */
int64_t agg_part_position(const agg_part *p);
/* Tell the state what Redis holds. Offsets up to it are then replayed into
 * memory only; dirty streams are written once the position reaches it. */
void agg_part_set_applied(agg_part *p, int64_t applied);
/* Write every stream at the next seal (restore of the contract keys). */
void agg_part_mark_all(agg_part *p);
/* 1 when a script call has something to write: the position is at or past
 * the applied offset and an offset, a stream or a restore is pending. */
int agg_part_needs_write(const agg_part *p);
/* Events added since the last commit (any offset). */
size_t agg_part_pending(const agg_part *p);

/* Apply the event at offset. category is the stream's category id if known,
 * else 0. Gateways that the event shows to be gone lose their connections
 * first. */
agg_add_rc agg_part_add(agg_part *p, const vc_event *ev, int64_t offset, int64_t category);
/* stream_id belongs to category (learnt off the hot path). 1 when it changed
 * a known stream, 0 when not (unknown stream or category already set). */
int agg_part_add_category(agg_part *p, int64_t stream_id, int64_t category);
/* Advance over offset without an event (a dead-lettered message). */
agg_add_rc agg_part_skip(agg_part *p, int64_t offset);

/* The script call that writes the dirty streams (all of them after
 * agg_part_mark_all) and moves the meta offset from the applied offset to the
 * position: argc/argv/argvlen for EVALSHA <sha> 1 <meta key> <args...> or,
 * when sha is NULL, EVAL <agg_apply_script> 1 <meta key> <args...>; argv[3]
 * is the meta key. With nothing to write it only checks that Redis holds the
 * applied offset. Valid until the next add/seal/commit/destroy. 0, or -1 on
 * allocation failure. */
int agg_part_seal(agg_part *p, const char *sha, int *argc, const char ***argv, const size_t **argvlen);

/* Redis holds the sealed write (a retried call found its own offset). */
void agg_part_confirm(agg_part *p);

/* The script answered the sealed call. 0: committed (applied = position,
 * nothing dirty); 1: Redis holds another offset (*stored: -1 when the
 * partition has no meta); -1: an error reply or a reply not understood
 * (errstr; nothing changes, the write may be retried). */
int agg_part_commit(agg_part *p, const redisReply *reply, int64_t *stored, char *errstr, size_t errstr_size);

/* Take (and zero) the statistics gathered since the last call. */
void agg_part_take_stats(agg_part *p, agg_stats *out);

/* ---- inspection (tests, metrics) ---------------------------------------- */

typedef struct {
    int64_t viewers, peak, offset, category;
    int syncing;
} agg_stream_view;

/* 1 and *out when the stream is known to the partition, else 0. */
int agg_part_stream(const agg_part *p, int64_t stream_id, agg_stream_view *out);
size_t agg_part_streams(const agg_part *p);
size_t agg_part_connections(const agg_part *p); /* open connections (all gateway epochs) */
size_t agg_part_tombstones(const agg_part *p);
size_t agg_part_shares(const agg_part *p);      /* (gateway epoch, stream) indexes held */
size_t agg_part_gateways(const agg_part *p);    /* gateway epochs holding connections */
size_t agg_part_dirty(const agg_part *p);       /* streams to write at the next seal */
/* Heap bytes the state's structures requested (maps, records, buffers;
 * without the allocator's own overhead). */
size_t agg_part_memory(const agg_part *p);

#endif
