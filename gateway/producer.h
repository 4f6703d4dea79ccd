/* producer.h -- the gateway's events to Kafka: librdkafka's idempotent
 * producer, keyed by stream id (murmur2_random, like the Java client).
 *
 * Everything but gw_producer_refresh_partitions() runs on the loop thread;
 * delivery reports and errors are served by gw_producer_poll() there. */
#ifndef GW_PRODUCER_H
#define GW_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

#include "vc_event.h"

typedef struct gw_producer gw_producer;

typedef struct {
    int64_t produced;         /* accepted into the local queue */
    int64_t delivered;
    int64_t delivery_errors;  /* failed after librdkafka's retries */
    int64_t queue_full;       /* refused: local queue at its bound */
    int64_t produce_errors;   /* refused otherwise (encode, unknown topic) */
    int64_t outages;          /* times Kafka became unreachable */
    int64_t queue_len;        /* messages waiting in librdkafka */
} gw_producer_stats;

/* Create the producer. gateway_id and epoch_ms are stamped on every event.
 * NULL and errstr on a bad configuration (not on an unreachable Kafka). */
gw_producer *gw_producer_new(const char *brokers, const char *topic, const char *gateway_id,
                             int64_t epoch_ms, int queue_max, char *errstr, size_t errstr_size);
void gw_producer_destroy(gw_producer *p); /* accepts NULL; does not flush */

/* Stamp ev (gateway id and epoch, seq, ts_ms = now_ms) and produce it keyed by
 * its stream id, or to `partition` when partition >= 0 (heartbeats).
 * 0, or -1 when it was not queued (counted in the stats). */
int gw_producer_send(gw_producer *p, vc_event *ev, int32_t partition, int64_t now_ms);

/* A heartbeat to every partition. Returns how many were queued; 0 while the
 * partition count is still unknown. */
int gw_producer_heartbeat(gw_producer *p, int64_t now_ms);

/* Serve delivery reports and errors; never blocks. */
void gw_producer_poll(gw_producer *p);

/* 1 once after Kafka came back from an outage (the caller sends a sync). */
int gw_producer_take_recovered(gw_producer *p);

/* 1 when the last metadata request and deliveries succeeded. */
int gw_producer_reachable(const gw_producer *p);

/* Ask the brokers for the topic's partition count (blocks up to timeout_ms:
 * call it from a thread other than the loop). Returns the count or -1. */
int32_t gw_producer_refresh_partitions(gw_producer *p, int timeout_ms);
/* The last count known, 0 if none yet. Any thread. */
int32_t gw_producer_partitions(const gw_producer *p);

/* Wait up to timeout_ms for the queue to drain. Returns what is left. */
int gw_producer_flush(gw_producer *p, int timeout_ms);

void gw_producer_get_stats(const gw_producer *p, gw_producer_stats *st);

#endif
