/* idmap.c -- int64 -> pointer hash map (see idmap.h). */
#include "idmap.h"

#include <stdlib.h>

typedef struct node {
    struct node *next;
    int64_t id;
    void *value;
} node;

struct gw_idmap {
    node **b;
    size_t nb, n;
};

static size_t slot(int64_t id, size_t nb)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;

    return (size_t)(x >> 32) & (nb - 1);
}

gw_idmap *gw_idmap_new(void)
{
    gw_idmap *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    m->nb = 64;
    m->b = calloc(m->nb, sizeof(*m->b));
    if (m->b == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

void gw_idmap_destroy(gw_idmap *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nb; i++)
        for (node *e = m->b[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(m->b);
    free(m);
}

void *gw_idmap_get(const gw_idmap *m, int64_t id)
{
    for (node *e = m->b[slot(id, m->nb)]; e; e = e->next)
        if (e->id == id)
            return e->value;
    return NULL;
}

static void grow(gw_idmap *m)
{
    size_t nb = m->nb * 2;
    node **b = calloc(nb, sizeof(*b));

    if (b == NULL)
        return; /* stays correct, only slower */
    for (size_t i = 0; i < m->nb; i++)
        for (node *e = m->b[i], *next; e; e = next) {
            size_t s = slot(e->id, nb);

            next = e->next;
            e->next = b[s];
            b[s] = e;
        }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

int gw_idmap_put(gw_idmap *m, int64_t id, void *value)
{
    node *e;
    size_t s = slot(id, m->nb);

    for (e = m->b[s]; e; e = e->next)
        if (e->id == id) {
            e->value = value;
            return 0;
        }
    e = malloc(sizeof(*e));
    if (e == NULL)
        return -1;
    e->id = id;
    e->value = value;
    e->next = m->b[s];
    m->b[s] = e;
    if (++m->n > m->nb)
        grow(m);
    return 0;
}

void *gw_idmap_del(gw_idmap *m, int64_t id)
{
    for (node **pe = &m->b[slot(id, m->nb)]; *pe; pe = &(*pe)->next)
        if ((*pe)->id == id) {
            node *e = *pe;
            void *v = e->value;

            *pe = e->next;
            free(e);
            m->n--;
            return v;
        }
    return NULL;
}

size_t gw_idmap_size(const gw_idmap *m)
{
    return m->n;
}

void gw_idmap_each(const gw_idmap *m, void (*fn)(int64_t id, void *value, void *arg), void *arg)
{
    for (size_t i = 0; i < m->nb; i++)
        for (node *e = m->b[i]; e; e = e->next)
            fn(e->id, e->value, arg);
}
