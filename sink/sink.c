#include "sink.h"

#include <inttypes.h>
#include <stdarg.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "rollup.h"
#include "vc_event.h"

#define SK_MAX_PARTITIONS 4096

typedef struct {
    sk_rollup *r;
    int64_t db_offset;        /* stored next offset (-1: none): the fence of the next flush */
    int64_t next_offset;      /* after the last applied message (-1: none yet) */
    int64_t last_flush_ms;    /* monotonic */
} sk_part;

struct sk_sink {
    const sk_config *cfg;
    sk_metrics *m;
    sk_rollup_conf rconf;
    rd_kafka_t *rk;           /* consumer */
    rd_kafka_t *dlq;          /* producer */
    sk_db *db;
    sk_part *parts[SK_MAX_PARTITIONS];
    volatile sig_atomic_t *stop;
    /* retry state */
    int db_down;
    int64_t retry_at_ms;
    int64_t backoff_ms;
    uint64_t retries_in_row;
    char last_cause[256];
    int fatal;
    char fatal_err[1024];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void logf_(const sk_sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const sk_sink *s, const char *fmt, ...)
{
    va_list ap;
    char when[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, "%s vc-sink[%s]: ", when, s->cfg->id);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* A retryable database error: count it, log it once per cause, back off. */
static void db_retry(sk_sink *s, const char *what, const char *cause)
{
    atomic_fetch_add(&s->m->retries, 1);
    atomic_store(&s->m->db_ok, 0);
    s->retries_in_row++;
    /* the cause without the volatile parts (offsets) is what we compare */
    if (strncmp(s->last_cause, cause, sizeof s->last_cause - 1)) {
        logf_(s, "%s: %s; retrying with backoff (consumption paused, nothing is dropped)", what, cause);
        snprintf(s->last_cause, sizeof s->last_cause, "%s", cause);
    }
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : 100;
    if (s->backoff_ms > s->cfg->retry_max_ms)
        s->backoff_ms = s->cfg->retry_max_ms;
    s->retry_at_ms = now_ms() + s->backoff_ms;
}

static void db_recovered(sk_sink *s)
{
    if (s->retries_in_row)
        logf_(s, "database back after %" PRIu64 " retries", s->retries_in_row);
    s->retries_in_row = 0;
    s->backoff_ms = 0;
    s->last_cause[0] = 0;
    atomic_store(&s->m->db_ok, 1);
}

static void part_drop(sk_sink *s, int32_t p)
{
    if (p < 0 || p >= SK_MAX_PARTITIONS || !s->parts[p])
        return;
    sk_rollup_destroy(s->parts[p]->r);
    free(s->parts[p]);
    s->parts[p] = NULL;
    atomic_fetch_sub(&s->m->partitions, 1);
}

/* Load partition p from its checkpoint, retrying while the database is down.
 * Returns 0, or -1 when stopping or on a fatal error (s->fatal set). */
static int part_load(sk_sink *s, int32_t p)
{
    part_drop(s, p);
    for (;;) {
        int64_t off;
        uint8_t *blob;
        size_t len;
        char err[512];
        sk_db_rc rc = sk_db_load(s->db, s->cfg->group, s->cfg->events_topic, p, &off, &blob, &len, err, sizeof err);
        if (rc == SK_DB_OK) {
            sk_rollup *r = sk_rollup_load(&s->rconf, blob, len, err, sizeof err);
            free(blob);
            sk_part *part = r ? calloc(1, sizeof *part) : NULL;
            if (!part) {
                sk_rollup_destroy(r);
                s->fatal = 1;
                snprintf(s->fatal_err, sizeof s->fatal_err, "partition %d checkpoint: %s", (int)p,
                         r ? "out of memory" : err);
                return -1;
            }
            part->r = r;
            part->db_offset = part->next_offset = off;
            part->last_flush_ms = now_ms();
            s->parts[p] = part;
            atomic_fetch_add(&s->m->partitions, 1);
            db_recovered(s);
            return 0;
        }
        if (rc != SK_DB_RETRY) {
            s->fatal = 1;
            snprintf(s->fatal_err, sizeof s->fatal_err, "partition %d load: %s", (int)p, err);
            return -1;
        }
        db_retry(s, "loading a checkpoint", err);
        while (!*s->stop && now_ms() < s->retry_at_ms) {
            struct timespec ts = {0, 20 * 1000000};
            nanosleep(&ts, NULL);
        }
        if (*s->stop)
            return -1;
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque)
{
    sk_sink *s = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++) {
            rd_kafka_topic_partition_t *tp = &parts->elems[i];
            if (tp->partition >= SK_MAX_PARTITIONS) {
                s->fatal = 1;
                snprintf(s->fatal_err, sizeof s->fatal_err, "partition %d beyond %d", (int)tp->partition,
                         SK_MAX_PARTITIONS);
                break;
            }
            if (part_load(s, tp->partition) < 0)
                break;
            int64_t off = s->parts[tp->partition]->next_offset;
            tp->offset = off >= 0 ? off : RD_KAFKA_OFFSET_BEGINNING;
            logf_(s, "assigned partition %d, from offset %" PRId64 "%s", (int)tp->partition, off,
                  off >= 0 ? "" : " (no checkpoint: the beginning)");
        }
        if (s->fatal || *s->stop)
            rd_kafka_assign(rk, NULL);
        else
            rd_kafka_assign(rk, parts);
    } else {
        /* unflushed state is dropped: the checkpoint and the log rebuild it */
        for (int i = 0; i < parts->cnt; i++)
            part_drop(s, parts->elems[i].partition);
        rd_kafka_assign(rk, NULL);
        s->db_down = 0; /* nothing of ours is waiting any more */
    }
}

sk_sink *sk_sink_new(const sk_config *cfg, sk_metrics *m, char *errstr, size_t errstr_size)
{
    sk_sink *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    s->m = m;
    s->rconf.rollup_ms = cfg->rollup_seconds * 1000;
    s->rconf.liveness_timeout_ms = cfg->gateway_timeout_ms;
    s->rconf.sync_max_viewers = (size_t)cfg->sync_max_viewers;
    s->rconf.sync_max_age_ms = cfg->sync_max_age_ms;
    sk_db_conf dconf = {.host = cfg->mysql_host, .port = (int)cfg->mysql_port, .user = cfg->mysql_user,
                        .password = cfg->mysql_password, .db = cfg->mysql_db, .timeout_s = (int)cfg->db_timeout_s};
    s->db = sk_db_new(&dconf);
    if (!s->db) {
        snprintf(errstr, errstr_size, "out of memory");
        free(s);
        return NULL;
    }

    char kerr[512], session[24], heartbeat[24], poll_iv[24];
    snprintf(poll_iv, sizeof poll_iv, "%" PRId64, cfg->max_poll_interval_ms);
    snprintf(session, sizeof session, "%" PRId64, cfg->session_timeout_ms);
    snprintf(heartbeat, sizeof heartbeat, "%" PRId64, cfg->session_timeout_ms / 3);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", cfg->kafka_brokers, kerr, sizeof kerr) ||
        rd_kafka_conf_set(conf, "group.id", cfg->group, kerr, sizeof kerr) ||
        rd_kafka_conf_set(conf, "client.id", cfg->id, kerr, sizeof kerr) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", kerr, sizeof kerr) ||
        rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", kerr, sizeof kerr) ||
        /* a stored offset that the log no longer has is an error, never a silent jump */
        rd_kafka_conf_set(conf, "auto.offset.reset", "error", kerr, sizeof kerr) ||
        rd_kafka_conf_set(conf, "session.timeout.ms", session, kerr, sizeof kerr) ||
        rd_kafka_conf_set(conf, "heartbeat.interval.ms", heartbeat, kerr, sizeof kerr) ||
        rd_kafka_conf_set(conf, "max.poll.interval.ms", poll_iv, kerr, sizeof kerr)) {
        snprintf(errstr, errstr_size, "kafka consumer config: %s", kerr);
        rd_kafka_conf_destroy(conf);
        sk_sink_destroy(s);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, s);
    s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof kerr); /* takes ownership of conf */
    conf = NULL;
    if (!s->rk) {
        snprintf(errstr, errstr_size, "kafka consumer: %s", kerr);
        sk_sink_destroy(s);
        return NULL;
    }
    rd_kafka_poll_set_consumer(s->rk);

    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", cfg->kafka_brokers, kerr, sizeof kerr) ||
        rd_kafka_conf_set(conf, "client.id", cfg->id, kerr, sizeof kerr) ||
        rd_kafka_conf_set(conf, "acks", "all", kerr, sizeof kerr)) {
        snprintf(errstr, errstr_size, "kafka producer config: %s", kerr);
        rd_kafka_conf_destroy(conf);
        sk_sink_destroy(s);
        return NULL;
    }
    s->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof kerr);
    conf = NULL;
    if (!s->dlq) {
        snprintf(errstr, errstr_size, "kafka producer: %s", kerr);
        sk_sink_destroy(s);
        return NULL;
    }
    return s;
}

