/* reader.c -- the counts reader thread (see reader.h). */
#include "reader.h"

#include <mysql.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "idmap.h"
#include "parse.h"
#include "vc_keys.h"
#include "vc_partition.h"
#include "vc_redis.h"

#define WANT_MAX 1024          /* pending API stream reads */
#define RANK_WANT_MAX 64       /* pending ranking requests */
#define DB_REFRESH_MS 10000    /* a database row is re-read at most this often */
#define METADATA_REFRESH_MS 5000

typedef struct {
    gw_count_memory mem;
    int db_found;
    int64_t db_viewers, db_peak, db_ms;
} stream_memory;

typedef struct {
    int64_t category;
    int limit;
} rank_req;

struct gw_reader {
    gw_reader_conf conf;
    char *redis_nodes, *mysql_host, *mysql_user, *mysql_password, *mysql_db;
    pthread_t thread;
    int started;

    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stop;
    int posted;                 /* a new stream list is waiting */
    int64_t *streams;
    size_t nstreams;
    int64_t want[WANT_MAX];
    size_t nwant;
    rank_req rank_want[RANK_WANT_MAX];
    size_t nrank_want;
    gw_reader_result *res;
    size_t nres, capres;
    gw_ranking_result *rank;
    size_t nrank, caprank;
    gw_reader_stats st;

