/* checkpoint.c -- see checkpoint.h. */
#include "checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vc_keys.h"

#define CK_MAGIC "VCK1"
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

static int produce_chunk(rd_kafka_t *rkp, const char *topic, int32_t kpart, int32_t p, uint32_t chunk,
                         uint8_t *buf, size_t len, char *errstr, size_t errstr_size)
{
    char key[32];
    rd_kafka_resp_err_t err;
    snprintf(key, sizeof(key), "%d/%u", (int)p, chunk);
    err = rd_kafka_producev(rkp, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(kpart),
                            RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(buf, len),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (err) {
        snprintf(errstr, errstr_size, "checkpoint produce: %s", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

int agg_checkpoint_write(vc_redis_batch *b, rd_kafka_t *rkp, const char *topic, int32_t topic_partitions,
                         int32_t p, int64_t offset, char *errstr, size_t errstr_size)
{
    keylist keys = {0};
    uint8_t *buf = NULL;
    size_t len, cap = CK_HEAD + AGG_CHECKPOINT_CHUNK_MAX;
    uint32_t chunk = 0, chunks = 0;
    int rc = -1, pass;

    if (scan_keys(b, p, &keys, errstr, errstr_size) < 0)
        goto out;
    vc_redis_batch_reset(b);
    for (size_t i = 0; i < keys.n; i++) {
        const char *argv[2] = {"DUMP", keys.keys[i]};
        size_t argvlen[2] = {4, keys.lens[i]};
        if (vc_redis_batch_add(b, keys.keys[i], 2, argv, argvlen) < 0) {
            snprintf(errstr, errstr_size, "too many keys for one checkpoint batch");
            goto out;
        }
    }
    if (keys.n > 0 && vc_redis_batch_exec(b, errstr, errstr_size) < 0)
        goto out;
    buf = malloc(cap);
    if (buf == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    /* pass 0 counts the chunks, pass 1 produces them */
    for (pass = 0; pass < 2; pass++) {
        chunk = 0;
        len = CK_HEAD;
        for (size_t i = 0; i <= keys.n; i++) {
            const redisReply *r = i < keys.n ? vc_redis_batch_reply(b, (int)i) : NULL;
            size_t rec = 0;
            if (r != NULL && r->type != REDIS_REPLY_STRING)
                continue; /* gone meanwhile (nil) */
            if (r != NULL) {
                rec = 8 + keys.lens[i] + r->len;
                if (rec > AGG_CHECKPOINT_CHUNK_MAX) {
                    snprintf(errstr, errstr_size, "key %s too large for a checkpoint chunk", keys.keys[i]);
                    goto out;
                }
            }
            if (r == NULL || len + rec > cap) {
                memcpy(buf, CK_MAGIC, 4);
                put_u64(buf + 4, (uint64_t)offset);
                put_u32(buf + 12, chunk);
                put_u32(buf + 16, chunks);
                if (pass == 1 && produce_chunk(rkp, topic, p % topic_partitions, p, chunk, buf, len, errstr,
                                               errstr_size) < 0)
                    goto out;
                chunk++;
                len = CK_HEAD;
                if (r == NULL)
                    break;
            }
            put_u32(buf + len, (uint32_t)keys.lens[i]);
            memcpy(buf + len + 4, keys.keys[i], keys.lens[i]);
            len += 4 + keys.lens[i];
            put_u32(buf + len, (uint32_t)r->len);
            memcpy(buf + len + 4, r->str, r->len);
            len += 4 + r->len;
        }
        chunks = chunk;
    }
    if (rd_kafka_flush(rkp, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errstr, errstr_size, "checkpoint not delivered within 30 s");
        goto out;
    }
    rc = 0;
out:
    free(buf);
    keylist_free(&keys);
    return rc;
}

typedef struct {
    uint8_t *val;
    size_t len;
} chunk_msg;

int agg_checkpoint_restore(vc_redis_batch *b, const char *brokers, const char *topic,
                           int32_t topic_partitions, int32_t p, int64_t *offset, char *errstr,
                           size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *list = NULL;
    int32_t kpart = p % topic_partitions;
    int64_t lo = 0, hi = 0;
    chunk_msg *chunks = NULL;
    size_t nchunks = 0;
    char meta[VC_KEY_MAX];
    int rc = -1;

    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, errstr_size) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "group.id", "vc-aggregator-checkpoint-reader", errstr, errstr_size) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, errstr_size) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    if (rd_kafka_query_watermark_offsets(rk, topic, kpart, &lo, &hi, 10000) != 0) {
        snprintf(errstr, errstr_size, "checkpoint topic %s[%d]: watermarks unavailable", topic, (int)kpart);
        goto out;
    }
    if (hi <= lo) {
        rc = 0;
        goto out;
    }
    chunks = calloc(4096, sizeof(*chunks)); /* newest message per chunk number */
    if (chunks == NULL)
        goto out;
    list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic, kpart)->offset = lo;
    rd_kafka_assign(rk, list);
    {
        char prefix[32];
        int plen = snprintf(prefix, sizeof(prefix), "%d/", (int)p);
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int64_t next = lo; next < hi;) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
            clock_gettime(CLOCK_MONOTONIC, &t);
            if (t.tv_sec - t0.tv_sec > 60) {
                if (m)
                    rd_kafka_message_destroy(m);
                snprintf(errstr, errstr_size, "checkpoint topic not read within 60 s");
                goto out;
            }
            if (m == NULL)
                continue;
            if (m->err) {
                rd_kafka_message_destroy(m);
                continue;
            }
            next = m->offset + 1;
            if (m->key_len > (size_t)plen && memcmp(m->key, prefix, (size_t)plen) == 0 && m->len >= CK_HEAD &&
                memcmp(m->payload, CK_MAGIC, 4) == 0) {
                uint32_t c = get_u32((const uint8_t *)m->payload + 12);
                if (c < 4096) {
                    free(chunks[c].val);
                    chunks[c].val = malloc(m->len);
                    if (chunks[c].val != NULL) {
                        memcpy(chunks[c].val, m->payload, m->len);
                        chunks[c].len = m->len;
                    }
                    if (c + 1 > nchunks)
                        nchunks = c + 1;
                }
            }
            rd_kafka_message_destroy(m);
        }
    }
    if (nchunks == 0 || chunks[0].val == NULL) {
        rc = 0;
        goto out;
    }
    {
        uint64_t ck_offset = get_u64(chunks[0].val + 4);
        uint32_t n = get_u32(chunks[0].val + 16);
        const uint8_t *meta_dump = NULL;
        size_t meta_len = 0;
        vc_key_meta(meta, sizeof(meta), p);
        for (uint32_t c = 0; c < n; c++) {
            if (c >= nchunks || chunks[c].val == NULL || get_u64(chunks[c].val + 4) != ck_offset ||
                get_u32(chunks[c].val + 16) != n) {
                snprintf(errstr, errstr_size, "checkpoint of partition %d at offset %" PRIu64 " is incomplete",
                         (int)p, ck_offset);
                goto out;
            }
        }
        vc_redis_batch_reset(b);
        for (uint32_t c = 0; c < n; c++) {
            size_t pos = CK_HEAD, len = chunks[c].len;
            const uint8_t *v = chunks[c].val;
            while (pos + 8 <= len) {
                uint32_t kl = get_u32(v + pos), dl;
                if (pos + 4 + kl + 4 > len)
                    break;
                dl = get_u32(v + pos + 4 + kl);
                if (pos + 8 + kl + dl > len)
                    break;
                const char *key = (const char *)v + pos + 4;
                const char *dump = (const char *)v + pos + 8 + kl;
                if (kl == strlen(meta) && memcmp(key, meta, kl) == 0) {
                    meta_dump = (const uint8_t *)dump;
                    meta_len = dl;
                } else {
                    const char *argv[5] = {"RESTORE", key, "0", dump, "REPLACE"};
                    size_t argvlen[5] = {7, kl, 1, dl, 7};
                    char k[VC_KEY_MAX * 4];
                    snprintf(k, sizeof(k), "%.*s", (int)kl, key);
                    vc_redis_batch_add(b, k, 5, argv, argvlen);
                }
                pos += 8 + kl + dl;
            }
        }
        if (meta_dump == NULL) {
            snprintf(errstr, errstr_size, "checkpoint of partition %d has no meta key", (int)p);
            goto out;
        }
        if (vc_redis_batch_count(b) > 0 && vc_redis_batch_exec(b, errstr, errstr_size) < 0)
            goto out;
        for (int i = 0; i < vc_redis_batch_count(b); i++) {
            const redisReply *r = vc_redis_batch_reply(b, i);
            if (r == NULL || r->type == REDIS_REPLY_ERROR) {
                snprintf(errstr, errstr_size, "RESTORE: %s", r ? r->str : "no reply");
                goto out;
            }
        }
        /* the meta hash last: until it exists the partition reads as empty */
        vc_redis_batch_reset(b);
        const char *argv[5] = {"RESTORE", meta, "0", (const char *)meta_dump, "REPLACE"};
        size_t argvlen[5] = {7, strlen(meta), 1, meta_len, 7};
        vc_redis_batch_add(b, meta, 5, argv, argvlen);
        if (vc_redis_batch_exec(b, errstr, errstr_size) < 0)
            goto out;
        if (vc_redis_batch_reply(b, 0)->type == REDIS_REPLY_ERROR) {
            snprintf(errstr, errstr_size, "RESTORE meta: %s", vc_redis_batch_reply(b, 0)->str);
            goto out;
        }
        *offset = (int64_t)ck_offset;
        rc = 1;
    }
out:
    if (chunks) {
        for (size_t i = 0; i < 4096; i++)
            free(chunks[i].val);
        free(chunks);
    }
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
