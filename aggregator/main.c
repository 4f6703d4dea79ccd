/* main.c -- vc-aggregator: parse the configuration, build the service, run
 * it (or a rebuild), tear it down. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "metrics.h"
#include "service.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    agg_config cfg;
    agg_metrics metrics;
    agg_http *http = NULL;
    agg_service *svc = NULL;
    char err[512];
    const char *cmd = "run";
    struct sigaction sa;
    int first, rc, exit_code;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            agg_config_usage(stdout, argv[0]);
            return 0;
        }
    }
    agg_config_defaults(&cfg);
    if (agg_config_from_env(&cfg, err, sizeof(err)) < 0 ||
        (first = agg_config_from_args(&cfg, argc, argv, 1, err, sizeof(err))) < 0) {
        fprintf(stderr, "vc-aggregator: %s\n", err);
        exit_code = 2;
        goto out;
    }
    if (first < argc)
        cmd = argv[first++];
    if (first < argc || (strcmp(cmd, "run") != 0 && strcmp(cmd, "rebuild") != 0)) {
        fprintf(stderr, "vc-aggregator: unexpected argument '%s' (see --help)\n",
                first < argc ? argv[first] : cmd);
        exit_code = 2;
        goto out;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    agg_metrics_init(&metrics);
    if (cfg.http_port > 0) {
        http = agg_http_start(&metrics, cfg.http_addr, (int)cfg.http_port, err, sizeof(err));
        if (http == NULL) {
            fprintf(stderr, "vc-aggregator: %s\n", err);
            exit_code = 1;
            goto out;
        }
    }
    svc = agg_service_new(&cfg, &metrics, strcmp(cmd, "rebuild") == 0, err, sizeof(err));
    if (svc == NULL) {
        fprintf(stderr, "vc-aggregator: %s\n", err);
        exit_code = 1;
        goto out;
    }
    if (strcmp(cmd, "rebuild") == 0)
        rc = agg_service_rebuild(svc, &stop, stderr, err, sizeof(err));
    else
        rc = agg_service_run(svc, &stop, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "vc-aggregator: %s\n", err);
    exit_code = rc < 0 ? 1 : 0;
out:
    agg_service_destroy(svc);
    agg_http_stop(http);
    agg_config_free(&cfg);
    return exit_code;
}
