/* config.c -- the gateway's option table (see config.h). */
#include "config.h"

#include "vc_conf.h"
#include "web.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define F(field) offsetof(gw_config, field)

static const vc_conf_opt opts[] = {
    {"port", "VC_GATEWAY_PORT", VC_CONF_INT, F(port), "8080", 1, 65535,
     "TCP port for HTTP and WebSocket (/ws)"},
    {"reuse-port", "VC_GATEWAY_REUSE_PORT", VC_CONF_BOOL, F(reuse_port), "0", 0, 1,
     "share the port with other gateway processes (SO_REUSEPORT; the kernel spreads connections)"},
    {"gateway-id", "VC_GATEWAY_ID", VC_CONF_STR, F(gateway_id), "gw-0", 0, 0,
     "this gateway's id in events (at most 64 bytes)"},
    {"kafka-brokers", "VC_KAFKA_BROKERS", VC_CONF_STR, F(kafka_brokers), "127.0.0.1:9092", 0, 0,
     "Kafka bootstrap servers"},
    {"events-topic", "VC_EVENTS_TOPIC", VC_CONF_STR, F(events_topic), "vc.events", 0, 0,
     "topic of the viewer events"},
    {"redis-nodes", "VC_REDIS_NODES", VC_CONF_STR, F(redis_nodes), "127.0.0.1:7000", 0, 0,
     "Redis Cluster seed nodes host:port,..."},
    {"mysql-host", "VC_MYSQL_HOST", VC_CONF_STR, F(mysql_host), "127.0.0.1", 0, 0,
     "MariaDB writer host (fallback counts when no reader is set)"},
    {"mysql-port", "VC_MYSQL_PORT", VC_CONF_INT, F(mysql_port), "3306", 0, 65535, "MariaDB writer port"},
    {"mysql-user", "VC_MYSQL_USER", VC_CONF_STR, F(mysql_user), "vc", 0, 0, "MariaDB user"},
    {"mysql-password", "VC_MYSQL_PASSWORD", VC_CONF_STR, F(mysql_password), "", 0, 0, "MariaDB password"},
    {"mysql-db", "VC_MYSQL_DB", VC_CONF_STR, F(mysql_db), "vc", 0, 0, "MariaDB database"},
    {"mysql-reader-host", "VC_MYSQL_READER_HOST", VC_CONF_STR, F(mysql_reader_host), "", 0, 0,
     "MariaDB reader host (preferred for fallback counts)"},
    {"mysql-reader-port", "VC_MYSQL_READER_PORT", VC_CONF_INT, F(mysql_reader_port), "0", 0, 65535,
     "MariaDB reader port"},
    {"token-secret", "VC_TOKEN_SECRET", VC_CONF_STR, F(token_secret), "", 0, 0,
     "HS256 secret of viewer tokens"},
    {"token-secret-file", "VC_TOKEN_SECRET_FILE", VC_CONF_STR, F(token_secret_file), "", 0, 0,
     "file holding the HS256 secret (trailing newline ignored)"},
    {"allow-anonymous", "VC_ALLOW_ANONYMOUS", VC_CONF_BOOL, F(allow_anonymous), "0", 0, 1,
     "accept viewers without a token (one viewer per connection)"},
    {"allowed-origins", "VC_ALLOWED_ORIGINS", VC_CONF_STR, F(allowed_origins), "", 0, 0,
     "comma-separated Origin allow-list; empty allows any"},
    {"ping-seconds", "VC_PING_SECONDS", VC_CONF_INT, F(ping_seconds), "30", 1, 3600,
     "WebSocket ping after this many idle seconds"},
    {"idle-timeout-seconds", "VC_IDLE_TIMEOUT_SECONDS", VC_CONF_INT, F(idle_timeout_seconds), "60", 2, 7200,
     "close a viewer silent this long (leave reason HEARTBEAT_TIMEOUT)"},
    {"handshake-timeout-seconds", "VC_HANDSHAKE_TIMEOUT_SECONDS", VC_CONF_INT, F(handshake_timeout_seconds),
     "10", 1, 300, "slow or half-open handshakes are dropped after this"},
    {"tick-ms", "VC_TICK_MS", VC_CONF_INT, F(tick_ms), "1000", 50, 60000,
     "how often counts are read from Redis and pushed"},
    {"heartbeat-seconds", "VC_HEARTBEAT_SECONDS", VC_CONF_INT, F(heartbeat_seconds), "10", 1, 3600,
     "gateway heartbeat to every partition"},
    {"sync-seconds", "VC_SYNC_SECONDS", VC_CONF_INT, F(sync_seconds), "60", 1, 86400,
     "sync snapshot of every stream held"},
    {"max-conns-per-ip", "VC_MAX_CONNS_PER_IP", VC_CONF_INT, F(max_conns_per_ip), "256", 1, 1000000,
     "open connections allowed from one IP address"},
    {"handshakes-per-ip-per-sec", "VC_HANDSHAKES_PER_IP_PER_SEC", VC_CONF_INT, F(handshakes_per_ip_per_sec),
     "100", 1, 1000000, "handshake rate allowed from one IP (token bucket, burst 2x)"},
    {"web-root", "VC_GATEWAY_WEB_ROOT", VC_CONF_STR, F(web_root), "", 0, 0,
     "folder of the viewer web page served at / (e.g. gateway/web); empty: none"},
    {"catalog-seconds", "VC_GATEWAY_CATALOG_SECONDS", VC_CONF_INT, F(catalog_seconds), "10", 0, 86400,
     "how often the live streams' titles and categories are read from MariaDB for the web page "
     "(GET /api/catalog); 0: no catalog"},
    {"history-cache-seconds", "VC_GATEWAY_HISTORY_CACHE_SECONDS", VC_CONF_INT, F(history_cache_seconds), "30", 1,
     3600, "how long a stream's history answer (GET /api/streams/<id>/history, from the MariaDB reader) is "
     "served from memory"},
    {"peer-ws", "VC_GATEWAY_PEER_WS", VC_CONF_STR, F(peer_ws), "", 0, 0,
     "comma-separated ws:// or wss:// URLs of every gateway's /ws, handed to the web page (GET /api/config) "
     "so that it reconnects to another gateway; empty: the page's own origin only"},
    {"max-connections", "VC_MAX_CONNECTIONS", VC_CONF_INT, F(max_connections), "19500", 1, 10000000,
     "viewers this process holds at most"},
    {"kafka-queue-max", "VC_KAFKA_QUEUE_MAX", VC_CONF_INT, F(kafka_queue_max), "200000", 100, 10000000,
     "events librdkafka may hold while Kafka is unreachable"},
    {"redis-timeout-ms", "VC_REDIS_TIMEOUT_MS", VC_CONF_INT, F(redis_timeout_ms), "500", 10, 60000,
     "Redis connect and command timeout"},
    {"shutdown-seconds", "VC_SHUTDOWN_SECONDS", VC_CONF_INT, F(shutdown_seconds), "8", 1, 60,
     "bound of the SIGTERM drain (leaves, closes, producer flush)"},
    {"log-level", "VC_GATEWAY_LOG_LEVEL", VC_CONF_INT, F(log_level), "3", 0, 65535,
     "libwebsockets log bitmask (1 err, 2 warn, 4 notice)"},
};

static const vc_conf_table table = {opts, sizeof(opts) / sizeof(opts[0])};

void gw_config_init(gw_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    vc_conf_init(&table, cfg);
}

void gw_config_free(gw_config *cfg)
{
    vc_conf_free(&table, cfg);
}

int gw_config_set(gw_config *cfg, const char *name, const char *value, char *errstr, size_t errstr_size)
{
    return vc_conf_set(&table, cfg, name, value, errstr, errstr_size);
}

int gw_config_load_env(gw_config *cfg, char *errstr, size_t errstr_size)
{
    return vc_conf_load_env(&table, cfg, errstr, errstr_size);
}

int gw_config_load_args(gw_config *cfg, int argc, char **argv, int first, int *help, char *errstr,
                        size_t errstr_size)
{
    return vc_conf_load_args(&table, cfg, argc, argv, first, 0, help, errstr, errstr_size);
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
    if (!gw_web_peers_ok(cfg->peer_ws)) {
        snprintf(errstr, errstr_size, "--peer-ws must be a comma-separated list of ws:// or wss:// URLs");
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
    vc_conf_usage(&table, out);
}
