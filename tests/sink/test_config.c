/* vc-sink's configuration: defaults, environment, flags, errors, --help. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

Test(config, defaults)
{
    sk_config c;
    sk_config_init(&c);
    cr_expect_str_eq(c.group, "vc-sink");
    cr_expect_str_eq(c.events_topic, "vc.events");
    cr_expect_str_eq(c.dlq_topic, "vc.events.dlq");
    cr_expect_eq(c.rollup_seconds, 300);
    cr_expect_eq(c.gateway_timeout_ms, 90000);
    cr_expect_eq(c.http_port, 0);
    char err[256];
    cr_expect_neq(sk_config_check(&c, err, sizeof err), 0, "brokers are required");
    cr_expect_not_null(strstr(err, "VC_KAFKA_BROKERS"));
    sk_config_free(&c);
}

Test(config, environment_then_flags_through_one_setter)
{
    sk_config c;
    sk_config_init(&c);
    setenv("VC_ROLLUP_SECONDS", "10", 1);
    setenv("VC_KAFKA_BROKERS", "127.0.0.1:9092", 1);
    setenv("VC_SINK_HTTP_PORT", "26040", 1);
    char err[256];
    cr_assert_eq(sk_config_load_env(&c, err, sizeof err), 0, "%s", err);
    cr_expect_eq(c.rollup_seconds, 10);
    cr_expect_eq(c.http_port, 26040);
    cr_expect_str_eq(c.kafka_brokers, "127.0.0.1:9092");
    char *argv[] = {"vc-sink", "--rollup-seconds", "60", "--group=g2", NULL};
    int help;
    cr_assert_eq(sk_config_load_args(&c, 4, argv, &help, err, sizeof err), 0, "%s", err);
    cr_expect_eq(c.rollup_seconds, 60, "flags win over the environment");
    cr_expect_str_eq(c.group, "g2");
    cr_expect_eq(help, 0);
    cr_expect_eq(sk_config_check(&c, err, sizeof err), 0, "%s", err);
    unsetenv("VC_ROLLUP_SECONDS");
    unsetenv("VC_KAFKA_BROKERS");
    unsetenv("VC_SINK_HTTP_PORT");
    sk_config_free(&c);
}

Test(config, bad_values_and_names_are_refused)
{
    sk_config c;
    sk_config_init(&c);
    char err[256];
    cr_expect_neq(sk_config_set(&c, "rollup-seconds", "0", err, sizeof err), 0);
    cr_expect_not_null(strstr(err, "VC_ROLLUP_SECONDS"), "%s", err);
    cr_expect_neq(sk_config_set(&c, "rollup-seconds", "5x", err, sizeof err), 0);
    cr_expect_neq(sk_config_set(&c, "http-port", "70000", err, sizeof err), 0);
    cr_expect_neq(sk_config_set(&c, "no-such-option", "1", err, sizeof err), 0);
    char *argv[] = {"vc-sink", "--group", NULL};
    int help;
    cr_expect_neq(sk_config_load_args(&c, 2, argv, &help, err, sizeof err), 0, "a flag without its value");
    cr_expect_eq(c.rollup_seconds, 300, "nothing changed");
    sk_config_free(&c);
}

Test(config, help_lists_every_option_with_its_variable)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    sk_config_usage(f);
    fclose(f);
    const char *want[] = {"--rollup-seconds", "VC_ROLLUP_SECONDS", "--mysql-host", "VC_MYSQL_HOST",
                          "VC_SINK_HTTP_PORT", "VC_DLQ_TOPIC", "VC_GATEWAY_TIMEOUT_MS", "VC_SINK_GROUP"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect_not_null(strstr(buf, want[i]), "--help lacks %s", want[i]);
    free(buf);
}
