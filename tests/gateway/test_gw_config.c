/* Configuration: defaults, environment, flags, validation. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static void clear_env(void)
{
    unsetenv("VC_GATEWAY_PORT");
    unsetenv("VC_TOKEN_SECRET");
    unsetenv("VC_ALLOW_ANONYMOUS");
    unsetenv("VC_PING_SECONDS");
}

Test(config, defaults)
{
    gw_config cfg;

    gw_config_init(&cfg);
    cr_assert_eq(cfg.ping_seconds, 30);
    cr_assert_eq(cfg.idle_timeout_seconds, 60);
    cr_assert_eq(cfg.tick_ms, 1000);
    cr_assert_eq(cfg.heartbeat_seconds, 10);
    cr_assert_eq(cfg.sync_seconds, 60);
    cr_assert_str_eq(cfg.events_topic, "vc.events");
    cr_assert_eq(cfg.allow_anonymous, 0);
    gw_config_free(&cfg);
}

Test(config, env_then_flags_win, .init = clear_env)
{
    gw_config cfg;
    char err[256];
    int help;
    char *argv[] = {"vc-gateway", "--port", "9001", "--allow-anonymous", "--ping-seconds=5", NULL};

    setenv("VC_GATEWAY_PORT", "9000", 1);
    setenv("VC_TOKEN_SECRET", "s3cret", 1);
    gw_config_init(&cfg);
    cr_assert_eq(gw_config_load_env(&cfg, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.port, 9000);
    cr_assert_str_eq(cfg.token_secret, "s3cret");
    cr_assert_eq(gw_config_load_args(&cfg, 5, argv, 1, &help, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.port, 9001);
    cr_assert_eq(cfg.allow_anonymous, 1);
    cr_assert_eq(cfg.ping_seconds, 5);
    cr_assert_eq(help, 0);
    gw_config_free(&cfg);
}

Test(config, bad_values_are_refused, .init = clear_env)
{
    gw_config cfg;
    char err[256];
    int help;
    char *unknown[] = {"x", "--nope", "1"};
    char *range[] = {"x", "--port", "70000"};
    char *notint[] = {"x", "--tick-ms", "fast"};
    char *missing[] = {"x", "--port"};

    gw_config_init(&cfg);
    cr_assert_eq(gw_config_load_args(&cfg, 3, unknown, 1, &help, err, sizeof(err)), -1);
    cr_assert(strstr(err, "nope"));
    cr_assert_eq(gw_config_load_args(&cfg, 3, range, 1, &help, err, sizeof(err)), -1);
    cr_assert_eq(gw_config_load_args(&cfg, 3, notint, 1, &help, err, sizeof(err)), -1);
    cr_assert_eq(gw_config_load_args(&cfg, 2, missing, 1, &help, err, sizeof(err)), -1);
    setenv("VC_ALLOW_ANONYMOUS", "maybe", 1);
    cr_assert_eq(gw_config_load_env(&cfg, err, sizeof(err)), -1);
    gw_config_free(&cfg);
}

Test(config, finish_needs_a_secret_or_anonymous, .init = clear_env)
{
    gw_config cfg;
    char err[256];

    gw_config_init(&cfg);
    cr_assert_eq(gw_config_finish(&cfg, err, sizeof(err)), -1);
    gw_config_set(&cfg, "allow-anonymous", "true", err, sizeof(err));
    cr_assert_eq(gw_config_finish(&cfg, err, sizeof(err)), 0, "%s", err);
    gw_config_set(&cfg, "ping-seconds", "60", err, sizeof(err));
    cr_assert_eq(gw_config_finish(&cfg, err, sizeof(err)), -1, "idle timeout must exceed the ping interval");
    gw_config_free(&cfg);
}

Test(config, secret_file_is_read_without_newline, .init = clear_env)
{
    gw_config cfg;
    char err[256], path[] = "/tmp/vc-gw-secret-XXXXXX";
    int fd = mkstemp(path);

    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "filesecret\n", 11), 11);
    close(fd);
    gw_config_init(&cfg);
    gw_config_set(&cfg, "token-secret-file", path, err, sizeof(err));
    cr_assert_eq(gw_config_finish(&cfg, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(cfg.token_secret, "filesecret");
    unlink(path);
    gw_config_free(&cfg);
}

Test(config, usage_lists_every_variable)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    gw_config_usage(f);
    fclose(f);
    const char *names[] = {"VC_GATEWAY_PORT", "VC_GATEWAY_ID", "VC_KAFKA_BROKERS", "VC_EVENTS_TOPIC", "VC_REDIS_NODES",
                           "VC_MYSQL_HOST", "VC_MYSQL_READER_HOST", "VC_TOKEN_SECRET", "VC_TOKEN_SECRET_FILE",
                           "VC_ALLOW_ANONYMOUS", "VC_ALLOWED_ORIGINS", "VC_PING_SECONDS", "VC_IDLE_TIMEOUT_SECONDS",
                           "VC_TICK_MS", "VC_MAX_CONNS_PER_IP", "VC_HANDSHAKES_PER_IP_PER_SEC"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        cr_expect(strstr(text, names[i]) != NULL, "%s missing from --help", names[i]);
    free(text);
}