void sk_sink_destroy(sk_sink *s)
{
    if (!s)
        return;
    if (s->rk) {
        rd_kafka_consumer_close(s->rk);
        rd_kafka_destroy(s->rk);
    }
    for (int p = 0; p < SK_MAX_PARTITIONS; p++)
        part_drop(s, p);
    if (s->dlq) {
        rd_kafka_flush(s->dlq, 5000);
        rd_kafka_destroy(s->dlq);
    }
    sk_db_destroy(s->db);
    free(s);
}

/* Send an undecodable message to the dead-letter topic with its reason. */
static int dead_letter(sk_sink *s, const rd_kafka_message_t *rkm, const char *reason)
{
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", (int)rkm->partition);
    snprintf(off, sizeof off, "%" PRId64, rkm->offset);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        s->dlq, RD_KAFKA_V_TOPIC(s->cfg->dlq_topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(rkm->key, rkm->key_len), RD_KAFKA_V_VALUE(rkm->payload, rkm->len),
        RD_KAFKA_V_HEADER("reason", reason, -1), RD_KAFKA_V_HEADER("service", "vc-sink", -1),
        RD_KAFKA_V_HEADER("source-topic", s->cfg->events_topic, -1), RD_KAFKA_V_HEADER("source-partition", part, -1),
        RD_KAFKA_V_HEADER("source-offset", off, -1), RD_KAFKA_V_END);
    if (err) {
        logf_(s, "dead-letter of partition %d offset %" PRId64 ": %s", (int)rkm->partition, rkm->offset,
              rd_kafka_err2str(err));
        return -1;
    }
    atomic_fetch_add(&s->m->dead_lettered, 1);
    return 0;
}

