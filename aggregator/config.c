/* config.c -- the option table of vc-aggregator (see config.h). */
#include "config.h"

#include "vc_conf.h"

#include <string.h>

#define S(f) VC_CONF_STR, offsetof(agg_config, f)
#define I(f) VC_CONF_I64, offsetof(agg_config, f)

static const vc_conf_opt opts[] = {
    {"id", "VC_AGGREGATOR_ID", S(id), "agg-0", 0, 0, "instance name (logs, Kafka client id)"},
    {"brokers", "VC_KAFKA_BROKERS", S(brokers), "127.0.0.1:9092", 0, 0, "Kafka bootstrap servers"},
    {"events-topic", "VC_EVENTS_TOPIC", S(events_topic), "vc.events", 0, 0, "topic of viewer events"},
    {"dlq-topic", "VC_DLQ_TOPIC", S(dlq_topic), "vc.events.dlq", 0, 0, "dead-letter topic"},
    {"checkpoint-topic", "VC_CHECKPOINT_TOPIC", S(checkpoint_topic), "vc.aggregator.checkpoints", 0, 0,
     "compacted topic of partition checkpoints"},
    {"group", "VC_AGGREGATOR_GROUP", S(group), "vc-aggregator", 0, 0, "Kafka consumer group"},
    {"redis-nodes", "VC_REDIS_NODES", S(redis_nodes), "127.0.0.1:7000", 0, 0,
     "Redis Cluster seed nodes host:port,..."},
    {"mysql-host", "VC_MYSQL_HOST", S(mysql_host), "", 0, 0, "MariaDB host for stream categories (empty: none)"},
    {"mysql-port", "VC_MYSQL_PORT", I(mysql_port), "3306", 1, 65535, "MariaDB port"},
    {"mysql-user", "VC_MYSQL_USER", S(mysql_user), "", 0, 0, "MariaDB user"},
    {"mysql-password", "VC_MYSQL_PASSWORD", S(mysql_password), "", 0, 0, "MariaDB password"},
    {"mysql-db", "VC_MYSQL_DB", S(mysql_db), "vc", 0, 0, "MariaDB database"},
    {"http-addr", "VC_AGGREGATOR_HTTP_ADDR", S(http_addr), "127.0.0.1", 0, 0,
     "listen address of /metrics and /healthz (0.0.0.0: every address)"},
    {"http-port", "VC_AGGREGATOR_HTTP_PORT", I(http_port), "0", 0, 65535,
     "port of /metrics and /healthz (0: off)"},
    {"gateway-timeout-ms", "VC_GATEWAY_TIMEOUT_MS", I(gateway_timeout_ms), "90000", 1, INT64_MAX,
     "event time after which a silent gateway loses its viewers"},
    {"batch-max", "VC_AGGREGATOR_BATCH_MAX", I(batch_max), "5000", 1, 100000, "messages per batch"},
    {"rebuild-batch-max", "VC_AGGREGATOR_REBUILD_BATCH_MAX", I(rebuild_batch_max), "20000", 1, 100000,
     "messages per batch of the rebuild command (replay: larger batches, fewer Redis calls per event)"},
    {"batch-wait-ms", "VC_AGGREGATOR_BATCH_WAIT_MS", I(batch_wait_ms), "0", 0, 10000,
     "after a batch's first message, longest wait for more (0: take what has arrived)"},
    {"redis-timeout-ms", "VC_REDIS_TIMEOUT_MS", I(redis_timeout_ms), "2000", 1, 600000,
     "Redis connect and command timeout"},
    {"checkpoint-interval-s", "VC_CHECKPOINT_INTERVAL_S", I(checkpoint_interval_s), "30", 0, 86400,
     "seconds between checkpoints of each owned partition's state, also written on revocation and a clean "
     "stop (0: none at all)"},
    {"syncing-hold-ms", "VC_SYNCING_HOLD_MS", I(syncing_hold_ms), "15000", 1, INT64_MAX,
     "event time a stream shows \"syncing\" after a sync snapshot found a drift of 10% or more"},
    {"tombstone-ttl-ms", "VC_TOMBSTONE_TTL_MS", I(tombstone_ttl_ms), "600000", 1, INT64_MAX,
     "event time after which a leave whose join never came is forgotten"},
    {"sync-max-viewers", "VC_SYNC_MAX_VIEWERS", I(sync_max_viewers), "1000000", 1, INT64_MAX,
     "viewers buffered in unfinished sync snapshots per partition"},
    {"sync-max-age-ms", "VC_SYNC_MAX_AGE_MS", I(sync_max_age_ms), "60000", 1, INT64_MAX,
     "event-time age after which an unfinished sync snapshot is dropped"},
    {"session-timeout-ms", "VC_AGGREGATOR_SESSION_TIMEOUT_MS", I(session_timeout_ms), "10000", 1000, 3600000,
     "Kafka consumer group session timeout: a killed instance's partitions move after this"},
    {"category-refresh-ms", "VC_CATEGORY_REFRESH_MS", I(category_refresh_ms), "1000", 0, 3600000,
     "how often unknown stream categories are looked up (0: never)"},
};

static const vc_conf_table table = {opts, sizeof(opts) / sizeof(opts[0])};

void agg_config_defaults(agg_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    vc_conf_init(&table, cfg);
}

void agg_config_free(agg_config *cfg)
{
    vc_conf_free(&table, cfg);
}

int agg_config_set(agg_config *cfg, const char *name, const char *value, char *errstr,
                   size_t errstr_size)
{
    return vc_conf_set(&table, cfg, name, value, errstr, errstr_size);
}

int agg_config_from_env(agg_config *cfg, char *errstr, size_t errstr_size)
{
    return vc_conf_load_env(&table, cfg, errstr, errstr_size);
}

int agg_config_from_args(agg_config *cfg, int argc, char **argv, int first, char *errstr,
                         size_t errstr_size)
{
    return vc_conf_load_args(&table, cfg, argc, argv, first, 1, NULL, errstr, errstr_size);
}

void agg_config_usage(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s [options] [run]      consume the events topic into Redis (default)\n"
            "       %s [options] rebuild    restore Redis from checkpoints + the events topic, then exit\n"
            "\noptions (flag / environment variable, default):\n",
            prog, prog);
    vc_conf_usage(&table, out);
}
