#include "config.h"

#include "vc_conf.h"

#include <string.h>

#define S(f) VC_CONF_STR, offsetof(sk_config, f)
#define I(f) VC_CONF_I64, offsetof(sk_config, f)

static const vc_conf_opt opts[] = {
    {"id", "VC_SINK_ID", S(id), "sink-0", 0, 0, "instance name (logs, Kafka client id)"},
    {"kafka-brokers", "VC_KAFKA_BROKERS", S(kafka_brokers), "", 0, 0, "Kafka bootstrap servers (required)"},
    {"events-topic", "VC_EVENTS_TOPIC", S(events_topic), "vc.events", 0, 0, "topic of viewer events"},
    {"dlq-topic", "VC_DLQ_TOPIC", S(dlq_topic), "vc.events.dlq", 0, 0, "dead-letter topic for undecodable events"},
    {"group", "VC_SINK_GROUP", S(group), "vc-sink", 0, 0, "Kafka consumer group (also the key of the stored offsets)"},
    {"mysql-host", "VC_MYSQL_HOST", S(mysql_host), "127.0.0.1", 0, 0, "MariaDB / Aurora writer host"},
    {"mysql-port", "VC_MYSQL_PORT", I(mysql_port), "3306", 1, 65535, "writer port"},
    {"mysql-user", "VC_MYSQL_USER", S(mysql_user), "vc_sink", 0, 0, "writer user (see sql/roles.sql)"},
    {"mysql-password", "VC_MYSQL_PASSWORD", S(mysql_password), "", 0, 0, "writer password"},
    {"mysql-db", "VC_MYSQL_DB", S(mysql_db), "vc", 0, 0, "database"},
    {"http-port", "VC_SINK_HTTP_PORT", I(http_port), "0", 0, 65535, "port of /metrics and /healthz (0: off)"},
    {"rollup-seconds", "VC_ROLLUP_SECONDS", I(rollup_seconds), "300", 1, 86400, "bucket length (event time)"},
    {"gateway-timeout-ms", "VC_GATEWAY_TIMEOUT_MS", I(gateway_timeout_ms), "90000", 1, INT64_MAX,
     "a gateway silent this long in event time has lost its viewers (same as the aggregator)"},
    {"sync-max-viewers", "VC_SYNC_MAX_VIEWERS", I(sync_max_viewers), "1000000", 1, INT64_MAX,
     "viewers buffered over unfinished sync snapshots, per partition"},
    {"sync-max-age-ms", "VC_SYNC_MAX_AGE_MS", I(sync_max_age_ms), "60000", 1, INT64_MAX,
     "an unfinished sync snapshot older than this (event time) is dropped"},
    {"flush-max-rows", "VC_SINK_FLUSH_MAX_ROWS", I(flush_max_rows), "100000", 1, 10000000,
     "pending rows of a partition that force a flush before its bucket closes"},
    {"flush-interval-ms", "VC_SINK_FLUSH_INTERVAL_MS", I(flush_interval_ms), "60000", 0, 86400000,
     "flush a partition that made progress at least this often (bounds the replay after a crash; 0: only on bucket close)"},
    {"poll-batch", "VC_SINK_POLL_BATCH", I(poll_batch), "5000", 1, 1000000, "messages handled per loop turn"},
    {"db-timeout-s", "VC_SINK_DB_TIMEOUT_S", I(db_timeout_s), "10", 1, 3600, "MariaDB connect/read/write timeout"},
    {"retry-max-ms", "VC_SINK_RETRY_MAX_MS", I(retry_max_ms), "5000", 10, 600000, "cap of the retry backoff"},
    {"session-timeout-ms", "VC_SINK_SESSION_TIMEOUT_MS", I(session_timeout_ms), "45000", 1000, 3600000,
     "Kafka consumer group session timeout: a killed sink's partitions move after this"},
    {"max-poll-interval-ms", "VC_SINK_MAX_POLL_INTERVAL_MS", I(max_poll_interval_ms), "300000", 1000, 86400000,
     "Kafka max.poll.interval.ms, also the rebalance timeout of the group"},
    {"maintenance", "VC_SINK_MAINTENANCE", I(maintenance), "1", 0, 1,
     "call vc_partition_maintenance() at start-up"},
};

static const vc_conf_table table = {opts, sizeof opts / sizeof opts[0]};

void sk_config_init(sk_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    vc_conf_init(&table, cfg);
}

void sk_config_free(sk_config *cfg)
{
    vc_conf_free(&table, cfg);
}

int sk_config_set(sk_config *cfg, const char *name, const char *value, char *errstr, size_t errstr_size)
{
    return vc_conf_set(&table, cfg, name, value, errstr, errstr_size);
}

int sk_config_load_env(sk_config *cfg, char *errstr, size_t errstr_size)
{
    return vc_conf_load_env(&table, cfg, errstr, errstr_size);
}

int sk_config_load_args(sk_config *cfg, int argc, char **argv, int *help, char *errstr, size_t errstr_size)
{
    return vc_conf_load_args(&table, cfg, argc, argv, 1, 0, help, errstr, errstr_size);
}

int sk_config_check(const sk_config *cfg, char *errstr, size_t errstr_size)
{
    if (!cfg->kafka_brokers[0]) {
        snprintf(errstr, errstr_size, "VC_KAFKA_BROKERS (--kafka-brokers) is required");
        return -1;
    }
    if (!cfg->events_topic[0] || !cfg->group[0] || !cfg->mysql_db[0]) {
        snprintf(errstr, errstr_size, "events topic, group and database must not be empty");
        return -1;
    }
    return 0;
}

void sk_config_usage(FILE *out)
{
    fprintf(out, "usage: vc-sink [--option value ...]\n"
                 "Consumes the events topic and writes 5-minute rollups, sessions and daily\n"
                 "statistics to MariaDB, exactly once per partition. Every option is also read\n"
                 "from its environment variable; flags win.\n\n");
    vc_conf_usage(&table, out);
}
