/* checkpoint.h -- partition checkpoints on the (compacted) checkpoint topic.
 *
 * A checkpoint of partition P is every Redis key with P's prefix, as DUMP
 * payloads, together with the offset they are valid as of (the meta hash is
 * one of the keys). It is written between batches by the instance that owns
 * P, so nothing of P changes while it is read. On the topic it is one or
 * more messages in partition P % (checkpoint partitions), keyed "P/<chunk>"
 * (so compaction keeps the newest chunk of each number); every chunk carries
 * the checkpoint's offset and chunk count, and a reader uses the newest
 * chunk 0 and only chunks of the same offset.
 *
 * Value of a chunk: "VCK1", offset (u64 LE), chunk (u32), chunks (u32), then
 * records of (u32 key length, key, u32 DUMP length, DUMP payload).
 * DUMP payloads are only RESTOREd by the same Redis major version. */
#ifndef AGG_CHECKPOINT_H
#define AGG_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "vc_redis.h"

#define AGG_CHECKPOINT_CHUNK_MAX (512 * 1024) /* bytes of records per message */

/* Write the checkpoint of partition p (whose state in Redis is as of offset)
 * with producer rkp into partition p % topic_partitions of topic, and wait
 * for its delivery. 0, or -1 with errstr. */
int agg_checkpoint_write(vc_redis_batch *b, rd_kafka_t *rkp, const char *topic, int32_t topic_partitions,
                         int32_t p, int64_t offset, char *errstr, size_t errstr_size);

/* Read the newest complete checkpoint of partition p from topic (a consumer
 * of its own on brokers) and RESTORE its keys into Redis, the meta hash last.
 * Returns 1 and sets *offset when restored, 0 when there is no checkpoint,
 * -1 on an error (errstr). */
int agg_checkpoint_restore(vc_redis_batch *b, const char *brokers, const char *topic,
                           int32_t topic_partitions, int32_t p, int64_t *offset, char *errstr,
                           size_t errstr_size);

/* Delete every key of partition p, the meta hash last (so an interrupted
 * clear still reads as "no state"). 0, or -1 with errstr. */
int agg_partition_clear(vc_redis_batch *b, int32_t p, char *errstr, size_t errstr_size);

#endif
