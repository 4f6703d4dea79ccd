/* vc_event.h -- the viewer event contract shared by gateway, aggregator and sink.
 *
 * Events travel on the events topic as Avro single-object encoding of
 * avro/viewer_event.avsc: C3 01, the 8-byte little-endian CRC-64-AVRO
 * fingerprint of the writer schema's Parsing Canonical Form, then the Avro
 * binary body. Any Avro implementation can read the topic without this code. */
#ifndef VC_EVENT_H
#define VC_EVENT_H

#include <stddef.h>
#include <stdint.h>

#define VC_GATEWAY_ID_MAX 64      /* bytes, without the NUL */
#define VC_SYNC_VIEWERS_MAX 4096  /* per chunk; the gateway chunks larger snapshots */
#define VC_EVENT_ENCODED_MAX (64 + VC_GATEWAY_ID_MAX + VC_SYNC_VIEWERS_MAX * 32)

typedef enum {
    VC_EV_JOIN = 0,
    VC_EV_LEAVE = 1,
    VC_EV_HEARTBEAT = 2,
    VC_EV_SYNC = 3,
} vc_event_type;

typedef enum {
    VC_LEAVE_NONE = -1,           /* not a LEAVE */
    VC_LEAVE_CLIENT_CLOSED = 0,
    VC_LEAVE_HEARTBEAT_TIMEOUT = 1,
    VC_LEAVE_GATEWAY_SHUTDOWN = 2,
    VC_LEAVE_REJECTED = 3,
} vc_leave_reason;

typedef struct {
    int64_t conn_id;
    int64_t user_id;              /* 0: anonymous */
    int64_t joined_ms;
} vc_sync_viewer;

typedef struct {
    vc_event_type type;
    int64_t stream_id;            /* > 0; 0 only for HEARTBEAT */
    int64_t user_id;              /* > 0, or 0 for anonymous / not applicable */
    int64_t conn_id;
    char gateway_id[VC_GATEWAY_ID_MAX + 1];
    int64_t gateway_epoch;
    int64_t seq;
    int64_t ts_ms;
    vc_leave_reason reason;       /* LEAVE only, else VC_LEAVE_NONE */
    /* SYNC only: */
    int64_t snapshot_id;
    int32_t chunk, chunks;
    size_t nviewers;
    vc_sync_viewer *viewers;      /* owned by the event: see vc_event_free() */
} vc_event;

typedef enum {
    VC_CODEC_OK = 0,
    VC_CODEC_ERR_MAGIC,           /* not single-object encoded */
    VC_CODEC_ERR_FINGERPRINT,     /* writer schema not known to this reader */
    VC_CODEC_ERR_TRUNCATED,       /* body ends early */
    VC_CODEC_ERR_MALFORMED,       /* bytes that no valid writer produces */
    VC_CODEC_ERR_INVALID,         /* decodes, but values break the contract */
    VC_CODEC_ERR_NOSPACE,         /* encode: output buffer too small */
} vc_codec_rc;

/* Human-readable name of a codec result, e.g. for a dead-letter header. */
const char *vc_codec_strerror(vc_codec_rc rc);

const char *vc_event_type_name(vc_event_type type);
const char *vc_leave_reason_name(vc_leave_reason reason);

/* Zero the event and set reason to VC_LEAVE_NONE. */
void vc_event_init(vc_event *ev);
/* Free what the event owns (the sync viewers); the struct itself is the caller's. Accepts NULL. */
void vc_event_free(vc_event *ev);

/* Check the contract (the full table is in schemas/README.md): stream_id > 0
 * (>= 0 on HEARTBEAT); conn_id > 0 on JOIN/LEAVE, 0 on HEARTBEAT/SYNC;
 * user_id >= 0, and 0 on HEARTBEAT/SYNC; gateway_id 1..64 bytes of printable
 * UTF-8; gateway_epoch > 0; seq >= 0; ts_ms > 0; reason set on LEAVE only;
 * sync fields on SYNC only, with 0 <= chunk < chunks, nviewers <=
 * VC_SYNC_VIEWERS_MAX, each viewer conn_id > 0, user_id >= 0, joined_ms > 0.
 * Returns VC_CODEC_OK or VC_CODEC_ERR_INVALID and, if errstr is not NULL, a
 * one-line reason. */
vc_codec_rc vc_event_validate(const vc_event *ev, char *errstr, size_t errstr_size);

/* Encode ev as a single-object Avro message into buf. On success returns
 * VC_CODEC_OK and sets *len. Invalid events are refused with
 * VC_CODEC_ERR_INVALID; nothing is written past buf_size. */
vc_codec_rc vc_event_encode(const vc_event *ev, uint8_t *buf, size_t buf_size, size_t *len);

/* Decode one message. ev must be initialised; viewers it still holds from an
 * earlier decode are freed first, so one ev can be reused in a loop. On
 * success ev owns any sync viewers (vc_event_free). On error ev is reset
 * (vc_event_init), holds nothing that needs freeing, and errstr (if not NULL)
 * says what was wrong. Never reads past len. Accepts the current schema and
 * any writer schema registered with vc_schema_register(). Thread-safe. */
vc_codec_rc vc_event_decode(const uint8_t *buf, size_t len, vc_event *ev,
                            char *errstr, size_t errstr_size);

/* The writer schema's JSON (avro/viewer_event.avsc) and its CRC-64-AVRO fingerprint. */
const char *vc_schema_json(void);
uint64_t vc_schema_fingerprint(void);

/* CRC-64-AVRO of the Parsing Canonical Form of schema_json, or -1 on a schema
 * that does not parse (errstr says why). */
int vc_schema_fingerprint_of(const char *schema_json, uint64_t *fp, char *errstr, size_t errstr_size);

/* Teach the decoder a newer (or older) writer schema, so that events written
 * with it are read through Avro schema resolution into the current reader
 * schema. Returns 0 (also when already known, or for the current schema), or
 * -1 if it does not parse or cannot be resolved (errstr says why). Up to 16
 * schemas; meant for start-up. The first call installs a bounded allocator
 * for avro-c in the whole process (no single allocation over 16 MiB). */
int vc_schema_register(const char *schema_json, char *errstr, size_t errstr_size);

#endif
