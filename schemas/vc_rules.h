/* vc_rules.h -- the event-time rules that the aggregator and the sink apply
 * identically: gateway liveness, sync snapshot assembly and drift tiers.
 *
 * Everything here is pure: decisions depend only on the events fed in, in
 * partition order, so a replay of the same partition decides the same. No
 * wall clock is read. Each object is per Kafka partition; none is thread-safe.
 *
 * Gateway liveness (one vc_liveness per partition)
 *   - The partition's clock is the largest ts_ms seen so far in it.
 *   - Any event of (gateway_id, gateway_epoch) is a sign of life.
 *   - A gateway whose last sign of life is more than timeout_ms behind the
 *     clock (clock - last_seen > timeout_ms) is expired: all its viewers in
 *     that partition leave in one step (reason "gateway lost").
 *   - A gateway_id seen with a newer epoch has restarted: the older epoch is
 *     gone at once (reason "gateway restarted"), and later events of an older
 *     epoch are stale (the caller ignores them).
 *   - An expired (timed out) epoch that shows a sign of life again is alive
 *     again from that event on, with the same id; its viewers were removed
 *     when it expired and count again only when they join again.
 *   Order inside vc_liveness_observe(): advance the clock, expire, then record
 *   the event's sign of life. So an event whose own ts pushes the clock over
 *   its gateway's bound expires that gateway first and then revives it.
 *
 * Sync snapshot assembly (one vc_sync_asm per partition)
 *   A snapshot (gateway_id, gateway_epoch, stream_id, snapshot_id) arrives as
 *   chunks 0..chunks-1 in order in the stream's partition. Chunk 0 starts an
 *   assembly (replacing an unfinished one of the same gateway, epoch and
 *   stream); each next chunk must be the expected one of the same snapshot,
 *   else the unfinished assembly is dropped. The last chunk yields the whole
 *   viewer set. Memory is bounded: at most max_viewers viewers are buffered
 *   in total (a chunk that would exceed it drops its assembly), and an
 *   assembly whose first chunk is older than max_age_ms in event time is
 *   dropped.
 *
 * Drift tiers: see vc_drift_tier(). */
#ifndef VC_RULES_H
#define VC_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "vc_event.h"

#define VC_LIVENESS_TIMEOUT_DEFAULT_MS 90000
#define VC_LIVENESS_MAX 4096 /* gateway epochs tracked per partition */

/* ---- gateway liveness -------------------------------------------------- */

typedef struct vc_liveness vc_liveness;

typedef enum {
    VC_GONE_LOST = 0,      /* silent for more than timeout_ms: "gateway lost" */
    VC_GONE_RESTARTED = 1, /* a newer epoch of the same gateway_id appeared */
} vc_gone_reason;

/* A gateway epoch whose viewers leave now. */
typedef struct {
    char gateway_id[VC_GATEWAY_ID_MAX + 1];
    int64_t epoch;
    uint32_t id;           /* the epoch's id in this partition (see below) */
    vc_gone_reason reason;
} vc_gateway_gone;

/* What vc_liveness_observe() says about the observed event itself. */
typedef struct {
    int stale;             /* 1: ignore the event: its epoch was superseded by a newer
                            * one, or it is a new gateway and VC_LIVENESS_MAX epochs
                            * are tracked already */
    uint32_t id;           /* id of the event's (gateway_id, epoch) in this partition,
                            * 1.., assigned in order of first sight and never reused
                            * by another epoch; 0 when stale */
} vc_liveness_verdict;

const char *vc_gone_reason_name(vc_gone_reason reason);

/* timeout_ms > 0. Returns NULL on allocation failure. */
vc_liveness *vc_liveness_new(int64_t timeout_ms);
void vc_liveness_destroy(vc_liveness *lv); /* accepts NULL */

/* Feed the partition's next event (any type). Writes the gateway epochs that
 * are gone because of it into gone[] (at most VC_LIVENESS_MAX entries, so a
 * caller array of VC_LIVENESS_MAX always suffices) and returns how many (>= 0).
 * The caller removes the viewers of every gone epoch before it applies the
 * event itself. */
int vc_liveness_observe(vc_liveness *lv, const vc_event *ev, vc_liveness_verdict *verdict,
                        vc_gateway_gone *gone);

