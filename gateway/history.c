/* history.c -- a stream's rollups from viewer_history, read off the loop
 * (see history.h). */
#include "history.h"
#include "db.h"

#include <inttypes.h>
#include <errmsg.h>
#include <mysql.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- pure ---- */

int gw_history_parse_milli(const char *s, int64_t *milli)
{
    int64_t whole = 0, frac = 0;
    int digits = 0, fdigits = 0;

    if (s == NULL)
        return -1;
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        if (whole > (INT64_MAX / 1000 - 9) / 10)
            return -1;
        whole = whole * 10 + (*s - '0');
    }
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, fdigits++) {
            if (fdigits >= 3) {
                if (*s != '0')   /* DECIMAL(12,3) never has more; refuse to round */
                    return -1;
                continue;
            }
            frac = frac * 10 + (*s - '0');
        }
        if (fdigits == 0)
            return -1;
    }
    if (digits == 0 || *s != '\0')
        return -1;
    for (int i = fdigits < 3 ? fdigits : 3; i < 3; i++)
        frac *= 10;
    *milli = whole * 1000 + frac;
    return 0;
}

/* Appends to a growing buffer; on out of memory sets bad and drops the rest. */
typedef struct {
    char *p;
    size_t len, cap;
    int bad;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->bad)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->bad = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        {
            size_t cap = (b->cap + (size_t)n + 1) * 2;
            char *p = realloc(b->p, cap);

            if (p == NULL) {
                b->bad = 1;
                return;
            }
            b->p = p;
            b->cap = cap;
        }
    }
}

