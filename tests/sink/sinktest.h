/* sinktest.h -- helpers of the vc-sink integration tests: a scenario generator
 * that produces events with the schemas codec, test databases on the stack's
 * MariaDB, the vc-sink process, row-by-row database comparison. Every wait is
 * bounded. Coordinates come from the stack's environment (VC_*); a missing
 * variable fails the test. */
#ifndef SINKTEST_H
#define SINKTEST_H

#include <mysql.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ST_MAX_PARTS 16

typedef struct {
    int partitions;           /* of the topic; stream k goes to partition k % partitions */
    int streams;
    int users;
    int64_t base_ms;          /* event time of the first event */
    int64_t step_ms;          /* event time between two viewer events */
    int events;               /* viewer events (joins + leaves) */
    int64_t stream_base;      /* stream ids are stream_base + 1 .. + streams */
    uint64_t seed;
    int slices;               /* produce in this many slices ... */
    int slice_sleep_ms;       /* ... with this pause between them (events keep flowing) */
    int garbage;              /* undecodable messages, spread over the run */
    int from_event, to_event; /* send only the messages of viewer events [from, to); to 0: all */
} st_scenario;

/* Fill s with a small default scenario. */
void st_scenario_default(st_scenario *s);

/* Produce the scenario to topic; counts[p] receives the messages written to
 * partition p. Fails the test on any error. */
void st_produce(const st_scenario *s, const char *topic, int64_t counts[ST_MAX_PARTS]);

/* Environment variable, or a failed test naming it. */
const char *st_env(const char *name);

/* Run a shell command line (printf format); returns its exit status. */
int st_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Create a fresh database with every migration applied (as the stack's
 * administrator) and give VC_MYSQL_USER all rights on it. */
void st_db_create(const char *db);
/* Create a topic on the stack's broker. */
void st_topic_create(const char *topic, int partitions);
/* A unique name with prefix (pid and time based). */
void st_unique(char *out, size_t size, const char *prefix);

/* Connect as VC_MYSQL_USER to db on the writer. */
MYSQL *st_my_connect(const char *db);
/* First column of the first row of a query as int64 (-1 if NULL / no row). */
int64_t st_my_int(MYSQL *my, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Start vc-sink on db/group/topic with extra "NAME=value" environment
 * entries (NULL-terminated, may be NULL). Returns the pid. */
pid_t st_sink_start(const char *db, const char *group, const char *topic, int http_port, const char *const *extra_env);
/* SIGTERM and wait (bounded); returns the exit status. */
int st_sink_stop(pid_t pid);
void st_sink_kill9(pid_t pid);

/* Wait until the sink stored offsets summing to total for group/topic in db;
 * gives up early if process pid (when > 0) exits. */
int st_wait_offsets(const char *db, const char *group, const char *topic, int64_t total, int timeout_s, pid_t pid);

/* Compare the data tables of two databases row by row; returns the number of
 * differences (each one reported on stderr). */
int st_db_compare(const char *db_a, const char *db_b);

/* Rows in table of db. */
int64_t st_rows(const char *db, const char *table);

/* HTTP GET on 127.0.0.1:port, body into buf; returns the status code or -1. */
int st_http_get(int port, const char *path, char *buf, size_t size);

#endif
