/* vc_avro_internal.h -- private to libvc_schemas: the pieces of the event
 * codec that live in separate files (schema fingerprinting and the avro-c
 * resolution path). Not part of the contract; other code uses vc_event.h. */
#ifndef VC_AVRO_INTERNAL_H
#define VC_AVRO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "vc_event.h"

#define VC_SO_MAGIC0 0xC3
#define VC_SO_MAGIC1 0x01
#define VC_SO_HEADER_LEN 10 /* magic (2) + fingerprint (8) */

/* CRC-64-AVRO (the Rabin fingerprint of the Avro specification) of len bytes. */
uint64_t vc_crc64_avro(const void *buf, size_t len);

/* The Parsing Canonical Form of schema_json as a malloc'd string (caller
 * frees), or NULL with errstr filled. */
char *vc_schema_canonical_form(const char *schema_json, char *errstr, size_t errstr_size);

/* Decode the Avro binary body of the current writer schema (no header). */
vc_codec_rc vc_event_decode_body(const uint8_t *body, size_t len, vc_event *ev, char *errstr, size_t errstr_size);

/* Decode a body written with the registered writer schema of fingerprint fp
 * through Avro schema resolution. VC_CODEC_ERR_FINGERPRINT if fp is unknown. */
vc_codec_rc vc_avro_decode_resolved(uint64_t fp, const uint8_t *body, size_t len, vc_event *ev, char *errstr,
                                    size_t errstr_size);

/* --- defaults for reader fields that an older writer lacks (vc_avro_defaults.c) ---
 * avro-c 1.11 cannot fill reader defaults, so such a writer is resolved into
 * a projection of the reader schema without those fields, and the fields'
 * defaults, encoded once at registration, are spliced into the body. */

struct avro_obj_t;
struct json_t;

typedef struct {
    char *record; /* full name of the reader record */
    char *field;
    uint8_t *bytes; /* the default in Avro binary */
    size_t len;
} vc_avro_default;

typedef struct {
    vc_avro_default *v;
    size_t n;
} vc_avro_defaults;

/* The full name of a named avro-c schema into buf ("" if it does not fit). */
const char *vc_avro_full_name(struct avro_obj_t *schema, char *buf, size_t size);
/* Record that reader field `field` of record `record` takes its default from
 * reader_json (the reader schema's JSON). 0, or -1 with errstr if the field
 * has no default or the default does not fit the field's type. */
int vc_avro_defaults_add(vc_avro_defaults *d, struct json_t *reader_json, struct avro_obj_t *record, const char *field,
                         char *errstr, size_t errstr_size);
const vc_avro_default *vc_avro_defaults_find(const vc_avro_defaults *d, const char *record, const char *field);
/* Drop the entries from index n on (undo after a failed union probe). */
void vc_avro_defaults_truncate(vc_avro_defaults *d, size_t n);
/* The reader schema's JSON without the fields of d, as a malloc'd string, or NULL with errstr. */
char *vc_avro_defaults_project(struct json_t *reader_json, const vc_avro_defaults *d, char *errstr, size_t errstr_size);

/* printf into errstr if it is not NULL; returns rc. */
vc_codec_rc vc_codec_fail(vc_codec_rc rc, char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