char *gw_history_format(int64_t stream, int hours, const gw_history_row *rows, size_t n)
{
    sbuf b = {malloc(256 + n * 160), 0, 256 + n * 160, 0};

    if (b.p == NULL)
        return NULL;
    sb_printf(&b, "{\"stream\":%" PRId64 ",\"hours\":%d,\"buckets\":[", stream, hours);
    for (size_t i = 0; i < n; i++) {
        const gw_history_row *r = &rows[i];
        time_t t = (time_t)r->start;
        struct tm tm;
        char at[32] = "";
        int64_t frac = r->avg_milli % 1000;

        if (gmtime_r(&t, &tm) != NULL)
            strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
        sb_printf(&b, "%s{\"start\":%" PRId64 ",\"at\":\"%s\",\"seconds\":%" PRId64 ",\"avg\":%" PRId64,
                  i ? "," : "", r->start, at, r->seconds, r->avg_milli / 1000);
        if (frac) {
            char f[8];
            int k = snprintf(f, sizeof(f), "%03" PRId64, frac);

            while (k > 0 && f[k - 1] == '0')
                f[--k] = '\0';
            sb_printf(&b, ".%s", f);
        }
        sb_printf(&b,
                  ",\"peak\":%" PRId64 ",\"min\":%" PRId64 ",\"distinct\":%" PRId64 ",\"joins\":%" PRId64
                  ",\"leaves\":%" PRId64 "}",
                  r->peak, r->min, r->distinct, r->joins, r->leaves);
    }
    sb_printf(&b, "]}");
    if (b.bad) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- the thread ---- */

typedef struct {
    int64_t stream;
    int hours;
    int status;
    int64_t at_ms;              /* monotonic; 0: empty slot */
    int64_t ttl_ms;
    char *json;
    size_t len;
} cache_slot;

typedef struct {
    int64_t stream;
    int hours;
} history_key;

struct gw_history {
    gw_history_conf conf;       /* its strings are not kept: see dbc */
    gw_db_conf dbc;             /* the database settings, owned */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stop;
    history_key queue[GW_HISTORY_QUEUE_MAX];
    size_t nqueue;
    int inflight;               /* the thread is reading `current` */
    history_key current;
    cache_slot cache[GW_HISTORY_CACHE_SLOTS];
    size_t cache_bytes;
    gw_history_answer *done;
    size_t ndone, capdone;
    gw_history_stats st;

    /* thread only */
    MYSQL *db;
    int64_t retry_ms;           /* no connection attempt before this (monotonic) */
    int logged;                 /* the current failure streak was logged */
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t slot_of(int64_t stream, int hours)
{
    uint64_t x = (uint64_t)stream * 0x9E3779B97F4A7C15ull ^ (uint64_t)hours * 0xC2B2AE3D27D4EB4Full;

    x ^= x >> 29;
    return (size_t)(x % GW_HISTORY_CACHE_SLOTS);
}

/* recorded_at is a UTC DATETIME: UNIX_TIMESTAMP() must read it as UTC. */
static MYSQL *history_connect(gw_history *h, char *err, size_t errsize)
{
    return gw_db_connect(&h->dbc, 3, 5, "SET time_zone = '+00:00'", err, errsize);
}

/* One read: 0 and the JSON, or -1 (err says why; the connection is dropped). */
static int history_read(gw_history *h, int64_t stream, int hours, char **json, char *err, size_t errsize)
{
    char q[512];
    MYSQL_RES *res;
    MYSQL_ROW row;
    gw_history_row *rows;
    size_t n = 0;

    if (h->db == NULL) {
        if (mono_ms() < h->retry_ms) {
            snprintf(err, errsize, "not retried yet");
            return -1;
        }
        if ((h->db = history_connect(h, err, errsize)) == NULL) {
            h->retry_ms = mono_ms() + GW_HISTORY_RETRY_MS;
            return -1;
        }
    }
    /* Newest first so the LIMIT keeps the most recent buckets; reversed below. */
    snprintf(q, sizeof(q),
             "SELECT UNIX_TIMESTAMP(recorded_at), bucket_seconds, avg_viewers, peak_viewers, min_viewers, "
             "distinct_viewers, joins, leaves FROM viewer_history WHERE stream_id = %" PRId64
             " AND recorded_at >= UTC_TIMESTAMP() - INTERVAL %d HOUR ORDER BY recorded_at DESC LIMIT %d",
             stream, hours, GW_HISTORY_ROWS_MAX);
    pthread_mutex_lock(&h->mu);
    h->st.queries++;
    pthread_mutex_unlock(&h->mu);
    int qrc = mysql_query(h->db, q);
    if (qrc != 0 && (mysql_errno(h->db) == CR_SERVER_GONE_ERROR || mysql_errno(h->db) == CR_SERVER_LOST)) {
        /* The server closed a connection that sat idle (wait_timeout, a
         * replica restart): one retry on a fresh one before a 503. */
        mysql_close(h->db);
        if ((h->db = history_connect(h, err, errsize)) == NULL) {
            h->retry_ms = mono_ms() + GW_HISTORY_RETRY_MS;
            return -1;
        }
        pthread_mutex_lock(&h->mu);
        h->st.queries++;
        pthread_mutex_unlock(&h->mu);
        qrc = mysql_query(h->db, q);
    }
    if (qrc != 0 || (res = mysql_store_result(h->db)) == NULL) {
        snprintf(err, errsize, "%s", mysql_error(h->db));
        mysql_close(h->db);
        h->db = NULL;
        return -1;
    }
    rows = calloc(mysql_num_rows(res) + 1, sizeof(*rows));
    if (rows == NULL) {
        mysql_free_result(res);
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    while ((row = mysql_fetch_row(res)) != NULL) {
        gw_history_row *r = &rows[n];

        if (row[0] == NULL || row[2] == NULL || gw_history_parse_milli(row[2], &r->avg_milli))
            continue;
        r->start = strtoll(row[0], NULL, 10);
        r->seconds = row[1] ? strtoll(row[1], NULL, 10) : 0;
        r->peak = row[3] ? strtoll(row[3], NULL, 10) : 0;
        r->min = row[4] ? strtoll(row[4], NULL, 10) : 0;
        r->distinct = row[5] ? strtoll(row[5], NULL, 10) : 0;
        r->joins = row[6] ? strtoll(row[6], NULL, 10) : 0;
        r->leaves = row[7] ? strtoll(row[7], NULL, 10) : 0;
        n++;
    }
    mysql_free_result(res);
    for (size_t i = 0; i < n / 2; i++) {
        gw_history_row t = rows[i];

        rows[i] = rows[n - 1 - i];
        rows[n - 1 - i] = t;
    }
    *json = gw_history_format(stream, hours, rows, n);
    free(rows);
    if (*json == NULL) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    return 0;
}

/* Under mu: keep an answer in the cache (dropped when the cache is full). */
static void cache_put(gw_history *h, int64_t stream, int hours, int status, const char *json, int64_t ttl_ms)
{
    cache_slot *c = &h->cache[slot_of(stream, hours)];
    size_t len = strlen(json);
    char *copy;

    if (c->json) {
        h->cache_bytes -= c->len;
        free(c->json);
        memset(c, 0, sizeof(*c));
    }
    if (h->cache_bytes + len > GW_HISTORY_CACHE_BYTES) {
        /* expired answers elsewhere still hold bytes: free them first */
        int64_t now = mono_ms();
        for (size_t i = 0; i < GW_HISTORY_CACHE_SLOTS; i++) {
            cache_slot *e = &h->cache[i];
            if (e->json && now - e->at_ms >= e->ttl_ms) {
                h->cache_bytes -= e->len;
                free(e->json);
                memset(e, 0, sizeof(*e));
            }
        }
    }
    if (h->cache_bytes + len > GW_HISTORY_CACHE_BYTES || (copy = strdup(json)) == NULL)
        return;
    c->stream = stream;
    c->hours = hours;
    c->status = status;
    c->json = copy;
    c->len = len;
    c->at_ms = mono_ms();
    c->ttl_ms = ttl_ms;
    h->cache_bytes += len;
}

static void done_push(gw_history *h, int64_t stream, int hours, int status, char *json)
{
    if (h->ndone == h->capdone) {
        size_t cap = h->capdone ? h->capdone * 2 : 16;
        gw_history_answer *d = realloc(h->done, cap * sizeof(*d));

        if (d == NULL) {
            free(json); /* the waiters time out; the cache may still answer the next ones */
            return;
        }
        h->done = d;
        h->capdone = cap;
    }
    h->done[h->ndone++] = (gw_history_answer){stream, hours, status, json};
}

static void *history_main(void *arg)
{
    gw_history *h = arg;

    mysql_thread_init();
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        history_key k;
        char *json = NULL, err[512] = "";
        int status;

        if (h->nqueue == 0) {
            pthread_cond_wait(&h->cond, &h->mu);
            continue;
        }
        k = h->queue[0];
        memmove(h->queue, h->queue + 1, (h->nqueue - 1) * sizeof(h->queue[0]));
        h->nqueue--;
        h->inflight = 1;
        h->current = k;
        pthread_mutex_unlock(&h->mu);

        if (history_read(h, k.stream, k.hours, &json, err, sizeof(err)) == 0) {
            status = 200;
            h->logged = 0;
        } else {
            status = 503;
            if (!h->logged) {
                fprintf(stderr, "vc-gateway: history: database unavailable (%s:%d): %s\n", h->dbc.host,
                        h->dbc.port, err);
                h->logged = 1;
            }
            json = strdup("{\"error\":\"history unavailable: the database cannot be reached\"}");
        }

        pthread_mutex_lock(&h->mu);
        if (status != 200)
            h->st.query_errors++;
        h->inflight = 0;
        if (json) {
            cache_put(h, k.stream, k.hours, status, json,
                      status == 200 ? h->conf.cache_ms : GW_HISTORY_ERROR_CACHE_MS);
            done_push(h, k.stream, k.hours, status, json);
        }
        pthread_mutex_unlock(&h->mu);
        if (h->conf.wake)
            h->conf.wake(h->conf.wake_arg);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    if (h->db)
        mysql_close(h->db);
    h->db = NULL;
    mysql_thread_end();
    return NULL;
}

gw_history *gw_history_new(const gw_history_conf *conf, char *errstr, size_t errstr_size)
{
    gw_history *h = calloc(1, sizeof(*h));

    if (h == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    h->conf = *conf;
    h->conf.mysql_host = h->conf.mysql_user = h->conf.mysql_password = h->conf.mysql_db = NULL;
    if (gw_db_conf_copy(&h->dbc, conf->mysql_host, conf->mysql_port, conf->mysql_user, conf->mysql_password,
                        conf->mysql_db) < 0) {
        snprintf(errstr, errstr_size, "out of memory");
        free(h);
        return NULL;
    }
    if (h->conf.cache_ms < 0)
        h->conf.cache_ms = 0;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cond, NULL);
    if (pthread_create(&h->thread, NULL, history_main, h) != 0) {
        snprintf(errstr, errstr_size, "history: cannot start its thread");
        pthread_mutex_destroy(&h->mu);
        pthread_cond_destroy(&h->cond);
        gw_db_conf_free(&h->dbc);
        free(h);
        return NULL;
    }
    return h;
}

void gw_history_destroy(gw_history *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cond);
    for (size_t i = 0; i < GW_HISTORY_CACHE_SLOTS; i++)
        free(h->cache[i].json);
    for (size_t i = 0; i < h->ndone; i++)
        free(h->done[i].json);
    free(h->done);
    gw_db_conf_free(&h->dbc);
    free(h);
}

int gw_history_lookup(gw_history *h, int64_t stream, int hours, int *status, char **json)
{
    cache_slot *c;
    int rc = 0;

    *json = NULL;
    *status = 0;
    pthread_mutex_lock(&h->mu);
    h->st.requests++;
    c = &h->cache[slot_of(stream, hours)];
    if (c->json && c->stream == stream && c->hours == hours && mono_ms() - c->at_ms < c->ttl_ms) {
        *json = strdup(c->json);
        *status = *json ? c->status : 500;
        h->st.cache_hits++;
        rc = 1;
    } else if (!(h->inflight && h->current.stream == stream && h->current.hours == hours)) {
        size_t i;

        for (i = 0; i < h->nqueue; i++)
            if (h->queue[i].stream == stream && h->queue[i].hours == hours)
                break;
        if (i == h->nqueue) {
            if (h->nqueue == GW_HISTORY_QUEUE_MAX) {
                *status = 503;
                rc = 1;
            } else {
                h->queue[h->nqueue++] = (history_key){stream, hours};
                pthread_cond_signal(&h->cond);
            }
        }
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

void gw_history_take(gw_history *h, gw_history_answer **out, size_t *n)
{
    pthread_mutex_lock(&h->mu);
    *out = h->done;
    *n = h->ndone;
    h->done = NULL;
    h->ndone = h->capdone = 0;
    pthread_mutex_unlock(&h->mu);
}

void gw_history_get_stats(gw_history *h, gw_history_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    *st = h->st;
    pthread_mutex_unlock(&h->mu);
}
