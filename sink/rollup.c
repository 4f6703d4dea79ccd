#include "rollup.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vc_rules.h"

#define SK_DAY_MS 86400000LL
#define SK_MAGIC 0x4B53435655ULL /* "UVCSK" */

typedef struct {
    int64_t user_id;          /* 0: anonymous */
    int64_t joined_ms;        /* the event's own ts, for the session row */
} sk_conn;

typedef struct {
    uint32_t nconns;
    int64_t seen_bucket;      /* counted in distinct of this bucket after leaving; -1 none */
} sk_user;

typedef struct {
    int64_t stream_id;
    sk_map conns;             /* (gateway lid, conn_id) -> sk_conn */
    sk_map users;             /* (user_id, 0) -> sk_user */
    uint32_t users_on;        /* users with nconns > 0 */
    uint32_t anon;            /* anonymous connections */
    /* the open bucket */
    uint32_t b_peak, b_min, b_joins, b_leaves, b_distinct;
    int64_t b_watch_ms;
    int64_t last_ms;          /* last change, within the open bucket */
    int b_active;             /* any event in the bucket */
    /* lifetime in this state */
    uint32_t peak;
    int64_t peak_ms;
    uint64_t arrivals;        /* since the last current row */
    int64_t started_ms;
} sk_stream;

typedef struct {
    char id[VC_GATEWAY_ID_MAX + 1];
} sk_gwname;

struct sk_rollup {
    sk_rollup_conf conf;
    vc_liveness *lv;
    vc_sync_asm *sa;
    int64_t bucket;           /* index of the open bucket; INT64_MIN before any event */
    sk_map streams;           /* (stream_id, 0) -> sk_stream * */
    sk_gwname *gw;            /* by liveness id */
    size_t ngw;
    sk_rows rows;
    vc_gateway_gone gone[VC_LIVENESS_MAX];
};

