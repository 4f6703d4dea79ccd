/* config.h -- vc-sink's configuration: one struct, defaults in one table
 * (config.c); command-line flags and VC_* environment variables go through
 * the same setter, and --help is generated from the same table. */
#ifndef SK_CONFIG_H
#define SK_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    char *id;
    char *kafka_brokers;
    char *events_topic;
    char *dlq_topic;
    char *group;
    char *mysql_host;
    int64_t mysql_port;
    char *mysql_user;
    char *mysql_password;
    char *mysql_db;
    int64_t http_port;            /* 0: no HTTP endpoint */
    int64_t rollup_seconds;
    int64_t gateway_timeout_ms;
    int64_t sync_max_viewers;
    int64_t sync_max_age_ms;
    int64_t flush_max_rows;       /* pending rows of a partition that force a flush */
    int64_t flush_interval_ms;    /* wall-clock bound on unflushed progress (replay length) */
    int64_t poll_batch;           /* messages per loop turn */
    int64_t db_timeout_s;
    int64_t retry_max_ms;         /* backoff cap */
    int64_t session_timeout_ms;   /* Kafka group session: how soon a dead sink's partitions move */
    int64_t max_poll_interval_ms; /* Kafka rebalance timeout */
    int64_t maintenance;          /* call the partition maintenance at start-up */
} sk_config;

void sk_config_init(sk_config *cfg);
void sk_config_free(sk_config *cfg); /* accepts NULL */

/* Set option name (the flag without dashes, e.g. "rollup-seconds") from text.
 * 0, or -1 with errstr for an unknown name or a bad value. */
int sk_config_set(sk_config *cfg, const char *name, const char *value, char *errstr, size_t errstr_size);
/* Apply every VC_* variable of the table that the environment defines. */
int sk_config_load_env(sk_config *cfg, char *errstr, size_t errstr_size);
/* Apply flags argv[1..argc): "--name value" or "--name=value"; *help on --help/-h. */
int sk_config_load_args(sk_config *cfg, int argc, char **argv, int *help, char *errstr, size_t errstr_size);
/* Check that what is required is there. */
int sk_config_check(const sk_config *cfg, char *errstr, size_t errstr_size);
void sk_config_usage(FILE *out);

#endif
