/* vc-sink: parse the configuration, build the sink, run it until SIGINT/SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "http.h"
#include "metrics.h"
#include "sink.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    sk_config cfg;
    char err[512];
    int help = 0;
    sk_config_init(&cfg);
    if (sk_config_load_env(&cfg, err, sizeof err) || sk_config_load_args(&cfg, argc, argv, &help, err, sizeof err)) {
        fprintf(stderr, "vc-sink: %s\n", err);
        sk_config_free(&cfg);
        return 2;
    }
    if (help) {
        sk_config_usage(stdout);
        sk_config_free(&cfg);
        return 0;
    }
    if (sk_config_check(&cfg, err, sizeof err)) {
        fprintf(stderr, "vc-sink: %s\n", err);
        sk_config_free(&cfg);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    static sk_metrics metrics;
    sk_http *http = NULL;
    int rc = 1;
    if (cfg.http_port > 0 && !(http = sk_http_start((int)cfg.http_port, &metrics, err, sizeof err))) {
        fprintf(stderr, "vc-sink: %s\n", err);
        goto out;
    }
    sk_sink *s = sk_sink_new(&cfg, &metrics, err, sizeof err);
    if (!s) {
        fprintf(stderr, "vc-sink: %s\n", err);
        goto out;
    }
    if (sk_sink_run(s, &stop, err, sizeof err) == 0)
        rc = 0;
    else
        fprintf(stderr, "vc-sink: fatal: %s\n", err);
    sk_sink_destroy(s);
out:
    sk_http_stop(http);
    sk_config_free(&cfg);
    return rc;
}