const char *sk_end_reason_sql(sk_end_reason reason)
{
    switch (reason) {
    case SK_END_CLIENT_CLOSED: return "client_closed";
    case SK_END_HEARTBEAT_TIMEOUT: return "heartbeat_timeout";
    case SK_END_GATEWAY_SHUTDOWN: return "gateway_shutdown";
    case SK_END_REJECTED: return "rejected";
    case SK_END_GATEWAY_DEAD: return "gateway_dead";
    case SK_END_REPAIR: return "repair";
    }
    return "client_closed";
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static uint32_t stream_count(const sk_stream *st) { return st->users_on + st->anon; }

/* ---- rows -------------------------------------------------------------- */

static int rows_init(sk_rows *rows)
{
    memset(rows, 0, sizeof *rows);
    if (sk_map_init(&rows->current, sizeof(sk_current_row)) < 0)
        return -1;
    if (sk_map_init(&rows->daily, sizeof(sk_daily_row)) < 0)
        return -1;
    return 0;
}

static void rows_free(sk_rows *rows)
{
    free(rows->hist);
    free(rows->sess);
    sk_map_free(&rows->current);
    sk_map_free(&rows->daily);
}

static sk_daily_row *daily_get(sk_rollup *r, int64_t ts_ms, int64_t stream_id)
{
    int64_t day = floor_div(ts_ms, SK_DAY_MS) * SK_DAY_MS;
    int created;
    sk_daily_row *d = sk_map_put(&r->rows.daily, (sk_key){(uint64_t)day, (uint64_t)stream_id}, &created);
    if (d && created) {
        d->day_ms = day;
        d->stream_id = stream_id;
    }
    return d;
}

static int session_add(sk_rollup *r, const sk_stream *st, uint32_t lid, int64_t conn_id,
                       const sk_conn *c, int64_t left_ms, sk_end_reason reason)
{
    sk_rows *rows = &r->rows;
    if (rows->nsess == rows->sess_cap) {
        size_t cap = rows->sess_cap ? rows->sess_cap * 2 : 256;
        sk_session_row *n = realloc(rows->sess, cap * sizeof *n);
        if (!n)
            return -1;
        rows->sess = n;
        rows->sess_cap = cap;
    }
    sk_session_row *s = &rows->sess[rows->nsess++];
    memset(s, 0, sizeof *s);
    s->stream_id = st->stream_id;
    if (lid < r->ngw)
        memcpy(s->gateway_id, r->gw[lid].id, sizeof s->gateway_id);
    s->conn_id = conn_id;
    s->user_id = c->user_id;
    s->joined_ms = c->joined_ms;
    s->left_ms = left_ms > c->joined_ms ? left_ms : c->joined_ms;
    s->reason = reason;
    sk_daily_row *d = daily_get(r, s->left_ms, st->stream_id);
    if (!d)
        return -1;
    d->sessions++;
    return 0;
}

/* ---- streams and buckets ---------------------------------------------- */

static void bucket_open(sk_stream *st, int64_t start_ms)
{
    uint32_t n = stream_count(st);
    st->b_peak = st->b_min = st->b_distinct = n;
    st->b_joins = st->b_leaves = 0;
    st->b_watch_ms = 0;
    st->last_ms = start_ms;
    st->b_active = 0;
}

static void stream_destroy(sk_stream *st)
{
    if (!st)
        return;
    sk_map_free(&st->conns);
    sk_map_free(&st->users);
    free(st);
}

static sk_stream *stream_get(sk_rollup *r, int64_t stream_id, int64_t t, int create)
{
    sk_key k = {(uint64_t)stream_id, 0};
    sk_stream **slot = sk_map_get(&r->streams, k);
    if (slot)
        return *slot;
    if (!create)
        return NULL;
    sk_stream *st = calloc(1, sizeof *st);
    if (!st || sk_map_init(&st->conns, sizeof(sk_conn)) < 0 || sk_map_init(&st->users, sizeof(sk_user)) < 0) {
        stream_destroy(st);
        return NULL;
    }
    st->stream_id = stream_id;
    st->started_ms = t;
    bucket_open(st, r->conf.rollup_ms * r->bucket);
    slot = sk_map_put(&r->streams, k, NULL);
    if (!slot) {
        stream_destroy(st);
        return NULL;
    }
    *slot = st;
    return st;
}

/* Account the time since the last change, at t (>= last_ms). */
static void stream_advance(sk_stream *st, int64_t t)
{
    if (t > st->last_ms) {
        st->b_watch_ms += (int64_t)stream_count(st) * (t - st->last_ms);
        st->last_ms = t;
    }
}

static void stream_changed(sk_stream *st, int64_t t)
{
    uint32_t n = stream_count(st);
    if (n > st->b_peak)
        st->b_peak = n;
    if (n < st->b_min)
        st->b_min = n;
    if (n > st->peak) {
        st->peak = n;
        st->peak_ms = t;
    }
}

/* Emit the rows of the open bucket [start, start + rollup) if it had viewers or
 * events. Returns 1 if emitted, 0 if not, -1 on allocation failure. */
static int bucket_emit(sk_rollup *r, sk_stream *st, int64_t start_ms)
{
    int64_t end_ms = start_ms + r->conf.rollup_ms;
    stream_advance(st, end_ms);
    if (!st->b_active && st->b_peak == 0)
        return 0;
    sk_rows *rows = &r->rows;
    if (rows->nhist == rows->hist_cap) {
        size_t cap = rows->hist_cap ? rows->hist_cap * 2 : 256;
        sk_history_row *n = realloc(rows->hist, cap * sizeof *n);
        if (!n)
            return -1;
        rows->hist = n;
        rows->hist_cap = cap;
    }
    sk_history_row *h = &rows->hist[rows->nhist++];
    h->stream_id = st->stream_id;
    h->bucket_ms = start_ms;
    h->bucket_s = (uint32_t)(r->conf.rollup_ms / 1000);
    h->peak = st->b_peak;
    h->min = st->b_min;
    h->watch_ms = st->b_watch_ms;
    h->joins = st->b_joins;
    h->leaves = st->b_leaves;
    h->distinct = st->b_distinct;

    int created;
    sk_current_row *c = sk_map_put(&rows->current, (sk_key){(uint64_t)st->stream_id, 0}, &created);
    if (!c)
        return -1;
    /* Merge as the database does (GREATEST peak, first peak_at on ties, the
     * first started_at, arrivals added), so that the rows written do not depend
     * on how many buckets one flush holds: a stream forgotten while empty and
     * seen again starts a new state with a new peak and start. */
    if (created) {
        c->stream_id = st->stream_id;
        c->peak = st->peak;
        c->peak_ms = st->peak_ms;
        c->started_ms = st->started_ms;
    } else if (st->peak > c->peak) {
        c->peak = st->peak;
        c->peak_ms = st->peak_ms;
    }
    c->viewers = stream_count(st);
    c->arrivals += st->arrivals;
    st->arrivals = 0;
    c->updated_ms = end_ms;

    sk_daily_row *d = daily_get(r, start_ms, st->stream_id);
    if (!d)
        return -1;
    if (h->peak > d->peak)
        d->peak = h->peak;
    d->live_s += h->bucket_s;
    d->watch_ms += h->watch_ms;
    d->joins += h->joins;
    d->leaves += h->leaves;
    return 1;
}

/* Close every bucket before new_bucket for every stream. */
static int buckets_close(sk_rollup *r, int64_t new_bucket)
{
    int64_t R = r->conf.rollup_ms;
    for (size_t i = 0; i < r->streams.cap; i++) {
        if (!r->streams.used[i])
            continue;
        sk_stream *st = *(sk_stream **)sk_map_val(&r->streams, i);
        for (int64_t b = r->bucket; b < new_bucket; b++) {
            if (bucket_emit(r, st, b * R) < 0)
                return -1;
            if (b == r->bucket) {
                /* users who left are forgotten once their bucket is closed */
                for (size_t j = 0; j < st->users.cap; j++) {
                    if (st->users.used[j] && ((sk_user *)sk_map_val(&st->users, j))->nconns == 0) {
                        sk_map_del(&st->users, st->users.keys[j]);
                        j--; /* backward shift may have moved a key into j */
                    }
                }
            }
            bucket_open(st, (b + 1) * R);
            if (stream_count(st) == 0)
                break; /* nothing more to emit: later buckets are empty */
        }
        bucket_open(st, new_bucket * R);
    }
    /* drop streams with nobody left */
    for (size_t i = 0; i < r->streams.cap; i++) {
        if (!r->streams.used[i])
            continue;
        sk_stream *st = *(sk_stream **)sk_map_val(&r->streams, i);
        if (stream_count(st) == 0 && st->conns.len == 0 && st->users.len == 0) {
            sk_map_del(&r->streams, r->streams.keys[i]);
            stream_destroy(st);
            i--;
        }
    }
    r->bucket = new_bucket;
    return 0;
}

/* ---- connections ------------------------------------------------------- */

static int conn_open(sk_rollup *r, sk_stream *st, uint32_t lid, int64_t conn_id, int64_t user_id,
                     int64_t joined_ms, int64_t t)
{
    int created;
    sk_conn *c = sk_map_put(&st->conns, (sk_key){lid, (uint64_t)conn_id}, &created);
    if (!c)
        return -1;
    if (!created)
        return 0; /* a duplicate join */
    c->user_id = user_id;
    c->joined_ms = joined_ms;
    stream_advance(st, t);
    st->b_active = 1;
    st->b_joins++;
    if (user_id > 0) {
        sk_user *u = sk_map_put(&st->users, (sk_key){(uint64_t)user_id, 0}, &created);
        if (!u)
            return -1;
        if (created) {
            u->seen_bucket = -1;
            st->arrivals++;
        }
        if (u->nconns++ == 0) {
            st->users_on++;
            if (u->seen_bucket != r->bucket)
                st->b_distinct++;
        }
    } else {
        st->anon++;
        st->arrivals++;
        st->b_distinct++;
    }
    stream_changed(st, t);
    return 0;
}

/* Close the connection at slot key; c is a copy of its value. */
static int conn_close(sk_rollup *r, sk_stream *st, sk_key key, int64_t left_ms, int64_t t,
                      sk_end_reason reason)
{
    sk_conn *cp = sk_map_get(&st->conns, key);
    if (!cp)
        return 0;
    sk_conn c = *cp;
    sk_map_del(&st->conns, key);
    stream_advance(st, t);
    st->b_active = 1;
    st->b_leaves++;
    if (c.user_id > 0) {
        sk_user *u = sk_map_get(&st->users, (sk_key){(uint64_t)c.user_id, 0});
        if (u && u->nconns > 0 && --u->nconns == 0) {
            st->users_on--;
            u->seen_bucket = r->bucket;
        }
    } else if (st->anon > 0) {
        st->anon--;
    }
    stream_changed(st, t);
    return session_add(r, st, (uint32_t)key.a, (int64_t)key.b, &c, left_ms, reason);
}

static int64_t apply_time(const sk_rollup *r, const sk_stream *st, int64_t ts_ms)
{
    int64_t t = ts_ms;
    int64_t start = r->bucket * r->conf.rollup_ms;
    if (t < start)
        t = start;
    if (st && t < st->last_ms)
        t = st->last_ms;
    return t;
}

/* Every connection of gateway lid leaves (its epoch is gone). */
static int gateway_gone(sk_rollup *r, uint32_t lid, int64_t now)
{
    for (size_t i = 0; i < r->streams.cap; i++) {
        if (!r->streams.used[i])
            continue;
        sk_stream *st = *(sk_stream **)sk_map_val(&r->streams, i);
        int64_t t = apply_time(r, st, now);
        for (size_t j = 0; j < st->conns.cap; j++) {
            if (!st->conns.used[j] || st->conns.keys[j].a != lid)
                continue;
            if (conn_close(r, st, st->conns.keys[j], now, t, SK_END_GATEWAY_DEAD) < 0)
                return -1;
            j--; /* backward shift may have moved a key into j */
        }
    }
    return 0;
}

static int cmp_conn_id(const void *a, const void *b)
{
    int64_t x = ((const vc_sync_viewer *)a)->conn_id, y = ((const vc_sync_viewer *)b)->conn_id;
    return (x > y) - (x < y);
}

/* Make the stream's connections of gateway lid exactly the snapshot's. */
static int sync_apply(sk_rollup *r, uint32_t lid, vc_sync_snapshot *snap)
{
    sk_stream *st = stream_get(r, snap->stream_id, snap->ts_ms, snap->nviewers > 0);
    if (!st)
        return snap->nviewers > 0 ? -1 : 0;
    int64_t t = apply_time(r, st, snap->ts_ms);
    qsort(snap->viewers, snap->nviewers, sizeof *snap->viewers, cmp_conn_id);
    /* ghosts: held but not in the snapshot */
    for (size_t j = 0; j < st->conns.cap; j++) {
        if (!st->conns.used[j] || st->conns.keys[j].a != lid)
            continue;
        vc_sync_viewer probe = {.conn_id = (int64_t)st->conns.keys[j].b};
        if (bsearch(&probe, snap->viewers, snap->nviewers, sizeof probe, cmp_conn_id))
            continue;
        if (conn_close(r, st, st->conns.keys[j], snap->ts_ms, t, SK_END_REPAIR) < 0)
            return -1;
        j--;
    }
    /* missing: in the snapshot but not held */
    for (size_t i = 0; i < snap->nviewers; i++) {
        const vc_sync_viewer *v = &snap->viewers[i];
        if (sk_map_get(&st->conns, (sk_key){lid, (uint64_t)v->conn_id}))
            continue;
        if (conn_open(r, st, lid, v->conn_id, v->user_id, v->joined_ms, t) < 0)
            return -1;
    }
    return 0;
}

static int gw_name_set(sk_rollup *r, uint32_t lid, const char *id)
{
    if (lid >= r->ngw) {
        size_t n = lid + 1 > r->ngw * 2 ? lid + 1 : r->ngw * 2;
        sk_gwname *g = realloc(r->gw, n * sizeof *g);
        if (!g)
            return -1;
        memset(g + r->ngw, 0, (n - r->ngw) * sizeof *g);
        r->gw = g;
        r->ngw = n;
    }
    if (!r->gw[lid].id[0])
        snprintf(r->gw[lid].id, sizeof r->gw[lid].id, "%s", id);
    return 0;
}

static sk_end_reason leave_reason(vc_leave_reason reason)
{
    switch (reason) {
    case VC_LEAVE_HEARTBEAT_TIMEOUT: return SK_END_HEARTBEAT_TIMEOUT;
    case VC_LEAVE_GATEWAY_SHUTDOWN: return SK_END_GATEWAY_SHUTDOWN;
    case VC_LEAVE_REJECTED: return SK_END_REJECTED;
    default: return SK_END_CLIENT_CLOSED;
    }
}

int sk_rollup_apply(sk_rollup *r, const vc_event *ev)
{
    vc_liveness_verdict verdict;
    int64_t before = vc_liveness_clock(r->lv);
    int ngone = vc_liveness_observe(r->lv, ev, &verdict, r->gone);
    int64_t clock = vc_liveness_clock(r->lv);
    /* Gone gateways' viewers leave at the clock of the event that revealed it;
     * but after a silence longer than the timeout (the partition heard nothing,
     * e.g. every gateway was down), at the latest moment their gateways can have
     * been alive: the last clock + the timeout. Otherwise every bucket of the
     * silence would be written with viewers nobody was watching. */
    int64_t t_gone = clock;
    if (ngone > 0 && before != INT64_MIN && clock - before > r->conf.liveness_timeout_ms)
        t_gone = before + r->conf.liveness_timeout_ms;
    if (r->bucket == INT64_MIN) {
        r->bucket = floor_div(clock, r->conf.rollup_ms);
    } else {
        int64_t b_gone = floor_div(t_gone, r->conf.rollup_ms);
        if (b_gone > r->bucket && buckets_close(r, b_gone) < 0)
            return -1;
    }
    for (int i = 0; i < ngone; i++) {
        vc_sync_asm_forget_gateway(r->sa, r->gone[i].gateway_id, r->gone[i].epoch);
        if (gateway_gone(r, r->gone[i].id, t_gone) < 0)
            return -1;
    }
    int64_t b = floor_div(clock, r->conf.rollup_ms);
    if (b > r->bucket && buckets_close(r, b) < 0)
        return -1;
    if (verdict.stale)
        return 0;
    if (gw_name_set(r, verdict.id, ev->gateway_id) < 0)
        return -1;

    sk_stream *st;
    switch (ev->type) {
    case VC_EV_JOIN:
        st = stream_get(r, ev->stream_id, ev->ts_ms, 1);
        if (!st)
            return -1;
        return conn_open(r, st, verdict.id, ev->conn_id, ev->user_id, ev->ts_ms,
                         apply_time(r, st, ev->ts_ms));
    case VC_EV_LEAVE:
        st = stream_get(r, ev->stream_id, ev->ts_ms, 0);
        if (!st)
            return 0;
        return conn_close(r, st, (sk_key){verdict.id, (uint64_t)ev->conn_id}, ev->ts_ms,
                          apply_time(r, st, ev->ts_ms), leave_reason(ev->reason));
    case VC_EV_SYNC: {
        vc_sync_snapshot snap;
        int rc = vc_sync_asm_add(r->sa, ev, &snap);
        if (rc < 0)
            return -1;
        if (rc == 0)
            return 0;
        rc = sync_apply(r, verdict.id, &snap);
        vc_sync_snapshot_free(&snap);
        return rc;
    }
    case VC_EV_HEARTBEAT:
        return 0;
    }
    return 0;
}

/* ---- life cycle -------------------------------------------------------- */

static sk_rollup *rollup_alloc(const sk_rollup_conf *conf)
{
    sk_rollup *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->conf = *conf;
    r->bucket = INT64_MIN;
    if (sk_map_init(&r->streams, sizeof(sk_stream *)) < 0 || rows_init(&r->rows) < 0) {
        sk_rollup_destroy(r);
        return NULL;
    }
    return r;
}

sk_rollup *sk_rollup_new(const sk_rollup_conf *conf)
{
    sk_rollup *r = rollup_alloc(conf);
    if (!r)
        return NULL;
    r->lv = vc_liveness_new(conf->liveness_timeout_ms);
    r->sa = vc_sync_asm_new(conf->sync_max_viewers, conf->sync_max_age_ms);
    if (!r->lv || !r->sa) {
        sk_rollup_destroy(r);
        return NULL;
    }
    return r;
}

void sk_rollup_destroy(sk_rollup *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->streams.cap; i++)
        if (r->streams.used[i])
            stream_destroy(*(sk_stream **)sk_map_val(&r->streams, i));
    sk_map_free(&r->streams);
    rows_free(&r->rows);
    vc_liveness_destroy(r->lv);
    vc_sync_asm_destroy(r->sa);
    free(r->gw);
    free(r);
}

