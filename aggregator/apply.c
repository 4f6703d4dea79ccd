/* apply.c -- a partition's state in memory and the sealing of its Redis
 * write (see apply.h and apply_script.c).
 *
 * Layout (all maps are imap: open addressing, int64 keys > 0 -> int64 values):
 *   streams:  stream_id -> agg_stream*  (count, peak, status, category, users)
 *   stream->users: user_id -> open connections of that user on the stream
 *   gws:      gateway epoch id (vc_liveness_verdict.id) -> gw*
 *   gw->shares: stream_id -> share*     (what the epoch holds on the stream)
 *   share->conns: conn_id -> user_id (0: anonymous, > 0 a user) or a
 *             tombstone (a leave whose join was not seen): -1 - ts_ms
 * A share is freed when its last connection and tombstone go, a gw when its
 * last share goes, a stream's users map shrinks with it: the indexes of a
 * gateway epoch follow its connections. Tombstones go with their epoch or
 * after tombstone_ttl_ms of event time (swept when the clock passes
 * next_sweep).
 *
 * Checkpoint format (agg_part_save), little-endian:
 *   "VCS2" | i64 position | u32 len + vc_liveness_save bytes |
 *   u32 len + vc_sync_asm_save bytes | i64 next_sweep |
 *   u32 nstreams, per stream: i64 id, viewers, peak, offset, category,
 *       hold_until (0: live), u32 nusers, nusers x (i64 user, i64 count) |
 *   u32 ngateways, per gateway: u32 id, u32 nshares, per share:
 *       i64 stream, u32 nconns, nconns x (i64 conn, i64 value) */
#include "apply.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vc_keys.h"

/* ---- imap ----------------------------------------------------------------- */

typedef struct {
    int64_t *k, *v;
    uint32_t cap, n;
} imap;

static inline uint32_t imix(int64_t key)
{
    uint64_t x = (uint64_t)key;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

static void imap_free(imap *m)
{
    free(m->k);
    free(m->v);
    memset(m, 0, sizeof(*m));
}

static inline int64_t imap_slot(const imap *m, int64_t key)
{
    if (m->cap == 0)
        return -1;
    uint32_t mask = m->cap - 1, i = imix(key) & mask;
    for (;;) {
        if (m->k[i] == key)
            return i;
        if (m->k[i] == 0)
            return -1;
        i = (i + 1) & mask;
    }
}

static inline int imap_get(const imap *m, int64_t key, int64_t *v)
{
    int64_t i = imap_slot(m, key);
    if (i < 0)
        return 0;
    *v = m->v[i];
    return 1;
}

static int imap_resize(imap *m, uint32_t cap)
{
    int64_t *k = calloc(cap, sizeof(*k)), *v = malloc(cap * sizeof(*v));
    if (k == NULL || v == NULL) {
        free(k);
        free(v);
        return -1;
    }
    for (uint32_t i = 0; i < m->cap; i++) {
        if (m->k[i] == 0)
            continue;
        uint32_t j = imix(m->k[i]) & (cap - 1);
        while (k[j] != 0)
            j = (j + 1) & (cap - 1);
        k[j] = m->k[i];
        v[j] = m->v[i];
    }
    free(m->k);
    free(m->v);
    m->k = k;
    m->v = v;
    m->cap = cap;
    return 0;
}

/* Insert or replace. 0, or -1 on allocation failure (map unchanged). */
static int imap_put(imap *m, int64_t key, int64_t v)
{
    int64_t i = imap_slot(m, key);
    if (i >= 0) {
        m->v[i] = v;
        return 0;
    }
    if ((uint64_t)(m->n + 1) * 4 > (uint64_t)m->cap * 3 &&
        imap_resize(m, m->cap ? m->cap * 2 : 4) < 0)
        return -1;
    uint32_t mask = m->cap - 1, j = imix(key) & mask;
    while (m->k[j] != 0)
        j = (j + 1) & mask;
    m->k[j] = key;
    m->v[j] = v;
    m->n++;
    return 0;
}

/* A sparse map shrinks (not while it is being iterated). */
static void imap_shrink(imap *m)
{
    if (m->cap > 16 && (uint64_t)m->n * 8 < m->cap)
        (void)imap_resize(m, m->cap / 4); /* on failure it stays larger: fine */
}

/* Remove key (backward-shift deletion: an entry after it may move into its
 * slot). shrink 0 while the map is iterated; a map left empty is freed. */
static void imap_del(imap *m, int64_t key, int shrink)
{
    int64_t s = imap_slot(m, key);
    if (s < 0)
        return;
    uint32_t mask = m->cap - 1, i = (uint32_t)s, j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (m->k[j] == 0)
            break;
        uint32_t h = imix(m->k[j]) & mask;
        /* move j back to i unless its home lies cyclically in (i, j] */
        if ((i <= j) ? (h <= i || h > j) : (h <= i && h > j)) {
            m->k[i] = m->k[j];
            m->v[i] = m->v[j];
            i = j;
        }
    }
    m->k[i] = 0;
    m->n--;
    if (m->n == 0)
        imap_free(m);
    else if (shrink)
        imap_shrink(m);
}

/* ---- state ------------------------------------------------------------------ */

typedef struct {
    int64_t id, viewers, peak, off, cat, hold_until;
    imap users;
    int dirty;
} agg_stream;

