/* checkpoint.c -- see checkpoint.h. */
#include "checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vc_keys.h"

#define CK_MAGIC "VCK3"
#define CK_HEAD 20

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

typedef struct {
    char **keys;
    size_t *lens;
    size_t n, cap;
} keylist;

static void keylist_free(keylist *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->keys[i]);
    free(k->keys);
    free(k->lens);
}

static int keylist_add(keylist *k, const char *s, size_t len)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 256;
        char **nk = realloc(k->keys, cap * sizeof(*nk));
        size_t *nl;
        if (nk == NULL)
            return -1;
        k->keys = nk;
        nl = realloc(k->lens, cap * sizeof(*nl));
        if (nl == NULL)
            return -1;
        k->lens = nl;
        k->cap = cap;
    }
    k->keys[k->n] = malloc(len + 1);
    if (k->keys[k->n] == NULL)
        return -1;
    memcpy(k->keys[k->n], s, len);
    k->keys[k->n][len] = '\0';
    k->lens[k->n++] = len;
    return 0;
}

/* Every key of partition p (SCAN on the node of p's slot). */
static int scan_keys(vc_redis_batch *b, int32_t p, keylist *out, char *errstr, size_t errstr_size)
{
    char meta[VC_KEY_MAX], prefix[VC_KEY_MAX], pattern[VC_KEY_MAX + 2], cursor[32] = "0";
    vc_key_meta(meta, sizeof(meta), p);
    vc_key_prefix(prefix, sizeof(prefix), p);
    /* the prefix holds '{' '}': glob-escape nothing else needs it */
    snprintf(pattern, sizeof(pattern), "%s*", prefix);
    do {
        const redisReply *r;
        vc_redis_batch_reset(b);
        vc_redis_batch_addf(b, meta, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (vc_redis_batch_exec(b, errstr, errstr_size) < 0)
            return -1;
        r = vc_redis_batch_reply(b, 0);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            snprintf(errstr, errstr_size, "SCAN: unexpected reply");
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++)
            if (keylist_add(out, r->element[1]->element[i]->str, r->element[1]->element[i]->len) < 0) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
            }
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

int agg_checkpoint_produce(rd_kafka_t *rkp, const char *topic, int32_t topic_partitions, const char *events_topic,
                           int32_t p, int64_t offset, const uint8_t *state, size_t len, void *msg_opaque,
                           int *queued, char *errstr, size_t errstr_size)
{
    uint32_t chunks = (uint32_t)((len + AGG_CHECKPOINT_CHUNK_MAX - 1) / AGG_CHECKPOINT_CHUNK_MAX);
    size_t tlen = strlen(events_topic), head = CK_HEAD + 2 + tlen;
    uint8_t *buf = tlen <= 0xffff ? malloc(head + AGG_CHECKPOINT_CHUNK_MAX) : NULL;
    if (chunks == 0)
        chunks = 1;
    *queued = 0;
    if (buf == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (uint32_t c = 0; c < chunks; c++) {
        size_t at = (size_t)c * AGG_CHECKPOINT_CHUNK_MAX;
        size_t n = len - at < AGG_CHECKPOINT_CHUNK_MAX ? len - at : AGG_CHECKPOINT_CHUNK_MAX;
        char key[32];
        rd_kafka_resp_err_t err;
        memcpy(buf, CK_MAGIC, 4);
        put_u64(buf + 4, (uint64_t)offset);
        put_u32(buf + 12, c);
        put_u32(buf + 16, chunks);
        buf[CK_HEAD] = (uint8_t)(tlen & 0xff);
        buf[CK_HEAD + 1] = (uint8_t)(tlen >> 8);
        memcpy(buf + CK_HEAD + 2, events_topic, tlen);
        if (n > 0)
            memcpy(buf + head, state + at, n);
        snprintf(key, sizeof(key), "%d/%u", (int)p, c);
        do {
            err = rd_kafka_producev(rkp, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p % topic_partitions),
                                    RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(buf, head + n),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(msg_opaque),
                                    RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rkp, 10);
        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        if (err) {
            snprintf(errstr, errstr_size, "checkpoint produce: %s", rd_kafka_err2str(err));
            free(buf);
            return -1;
        }
        (*queued)++;
    }
    free(buf);
    return (int)chunks;
}

/* Per partition being read: the newest complete checkpoint and the one being
 * assembled. */
typedef struct {
    int32_t p;
    uint8_t *best;
    size_t best_len;
    int64_t best_off;
    uint8_t *cand;
    size_t cand_len, cand_cap;
    int64_t cand_off;
    uint32_t cand_next, cand_chunks;
} ck_reader;

static void ck_chunk(ck_reader *r, const uint8_t *v, size_t len, size_t head)
{
    int64_t off = (int64_t)get_u64(v + 4);
    uint32_t c = get_u32(v + 12), chunks = get_u32(v + 16);
    size_t n = len - head;
    if (chunks == 0 || c >= chunks)
        return;
    if (c == 0) {
        r->cand_len = 0;
        r->cand_off = off;
        r->cand_next = 0;
        r->cand_chunks = chunks;
    } else if (r->cand_chunks == 0 || c != r->cand_next || off != r->cand_off || chunks != r->cand_chunks) {
        r->cand_chunks = 0; /* out of order: drop the assembly */
        return;
    }
    if (r->cand_len + n > r->cand_cap) {
        size_t cap = r->cand_cap ? r->cand_cap : AGG_CHECKPOINT_CHUNK_MAX;
        while (cap < r->cand_len + n)
            cap *= 2;
        uint8_t *nb = realloc(r->cand, cap);
        if (nb == NULL) {
            r->cand_chunks = 0;
            return;
        }
        r->cand = nb;
        r->cand_cap = cap;
    }
    memcpy(r->cand + r->cand_len, v + head, n);
    r->cand_len += n;
    r->cand_next = c + 1;
    if (r->cand_next == r->cand_chunks) {
        free(r->best);
        r->best = r->cand;
        r->best_len = r->cand_len;
        r->best_off = r->cand_off;
        r->cand = NULL;
        r->cand_cap = 0;
        r->cand_len = 0;
        r->cand_chunks = 0;
    }
}

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int agg_checkpoint_load(const char *brokers, const char *topic, int32_t topic_partitions, const char *events_topic,
                        const int32_t *ps, int n, uint8_t **states, size_t *lens, int64_t *offsets,
                        int timeout_ms, char *errstr, size_t errstr_size)
{
    size_t tlen = strlen(events_topic);
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *list = NULL;
    ck_reader *rd = calloc((size_t)(n > 0 ? n : 1), sizeof(*rd));
    int64_t *next = calloc((size_t)topic_partitions, sizeof(*next)), *hi = calloc((size_t)topic_partitions, sizeof(*hi));
    int rc = -1, open = 0;
    int64_t deadline = mono_ms() + timeout_ms;

    for (int i = 0; i < n; i++) {
        states[i] = NULL;
        lens[i] = 0;
        offsets[i] = -1;
    }
    if (rd == NULL || next == NULL || hi == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    if (n == 0 || topic_partitions <= 0) {
        rc = 0;
        goto out;
    }
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, errstr_size) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "group.id", "vc-aggregator-checkpoint-reader", errstr, errstr_size) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, errstr_size) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "fetch.max.bytes", "67108864", errstr, errstr_size) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    list = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++) {
        int32_t kp = ps[i] % topic_partitions;
        rd[i].p = ps[i];
        rd[i].best_off = -1;
        if (hi[kp] != 0 || next[kp] != 0)
            continue; /* already listed */
        int64_t lo = 0, h = 0;
        if (rd_kafka_query_watermark_offsets(rk, topic, kp, &lo, &h, 10000) != 0) {
            snprintf(errstr, errstr_size, "checkpoint topic %s[%d]: watermarks unavailable", topic, (int)kp);
            goto out;
        }
        if (h <= lo)
            continue;
        next[kp] = lo;
        hi[kp] = h;
        rd_kafka_topic_partition_list_add(list, topic, kp)->offset = lo;
        open++;
    }
    if (open > 0)
        rd_kafka_assign(rk, list);
    while (open > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (mono_ms() > deadline) {
            if (m)
                rd_kafka_message_destroy(m);
            snprintf(errstr, errstr_size, "checkpoint topic not read within %d ms", timeout_ms);
            goto out;
        }
        if (m == NULL)
            continue;
        if (m->err || m->partition < 0 || m->partition >= topic_partitions) {
            rd_kafka_message_destroy(m);
            continue;
        }
        int32_t kp = m->partition;
        if (m->offset >= next[kp] && next[kp] < hi[kp]) {
            next[kp] = m->offset + 1;
            if (next[kp] >= hi[kp])
                open--;
            const char *slash = m->key ? memchr(m->key, '/', m->key_len) : NULL;
            const uint8_t *v = m->payload;
            /* chunks of another events topic (a shared checkpoint topic) are not ours */
            if (slash && m->len >= CK_HEAD + 2 + tlen && memcmp(v, CK_MAGIC, 4) == 0 &&
                (size_t)(v[CK_HEAD] | (v[CK_HEAD + 1] << 8)) == tlen &&
                memcmp(v + CK_HEAD + 2, events_topic, tlen) == 0) {
                char pbuf[16];
                size_t plen = (size_t)(slash - (const char *)m->key);
                if (plen > 0 && plen < sizeof(pbuf)) {
                    memcpy(pbuf, m->key, plen);
                    pbuf[plen] = '\0';
                    int32_t p = (int32_t)strtol(pbuf, NULL, 10);
                    for (int i = 0; i < n; i++)
                        if (rd[i].p == p)
                            ck_chunk(&rd[i], v, m->len, CK_HEAD + 2 + tlen);
                }
            }
        }
        rd_kafka_message_destroy(m);
    }
    for (int i = 0; i < n; i++) {
        states[i] = rd[i].best;
        lens[i] = rd[i].best_len;
        offsets[i] = rd[i].best_off;
        rd[i].best = NULL;
    }
    rc = 0;
