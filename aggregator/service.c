/* service.c -- the consumer loop of vc-aggregator (see service.h).
 *
 * Progress lives in Redis, not in Kafka: each partition's meta hash holds its
 * last applied offset, written by the apply script atomically with the
 * batch. On assignment the consumer reads it and starts at offset + 1; Kafka
 * commits are advisory (lag tools only). A script call that finds another
 * offset than expected (a lost write after a failover, a FLUSHALL, a second
 * instance) makes the partition reload its state from Redis and seek; a
 * missing state is rebuilt from the start of the log. */
#include "service.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "apply.h"
#include "categories.h"
#include "checkpoint.h"
#include "vc_event.h"
#include "vc_keys.h"
#include "vc_partition.h"
#include "vc_redis.h"

#define LOG(svc, fmt, ...) fprintf(stderr, "vc-aggregator %s: " fmt "\n", (svc)->cfg->id, ##__VA_ARGS__)

struct agg_service {
    const agg_config *cfg;
    agg_metrics *m;
    agg_rules_conf rules;
    rd_kafka_t *rk;        /* consumer */
    rd_kafka_t *rkp;       /* producer: dead letters, checkpoints */
    rd_kafka_queue_t *q;
    vc_redis *redis;
    vc_redis_batch *batch;
    char sha[41];
    int32_t npartitions;
    agg_part *parts[AGG_MAX_PARTITIONS];
    agg_categories *cats;  /* NULL: no MariaDB configured */
    int64_t seek_to[AGG_MAX_PARTITIONS]; /* -1: none; ignore older messages */
    int use_eval[AGG_MAX_PARTITIONS];
    rd_kafka_message_t **msgs;
    size_t nmsgs;                /* capacity of msgs: messages per batch */
    int dlq_pending;
    int paused;
    int redis_ok;
    int64_t backoff_ms;
    int64_t last_idle_ms;
    volatile sig_atomic_t *stop;
    int32_t ckpt_partitions;               /* 0: no checkpoint topic */
    int64_t last_ckpt_ms;
    int64_t ckpt_offset[AGG_MAX_PARTITIONS]; /* offset of the last checkpoint written */
    int rebuild_mode;
    uint64_t rebuilt_events;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int script_sha(char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(agg_apply_script, strlen(agg_apply_script), md, &n, EVP_sha1(), NULL) != 1 ||
        n != 20)
        return -1;
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* ---- partition state ---------------------------------------------------- */

/* Read the saved states of partitions ps[0..n) from Redis and build their
 * agg_part; start[i] is where consumption resumes. Retries while Redis is
 * unreachable, until *stop. 0, or -1 when stopped or on a fatal error. */
static int parts_load(agg_service *svc, const int32_t *ps, int n, int64_t *start)
{
    char meta[VC_KEY_MAX], err[256];
    int64_t backoff = 100;
    int missing[AGG_MAX_PARTITIONS] = {0};

    if (n == 0)
        return 0;
    for (;;) {
        vc_redis_batch_reset(svc->batch);
        for (int i = 0; i < n; i++) {
            vc_key_meta(meta, sizeof(meta), ps[i]);
            if (vc_redis_batch_addf(svc->batch, meta, "HMGET %s %s %s %s", meta, AGG_META_OFFSET,
                                    AGG_META_LIVENESS, AGG_META_SYNC) < 0)
                return -1;
        }
        agg_metrics_exec(svc->m, 1);
        int xrc = vc_redis_batch_exec(svc->batch, err, sizeof(err));
        agg_metrics_exec(svc->m, 0);
        if (xrc == 0) {
            int ok = 1;
            for (int i = 0; i < n && ok; i++) {
                const redisReply *r = vc_redis_batch_reply(svc->batch, i);
                ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3;
            }
            if (ok)
                break;
            snprintf(err, sizeof(err), "unexpected HMGET reply");
        }
        atomic_store(&svc->m->redis_up, 0);
        atomic_fetch_add(&svc->m->redis_errors, 1);
        LOG(svc, "loading partition states: %s (retrying)", err);
        if (svc->stop && *svc->stop)
            return -1;
        sleep_ms(backoff);
        backoff = backoff < 2000 ? backoff * 2 : 2000;
    }

    for (int i = 0; i < n; i++) {
        const redisReply *r = vc_redis_batch_reply(svc->batch, i);
        const redisReply *off = r->element[0], *lv = r->element[1], *sa = r->element[2];
        int64_t applied = -1;
        int32_t p = ps[i];
        agg_part *part;

        if (off->type == REDIS_REPLY_STRING) {
            char *end;
            applied = strtoll(off->str, &end, 10);
            if (*end != '\0' || applied < -1) {
                LOG(svc, "partition %d: bad offset '%s' in Redis", p, off->str);
                return -1;
            }
        }
        part = agg_part_new(p, &svc->rules, applied,
                            lv->type == REDIS_REPLY_STRING ? (const uint8_t *)lv->str : NULL,
                            lv->type == REDIS_REPLY_STRING ? lv->len : 0,
                            sa->type == REDIS_REPLY_STRING ? (const uint8_t *)sa->str : NULL,
                            sa->type == REDIS_REPLY_STRING ? sa->len : 0, err, sizeof(err));
        if (part == NULL) {
            LOG(svc, "partition %d: saved state does not load: %s", p, err);
            return -1;
        }
        agg_part_destroy(svc->parts[p]);
        svc->parts[p] = part;
        svc->use_eval[p] = 0;
        start[i] = applied + 1;
        missing[i] = applied < 0;
        svc->seek_to[p] = start[i];
        atomic_store(&svc->m->assigned[p], 1);
    }
    /* the replies are read: the batch may be reused from here */
    for (int i = 0; i < n; i++) {
        int32_t p = ps[i];
        int64_t lo = 0, hi = 0, ck = -1;
        rd_kafka_resp_err_t kerr;
        if (!missing[i]) {
            /* A state ahead of the log's end belongs to another log (the topic
             * was recreated): the log is the truth, so start over from it. */
            if (rd_kafka_query_watermark_offsets(svc->rk, svc->cfg->events_topic, p, &lo, &hi, 10000) == 0 &&
                start[i] > hi) {
                LOG(svc, "partition %d: Redis holds offset %" PRId64 " but the log ends at %" PRId64
                         ": the state belongs to another log; clearing it and rebuilding from the log",
                    p, start[i] - 1, hi);
                if (agg_partition_clear(svc->batch, p, err, sizeof(err)) < 0) {
                    LOG(svc, "partition %d: clear failed: %s", p, err);
                    return -1;
                }
                atomic_fetch_add(&svc->m->rebuilds, 1);
                if (parts_load(svc, &ps[i], 1, &start[i]) < 0)
                    return -1;
            }
            continue;
        }
        if (svc->ckpt_partitions > 0) {
            int rc = agg_checkpoint_restore(svc->batch, svc->cfg->brokers, svc->cfg->checkpoint_topic,
                                            svc->ckpt_partitions, p, &ck, err, sizeof(err));
            if (rc < 0)
                LOG(svc, "partition %d: checkpoint not usable: %s", p, err);
            if (rc == 1) {
                LOG(svc, "partition %d: restored the checkpoint at offset %" PRId64, p, ck);
                if (parts_load(svc, &ps[i], 1, &start[i]) < 0)
                    return -1;
                continue;
            }
        }
        kerr = rd_kafka_query_watermark_offsets(svc->rk, svc->cfg->events_topic, p, &lo, &hi, 10000);
        if (kerr) {
            LOG(svc, "partition %d: watermarks: %s", p, rd_kafka_err2str(kerr));
            lo = 0;
        }
        start[i] = lo;
        svc->seek_to[p] = lo;
        if (hi > lo)
            LOG(svc, "partition %d: no state in Redis: replaying from offset %" PRId64
                     " (%" PRId64 " events)", p, lo, hi - lo);
    }
    atomic_store(&svc->m->redis_up, 1);
    return 0;
}

static void parts_drop(agg_service *svc, int32_t p)
{
    agg_part_destroy(svc->parts[p]);
    svc->parts[p] = NULL;
    svc->seek_to[p] = -1;
    atomic_store(&svc->m->assigned[p], 0);
    atomic_store(&svc->m->lag[p], 0);
}

/* Redis holds another offset than partition p expects: reload and seek. */
static int part_reload(agg_service *svc, int32_t p, int64_t stored)
{
    int64_t before = agg_part_applied(svc->parts[p]), start;
    rd_kafka_topic_partition_list_t *list;
    rd_kafka_error_t *error;

    LOG(svc, "partition %d: Redis holds offset %" PRId64 ", this instance %" PRId64
             ": reloading the state from Redis", p, stored, before);
    atomic_fetch_add(&svc->m->gaps, 1);
    if (stored < 0 && before >= 0)
        atomic_fetch_add(&svc->m->rebuilds, 1);
    if (parts_load(svc, &p, 1, &start) < 0)
        return -1;
    list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, svc->cfg->events_topic, p)->offset = start;
    error = rd_kafka_seek_partitions(svc->rk, list, 10000);
    rd_kafka_topic_partition_list_destroy(list);
    if (error) {
        LOG(svc, "partition %d: seek to %" PRId64 ": %s", p, start, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        return -1;
    }
    return 0;
}

/* ---- rebalancing -------------------------------------------------------- */

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *list, void *opaque)
{
    agg_service *svc = opaque;
    int32_t ps[AGG_MAX_PARTITIONS] = {0};
    int64_t start[AGG_MAX_PARTITIONS];
    int n = 0;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < list->cnt; i++)
            if (list->elems[i].partition >= 0 && list->elems[i].partition < AGG_MAX_PARTITIONS)
                ps[n++] = list->elems[i].partition;
        if (parts_load(svc, ps, n, start) < 0) {
            /* Stopping, or a state that cannot be read: take nothing, so no
             * offset moves past an event that was not applied. */
            for (int i = 0; i < n; i++)
                parts_drop(svc, ps[i]);
            rd_kafka_assign(rk, NULL);
            return;
        }
        for (int i = 0, k = 0; i < list->cnt; i++)
            if (list->elems[i].partition >= 0 && list->elems[i].partition < AGG_MAX_PARTITIONS)
                list->elems[i].offset = start[k++];
        LOG(svc, "assigned %d partitions", list->cnt);
        rd_kafka_assign(rk, list);
        svc->paused = 0;
    } else {
        for (int i = 0; i < list->cnt; i++)
            if (list->elems[i].partition >= 0 && list->elems[i].partition < AGG_MAX_PARTITIONS)
                parts_drop(svc, list->elems[i].partition);
        LOG(svc, "revoked %d partitions", list->cnt);
        rd_kafka_assign(rk, NULL);
    }
}

