/* vc_rules.h -- the event-time rules that the aggregator and the sink apply
 * identically: gateway liveness, sync snapshot assembly and drift tiers.
 *
 * Everything here is pure: decisions depend only on the events fed in, in
 * partition order, so a replay of the same partition decides the same. No
 * wall clock is read. Each object is per Kafka partition; none is thread-safe.
 *
 * Gateway liveness (one vc_liveness per partition)
 *   - A gateway epoch is expired ("gateway lost": all its viewers in that
 *     partition leave in one step) when it has shown no sign of life for more
 *     than timeout_ms on the partition's LIVE CLOCK (below). Any event of
 *     (gateway_id, gateway_epoch) is a sign of life.
 *   - A gateway_id seen with a newer epoch has restarted: the older epoch is
 *     gone at once (reason "gateway restarted"), and later events of an older
 *     epoch are stale (the caller ignores them).
 *   - An expired (timed out) epoch that shows a sign of life again is alive
 *     again from that event on, with the same id; its viewers were removed
 *     when it expired and count again only when they join again (or its next
 *     sync snapshot lists them).
 *
 *   Why a live clock, and not simply the largest ts_ms seen (the rule before
 *   2026-11-25): during a broker outage every gateway keeps producing into
 *   its librdkafka queue. When the broker is back, the queues reach the
 *   partition one after the other: gateway A's whole backlog (ts T0..T0+outage)
 *   first, then gateway B's. Measured by max(ts_ms), A's backlog moved the
 *   clock past B's last heartbeat + timeout, and B was declared lost although
 *   its own heartbeats were right behind in the log. A rule that only reads
 *   the log cannot tell that B from a gateway killed at T0: the log up to the
 *   end of A's backlog is the same in both cases (A alone, heartbeating every
 *   period, for the length of the outage). What differs is only what the
 *   producers knew: during the outage nothing of theirs was delivered. So the
 *   rule needs the producers' help, and it asks for the smallest one that
 *   keeps the event contract as it is:
 *
 *     A gateway does not queue heartbeats behind undelivered messages: a
 *     heartbeat says "alive now", and delivered late it would say it about a
 *     past moment, as if it were now. While a partition has had messages of
 *     the gateway outstanding without any acknowledgement for over 1 s (the
 *     shortest heartbeat period a gateway allows), the gateway skips its
 *     heartbeats to that partition; joins, leaves and syncs are queued as always.
 *     (The gateway's side of this is its producer, gateway/producer.c; until
 *     it does this, the rule behaves as described for "producers that still
 *     queue heartbeats" below.)
 *
 *   The LIVE CLOCK then ticks with heartbeats only. A heartbeat newer than
 *   every earlier heartbeat of the partition advances it by the gap since the
 *   newest earlier one, but by at most 1.5 times its own gateway's last
 *   heartbeat period in this partition (all of the gap while that period is
 *   unknown: the gateway's first heartbeat in the partition, or the first
 *   after a restart or after loading a version-1 state). A longer gap is time
 *   in which no heartbeat reached the partition: an outage, or every gateway
 *   dead. Silence across such a gap proves nothing about anyone, so it counts
 *   1.5 periods, not its length. A backlog of joins and leaves does not move
 *   the live clock at all.
 *
 *   Each sign of life is dated where it stands in the log: the live clock at
 *   that event, plus how far the event's ts_ms is past the partition's newest
 *   heartbeat (an event between two heartbeats), capped like a heartbeat's
 *   tick and by timeout_ms. An event delivered late (ts_ms below the newest
 *   heartbeat) is a sign of life NOW: whoever appended it was alive to send
 *   it. (Before, such an event revived its expired gateway with last_seen =
 *   its old ts_ms, so the gateway's next late event expired it again: a
 *   backlog made its gateway flap, each flap removing its viewers.)
 *
 *   What this decides:
 *   - A gateway that dies (kill -9: no more events at all) while others
 *     heartbeat: the live clock ticks with their heartbeats at their period
 *     (gaps are not capped), and the dead one is lost at the first
 *     heartbeat that puts more than timeout_ms between it and its last sign
 *     of life, and not before. The live clock never advances more than event
 *     time does, so capping a gap can only make an expiry later, not earlier.
 *   - A broker outage, with the gateways' heartbeat skipping: the backlogs
 *     hold joins/leaves (and at most the first second of heartbeats). At the
 *     first heartbeat after it the live clock moves by 1.5 periods at most,
 *     and a gateway whose backlog arrives within timeout - 1.5 periods -
 *     1 s of the partition's heartbeats after that keeps its viewers.
 *   - A gateway that dies during an outage: its queue died with it. After the
 *     outage the live clock ticks with the others' heartbeats and it is lost
 *     timeout_ms (less at most 1.5 periods) after the partition is live again.
 *   - With producers that still queue heartbeats (gateways before this rule):
 *     the backlog's heartbeats tick the live clock as they did the old clock,
 *     so a gateway behind another's backlog longer than timeout_ms is still
 *     lost, but once: its own late events revive it and it stays alive.
 *   - A lone gateway cannot time itself out by a gap in its own heartbeats
 *     (it used to be expired and revived by its own first heartbeat after the
 *     gap, its viewers removed although it was back).
 *   - Old logs replay with these rules: a rebuild decides the same as a live
 *     run of this code, which can differ from what the old rule decided live
 *     (only where the old rule flapped, or expired across a heartbeat gap).
 *   - Known gap: a gateway whose period is not known yet (its first
 *     heartbeat in the partition, e.g. one that started or restarted during
 *     the outage) ticks the live clock by the whole gap once, and can then
 *     expire a gateway whose backlog has not arrived yet.
 *   Considered and not chosen:
 *   - A watermark over the gateways (expire G only when other gateways have
 *     moved past G's last heartbeat + timeout): with two gateways, "A's
 *     backlog first" and "B killed, A alone" are the same log, and the
 *     gateway_kill case must still lose B.
 *   - Undoing a wrong expiry when the gateway's late events show it never
 *     was silent: the aggregator deletes the viewers of a lost gateway and
 *     the sink ends their sessions; both would have to keep them (and the
 *     counts would still dip meanwhile).
 *   - A new optional field in the event (e.g. how long the producer's oldest
 *     undelivered message had waited): as good, but a new writer schema
 *     (fingerprint, codec, registration of the old schema in every reader)
 *     for what skipping a heartbeat says without one.
 *   Non-heartbeat events never expire anyone (they do not move the live
 *   clock); the first event of the partition starts every clock.
 *
 *   Order inside vc_liveness_observe(): tick the live clock (heartbeats),
 *   expire, then record the event's sign of life.
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
/* The live clock that silence is measured on (see above; INT64_MIN before
 * any event). It never runs ahead of vc_liveness_clock(). */
int64_t vc_liveness_live_clock(const vc_liveness *lv);
/* Number of epochs currently alive (not expired, not superseded). */
size_t vc_liveness_alive(const vc_liveness *lv);

/* Serialise the whole state (for checkpoints). Returns the number of bytes the
 * state needs; writes it into buf only when it fits in size (call with size 0
 * to ask). The format is versioned and portable (little-endian): "VCL2"
 * (with the live clock); vc_liveness_load() also reads "VCL1", the format
 * before it. */
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