typedef struct {
    imap conns;
    int64_t live, tombs;
} share;

typedef struct {
    imap shares; /* stream -> share* */
} gw;

#define PTR(v) ((void *)(intptr_t)(v))
#define VAL(p) ((int64_t)(intptr_t)(p))
#define IS_TOMB(v) ((v) < 0)
#define TOMB(ts) (-1 - (ts))
#define TOMB_TS(v) (-1 - (v))

struct agg_part {
    int32_t partition;
    agg_rules_conf conf;
    int64_t applied, position;
    vc_liveness *lv;
    vc_sync_asm *sa;
    imap streams, gws;
    imap syncing; /* stream -> hold_until of the streams showing "syncing" */
    int64_t next_hold; /* smallest hold_until in syncing (INT64_MAX: none) */
    int64_t next_sweep; /* event time of the next tombstone sweep */
    agg_stream **dirty;
    size_t ndirty, cap_dirty;
    int all;
    size_t pending;
    agg_stats stats;
    vc_gateway_gone *gone; /* VC_LIVENESS_MAX scratch entries */
    imap snap;             /* scratch: a snapshot's conn -> user */
    char prefix[VC_KEY_MAX], meta[VC_KEY_MAX];

    /* the sealed call: argument bytes in buf, each arg (offset, length) */
    char *buf;
    size_t len, cap;
    const char **argv;
    size_t *argvlen, *argoff;
    size_t cap_argv;
    int64_t sealed_pos;
};

static void stream_free(agg_stream *s)
{
    imap_free(&s->users);
    free(s);
}

static void share_free(share *sh)
{
    imap_free(&sh->conns);
    free(sh);
}

static void gw_free(gw *g)
{
    for (uint32_t i = 0; i < g->shares.cap; i++)
        if (g->shares.k[i])
            share_free(PTR(g->shares.v[i]));
    imap_free(&g->shares);
    free(g);
}

static void state_free(agg_part *p)
{
    for (uint32_t i = 0; i < p->streams.cap; i++)
        if (p->streams.k[i])
            stream_free(PTR(p->streams.v[i]));
    imap_free(&p->streams);
    for (uint32_t i = 0; i < p->gws.cap; i++)
        if (p->gws.k[i])
            gw_free(PTR(p->gws.v[i]));
    imap_free(&p->gws);
    imap_free(&p->syncing);
}

