/* vc_partition.h -- which Kafka partition a stream's events live in.
 *
 * The message key is the stream id in decimal ASCII (what a Java client's
 * StringSerializer would send). The partition is librdkafka's murmur2_random
 * partitioner, identical to the Java client's default for keyed messages:
 * (murmur2(key) & 0x7fffffff) % partition_count. */
#ifndef VC_PARTITION_H
#define VC_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#define VC_STREAM_KEY_MAX 21 /* 19 digits of INT64_MAX, sign never used, NUL */

/* Kafka's murmur2 (seed 0x9747b28c) over len bytes of key. */
uint32_t vc_murmur2(const void *key, size_t len);

/* Write the message key of stream_id into buf (NUL-terminated); returns its length. */
size_t vc_stream_key(int64_t stream_id, char buf[VC_STREAM_KEY_MAX]);

/* The partition of stream_id among partition_count (> 0) partitions. */
int32_t vc_stream_partition(int64_t stream_id, int32_t partition_count);

#endif
