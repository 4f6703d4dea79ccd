#include "map.h"

#include <stdlib.h>
#include <string.h>

#define SK_MAP_MIN 8

static uint64_t key_hash(sk_key k)
{
    uint64_t h = k.a * 0x9E3779B97F4A7C15ULL ^ (k.b + 0x632BE59BD9B4E019ULL) * 0xC2B2AE3D27D4EB4FULL;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 29;
    return h;
}

static int alloc_slots(sk_map *m, size_t cap)
{
    m->used = calloc(cap, 1);
    m->keys = calloc(cap, sizeof *m->keys);
    m->vals = calloc(cap, m->vsize);
    if (!m->used || !m->keys || !m->vals) {
        free(m->used);
        free(m->keys);
        free(m->vals);
        m->used = NULL;
        m->keys = NULL;
        m->vals = NULL;
        return -1;
    }
    m->cap = cap;
    m->len = 0;
    return 0;
}

int sk_map_init(sk_map *m, size_t vsize)
{
    memset(m, 0, sizeof *m);
    m->vsize = vsize;
    return alloc_slots(m, SK_MAP_MIN);
}

void sk_map_free(sk_map *m)
{
    free(m->used);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static size_t find_slot(const sk_map *m, sk_key key, int *found)
{
    size_t mask = m->cap - 1;
    size_t i = key_hash(key) & mask;
    while (m->used[i]) {
        if (m->keys[i].a == key.a && m->keys[i].b == key.b) {
            *found = 1;
            return i;
        }
        i = (i + 1) & mask;
    }
    *found = 0;
    return i;
}

void *sk_map_get(const sk_map *m, sk_key key)
{
    int found;
    if (!m->cap)
        return NULL;
    size_t i = find_slot(m, key, &found);
    return found ? sk_map_val(m, i) : NULL;
}

static int grow(sk_map *m)
{
    sk_map old = *m;
    if (alloc_slots(m, old.cap * 2) < 0) {
        *m = old;
        return -1;
    }
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.used[i])
            continue;
        int found;
        size_t j = find_slot(m, old.keys[i], &found);
        m->used[j] = 1;
        m->keys[j] = old.keys[i];
        memcpy(sk_map_val(m, j), sk_map_val(&old, i), m->vsize);
        m->len++;
    }
    free(old.used);
    free(old.keys);
    free(old.vals);
    return 0;
}

void *sk_map_put(sk_map *m, sk_key key, int *created)
{
    int found;
    if (created)
        *created = 0;
    if (!m->cap && alloc_slots(m, SK_MAP_MIN) < 0)
        return NULL;
    size_t i = find_slot(m, key, &found);
    if (found)
        return sk_map_val(m, i);
    if ((m->len + 1) * 2 > m->cap) {
        if (grow(m) < 0)
            return NULL;
        i = find_slot(m, key, &found);
    }
    m->used[i] = 1;
    m->keys[i] = key;
    memset(sk_map_val(m, i), 0, m->vsize);
    m->len++;
    if (created)
        *created = 1;
    return sk_map_val(m, i);
}

int sk_map_del(sk_map *m, sk_key key)
{
    int found;
    if (!m->cap)
        return 0;
    size_t mask = m->cap - 1;
    size_t i = find_slot(m, key, &found);
    if (!found)
        return 0;
    m->used[i] = 0;
    m->len--;
    /* backward shift: move later members of the probe run into the hole */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->used[j])
            break;
        size_t home = key_hash(m->keys[j]) & mask;
        /* can slot j's key live at i? yes if home is not cyclically in (i, j] */
        int movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            m->used[i] = 1;
            m->keys[i] = m->keys[j];
            memcpy(sk_map_val(m, i), sk_map_val(m, j), m->vsize);
            m->used[j] = 0;
            i = j;
        }
    }
    return 1;
}
