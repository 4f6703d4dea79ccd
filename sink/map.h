/* map.h -- open-addressing hash map from a 128-bit key to a fixed-size value.
 *
 * Used for the sink's per-partition state (streams, connections, users).
 * Linear probing, backward-shift deletion, power-of-two capacity, load <= 1/2.
 * Not thread-safe. */
#ifndef SK_MAP_H
#define SK_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t a, b;
} sk_key;

typedef struct {
    size_t cap;        /* slots, power of two */
    size_t len;        /* used slots */
    size_t vsize;      /* bytes per value */
    uint8_t *used;     /* cap flags */
    sk_key *keys;      /* cap keys */
    uint8_t *vals;     /* cap * vsize bytes */
} sk_map;

/* Returns 0, or -1 on allocation failure. */
int sk_map_init(sk_map *m, size_t vsize);
void sk_map_free(sk_map *m); /* accepts a zeroed map */

/* Pointer to the value of key, or NULL. Valid until the next insert or delete. */
void *sk_map_get(const sk_map *m, sk_key key);
/* Pointer to the value of key, inserting a zeroed value if absent (*created
 * set to 1 then). NULL on allocation failure. Valid until the next insert or delete. */
void *sk_map_put(sk_map *m, sk_key key, int *created);
/* Remove key; returns 1 if it was there. */
int sk_map_del(sk_map *m, sk_key key);

/* Iterate: for (size_t i = 0; i < m->cap; i++) if (m->used[i]) ... with
 * sk_map_val(m, i). Do not insert or delete while iterating. */
static inline void *sk_map_val(const sk_map *m, size_t i) { return m->vals + i * m->vsize; }

#endif
