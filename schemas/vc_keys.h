/* vc_keys.h -- the Redis key layout shared by gateway and aggregator.
 * The full table, with each key's type and fields, is in schemas/README.md.
 *
 * Every key of Kafka partition P carries the hash tag {vc.P}, so all of one
 * partition's keys live in one Redis Cluster slot and the aggregator applies
 * a batch of that partition's events atomically, together with its offset.
 *
 *   vc:{vc.P}:meta          HASH  applied offset and state of partition P
 *   vc:{vc.P}:s:<stream>    HASH  viewers, peak, status, offset of one stream
 *   vc:{vc.P}:rank          ZSET  live streams of P by current viewers
 *   vc:{vc.P}:rank:c:<cat>  ZSET  the same, per category
 *
 * A reader wanting the overall top N asks every partition's rank for its top
 * N and merges (a per-partition ranking keeps the batch atomic). */
#ifndef VC_KEYS_H
#define VC_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define VC_KEY_MAX 96

/* Each writes a NUL-terminated key into buf and returns its length, or -1 if
 * it does not fit (never with a buffer of VC_KEY_MAX bytes). */
int vc_key_meta(char *buf, size_t size, int32_t partition);
int vc_key_stream(char *buf, size_t size, int32_t partition, int64_t stream_id);
int vc_key_rank(char *buf, size_t size, int32_t partition);
int vc_key_rank_category(char *buf, size_t size, int32_t partition, int64_t category_id);
/* The prefix "vc:{vc.P}:" that every key of partition P starts with, for the
 * aggregator's own keys (documented in schemas/README.md). */
int vc_key_prefix(char *buf, size_t size, int32_t partition);

/* Field names of the stream hash. */
#define VC_FIELD_VIEWERS "viewers"
#define VC_FIELD_PEAK "peak"
#define VC_FIELD_STATUS "status"   /* "live" or "syncing" */
#define VC_FIELD_OFFSET "offset"   /* the partition offset the values are valid as of */

#endif
