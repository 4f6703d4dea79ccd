/* vc_rules.c -- gateway liveness, sync snapshot assembly and drift tiers in
 * event time (see vc_rules.h). */
#include "vc_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- little-endian (de)serialisation helpers --------------------------- */

typedef struct {
    uint8_t *buf;
    size_t size, len; /* len counts every byte, written or not */
} wbuf;

static void w_bytes(wbuf *w, const void *p, size_t n)
{
    if (w->len + n <= w->size)
        memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void w_u64(wbuf *w, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    w_bytes(w, b, 8);
}

static void w_u32(wbuf *w, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    w_bytes(w, b, 4);
}

static void w_u8(wbuf *w, uint8_t v) { w_bytes(w, &v, 1); }

typedef struct {
    const uint8_t *buf;
    size_t len, pos;
    int err;
} rbuf;

static const uint8_t *r_bytes(rbuf *r, size_t n)
{
    const uint8_t *p;
    if (r->err || r->len - r->pos < n) {
        r->err = 1;
        return NULL;
    }
    p = r->buf + r->pos;
    r->pos += n;
    return p;
}

static uint64_t r_u64(rbuf *r)
{
    const uint8_t *b = r_bytes(r, 8);
    uint64_t v = 0;
    if (b == NULL)
        return 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

static uint32_t r_u32(rbuf *r)
{
    const uint8_t *b = r_bytes(r, 4);
    uint32_t v = 0;
    if (b == NULL)
        return 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

static uint8_t r_u8(rbuf *r)
{
    const uint8_t *b = r_bytes(r, 1);
    return b ? b[0] : 0;
}

/* Reads a length-prefixed gateway id into out (VC_GATEWAY_ID_MAX + 1 bytes). */
static void r_gateway_id(rbuf *r, char *out)
{
    uint8_t n = r_u8(r);
    const uint8_t *p;
    if (n > VC_GATEWAY_ID_MAX) {
        r->err = 1;
        return;
    }
    p = r_bytes(r, n);
    if (p == NULL)
        return;
    memcpy(out, p, n);
    out[n] = '\0';
}

static void w_gateway_id(wbuf *w, const char *id)
{
    size_t n = strnlen(id, VC_GATEWAY_ID_MAX);
    w_u8(w, (uint8_t)n);
    w_bytes(w, id, n);
}

static void set_err(char *errstr, size_t size, const char *msg)
{
    if (errstr != NULL && size > 0)
        snprintf(errstr, size, "%s", msg);
}

/* ---- gateway liveness --------------------------------------------------- */

enum { LV_ALIVE = 0, LV_EXPIRED = 1 };

typedef struct {
    char gateway_id[VC_GATEWAY_ID_MAX + 1];
    int64_t epoch;      /* the newest epoch seen of gateway_id */
    int64_t last_seen;  /* on the live clock */
    int64_t hb_ts;      /* ts of this epoch's newest heartbeat; INT64_MIN: none yet */
    int64_t period;     /* this epoch's last heartbeat-to-heartbeat gap; 0: unknown */
    uint32_t id;
    uint8_t state;
} lv_entry;

struct vc_liveness {
    int64_t timeout_ms;
    int64_t clock;          /* max ts_ms of any event; INT64_MIN before any */
    int64_t live;           /* the live clock (see vc_rules.h) */
    int64_t hb_max;         /* max ts_ms of the heartbeats (the first event's ts at first) */
    int64_t min_alive_seen; /* lower bound of last_seen over alive entries */
    uint32_t next_id;
    size_t n;
    lv_entry entries[VC_LIVENESS_MAX];
};

#define LV_MAGIC_V1 "VCL1" /* clock, entries (id, epoch, last_seen in ts, state) */
#define LV_MAGIC "VCL2"    /* + live, hb_max; entries + hb_ts, period; last_seen on the live clock */
/* Expired entries are remembered (so a late event of an older epoch stays
 * stale) for this many timeouts of the live clock, then forgotten. */
#define LV_FORGET_FACTOR 10

const char *vc_gone_reason_name(vc_gone_reason reason)
{
    switch (reason) {
    case VC_GONE_LOST: return "gateway lost";
    case VC_GONE_RESTARTED: return "gateway restarted";
    }
    return "unknown";
}

vc_liveness *vc_liveness_new(int64_t timeout_ms)
{
    vc_liveness *lv;
    if (timeout_ms <= 0)
        return NULL;
    lv = calloc(1, sizeof(*lv));
    if (lv == NULL)
        return NULL;
    lv->timeout_ms = timeout_ms;
    lv->clock = INT64_MIN;
    lv->live = INT64_MIN;
    lv->hb_max = INT64_MIN;
    lv->min_alive_seen = INT64_MAX;
    lv->next_id = 1;
    return lv;
}

void vc_liveness_destroy(vc_liveness *lv)
{
    free(lv);
}

int64_t vc_liveness_clock(const vc_liveness *lv) { return lv->clock; }
int64_t vc_liveness_live_clock(const vc_liveness *lv) { return lv->live; }

size_t vc_liveness_alive(const vc_liveness *lv)
{
    size_t alive = 0;
    for (size_t i = 0; i < lv->n; i++)
        alive += lv->entries[i].state == LV_ALIVE;
    return alive;
}

static void gone_fill(vc_gateway_gone *g, const lv_entry *e, vc_gone_reason reason)
{
    memcpy(g->gateway_id, e->gateway_id, sizeof(g->gateway_id));
    g->epoch = e->epoch;
    g->id = e->id;
    g->reason = reason;
}

/* clock - ms without overflow. */
static int64_t lv_behind(int64_t clock, int64_t ms)
{
    return clock < INT64_MIN + ms ? INT64_MIN : clock - ms;
}

/* a + b for b >= 0, saturating. */
static int64_t lv_ahead(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* How much of a heartbeat gap one heartbeat of e may count: 1.5 times e's
 * own last heartbeat period, or all of it while e's period is unknown. */
static int64_t lv_allowed(const lv_entry *e)
{
    if (e == NULL || e->period <= 0)
        return INT64_MAX;
    return e->period > INT64_MAX / 2 ? INT64_MAX : e->period + e->period / 2;
}

/* Expire alive entries that fell behind the live clock and forget
 * long-expired ones; recomputes min_alive_seen. Returns the number written
 * to gone. */
static int lv_expire(vc_liveness *lv, vc_gateway_gone *gone)
{
    int ngone = 0;
    size_t i = 0;
    int64_t expire_before = lv_behind(lv->live, lv->timeout_ms);
    int64_t forget_before = lv_behind(lv->live, lv->timeout_ms > INT64_MAX / LV_FORGET_FACTOR
                                                    ? INT64_MAX
                                                    : lv->timeout_ms * LV_FORGET_FACTOR);

    lv->min_alive_seen = INT64_MAX;
    while (i < lv->n) {
        lv_entry *e = &lv->entries[i];
        if (e->state == LV_ALIVE && e->last_seen < expire_before) {
            e->state = LV_EXPIRED;
            gone_fill(&gone[ngone++], e, VC_GONE_LOST);
        }
        if (e->state == LV_EXPIRED && e->last_seen < forget_before) {
            lv->entries[i] = lv->entries[--lv->n]; /* order does not matter */
            continue;
        }
        if (e->state == LV_ALIVE && e->last_seen < lv->min_alive_seen)
            lv->min_alive_seen = e->last_seen;
        i++;
    }
    return ngone;
}

int vc_liveness_observe(vc_liveness *lv, const vc_event *ev, vc_liveness_verdict *verdict,
                        vc_gateway_gone *gone)
{
    lv_entry *e = NULL;
    int ngone = 0, stale = 0, same_epoch;
    int64_t seen;
    size_t i;

    if (lv->clock == INT64_MIN) { /* the first event starts every clock */
        lv->clock = ev->ts_ms;
        lv->live = ev->ts_ms;
        lv->hb_max = ev->ts_ms;
    } else if (ev->ts_ms > lv->clock) {
        lv->clock = ev->ts_ms;
    }

    for (i = 0; i < lv->n; i++) {
        if (strcmp(lv->entries[i].gateway_id, ev->gateway_id) == 0) {
            e = &lv->entries[i];
            break;
        }
    }
    if (e != NULL && ev->gateway_epoch < e->epoch)
        stale = 1; /* a superseded epoch: no sign of life, no tick */
    else if (e == NULL && lv->n == VC_LIVENESS_MAX)
        stale = 1; /* no room for a new gateway (unless the expiry below makes some) */
    same_epoch = e != NULL && ev->gateway_epoch == e->epoch;

    /* A heartbeat newer than every earlier one ticks the live clock by the
     * gap since that one, but by at most 1.5 of its gateway's own period: a
     * longer gap is time in which no gateway's heartbeat reached the
     * partition, and silence measured across it proves nothing. */
    if (ev->type == VC_EV_HEARTBEAT && ev->ts_ms > lv->hb_max && (!stale || e == NULL)) {
        int64_t gap = ev->ts_ms - lv->hb_max;
        int64_t allowed = same_epoch ? lv_allowed(e) : INT64_MAX;
        lv->live = lv_ahead(lv->live, gap < allowed ? gap : allowed);
        lv->hb_max = ev->ts_ms;
    }
    if (lv->min_alive_seen < lv_behind(lv->live, lv->timeout_ms) || lv->n == VC_LIVENESS_MAX) {
        ngone = lv_expire(lv, gone);
        if (e != NULL) { /* lv_expire may have moved or forgotten entries */
            e = NULL;
            for (i = 0; i < lv->n; i++) {
                if (strcmp(lv->entries[i].gateway_id, ev->gateway_id) == 0) {
                    e = &lv->entries[i];
                    break;
                }
            }
            if (e == NULL)
                stale = 0; /* forgotten: seen afresh below */
            same_epoch = e != NULL && ev->gateway_epoch == e->epoch;
        }
        if (e == NULL && lv->n < VC_LIVENESS_MAX)
            stale = 0;
    }
    if (stale) {
        verdict->stale = 1;
        verdict->id = 0;
        return ngone;
    }

    /* The event is a sign of life where it stands in the log: on the live
     * clock now, plus how far its own ts is past the newest heartbeat (a join
     * between two heartbeats), at most what a heartbeat of it could add. */
    seen = lv->live;
    if (ev->ts_ms > lv->hb_max) {
        int64_t ahead = ev->ts_ms - lv->hb_max;
        int64_t allowed = same_epoch ? lv_allowed(e) : INT64_MAX;
        if (allowed > lv->timeout_ms)
            allowed = lv->timeout_ms;
        seen = lv_ahead(seen, ahead < allowed ? ahead : allowed);
    }

    if (e != NULL && ev->gateway_epoch > e->epoch) {
        if (e->state == LV_ALIVE)
            gone_fill(&gone[ngone++], e, VC_GONE_RESTARTED);
        e->epoch = ev->gateway_epoch;
        e->id = lv->next_id++;
        e->last_seen = seen;
        e->hb_ts = INT64_MIN;
        e->period = 0;
        e->state = LV_ALIVE;
    } else if (e == NULL) {
        e = &lv->entries[lv->n++];
        memset(e, 0, sizeof(*e));
        snprintf(e->gateway_id, sizeof(e->gateway_id), "%s", ev->gateway_id);
        e->epoch = ev->gateway_epoch;
        e->id = lv->next_id++;
        e->last_seen = seen;
        e->hb_ts = INT64_MIN;
        e->period = 0;
        e->state = LV_ALIVE;
    } else {
        if (seen > e->last_seen)
            e->last_seen = seen;
        e->state = LV_ALIVE;
    }
    if (ev->type == VC_EV_HEARTBEAT && ev->ts_ms > e->hb_ts) {
        if (e->hb_ts != INT64_MIN)
            e->period = ev->ts_ms - e->hb_ts;
        e->hb_ts = ev->ts_ms;
    }
    if (e->last_seen < lv->min_alive_seen)
        lv->min_alive_seen = e->last_seen;
    verdict->stale = 0;
    verdict->id = e->id;
    return ngone;
}

size_t vc_liveness_save(const vc_liveness *lv, uint8_t *buf, size_t size)
{
    wbuf w = {buf, size, 0};
    w_bytes(&w, LV_MAGIC, 4);
    w_u64(&w, (uint64_t)lv->timeout_ms);
    w_u64(&w, (uint64_t)lv->clock);
    w_u64(&w, (uint64_t)lv->live);
    w_u64(&w, (uint64_t)lv->hb_max);
    w_u32(&w, lv->next_id);
    w_u32(&w, (uint32_t)lv->n);
    for (size_t i = 0; i < lv->n; i++) {
        const lv_entry *e = &lv->entries[i];
        w_gateway_id(&w, e->gateway_id);
        w_u64(&w, (uint64_t)e->epoch);
        w_u64(&w, (uint64_t)e->last_seen);
        w_u64(&w, (uint64_t)e->hb_ts);
        w_u64(&w, (uint64_t)e->period);
        w_u32(&w, e->id);
        w_u8(&w, e->state);
    }
    return w.len;
}

vc_liveness *vc_liveness_load(const uint8_t *buf, size_t len, int64_t timeout_ms,
                              char *errstr, size_t errstr_size)
{
    rbuf r = {buf, len, 0, 0};
    vc_liveness *lv = vc_liveness_new(timeout_ms);
    const uint8_t *magic;
    uint32_t n;
    int v1;

    if (lv == NULL) {
        set_err(errstr, errstr_size, "out of memory or timeout <= 0");
        return NULL;
    }
    if (len == 0)
        return lv;
    magic = r_bytes(&r, 4);
    if (magic == NULL || (memcmp(magic, LV_MAGIC, 4) != 0 && memcmp(magic, LV_MAGIC_V1, 4) != 0)) {
        set_err(errstr, errstr_size, "liveness state: bad magic");
        goto fail;
    }
    /* A version 1 state (saved before the live clock existed) measured
     * silence on the event-time clock: it continues with the live clock at
     * that clock and every period unknown, so it decides as before until the
     * heartbeats have taught the periods again. */
    v1 = memcmp(magic, LV_MAGIC_V1, 4) == 0;
    (void)r_u64(&r); /* the saved timeout: the configured one wins */
    lv->clock = (int64_t)r_u64(&r);
    if (v1) {
        lv->live = lv->clock;
        lv->hb_max = lv->clock;
    } else {
        lv->live = (int64_t)r_u64(&r);
        lv->hb_max = (int64_t)r_u64(&r);
    }
    lv->next_id = r_u32(&r);
    n = r_u32(&r);
    if (r.err || n > VC_LIVENESS_MAX || lv->next_id == 0 ||
        ((lv->clock == INT64_MIN) != (lv->live == INT64_MIN)) ||
        ((lv->clock == INT64_MIN) != (lv->hb_max == INT64_MIN)) || lv->hb_max > lv->clock) {
        set_err(errstr, errstr_size, "liveness state: bad header");
        goto fail;
    }
    for (uint32_t i = 0; i < n; i++) {
        lv_entry *e = &lv->entries[i];
        r_gateway_id(&r, e->gateway_id);
        e->epoch = (int64_t)r_u64(&r);
        e->last_seen = (int64_t)r_u64(&r);
        if (v1) {
            e->hb_ts = INT64_MIN;
            e->period = 0;
        } else {
            e->hb_ts = (int64_t)r_u64(&r);
            e->period = (int64_t)r_u64(&r);
        }
        e->id = r_u32(&r);
        e->state = r_u8(&r);
        if (r.err || e->state > LV_EXPIRED || e->id == 0 || e->id >= lv->next_id || e->period < 0) {
            set_err(errstr, errstr_size, "liveness state: bad entry");
            goto fail;
        }
        if (e->state == LV_ALIVE && e->last_seen < lv->min_alive_seen)
            lv->min_alive_seen = e->last_seen;
    }
    lv->n = n;
    if (r.pos != len) {
        set_err(errstr, errstr_size, "liveness state: trailing bytes");
        goto fail;
    }
    return lv;
fail:
    vc_liveness_destroy(lv);
    return NULL;
}

/* ---- sync snapshot assembly -------------------------------------------- */

typedef struct {
    char gateway_id[VC_GATEWAY_ID_MAX + 1];
    int64_t epoch, stream_id, snapshot_id, first_ts;
    int32_t chunks, next_chunk;
    size_t n, cap;
    vc_sync_viewer *viewers;
} sa_entry;

struct vc_sync_asm {
    size_t max_viewers, buffered;
    int64_t max_age_ms, clock;
    uint64_t dropped;
    size_t n, cap;
    sa_entry *entries;
};

#define SA_MAGIC "VCS1"

void vc_sync_snapshot_free(vc_sync_snapshot *snap)
{
    if (snap == NULL)
        return;
    free(snap->viewers);
    snap->viewers = NULL;
    snap->nviewers = 0;
}

vc_sync_asm *vc_sync_asm_new(size_t max_viewers, int64_t max_age_ms)
{
    vc_sync_asm *sa;
    if (max_viewers == 0 || max_age_ms <= 0)
        return NULL;
    sa = calloc(1, sizeof(*sa));
    if (sa == NULL)
        return NULL;
    sa->max_viewers = max_viewers;
    sa->max_age_ms = max_age_ms;
    sa->clock = INT64_MIN;
    return sa;
}

void vc_sync_asm_destroy(vc_sync_asm *sa)
{
    if (sa == NULL)
        return;
    for (size_t i = 0; i < sa->n; i++)
        free(sa->entries[i].viewers);
    free(sa->entries);
    free(sa);
}

size_t vc_sync_asm_pending(const vc_sync_asm *sa) { return sa->n; }
uint64_t vc_sync_asm_dropped(const vc_sync_asm *sa) { return sa->dropped; }

static void sa_remove(vc_sync_asm *sa, size_t i)
{
    sa->buffered -= sa->entries[i].n;
    free(sa->entries[i].viewers);
    sa->entries[i] = sa->entries[--sa->n];
}

void vc_sync_asm_forget_gateway(vc_sync_asm *sa, const char *gateway_id, int64_t epoch)
{
    size_t i = 0;
    while (i < sa->n) {
        if (sa->entries[i].epoch == epoch && strcmp(sa->entries[i].gateway_id, gateway_id) == 0)
            sa_remove(sa, i);
        else
            i++;
    }
}

static int sa_append(sa_entry *e, const vc_sync_viewer *v, size_t n)
{
    if (e->n + n > e->cap) {
        size_t cap = e->cap ? e->cap : 64;
        vc_sync_viewer *nv;
        while (cap < e->n + n)
            cap *= 2;
        nv = realloc(e->viewers, cap * sizeof(*nv));
        if (nv == NULL)
            return -1;
        e->viewers = nv;
        e->cap = cap;
    }
    if (n > 0)
        memcpy(e->viewers + e->n, v, n * sizeof(*v));
    e->n += n;
    return 0;
}

int vc_sync_asm_add(vc_sync_asm *sa, const vc_event *ev, vc_sync_snapshot *out)
{
    sa_entry *e = NULL;
    size_t i;

    if (ev->type != VC_EV_SYNC)
        return 0;
    if (sa->clock == INT64_MIN || ev->ts_ms > sa->clock)
        sa->clock = ev->ts_ms;
    i = 0;
    while (i < sa->n) { /* age bound */
        if (sa->entries[i].first_ts < lv_behind(sa->clock, sa->max_age_ms)) {
            sa->dropped++;
            sa_remove(sa, i);
        } else {
            i++;
        }
    }
    for (i = 0; i < sa->n; i++) {
        sa_entry *c = &sa->entries[i];
        if (c->stream_id == ev->stream_id && c->epoch == ev->gateway_epoch &&
            strcmp(c->gateway_id, ev->gateway_id) == 0) {
            e = c;
            break;
        }
    }

    if (ev->chunk == 0 && ev->chunks == 1) { /* the common case: no buffering */
        if (e != NULL) {
            sa->dropped++;
            sa_remove(sa, i);
        }
        memset(out, 0, sizeof(*out));
        if (ev->nviewers > 0) {
            out->viewers = malloc(ev->nviewers * sizeof(*out->viewers));
            if (out->viewers == NULL)
                return -1;
            memcpy(out->viewers, ev->viewers, ev->nviewers * sizeof(*out->viewers));
        }
        out->nviewers = ev->nviewers;
        goto fill;
    }

    if (ev->chunk == 0) {
        if (e != NULL) { /* superseded by a new snapshot */
            sa->dropped++;
            sa_remove(sa, i);
        }
        if (sa->n == sa->cap) {
            size_t cap = sa->cap ? sa->cap * 2 : 8;
            sa_entry *ne = realloc(sa->entries, cap * sizeof(*ne));
            if (ne == NULL)
                return -1;
            sa->entries = ne;
            sa->cap = cap;
        }
        i = sa->n;
        e = &sa->entries[sa->n++];
        memset(e, 0, sizeof(*e));
        snprintf(e->gateway_id, sizeof(e->gateway_id), "%s", ev->gateway_id);
        e->epoch = ev->gateway_epoch;
        e->stream_id = ev->stream_id;
        e->snapshot_id = ev->snapshot_id;
        e->first_ts = ev->ts_ms;
        e->chunks = ev->chunks;
        e->next_chunk = 0;
    } else if (e == NULL || e->snapshot_id != ev->snapshot_id || e->next_chunk != ev->chunk ||
               e->chunks != ev->chunks) {
        /* A gap, a newer snapshot seen mid-way, or a chunk of one we dropped. */
        if (e != NULL && ev->snapshot_id >= e->snapshot_id)
            sa_remove(sa, i);
        sa->dropped++;
        return 0;
    }

    if (sa->buffered + ev->nviewers > sa->max_viewers) {
        sa_remove(sa, i);
        sa->dropped++;
        return 0;
    }
    if (sa_append(e, ev->viewers, ev->nviewers) < 0) {
        if (e->n == 0 && ev->chunk == 0)
            sa_remove(sa, i);
        return -1;
    }
    sa->buffered += ev->nviewers;
    e->next_chunk++;
    if (e->next_chunk < e->chunks)
        return 0;

    memset(out, 0, sizeof(*out));
    out->viewers = e->viewers;
    out->nviewers = e->n;
    e->viewers = NULL;
    sa->buffered -= e->n;
    e->n = 0;
    sa->entries[i] = sa->entries[--sa->n];
fill:
    snprintf(out->gateway_id, sizeof(out->gateway_id), "%s", ev->gateway_id);
    out->epoch = ev->gateway_epoch;
    out->stream_id = ev->stream_id;
    out->snapshot_id = ev->snapshot_id;
    out->ts_ms = ev->ts_ms;
    return 1;
}

size_t vc_sync_asm_save(const vc_sync_asm *sa, uint8_t *buf, size_t size)
{
    wbuf w = {buf, size, 0};
    w_bytes(&w, SA_MAGIC, 4);
    w_u64(&w, (uint64_t)sa->clock);
    w_u32(&w, (uint32_t)sa->n);
    for (size_t i = 0; i < sa->n; i++) {
        const sa_entry *e = &sa->entries[i];
        w_gateway_id(&w, e->gateway_id);
        w_u64(&w, (uint64_t)e->epoch);
        w_u64(&w, (uint64_t)e->stream_id);
        w_u64(&w, (uint64_t)e->snapshot_id);
        w_u64(&w, (uint64_t)e->first_ts);
        w_u32(&w, (uint32_t)e->chunks);
        w_u32(&w, (uint32_t)e->next_chunk);
        w_u32(&w, (uint32_t)e->n);
        for (size_t k = 0; k < e->n; k++) {
            w_u64(&w, (uint64_t)e->viewers[k].conn_id);
            w_u64(&w, (uint64_t)e->viewers[k].user_id);
            w_u64(&w, (uint64_t)e->viewers[k].joined_ms);
        }
    }
    return w.len;
}

vc_sync_asm *vc_sync_asm_load(const uint8_t *buf, size_t len, size_t max_viewers,
                              int64_t max_age_ms, char *errstr, size_t errstr_size)
{
    rbuf r = {buf, len, 0, 0};
    vc_sync_asm *sa = vc_sync_asm_new(max_viewers, max_age_ms);
    const uint8_t *magic;
    uint32_t n;

    if (sa == NULL) {
        set_err(errstr, errstr_size, "out of memory or bad bounds");
        return NULL;
    }
    if (len == 0)
        return sa;
    magic = r_bytes(&r, 4);
    if (magic == NULL || memcmp(magic, SA_MAGIC, 4) != 0) {
        set_err(errstr, errstr_size, "sync state: bad magic");
        goto fail;
    }
    sa->clock = (int64_t)r_u64(&r);
    n = r_u32(&r);
    if (r.err || n > len) {
        set_err(errstr, errstr_size, "sync state: bad header");
        goto fail;
    }
    if (n > 0) {
        sa->entries = calloc(n, sizeof(*sa->entries));
        if (sa->entries == NULL) {
            set_err(errstr, errstr_size, "out of memory");
            goto fail;
        }
        sa->cap = n;
    }
    for (uint32_t i = 0; i < n; i++) {
        sa_entry *e = &sa->entries[i];
        uint32_t nv;
        r_gateway_id(&r, e->gateway_id);
        e->epoch = (int64_t)r_u64(&r);
        e->stream_id = (int64_t)r_u64(&r);
        e->snapshot_id = (int64_t)r_u64(&r);
        e->first_ts = (int64_t)r_u64(&r);
        e->chunks = (int32_t)r_u32(&r);
        e->next_chunk = (int32_t)r_u32(&r);
        nv = r_u32(&r);
        if (r.err || e->chunks <= 0 || e->next_chunk <= 0 || e->next_chunk >= e->chunks ||
            (size_t)nv > (len - r.pos) / 24) {
            set_err(errstr, errstr_size, "sync state: bad entry");
            goto fail;
        }
        sa->n = i + 1;
        if (nv > 0) {
            e->viewers = malloc((size_t)nv * sizeof(*e->viewers));
            if (e->viewers == NULL) {
                set_err(errstr, errstr_size, "out of memory");
                goto fail;
            }
            e->cap = nv;
        }
        for (uint32_t k = 0; k < nv; k++) {
            e->viewers[k].conn_id = (int64_t)r_u64(&r);
            e->viewers[k].user_id = (int64_t)r_u64(&r);
            e->viewers[k].joined_ms = (int64_t)r_u64(&r);
        }
        e->n = nv;
        sa->buffered += nv;
    }
    if (r.err || r.pos != len) {
        set_err(errstr, errstr_size, "sync state: trailing or missing bytes");
        goto fail;
    }
    return sa;
fail:
    vc_sync_asm_destroy(sa);
    return NULL;
}

/* ---- drift tiers -------------------------------------------------------- */

vc_drift_level vc_drift_tier(size_t held, size_t added, size_t removed)
{
    size_t snapshot, den, drift;

    if (removed > held)
        removed = held;
    snapshot = held - removed + added;
    den = held > snapshot ? held : snapshot;
    if (den == 0)
        den = 1;
    drift = added + removed;
    if (drift == 0 || 100 * (unsigned long long)drift < 10 * (unsigned long long)den)
        return VC_DRIFT_QUIET;
    if (100 * (unsigned long long)drift <= 30 * (unsigned long long)den)
        return VC_DRIFT_SYNCING;
    return VC_DRIFT_REBUILD;
}

const char *vc_drift_level_name(vc_drift_level level)
{
    switch (level) {
    case VC_DRIFT_QUIET: return "quiet";
    case VC_DRIFT_SYNCING: return "syncing";
    case VC_DRIFT_REBUILD: return "rebuild";
    }
    return "unknown";
}
