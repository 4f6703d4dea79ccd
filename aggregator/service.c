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

/* the longest wait for a first message while Redis is up: bounds how late
 * the once-a-second idle round (lag, idle check, commits) and the
 * checkpoint round run when no events come */
#define AGG_IDLE_WAIT_MS 20

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
    int64_t ckpt_offset[AGG_MAX_PARTITIONS]; /* offset of the last checkpoint produced (or loaded) */
    int64_t ckpt_done[AGG_MAX_PARTITIONS];   /* offset of the last checkpoint delivered */
    int ckpt_inflight[AGG_MAX_PARTITIONS];   /* a checkpoint's chunks await delivery */
    int32_t ckpt_cursor;                     /* next partition of a checkpoint round, -1: none */
    int rebuild_mode;
    int fatal;                   /* the memory state cannot be trusted: exit non-zero */
    uint64_t rebuilt_events;
    int64_t *ages;               /* creation times (ms) of live events not yet written */
    size_t nages, ages_cap;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
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

/* Recover partitions ps[0..n) into memory and say where consumption resumes
 * (start[i]):
 *   R = the meta offset in Redis (-1: none), C = the newest checkpoint's
 *   offset (-1: none, the state then starts empty at the log's beginning).
 *   C <= R: replay C+1..R into memory only, then go on writing from R+1.
 *   C > R or R missing: restore, i.e. write the whole contract state from
 *   memory at C (expecting R), then go on from C+1.
 * Retries while Redis is unreachable, until *stop. 0, or -1 when stopped or
 * on a fatal error. */
