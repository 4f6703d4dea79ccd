/* count.c -- degradation rules and the count message (see count.h). */
#include "count.h"

#include <stdio.h>

gw_count gw_count_next(gw_count_memory *mem, const gw_count_obs *obs)
{
    gw_count c = {GW_COUNT_COUNTING, 0, 0};

    if (obs->redis_ok) {
        if (!obs->redis_found)
            return c;
        mem->known = 1;
        mem->viewers = obs->viewers;
        mem->peak = obs->peak;
        c.status = obs->syncing ? GW_COUNT_SYNCING : GW_COUNT_LIVE;
        c.viewers = obs->viewers;
        c.peak = obs->peak;
        return c;
    }
    if (mem->known) {
        c.status = GW_COUNT_STALE;
        c.viewers = mem->viewers;
        c.peak = mem->peak;
    } else if (obs->db_found) {
        c.status = GW_COUNT_STALE;
        c.viewers = obs->db_viewers;
        c.peak = obs->db_peak;
    }
    return c;
}

int gw_count_equal(const gw_count *a, const gw_count *b)
{
    if (a->status != b->status)
        return 0;
    if (a->status == GW_COUNT_COUNTING)
        return 1;
    return a->viewers == b->viewers && a->peak == b->peak;
}

const char *gw_count_status_name(gw_count_status status)
{
    switch (status) {
    case GW_COUNT_LIVE:
        return "live";
    case GW_COUNT_SYNCING:
        return "syncing";
    case GW_COUNT_STALE:
        return "stale";
    case GW_COUNT_COUNTING:
        break;
    }
    return "counting";
}

int gw_count_format(char *buf, size_t size, int64_t stream_id, const gw_count *c)
{
    int n;

    if (c->status == GW_COUNT_COUNTING)
        n = snprintf(buf, size, "{\"type\":\"count\",\"stream\":%lld,\"status\":\"counting\"}",
                     (long long)stream_id);
    else
        n = snprintf(buf, size, "{\"type\":\"count\",\"stream\":%lld,\"viewers\":%lld,\"peak\":%lld,\"status\":\"%s\"}",
                     (long long)stream_id, (long long)c->viewers, (long long)c->peak,
                     gw_count_status_name(c->status));
    if (n < 0 || (size_t)n >= size)
        return -1;
    return n;
}
