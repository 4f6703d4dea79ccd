#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OPT_STR, OPT_INT } opt_type;

typedef struct {
    const char *name;
    const char *env;
    opt_type type;
    size_t off;
    const char *def;
    int64_t min, max;
    const char *help;
} opt;

#define S(f) OPT_STR, offsetof(sk_config, f)
#define I(f) OPT_INT, offsetof(sk_config, f)

static const opt opts[] = {
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

#define NOPTS (sizeof opts / sizeof opts[0])

static const opt *find(const char *name)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (!strcmp(opts[i].name, name))
            return &opts[i];
    return NULL;
}

static int set_opt(sk_config *cfg, const opt *o, const char *value, char *errstr, size_t errstr_size)
{
    char *base = (char *)cfg;
    if (o->type == OPT_STR) {
        char *s = strdup(value);
        if (!s) {
            snprintf(errstr, errstr_size, "out of memory");
            return -1;
        }
        char **field = (char **)(base + o->off);
        free(*field);
        *field = s;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end || v < o->min || v > o->max) {
        snprintf(errstr, errstr_size, "--%s (%s): '%s' is not an integer in [%" PRId64 ", %" PRId64 "]", o->name,
                 o->env, value, o->min, o->max);
        return -1;
    }
    *(int64_t *)(base + o->off) = v;
    return 0;
}

void sk_config_init(sk_config *cfg)
{
    char err[128];
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NOPTS; i++)
        (void)set_opt(cfg, &opts[i], opts[i].def, err, sizeof err);
}

void sk_config_free(sk_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].type == OPT_STR) {
            char **field = (char **)((char *)cfg + opts[i].off);
            free(*field);
            *field = NULL;
        }
}

int sk_config_set(sk_config *cfg, const char *name, const char *value, char *errstr, size_t errstr_size)
{
    const opt *o = find(name);
    if (!o) {
        snprintf(errstr, errstr_size, "unknown option --%s (see --help)", name);
        return -1;
    }
    return set_opt(cfg, o, value, errstr, errstr_size);
}

int sk_config_load_env(sk_config *cfg, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const char *v = getenv(opts[i].env);
        if (v && sk_config_set(cfg, opts[i].name, v, errstr, errstr_size))
            return -1;
    }
    return 0;
}

int sk_config_load_args(sk_config *cfg, int argc, char **argv, int *help, char *errstr, size_t errstr_size)
{
    *help = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = 1;
            continue;
        }
        if (strncmp(a, "--", 2)) {
            snprintf(errstr, errstr_size, "unexpected argument '%s'", a);
            return -1;
        }
        char name[64];
        const char *eq = strchr(a + 2, '=');
        const char *value;
        if (eq) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a - 2), a + 2);
            value = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a + 2);
            if (i + 1 >= argc) {
                snprintf(errstr, errstr_size, "--%s needs a value", name);
                return -1;
            }
            value = argv[++i];
        }
        if (sk_config_set(cfg, name, value, errstr, errstr_size))
            return -1;
    }
    return 0;
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
    for (size_t i = 0; i < NOPTS; i++)
        fprintf(out, "  --%-22s %-28s default '%s'\n      %s\n", opts[i].name, opts[i].env, opts[i].def,
                opts[i].help);
}
