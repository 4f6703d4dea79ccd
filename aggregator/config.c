/* config.c -- the option table of vc-aggregator (see config.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OPT_STR, OPT_INT } opt_type;

typedef struct {
    const char *flag;
    const char *env;
    opt_type type;
    size_t off;
    const char *def;
    int64_t min, max;
    const char *help;
} opt;

#define S(f) OPT_STR, offsetof(agg_config, f)
#define I(f) OPT_INT, offsetof(agg_config, f)

static const opt opts[] = {
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
    {"http-port", "VC_AGGREGATOR_HTTP_PORT", I(http_port), "0", 0, 65535,
     "port of /metrics and /healthz on 127.0.0.1 (0: off)"},
    {"gateway-timeout-ms", "VC_GATEWAY_TIMEOUT_MS", I(gateway_timeout_ms), "90000", 1, INT64_MAX,
     "event time after which a silent gateway loses its viewers"},
    {"batch-max", "VC_AGGREGATOR_BATCH_MAX", I(batch_max), "5000", 1, 100000, "messages per batch"},
    {"rebuild-batch-max", "VC_AGGREGATOR_REBUILD_BATCH_MAX", I(rebuild_batch_max), "20000", 1, 100000,
     "messages per batch of the rebuild command (replay: larger batches, fewer Redis calls per event)"},
    {"batch-wait-ms", "VC_AGGREGATOR_BATCH_WAIT_MS", I(batch_wait_ms), "5", 0, 10000,
     "longest wait to fill a batch"},
    {"redis-timeout-ms", "VC_REDIS_TIMEOUT_MS", I(redis_timeout_ms), "2000", 1, 600000,
     "Redis connect and command timeout"},
    {"checkpoint-interval-s", "VC_CHECKPOINT_INTERVAL_S", I(checkpoint_interval_s), "60", 0, 86400,
     "seconds between partition checkpoints (0: none)"},
    {"sync-max-viewers", "VC_SYNC_MAX_VIEWERS", I(sync_max_viewers), "1000000", 1, INT64_MAX,
     "viewers buffered in unfinished sync snapshots per partition"},
    {"sync-max-age-ms", "VC_SYNC_MAX_AGE_MS", I(sync_max_age_ms), "60000", 1, INT64_MAX,
     "event-time age after which an unfinished sync snapshot is dropped"},
    {"category-refresh-ms", "VC_CATEGORY_REFRESH_MS", I(category_refresh_ms), "1000", 0, 3600000,
     "how often unknown stream categories are looked up (0: never)"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static int opt_set(agg_config *cfg, const opt *o, const char *value, char *errstr, size_t size)
{
    char *base = (char *)cfg + o->off;
    if (o->type == OPT_STR) {
        if (strlen(value) >= AGG_STR_MAX) {
            snprintf(errstr, size, "--%s: value too long", o->flag);
            return -1;
        }
        memcpy(base, value, strlen(value) + 1);
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || v < o->min || v > o->max) {
        snprintf(errstr, size, "--%s: '%s' is not an integer in [%" PRId64 ", %" PRId64 "]",
                 o->flag, value, o->min, o->max);
        return -1;
    }
    memcpy(base, &(int64_t){v}, sizeof(int64_t));
    return 0;
}

void agg_config_defaults(agg_config *cfg)
{
    char err[128];
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NOPTS; i++)
        (void)opt_set(cfg, &opts[i], opts[i].def, err, sizeof(err));
}

int agg_config_set(agg_config *cfg, const char *name, const char *value, char *errstr,
                   size_t errstr_size)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(name, opts[i].flag) == 0 || strcmp(name, opts[i].env) == 0)
            return opt_set(cfg, &opts[i], value, errstr, errstr_size);
    snprintf(errstr, errstr_size, "unknown option '%s' (see --help)", name);
    return -1;
}

int agg_config_from_env(agg_config *cfg, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const char *v = getenv(opts[i].env);
        if (v != NULL && opt_set(cfg, &opts[i], v, errstr, errstr_size) < 0)
            return -1;
    }
    return 0;
}

int agg_config_from_args(agg_config *cfg, int argc, char **argv, int first, char *errstr,
                         size_t errstr_size)
{
    int i = first;
    while (i < argc && strncmp(argv[i], "--", 2) == 0) {
        char name[64];
        const char *arg = argv[i] + 2, *eq = strchr(arg, '='), *value;
        size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
        if (n >= sizeof(name)) {
            snprintf(errstr, errstr_size, "unknown option '%s'", argv[i]);
            return -1;
        }
        memcpy(name, arg, n);
        name[n] = '\0';
        if (eq) {
            value = eq + 1;
            i++;
        } else if (i + 1 < argc) {
            value = argv[i + 1];
            i += 2;
        } else {
            snprintf(errstr, errstr_size, "--%s needs a value", name);
            return -1;
        }
        if (agg_config_set(cfg, name, value, errstr, errstr_size) < 0)
            return -1;
    }
    return i;
}

void agg_config_usage(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s [options] [run]      consume the events topic into Redis (default)\n"
            "       %s [options] rebuild    restore Redis from checkpoints + the events topic, then exit\n"
            "\noptions (flag / environment variable, default):\n",
            prog, prog);
    for (size_t i = 0; i < NOPTS; i++)
        fprintf(out, "  --%-24s %-28s %s (default: %s)\n", opts[i].flag, opts[i].env, opts[i].help,
                opts[i].def[0] ? (strstr(opts[i].flag, "password") ? "(secret)" : opts[i].def) : "\"\"");
}
