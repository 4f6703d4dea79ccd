/* gateway.h -- the vc-gateway service object: builds the libwebsockets
 * context on a libuv loop, the Kafka producer, the counts reader and the
 * timers; runs until SIGTERM/SIGINT and drains. */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <stddef.h>

#include "config.h"

typedef struct gw_service gw_service;

/* Build everything (nothing is served before gw_service_run). cfg must
 * outlive the service. NULL and errstr on failure. */
gw_service *gw_service_new(const gw_config *cfg, char *errstr, size_t errstr_size);

/* Serve until a SIGTERM/SIGINT drain completes. 0, or -1 on a loop failure. */
int gw_service_run(gw_service *s);

/* Tear down. Accepts NULL. */
void gw_service_destroy(gw_service *s);

#endif
