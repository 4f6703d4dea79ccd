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

/* printf into errstr if it is not NULL; returns rc. */
vc_codec_rc vc_codec_fail(vc_codec_rc rc, char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