/* ---- messages ----------------------------------------------------------- */

static void dead_letter(agg_service *svc, const rd_kafka_message_t *msg, const char *reason)
{
    char part[16], off[24];
    rd_kafka_resp_err_t err;

    snprintf(part, sizeof(part), "%d", (int)msg->partition);
    snprintf(off, sizeof(off), "%" PRId64, (int64_t)msg->offset);
    err = rd_kafka_producev(
        svc->rkp, RD_KAFKA_V_TOPIC(svc->cfg->dlq_topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(msg->key, msg->key_len), RD_KAFKA_V_VALUE(msg->payload, msg->len),
        RD_KAFKA_V_HEADER("vc-error", reason, -1),
        RD_KAFKA_V_HEADER("vc-source-topic", rd_kafka_topic_name(msg->rkt), -1),
        RD_KAFKA_V_HEADER("vc-source-partition", part, -1),
        RD_KAFKA_V_HEADER("vc-source-offset", off, -1),
        RD_KAFKA_V_HEADER("vc-aggregator", svc->cfg->id, -1), RD_KAFKA_V_END);
    if (err)
        LOG(svc, "dead letter of %d/%s not produced: %s", (int)msg->partition, off, rd_kafka_err2str(err));
    svc->dlq_pending = 1;
    atomic_fetch_add(&svc->m->dead_letters, 1);
}

static void handle_message(agg_service *svc, const rd_kafka_message_t *msg)
{
    int32_t p = msg->partition;
    agg_part *part;
    vc_event ev;
    char err[256];
    vc_codec_rc crc;
    agg_add_rc rc;

    if (msg->err) {
        if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            LOG(svc, "consumer: %s", rd_kafka_message_errstr(msg));
        return;
    }
    if (p < 0 || p >= AGG_MAX_PARTITIONS || (part = svc->parts[p]) == NULL)
        return;
    if (svc->seek_to[p] >= 0) {
        if (msg->offset < svc->seek_to[p])
            return; /* fetched before a seek */
        if (msg->offset > svc->seek_to[p])
            LOG(svc, "partition %d: log starts at %" PRId64 ", expected %" PRId64
                     " (retention?): counts may miss events", p, (int64_t)msg->offset, svc->seek_to[p]);
        svc->seek_to[p] = -1;
    }
    if (msg->offset <= agg_part_position(part))
        return;

    vc_event_init(&ev);
    crc = vc_event_decode(msg->payload, msg->len, &ev, err, sizeof(err));
    if (crc == VC_CODEC_OK)
        crc = vc_event_validate(&ev, err, sizeof(err));
    if (crc == VC_CODEC_OK && ev.type != VC_EV_HEARTBEAT && svc->npartitions > 0 &&
        vc_stream_partition(ev.stream_id, svc->npartitions) != p) {
        snprintf(err, sizeof(err), "stream %" PRId64 " belongs to partition %d, not %d", ev.stream_id,
                 (int)vc_stream_partition(ev.stream_id, svc->npartitions), (int)p);
        crc = VC_CODEC_ERR_INVALID;
    }
    if (crc != VC_CODEC_OK) {
        char reason[320];
        snprintf(reason, sizeof(reason), "%s: %s", vc_codec_strerror(crc), err);
        vc_event_free(&ev);
        dead_letter(svc, msg, reason);
        agg_part_skip(part, msg->offset);
        return;
    }
    rc = agg_part_add(part, &ev, msg->offset,
                      svc->cats && ev.type == VC_EV_JOIN ? agg_categories_get(svc->cats, ev.stream_id, now_ms())
                                                         : 0);
    vc_event_free(&ev);
    if (rc == AGG_ADD_STALE)
        atomic_fetch_add(&svc->m->stale_events, 1);
    if (rc == AGG_ADD_NOMEM) {
        LOG(svc, "out of memory: stopping");
        *svc->stop = 1;
    }
}

/* ---- applying ----------------------------------------------------------- */

/* One script call per partition with pending events (every partition when
 * idle_check), all pipelined. 0 done, 1 retry now (a script was not loaded
 * on its node), -1 Redis unavailable or erring (retry later). */
static int apply_parts(agg_service *svc, int idle_check)
{
    int32_t idx[AGG_MAX_PARTITIONS];
    size_t pending[AGG_MAX_PARTITIONS], gone[AGG_MAX_PARTITIONS];
    int32_t gap_p[AGG_MAX_PARTITIONS];
    int64_t gap_stored[AGG_MAX_PARTITIONS];
    char err[256];
    int n = 0, rc = 0, ngaps = 0;

    vc_redis_batch_reset(svc->batch);
    for (int32_t p = 0; p < AGG_MAX_PARTITIONS; p++) {
        agg_part *part = svc->parts[p];
        int argc;
        const char **argv;
        const size_t *argvlen;
        if (part == NULL || (agg_part_pending(part) == 0 && agg_part_ops(part) == 0 && !idle_check))
            continue;
        if (agg_part_seal(part, svc->use_eval[p] ? NULL : svc->sha, &argc, &argv, &argvlen) < 0 ||
            vc_redis_batch_add(svc->batch, argv[3], argc, argv, argvlen) < 0) {
            LOG(svc, "partition %d: batch too large or out of memory", p);
            return -1;
        }
        pending[n] = agg_part_pending(part);
        gone[n] = agg_part_gone(part);
        idx[n++] = p;
    }
    if (n == 0)
        return 0;
    agg_metrics_exec(svc->m, 1);
    int xrc = vc_redis_batch_exec(svc->batch, err, sizeof(err));
    agg_metrics_exec(svc->m, 0);
    if (xrc < 0) {
        LOG(svc, "redis: %s", err);
        atomic_fetch_add(&svc->m->redis_errors, 1);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int32_t p = idx[i];
        agg_part *part = svc->parts[p];
        agg_result res;
        int64_t stored;
        int crc = agg_part_commit(part, vc_redis_batch_reply(svc->batch, i), &res, &stored, err,
                                  sizeof(err));
        if (crc == 0) {
            svc->use_eval[p] = 0;
            atomic_fetch_add(&svc->m->events, pending[i]);
            atomic_fetch_add(&svc->m->gateways_expired, gone[i]);
            atomic_fetch_add(&svc->m->viewers_expired, (uint64_t)res.expired_viewers);
            for (int t = 0; t < 3; t++)
                atomic_fetch_add(&svc->m->repairs[t], (uint64_t)res.repairs[t]);
            if (res.repairs[VC_DRIFT_REBUILD] > 0 ||
                vc_drift_tier((size_t)res.held, (size_t)res.added, (size_t)res.removed) != VC_DRIFT_QUIET)
                LOG(svc, "partition %d: sync repair: held %" PRId64 " added %" PRId64 " removed %" PRId64
                         " (tiers quiet/syncing/rebuild %" PRId64 "/%" PRId64 "/%" PRId64 ")",
                    p, res.held, res.added, res.removed, res.repairs[0], res.repairs[1], res.repairs[2]);
            svc->rebuilt_events += pending[i];
        } else if (crc == 1) {
            if (stored == agg_part_position(part)) {
                /* our own earlier attempt had landed */
                atomic_fetch_add(&svc->m->events, pending[i]);
                atomic_fetch_add(&svc->m->gateways_expired, gone[i]);
                svc->rebuilt_events += pending[i];
                agg_part_confirm(part);
            } else {
                gap_p[ngaps] = p;
                gap_stored[ngaps++] = stored;
            }
        } else if (strncmp(err, "NOSCRIPT", 8) == 0) {
            svc->use_eval[p] = 1;
            rc = rc < 0 ? rc : 1;
        } else {
            LOG(svc, "partition %d: apply failed: %s", p, err);
            atomic_fetch_add(&svc->m->redis_errors, 1);
            rc = -1;
        }
    }
    /* after the loop: reloading reuses the batch and its replies */
    for (int i = 0; i < ngaps; i++)
        if (part_reload(svc, gap_p[i], gap_stored[i]) < 0)
            return -1;
    return rc;
}

static void set_paused(agg_service *svc, int pause)
{
    rd_kafka_topic_partition_list_t *list = NULL;
    if (svc->paused == pause || rd_kafka_assignment(svc->rk, &list) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    if (pause)
        rd_kafka_pause_partitions(svc->rk, list);
    else
        rd_kafka_resume_partitions(svc->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    svc->paused = pause;
}

static void after_apply(agg_service *svc)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(16);
    for (int32_t p = 0; p < AGG_MAX_PARTITIONS; p++) {
        int64_t lo = 0, hi = 0;
        agg_part *part = svc->parts[p];
        if (part == NULL)
            continue;
        if (rd_kafka_get_watermark_offsets(svc->rk, svc->cfg->events_topic, p, &lo, &hi) == 0 && hi >= 0) {
            int64_t lag = hi - (agg_part_applied(part) + 1);
            atomic_store(&svc->m->lag[p], lag > 0 ? lag : 0);
        }
        if (agg_part_applied(part) >= 0)
            rd_kafka_topic_partition_list_add(list, svc->cfg->events_topic, p)->offset =
                agg_part_applied(part) + 1;
    }
    if (!svc->rebuild_mode && list->cnt > 0)
        rd_kafka_commit(svc->rk, list, 1); /* advisory: for lag tools only */
    rd_kafka_topic_partition_list_destroy(list);
}

/* Checkpoint every owned partition whose state moved since its last one.
 * Between batches: nothing of the partition changes meanwhile. */
static void checkpoint_all(agg_service *svc)
{
    char err[256];
    for (int32_t p = 0; p < AGG_MAX_PARTITIONS; p++) {
        agg_part *part = svc->parts[p];
        if (part == NULL || agg_part_applied(part) < 0 || agg_part_pending(part) > 0 ||
            agg_part_applied(part) == svc->ckpt_offset[p])
            continue;
        if (agg_checkpoint_write(svc->batch, svc->rkp, svc->cfg->checkpoint_topic, svc->ckpt_partitions, p,
                                 agg_part_applied(part), err, sizeof(err)) < 0) {
            LOG(svc, "partition %d: checkpoint failed: %s", p, err);
            continue;
        }
        svc->ckpt_offset[p] = agg_part_applied(part);
        atomic_fetch_add(&svc->m->checkpoints, 1);
    }
}

/* One poll-apply round. */
static void step(agg_service *svc)
{
    int64_t timeout = svc->redis_ok ? svc->cfg->batch_wait_ms : svc->backoff_ms;
    ssize_t n = rd_kafka_consume_batch_queue(svc->q, (int)timeout, svc->msgs, svc->nmsgs);
    int64_t t0 = now_us(), t = now_ms();
    int idle = t - svc->last_idle_ms >= 1000, rc, any = 0;

    for (ssize_t i = 0; i < n; i++) {
        handle_message(svc, svc->msgs[i]);
        rd_kafka_message_destroy(svc->msgs[i]);
    }
    if (svc->cats) {
        int64_t streams[256], cats[256];
        size_t k = agg_categories_drain(svc->cats, streams, cats, 256);
        for (size_t i = 0; i < k && svc->npartitions > 0; i++) {
            agg_part *part = svc->parts[vc_stream_partition(streams[i], svc->npartitions)];
            if (part != NULL)
                agg_part_add_category(part, streams[i], cats[i]);
        }
    }
    for (int32_t p = 0; p < AGG_MAX_PARTITIONS; p++)
        any |= svc->parts[p] != NULL && (agg_part_pending(svc->parts[p]) > 0 || agg_part_ops(svc->parts[p]) > 0);
    if (!any && !idle && svc->redis_ok)
        return;
    if (svc->dlq_pending) {
        /* the dead letters are durable before their offsets advance */
        if (rd_kafka_flush(svc->rkp, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
            LOG(svc, "dead letters not all delivered within 10 s");
        svc->dlq_pending = 0;
    }
    if (idle)
        svc->last_idle_ms = t;
    rc = apply_parts(svc, idle);
    for (int tries = 0; rc == 1 && tries < 3; tries++)
        rc = apply_parts(svc, 0);
    if (rc != 0) {
        svc->redis_ok = 0;
        atomic_store(&svc->m->redis_up, 0);
        set_paused(svc, 1);
        svc->backoff_ms = svc->backoff_ms < 2000 ? svc->backoff_ms * 2 : 2000;
        return;
    }
    svc->redis_ok = 1;
    svc->backoff_ms = 50;
    atomic_store(&svc->m->redis_up, 1);
    set_paused(svc, 0);
    if (any)
        agg_metrics_batch(svc->m, now_us() - t0);
    after_apply(svc);
    if (!svc->rebuild_mode && svc->ckpt_partitions > 0 && svc->cfg->checkpoint_interval_s > 0 &&
        t - svc->last_ckpt_ms >= svc->cfg->checkpoint_interval_s * 1000) {
        svc->last_ckpt_ms = t;
        checkpoint_all(svc);
    }
}

/* ---- life cycle ----------------------------------------------------------- */

static rd_kafka_t *kafka_new(agg_service *svc, rd_kafka_type_t type, const char *group, char *errstr,
                             size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    const char *kv[][2] = {
        {"bootstrap.servers", svc->cfg->brokers},
        {"client.id", svc->cfg->id},
        {"group.id", group},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"enable.partition.eof", "false"},
        {"fetch.wait.max.ms", "10"},
        {"session.timeout.ms", "10000"},
        {"heartbeat.interval.ms", "1000"},
        /* above the longest Redis call (the client retries a dead node for
         * tens of seconds), so an outage does not cost the group membership;
         * also the rebalance timeout (dead members leave by session.timeout) */
        {"max.poll.interval.ms", "120000"},
        {"partition.assignment.strategy", "range,roundrobin"},
        {NULL, NULL},
    };
    const char *pkv[][2] = {
        {"bootstrap.servers", svc->cfg->brokers},
        {"client.id", svc->cfg->id},
        {"acks", "all"},
        {"linger.ms", "5"},
        {NULL, NULL},
    };
    const char *(*set)[2] = type == RD_KAFKA_CONSUMER ? kv : pkv;

    for (int i = 0; set[i][0] != NULL; i++) {
        if (set[i][1] == NULL)
            continue;
        if (rd_kafka_conf_set(conf, set[i][0], set[i][1], errstr, errstr_size) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (type == RD_KAFKA_CONSUMER) {
        rd_kafka_conf_set_opaque(conf, svc);
        if (!svc->rebuild_mode)
            rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    }
    rk = rd_kafka_new(type, conf, errstr, errstr_size); /* takes ownership of conf on success */
    if (rk == NULL)
        rd_kafka_conf_destroy(conf);
    return rk;
}

static int topic_partitions(agg_service *svc, char *errstr, size_t errstr_size)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(svc->rk, svc->cfg->events_topic, NULL);
    rd_kafka_resp_err_t err;
    int64_t deadline = now_ms() + 30000;

    for (;;) {
        err = rd_kafka_metadata(svc->rk, 0, rkt, &md, 5000);
        if (err == 0 && md->topic_cnt == 1 && md->topics[0].err == 0 && md->topics[0].partition_cnt > 0)
            break;
        if (err == 0) {
            err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
            rd_kafka_metadata_destroy(md);
            md = NULL;
        }
        if (now_ms() > deadline || (svc->stop && *svc->stop)) {
            snprintf(errstr, errstr_size, "topic %s: %s", svc->cfg->events_topic, rd_kafka_err2str(err));
            rd_kafka_topic_destroy(rkt);
            return -1;
        }
        sleep_ms(500);
    }
    svc->npartitions = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rkt = rd_kafka_topic_new(svc->rk, svc->cfg->checkpoint_topic, NULL);
    if (rd_kafka_metadata(svc->rk, 0, rkt, &md, 5000) == 0) {
        if (md->topic_cnt == 1 && md->topics[0].err == 0)
            svc->ckpt_partitions = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    if (svc->ckpt_partitions == 0)
        LOG(svc, "checkpoint topic %s not found: no checkpoints", svc->cfg->checkpoint_topic);
    if (svc->npartitions > AGG_MAX_PARTITIONS) {
        snprintf(errstr, errstr_size, "topic %s has %d partitions, at most %d supported",
                 svc->cfg->events_topic, (int)svc->npartitions, AGG_MAX_PARTITIONS);
        return -1;
    }
    return 0;
}

static agg_service *service_new(const agg_config *cfg, agg_metrics *m, int rebuild, char *errstr,
                                 size_t errstr_size)
{
    agg_service *svc = calloc(1, sizeof(*svc));
    vc_redis_conf rconf;
    char group[AGG_STR_MAX + 16];

    if (svc == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    svc->cfg = cfg;
    svc->m = m;
    svc->rebuild_mode = rebuild;
    svc->redis_ok = 1;
    svc->backoff_ms = 50;
    svc->rules.gateway_timeout_ms = cfg->gateway_timeout_ms;
    svc->rules.sync_max_viewers = (size_t)cfg->sync_max_viewers;
    svc->rules.sync_max_age_ms = cfg->sync_max_age_ms;
    for (int p = 0; p < AGG_MAX_PARTITIONS; p++) {
        svc->seek_to[p] = -1;
        svc->ckpt_offset[p] = -1;
    }
    svc->last_ckpt_ms = now_ms();
    if (script_sha(svc->sha) < 0) {
        snprintf(errstr, errstr_size, "sha1 of the apply script failed");
        goto fail;
    }
    svc->nmsgs = (size_t)(rebuild ? cfg->rebuild_batch_max : cfg->batch_max);
    svc->msgs = calloc(svc->nmsgs, sizeof(*svc->msgs));
    if (svc->msgs == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    memset(&rconf, 0, sizeof(rconf));
    rconf.nodes = cfg->redis_nodes;
    rconf.timeout_ms = (int)cfg->redis_timeout_ms;
    svc->redis = vc_redis_new(&rconf, errstr, errstr_size);
    if (svc->redis == NULL)
        goto fail;
    svc->batch = vc_redis_batch_new(svc->redis, 0);
    if (svc->batch == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    snprintf(group, sizeof(group), "%s%s", cfg->group, rebuild ? ".rebuild" : "");
    svc->rk = kafka_new(svc, RD_KAFKA_CONSUMER, group, errstr, errstr_size);
    if (svc->rk == NULL)
        goto fail;
    svc->rkp = kafka_new(svc, RD_KAFKA_PRODUCER, NULL, errstr, errstr_size);
    if (svc->rkp == NULL)
        goto fail;
    if (cfg->mysql_host[0] != '\0' && cfg->category_refresh_ms > 0) {
        agg_categories_conf cc = {cfg->mysql_host, cfg->mysql_user, cfg->mysql_password, cfg->mysql_db,
                                  (int)cfg->mysql_port, (int)cfg->category_refresh_ms};
        svc->cats = agg_categories_new(&cc);
        if (svc->cats == NULL) {
            snprintf(errstr, errstr_size, "category lookups: cannot start");
            goto fail;
        }
    }
    svc->q = rd_kafka_queue_get_consumer(svc->rk);
    if (svc->q == NULL) {
        snprintf(errstr, errstr_size, "no consumer queue");
        goto fail;
    }
    return svc;
fail:
    agg_service_destroy(svc);
    return NULL;
}

agg_service *agg_service_new(const agg_config *cfg, agg_metrics *m, int rebuild, char *errstr,
                             size_t errstr_size)
{
    return service_new(cfg, m, rebuild, errstr, errstr_size);
}

int agg_service_run(agg_service *svc, volatile sig_atomic_t *stop, char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *topics;
    rd_kafka_resp_err_t err;

    svc->stop = stop;
    if (topic_partitions(svc, errstr, errstr_size) < 0)
        return -1;
    topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, svc->cfg->events_topic, RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(svc->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        snprintf(errstr, errstr_size, "subscribe %s: %s", svc->cfg->events_topic, rd_kafka_err2str(err));
        return -1;
    }
    LOG(svc, "consuming %s (%d partitions) in group %s", svc->cfg->events_topic, (int)svc->npartitions,
        svc->cfg->group);
    atomic_store(&svc->m->redis_up, 1);
    while (!*stop)
        step(svc);
    LOG(svc, "stopping: closing the consumer");
    rd_kafka_consumer_close(svc->rk);
    for (int32_t p = 0; p < AGG_MAX_PARTITIONS; p++)
        parts_drop(svc, p);
    rd_kafka_flush(svc->rkp, 5000);
    return 0;
}

int agg_service_rebuild(agg_service *svc, volatile sig_atomic_t *stop, FILE *progress, char *errstr,
                        size_t errstr_size)
{
    int32_t ps[AGG_MAX_PARTITIONS];
    int64_t start[AGG_MAX_PARTITIONS], hi[AGG_MAX_PARTITIONS], total = 0;
    rd_kafka_topic_partition_list_t *list;
    int64_t t_start = now_ms(), t_last = t_start;
    uint64_t ev_last = 0;
    int n;

    svc->stop = stop;
    if (topic_partitions(svc, errstr, errstr_size) < 0)
        return -1;
    n = svc->npartitions;
    for (int i = 0; i < n; i++)
        ps[i] = i;
    if (parts_load(svc, ps, n, start) < 0) {
        snprintf(errstr, errstr_size, "could not read the partition states from Redis");
        return -1;
    }
    list = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++) {
        int64_t lo = 0;
        if (rd_kafka_query_watermark_offsets(svc->rk, svc->cfg->events_topic, i, &lo, &hi[i], 10000)) {
            snprintf(errstr, errstr_size, "partition %d: watermarks unavailable", i);
            rd_kafka_topic_partition_list_destroy(list);
            return -1;
        }
        total += hi[i] > start[i] ? hi[i] - start[i] : 0;
        rd_kafka_topic_partition_list_add(list, svc->cfg->events_topic, i)->offset = start[i];
        if (agg_part_applied(svc->parts[i]) < 0 && hi[i] > start[i])
            atomic_fetch_add(&svc->m->rebuilds, 1);
    }
    if (progress)
        fprintf(progress, "rebuild: %d partitions, %" PRId64 " events to apply\n", n, total);
    rd_kafka_assign(svc->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    for (;;) {
        int64_t remaining = 0, t;
        for (int i = 0; i < n; i++) {
            int64_t pos = svc->parts[i] ? agg_part_applied(svc->parts[i]) + 1 : hi[i];
            if (hi[i] > pos)
                remaining += hi[i] - pos;
        }
        atomic_store(&svc->m->rebuild_remaining, remaining);
        t = now_ms();
        if (progress && (t - t_last >= 1000 || remaining == 0)) {
            double rate = (double)(svc->rebuilt_events - ev_last) * 1000.0 / (double)(t - t_last + 1);
            fprintf(progress, "rebuild: applied %" PRIu64 " events, %.0f events/s, lag %" PRId64
                              ", ETA %.0f s\n", svc->rebuilt_events, rate, remaining,
                    rate > 0 ? (double)remaining / rate : 0.0);
            t_last = t;
            ev_last = svc->rebuilt_events;
        }
        if (remaining == 0 || *stop)
            break;
        step(svc);
    }
    if (progress) {
        double secs = (double)(now_ms() - t_start) / 1000.0;
        fprintf(progress, "rebuild: %s: %" PRIu64 " events applied in %.1f s (%.0f events/s), "
                          "%" PRIu64 " partitions restored from the log, %" PRIu64 " dead letters\n",
                *stop ? "interrupted" : "done", svc->rebuilt_events, secs,
                secs > 0 ? (double)svc->rebuilt_events / secs : 0.0, (uint64_t)atomic_load(&svc->m->rebuilds),
                (uint64_t)atomic_load(&svc->m->dead_letters));
    }
    rd_kafka_assign(svc->rk, NULL);
    rd_kafka_flush(svc->rkp, 5000);
    return *stop ? -1 : 0;
}

void agg_service_destroy(agg_service *svc)
{
    if (svc == NULL)
        return;
    for (int32_t p = 0; p < AGG_MAX_PARTITIONS; p++)
        agg_part_destroy(svc->parts[p]);
    agg_categories_destroy(svc->cats);
    if (svc->q)
        rd_kafka_queue_destroy(svc->q);
    if (svc->rk)
        rd_kafka_destroy(svc->rk);
    if (svc->rkp)
        rd_kafka_destroy(svc->rkp);
    vc_redis_batch_destroy(svc->batch);
    vc_redis_destroy(svc->redis);
    free(svc->msgs);
    free(svc);
}
