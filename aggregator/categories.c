/* categories.c -- see categories.h. */
#include "categories.h"

#include <inttypes.h>
#include <mysql.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOOKUP_BATCH 500

/* cache: open addressing, stream -> category (> 0 known, 0 asked, -t: unknown until t) */
typedef struct {
    int64_t stream, value;
} slot;

struct agg_categories {
    slot *cache;
    size_t cap, used;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t *queue;          /* ring of streams asked, not yet looked up */
    size_t head, nqueue;
    int64_t *ans_stream, *ans_cat; /* answers (cat 0: not in the table) */
    size_t nans, cap_ans;
    int stop;
    pthread_t thread;

    char host[256], user[256], password[256], db[256];
    int port, refresh_ms;
};

static size_t hash64(int64_t v)
{
    uint64_t x = (uint64_t)v;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static slot *cache_find(agg_categories *c, int64_t stream, int insert)
{
    size_t i = hash64(stream) & (c->cap - 1);
    for (;;) {
        if (c->cache[i].stream == stream)
            return &c->cache[i];
        if (c->cache[i].stream == 0) {
            if (!insert)
                return NULL;
            if (c->used + 1 > c->cap / 2) { /* bounded: start over */
                memset(c->cache, 0, c->cap * sizeof(*c->cache));
                c->used = 0;
                return cache_find(c, stream, insert);
            }
            c->cache[i].stream = stream;
            c->cache[i].value = 0;
            c->used++;
            return &c->cache[i];
        }
        i = (i + 1) & (c->cap - 1);
    }
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void post_answers(agg_categories *c, const int64_t *streams, const int64_t *cats, size_t n)
{
    pthread_mutex_lock(&c->mu);
    if (c->nans + n > c->cap_ans) {
        size_t cap = c->cap_ans ? c->cap_ans : 1024;
        while (cap < c->nans + n)
            cap *= 2;
        int64_t *s = realloc(c->ans_stream, cap * sizeof(*s));
        if (s != NULL)
            c->ans_stream = s;
        int64_t *k = s ? realloc(c->ans_cat, cap * sizeof(*k)) : NULL;
        if (k != NULL) {
            c->ans_cat = k;
            c->cap_ans = cap;
        }
    }
    if (c->nans + n <= c->cap_ans) {
        memcpy(c->ans_stream + c->nans, streams, n * sizeof(*streams));
        memcpy(c->ans_cat + c->nans, cats, n * sizeof(*cats));
        c->nans += n;
    }
    pthread_mutex_unlock(&c->mu);
}

static void *lookup_main(void *arg)
{
    agg_categories *c = arg;
    MYSQL *db = NULL;
    int64_t ids[LOOKUP_BATCH], cats[LOOKUP_BATCH];
    char *sql = malloc(64 + LOOKUP_BATCH * 22);

    while (sql != NULL) {
        size_t n;
        pthread_mutex_lock(&c->mu);
        while (!c->stop && c->nqueue == 0)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->stop) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        n = c->nqueue < LOOKUP_BATCH ? c->nqueue : LOOKUP_BATCH;
        for (size_t i = 0; i < n; i++)
            ids[i] = c->queue[(c->head + i) % AGG_CATEGORY_QUEUE_MAX];
        c->head = (c->head + n) % AGG_CATEGORY_QUEUE_MAX;
        c->nqueue -= n;
        pthread_mutex_unlock(&c->mu);
        /* a failed lookup is not retried here: the cache asks again after
         * AGG_CATEGORY_RETRY_MS */

        if (db == NULL) {
            unsigned timeout = 5;
            db = mysql_init(NULL);
            if (db != NULL) {
                mysql_options(db, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
                mysql_options(db, MYSQL_OPT_READ_TIMEOUT, &timeout);
                if (mysql_real_connect(db, c->host, c->user, c->password, c->db, (unsigned)c->port, NULL, 0) ==
                    NULL) {
                    fprintf(stderr, "vc-aggregator: categories: %s (retrying)\n", mysql_error(db));
                    mysql_close(db);
                    db = NULL;
                }
            }
            if (db == NULL) {
                sleep_ms(c->refresh_ms > 1000 ? c->refresh_ms : 1000);
                continue;
            }
        }
        size_t len = (size_t)snprintf(sql, 64, "SELECT stream_id, category_id FROM streams WHERE stream_id IN (");
        for (size_t i = 0; i < n; i++)
            len += (size_t)snprintf(sql + len, 24, "%s%" PRId64, i ? "," : "", ids[i]);
        sql[len++] = ')';
        sql[len] = '\0';
        if (mysql_real_query(db, sql, len) != 0) {
            fprintf(stderr, "vc-aggregator: categories: %s (reconnecting)\n", mysql_error(db));
            mysql_close(db);
            db = NULL;
            sleep_ms(1000);
            continue;
        }
        MYSQL_RES *res = mysql_store_result(db);
        memset(cats, 0, sizeof(cats));
        if (res != NULL) {
            MYSQL_ROW row;
            while ((row = mysql_fetch_row(res)) != NULL) {
                int64_t s = row[0] ? strtoll(row[0], NULL, 10) : 0, k = row[1] ? strtoll(row[1], NULL, 10) : 0;
                for (size_t i = 0; i < n; i++)
                    if (ids[i] == s)
                        cats[i] = k;
            }
            mysql_free_result(res);
        }
        post_answers(c, ids, cats, n);
        sleep_ms(c->refresh_ms);
    }
    if (db)
        mysql_close(db);
    free(sql);
    mysql_thread_end();
    return NULL;
}

agg_categories *agg_categories_new(const agg_categories_conf *conf)
{
    agg_categories *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->cap = 1;
    while (c->cap < 2 * (size_t)AGG_CATEGORY_CACHE_MAX)
        c->cap <<= 1;
    c->cache = calloc(c->cap, sizeof(*c->cache));
    c->queue = malloc(AGG_CATEGORY_QUEUE_MAX * sizeof(*c->queue));
    snprintf(c->host, sizeof(c->host), "%s", conf->host);
    snprintf(c->user, sizeof(c->user), "%s", conf->user);
    snprintf(c->password, sizeof(c->password), "%s", conf->password);
    snprintf(c->db, sizeof(c->db), "%s", conf->db);
    c->port = conf->port;
    c->refresh_ms = conf->refresh_ms;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (c->cache == NULL || c->queue == NULL || pthread_create(&c->thread, NULL, lookup_main, c) != 0) {
        free(c->cache);
        free(c->queue);
        free(c);
        return NULL;
    }
    return c;
}

void agg_categories_destroy(agg_categories *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c->cache);
    free(c->queue);
    free(c->ans_stream);
    free(c->ans_cat);
    free(c);
}

int64_t agg_categories_get(agg_categories *c, int64_t stream_id, int64_t now_ms)
{
    slot *s;
    if (stream_id <= 0)
        return 0;
    s = cache_find(c, stream_id, 1);
    if (s->value > 0)
        return s->value;
    if (s->value < 0 && -s->value > now_ms)
        return 0; /* asked already, or not in the table: ask again later */
    pthread_mutex_lock(&c->mu);
    if (c->nqueue < AGG_CATEGORY_QUEUE_MAX) {
        c->queue[(c->head + c->nqueue++) % AGG_CATEGORY_QUEUE_MAX] = stream_id;
        pthread_cond_signal(&c->cv);
        s->value = -(now_ms + AGG_CATEGORY_RETRY_MS);
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

size_t agg_categories_drain(agg_categories *c, int64_t *streams, int64_t *cats, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&c->mu);
    size_t i = 0;
    for (; i < c->nans && n < max; i++) {
        if (c->ans_cat[i] > 0) {
            cache_find(c, c->ans_stream[i], 1)->value = c->ans_cat[i];
            streams[n] = c->ans_stream[i];
            cats[n++] = c->ans_cat[i];
        }
    }
    if (c->nans > i) {
        memmove(c->ans_stream, c->ans_stream + i, (c->nans - i) * sizeof(*c->ans_stream));
        memmove(c->ans_cat, c->ans_cat + i, (c->nans - i) * sizeof(*c->ans_cat));
    }
    c->nans -= i;
    pthread_mutex_unlock(&c->mu);
    return n;
}
