/* categories.h -- stream_id -> category_id from the `streams` table, looked
 * up off the hot path: the consumer thread asks a cache that never blocks;
 * unknown streams are queued and a thread of this module queries MariaDB in
 * batches (SELECT stream_id, category_id FROM streams WHERE stream_id IN ...)
 * and hands the answers back. A stream unknown to the table is asked again
 * after AGG_CATEGORY_RETRY_MS. */
#ifndef AGG_CATEGORIES_H
#define AGG_CATEGORIES_H

#include <stddef.h>
#include <stdint.h>

#define AGG_CATEGORY_RETRY_MS 30000
#define AGG_CATEGORY_CACHE_MAX (1u << 20)  /* streams cached; the cache starts over beyond */
#define AGG_CATEGORY_QUEUE_MAX 65536       /* lookups waiting; more are asked later */

typedef struct agg_categories agg_categories;

typedef struct {
    const char *host, *user, *password, *db;
    int port;
    int refresh_ms;
} agg_categories_conf;

/* Starts the lookup thread (it connects, and reconnects, by itself). The
 * strings of conf are copied. NULL on allocation or thread failure. */
agg_categories *agg_categories_new(const agg_categories_conf *conf);
void agg_categories_destroy(agg_categories *c); /* accepts NULL */

/* The category of stream_id, or 0 when not known (yet): then a lookup is
 * queued. Consumer thread only; never blocks on I/O. now_ms: monotonic. */
int64_t agg_categories_get(agg_categories *c, int64_t stream_id, int64_t now_ms);

/* Answers that arrived since the last call: up to max (stream, category)
 * pairs with category > 0, also entered in the cache. Returns how many. */
size_t agg_categories_drain(agg_categories *c, int64_t *streams, int64_t *cats, size_t max);

#endif
