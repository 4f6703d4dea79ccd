/* test_partition.c -- the murmur2 partitioner equals Kafka's (Java and librdkafka). */
#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <string.h>

#include "vc_partition.h"

static int32_t murmur2_signed(const char *s)
{
    return (int32_t)vc_murmur2(s, strlen(s));
}

/* Kafka's clients/src/test/java/.../UtilsTest.java (testMurmur2). */
Test(partition, java_client_vectors)
{
    cr_assert_eq(murmur2_signed("21"), -973932308);
    cr_assert_eq(murmur2_signed("foobar"), -790332482);
    cr_assert_eq(murmur2_signed("a-little-bit-long-string"), -985981536);
    cr_assert_eq(murmur2_signed("a-little-bit-longer-string"), -1486304829);
    cr_assert_eq(murmur2_signed("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
    cr_assert_eq(murmur2_signed("abc"), 479470107);
}

/* librdkafka's src/rdmurmur2.c unit test, including unaligned starts. */
Test(partition, librdkafka_vectors)
{
    static const char unaligned[] = "PreAmbleWillBeRemoved,ThePrePartThatIs";
    static const char short_unaligned[] = "1234";
    struct { const char *key; uint32_t hash; } v[] = {
        {"kafka", 0xd067cf64u},
        {"giberish123456789", 0x8f552b0cu},
        {short_unaligned, 0x9fc97b14u},
        {short_unaligned + 1, 0xe7c009cau},
        {short_unaligned + 2, 0x873930dau},
        {short_unaligned + 3, 0x5a4b5ca1u},
        {unaligned, 0x78424f1cu},
        {unaligned + 1, 0x4a62b377u},
        {unaligned + 2, 0xe0e4e09eu},
        {unaligned + 3, 0x62b8b43fu},
        {"", 0x106e08d9u},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        cr_assert_eq(vc_murmur2(v[i].key, strlen(v[i].key)), v[i].hash, "key \"%s\"", v[i].key);
    cr_assert_eq(vc_murmur2(NULL, 0), 0x106e08d9u);
}

Test(partition, stream_key_is_decimal_ascii)
{
    char key[VC_STREAM_KEY_MAX];

    cr_assert_eq(vc_stream_key(42, key), 2);
    cr_assert_str_eq(key, "42");
    cr_assert_eq(vc_stream_key(INT64_MAX, key), 19);
    cr_assert_str_eq(key, "9223372036854775807");
    cr_assert_eq(vc_stream_key(0, key), 1);
    cr_assert_str_eq(key, "0");
}

Test(partition, partition_is_masked_murmur2_modulo)
{
    for (int64_t id = 1; id < 5000; id += 7) {
        char key[VC_STREAM_KEY_MAX];
        size_t len = vc_stream_key(id, key);
        uint32_t h = vc_murmur2(key, len);
        int32_t p = vc_stream_partition(id, 12);
        cr_assert(p >= 0 && p < 12);
        cr_assert_eq(p, (int32_t)((h & 0x7fffffff) % 12));
    }
    cr_assert_eq(vc_stream_partition(123, 1), 0);
}

/* Spread over 12 partitions: each gets a fair share of 12,000 streams. */
Test(partition, spreads_streams)
{
    int count[12] = {0};
    for (int64_t id = 1; id <= 12000; id++)
        count[vc_stream_partition(id, 12)]++;
    for (int i = 0; i < 12; i++)
        cr_assert(count[i] > 800 && count[i] < 1200, "partition %d has %d streams", i, count[i]);
}

/* --- against librdkafka's own partitioner, through its mock cluster --- */

#define NKEYS 600

struct dr_state {
    int delivered;
    int errors;
    int mismatches;
    int32_t partition_count;
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    struct dr_state *st = opaque;
    char key[VC_STREAM_KEY_MAX];
    long long id;

    (void)rk;
    if (msg->err) {
        st->errors++;
        return;
    }
    cr_assert(msg->key_len < sizeof key);
    memcpy(key, msg->key, msg->key_len);
    key[msg->key_len] = '\0';
    cr_assert_eq(sscanf(key, "%lld", &id), 1);
    if (vc_stream_partition(id, st->partition_count) != msg->partition) {
        st->mismatches++;
        cr_log_error("stream %lld: librdkafka chose %d, vc_stream_partition %d", id, (int)msg->partition,
                     (int)vc_stream_partition(id, st->partition_count));
    }
    st->delivered++;
}

static void produce_and_compare(int32_t partition_count)
{
    char errstr[512];
    char topic[32];
    struct dr_state st = {.partition_count = partition_count};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    cr_assert_eq(rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", errstr, sizeof errstr), RD_KAFKA_CONF_OK,
                 "%s", errstr);
    cr_assert_eq(rd_kafka_conf_set(conf, "partitioner", "murmur2_random", errstr, sizeof errstr), RD_KAFKA_CONF_OK,
                 "%s", errstr);
    cr_assert_eq(rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof errstr), RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, &st);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    cr_assert_not_null(rk, "%s", errstr);
    conf = NULL; /* owned by rk */

    rd_kafka_mock_cluster_t *mcluster = rd_kafka_handle_mock_cluster(rk);
    cr_assert_not_null(mcluster);
    snprintf(topic, sizeof topic, "vc.test.p%d", (int)partition_count);
    cr_assert_eq(rd_kafka_mock_topic_create(mcluster, topic, partition_count, 1), RD_KAFKA_RESP_ERR_NO_ERROR);

    for (int i = 0; i < NKEYS; i++) {
        /* Small ids, large ids and everything between. */
        int64_t id = i < NKEYS / 2 ? (int64_t)i + 1 : (int64_t)(i * 2654435761u) * 977 + 1;
        char key[VC_STREAM_KEY_MAX];
        size_t len = vc_stream_key(id, key);
        rd_kafka_resp_err_t err;
        for (;;) {
            err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, len),
                                    RD_KAFKA_V_VALUE("x", 1), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_END);
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                break;
            rd_kafka_poll(rk, 50);
        }
        cr_assert_eq(err, RD_KAFKA_RESP_ERR_NO_ERROR, "%s", rd_kafka_err2str(err));
    }
    cr_assert_eq(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR, "flush timed out");
    rd_kafka_destroy(rk);

    cr_assert_eq(st.errors, 0);
    cr_assert_eq(st.delivered, NKEYS);
    cr_assert_eq(st.mismatches, 0);
}

Test(partition, equals_librdkafka_12_partitions, .timeout = 60)
{
    produce_and_compare(12);
}

Test(partition, equals_librdkafka_7_partitions, .timeout = 60)
{
    produce_and_compare(7);
}