static void handle(sk_sink *s, rd_kafka_message_t *rkm)
{
    if (rkm->err) {
        if (rkm->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
            /* the stored offset fell out of the topic's retention: events were
             * lost to the sink; an operator decides (reset the partition's rows) */
            s->fatal = 1;
            snprintf(s->fatal_err, sizeof s->fatal_err, "partition %d: %s (the stored offset is no longer in the log)",
                     (int)rkm->partition, rd_kafka_message_errstr(rkm));
        } else if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            logf_(s, "consumer: %s", rd_kafka_message_errstr(rkm));
        }
        return;
    }
    int32_t p = rkm->partition;
    sk_part *part = p >= 0 && p < SK_MAX_PARTITIONS ? s->parts[p] : NULL;
    if (!part || (part->next_offset >= 0 && rkm->offset < part->next_offset))
        return; /* not ours any more, or already applied (a refetch after a seek) */
    vc_event ev;
    vc_event_init(&ev);
    char err[256];
    vc_codec_rc crc = vc_event_decode(rkm->payload, rkm->len, &ev, err, sizeof err);
    if (crc != VC_CODEC_OK) {
        char reason[320];
        snprintf(reason, sizeof reason, "%s: %s", vc_codec_strerror(crc), err);
        if (dead_letter(s, rkm, reason) < 0) {
            s->fatal = 1;
            snprintf(s->fatal_err, sizeof s->fatal_err, "cannot dead-letter offset %" PRId64, rkm->offset);
            return;
        }
    } else {
        if (sk_rollup_apply(part->r, &ev) < 0) {
            vc_event_free(&ev);
            s->fatal = 1;
            snprintf(s->fatal_err, sizeof s->fatal_err, "partition %d: out of memory", (int)p);
            return;
        }
        vc_event_free(&ev);
        atomic_fetch_add(&s->m->events, 1);
    }
    part->next_offset = rkm->offset + 1;
}

static int flush_needed(const sk_sink *s, const sk_part *part, int64_t now)
{
    if (part->next_offset < 0 || part->next_offset == part->db_offset)
        return 0;
    const sk_rows *rows = sk_rollup_rows(part->r);
    if (rows->nhist || rows->current.len)
        return 1; /* a bucket closed */
    if (sk_rollup_rows_pending(part->r) >= (size_t)s->cfg->flush_max_rows)
        return 1;
    return s->cfg->flush_interval_ms > 0 && now - part->last_flush_ms >= s->cfg->flush_interval_ms;
}