static int parts_load(agg_service *svc, const int32_t *ps, int n, int64_t *start)
{
    char meta[VC_KEY_MAX], err[256];
    int64_t backoff = 100;
    int64_t stored[AGG_MAX_PARTITIONS], lo[AGG_MAX_PARTITIONS], hi[AGG_MAX_PARTITIONS];
    int64_t ck_off[AGG_MAX_PARTITIONS];
    uint8_t *ck[AGG_MAX_PARTITIONS];
    size_t ck_len[AGG_MAX_PARTITIONS];

    if (n == 0)
        return 0;
    for (;;) {
        vc_redis_batch_reset(svc->batch);
        for (int i = 0; i < n; i++) {
            vc_key_meta(meta, sizeof(meta), ps[i]);
            if (vc_redis_batch_addf(svc->batch, meta, "HGET %s %s", meta, AGG_META_OFFSET) < 0)
                return -1;
        }
        agg_metrics_exec(svc->m, 1);
        int xrc = vc_redis_batch_exec(svc->batch, err, sizeof(err));
        agg_metrics_exec(svc->m, 0);
        if (xrc == 0) {
            int ok = 1;
            for (int i = 0; i < n && ok; i++) {
                const redisReply *r = vc_redis_batch_reply(svc->batch, i);
                ok = r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL);
            }
            if (ok)
                break;
            snprintf(err, sizeof(err), "unexpected HGET reply");
        }
        atomic_store(&svc->m->redis_up, 0);
        atomic_fetch_add(&svc->m->redis_errors, 1);
        LOG(svc, "loading partition offsets: %s (retrying)", err);
        if (svc->stop && *svc->stop)
            return -1;
        sleep_ms(backoff);
        backoff = backoff < 2000 ? backoff * 2 : 2000;
    }
    for (int i = 0; i < n; i++) {
        const redisReply *r = vc_redis_batch_reply(svc->batch, i);
        stored[i] = -1;
        if (r->type == REDIS_REPLY_STRING) {
            char *end;
            stored[i] = strtoll(r->str, &end, 10);
            if (*end != '\0' || stored[i] < -1) {
                LOG(svc, "partition %d: bad offset '%s' in Redis", ps[i], r->str);
                return -1;
            }
        }
    }
    /* the replies are read: the batch may be reused from here */
    for (int i = 0; i < n; i++) {
        int32_t p = ps[i];
        lo[i] = 0;
        hi[i] = 0;
        rd_kafka_resp_err_t kerr =
            rd_kafka_query_watermark_offsets(svc->rk, svc->cfg->events_topic, p, &lo[i], &hi[i], 10000);
        if (kerr) {
            LOG(svc, "partition %d: watermarks: %s", p, rd_kafka_err2str(kerr));
            lo[i] = 0;
            hi[i] = INT64_MAX;
        }
        /* A state ahead of the log's end belongs to another log (the topic
         * was recreated): the log is the truth, so start over from it. */
        if (stored[i] >= hi[i]) {
            LOG(svc, "partition %d: Redis holds offset %" PRId64 " but the log ends at %" PRId64
                     ": the state belongs to another log; clearing it and rebuilding from the log",
                p, stored[i], hi[i]);
            if (agg_partition_clear(svc->batch, p, err, sizeof(err)) < 0) {
                LOG(svc, "partition %d: clear failed: %s", p, err);
                return -1;
            }
            stored[i] = -1;
        }
    }
    for (int i = 0; i < n; i++) {
        ck[i] = NULL;
        ck_len[i] = 0;
        ck_off[i] = -1;
    }
    if (svc->ckpt_partitions > 0 &&
        agg_checkpoint_load(svc->cfg->brokers, svc->cfg->checkpoint_topic, svc->ckpt_partitions,
                            svc->cfg->events_topic, ps, n, ck,
                            ck_len, ck_off, 60000, err, sizeof(err)) < 0)
        LOG(svc, "checkpoints not readable: %s (recovering from the log)", err);

    for (int i = 0; i < n; i++) {
        int32_t p = ps[i];
        agg_part *part = NULL;
        int64_t R = stored[i];
        if (ck[i] != NULL) {
            if (ck_off[i] >= hi[i]) {
                LOG(svc, "partition %d: checkpoint at offset %" PRId64 " is beyond the log's end %" PRId64
                         ": ignored", p, ck_off[i], hi[i]);
            } else {
                part = agg_part_load(p, &svc->rules, ck[i], ck_len[i], err, sizeof(err));
                if (part == NULL)
                    LOG(svc, "partition %d: checkpoint at offset %" PRId64 " does not load: %s", p, ck_off[i], err);
                else if (agg_part_position(part) != ck_off[i]) {
                    LOG(svc, "partition %d: checkpoint offset mismatch: ignored", p);
                    agg_part_destroy(part);
                    part = NULL;
                }
            }
            free(ck[i]);
            ck[i] = NULL;
        }
        if (part != NULL) {
            LOG(svc, "partition %d: restored the checkpoint at offset %" PRId64 " (%zu streams, %zu connections)",
                p, agg_part_position(part), agg_part_streams(part), agg_part_connections(part));
        } else {
            part = agg_part_new(p, &svc->rules);
            if (part == NULL) {
                LOG(svc, "partition %d: out of memory", p);
                for (int k = i + 1; k < n; k++)
                    free(ck[k]);
                return -1;
            }
        }
        agg_part_set_applied(part, R);
        start[i] = agg_part_position(part) + 1;
        if (start[i] < lo[i]) {
            if (agg_part_position(part) >= 0)
                LOG(svc, "partition %d: the log starts at %" PRId64 ", after the checkpoint's %" PRId64
                         " (retention?): counts may miss events", p, lo[i], agg_part_position(part));
            start[i] = lo[i];
        }
        if (R < 0 || agg_part_position(part) > R) {
            /* restore: the whole contract state from memory, expecting R */
            agg_part_mark_all(part);
            if (R < 0 && (agg_part_position(part) >= 0 || hi[i] > lo[i])) {
                atomic_fetch_add(&svc->m->rebuilds, 1);
                LOG(svc, "partition %d: no state in Redis: restoring from %s, then replaying from offset %" PRId64
                         " (%" PRId64 " events)", p, agg_part_position(part) >= 0 ? "the checkpoint" : "the log",
                    start[i], hi[i] != INT64_MAX && hi[i] > start[i] ? hi[i] - start[i] : 0);
            } else if (R >= 0) {
                LOG(svc, "partition %d: Redis holds offset %" PRId64 ", behind the checkpoint's %" PRId64
                         ": restoring the partition's keys from the checkpoint", p, R, agg_part_position(part));
            }
        } else if (R >= start[i]) {
            LOG(svc, "partition %d: Redis holds offset %" PRId64 ": replaying %" PRId64
                     " events into memory from offset %" PRId64, p, R, R - start[i] + 1, start[i]);
        }
        agg_part_destroy(svc->parts[p]);
        svc->parts[p] = part;
        svc->use_eval[p] = 0;
        svc->seek_to[p] = start[i];
        svc->ckpt_offset[p] = agg_part_position(part);
        atomic_store(&svc->m->assigned[p], 1);
    }
    atomic_store(&svc->m->redis_up, 1);
    return 0;
}

