/* apply.h -- one Kafka partition's state in the aggregator and the packing of
 * a batch of its events into one call of the apply script.
 *
 * Pure: no I/O. The service feeds decoded events in partition order with
 * agg_part_add(), seals the batch into the script's arguments, runs the
 * script (EVALSHA agg_apply_script) and, when Redis answered, reports the
 * result with agg_part_commit(). The event-time rules (gateway liveness, sync
 * assembly, drift tiers) come from schemas/vc_rules.h.
 *
 * The script applies the whole batch atomically with the partition's offset
 * and the serialised rule state (stored in the partition's meta hash), so a
 * restart reads both from Redis and goes on from offset + 1. */
#ifndef AGG_APPLY_H
#define AGG_APPLY_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "vc_event.h"
#include "vc_rules.h"

/* The Lua source of the apply script (SCRIPT LOAD it on every master). */
extern const char agg_apply_script[];

/* Fields of the partition's meta hash (vc:{vc.P}:meta). */
#define AGG_META_OFFSET "offset"   /* last applied Kafka offset */
#define AGG_META_LIVENESS "lv"     /* vc_liveness_save() bytes */
#define AGG_META_SYNC "sa"         /* vc_sync_asm_save() bytes */

typedef struct {
    int64_t gateway_timeout_ms;    /* vc_liveness timeout */
    size_t sync_max_viewers;       /* vc_sync_asm bounds */
    int64_t sync_max_age_ms;
} agg_rules_conf;

/* What one event did to the batch. */
typedef enum {
    AGG_ADD_PACKED = 0,    /* became one or more script operations */
    AGG_ADD_NOOP,          /* advances the offset only (heartbeat, buffered sync chunk) */
    AGG_ADD_DUPLICATE,     /* offset <= the last applied or batched: ignored */
    AGG_ADD_STALE,         /* from a superseded gateway epoch: ignored */
    AGG_ADD_NOMEM,         /* allocation failed; the event was not added */
} agg_add_rc;

typedef struct agg_part agg_part;

/* Script results of one batch. */
typedef struct {
    int64_t applied, skipped;      /* operations */
    int64_t repairs[3];            /* snapshots compared, by vc_drift_level */
    int64_t held, added, removed;  /* summed over the batch's snapshots */
    int64_t expired_viewers;       /* viewers removed because a gateway was gone */
} agg_result;

/* A new partition state. applied is the last applied offset (-1: none);
 * lv/sa are the saved rule states (length 0: fresh). NULL + errstr when the
 * saved states do not load. */
agg_part *agg_part_new(int32_t partition, const agg_rules_conf *conf, int64_t applied,
                       const uint8_t *lv, size_t lv_len, const uint8_t *sa, size_t sa_len,
                       char *errstr, size_t errstr_size);
void agg_part_destroy(agg_part *p); /* accepts NULL */

int32_t agg_part_partition(const agg_part *p);
/* The last offset applied in Redis (-1: none). */
int64_t agg_part_applied(const agg_part *p);
/* The last offset added to the open batch, or agg_part_applied() if none. */
int64_t agg_part_position(const agg_part *p);
/* Number of events added to the open batch (including no-ops). */
size_t agg_part_pending(const agg_part *p);

/* Add the event at offset to the open batch. category is the stream's
 * category id if known, else 0. Gateways that the event shows to be gone
 * become "expire" operations placed before the event's own. */
agg_add_rc agg_part_add(agg_part *p, const vc_event *ev, int64_t offset, int64_t category);
/* Tell the batch that stream_id belongs to category (learnt off the hot path). */
int agg_part_add_category(agg_part *p, int64_t stream_id, int64_t category);

/* Script operations in the open batch (category operations included). */
size_t agg_part_ops(const agg_part *p);

/* Gateway epochs gone in the open batch (for metrics). */
size_t agg_part_gone(const agg_part *p);

/* Advance the open batch over offset without an event (a dead-lettered
 * message). Returns AGG_ADD_DUPLICATE when offset <= the position. */
agg_add_rc agg_part_skip(agg_part *p, int64_t offset);

/* The script call of the open batch (which may be empty: it then only checks
 * that Redis still holds this partition's offset): argc/argv/argvlen for
 * EVALSHA <sha> 1 <meta key> <args...> or, when sha is NULL,
 * EVAL <agg_apply_script> 1 <meta key> <args...>; argv[3] is the meta key.
 * Valid until the next add/seal/commit/destroy. Returns 0, or -1 on
 * allocation failure. */
int agg_part_seal(agg_part *p, const char *sha, int *argc, const char ***argv,
                  const size_t **argvlen);

/* Redis already holds the open batch (a retried call found its own offset):
 * commit it without results. */
void agg_part_confirm(agg_part *p);

/* The script answered the sealed batch with reply. Returns 0 and fills *res
 * (the batch is committed: applied = position, the batch is emptied); 1 when
 * the script reported a gap (Redis holds another offset than this state
 * expects: *stored is set, the state must be reloaded from Redis and the
 * consumer moved to *stored + 1); -1 when the reply is an error or not
 * understood (errstr; the batch stays sealed and may be retried). */
int agg_part_commit(agg_part *p, const redisReply *reply, agg_result *res, int64_t *stored,
                    char *errstr, size_t errstr_size);

#endif