/* Flush one partition. Returns the db result. */
static sk_db_rc part_flush(sk_sink *s, int32_t p)
{
    sk_part *part = s->parts[p];
    /* dead letters go out before the offset moves past them */
    if (rd_kafka_outq_len(s->dlq) > 0 && rd_kafka_flush(s->dlq, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        db_retry(s, "dead-letter topic", "flush timed out");
        return SK_DB_RETRY;
    }
    size_t len;
    uint8_t *blob = sk_rollup_save(part->r, &len);
    if (!blob) {
        s->fatal = 1;
        snprintf(s->fatal_err, sizeof s->fatal_err, "checkpoint: out of memory");
        return SK_DB_FATAL;
    }
    char err[512];
    sk_db_counts counts = {0};
    int64_t t0 = now_ms();
    sk_db_rc rc = sk_db_flush(s->db, s->cfg->group, s->cfg->events_topic, p, sk_rollup_rows(part->r),
                              part->db_offset, part->next_offset, blob, len, &counts, err, sizeof err);
    free(blob);
    int64_t t1 = now_ms();
    switch (rc) {
    case SK_DB_OK:
        sk_rollup_rows_clear(part->r);
        part->db_offset = part->next_offset;
        part->last_flush_ms = t1;
        atomic_fetch_add(&s->m->flushes, 1);
        atomic_fetch_add(&s->m->flush_ms_sum, (uint64_t)(t1 - t0));
        atomic_store(&s->m->flush_ms_last, (uint64_t)(t1 - t0));
        atomic_fetch_add(&s->m->rows_viewer_history, counts.viewer_history);
        atomic_fetch_add(&s->m->rows_current_viewers, counts.current_viewers);
        atomic_fetch_add(&s->m->rows_daily_statistics, counts.daily_statistics);
        atomic_fetch_add(&s->m->rows_user_sessions, counts.user_sessions);
        atomic_fetch_add(&s->m->checkpoint_bytes, counts.checkpoint_bytes);
        {
            /* for lag tools only: the database holds the real offset */
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, s->cfg->events_topic, p)->offset = part->next_offset;
            rd_kafka_commit(s->rk, l, 1);
            rd_kafka_topic_partition_list_destroy(l);
        }
        break;
    case SK_DB_RETRY:
        db_retry(s, "flush", err);
        break;
    case SK_DB_FENCED:
        atomic_fetch_add(&s->m->fenced, 1);
        logf_(s, "%s: reloading partition %d from its checkpoint", err, (int)p);
        if (part_load(s, p) == 0) {
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            int64_t off = s->parts[p]->next_offset;
            rd_kafka_topic_partition_list_add(l, s->cfg->events_topic, p)->offset =
                off >= 0 ? off : RD_KAFKA_OFFSET_BEGINNING;
            rd_kafka_error_t *e = rd_kafka_seek_partitions(s->rk, l, 10000);
            if (e)
                rd_kafka_error_destroy(e);
            rd_kafka_topic_partition_list_destroy(l);
        }
        break;
    case SK_DB_FATAL:
        s->fatal = 1;
        snprintf(s->fatal_err, sizeof s->fatal_err, "partition %d flush: %s", (int)p, err);
        break;
    }
    return rc;
}

/* Flush every partition that needs it (all that made progress when force). */
static sk_db_rc flush_due(sk_sink *s, int force)
{
    int64_t now = now_ms();
    for (int32_t p = 0; p < SK_MAX_PARTITIONS; p++) {
        sk_part *part = s->parts[p];
        if (!part)
            continue;
        int due = force ? (part->next_offset >= 0 && part->next_offset != part->db_offset) : flush_needed(s, part, now);
        if (!due)
            continue;
        sk_db_rc rc = part_flush(s, p);
        if (rc == SK_DB_RETRY || rc == SK_DB_FATAL)
            return rc;
    }
    return SK_DB_OK;
}