    /* reader thread only */
    vc_redis *redis;
    int64_t redis_retry_ms;
    MYSQL *db;
    int64_t db_retry_ms;
    gw_idmap *memory;           /* stream id -> stream_memory */
    int64_t metadata_ms;
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cmp_rank(const void *a, const void *b)
{
    const gw_rank_entry *x = a, *y = b;

    if (x->viewers != y->viewers)
        return x->viewers > y->viewers ? -1 : 1;
    return x->stream_id < y->stream_id ? -1 : x->stream_id > y->stream_id;
}

char *gw_ranking_json(int64_t category, gw_rank_entry *entries, size_t n, int limit)
{
    size_t cap = 64 + (size_t)limit * 64, off = 0;
    char *out = malloc(cap);
    int k;

    if (out == NULL)
        return NULL;
    if (n > 0)
        qsort(entries, n, sizeof(*entries), cmp_rank);
    off += (size_t)snprintf(out, cap, "{\"category\":%lld,\"streams\":[", (long long)category);
    for (size_t i = 0, shown = 0; i < n && shown < (size_t)limit; i++) {
        if (i > 0 && entries[i].stream_id == entries[i - 1].stream_id)
            continue;
        k = snprintf(out + off, cap - off, "%s{\"stream\":%lld,\"viewers\":%lld}", shown ? "," : "",
                     (long long)entries[i].stream_id, (long long)entries[i].viewers);
        if (k < 0 || (size_t)k >= cap - off)
            break;
        off += (size_t)k;
        shown++;
    }
    snprintf(out + off, cap - off, "]}");
    return out;
}

static int redis_ready(gw_reader *r, int64_t now)
{
    char err[256];
    vc_redis_conf rc = {r->redis_nodes, 1, r->conf.redis_timeout_ms};

    if (r->redis)
        return 1;
    if (now < r->redis_retry_ms)
        return 0;
    r->redis = vc_redis_new(&rc, err, sizeof(err));
    if (r->redis == NULL) {
        r->redis_retry_ms = now + 1000;
        return 0;
    }
    return 1;
}

static int db_ready(gw_reader *r, int64_t now)
{
    unsigned int timeout = 1;

    if (r->db)
        return 1;
    if (!r->mysql_host || !r->mysql_host[0] || now < r->db_retry_ms)
        return 0;
    r->db = mysql_init(NULL);
    if (r->db == NULL)
        return 0;
    mysql_options(r->db, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(r->db, MYSQL_OPT_READ_TIMEOUT, &timeout);
    mysql_options(r->db, MYSQL_OPT_WRITE_TIMEOUT, &timeout);
    if (mysql_real_connect(r->db, r->mysql_host, r->mysql_user, r->mysql_password, r->mysql_db,
                           (unsigned)r->conf.mysql_port, NULL, 0) == NULL) {
        mysql_close(r->db);
        r->db = NULL;
        r->db_retry_ms = now + 5000;
        return 0;
    }
    return 1;
}

static stream_memory *memory_of(gw_reader *r, int64_t id)
{
    stream_memory *m = gw_idmap_get(r->memory, id);

    if (m == NULL && (m = calloc(1, sizeof(*m))) != NULL && gw_idmap_put(r->memory, id, m)) {
        free(m);
        m = NULL;
    }
    return m;
}

/* Read current_viewers rows for the ids that have nothing better. */
static void db_fill(gw_reader *r, const int64_t *ids, size_t n, int64_t now)
{
    char q[16384];
    size_t off;
    int any = 0;
    MYSQL_RES *res;
    MYSQL_ROW row;

    off = (size_t)snprintf(q, sizeof(q), "SELECT stream_id, viewer_count, peak_viewers FROM current_viewers "
                                          "WHERE stream_id IN (");
    for (size_t i = 0; i < n && off + 32 < sizeof(q); i++) {
        stream_memory *m = memory_of(r, ids[i]);

        if (m == NULL || m->mem.known || (m->db_ms && now - m->db_ms < DB_REFRESH_MS))
            continue;
        m->db_ms = now;
        off += (size_t)snprintf(q + off, sizeof(q) - off, "%s%lld", any ? "," : "", (long long)ids[i]);
        any = 1;
    }
    if (!any || !db_ready(r, now))
        return;
    snprintf(q + off, sizeof(q) - off, ")");
    pthread_mutex_lock(&r->mu);
    r->st.db_reads++;
    pthread_mutex_unlock(&r->mu);
    if (mysql_query(r->db, q) != 0 || (res = mysql_store_result(r->db)) == NULL) {
        pthread_mutex_lock(&r->mu);
        r->st.db_errors++;
        pthread_mutex_unlock(&r->mu);
        mysql_close(r->db);
        r->db = NULL;
        r->db_retry_ms = now + 5000;
        return;
    }
    while ((row = mysql_fetch_row(res)) != NULL) {
        int64_t id, v = 0, p = 0;
        stream_memory *m;

        if (!row[0] || gw_parse_id(row[0], &id) || (m = gw_idmap_get(r->memory, id)) == NULL)
            continue;
        if (row[1])
            v = strtoll(row[1], NULL, 10);
        if (row[2])
            p = strtoll(row[2], NULL, 10);
        m->db_found = 1;
        m->db_viewers = v;
        m->db_peak = p;
    }
    mysql_free_result(res);
}

static int64_t reply_int(const redisReply *rp)
{
    if (rp == NULL)
        return 0;
    if (rp->type == REDIS_REPLY_INTEGER)
        return rp->integer;
    if (rp->type == REDIS_REPLY_STRING)
        return strtoll(rp->str, NULL, 10);
    return 0;
}

static void push_result(gw_reader *r, int64_t id, const gw_count *c)
{
    if (r->nres == r->capres) {
        size_t cap = r->capres ? r->capres * 2 : 256;
        gw_reader_result *n = realloc(r->res, cap * sizeof(*n));

        if (n == NULL)
            return;
        r->res = n;
        r->capres = cap;
    }
    r->res[r->nres].stream_id = id;
    r->res[r->nres].count = *c;
    r->nres++;
}

/* One tick: read the hashes of ids, degrade, hand over. */
static void read_counts(gw_reader *r, const int64_t *ids, size_t n)
{
    int64_t now = mono_ms(), t0;
    int32_t nparts = gw_producer_partitions(r->conf.producer);
    vc_redis_batch *b = NULL;
    int ok = 0;
    char err[256];
    gw_count *out;
    int *idx;

    if (n == 0)
        return;
    out = calloc(n, sizeof(*out));
    idx = calloc(n, sizeof(*idx));
    if (out == NULL || idx == NULL)
        goto done;
    t0 = mono_ms();
    if (nparts > 0 && redis_ready(r, now) && (b = vc_redis_batch_new(r->redis, 1)) != NULL) {
        ok = 1;
        for (size_t i = 0; i < n && ok; i++) {
            char key[VC_KEY_MAX];

            vc_key_stream(key, sizeof(key), vc_stream_partition(ids[i], nparts), ids[i]);
            idx[i] = vc_redis_batch_addf(b, key, "HMGET %s %s %s %s", key, VC_FIELD_VIEWERS, VC_FIELD_PEAK,
                                         VC_FIELD_STATUS);
            if (idx[i] < 0)
                ok = 0;
        }
        if (ok && vc_redis_batch_exec(b, err, sizeof(err)) != 0)
            ok = 0;
        pthread_mutex_lock(&r->mu);
        r->st.reads++;
        r->st.read_ms_last = (double)(mono_ms() - t0);
        r->st.read_ms_sum += r->st.read_ms_last;
        if (!ok)
            r->st.read_errors++;
        else
            r->st.redis_ok_ms = mono_ms();
        r->st.redis_up = ok;
        pthread_mutex_unlock(&r->mu);
    } else {
        pthread_mutex_lock(&r->mu);
        r->st.redis_up = 0;
        pthread_mutex_unlock(&r->mu);
    }
    if (!ok)
        db_fill(r, ids, n, now);
    for (size_t i = 0; i < n; i++) {
        stream_memory *m = memory_of(r, ids[i]);
        gw_count_obs obs = {0};

        if (m == NULL)
            continue;
        if (ok) {
            const redisReply *rp = vc_redis_batch_reply(b, idx[i]);

            if (rp && rp->type == REDIS_REPLY_ARRAY && rp->elements == 3) {
                obs.redis_ok = 1;
                obs.redis_found = rp->element[0]->type == REDIS_REPLY_STRING;
                obs.viewers = reply_int(rp->element[0]);
                obs.peak = reply_int(rp->element[1]);
                obs.syncing = rp->element[2]->type == REDIS_REPLY_STRING && !strcmp(rp->element[2]->str, "syncing");
            }
        }
        obs.db_found = m->db_found;
        obs.db_viewers = m->db_viewers;
        obs.db_peak = m->db_peak;
        out[i] = gw_count_next(&m->mem, &obs);
    }
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < n; i++)
        push_result(r, ids[i], &out[i]);
    pthread_mutex_unlock(&r->mu);
done:
    vc_redis_batch_destroy(b);
    free(out);
    free(idx);
}

static void read_ranking(gw_reader *r, const rank_req *q)
{
    int32_t nparts = gw_producer_partitions(r->conf.producer);
    vc_redis_batch *b = NULL;
    gw_ranking_result res = {q->category, q->limit, 0, NULL};
    gw_rank_entry *ent = NULL;
    size_t nent = 0;
    char err[256];
    int ok = 0;

    if (nparts > 0 && redis_ready(r, mono_ms()) && (b = vc_redis_batch_new(r->redis, 1)) != NULL) {
        ok = 1;
        for (int32_t p = 0; p < nparts && ok; p++) {
            char key[VC_KEY_MAX];

            if (q->category)
                vc_key_rank_category(key, sizeof(key), p, q->category);
            else
                vc_key_rank(key, sizeof(key), p);
            if (vc_redis_batch_addf(b, key, "ZREVRANGE %s 0 %d WITHSCORES", key, q->limit - 1) < 0)
                ok = 0;
        }
        if (ok && vc_redis_batch_exec(b, err, sizeof(err)) != 0)
            ok = 0;
    }
    if (ok)
        ent = calloc((size_t)nparts * (size_t)q->limit, sizeof(*ent));
    for (int32_t p = 0; ok && ent && p < nparts; p++) {
        const redisReply *rp = vc_redis_batch_reply(b, p);

        if (rp == NULL || rp->type != REDIS_REPLY_ARRAY)
            continue;
        for (size_t i = 0; i + 1 < rp->elements && nent < (size_t)nparts * (size_t)q->limit; i += 2) {
            int64_t id;

            if (rp->element[i]->type != REDIS_REPLY_STRING || gw_parse_id(rp->element[i]->str, &id))
                continue;
            ent[nent].stream_id = id;
            ent[nent].viewers = (int64_t)strtod(rp->element[i + 1]->str ? rp->element[i + 1]->str : "0", NULL);
            nent++;
        }
    }
    if (ok && ent) {
        res.ok = 1;
        res.json = gw_ranking_json(q->category, ent, nent, q->limit);
    } else {
        res.json = strdup("{\"error\":\"ranking unavailable: Redis unreachable\"}");
    }
    free(ent);
    vc_redis_batch_destroy(b);
    pthread_mutex_lock(&r->mu);
    if (r->nrank == r->caprank) {
        size_t cap = r->caprank ? r->caprank * 2 : 16;
        gw_ranking_result *n = realloc(r->rank, cap * sizeof(*n));

        if (n) {
            r->rank = n;
            r->caprank = cap;
        }
    }
    if (r->nrank < r->caprank)
        r->rank[r->nrank++] = res;
    else
        free(res.json);
    pthread_mutex_unlock(&r->mu);
}

struct collect {
    gw_idmap *keep;
    int64_t *drop;
    size_t n;
};

static void collect_unkept(int64_t id, void *value, void *arg)
{
    struct collect *c = arg;

    (void)value;
    if (gw_idmap_get(c->keep, id) == NULL)
        c->drop[c->n++] = id;
}

/* Drop the memory of streams no longer held, so it stays bounded. */
static void forget_unheld(gw_reader *r, const int64_t *ids, size_t n)
{
    struct collect c = {gw_idmap_new(), NULL, 0};

    if (c.keep == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        void *m = gw_idmap_get(r->memory, ids[i]);

        if (m)
            gw_idmap_put(c.keep, ids[i], m);
    }
    if (gw_idmap_size(c.keep) != gw_idmap_size(r->memory) &&
        (c.drop = malloc(gw_idmap_size(r->memory) * sizeof(int64_t))) != NULL) {
        gw_idmap_each(r->memory, collect_unkept, &c);
        for (size_t i = 0; i < c.n; i++)
            free(gw_idmap_del(r->memory, c.drop[i]));
    }
    free(c.drop);
    gw_idmap_destroy(c.keep);
}

/* Keep redis_up true to Redis when no stream is read (for /readyz). */
static void probe_redis(gw_reader *r)
{
    char key[VC_KEY_MAX], err[256];
    vc_redis_batch *b;
    int ok = 0;

    vc_key_meta(key, sizeof(key), 0);
    if (redis_ready(r, mono_ms()) && (b = vc_redis_batch_new(r->redis, 1)) != NULL) {
        ok = vc_redis_batch_addf(b, key, "EXISTS %s", key) >= 0 && vc_redis_batch_exec(b, err, sizeof(err)) == 0;
        vc_redis_batch_destroy(b);
    }
    pthread_mutex_lock(&r->mu);
    r->st.redis_up = ok;
    if (ok)
        r->st.redis_ok_ms = mono_ms();
    pthread_mutex_unlock(&r->mu);
}

static void *reader_main(void *arg)
{
    gw_reader *r = arg;

    for (;;) {
        int64_t *streams = NULL, want[WANT_MAX];
        size_t nstreams = 0, nwant, nrank;
        rank_req ranks[RANK_WANT_MAX];
        int posted, woke;

        pthread_mutex_lock(&r->mu);
        while (!r->stop && !r->posted && !r->nwant && !r->nrank_want) {
            struct timespec ts;

            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&r->cond, &r->mu, &ts);
            if (!r->posted && !r->nwant && !r->nrank_want)
                break; /* periodic: metadata refresh */
        }
        if (r->stop) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        posted = r->posted;
        if (posted) {
            streams = r->streams;
            nstreams = r->nstreams;
            r->streams = NULL;
            r->nstreams = 0;
            r->posted = 0;
        }
        nwant = r->nwant;
        memcpy(want, r->want, nwant * sizeof(want[0]));
        r->nwant = 0;
        nrank = r->nrank_want;
        memcpy(ranks, r->rank_want, nrank * sizeof(ranks[0]));
        r->nrank_want = 0;
        pthread_mutex_unlock(&r->mu);

        if (mono_ms() - r->metadata_ms >= METADATA_REFRESH_MS || gw_producer_partitions(r->conf.producer) <= 0) {
            r->metadata_ms = mono_ms();
            gw_producer_refresh_partitions(r->conf.producer, 1000);
        }
        woke = 0;
        if (!posted || nstreams == 0)
            probe_redis(r);
        if (posted) {
            read_counts(r, streams, nstreams);
            forget_unheld(r, streams, nstreams);
            woke = 1;
        }
        if (nwant) {
            read_counts(r, want, nwant);
            woke = 1;
        }
        for (size_t i = 0; i < nrank; i++) {
            read_ranking(r, &ranks[i]);
            woke = 1;
        }
        free(streams);
        if (woke && r->conf.wake)
            r->conf.wake(r->conf.wake_arg);
    }
    return NULL;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

gw_reader *gw_reader_new(const gw_reader_conf *conf, char *errstr, size_t errstr_size)
{
    gw_reader *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    r->conf = *conf;
    r->redis_nodes = dup_or_null(conf->redis_nodes);
    r->mysql_host = dup_or_null(conf->mysql_host);
    r->mysql_user = dup_or_null(conf->mysql_user);
    r->mysql_password = dup_or_null(conf->mysql_password);
    r->mysql_db = dup_or_null(conf->mysql_db);
    r->memory = gw_idmap_new();
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    if (r->memory == NULL || pthread_create(&r->thread, NULL, reader_main, r) != 0) {
        snprintf(errstr, errstr_size, "cannot start the reader thread");
        gw_reader_destroy(r);
        return NULL;
    }
    r->started = 1;
    return r;
}

static void free_memory(int64_t id, void *value, void *arg)
{
    (void)id;
    (void)arg;
    free(value);
}

void gw_reader_destroy(gw_reader *r)
{
    if (r == NULL)
        return;
    if (r->started) {
        pthread_mutex_lock(&r->mu);
        r->stop = 1;
        pthread_cond_signal(&r->cond);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    vc_redis_destroy(r->redis);
    if (r->db)
        mysql_close(r->db);
    if (r->memory) {
        gw_idmap_each(r->memory, free_memory, NULL);
        gw_idmap_destroy(r->memory);
    }
    for (size_t i = 0; i < r->nrank; i++)
        free(r->rank[i].json);
    free(r->rank);
    free(r->res);
    free(r->streams);
    free(r->redis_nodes);
    free(r->mysql_host);
    free(r->mysql_user);
    free(r->mysql_password);
    free(r->mysql_db);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void gw_reader_post_streams(gw_reader *r, int64_t *ids, size_t n)
{
    pthread_mutex_lock(&r->mu);
    free(r->streams);
    r->streams = ids;
    r->nstreams = n;
    r->posted = 1;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

void gw_reader_want_stream(gw_reader *r, int64_t stream_id)
{
    pthread_mutex_lock(&r->mu);
    if (r->nwant < WANT_MAX)
        r->want[r->nwant++] = stream_id;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

void gw_reader_want_ranking(gw_reader *r, int64_t category, int limit)
{
    if (limit < 1)
        limit = 1;
    if (limit > GW_RANKING_LIMIT_MAX)
        limit = GW_RANKING_LIMIT_MAX;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nrank_want; i++)
        if (r->rank_want[i].category == category && r->rank_want[i].limit == limit)
            goto out;
    if (r->nrank_want < RANK_WANT_MAX) {
        r->rank_want[r->nrank_want].category = category;
        r->rank_want[r->nrank_want].limit = limit;
        r->nrank_want++;
    }
out:
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

void gw_reader_take(gw_reader *r, gw_reader_result **res, size_t *nres, gw_ranking_result **rank, size_t *nrank)
{
    pthread_mutex_lock(&r->mu);
    *res = r->res;
    *nres = r->nres;
    *rank = r->rank;
    *nrank = r->nrank;
    r->res = NULL;
    r->nres = r->capres = 0;
    r->rank = NULL;
    r->nrank = r->caprank = 0;
    pthread_mutex_unlock(&r->mu);
}

void gw_reader_get_stats(gw_reader *r, gw_reader_stats *st)
{
    pthread_mutex_lock(&r->mu);
    *st = r->st;
    pthread_mutex_unlock(&r->mu);
}
