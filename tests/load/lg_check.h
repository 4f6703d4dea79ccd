/* lg_check.h -- what vc-loadgen compares with its ground truth besides the
 * pushes: GET /api/streams/<id> on every gateway, and the Redis stream hash. */
#ifndef LG_CHECK_H
#define LG_CHECK_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "vc_redis.h"

typedef struct {
    int http;         /* HTTP status; 0 = no answer (refused, timeout) */
    int status;       /* LG_ST_* of the body */
    int64_t viewers;  /* -1 when absent */
} lg_api_ans;

/* GET /api/streams/<id> for every stream on every gateway, at most 256
 * requests in flight, the whole bounded by timeout_ms. ans has n * ngw
 * entries: ans[i * ngw + g] is stream i on gateway g. Requests leave from
 * source address src (host order). */
void lg_api_query(const struct sockaddr_in *gws, int ngw, const int64_t *streams, size_t n, lg_api_ans *ans,
                  int timeout_ms, uint32_t src);

typedef struct {
    int found;        /* the hash exists */
    int64_t viewers;  /* -1 when absent */
    int syncing;      /* status field is "syncing" */
} lg_redis_ans;

/* HMGET viewers status of every stream's hash, from the masters. 0, or -1
 * (errstr) when Redis could not be read. */
int lg_redis_query(vc_redis *r, int32_t partitions, const int64_t *streams, size_t n, lg_redis_ans *ans,
                   char *errstr, size_t errstr_size);

/* Keys of the aggregator's per-viewer state ("vc:*:u:<stream>",
 * "vc:*:g:<G>:<stream>") of streams stream_lo..stream_hi still present on the
 * masters among nodes ("host:port,..."); 0 when none, -1 when a node could not
 * be asked. The first few key names go into sample. *index_members gets the
 * number of those streams still listed in a gateway epoch's index
 * ("vc:*:gs:<G>"), which is informational (the index may be cleaned lazily). */
long lg_redis_leftovers(const char *nodes, int64_t stream_lo, int64_t stream_hi, char *sample, size_t sample_size,
                        long *index_members);

#endif