const sk_rows *sk_rollup_rows(const sk_rollup *r) { return &r->rows; }

size_t sk_rollup_rows_pending(const sk_rollup *r)
{
    return r->rows.nhist + r->rows.nsess + r->rows.current.len + r->rows.daily.len;
}

void sk_rollup_rows_clear(sk_rollup *r)
{
    r->rows.nhist = 0;
    r->rows.nsess = 0;
    sk_map_free(&r->rows.current);
    sk_map_free(&r->rows.daily);
    /* a failed init leaves a zeroed map, which sk_map_put re-allocates */
    (void)sk_map_init(&r->rows.current, sizeof(sk_current_row));
    (void)sk_map_init(&r->rows.daily, sizeof(sk_daily_row));
}

size_t sk_rollup_streams(const sk_rollup *r) { return r->streams.len; }

size_t sk_rollup_conns(const sk_rollup *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->streams.cap; i++)
        if (r->streams.used[i])
            n += (*(sk_stream **)sk_map_val(&r->streams, i))->conns.len;
    return n;
}

int64_t sk_rollup_clock(const sk_rollup *r) { return vc_liveness_clock(r->lv); }

/* ---- checkpoint -------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int err;
} wbuf;

static void w_bytes(wbuf *w, const void *src, size_t n)
{
    if (w->err)
        return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *p = realloc(w->p, cap);
        if (!p) {
            w->err = 1;
            return;
        }
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void w_u64(wbuf *w, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    w_bytes(w, b, 8);
}

typedef struct {
    const uint8_t *p;
    size_t len, off;
    int err;
} rbuf;

static uint64_t r_u64(rbuf *rb)
{
    if (rb->err || rb->len - rb->off < 8) {
        rb->err = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)rb->p[rb->off + i] << (8 * i);
    rb->off += 8;
    return v;
}

static const uint8_t *r_bytes(rbuf *rb, size_t n)
{
    if (rb->err || rb->len - rb->off < n) {
        rb->err = 1;
        return NULL;
    }
    const uint8_t *p = rb->p + rb->off;
    rb->off += n;
    return p;
}

uint8_t *sk_rollup_save(const sk_rollup *r, size_t *len)
{
    wbuf w = {0};
    w_u64(&w, SK_MAGIC);
    w_u64(&w, SK_CHECKPOINT_FORMAT);
    w_u64(&w, (uint64_t)r->conf.rollup_ms);
    w_u64(&w, (uint64_t)r->bucket);

    size_t n = vc_liveness_save(r->lv, NULL, 0);
    uint8_t *tmp = malloc(n ? n : 1);
    if (!tmp) {
        free(w.p);
        return NULL;
    }
    vc_liveness_save(r->lv, tmp, n);
    w_u64(&w, n);
    w_bytes(&w, tmp, n);
    free(tmp);
    n = vc_sync_asm_save(r->sa, NULL, 0);
    tmp = malloc(n ? n : 1);
    if (!tmp) {
        free(w.p);
        return NULL;
    }
    vc_sync_asm_save(r->sa, tmp, n);
    w_u64(&w, n);
    w_bytes(&w, tmp, n);
    free(tmp);

    w_u64(&w, r->ngw);
    for (size_t i = 0; i < r->ngw; i++)
        w_bytes(&w, r->gw[i].id, sizeof r->gw[i].id);

    w_u64(&w, r->streams.len);
    for (size_t i = 0; i < r->streams.cap; i++) {
        if (!r->streams.used[i])
            continue;
        const sk_stream *st = *(sk_stream **)sk_map_val(&r->streams, i);
        w_u64(&w, (uint64_t)st->stream_id);
        w_u64(&w, ((uint64_t)st->b_peak << 32) | st->b_min);
        w_u64(&w, ((uint64_t)st->b_joins << 32) | st->b_leaves);
        w_u64(&w, ((uint64_t)st->b_distinct << 32) | (uint32_t)st->b_active);
        w_u64(&w, (uint64_t)st->b_watch_ms);
        w_u64(&w, (uint64_t)st->last_ms);
        w_u64(&w, st->peak);
        w_u64(&w, (uint64_t)st->peak_ms);
        w_u64(&w, st->arrivals);
        w_u64(&w, (uint64_t)st->started_ms);
        w_u64(&w, st->conns.len);
        for (size_t j = 0; j < st->conns.cap; j++) {
            if (!st->conns.used[j])
                continue;
            const sk_conn *c = sk_map_val(&st->conns, j);
            w_u64(&w, st->conns.keys[j].a);
            w_u64(&w, st->conns.keys[j].b);
            w_u64(&w, (uint64_t)c->user_id);
            w_u64(&w, (uint64_t)c->joined_ms);
        }
        w_u64(&w, st->users.len);
        for (size_t j = 0; j < st->users.cap; j++) {
            if (!st->users.used[j])
                continue;
            const sk_user *u = sk_map_val(&st->users, j);
            w_u64(&w, st->users.keys[j].a);
            w_u64(&w, u->nconns);
            w_u64(&w, (uint64_t)u->seen_bucket);
        }
    }
    if (w.err) {
        free(w.p);
        return NULL;
    }
    *len = w.len;
    return w.p;
}

sk_rollup *sk_rollup_load(const sk_rollup_conf *conf, const uint8_t *buf, size_t len,
                          char *errstr, size_t errstr_size)
{
    if (len == 0)
        return sk_rollup_new(conf);
    sk_rollup *r = rollup_alloc(conf);
    if (!r) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    rbuf rb = {buf, len, 0, 0};
    if (r_u64(&rb) != SK_MAGIC || r_u64(&rb) != SK_CHECKPOINT_FORMAT) {
        snprintf(errstr, errstr_size, "not a sink checkpoint of format %d", SK_CHECKPOINT_FORMAT);
        goto fail;
    }
    int64_t rollup_ms = (int64_t)r_u64(&rb);
    if (!rb.err && rollup_ms != conf->rollup_ms) {
        snprintf(errstr, errstr_size, "checkpoint has rollup %" PRId64 " ms, configured %" PRId64,
                 rollup_ms, conf->rollup_ms);
        goto fail;
    }
    r->bucket = (int64_t)r_u64(&rb);
    size_t n = (size_t)r_u64(&rb);
    const uint8_t *p = r_bytes(&rb, n);
    if (rb.err)
        goto truncated;
    r->lv = vc_liveness_load(p, n, conf->liveness_timeout_ms, errstr, errstr_size);
    if (!r->lv)
        goto fail;
    n = (size_t)r_u64(&rb);
    p = r_bytes(&rb, n);
    if (rb.err)
        goto truncated;
    r->sa = vc_sync_asm_load(p, n, conf->sync_max_viewers, conf->sync_max_age_ms, errstr, errstr_size);
    if (!r->sa)
        goto fail;
    size_t ngw = (size_t)r_u64(&rb);
    if (rb.err || ngw > VC_LIVENESS_MAX * 4 + 8)
        goto truncated;
    if (ngw) {
        r->gw = calloc(ngw, sizeof *r->gw);
        if (!r->gw)
            goto oom;
        r->ngw = ngw;
        for (size_t i = 0; i < ngw; i++) {
            p = r_bytes(&rb, sizeof r->gw[i].id);
            if (!p)
                goto truncated;
            memcpy(r->gw[i].id, p, sizeof r->gw[i].id);
            r->gw[i].id[VC_GATEWAY_ID_MAX] = 0;
        }
    }
    size_t nstreams = (size_t)r_u64(&rb);
    for (size_t i = 0; i < nstreams && !rb.err; i++) {
        sk_stream *st = calloc(1, sizeof *st);
        if (!st || sk_map_init(&st->conns, sizeof(sk_conn)) < 0 || sk_map_init(&st->users, sizeof(sk_user)) < 0) {
            stream_destroy(st);
            goto oom;
        }
        st->stream_id = (int64_t)r_u64(&rb);
        uint64_t v = r_u64(&rb);
        st->b_peak = (uint32_t)(v >> 32);
        st->b_min = (uint32_t)v;
        v = r_u64(&rb);
        st->b_joins = (uint32_t)(v >> 32);
        st->b_leaves = (uint32_t)v;
        v = r_u64(&rb);
        st->b_distinct = (uint32_t)(v >> 32);
        st->b_active = (int)(uint32_t)v;
        st->b_watch_ms = (int64_t)r_u64(&rb);
        st->last_ms = (int64_t)r_u64(&rb);
        st->peak = (uint32_t)r_u64(&rb);
        st->peak_ms = (int64_t)r_u64(&rb);
        st->arrivals = r_u64(&rb);
        st->started_ms = (int64_t)r_u64(&rb);
        sk_stream **slot = sk_map_put(&r->streams, (sk_key){(uint64_t)st->stream_id, 0}, NULL);
        if (!slot) {
            stream_destroy(st);
            goto oom;
        }
        *slot = st;
        size_t nc = (size_t)r_u64(&rb);
        for (size_t j = 0; j < nc && !rb.err; j++) {
            sk_key k;
            k.a = r_u64(&rb);
            k.b = r_u64(&rb);
            sk_conn *c = sk_map_put(&st->conns, k, NULL);
            if (!c)
                goto oom;
            c->user_id = (int64_t)r_u64(&rb);
            c->joined_ms = (int64_t)r_u64(&rb);
            if (c->user_id <= 0)
                st->anon++;
        }
        size_t nu = (size_t)r_u64(&rb);
        for (size_t j = 0; j < nu && !rb.err; j++) {
            sk_key k = {r_u64(&rb), 0};
            sk_user *u = sk_map_put(&st->users, k, NULL);
            if (!u)
                goto oom;
            u->nconns = (uint32_t)r_u64(&rb);
            u->seen_bucket = (int64_t)r_u64(&rb);
            if (u->nconns > 0)
                st->users_on++;
        }
    }
    if (rb.err || rb.off != rb.len)
        goto truncated;
    return r;
truncated:
    snprintf(errstr, errstr_size, "sink checkpoint truncated or corrupt");
    goto fail;
oom:
    snprintf(errstr, errstr_size, "out of memory");
fail:
    sk_rollup_destroy(r);
    return NULL;
}
