/* checkpoint.h -- partition checkpoints on the (compacted) checkpoint topic.
 *
 * A checkpoint of partition P is the serialisation of P's in-memory state
 * (agg_part_save(), versioned binary, see apply.c) together with the offset
 * it is valid as of. On the topic it is one or more messages in partition
 * P % (checkpoint partitions), keyed "P/<chunk>" (so compaction keeps the
 * newest chunk of each number), produced in chunk order by the instance that
 * owns P. A reader takes, per partition, the newest checkpoint whose chunks
 * 0..n-1 it read in order with the same offset (an interleaved or
 * incomplete one is ignored, the previous complete one stays).
 *
 * Value of a chunk: "VCK3", offset (u64 LE), chunk (u32), chunks (u32), the
 * name of the events topic the state belongs to (u16 LE length + bytes),
 * then up to AGG_CHECKPOINT_CHUNK_MAX bytes of the state. A reader ignores
 * chunks of another events topic (a checkpoint topic shared by mistake) and
 * of another magic (the former "VCK1" DUMP format). The state's own header
 * ("VCS2") versions its format. */
#ifndef AGG_CHECKPOINT_H
#define AGG_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "vc_redis.h"

#define AGG_CHECKPOINT_CHUNK_MAX (512 * 1024) /* state bytes per message */

/* Produce the checkpoint of partition p (state bytes valid as of offset) with
 * producer rkp into partition p % topic_partitions of topic, without waiting:
 * every chunk carries msg_opaque (the delivery report tells when it is
 * durable). Returns the number of chunks produced (>= 1), or -1 with errstr
 * (*queued: chunks produced before the error, already on their way). */
int agg_checkpoint_produce(rd_kafka_t *rkp, const char *topic, int32_t topic_partitions, const char *events_topic,
                           int32_t p, int64_t offset, const uint8_t *state, size_t len, void *msg_opaque,
                           int *queued, char *errstr, size_t errstr_size);

/* Read the newest complete checkpoint of each partition ps[0..n) of events_topic from topic
 * (one consumer of its own on brokers, reading each needed topic partition
 * to the end it had when the call began, at most timeout_ms). states[i] gets
 * a malloc'ed copy of the state (NULL: none), lens[i] its length and
 * offsets[i] its offset (-1: none). 0, or -1 with errstr (nothing returned). */
int agg_checkpoint_load(const char *brokers, const char *topic, int32_t topic_partitions, const char *events_topic,
                        const int32_t *ps, int n, uint8_t **states, size_t *lens, int64_t *offsets,
                        int timeout_ms, char *errstr, size_t errstr_size);

/* Delete every key of partition p, the meta hash last (so an interrupted
 * clear still reads as "no state"). 0, or -1 with errstr. */
int agg_partition_clear(vc_redis_batch *b, int32_t p, char *errstr, size_t errstr_size);

#endif
