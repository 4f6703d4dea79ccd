/* producer.c -- idempotent librdkafka producer of viewer events (see producer.h). */
#include "producer.h"

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vc_partition.h"

/* Heartbeats are skipped to a partition that has had messages of this
 * gateway outstanding with no acknowledgement for this long (see
 * schemas/vc_rules.h, gateway liveness: a queued heartbeat delivered after an
 * outage would say "alive now" about a past moment). */
#define HB_STALL_MS 1000
#define PART_MAX 4096

typedef struct {
    int64_t pending;          /* messages produced to the partition, not yet reported */
    int64_t progress_ms;      /* last acknowledgement, or when pending left 0 (monotonic) */
} part_track;

struct gw_producer {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    char gateway_id[VC_GATEWAY_ID_MAX + 1];
    int64_t epoch_ms;
    int64_t seq;
    int outage;               /* loop thread: deliveries failing / brokers down */
    int recovered;
    _Atomic int32_t partitions;
    _Atomic int metadata_ok;
    gw_producer_stats st;
    uint8_t *buf;             /* encode buffer, VC_EVENT_ENCODED_MAX */
    part_track *parts;        /* loop thread: PART_MAX entries */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    gw_producer *p = opaque;

    (void)rk;
    if (m->_private != NULL) { /* counted at produce: partition + 1 */
        part_track *t = &p->parts[(intptr_t)m->_private - 1];
        t->pending--;
        if (!m->err)
            t->progress_ms = mono_ms();
    }
    if (m->err) {
        p->st.delivery_errors++;
        if (!p->outage)
            p->st.outages++;
        p->outage = 1;
        return;
    }
    p->st.delivered++;
    if (p->outage) {
        p->outage = 0;
        p->recovered = 1;
    }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    gw_producer *p = opaque;

    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
        err == RD_KAFKA_RESP_ERR__RESOLVE) {
        if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
            if (!p->outage)
                p->st.outages++;
            p->outage = 1;
        }
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[256];

        rd_kafka_fatal_error(rk, why, sizeof(why));
        fprintf(stderr, "vc-gateway: kafka fatal error: %s\n", why);
    } else if (err != RD_KAFKA_RESP_ERR__TRANSPORT)
        fprintf(stderr, "vc-gateway: kafka: %s: %s\n", rd_kafka_err2name(err), reason);
}

