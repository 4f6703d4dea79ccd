/* bench_redis -- pipelined throughput through vc_redis against the cluster
 * named by VC_REDIS_NODES (or --nodes):
 *   set      SET on keys spread over every slot (plain pipelines)
 *   incr     INCR on keys of one hash tag (one MULTI/EXEC group per batch,
 *            the aggregator's shape: one partition per batch)
 *   get      GET on the keys of "set", readonly batches served by replicas
 * usage: bench_redis [--nodes host:port,...] [--requests N] [--batch B] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vc_redis.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs n commands in batches of size batch; key i of kind k. */
static int run(vc_redis *r, const char *what, int readonly, long n, int batch)
{
    vc_redis_batch *b = vc_redis_batch_new(r, readonly);
    char key[64], err[512];
    double t0 = now_s();
    if (!b)
        return -1;
    for (long done = 0; done < n;) {
        vc_redis_batch_reset(b);
        for (int i = 0; i < batch && done < n; i++, done++) {
            if (strcmp(what, "incr") == 0) {
                snprintf(key, sizeof(key), "bench:{p7}:c%ld", done % 64);
                vc_redis_batch_addf(b, key, "INCR %s", key);
            } else {
                snprintf(key, sizeof(key), "bench:k%ld", done % 100000);
                if (strcmp(what, "set") == 0)
                    vc_redis_batch_addf(b, key, "SET %s xxxxxxxxxxxxxxxx", key);
                else
                    vc_redis_batch_addf(b, key, "GET %s", key);
            }
        }
        if (vc_redis_batch_exec(b, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s: %s\n", what, err);
            vc_redis_batch_destroy(b);
            return -1;
        }
    }
    double s = now_s() - t0;
    printf("vc_redis %-5s batch %6d: %10.0f requests per second\n", what, batch, (double)n / s);
    vc_redis_batch_destroy(b);
    return 0;
}

int main(int argc, char **argv)
{
    const char *nodes = getenv("VC_REDIS_NODES");
    long n = 200000;
    int batch = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--nodes") == 0)
            nodes = argv[i + 1];
        else if (strcmp(argv[i], "--requests") == 0)
            n = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--batch") == 0)
            batch = (int)strtol(argv[i + 1], NULL, 10);
    }
    if (!nodes || n <= 0 || batch <= 0 || batch > VC_REDIS_BATCH_MAX) {
        fprintf(stderr, "usage: bench_redis [--nodes host:port,...] [--requests N] [--batch B]\n"
                        "(VC_REDIS_NODES names the nodes by default)\n");
        return 2;
    }
    char err[512];
    vc_redis_conf conf = {nodes, 1, 5000};
    vc_redis *r = vc_redis_new(&conf, err, sizeof(err));
    if (!r) {
        fprintf(stderr, "bench_redis: %s\n", err);
        return 1;
    }
    int rc = run(r, "set", 0, n, batch) || run(r, "incr", 0, n, batch) || run(r, "get", 1, n, batch);
    vc_redis_batch *b = vc_redis_batch_new(r, 0);
    char key[64];
    for (long i = 0; b && i < 100000 + 64; i++) { /* clean up */
        if (i < 100000)
            snprintf(key, sizeof(key), "bench:k%ld", i);
        else
            snprintf(key, sizeof(key), "bench:{p7}:c%ld", i - 100000);
        vc_redis_batch_addf(b, key, "DEL %s", key);
        if (vc_redis_batch_count(b) == batch || i == 100000 + 63) {
            if (vc_redis_batch_exec(b, err, sizeof(err)) < 0)
                fprintf(stderr, "clean up: %s\n", err);
            vc_redis_batch_reset(b);
        }
    }
    vc_redis_batch_destroy(b);
    vc_redis_destroy(r);
    return rc ? 1 : 0;
}
