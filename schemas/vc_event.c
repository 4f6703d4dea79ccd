/* vc_event.c -- the viewer event: contract checks and the hand-written
 * Avro binary codec of the current schema (avro/viewer_event.avsc).
 *
 * The codec writes exactly what any Avro implementation writes for the same
 * datum (arrays as one positive block and a 0 terminator) and reads anything
 * a conforming writer may produce (several blocks, negative block counts with
 * a byte size). Every read is bounds-checked. Bodies of other registered
 * writer schemas go through vc_avro_resolve.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vc_avro_internal.h"

/* Union branch indexes and enum symbol counts of the schema. */
#define BRANCH_NULL 0
#define BRANCH_VALUE 1
#define EVENT_TYPE_COUNT 4
#define LEAVE_REASON_COUNT 4
/* The smallest encoded SyncViewer: three one-byte varints. */
#define SYNC_VIEWER_MIN_BYTES 3

vc_codec_rc vc_codec_fail(vc_codec_rc rc, char *errstr, size_t errstr_size, const char *fmt, ...)
{
    va_list ap;

    if (errstr && errstr_size) {
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return rc;
}

const char *vc_codec_strerror(vc_codec_rc rc)
{
    switch (rc) {
    case VC_CODEC_OK: return "ok";
    case VC_CODEC_ERR_MAGIC: return "not an Avro single-object message";
    case VC_CODEC_ERR_FINGERPRINT: return "unknown writer schema fingerprint";
    case VC_CODEC_ERR_TRUNCATED: return "truncated message";
    case VC_CODEC_ERR_MALFORMED: return "malformed Avro body";
    case VC_CODEC_ERR_INVALID: return "event breaks the contract";
    case VC_CODEC_ERR_NOSPACE: return "output buffer too small";
    }
    return "unknown codec result";
}

const char *vc_event_type_name(vc_event_type type)
{
    switch (type) {
    case VC_EV_JOIN: return "JOIN";
    case VC_EV_LEAVE: return "LEAVE";
    case VC_EV_HEARTBEAT: return "HEARTBEAT";
    case VC_EV_SYNC: return "SYNC";
    }
    return "?";
}

const char *vc_leave_reason_name(vc_leave_reason reason)
{
    switch (reason) {
    case VC_LEAVE_NONE: return "NONE";
    case VC_LEAVE_CLIENT_CLOSED: return "CLIENT_CLOSED";
    case VC_LEAVE_HEARTBEAT_TIMEOUT: return "HEARTBEAT_TIMEOUT";
    case VC_LEAVE_GATEWAY_SHUTDOWN: return "GATEWAY_SHUTDOWN";
    case VC_LEAVE_REJECTED: return "REJECTED";
    }
    return "?";
}

void vc_event_init(vc_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->reason = VC_LEAVE_NONE;
}

void vc_event_free(vc_event *ev)
{
    if (!ev)
        return;
    free(ev->viewers);
    ev->viewers = NULL;
    ev->nviewers = 0;
}

/* --- the contract --- */

/* Well-formed UTF-8 without control characters (C0, DEL, C1). */
static int gateway_id_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;

    while (p < end) {
        unsigned c = *p;
        uint32_t cp;
        size_t k;

        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return 0;
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if ((size_t)(end - p) < k + 1)
            return 0;
        for (size_t i = 1; i <= k; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
            return 0;
        p += k + 1;
    }
    return 1;
}

#define INVALID(...) vc_codec_fail(VC_CODEC_ERR_INVALID, errstr, errstr_size, __VA_ARGS__)

vc_codec_rc vc_event_validate(const vc_event *ev, char *errstr, size_t errstr_size)
{
    size_t gid_len;

    if (!ev)
        return INVALID("no event");
    if ((unsigned)ev->type >= EVENT_TYPE_COUNT)
        return INVALID("unknown event type %d", (int)ev->type);

    gid_len = strnlen(ev->gateway_id, sizeof ev->gateway_id);
    if (gid_len == 0)
        return INVALID("empty gateway_id");
    if (gid_len > VC_GATEWAY_ID_MAX)
        return INVALID("gateway_id longer than %d bytes", VC_GATEWAY_ID_MAX);
    if (!gateway_id_ok(ev->gateway_id, gid_len))
        return INVALID("gateway_id is not printable UTF-8");
    if (ev->gateway_epoch <= 0)
        return INVALID("gateway_epoch %lld is not positive", (long long)ev->gateway_epoch);
    if (ev->seq < 0)
        return INVALID("negative seq %lld", (long long)ev->seq);
    if (ev->ts_ms <= 0)
        return INVALID("ts_ms %lld is not positive", (long long)ev->ts_ms);
    if (ev->user_id < 0)
        return INVALID("negative user_id %lld", (long long)ev->user_id);
    if (ev->conn_id < 0)
        return INVALID("negative conn_id %lld", (long long)ev->conn_id);

    if (ev->type == VC_EV_HEARTBEAT) {
        if (ev->stream_id < 0)
            return INVALID("negative stream_id %lld", (long long)ev->stream_id);
    } else if (ev->stream_id <= 0) {
        return INVALID("%s with stream_id %lld (must be positive)", vc_event_type_name(ev->type),
                       (long long)ev->stream_id);
    }

    if (ev->type == VC_EV_JOIN || ev->type == VC_EV_LEAVE) {
        if (ev->conn_id <= 0)
            return INVALID("%s without a conn_id", vc_event_type_name(ev->type));
    } else {
        if (ev->conn_id != 0)
            return INVALID("%s with a conn_id", vc_event_type_name(ev->type));
        if (ev->user_id != 0)
            return INVALID("%s with a user_id", vc_event_type_name(ev->type));
    }

    if (ev->type == VC_EV_LEAVE) {
        if (ev->reason == VC_LEAVE_NONE)
            return INVALID("LEAVE without a reason");
        if ((unsigned)ev->reason >= LEAVE_REASON_COUNT)
            return INVALID("unknown leave reason %d", (int)ev->reason);
    } else if (ev->reason != VC_LEAVE_NONE) {
        return INVALID("reason on a %s", vc_event_type_name(ev->type));
    }

    if (ev->type == VC_EV_SYNC) {
        if (ev->snapshot_id < 0)
            return INVALID("negative snapshot_id %lld", (long long)ev->snapshot_id);
        if (ev->chunks < 1)
            return INVALID("SYNC with chunks %d (must be at least 1)", (int)ev->chunks);
        if (ev->chunk < 0 || ev->chunk >= ev->chunks)
            return INVALID("SYNC chunk %d not in [0, %d)", (int)ev->chunk, (int)ev->chunks);
        if (ev->nviewers > VC_SYNC_VIEWERS_MAX)
            return INVALID("SYNC chunk with %zu viewers (at most %d)", ev->nviewers, VC_SYNC_VIEWERS_MAX);
        if (ev->nviewers && !ev->viewers)
            return INVALID("SYNC with nviewers but no viewers");
        for (size_t i = 0; i < ev->nviewers; i++) {
            const vc_sync_viewer *v = &ev->viewers[i];
            if (v->conn_id <= 0)
                return INVALID("sync viewer %zu without a conn_id", i);
            if (v->user_id < 0)
                return INVALID("sync viewer %zu with negative user_id", i);
            if (v->joined_ms <= 0)
                return INVALID("sync viewer %zu with joined_ms %lld", i, (long long)v->joined_ms);
        }
    } else if (ev->snapshot_id || ev->chunk || ev->chunks || ev->nviewers) {
        return INVALID("sync fields on a %s", vc_event_type_name(ev->type));
    }
    return VC_CODEC_OK;
}

/* --- encoder --- */

typedef struct {
    uint8_t *p, *end;
    int full;
} wr;

static void wr_bytes(wr *w, const void *src, size_t n)
{
    if (w->full || (size_t)(w->end - w->p) < n) {
        w->full = 1;
        return;
    }
    memcpy(w->p, src, n);
    w->p += n;
}

static void wr_varint(wr *w, uint64_t u)
{
    uint8_t tmp[10];
    size_t n = 0;

    while (u >= 0x80) {
        tmp[n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    tmp[n++] = (uint8_t)u;
    wr_bytes(w, tmp, n);
}

static void wr_long(wr *w, int64_t v)
{
    wr_varint(w, ((uint64_t)v << 1) ^ (0 - ((uint64_t)v >> 63)));
}

static void wr_int(wr *w, int32_t v)
{
    wr_varint(w, ((uint32_t)v << 1) ^ (0 - ((uint32_t)v >> 31)));
}

/* ["null","long"] with 0 meaning null. */
static void wr_opt_id(wr *w, int64_t id)
{
    if (id == 0) {
        wr_long(w, BRANCH_NULL);
    } else {
        wr_long(w, BRANCH_VALUE);
        wr_long(w, id);
    }
}

vc_codec_rc vc_event_encode(const vc_event *ev, uint8_t *buf, size_t buf_size, size_t *len)
{
    uint8_t header[VC_SO_HEADER_LEN] = {VC_SO_MAGIC0, VC_SO_MAGIC1};
    uint64_t fp = vc_schema_fingerprint();
    wr w = {buf, buf + buf_size, 0};
    vc_codec_rc rc = vc_event_validate(ev, NULL, 0);

    if (rc != VC_CODEC_OK)
        return rc;
    if (!buf)
        w.end = w.p;
    for (int i = 0; i < 8; i++)
        header[2 + i] = (uint8_t)(fp >> (8 * i));
    wr_bytes(&w, header, sizeof header);

    wr_int(&w, (int32_t)ev->type);
    wr_long(&w, ev->stream_id);
    wr_opt_id(&w, ev->user_id);
    wr_long(&w, ev->conn_id);
    size_t gid_len = strlen(ev->gateway_id);
    wr_long(&w, (int64_t)gid_len);
    wr_bytes(&w, ev->gateway_id, gid_len);
    wr_long(&w, ev->gateway_epoch);
    wr_long(&w, ev->seq);
    wr_long(&w, ev->ts_ms);
    if (ev->type == VC_EV_LEAVE) {
        wr_long(&w, BRANCH_VALUE);
        wr_int(&w, (int32_t)ev->reason);
    } else {
        wr_long(&w, BRANCH_NULL);
    }
    if (ev->type == VC_EV_SYNC) {
        wr_long(&w, BRANCH_VALUE);
        wr_long(&w, ev->snapshot_id);
        wr_int(&w, ev->chunk);
        wr_int(&w, ev->chunks);
        if (ev->nviewers) {
            wr_long(&w, (int64_t)ev->nviewers);
            for (size_t i = 0; i < ev->nviewers && !w.full; i++) {
                wr_long(&w, ev->viewers[i].conn_id);
                wr_opt_id(&w, ev->viewers[i].user_id);
                wr_long(&w, ev->viewers[i].joined_ms);
            }
        }
        wr_long(&w, 0);
    } else {
        wr_long(&w, BRANCH_NULL);
    }
    if (w.full)
        return VC_CODEC_ERR_NOSPACE;
    *len = (size_t)(w.p - buf);
    return VC_CODEC_OK;
}

/* --- decoder --- */

typedef struct {
    const uint8_t *p, *end;
    char *errstr;
    size_t errstr_size;
} rd;

#define RD_FAIL(r, rc, ...) vc_codec_fail((rc), (r)->errstr, (r)->errstr_size, __VA_ARGS__)
#define TRY(expr)                                                                                                  \
    do {                                                                                                           \
        vc_codec_rc rc_ = (expr);                                                                                  \
        if (rc_ != VC_CODEC_OK)                                                                                    \
            return rc_;                                                                                            \
    } while (0)

/* A varint of at most max_bytes; the last byte may only carry the bits left. */
static vc_codec_rc rd_varint(rd *r, int max_bytes, uint8_t last_max, const char *what, uint64_t *out)
{
    uint64_t u = 0;

    for (int i = 0; i < max_bytes; i++) {
        if (r->p == r->end)
            return RD_FAIL(r, VC_CODEC_ERR_TRUNCATED, "message ends inside %s", what);
        uint8_t b = *r->p++;
        if (i == max_bytes - 1 && b > last_max)
            return RD_FAIL(r, VC_CODEC_ERR_MALFORMED, "varint of %s overflows", what);
        u |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = u;
            return VC_CODEC_OK;
        }
    }
    return RD_FAIL(r, VC_CODEC_ERR_MALFORMED, "varint of %s overflows", what); /* not reached */
}

static vc_codec_rc rd_long(rd *r, const char *what, int64_t *v)
{
    uint64_t u = 0; /* set by rd_varint on success; -O3 cannot see that */

    TRY(rd_varint(r, 10, 0x01, what, &u));
    *v = (int64_t)((u >> 1) ^ (0 - (u & 1)));
    return VC_CODEC_OK;
}

static vc_codec_rc rd_int(rd *r, const char *what, int32_t *v)
{
    uint64_t u = 0; /* as in rd_long */

    TRY(rd_varint(r, 5, 0x0f, what, &u));
    uint32_t u32 = (uint32_t)u;
    *v = (int32_t)((u32 >> 1) ^ (0 - (u32 & 1)));
    return VC_CODEC_OK;
}

static vc_codec_rc rd_branch(rd *r, const char *what, int *branch)
{
    int64_t b;

    TRY(rd_long(r, what, &b));
    if (b != BRANCH_NULL && b != BRANCH_VALUE)
        return RD_FAIL(r, VC_CODEC_ERR_MALFORMED, "union branch %lld of %s out of range", (long long)b, what);
    *branch = (int)b;
    return VC_CODEC_OK;
}

static vc_codec_rc rd_enum(rd *r, const char *what, int count, int *sym)
{
    int32_t s;

    TRY(rd_int(r, what, &s));
    if (s < 0 || s >= count)
        return RD_FAIL(r, VC_CODEC_ERR_MALFORMED, "%s symbol %d out of range", what, (int)s);
    *sym = s;
    return VC_CODEC_OK;
}

/* ["null","long"]: null reads as 0; a present id must be positive. */
static vc_codec_rc rd_opt_id(rd *r, const char *what, int64_t *id)
{
    int branch = -1; /* set by rd_branch on success; -Wmaybe-uninitialized cannot see that */

    TRY(rd_branch(r, what, &branch));
    if (branch == BRANCH_NULL) {
        *id = 0;
        return VC_CODEC_OK;
    }
    TRY(rd_long(r, what, id));
    if (*id <= 0)
        return RD_FAIL(r, VC_CODEC_ERR_INVALID, "%s %lld present but not positive", what, (long long)*id);
    return VC_CODEC_OK;
}

static vc_codec_rc rd_sync(rd *r, vc_event *ev)
{
    TRY(rd_long(r, "snapshot_id", &ev->snapshot_id));
    TRY(rd_int(r, "chunk", &ev->chunk));
    TRY(rd_int(r, "chunks", &ev->chunks));

    for (;;) {
        int64_t count, bytes;

        TRY(rd_long(r, "viewers block count", &count));
        if (count == 0)
            break;
        if (count < 0) {
            if (count == INT64_MIN)
                return RD_FAIL(r, VC_CODEC_ERR_MALFORMED, "viewers block count out of range");
            count = -count;
            TRY(rd_long(r, "viewers block size", &bytes));
            if (bytes < 0)
                return RD_FAIL(r, VC_CODEC_ERR_MALFORMED, "negative viewers block size");
        }
        if ((uint64_t)count > VC_SYNC_VIEWERS_MAX - ev->nviewers)
            return RD_FAIL(r, VC_CODEC_ERR_INVALID, "more than %d sync viewers", VC_SYNC_VIEWERS_MAX);
        if ((uint64_t)count * SYNC_VIEWER_MIN_BYTES > (uint64_t)(r->end - r->p))
            return RD_FAIL(r, VC_CODEC_ERR_TRUNCATED, "message ends inside the sync viewers");
        vc_sync_viewer *v = realloc(ev->viewers, (ev->nviewers + (size_t)count) * sizeof *v);
        if (!v)
            return RD_FAIL(r, VC_CODEC_ERR_MALFORMED, "out of memory for %lld viewers", (long long)count);
        ev->viewers = v;
        for (int64_t i = 0; i < count; i++) {
            vc_sync_viewer *sv = &ev->viewers[ev->nviewers];
            TRY(rd_long(r, "viewer conn_id", &sv->conn_id));
            TRY(rd_opt_id(r, "viewer user_id", &sv->user_id));
            TRY(rd_long(r, "viewer joined_ms", &sv->joined_ms));
            ev->nviewers++;
        }
    }
    return VC_CODEC_OK;
}

static vc_codec_rc rd_event(rd *r, vc_event *ev)
{
    int sym = 0, branch = -1; /* set by rd_enum / rd_branch on success */
    int64_t gid_len;

    TRY(rd_enum(r, "type", EVENT_TYPE_COUNT, &sym));
    ev->type = (vc_event_type)sym;
    TRY(rd_long(r, "stream_id", &ev->stream_id));
    TRY(rd_opt_id(r, "user_id", &ev->user_id));
    TRY(rd_long(r, "conn_id", &ev->conn_id));
    TRY(rd_long(r, "gateway_id length", &gid_len));
    if (gid_len < 0)
        return RD_FAIL(r, VC_CODEC_ERR_MALFORMED, "negative gateway_id length");
    if (gid_len > VC_GATEWAY_ID_MAX)
        return RD_FAIL(r, VC_CODEC_ERR_INVALID, "gateway_id of %lld bytes (at most %d)", (long long)gid_len,
                       VC_GATEWAY_ID_MAX);
    if (gid_len > r->end - r->p)
        return RD_FAIL(r, VC_CODEC_ERR_TRUNCATED, "message ends inside gateway_id");
    memcpy(ev->gateway_id, r->p, (size_t)gid_len);
    ev->gateway_id[gid_len] = '\0';
    if (memchr(ev->gateway_id, '\0', (size_t)gid_len))
        return RD_FAIL(r, VC_CODEC_ERR_INVALID, "gateway_id contains a NUL byte");
    r->p += gid_len;
    TRY(rd_long(r, "gateway_epoch", &ev->gateway_epoch));
    TRY(rd_long(r, "seq", &ev->seq));
    TRY(rd_long(r, "ts_ms", &ev->ts_ms));
    TRY(rd_branch(r, "reason", &branch));
    if (branch == BRANCH_VALUE) {
        TRY(rd_enum(r, "reason", LEAVE_REASON_COUNT, &sym));
        ev->reason = (vc_leave_reason)sym;
    } else {
        ev->reason = VC_LEAVE_NONE;
    }
    TRY(rd_branch(r, "sync", &branch));
    if (branch == BRANCH_VALUE) {
        TRY(rd_sync(r, ev));
        if (ev->type != VC_EV_SYNC)
            return RD_FAIL(r, VC_CODEC_ERR_INVALID, "sync fields on a %s", vc_event_type_name(ev->type));
    } else if (ev->type == VC_EV_SYNC) {
        return RD_FAIL(r, VC_CODEC_ERR_INVALID, "SYNC without sync fields");
    }
    if (r->p != r->end)
        return RD_FAIL(r, VC_CODEC_ERR_MALFORMED, "%zu bytes after the event", (size_t)(r->end - r->p));
    return VC_CODEC_OK;
}

vc_codec_rc vc_event_decode_body(const uint8_t *body, size_t len, vc_event *ev, char *errstr, size_t errstr_size)
{
    rd r = {body, body + len, errstr, errstr_size};
    vc_event tmp;
    vc_codec_rc rc;

    vc_event_init(&tmp);
    rc = rd_event(&r, &tmp);
    if (rc == VC_CODEC_OK)
        rc = vc_event_validate(&tmp, errstr, errstr_size);
    if (rc != VC_CODEC_OK) {
        vc_event_free(&tmp);
        return rc;
    }
    *ev = tmp;
    return VC_CODEC_OK;
}

vc_codec_rc vc_event_decode(const uint8_t *buf, size_t len, vc_event *ev, char *errstr, size_t errstr_size)
{
    uint64_t fp = 0;
    vc_codec_rc rc;

    vc_event_free(ev);
    vc_event_init(ev);
    if (!buf || len == 0)
        return vc_codec_fail(VC_CODEC_ERR_TRUNCATED, errstr, errstr_size, "empty message");
    if (buf[0] != VC_SO_MAGIC0 || (len > 1 && buf[1] != VC_SO_MAGIC1))
        return vc_codec_fail(VC_CODEC_ERR_MAGIC, errstr, errstr_size, "no C3 01 single-object marker");
    if (len < VC_SO_HEADER_LEN)
        return vc_codec_fail(VC_CODEC_ERR_TRUNCATED, errstr, errstr_size, "message ends inside the header");
    for (int i = 0; i < 8; i++)
        fp |= (uint64_t)buf[2 + i] << (8 * i);
    if (fp == vc_schema_fingerprint())
        rc = vc_event_decode_body(buf + VC_SO_HEADER_LEN, len - VC_SO_HEADER_LEN, ev, errstr, errstr_size);
    else
        rc = vc_avro_decode_resolved(fp, buf + VC_SO_HEADER_LEN, len - VC_SO_HEADER_LEN, ev, errstr, errstr_size);
    if (rc != VC_CODEC_OK)
        vc_event_init(ev);
    return rc;
}
