/* config.h -- vc-aggregator's configuration: one struct, defaults and help in
 * one table (config.c, on schemas/vc_conf). Flags (--name=value or --name value) and VC_*
 * environment variables go through the same setter. */
#ifndef AGG_CONFIG_H
#define AGG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define AGG_STR_MAX 256 /* bound of names derived from the config (e.g. a rebuild's group) */

typedef struct {
    char *id;
    char *brokers;
    char *events_topic;
    char *dlq_topic;
    char *checkpoint_topic;
    char *group;
    char *redis_nodes;
    char *mysql_host;
    int64_t mysql_port;
    char *mysql_user;
    char *mysql_password;
    char *mysql_db;
    char *http_addr;             /* listen address of /metrics and /healthz */
    int64_t http_port;           /* 0: no HTTP */
    int64_t gateway_timeout_ms;
    int64_t batch_max;           /* messages per batch */
    int64_t rebuild_batch_max;   /* messages per batch of the rebuild command */
    int64_t batch_wait_ms;       /* longest wait to fill a batch */
    int64_t redis_timeout_ms;
    int64_t checkpoint_interval_s; /* 0: no checkpoints */
    int64_t syncing_hold_ms;     /* event time a repaired stream shows "syncing" */
    int64_t tombstone_ttl_ms;    /* event time after which an unmatched leave is forgotten */
    int64_t sync_max_viewers;
    int64_t sync_max_age_ms;
    int64_t session_timeout_ms;  /* Kafka group session: how soon a dead instance's partitions move */
    int64_t category_refresh_ms; /* 0: no category lookups */
} agg_config;

/* Fill cfg with the defaults (strings owned by cfg: agg_config_free). */
void agg_config_defaults(agg_config *cfg);
void agg_config_free(agg_config *cfg); /* accepts NULL */
/* Set one option by its flag name (without "--"). Returns 0, or -1 with
 * errstr for an unknown name or a bad value. */
int agg_config_set(agg_config *cfg, const char *name, const char *value, char *errstr,
                   size_t errstr_size);
/* Apply every VC_* variable of the table found in the environment. */
int agg_config_from_env(agg_config *cfg, char *errstr, size_t errstr_size);
/* Apply argv[first..argc-1] as flags; stops at the first non-flag and
 * returns its index (argc if none), or -1 with errstr. */
int agg_config_from_args(agg_config *cfg, int argc, char **argv, int first, char *errstr,
                         size_t errstr_size);
/* --help text from the table. */
void agg_config_usage(FILE *out, const char *prog);

#endif
