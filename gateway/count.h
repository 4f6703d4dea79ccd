/* count.h -- what a viewer is shown for a stream: the degradation rules and
 * the count message. Pure: no I/O.
 *
 * Redis answers with the stream hash: live (or syncing) with its numbers.
 * Redis answers but the hash is absent: the aggregator has not counted the
 * stream yet: counting. Redis unreachable: the last value Redis gave, else
 * the database's current_viewers row, marked stale; nothing at all: counting. */
#ifndef GW_COUNT_H
#define GW_COUNT_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    GW_COUNT_COUNTING = 0,  /* no number to show */
    GW_COUNT_LIVE,
    GW_COUNT_SYNCING,       /* the aggregator is repairing the stream */
    GW_COUNT_STALE,         /* Redis unreachable: last known or database value */
} gw_count_status;

typedef struct {
    gw_count_status status;
    int64_t viewers, peak;  /* meaningful unless COUNTING */
} gw_count;

/* One tick's observation of a stream by the reader. */
typedef struct {
    int redis_ok;           /* Redis answered for this stream */
    int redis_found;        /* ... and the hash exists */
    int syncing;            /* its status field is "syncing" */
    int64_t viewers, peak;
    int db_found;           /* a current_viewers row was read */
    int64_t db_viewers, db_peak;
} gw_count_obs;

/* What the reader remembers of a stream between ticks. */
typedef struct {
    int known;              /* Redis gave a value once */
    int64_t viewers, peak;
} gw_count_memory;

/* Fold one observation into mem and return what to show. */
gw_count gw_count_next(gw_count_memory *mem, const gw_count_obs *obs);

/* 1 when the viewer needs no new push to go from a to b. */
int gw_count_equal(const gw_count *a, const gw_count *b);

const char *gw_count_status_name(gw_count_status status);

/* The push message: {"type":"count","stream":S,"viewers":N,"peak":P,"status":"live"},
 * without viewers and peak when counting. Returns its length, or -1 if it
 * does not fit in size. */
int gw_count_format(char *buf, size_t size, int64_t stream_id, const gw_count *c);

#define GW_COUNT_MSG_MAX 128

#endif