static void pause_all(sk_sink *s, int pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(s->rk, &l) || !l)
        return;
    if (pause) {
        rd_kafka_pause_partitions(s->rk, l);
    } else {
        rd_kafka_resume_partitions(s->rk, l);
        /* go on exactly after the last applied message */
        for (int i = 0; i < l->cnt; i++) {
            sk_part *part = l->elems[i].partition < SK_MAX_PARTITIONS ? s->parts[l->elems[i].partition] : NULL;
            l->elems[i].offset = part && part->next_offset >= 0 ? part->next_offset : RD_KAFKA_OFFSET_BEGINNING;
        }
        rd_kafka_error_t *e = rd_kafka_seek_partitions(s->rk, l, 10000);
        if (e) {
            logf_(s, "seek after resume: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void update_lag(sk_sink *s)
{
    int64_t lag = 0;
    for (int32_t p = 0; p < SK_MAX_PARTITIONS; p++) {
        sk_part *part = s->parts[p];
        if (!part)
            continue;
        int64_t lo, hi;
        if (rd_kafka_get_watermark_offsets(s->rk, s->cfg->events_topic, p, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
            hi < 0)
            continue;
        int64_t pos = part->next_offset >= 0 ? part->next_offset : lo;
        if (hi > pos)
            lag += hi - pos;
    }
    atomic_store(&s->m->lag, lag);
}

int sk_sink_run(sk_sink *s, volatile sig_atomic_t *stop, char *errstr, size_t errstr_size)
{
    s->stop = stop;
    atomic_store(&s->m->db_ok, 1);
    char err[512];
    if (s->cfg->maintenance) {
        for (;;) {
            sk_db_rc rc = sk_db_maintain(s->db, err, sizeof err);
            if (rc == SK_DB_OK) {
                db_recovered(s);
                break;
            }
            if (rc != SK_DB_RETRY) {
                snprintf(errstr, errstr_size, "%s", err);
                return -1;
            }
            db_retry(s, "partition maintenance", err);
            while (!*stop && now_ms() < s->retry_at_ms) {
                struct timespec ts = {0, 20 * 1000000};
                nanosleep(&ts, NULL);
            }
            if (*stop)
                return 0;
        }
    }
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, s->cfg->events_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t kerr = rd_kafka_subscribe(s->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (kerr) {
        snprintf(errstr, errstr_size, "subscribe %s: %s", s->cfg->events_topic, rd_kafka_err2str(kerr));
        return -1;
    }
    atomic_store(&s->m->running, 1);
    logf_(s, "consuming %s as group %s, rollup %" PRId64 " s", s->cfg->events_topic, s->cfg->group,
          s->cfg->rollup_seconds);
    int64_t last_lag = 0;
    while (!*stop && !s->fatal) {
        if (s->db_down) {
            rd_kafka_message_t *rkm = rd_kafka_consumer_poll(s->rk, 50); /* serves rebalances; paused: no data */
            if (rkm) {
                handle(s, rkm); /* a message fetched before the pause is still applied exactly once */
                rd_kafka_message_destroy(rkm);
            }
            if (!s->db_down)
                pause_all(s, 0); /* revoked meanwhile */
            if (!s->db_down || now_ms() < s->retry_at_ms)
                continue;
            sk_db_rc rc = flush_due(s, 1);
            if (rc == SK_DB_OK) {
                db_recovered(s);
                s->db_down = 0;
                pause_all(s, 0);
            }
            continue;
        }
        int64_t n = 0;
        while (n < s->cfg->poll_batch && !s->fatal) {
            rd_kafka_message_t *rkm = rd_kafka_consumer_poll(s->rk, n ? 0 : 100);
            if (!rkm)
                break;
            handle(s, rkm);
            rd_kafka_message_destroy(rkm);
            n++;
        }
        rd_kafka_poll(s->dlq, 0);
        if (s->fatal)
            break;
        sk_db_rc rc = flush_due(s, 0);
        if (rc == SK_DB_RETRY) {
            s->db_down = 1;
            pause_all(s, 1);
        }
        if (now_ms() - last_lag >= 1000) {
            update_lag(s);
            last_lag = now_ms();
        }
    }
    atomic_store(&s->m->running, 0);
    if (s->fatal) {
        snprintf(errstr, errstr_size, "%s", s->fatal_err);
        return -1;
    }
    /* a clean stop writes what it has, so that the next start replays less */
    if (!s->db_down && flush_due(s, 1) != SK_DB_OK)
        logf_(s, "final flush failed: the next start replays from the stored offsets");
    return 0;
}
