/* config.c -- the gateway's option table (see config.h). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { OPT_INT, OPT_STR, OPT_BOOL } opt_type;

typedef struct {
    const char *name;       /* flag without "--" */
    const char *env;        /* environment variable */
    opt_type type;
    size_t offset;
    const char *def;        /* default, as text */
    long min, max;          /* OPT_INT range */
    const char *help;
} opt;

#define F(field) offsetof(gw_config, field)

static const opt opts[] = {
    {"port", "VC_GATEWAY_PORT", OPT_INT, F(port), "8080", 1, 65535,
     "TCP port for HTTP and WebSocket (/ws)"},
    {"reuse-port", "VC_GATEWAY_REUSE_PORT", OPT_BOOL, F(reuse_port), "0", 0, 1,
     "share the port with other gateway processes (SO_REUSEPORT; the kernel spreads connections)"},
    {"gateway-id", "VC_GATEWAY_ID", OPT_STR, F(gateway_id), "gw-0", 0, 0,
     "this gateway's id in events (at most 64 bytes)"},
    {"kafka-brokers", "VC_KAFKA_BROKERS", OPT_STR, F(kafka_brokers), "127.0.0.1:9092", 0, 0,
     "Kafka bootstrap servers"},
    {"events-topic", "VC_EVENTS_TOPIC", OPT_STR, F(events_topic), "vc.events", 0, 0,
     "topic of the viewer events"},
    {"redis-nodes", "VC_REDIS_NODES", OPT_STR, F(redis_nodes), "127.0.0.1:7000", 0, 0,
     "Redis Cluster seed nodes host:port,..."},
    {"mysql-host", "VC_MYSQL_HOST", OPT_STR, F(mysql_host), "127.0.0.1", 0, 0,
     "MariaDB writer host (fallback counts when no reader is set)"},
    {"mysql-port", "VC_MYSQL_PORT", OPT_INT, F(mysql_port), "3306", 0, 65535, "MariaDB writer port"},
    {"mysql-user", "VC_MYSQL_USER", OPT_STR, F(mysql_user), "vc", 0, 0, "MariaDB user"},
    {"mysql-password", "VC_MYSQL_PASSWORD", OPT_STR, F(mysql_password), "", 0, 0, "MariaDB password"},
    {"mysql-db", "VC_MYSQL_DB", OPT_STR, F(mysql_db), "vc", 0, 0, "MariaDB database"},
    {"mysql-reader-host", "VC_MYSQL_READER_HOST", OPT_STR, F(mysql_reader_host), "", 0, 0,
     "MariaDB reader host (preferred for fallback counts)"},
    {"mysql-reader-port", "VC_MYSQL_READER_PORT", OPT_INT, F(mysql_reader_port), "0", 0, 65535,
     "MariaDB reader port"},
    {"token-secret", "VC_TOKEN_SECRET", OPT_STR, F(token_secret), "", 0, 0,
     "HS256 secret of viewer tokens"},
    {"token-secret-file", "VC_TOKEN_SECRET_FILE", OPT_STR, F(token_secret_file), "", 0, 0,
     "file holding the HS256 secret (trailing newline ignored)"},
    {"allow-anonymous", "VC_ALLOW_ANONYMOUS", OPT_BOOL, F(allow_anonymous), "0", 0, 1,
     "accept viewers without a token (one viewer per connection)"},
    {"allowed-origins", "VC_ALLOWED_ORIGINS", OPT_STR, F(allowed_origins), "", 0, 0,
     "comma-separated Origin allow-list; empty allows any"},
    {"ping-seconds", "VC_PING_SECONDS", OPT_INT, F(ping_seconds), "30", 1, 3600,
     "WebSocket ping after this many idle seconds"},
    {"idle-timeout-seconds", "VC_IDLE_TIMEOUT_SECONDS", OPT_INT, F(idle_timeout_seconds), "60", 2, 7200,
     "close a viewer silent this long (leave reason HEARTBEAT_TIMEOUT)"},
    {"handshake-timeout-seconds", "VC_HANDSHAKE_TIMEOUT_SECONDS", OPT_INT, F(handshake_timeout_seconds),
     "10", 1, 300, "slow or half-open handshakes are dropped after this"},
    {"tick-ms", "VC_TICK_MS", OPT_INT, F(tick_ms), "1000", 50, 60000,
     "how often counts are read from Redis and pushed"},
    {"heartbeat-seconds", "VC_HEARTBEAT_SECONDS", OPT_INT, F(heartbeat_seconds), "10", 1, 3600,
     "gateway heartbeat to every partition"},
    {"sync-seconds", "VC_SYNC_SECONDS", OPT_INT, F(sync_seconds), "60", 1, 86400,
     "sync snapshot of every stream held"},
    {"max-conns-per-ip", "VC_MAX_CONNS_PER_IP", OPT_INT, F(max_conns_per_ip), "256", 1, 1000000,
     "open connections allowed from one IP address"},
    {"handshakes-per-ip-per-sec", "VC_HANDSHAKES_PER_IP_PER_SEC", OPT_INT, F(handshakes_per_ip_per_sec),
     "100", 1, 1000000, "handshake rate allowed from one IP (token bucket, burst 2x)"},
    {"max-connections", "VC_MAX_CONNECTIONS", OPT_INT, F(max_connections), "19500", 1, 10000000,
     "viewers this process holds at most"},
    {"kafka-queue-max", "VC_KAFKA_QUEUE_MAX", OPT_INT, F(kafka_queue_max), "200000", 100, 10000000,
     "events librdkafka may hold while Kafka is unreachable"},
    {"redis-timeout-ms", "VC_REDIS_TIMEOUT_MS", OPT_INT, F(redis_timeout_ms), "500", 10, 60000,
     "Redis connect and command timeout"},
    {"shutdown-seconds", "VC_SHUTDOWN_SECONDS", OPT_INT, F(shutdown_seconds), "8", 1, 60,
     "bound of the SIGTERM drain (leaves, closes, producer flush)"},
    {"log-level", "VC_GATEWAY_LOG_LEVEL", OPT_INT, F(log_level), "3", 0, 65535,
     "libwebsockets log bitmask (1 err, 2 warn, 4 notice)"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const opt *opt_find(const char *name)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

static int parse_bool(const char *v, int *out)
{
    if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
        *out = 1;
    else if (!strcmp(v, "") || !strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
             !strcasecmp(v, "off"))
        *out = 0;
    else
        return -1;
    return 0;
}

static int opt_apply(gw_config *cfg, const opt *o, const char *value, char *errstr, size_t errstr_size)
{
    char *p = (char *)cfg + o->offset;

    switch (o->type) {
    case OPT_INT: {
        char *end;
        long v;

        errno = 0;
        v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < o->min || v > o->max) {
            snprintf(errstr, errstr_size, "--%s: '%s' is not an integer in [%ld, %ld]", o->name, value,
                     o->min, o->max);
            return -1;
        }
        *(int *)p = (int)v;
        return 0;
    }
    case OPT_BOOL:
        if (parse_bool(value, (int *)p)) {
            snprintf(errstr, errstr_size, "--%s: '%s' is not a boolean", o->name, value);
            return -1;
        }
        return 0;
    case OPT_STR: {
        char *s = strdup(value);

        if (s == NULL) {
            snprintf(errstr, errstr_size, "out of memory");
            return -1;
        }
        free(*(char **)p);
        *(char **)p = s;
        return 0;
    }
    }
    return -1;
}

void gw_config_init(gw_config *cfg)
{
    char err[256]; /* defaults never fail; sized so gcc -O3 sees no truncation (-Werror) */

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NOPTS; i++)
        (void)opt_apply(cfg, &opts[i], opts[i].def, err, sizeof(err));
}

