/* idmap.h -- a chained hash map from positive int64 ids to pointers, grown
 * by doubling. Not thread-safe. */
#ifndef GW_IDMAP_H
#define GW_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct gw_idmap gw_idmap;

gw_idmap *gw_idmap_new(void);
/* Frees the map, not the values. Accepts NULL. */
void gw_idmap_destroy(gw_idmap *m);
void *gw_idmap_get(const gw_idmap *m, int64_t id);
/* Insert or replace. 0 or -1 (out of memory). */
int gw_idmap_put(gw_idmap *m, int64_t id, void *value);
/* Remove and return the value, or NULL. */
void *gw_idmap_del(gw_idmap *m, int64_t id);
size_t gw_idmap_size(const gw_idmap *m);
/* Call fn for every entry; fn must not change the map. */
void gw_idmap_each(const gw_idmap *m, void (*fn)(int64_t id, void *value, void *arg), void *arg);

#endif