out:
    for (int i = 0; rd && i < n; i++) {
        free(rd[i].best);
        free(rd[i].cand);
    }
    free(rd);
    free(next);
    free(hi);
    if (list)
        rd_kafka_topic_partition_list_destroy(list);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    return rc;
}

int agg_partition_clear(vc_redis_batch *b, int32_t p, char *errstr, size_t errstr_size)
{
    keylist keys = {0};
    char meta[VC_KEY_MAX];
    int rc = -1;

    vc_key_meta(meta, sizeof(meta), p);
    if (scan_keys(b, p, &keys, errstr, errstr_size) < 0)
        goto out;
    vc_redis_batch_reset(b);
    for (size_t i = 0; i < keys.n; i++) {
        const char *argv[2] = {"DEL", keys.keys[i]};
        size_t argvlen[2] = {3, keys.lens[i]};
        if (strcmp(keys.keys[i], meta) != 0 && vc_redis_batch_add(b, keys.keys[i], 2, argv, argvlen) < 0) {
            snprintf(errstr, errstr_size, "too many keys");
            goto out;
        }
    }
    vc_redis_batch_addf(b, meta, "DEL %s", meta);
    if (vc_redis_batch_exec(b, errstr, errstr_size) < 0)
        goto out;
    rc = 0;
out:
    keylist_free(&keys);
    return rc;
}