static void parts_drop(agg_service *svc, int32_t p)
{
    svc->nages = 0; /* pending ages may be of this partition's events: drop them (a metric only) */
    agg_part_destroy(svc->parts[p]);
    svc->parts[p] = NULL;
    svc->seek_to[p] = -1;
    atomic_store(&svc->m->assigned[p], 0);
    atomic_store(&svc->m->lag[p], 0);
}

/* Redis holds a newer offset than partition p's state: another instance
 * applied meanwhile. Recover the state again and seek. */
static int part_reload(agg_service *svc, int32_t p, int64_t stored)
{
    int64_t before = agg_part_applied(svc->parts[p]), start;
    rd_kafka_topic_partition_list_t *list;
    rd_kafka_error_t *error;

    LOG(svc, "partition %d: Redis holds offset %" PRId64 ", this instance %" PRId64
             ": recovering the state again", p, stored, before);
    svc->nages = 0; /* its events may be noted again after the seek: drop the pending ages (a metric only) */
    atomic_fetch_add(&svc->m->gaps, 1);
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

/* ---- checkpoints ---------------------------------------------------------- */

typedef struct {
    agg_service *svc;
    int32_t p;
    int64_t offset;
    int remaining, failed;
} ckpt_job;

/* Delivery reports of the producer: dead letters carry no opaque, checkpoint
 * chunks their ckpt_job. */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    ckpt_job *job = msg->_private;
    (void)rk;
    (void)opaque;
    if (job == NULL)
        return;
    if (msg->err)
        job->failed = 1;
    if (--job->remaining > 0)
        return;
    agg_service *svc = job->svc;
    if (job->failed) {
        LOG(svc, "partition %d: checkpoint at offset %" PRId64 " not delivered", job->p, job->offset);
    } else {
        atomic_fetch_add(&svc->m->checkpoints, 1);
        svc->ckpt_done[job->p] = job->offset;
    }
    svc->ckpt_inflight[job->p] = 0;
    free(job);
}

/* Serialise partition p's state and produce it (delivery is reported later). */
static int checkpoint_one(agg_service *svc, int32_t p)
{
    agg_part *part = svc->parts[p];
    uint8_t *state = NULL;
    size_t len = 0;
    char err[256];
    ckpt_job *job;
    int chunks, queued = 0;

    if (part == NULL || agg_part_position(part) < 0 || agg_part_position(part) == svc->ckpt_offset[p] ||
        svc->ckpt_inflight[p])
        return 0;
    job = calloc(1, sizeof(*job));
    if (job == NULL || agg_part_save(part, &state, &len) < 0) {
        free(job);
        LOG(svc, "partition %d: checkpoint: out of memory", p);
        return -1;
    }
    job->svc = svc;
    job->p = p;
    job->offset = agg_part_position(part);
    /* the job counts its chunks before any delivery report can run (reports
     * are served by rd_kafka_poll on this thread only) */
    job->remaining = (int)((len + AGG_CHECKPOINT_CHUNK_MAX - 1) / AGG_CHECKPOINT_CHUNK_MAX);
    if (job->remaining == 0)
        job->remaining = 1;
    chunks = agg_checkpoint_produce(svc->rkp, svc->cfg->checkpoint_topic, svc->ckpt_partitions,
                                    svc->cfg->events_topic, p, job->offset,
                                    state, len, job, &queued, err, sizeof(err));
    free(state);
    if (chunks < 0) {
        LOG(svc, "partition %d: checkpoint failed: %s", p, err);
        /* chunks already queued report against the job: mark it failed and
         * let the last report free it (nothing queued: free it now) */
        job->failed = 1;
        job->remaining = queued;
        if (queued == 0)
            free(job);
        else
            svc->ckpt_inflight[p] = 1;
        return -1;
    }
    svc->ckpt_inflight[p] = 1;
    svc->ckpt_offset[p] = job->offset;
    return 0;
}

/* Checkpoint partitions ps[0..n) now and wait (bounded) for the delivery:
 * on revocation and on a clean stop. */
