/* config.h -- the gateway's configuration: one struct, defaults in one table
 * (config.c); command-line flags and VC_* environment variables go through
 * the same setter, and --help is generated from the same table. */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    int port;
    int reuse_port;               /* SO_REUSEPORT: processes share the port */
    char *gateway_id;
    char *kafka_brokers;
    char *events_topic;
    char *redis_nodes;
    char *mysql_host;
    int mysql_port;
    char *mysql_user;
    char *mysql_password;
    char *mysql_db;
    char *mysql_reader_host;
    int mysql_reader_port;
    char *token_secret;
    char *token_secret_file;
    int allow_anonymous;
    char *allowed_origins;        /* comma-separated; empty: any Origin */
    int ping_seconds;
    int idle_timeout_seconds;
    int handshake_timeout_seconds;
    int tick_ms;
    int heartbeat_seconds;
    int sync_seconds;
    int max_conns_per_ip;
    int handshakes_per_ip_per_sec;
    int max_connections;
    int kafka_queue_max;
    int redis_timeout_ms;
    int shutdown_seconds;
    int log_level;                /* lws log bitmask */
    char *web_root;               /* folder of the viewer web page; empty: none */
    int catalog_seconds;          /* how often the page's catalog is read from MariaDB; 0: none */
    int history_cache_seconds;    /* a stream's history answer is served from memory this long */
    char *peer_ws;                /* comma-separated ws(s):// URLs of every gateway, for the page (/api/config) */
} gw_config;

/* Fill cfg with the defaults of the table. */
void gw_config_init(gw_config *cfg);
/* Free the strings cfg owns; the struct itself is the caller's. Accepts NULL. */
void gw_config_free(gw_config *cfg);

/* Set the option called name (the flag without its leading dashes, e.g.
 * "ping-seconds") from its text value. Returns 0, or -1 with errstr for an
 * unknown name or a value out of range. */
int gw_config_set(gw_config *cfg, const char *name, const char *value, char *errstr, size_t errstr_size);

/* Apply every VC_* variable of the table that env (NULL: the process
 * environment via getenv) defines. 0 or -1 (errstr). */
int gw_config_load_env(gw_config *cfg, char *errstr, size_t errstr_size);

/* Apply flags argv[first..argc): "--name value", "--name=value", or "--name"
 * alone for a boolean. Sets *help when --help/-h is given. 0 or -1 (errstr). */
int gw_config_load_args(gw_config *cfg, int argc, char **argv, int first, int *help,
                        char *errstr, size_t errstr_size);

/* After loading: read the secret file if given, check that the combination is
 * usable (a secret, or anonymous viewers allowed). 0 or -1 (errstr). */
int gw_config_finish(gw_config *cfg, char *errstr, size_t errstr_size);

/* Print the option table: flag, environment variable, default, meaning. */
void gw_config_usage(FILE *out);

#endif