void gw_config_free(gw_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].type == OPT_STR) {
            char **s = (char **)((char *)cfg + opts[i].offset);

            free(*s);
            *s = NULL;
        }
}

int gw_config_set(gw_config *cfg, const char *name, const char *value, char *errstr, size_t errstr_size)
{
    const opt *o = opt_find(name);

    if (o == NULL) {
        snprintf(errstr, errstr_size, "unknown option --%s (see --help)", name);
        return -1;
    }
    return opt_apply(cfg, o, value, errstr, errstr_size);
}

int gw_config_load_env(gw_config *cfg, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const char *v = getenv(opts[i].env);

        if (v != NULL && opt_apply(cfg, &opts[i], v, errstr, errstr_size))
            return -1;
    }
    return 0;
}

int gw_config_load_args(gw_config *cfg, int argc, char **argv, int first, int *help, char *errstr,
                        size_t errstr_size)
{
    *help = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i], *eq, *value;
        char name[64];
        const opt *o;
        size_t n;

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(errstr, errstr_size, "unexpected argument '%s' (see --help)", a);
            return -1;
        }
        a += 2;
        eq = strchr(a, '=');
        n = eq ? (size_t)(eq - a) : strlen(a);
        if (n >= sizeof(name)) {
            snprintf(errstr, errstr_size, "unknown option --%.20s...", a);
            return -1;
        }
        memcpy(name, a, n);
        name[n] = '\0';
        o = opt_find(name);
        if (o == NULL) {
            snprintf(errstr, errstr_size, "unknown option --%s (see --help)", name);
            return -1;
        }
        if (eq)
            value = eq + 1;
        else if (o->type == OPT_BOOL)
            value = "1";
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            snprintf(errstr, errstr_size, "--%s needs a value", name);
            return -1;
        }
        if (opt_apply(cfg, o, value, errstr, errstr_size))
            return -1;
    }
    return 0;
}

int gw_config_finish(gw_config *cfg, char *errstr, size_t errstr_size)
{
    if (strlen(cfg->gateway_id) == 0 || strlen(cfg->gateway_id) > 64) {
        snprintf(errstr, errstr_size, "--gateway-id must be 1..64 bytes");
        return -1;
    }
    if (cfg->token_secret_file[0]) {
        FILE *f = fopen(cfg->token_secret_file, "r");
        char buf[4096];
        size_t n;

        if (f == NULL) {
            snprintf(errstr, errstr_size, "--token-secret-file %s: %s", cfg->token_secret_file, strerror(errno));
            return -1;
        }
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            n--;
        buf[n] = '\0';
        if (gw_config_set(cfg, "token-secret", buf, errstr, errstr_size))
            return -1;
    }
    if (!cfg->token_secret[0] && !cfg->allow_anonymous) {
        snprintf(errstr, errstr_size,
                 "no token secret (VC_TOKEN_SECRET or --token-secret-file) and anonymous viewers not allowed");
        return -1;
    }
    if (cfg->idle_timeout_seconds <= cfg->ping_seconds) {
        snprintf(errstr, errstr_size, "--idle-timeout-seconds must be greater than --ping-seconds");
        return -1;
    }
    return 0;
}

void gw_config_usage(FILE *out)
{
    fprintf(out, "usage: vc-gateway [--option value]...\n"
                 "       vc-gateway token --user ID [--ttl SECONDS] [--token-secret S | --token-secret-file F]\n\n"
                 "Every option can also be set by its environment variable; flags win.\n\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const opt *o = &opts[i];

        fprintf(out, "  --%-28s %-30s %s (default: %s)\n", o->name, o->env, o->help,
                o->type == OPT_STR && !o->def[0] ? "none" : o->def);
    }
}