/* The partition's event-time clock (max ts_ms seen; INT64_MIN before any). */
int64_t vc_liveness_clock(const vc_liveness *lv);
/* Number of epochs currently alive (not expired, not superseded). */
size_t vc_liveness_alive(const vc_liveness *lv);

/* Serialise the whole state (for checkpoints). Returns the number of bytes the
 * state needs; writes it into buf only when it fits in size (call with size 0
 * to ask). The format is versioned and portable (little-endian). */
size_t vc_liveness_save(const vc_liveness *lv, uint8_t *buf, size_t size);
/* Rebuild a state saved by vc_liveness_save(). Returns NULL and fills errstr
 * when the bytes are not a valid saved state. len 0 gives a fresh state with
 * timeout_ms. The timeout in the bytes is replaced by timeout_ms. */
vc_liveness *vc_liveness_load(const uint8_t *buf, size_t len, int64_t timeout_ms,
                              char *errstr, size_t errstr_size);

/* ---- sync snapshot assembly ------------------------------------------- */

typedef struct vc_sync_asm vc_sync_asm;

/* A complete snapshot: what (gateway_id, epoch) holds on stream_id. */
typedef struct {
    char gateway_id[VC_GATEWAY_ID_MAX + 1];
    int64_t epoch;
    int64_t stream_id;
    int64_t snapshot_id;
    int64_t ts_ms;              /* ts_ms of the last chunk */
    size_t nviewers;
    vc_sync_viewer *viewers;    /* owned by the snapshot: vc_sync_snapshot_free() */
} vc_sync_snapshot;

void vc_sync_snapshot_free(vc_sync_snapshot *snap); /* frees viewers; accepts NULL */

/* max_viewers > 0 bounds the viewers buffered over all unfinished snapshots;
 * max_age_ms > 0 bounds an unfinished snapshot's age in event time. */
vc_sync_asm *vc_sync_asm_new(size_t max_viewers, int64_t max_age_ms);
void vc_sync_asm_destroy(vc_sync_asm *sa); /* accepts NULL */

/* Feed one SYNC event of the partition (other types: returns 0, nothing
 * happens). Returns 1 when the event completes a snapshot: *out is filled and
 * the caller owns it; 0 when the chunk was buffered or dropped; -1 on
 * allocation failure (state unchanged). */
int vc_sync_asm_add(vc_sync_asm *sa, const vc_event *ev, vc_sync_snapshot *out);

/* Forget unfinished snapshots of one gateway epoch (it is gone). */
void vc_sync_asm_forget_gateway(vc_sync_asm *sa, const char *gateway_id, int64_t epoch);

size_t vc_sync_asm_pending(const vc_sync_asm *sa);   /* unfinished snapshots */
uint64_t vc_sync_asm_dropped(const vc_sync_asm *sa); /* chunks dropped so far (not saved) */

/* Serialise / rebuild, as vc_liveness_save() / _load(). */
size_t vc_sync_asm_save(const vc_sync_asm *sa, uint8_t *buf, size_t size);
vc_sync_asm *vc_sync_asm_load(const uint8_t *buf, size_t len, size_t max_viewers,
                              int64_t max_age_ms, char *errstr, size_t errstr_size);

/* ---- drift tiers ------------------------------------------------------- */

typedef enum {
    VC_DRIFT_QUIET = 0,    /* drift < 10%: repair quietly */
    VC_DRIFT_SYNCING = 1,  /* 10% <= drift <= 30%: mark the stream "syncing" while repaired */
    VC_DRIFT_REBUILD = 2,  /* drift > 30%: rebuild */
} vc_drift_level;

/* The tier of one comparison between what the counts hold and a snapshot.
 *   held    connections the counts hold for (gateway epoch, stream)
 *   added   connections in the snapshot that the counts do not hold
 *   removed connections the counts hold that the snapshot does not list (ghosts)
 * The snapshot's size is held - removed + added. The drift is
 * (added + removed) / max(held, snapshot size, 1), computed in integers:
 *   QUIET   when 100 * (added + removed) <  10 * denominator
 *   SYNCING when 100 * (added + removed) <= 30 * denominator
 *   REBUILD otherwise.
 * No drift is always QUIET. Summing held/added/removed over many comparisons
 * (a partition) and asking again gives the tier across them. */
vc_drift_level vc_drift_tier(size_t held, size_t added, size_t removed);
const char *vc_drift_level_name(vc_drift_level level);

#endif