gw_producer *gw_producer_new(const char *brokers, const char *topic, const char *gateway_id, int64_t epoch_ms,
                             int queue_max, char *errstr, size_t errstr_size)
{
    gw_producer *p = calloc(1, sizeof(*p));
    rd_kafka_conf_t *conf = NULL;
    char qmax[24];
    const char *kv[][2] = {
        {"bootstrap.servers", brokers},
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"partitioner", "murmur2_random"},
        {"linger.ms", "5"},
        {"queue.buffering.max.messages", qmax},
        {"client.id", gateway_id},
        {"socket.keepalive.enable", "true"},
        {"reconnect.backoff.max.ms", "2000"},
    };

    if (p == NULL || (p->buf = malloc(VC_EVENT_ENCODED_MAX)) == NULL ||
        (p->parts = calloc(PART_MAX, sizeof(*p->parts))) == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    snprintf(p->gateway_id, sizeof(p->gateway_id), "%s", gateway_id);
    p->epoch_ms = epoch_ms;
    snprintf(qmax, sizeof(qmax), "%d", queue_max);
    conf = rd_kafka_conf_new();
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], errstr, errstr_size) != RD_KAFKA_CONF_OK)
            goto fail;
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (p->rk == NULL)
        goto fail;
    conf = NULL; /* rd_kafka_new took ownership */
    p->rkt = rd_kafka_topic_new(p->rk, topic, NULL);
    if (p->rkt == NULL) {
        snprintf(errstr, errstr_size, "topic %s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    return p;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    gw_producer_destroy(p);
    return NULL;
}

void gw_producer_destroy(gw_producer *p)
{
    if (p == NULL)
        return;
    if (p->rkt)
        rd_kafka_topic_destroy(p->rkt);
    if (p->rk)
        rd_kafka_destroy(p->rk);
    free(p->buf);
    free(p->parts);
    free(p);
}

int gw_producer_send(gw_producer *p, vc_event *ev, int32_t partition, int64_t now_ms)
{
    char key[VC_STREAM_KEY_MAX];
    size_t keylen, len;
    int32_t track;
    rd_kafka_resp_err_t err;

    snprintf(ev->gateway_id, sizeof(ev->gateway_id), "%s", p->gateway_id);
    ev->gateway_epoch = p->epoch_ms;
    ev->seq = ++p->seq;
    ev->ts_ms = now_ms;
    if (vc_event_encode(ev, p->buf, VC_EVENT_ENCODED_MAX, &len) != VC_CODEC_OK) {
        p->st.produce_errors++;
        return -1;
    }
    keylen = vc_stream_key(ev->stream_id, key);
    {
        int32_t nparts = gw_producer_partitions(p);
        int32_t part = partition >= 0 ? partition : nparts > 0 ? vc_stream_partition(ev->stream_id, nparts) : -1;
        track = part >= 0 && part < PART_MAX ? part : -1;
    }
    err = rd_kafka_producev(p->rk, RD_KAFKA_V_RKT(p->rkt), RD_KAFKA_V_OPAQUE((void *)(intptr_t)(track + 1)),
                            RD_KAFKA_V_PARTITION(partition >= 0 ? partition : RD_KAFKA_PARTITION_UA),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, keylen),
                            RD_KAFKA_V_VALUE(p->buf, len), RD_KAFKA_V_END);
    if (err) {
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            p->st.queue_full++;
        else
            p->st.produce_errors++;
        return -1;
    }
    p->st.produced++;
    if (track >= 0) {
        if (p->parts[track].pending++ == 0)
            p->parts[track].progress_ms = mono_ms();
    }
    return 0;
}

int gw_producer_heartbeat(gw_producer *p, int64_t now_ms)
{
    int32_t n = gw_producer_partitions(p);
    int sent = 0;

    int64_t now = mono_ms();

    for (int32_t i = 0; i < n; i++) {
        vc_event ev;

        if (i < PART_MAX && p->parts[i].pending > 0 && now - p->parts[i].progress_ms > HB_STALL_MS)
            continue; /* stalled: a heartbeat queued here would arrive late */
        vc_event_init(&ev);
        ev.type = VC_EV_HEARTBEAT;
        if (gw_producer_send(p, &ev, i, now_ms) == 0)
            sent++;
    }
    return sent;
}

void gw_producer_poll(gw_producer *p)
{
    rd_kafka_poll(p->rk, 0);
}

int gw_producer_take_recovered(gw_producer *p)
{
    int r = p->recovered;

    p->recovered = 0;
    return r;
}

int gw_producer_reachable(const gw_producer *p)
{
    return atomic_load(&p->metadata_ok) && !p->outage;
}

int32_t gw_producer_refresh_partitions(gw_producer *p, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    int32_t n = -1;

    if (rd_kafka_metadata(p->rk, 0, p->rkt, &md, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        atomic_store(&p->metadata_ok, 0);
        return -1;
    }
    if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[0].partition_cnt > 0)
        n = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    atomic_store(&p->metadata_ok, n > 0);
    if (n > 0)
        atomic_store(&p->partitions, n);
    return n;
}

int32_t gw_producer_partitions(const gw_producer *p)
{
    return atomic_load(&p->partitions);
}

int gw_producer_flush(gw_producer *p, int timeout_ms)
{
    rd_kafka_flush(p->rk, timeout_ms);
    return rd_kafka_outq_len(p->rk);
}

void gw_producer_get_stats(const gw_producer *p, gw_producer_stats *st)
{
    *st = p->st;
    st->queue_len = rd_kafka_outq_len(p->rk);
}
