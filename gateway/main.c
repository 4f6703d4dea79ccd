/* vc-gateway: the WebSocket edge. main only parses the configuration, builds
 * the service, runs it and tears it down; `vc-gateway token` mints a viewer
 * token for tests and the demo. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "gateway.h"
#include "parse.h"
#include "token.h"

static int mint(gw_config *cfg, int argc, char **argv)
{
    int64_t user = 0, ttl = 3600;
    char err[256];

    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--user") && i + 1 < argc) {
            if (gw_parse_id(argv[++i], &user)) {
                fprintf(stderr, "vc-gateway token: --user must be a positive integer\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--ttl") && i + 1 < argc) {
            char *end;

            ttl = strtoll(argv[++i], &end, 10);
            if (*end) {
                fprintf(stderr, "vc-gateway token: --ttl must be an integer (seconds; negative for an expired token)\n");
                return 2;
            }
        } else if ((!strcmp(argv[i], "--token-secret") || !strcmp(argv[i], "--token-secret-file")) && i + 1 < argc) {
            if (gw_config_set(cfg, argv[i] + 2, argv[i + 1], err, sizeof(err))) {
                fprintf(stderr, "vc-gateway token: %s\n", err);
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, "usage: vc-gateway token --user ID [--ttl SECONDS] [--token-secret S | --token-secret-file F]\n");
            return 2;
        }
    }
    if (user == 0) {
        fprintf(stderr, "vc-gateway token: --user is required\n");
        return 2;
    }
    if (cfg->token_secret_file[0] && gw_config_finish(cfg, err, sizeof(err)) && !cfg->token_secret[0]) {
        fprintf(stderr, "vc-gateway token: %s\n", err);
        return 2;
    }
    if (!cfg->token_secret[0]) {
        fprintf(stderr, "vc-gateway token: no secret (VC_TOKEN_SECRET, --token-secret or --token-secret-file)\n");
        return 2;
    }
    {
        char *tok = gw_token_mint(user, (int64_t)time(NULL), ttl, (const unsigned char *)cfg->token_secret,
                                  strlen(cfg->token_secret));

        if (tok == NULL) {
            fprintf(stderr, "vc-gateway token: minting failed\n");
            return 1;
        }
        printf("%s\n", tok);
        free(tok);
    }
    return 0;
}

int main(int argc, char **argv)
{
    gw_config cfg;
    gw_service *s;
    char err[512];
    int help = 0, rc;

    gw_config_init(&cfg);
    if (gw_config_load_env(&cfg, err, sizeof(err))) {
        fprintf(stderr, "vc-gateway: %s\n", err);
        gw_config_free(&cfg);
        return 2;
    }
    if (argc > 1 && !strcmp(argv[1], "token")) {
        rc = mint(&cfg, argc, argv);
        gw_config_free(&cfg);
        return rc;
    }
    if (gw_config_load_args(&cfg, argc, argv, 1, &help, err, sizeof(err))) {
        fprintf(stderr, "vc-gateway: %s\n", err);
        gw_config_free(&cfg);
        return 2;
    }
    if (help) {
        gw_config_usage(stdout);
        gw_config_free(&cfg);
        return 0;
    }
    if (gw_config_finish(&cfg, err, sizeof(err))) {
        fprintf(stderr, "vc-gateway: %s\n", err);
        gw_config_free(&cfg);
        return 2;
    }
    s = gw_service_new(&cfg, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "vc-gateway: %s\n", err);
        gw_config_free(&cfg);
        return 1;
    }
    rc = gw_service_run(s);
    gw_service_destroy(s);
    gw_config_free(&cfg);
    return rc ? 1 : 0;
}
