/* service.h -- vc-aggregator: consumes the events topic in the consumer group
 * and applies each partition's batches to Redis Cluster exactly once (see
 * README.md). One service object per process; single-threaded apart from the
 * HTTP thread of metrics.h. */
#ifndef AGG_SERVICE_H
#define AGG_SERVICE_H

#include <signal.h>
#include <stddef.h>

#include "config.h"
#include "metrics.h"

typedef struct agg_service agg_service;

/* Connects to Kafka and Redis. cfg and m must outlive the service. rebuild:
 * the object is for agg_service_rebuild() (no group membership), else for
 * agg_service_run(). NULL and errstr on failure. */
agg_service *agg_service_new(const agg_config *cfg, agg_metrics *m, int rebuild, char *errstr,
                             size_t errstr_size);
/* Consume in the group until *stop is set; finishes the current batch and
 * closes the consumer. 0 on a clean stop, -1 on a fatal error (errstr). */
int agg_service_run(agg_service *svc, volatile sig_atomic_t *stop, char *errstr,
                    size_t errstr_size);
/* Restore every partition whose state is missing from Redis (from its newest
 * checkpoint, or from the start of the log) and replay the events topic up to
 * the end it had when the rebuild began, printing progress to progress (may
 * be NULL). Outside the consumer group. 0 or -1 (errstr). */
int agg_service_rebuild(agg_service *svc, volatile sig_atomic_t *stop, FILE *progress,
                        char *errstr, size_t errstr_size);
void agg_service_destroy(agg_service *svc); /* accepts NULL */

#endif
