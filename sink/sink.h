/* sink.h -- the vc-sink service: Kafka consumer loop, partition states,
 * flushes through db.h, dead-lettering.
 *
 * Exactly once per partition: the rows, the next offset and the open state of
 * a partition are committed in one transaction (sk_db_flush); on assignment
 * the state is loaded from that checkpoint and the partition is consumed from
 * the stored offset, so a crash at any point replays into the same rows.
 * While the database fails with a retryable error the sink pauses all its
 * partitions, keeps the unflushed state, retries with exponential backoff
 * (logged once per cause, counted), then seeks back to where it was and goes on. */
#ifndef SK_SINK_H
#define SK_SINK_H

#include <signal.h>
#include <stddef.h>

#include "config.h"
#include "metrics.h"

typedef struct sk_sink sk_sink;

/* cfg and m must outlive the sink. NULL with errstr on failure. */
sk_sink *sk_sink_new(const sk_config *cfg, sk_metrics *m, char *errstr, size_t errstr_size);
/* Run until *stop becomes non-zero (0) or a fatal error (-1, errstr). */
int sk_sink_run(sk_sink *s, volatile sig_atomic_t *stop, char *errstr, size_t errstr_size);
void sk_sink_destroy(sk_sink *s); /* closes the consumer; accepts NULL */

#endif