static agg_part *part_alloc(int32_t partition, const agg_rules_conf *conf)
{
    agg_part *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->partition = partition;
    p->conf = *conf;
    if (p->conf.syncing_hold_ms <= 0)
        p->conf.syncing_hold_ms = AGG_SYNCING_HOLD_DEFAULT_MS;
    if (p->conf.tombstone_ttl_ms <= 0)
        p->conf.tombstone_ttl_ms = AGG_TOMBSTONE_TTL_DEFAULT_MS;
    p->applied = -1;
    p->position = -1;
    p->next_hold = INT64_MAX;
    p->next_sweep = INT64_MIN;
    vc_key_prefix(p->prefix, sizeof(p->prefix), partition);
    vc_key_meta(p->meta, sizeof(p->meta), partition);
    p->gone = malloc(VC_LIVENESS_MAX * sizeof(*p->gone));
    if (p->gone == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

agg_part *agg_part_new(int32_t partition, const agg_rules_conf *conf)
{
    char err[128];
    agg_part *p = part_alloc(partition, conf);
    if (p == NULL)
        return NULL;
    p->lv = vc_liveness_load(NULL, 0, conf->gateway_timeout_ms, err, sizeof(err));
    p->sa = vc_sync_asm_load(NULL, 0, conf->sync_max_viewers, conf->sync_max_age_ms, err, sizeof(err));
    if (p->lv == NULL || p->sa == NULL) {
        agg_part_destroy(p);
        return NULL;
    }
    return p;
}

void agg_part_destroy(agg_part *p)
{
    if (p == NULL)
        return;
    state_free(p);
    vc_liveness_destroy(p->lv);
    vc_sync_asm_destroy(p->sa);
    imap_free(&p->snap);
    free(p->gone);
    free(p->dirty);
    free(p->buf);
    free(p->argv);
    free(p->argvlen);
    free(p->argoff);
    free(p);
}

int32_t agg_part_partition(const agg_part *p) { return p->partition; }
int64_t agg_part_applied(const agg_part *p) { return p->applied; }
int64_t agg_part_position(const agg_part *p) { return p->position; }
size_t agg_part_pending(const agg_part *p) { return p->pending; }
size_t agg_part_dirty(const agg_part *p) { return p->all ? p->streams.n : p->ndirty; }
size_t agg_part_streams(const agg_part *p) { return p->streams.n; }

void agg_part_set_applied(agg_part *p, int64_t applied) { p->applied = applied; }
void agg_part_mark_all(agg_part *p) { p->all = 1; }

int agg_part_needs_write(const agg_part *p)
{
    return p->position >= p->applied && (p->position > p->applied || p->ndirty > 0 || p->all);
}

void agg_part_take_stats(agg_part *p, agg_stats *out)
{
    *out = p->stats;
    memset(&p->stats, 0, sizeof(p->stats));
}

static size_t count_shares(const agg_part *p, int what)
{
    size_t n = 0;
    for (uint32_t i = 0; i < p->gws.cap; i++) {
        if (!p->gws.k[i])
            continue;
        const gw *g = PTR(p->gws.v[i]);
        if (what == 0) {
            n += g->shares.n;
            continue;
        }
        for (uint32_t j = 0; j < g->shares.cap; j++)
            if (g->shares.k[j]) {
                const share *sh = PTR(g->shares.v[j]);
                n += (size_t)(what == 1 ? sh->live : sh->tombs);
            }
    }
    return n;
}

size_t agg_part_shares(const agg_part *p) { return count_shares(p, 0); }

size_t agg_part_memory(const agg_part *p)
{
    size_t n = sizeof(*p) + (size_t)p->streams.cap * 16 + (size_t)p->gws.cap * 16 + (size_t)p->syncing.cap * 16 +
               p->cap_dirty * sizeof(*p->dirty) + p->cap + p->cap_argv * (sizeof(char *) + 2 * sizeof(size_t));
    for (uint32_t i = 0; i < p->streams.cap; i++)
        if (p->streams.k[i]) {
            const agg_stream *s = PTR(p->streams.v[i]);
            n += sizeof(*s) + (size_t)s->users.cap * 16;
        }
    for (uint32_t i = 0; i < p->gws.cap; i++) {
        if (!p->gws.k[i])
            continue;
        const gw *g = PTR(p->gws.v[i]);
        n += sizeof(*g) + (size_t)g->shares.cap * 16;
        for (uint32_t j = 0; j < g->shares.cap; j++)
            if (g->shares.k[j]) {
                const share *sh = PTR(g->shares.v[j]);
                n += sizeof(*sh) + (size_t)sh->conns.cap * 16;
            }
    }
    return n;
}
size_t agg_part_connections(const agg_part *p) { return count_shares(p, 1); }
size_t agg_part_tombstones(const agg_part *p) { return count_shares(p, 2); }
size_t agg_part_gateways(const agg_part *p) { return p->gws.n; }

int agg_part_stream(const agg_part *p, int64_t stream_id, agg_stream_view *out)
{
    int64_t v;
    if (stream_id <= 0 || !imap_get(&p->streams, stream_id, &v))
        return 0;
    const agg_stream *s = PTR(v);
    out->viewers = s->viewers;
    out->peak = s->peak;
    out->offset = s->off;
    out->category = s->cat;
    out->syncing = s->hold_until != 0;
    return 1;
}

/* ---- applying ----------------------------------------------------------- */

static int mark_dirty(agg_part *p, agg_stream *s)
{
    if (s->dirty)
        return 0;
    if (p->ndirty == p->cap_dirty) {
        size_t cap = p->cap_dirty ? p->cap_dirty * 2 : 64;
        agg_stream **nd = realloc(p->dirty, cap * sizeof(*nd));
        if (nd == NULL)
            return -1;
        p->dirty = nd;
        p->cap_dirty = cap;
    }
    p->dirty[p->ndirty++] = s;
    s->dirty = 1;
    return 0;
}

static agg_stream *stream_get(agg_part *p, int64_t id, int create)
{
    int64_t v;
    if (imap_get(&p->streams, id, &v))
        return PTR(v);
    if (!create)
        return NULL;
    agg_stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->id = id;
    s->off = -1;
    if (imap_put(&p->streams, id, VAL(s)) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

static gw *gw_get(agg_part *p, uint32_t id, int create)
{
    int64_t v;
    if (imap_get(&p->gws, id, &v))
        return PTR(v);
    if (!create)
        return NULL;
    gw *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    if (imap_put(&p->gws, id, VAL(g)) < 0) {
        free(g);
        return NULL;
    }
    return g;
}

static share *share_get(agg_part *p, uint32_t gid, int64_t stream, int create)
{
    gw *g = gw_get(p, gid, create);
    int64_t v;
    if (g == NULL)
        return NULL;
    if (imap_get(&g->shares, stream, &v))
        return PTR(v);
    if (!create)
        return NULL;
    share *sh = calloc(1, sizeof(*sh));
    if (sh == NULL)
        return NULL;
    if (imap_put(&g->shares, stream, VAL(sh)) < 0) {
        free(sh);
        return NULL;
    }
    return sh;
}

/* Free the share of (gid, stream) when it holds nothing, and its gw when
 * that was its last share. */
static void share_release(agg_part *p, uint32_t gid, int64_t stream, share *sh, int shrink)
{
    if (sh->live > 0 || sh->tombs > 0)
        return;
    gw *g = gw_get(p, gid, 0);
    share_free(sh);
    if (g == NULL)
        return;
    imap_del(&g->shares, stream, shrink);
    if (g->shares.n == 0) {
        imap_del(&p->gws, gid, shrink);
        gw_free(g);
    }
}

/* One connection of user (0: anonymous) opens / closes on s. */
static int viewer_add(agg_stream *s, int64_t user)
{
    if (user > 0) {
        int64_t c = 0;
        imap_get(&s->users, user, &c);
        if (imap_put(&s->users, user, c + 1) < 0)
            return -1;
        if (c > 0)
            return 0;
    }
    s->viewers++;
    if (s->viewers > s->peak)
        s->peak = s->viewers;
    return 0;
}

static void viewer_del(agg_stream *s, int64_t user)
{
    if (user > 0) {
        int64_t c = 0;
        if (!imap_get(&s->users, user, &c))
            return; /* cannot happen: every held connection counted its user */
        if (c > 1) {
            (void)imap_put(&s->users, user, c - 1); /* existing key: cannot fail */
            return;
        }
        imap_del(&s->users, user, 1);
    }
    if (s->viewers > 0)
        s->viewers--;
}

/* The event at offset changed s. Events Redis already holds (a memory-only
 * replay) leave it clean: Redis has the same values. */
static int touch(agg_part *p, agg_stream *s, int64_t offset)
{
    s->off = offset;
    return offset > p->applied ? mark_dirty(p, s) : 0;
}

static int do_join(agg_part *p, const vc_event *ev, int64_t offset, uint32_t gid, int64_t category)
{
    agg_stream *s = stream_get(p, ev->stream_id, 1);
    share *sh = s ? share_get(p, gid, ev->stream_id, 1) : NULL;
    int64_t cur, user = ev->user_id > 0 ? ev->user_id : 0;
    if (sh == NULL)
        return -1;
    if (!imap_get(&sh->conns, ev->conn_id, &cur)) {
        if (imap_put(&sh->conns, ev->conn_id, user) < 0 || viewer_add(s, user) < 0)
            return -1;
        sh->live++;
    } else if (IS_TOMB(cur)) {
        /* its leave came first: the pair nets to nothing */
        imap_del(&sh->conns, ev->conn_id, 1);
        sh->tombs--;
        share_release(p, gid, ev->stream_id, sh, 1);
    }
    if (category > 0 && s->cat == 0) {
        s->cat = category;
        /* categories come from a cache, not the log: a replay may learn one
         * the first run did not have yet, so it is written in any case */
        if (mark_dirty(p, s) < 0)
            return -1;
    }
    return touch(p, s, offset);
}

static int do_leave(agg_part *p, const vc_event *ev, int64_t offset, uint32_t gid)
{
    agg_stream *s = stream_get(p, ev->stream_id, 1);
    share *sh = s ? share_get(p, gid, ev->stream_id, 1) : NULL;
    int64_t cur;
    if (sh == NULL)
        return -1;
    if (!imap_get(&sh->conns, ev->conn_id, &cur)) {
        if (imap_put(&sh->conns, ev->conn_id, TOMB(ev->ts_ms)) < 0) {
            share_release(p, gid, ev->stream_id, sh, 1);
            return -1;
        }
        sh->tombs++;
    } else if (!IS_TOMB(cur)) {
        imap_del(&sh->conns, ev->conn_id, 1);
        sh->live--;
        viewer_del(s, cur);
        share_release(p, gid, ev->stream_id, sh, 1);
    }
    return touch(p, s, offset);
}

/* Gateway epoch gid is gone: every connection it held leaves. */
static int do_expire(agg_part *p, uint32_t gid, int64_t offset, int counted)
{
    gw *g = gw_get(p, gid, 0);
    int rc = 0;
    if (g == NULL)
        return 0;
    for (uint32_t i = 0; i < g->shares.cap; i++) {
        if (!g->shares.k[i])
            continue;
        share *sh = PTR(g->shares.v[i]);
        agg_stream *s = stream_get(p, g->shares.k[i], 0);
        if (s == NULL)
            continue;
        for (uint32_t j = 0; j < sh->conns.cap; j++) {
            if (sh->conns.k[j] && !IS_TOMB(sh->conns.v[j])) {
                viewer_del(s, sh->conns.v[j]);
                if (counted)
                    p->stats.expired_viewers++;
            }
        }
        if (touch(p, s, offset) < 0)
            rc = -1;
    }
    imap_del(&p->gws, gid, 1);
    gw_free(g);
    return rc;
}

static void hold_set(agg_part *p, agg_stream *s, int64_t until)
{
    if (imap_put(&p->syncing, s->id, until) < 0)
        return; /* no memory for the index: the stream shows live at once */
    s->hold_until = until;
    if (until < p->next_hold)
        p->next_hold = until;
}

static int do_sync(agg_part *p, const vc_sync_snapshot *snap, int64_t offset, uint32_t gid, int counted)
{
    agg_stream *s = stream_get(p, snap->stream_id, 1);
    share *sh;
    int64_t held, added = 0, removed = 0, cur;
    if (s == NULL)
        return -1;
    imap_free(&p->snap);
    for (size_t i = 0; i < snap->nviewers; i++)
        if (imap_put(&p->snap, snap->viewers[i].conn_id,
                     snap->viewers[i].user_id > 0 ? snap->viewers[i].user_id : 0) < 0)
            return -1;
    sh = share_get(p, gid, snap->stream_id, 1);
    if (sh == NULL)
        return -1;
    held = sh->live;
    /* ghosts: held connections the snapshot does not list (or lists for another user) */
    for (uint32_t j = 0; j < sh->conns.cap;) {
        int64_t conn = sh->conns.k[j], user = sh->conns.v[j], want;
        if (conn && !IS_TOMB(user) && (!imap_get(&p->snap, conn, &want) || want != user)) {
            imap_del(&sh->conns, conn, 0); /* may move a later entry into j: look at j again */
            sh->live--;
            viewer_del(s, user);
            removed++;
            if (sh->conns.cap == 0)
                break;
            continue;
        }
        j++;
    }
    imap_shrink(&sh->conns);
    /* missing: listed connections the share does not hold */
    for (uint32_t i = 0; i < p->snap.cap; i++) {
        int64_t conn = p->snap.k[i], user = p->snap.v[i];
        if (conn == 0)
            continue;
        int known = imap_get(&sh->conns, conn, &cur);
        if (known && !IS_TOMB(cur))
            continue;
        if (imap_put(&sh->conns, conn, user) < 0 || viewer_add(s, user) < 0)
            return -1;
        if (known)
            sh->tombs--;
        sh->live++;
        added++;
    }
    share_release(p, gid, snap->stream_id, sh, 1);
    vc_drift_level tier = vc_drift_tier((size_t)held, (size_t)added, (size_t)removed);
    if (tier != VC_DRIFT_QUIET)
        hold_set(p, s, vc_liveness_clock(p->lv) + p->conf.syncing_hold_ms);
    if (counted) {
        p->stats.repairs[tier]++;
        p->stats.held += (uint64_t)held;
        p->stats.added += (uint64_t)added;
        p->stats.removed += (uint64_t)removed;
    }
    return touch(p, s, offset);
}

/* Streams whose "syncing" hold has passed in event time show "live" again. */
static int holds_expire(agg_part *p, int64_t clock, int64_t offset)
{
    int64_t next = INT64_MAX;
    int rc = 0;
    for (uint32_t i = 0; i < p->syncing.cap;) {
        int64_t id = p->syncing.k[i], until = p->syncing.v[i];
        if (id == 0 || until > clock) {
            if (id != 0 && until < next)
                next = until;
            i++;
            continue;
        }
        agg_stream *s = stream_get(p, id, 0);
        imap_del(&p->syncing, id, 0);
        if (s != NULL) {
            s->hold_until = 0;
            if (touch(p, s, offset) < 0)
                rc = -1;
        }
        if (p->syncing.cap == 0)
            break;
    }
    imap_shrink(&p->syncing);
    p->next_hold = next;
    return rc;
}

/* Unmatched leaves older than tombstone_ttl_ms in event time are forgotten. */
static void tombstones_sweep(agg_part *p, int64_t clock, int counted)
{
    int64_t limit = clock - p->conf.tombstone_ttl_ms;
    for (uint32_t gi = 0; gi < p->gws.cap;) {
        uint32_t gid = (uint32_t)p->gws.k[gi];
        if (gid == 0) {
            gi++;
            continue;
        }
        gw *g = PTR(p->gws.v[gi]);
        int gw_gone = 0;
        for (uint32_t si = 0; !gw_gone && si < g->shares.cap;) {
            int64_t stream = g->shares.k[si];
            share *sh = stream ? PTR(g->shares.v[si]) : NULL;
            if (sh == NULL || sh->tombs == 0) {
                si++;
                continue;
            }
            for (uint32_t j = 0; j < sh->conns.cap;) {
                int64_t conn = sh->conns.k[j], v = sh->conns.v[j];
                if (conn && IS_TOMB(v) && TOMB_TS(v) < limit) {
                    imap_del(&sh->conns, conn, 0);
                    sh->tombs--;
                    if (counted)
                        p->stats.tombstones_dropped++;
                    if (sh->conns.cap == 0)
                        break;
                    continue;
                }
                j++;
            }
            imap_shrink(&sh->conns);
            if (sh->live == 0 && sh->tombs == 0) {
                uint32_t before = g->shares.n;
                share_release(p, gid, stream, sh, 0);
                gw_gone = before == 1;
                continue; /* deletion moved entries: look at si again */
            }
            si++;
        }
        if (gw_gone)
            continue; /* the gw entry at gi was deleted: look at gi again */
        imap_shrink(&g->shares);
        gi++;
    }
    imap_shrink(&p->gws);
    p->next_sweep = clock + p->conf.tombstone_ttl_ms / 2;
}

agg_add_rc agg_part_add(agg_part *p, const vc_event *ev, int64_t offset, int64_t category)
{
    vc_liveness_verdict verdict;
    vc_sync_snapshot snap;
    agg_add_rc rc = AGG_ADD_NOOP;
    int ngone, done, counted, fail = 0;
    int64_t clock;

    if (offset <= p->position)
        return AGG_ADD_DUPLICATE;
    counted = offset > p->applied;
    ngone = vc_liveness_observe(p->lv, ev, &verdict, p->gone);
    for (int i = 0; i < ngone; i++) {
        fail |= do_expire(p, p->gone[i].id, offset, counted) < 0;
        vc_sync_asm_forget_gateway(p->sa, p->gone[i].gateway_id, p->gone[i].epoch);
        rc = AGG_ADD_PACKED;
    }
    p->position = offset;
    p->pending++;
    if (counted) {
        p->stats.events++;
        p->stats.gone += (uint64_t)ngone;
    } else {
        p->stats.replayed++;
    }
    if (verdict.stale) {
        if (counted)
            p->stats.stale++;
        if (ngone == 0)
            rc = AGG_ADD_STALE;
    } else {
        switch (ev->type) {
        case VC_EV_JOIN:
            fail |= do_join(p, ev, offset, verdict.id, category) < 0;
            rc = AGG_ADD_PACKED;
            break;
        case VC_EV_LEAVE:
            fail |= do_leave(p, ev, offset, verdict.id) < 0;
            rc = AGG_ADD_PACKED;
            break;
        case VC_EV_SYNC:
            done = vc_sync_asm_add(p->sa, ev, &snap);
            if (done < 0)
                fail = 1;
            if (done == 1) {
                fail |= do_sync(p, &snap, offset, verdict.id, counted) < 0;
                vc_sync_snapshot_free(&snap);
                rc = AGG_ADD_PACKED;
            }
            break;
        case VC_EV_HEARTBEAT:
            break;
        }
    }
    clock = vc_liveness_clock(p->lv);
    if (clock >= p->next_hold)
        fail |= holds_expire(p, clock, offset) < 0;
    if (clock >= p->next_sweep && clock != INT64_MIN) {
        if (p->next_sweep != INT64_MIN)
            tombstones_sweep(p, clock, counted);
        else
            p->next_sweep = clock + p->conf.tombstone_ttl_ms / 2;
    }
    /* An allocation failure leaves a state that no longer equals the events:
     * the caller must stop (and recover from a checkpoint and the log). */
    return fail ? AGG_ADD_NOMEM : rc;
}

int agg_part_add_category(agg_part *p, int64_t stream_id, int64_t category)
{
    agg_stream *s;
    if (category <= 0 || stream_id <= 0 || (s = stream_get(p, stream_id, 0)) == NULL || s->cat != 0)
        return 0;
    s->cat = category;
    return mark_dirty(p, s) < 0 ? 0 : 1;
}

agg_add_rc agg_part_skip(agg_part *p, int64_t offset)
{
    if (offset <= p->position)
        return AGG_ADD_DUPLICATE;
    p->position = offset;
    p->pending++;
    if (offset > p->applied)
        p->stats.events++;
    else
        p->stats.replayed++;
    return AGG_ADD_NOOP;
}

/* ---- sealing ------------------------------------------------------------ */

#define AGG_HEAD_ARGS 8 /* EVALSHA sha 1 meta prefix last expected nstreams */
#define ARGS_PER_STREAM 6

static int reserve(agg_part *p, size_t bytes, size_t args)
{
    if (p->len + bytes > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < p->len + bytes)
            cap *= 2;
        char *nb = realloc(p->buf, cap);
        if (nb == NULL)
            return -1;
        p->buf = nb;
        p->cap = cap;
    }
    if (args > p->cap_argv) {
        size_t cap = p->cap_argv ? p->cap_argv : 256;
        while (cap < args)
            cap *= 2;
        const char **na = realloc(p->argv, cap * sizeof(*na));
        if (na == NULL)
            return -1;
        p->argv = na;
        size_t *nl = realloc(p->argvlen, cap * sizeof(*nl));
        if (nl == NULL)
            return -1;
        p->argvlen = nl;
        size_t *no = realloc(p->argoff, cap * sizeof(*no));
        if (no == NULL)
            return -1;
        p->argoff = no;
        p->cap_argv = cap;
    }
    return 0;
}

static void put_arg(agg_part *p, size_t *n, const char *s, size_t len)
{
    memcpy(p->buf + p->len, s, len);
    p->argoff[*n] = p->len;
    p->argvlen[(*n)++] = len;
    p->len += len;
}

/* decimal of v, fast path for the common small values */
static void put_i64(agg_part *p, size_t *n, int64_t v)
{
    char tmp[24], *e = tmp + sizeof(tmp), *q = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--q = '-';
    put_arg(p, n, q, (size_t)(e - q));
}

static void put_stream(agg_part *p, size_t *n, const agg_stream *s)
{
    put_i64(p, n, s->id);
    put_i64(p, n, s->viewers);
    put_i64(p, n, s->peak);
    if (s->hold_until)
        put_arg(p, n, "syncing", 7);
    else
        put_arg(p, n, "live", 4);
    put_i64(p, n, s->off);
    if (s->cat > 0)
        put_i64(p, n, s->cat);
    else
        put_arg(p, n, "", 0);
}

int agg_part_seal(agg_part *p, const char *sha, int *argc, const char ***argv, const size_t **argvlen)
{
    size_t nstreams = p->all ? p->streams.n : p->ndirty, n = 4;
    int writes = agg_part_needs_write(p);
    int64_t last = writes ? p->position : p->applied;

    if (!writes)
        nstreams = 0;
    p->len = 0;
    if (reserve(p, 64 + nstreams * (ARGS_PER_STREAM * 21 + 8), AGG_HEAD_ARGS + nstreams * ARGS_PER_STREAM) < 0)
        return -1;
    put_arg(p, &n, p->prefix, strlen(p->prefix));
    put_i64(p, &n, last);
    put_i64(p, &n, p->applied);
    put_i64(p, &n, (int64_t)nstreams);
    if (nstreams > 0 && p->all) {
        for (uint32_t i = 0; i < p->streams.cap; i++)
            if (p->streams.k[i])
                put_stream(p, &n, PTR(p->streams.v[i]));
    } else if (nstreams > 0) {
        for (size_t i = 0; i < p->ndirty; i++)
            put_stream(p, &n, p->dirty[i]);
    }
    for (size_t i = 4; i < n; i++)
        p->argv[i] = p->buf + p->argoff[i];
    p->argv[0] = sha ? "EVALSHA" : "EVAL";
    p->argv[1] = sha ? sha : agg_apply_script;
    p->argv[2] = "1";
    p->argv[3] = p->meta;
    for (int i = 0; i < 4; i++)
        p->argvlen[i] = strlen(p->argv[i]);
    p->sealed_pos = last;
    *argc = (int)n;
    *argv = p->argv;
    *argvlen = p->argvlen;
    return 0;
}

void agg_part_confirm(agg_part *p)
{
    if (p->sealed_pos >= p->applied) {
        p->applied = p->sealed_pos;
        for (size_t i = 0; i < p->ndirty; i++)
            p->dirty[i]->dirty = 0;
        p->ndirty = 0;
        p->all = 0;
    }
    p->pending = 0;
}

int agg_part_commit(agg_part *p, const redisReply *reply, int64_t *stored, char *errstr, size_t errstr_size)
{
    if (reply == NULL) {
        snprintf(errstr, errstr_size, "no reply");
        return -1;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "%.*s", (int)reply->len, reply->str);
        return -1;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER) {
        snprintf(errstr, errstr_size, "apply script: unexpected reply");
        return -1;
    }
    if (reply->element[0]->integer == 1) {
        if (reply->elements != 2 || reply->element[1]->type != REDIS_REPLY_INTEGER) {
            snprintf(errstr, errstr_size, "apply script: unexpected gap reply");
            return -1;
        }
        *stored = reply->element[1]->integer;
        return 1;
    }
    if (reply->element[0]->integer != 0) {
        snprintf(errstr, errstr_size, "apply script: unexpected reply code");
        return -1;
    }
    agg_part_confirm(p);
    *stored = p->applied;
    return 0;
}

/* ---- checkpoints ------------------------------------------------------- */

#define SAVE_MAGIC "VCS2"

typedef struct {
    uint8_t *b;
    size_t len, cap;
    int err;
} wbuf;

static void w_need(wbuf *w, size_t n)
{
    if (w->err || w->len + n <= w->cap)
        return;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->len + n)
        cap *= 2;
    uint8_t *nb = realloc(w->b, cap);
    if (nb == NULL) {
        w->err = 1;
        return;
    }
    w->b = nb;
    w->cap = cap;
}

static void w_u32(wbuf *w, uint32_t v)
{
    w_need(w, 4);
    if (w->err)
        return;
    for (int i = 0; i < 4; i++)
        w->b[w->len++] = (uint8_t)(v >> (8 * i));
}

static void w_i64(wbuf *w, int64_t v)
{
    w_need(w, 8);
    if (w->err)
        return;
    for (int i = 0; i < 8; i++)
        w->b[w->len++] = (uint8_t)((uint64_t)v >> (8 * i));
}

static void w_bytes(wbuf *w, const void *s, size_t n)
{
    w_need(w, n);
    if (w->err)
        return;
    memcpy(w->b + w->len, s, n);
    w->len += n;
}

int agg_part_save(const agg_part *p, uint8_t **out, size_t *len)
{
    wbuf w = {0};
    size_t lv_len = vc_liveness_save(p->lv, NULL, 0), sa_len = vc_sync_asm_save(p->sa, NULL, 0);

    w_bytes(&w, SAVE_MAGIC, 4);
    w_i64(&w, p->position);
    w_u32(&w, (uint32_t)lv_len);
    w_need(&w, lv_len);
    if (!w.err) {
        vc_liveness_save(p->lv, w.b + w.len, lv_len);
        w.len += lv_len;
    }
    w_u32(&w, (uint32_t)sa_len);
    w_need(&w, sa_len);
    if (!w.err) {
        vc_sync_asm_save(p->sa, w.b + w.len, sa_len);
        w.len += sa_len;
    }
    w_i64(&w, p->next_sweep);
    w_u32(&w, p->streams.n);
    for (uint32_t i = 0; i < p->streams.cap; i++) {
        if (!p->streams.k[i])
            continue;
        const agg_stream *s = PTR(p->streams.v[i]);
        w_i64(&w, s->id);
        w_i64(&w, s->viewers);
        w_i64(&w, s->peak);
        w_i64(&w, s->off);
        w_i64(&w, s->cat);
        w_i64(&w, s->hold_until);
        w_u32(&w, s->users.n);
        for (uint32_t j = 0; j < s->users.cap; j++)
            if (s->users.k[j]) {
                w_i64(&w, s->users.k[j]);
                w_i64(&w, s->users.v[j]);
            }
    }
    w_u32(&w, p->gws.n);
    for (uint32_t i = 0; i < p->gws.cap; i++) {
        if (!p->gws.k[i])
            continue;
        const gw *g = PTR(p->gws.v[i]);
        w_u32(&w, (uint32_t)p->gws.k[i]);
        w_u32(&w, g->shares.n);
        for (uint32_t j = 0; j < g->shares.cap; j++) {
            if (!g->shares.k[j])
                continue;
            const share *sh = PTR(g->shares.v[j]);
            w_i64(&w, g->shares.k[j]);
            w_u32(&w, sh->conns.n);
            for (uint32_t c = 0; c < sh->conns.cap; c++)
                if (sh->conns.k[c]) {
                    w_i64(&w, sh->conns.k[c]);
                    w_i64(&w, sh->conns.v[c]);
                }
        }
    }
    if (w.err) {
        free(w.b);
        return -1;
    }
    *out = w.b;
    *len = w.len;
    return 0;
}

typedef struct {
    const uint8_t *b;
    size_t len, pos;
    int err;
} rbuf;

static uint32_t r_u32(rbuf *r)
{
    uint32_t v = 0;
    if (r->err || r->len - r->pos < 4) {
        r->err = 1;
        return 0;
    }
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | r->b[r->pos + (size_t)i];
    r->pos += 4;
    return v;
}

static int64_t r_i64(rbuf *r)
{
    uint64_t v = 0;
    if (r->err || r->len - r->pos < 8) {
        r->err = 1;
        return 0;
    }
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | r->b[r->pos + (size_t)i];
    r->pos += 8;
    return (int64_t)v;
}

static const uint8_t *r_bytes(rbuf *r, size_t n)
{
    if (r->err || r->len - r->pos < n) {
        r->err = 1;
        return NULL;
    }
    const uint8_t *s = r->b + r->pos;
    r->pos += n;
    return s;
}

#define LOAD_FAIL(...)                                   \
    do {                                                 \
        snprintf(errstr, errstr_size, __VA_ARGS__);      \
        goto fail;                                       \
    } while (0)

agg_part *agg_part_load(int32_t partition, const agg_rules_conf *conf, const uint8_t *buf, size_t len,
                        char *errstr, size_t errstr_size)
{
    rbuf r = {buf, len, 0, 0};
    agg_part *p = part_alloc(partition, conf);
    const uint8_t *magic, *lv, *sa;
    uint32_t n, lv_len, sa_len;

    if (p == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    magic = r_bytes(&r, 4);
    if (magic == NULL || memcmp(magic, SAVE_MAGIC, 4) != 0)
        LOAD_FAIL("not a partition state (magic)");
    p->position = r_i64(&r);
    lv_len = r_u32(&r);
    lv = r_bytes(&r, lv_len);
    if (r.err)
        LOAD_FAIL("truncated state");
    p->lv = vc_liveness_load(lv, lv_len, conf->gateway_timeout_ms, errstr, errstr_size);
    if (p->lv == NULL)
        goto fail;
    sa_len = r_u32(&r);
    sa = r_bytes(&r, sa_len);
    if (r.err)
        LOAD_FAIL("truncated state");
    p->sa = vc_sync_asm_load(sa, sa_len, conf->sync_max_viewers, conf->sync_max_age_ms, errstr, errstr_size);
    if (p->sa == NULL)
        goto fail;
    p->next_sweep = r_i64(&r);
    n = r_u32(&r);
    for (uint32_t i = 0; i < n && !r.err; i++) {
        int64_t id = r_i64(&r);
        if (id <= 0 || r.err || stream_get(p, id, 0) != NULL)
            LOAD_FAIL("bad stream record");
        agg_stream *s = stream_get(p, id, 1);
        if (s == NULL)
            LOAD_FAIL("out of memory");
        s->viewers = r_i64(&r);
        s->peak = r_i64(&r);
        s->off = r_i64(&r);
        s->cat = r_i64(&r);
        s->hold_until = r_i64(&r);
        uint32_t nu = r_u32(&r);
        if (r.err || (size_t)nu > (r.len - r.pos) / 16)
            LOAD_FAIL("truncated state");
        for (uint32_t j = 0; j < nu; j++) {
            int64_t user = r_i64(&r), c = r_i64(&r);
            if (user <= 0 || c <= 0)
                LOAD_FAIL("bad user record");
            if (imap_put(&s->users, user, c) < 0)
                LOAD_FAIL("out of memory");
        }
        if (s->hold_until != 0)
            hold_set(p, s, s->hold_until);
    }
    n = r_u32(&r);
    for (uint32_t i = 0; i < n && !r.err; i++) {
        uint32_t gid = r_u32(&r), ns = r_u32(&r);
        if (r.err || gid == 0 || gw_get(p, gid, 0) != NULL)
            LOAD_FAIL("bad gateway record");
        for (uint32_t j = 0; j < ns && !r.err; j++) {
            int64_t stream = r_i64(&r);
            uint32_t nc = r_u32(&r);
            if (r.err || stream <= 0 || (size_t)nc > (r.len - r.pos) / 16 || nc == 0)
                LOAD_FAIL("bad share record");
            share *sh = share_get(p, gid, stream, 1);
            if (sh == NULL)
                LOAD_FAIL("out of memory");
            if (sh->live || sh->tombs)
                LOAD_FAIL("duplicate share record");
            for (uint32_t c = 0; c < nc; c++) {
                int64_t conn = r_i64(&r), v = r_i64(&r);
                if (conn <= 0)
                    LOAD_FAIL("bad connection record");
                if (imap_put(&sh->conns, conn, v) < 0)
                    LOAD_FAIL("out of memory");
                if (IS_TOMB(v))
                    sh->tombs++;
                else
                    sh->live++;
            }
        }
    }
    if (r.err)
        LOAD_FAIL("truncated state");
    if (r.pos != r.len)
        LOAD_FAIL("trailing bytes after the state");
    return p;
fail:
    agg_part_destroy(p);
    return NULL;
}