static void checkpoint_now(agg_service *svc, const int32_t *ps, int n)
{
    int64_t deadline = now_ms() + 10000;
    if (svc->rebuild_mode || svc->ckpt_partitions <= 0 || svc->cfg->checkpoint_interval_s <= 0)
        return;
    for (int i = 0; i < n; i++) {
        /* one in flight is older than the state now: wait for it first */
        while (svc->ckpt_inflight[ps[i]] && now_ms() < deadline)
            rd_kafka_poll(svc->rkp, 50);
        checkpoint_one(svc, ps[i]);
    }
    for (int i = 0; i < n; i++)
        while (svc->ckpt_inflight[ps[i]] && now_ms() < deadline)
            rd_kafka_poll(svc->rkp, 50);
}

/* ---- rebalancing -------------------------------------------------------- */

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *list, void *opaque)
{
    agg_service *svc = opaque;
    int32_t ps[AGG_MAX_PARTITIONS] = {0};
    int64_t start[AGG_MAX_PARTITIONS];
    int n = 0;

    for (int i = 0; i < list->cnt; i++)
        if (list->elems[i].partition >= 0 && list->elems[i].partition < AGG_MAX_PARTITIONS)
            ps[n++] = list->elems[i].partition;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
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
        checkpoint_now(svc, ps, n);
        for (int i = 0; i < n; i++)
            parts_drop(svc, ps[i]);
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

/* Remember when a live event was created (its Kafka timestamp) for the
 * event-age histogram, observed once Redis holds its effect. Events replayed
 * into memory only (Redis had them) and rebuilds are not measured. */
static void note_age(agg_service *svc, const rd_kafka_message_t *msg)
{
    int64_t ts = rd_kafka_message_timestamp(msg, NULL);
    if (ts < 0)
        return;
    if (svc->nages == svc->ages_cap) {
        size_t cap = svc->ages_cap ? svc->ages_cap * 2 : 4096;
        int64_t *a = realloc(svc->ages, cap * sizeof(*a));
        if (a == NULL)
            return; /* a metric only */
        svc->ages = a;
        svc->ages_cap = cap;
    }
    svc->ages[svc->nages++] = ts;
}

static void observe_ages(agg_service *svc)
{
    if (svc->nages > 0)
        agg_metrics_event_ages(svc->m, svc->ages, svc->nages, wall_ms());
    svc->nages = 0;
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
    if (!svc->rebuild_mode && msg->offset > agg_part_applied(part))
        note_age(svc, msg);
    rc = agg_part_add(part, &ev, msg->offset,
                      svc->cats && ev.type == VC_EV_JOIN ? agg_categories_get(svc->cats, ev.stream_id, now_ms())
                                                         : 0);
    vc_event_free(&ev);
    if (rc == AGG_ADD_NOMEM) {
        /* the memory state no longer equals the events: stop; a restart
         * recovers from the checkpoint and the log */
        LOG(svc, "out of memory: stopping");
        *svc->stop = 1;
        svc->fatal = 1;
    }
}

/* ---- applying ----------------------------------------------------------- */

static void take_stats(agg_service *svc, agg_part *part)
{
    agg_stats st;
    agg_part_take_stats(part, &st);
    atomic_fetch_add(&svc->m->events, st.events);
    atomic_fetch_add(&svc->m->replayed, st.replayed);
    atomic_fetch_add(&svc->m->gateways_expired, st.gone);
    atomic_fetch_add(&svc->m->viewers_expired, st.expired_viewers);
    atomic_fetch_add(&svc->m->stale_events, st.stale);
    atomic_fetch_add(&svc->m->tombstones_dropped, st.tombstones_dropped);
    for (int t = 0; t < 3; t++)
        atomic_fetch_add(&svc->m->repairs[t], st.repairs[t]);
    if (st.repairs[VC_DRIFT_REBUILD] > 0 ||
        vc_drift_tier((size_t)st.held, (size_t)st.added, (size_t)st.removed) != VC_DRIFT_QUIET)
        LOG(svc, "partition %d: sync repair: held %" PRIu64 " added %" PRIu64 " removed %" PRIu64
                 " (tiers quiet/syncing/rebuild %" PRIu64 "/%" PRIu64 "/%" PRIu64 ")",
            agg_part_partition(part), st.held, st.added, st.removed, st.repairs[0], st.repairs[1],
            st.repairs[2]);
    svc->rebuilt_events += st.events;
}

/* One script call per partition with something to write (every partition
 * when idle_check: an empty call checks that Redis still holds the
 * partition's offset), all pipelined. 0 done, 1 retry now (a script was not
 * loaded on its node, or a partition must be restored), -1 Redis unavailable
 * or erring (retry later). */
static int apply_parts(agg_service *svc, int idle_check)
{
    int32_t idx[AGG_MAX_PARTITIONS];
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
        if (part == NULL || (!agg_part_needs_write(part) && !idle_check))
            continue;
        if (agg_part_seal(part, svc->use_eval[p] ? NULL : svc->sha, &argc, &argv, &argvlen) < 0 ||
            vc_redis_batch_add(svc->batch, argv[3], argc, argv, argvlen) < 0) {
            LOG(svc, "partition %d: batch too large or out of memory", p);
            return -1;
        }
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
        int64_t stored;
        int crc = agg_part_commit(part, vc_redis_batch_reply(svc->batch, i), &stored, err, sizeof(err));
        if (crc == 0) {
            svc->use_eval[p] = 0;
            take_stats(svc, part);
        } else if (crc == 1) {
            if (stored >= 0 && stored == agg_part_position(part) && agg_part_needs_write(part) &&
                stored > agg_part_applied(part)) {
                /* our own earlier attempt had landed */
                agg_part_confirm(part);
                take_stats(svc, part);
            } else if (stored < agg_part_applied(part)) {
                /* Redis lost writes (a FLUSHALL, a lost shard, a failover that
                 * dropped acknowledged writes): memory holds everything up to
                 * the position, so write the partition's whole state back */
                LOG(svc, "partition %d: Redis holds offset %" PRId64 ", expected %" PRId64
                         ": restoring the partition's keys from memory (offset %" PRId64 ")",
                    p, stored, agg_part_applied(part), agg_part_position(part));
                atomic_fetch_add(&svc->m->gaps, 1);
                if (stored < 0)
                    atomic_fetch_add(&svc->m->rebuilds, 1);
                agg_part_set_applied(part, stored);
                agg_part_mark_all(part);
                rc = rc < 0 ? rc : 1;
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
    /* after the loop: recovering reuses the batch and its replies */
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

static void after_apply(agg_service *svc, int idle)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(16);
    int64_t conns = 0, streams = 0;
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
        if (idle) {
            conns += (int64_t)agg_part_connections(part);
            streams += (int64_t)agg_part_streams(part);
        }
    }
    if (idle) {
        atomic_store(&svc->m->state_connections, conns);
        atomic_store(&svc->m->state_streams, streams);
    }
    /* advisory, for lag tools only: at most once a second (a commit per
     * batch of a few milliseconds only loads the broker) */
    if (!svc->rebuild_mode && list->cnt > 0 && idle)
        rd_kafka_commit(svc->rk, list, 1);
    rd_kafka_topic_partition_list_destroy(list);
}

/* Periodic checkpoints: every interval, each owned partition whose state
 * moved, one partition per round so a round never stalls the loop for more
 * than one serialisation. */
static void checkpoint_tick(agg_service *svc, int64_t t)
{
    if (svc->rebuild_mode || svc->ckpt_partitions <= 0 || svc->cfg->checkpoint_interval_s <= 0)
        return;
    if (svc->ckpt_cursor < 0) {
        if (t - svc->last_ckpt_ms < svc->cfg->checkpoint_interval_s * 1000)
            return;
        svc->last_ckpt_ms = t;
        svc->ckpt_cursor = 0;
    }
    while (svc->ckpt_cursor < AGG_MAX_PARTITIONS) {
        int32_t p = svc->ckpt_cursor++;
        agg_part *part = svc->parts[p];
        if (part != NULL && agg_part_position(part) >= 0 && agg_part_position(part) != svc->ckpt_offset[p] &&
            !svc->ckpt_inflight[p]) {
            checkpoint_one(svc, p);
            return;
        }
    }
    svc->ckpt_cursor = -1;
}

/* One poll-apply round. */
static void step(agg_service *svc)
{
    /* Natural batching: wait for the first message only, then take what has
     * arrived behind it (and what arrives within --batch-wait-ms, 0 by
     * default). A light load leaves in small batches at once; under a heavy
     * one the batch grows while the previous one is being written. */
    int64_t timeout = svc->redis_ok ? AGG_IDLE_WAIT_MS : svc->backoff_ms;
    ssize_t n = 0;
    rd_kafka_message_t *first = rd_kafka_consume_queue(svc->q, (int)timeout);
    if (first != NULL) {
        ssize_t more = svc->nmsgs > 1 ? rd_kafka_consume_batch_queue(svc->q, (int)svc->cfg->batch_wait_ms,
                                                                      svc->msgs + 1, svc->nmsgs - 1)
                                      : 0;
        svc->msgs[0] = first;
        n = 1 + (more > 0 ? more : 0);
    }
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
    rd_kafka_poll(svc->rkp, 0); /* delivery reports: dead letters, checkpoints */
    for (int32_t p = 0; p < AGG_MAX_PARTITIONS; p++)
        any |= svc->parts[p] != NULL && agg_part_needs_write(svc->parts[p]);
    if (!any && !idle && svc->redis_ok) {
        observe_ages(svc);
        checkpoint_tick(svc, t);
        return;
    }
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
    observe_ages(svc);
    after_apply(svc, idle);
    checkpoint_tick(svc, t);
}

/* ---- life cycle ----------------------------------------------------------- */

static rd_kafka_t *kafka_new(agg_service *svc, rd_kafka_type_t type, const char *group, char *errstr,
                             size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    char session[24], heartbeat[24];
    const char *kv[][2] = {
        {"bootstrap.servers", svc->cfg->brokers},
        {"client.id", svc->cfg->id},
        {"group.id", group},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"enable.partition.eof", "false"},
        {"fetch.wait.max.ms", "10"},
        /* librdkafka stops fetching a partition while its local queue holds
         * queued.min.messages (default 100,000) and resumes only after a
         * backoff: with the default a replay ran at ~150,000 events/s whatever
         * the CPU; the byte bound (queued.max.messages.kbytes, 64 MB) still
         * caps the memory */
        {"queued.min.messages", "1000000"},
        {"session.timeout.ms", session},
        {"heartbeat.interval.ms", heartbeat},
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

    snprintf(session, sizeof(session), "%" PRId64, svc->cfg->session_timeout_ms);
    snprintf(heartbeat, sizeof(heartbeat), "%" PRId64,
             svc->cfg->session_timeout_ms / 3 < 1000 ? svc->cfg->session_timeout_ms / 3 : 1000);

    for (int i = 0; set[i][0] != NULL; i++) {
        if (set[i][1] == NULL)
            continue;
        if (rd_kafka_conf_set(conf, set[i][0], set[i][1], errstr, errstr_size) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_conf_set_opaque(conf, svc);
    if (type == RD_KAFKA_CONSUMER) {
        if (!svc->rebuild_mode)
            rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    } else {
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
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
    svc->rules.syncing_hold_ms = cfg->syncing_hold_ms;
    svc->rules.tombstone_ttl_ms = cfg->tombstone_ttl_ms;
    svc->ckpt_cursor = -1;
    for (int p = 0; p < AGG_MAX_PARTITIONS; p++) {
        svc->seek_to[p] = -1;
        svc->ckpt_offset[p] = -1;
        svc->ckpt_done[p] = -1;
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
    if (svc->fatal) {
        snprintf(errstr, errstr_size, "stopped on a fatal error (see above)");
        return -1;
    }
    LOG(svc, "stopping: closing the consumer (checkpoints of the owned partitions first)");
    rd_kafka_consumer_close(svc->rk); /* revokes: the rebalance callback checkpoints */
    for (int32_t p = 0; p < AGG_MAX_PARTITIONS; p++)
        parts_drop(svc, p);
    rd_kafka_flush(svc->rkp, 10000);
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
        size_t mem = 0, conns = 0, streams = 0;
        for (int i = 0; i < n; i++)
            if (svc->parts[i]) {
                mem += agg_part_memory(svc->parts[i]);
                conns += agg_part_connections(svc->parts[i]);
                streams += agg_part_streams(svc->parts[i]);
            }
        fprintf(progress, "rebuild: state in memory: %zu streams, %zu open connections, %zu bytes of structures "
                          "(%.0f bytes per connection)\n", streams, conns, mem,
                conns ? (double)mem / (double)conns : 0.0);
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
    if (svc->rkp) {
        /* serve the last delivery reports (they free checkpoint jobs) */
        rd_kafka_flush(svc->rkp, 5000);
        rd_kafka_purge(svc->rkp, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(svc->rkp, 0);
        rd_kafka_destroy(svc->rkp);
    }
    vc_redis_batch_destroy(svc->batch);
    vc_redis_destroy(svc->redis);
    free(svc->msgs);
    free(svc->ages);
    free(svc);
}
