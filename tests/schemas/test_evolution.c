/* test_evolution.c -- a reader with the current schema reads events written
 * with a newer one (viewer_event_v2.avsc) once it is registered, through
 * avro-c's schema resolution; hostile bodies on that path are error values. */
#include <avro.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vc_event.h"

static char *v2_json(void)
{
    FILE *f = fopen(VC_V2_AVSC, "rb");
    cr_assert_not_null(f, "%s", VC_V2_AVSC);
    char *s = calloc(1, 1 << 16);
    size_t n = fread(s, 1, (1 << 16) - 1, f);
    fclose(f);
    cr_assert_gt(n, 0);
    return s;
}

static uint64_t v2_fingerprint(void)
{
    char *json = v2_json();
    uint64_t fp = 0;
    cr_assert_eq(vc_schema_fingerprint_of(json, &fp, NULL, 0), 0);
    free(json);
    return fp;
}

/* A v2 SYNC (or JOIN with nviewers == 0 and sync == 0) written by avro-c's generic writer. */
static size_t write_v2(uint8_t *out, size_t size, int sync, size_t nviewers)
{
    char *json = v2_json();
    avro_schema_t schema;
    cr_assert_eq(avro_schema_from_json_length(json, strlen(json), &schema), 0, "%s", avro_strerror());
    free(json);
    avro_value_iface_t *cls = avro_generic_class_from_schema(schema);
    avro_value_t rec, f, br, s, arr, item, v, u;
    cr_assert_eq(avro_generic_value_new(cls, &rec), 0);

    avro_value_get_by_name(&rec, "type", &f, NULL);
    avro_value_set_enum(&f, sync ? VC_EV_SYNC : VC_EV_JOIN);
    avro_value_get_by_name(&rec, "stream_id", &f, NULL);
    avro_value_set_long(&f, 31337);
    avro_value_get_by_name(&rec, "user_id", &f, NULL);
    avro_value_set_branch(&f, sync ? 0 : 1, &br);
    if (sync)
        avro_value_set_null(&br);
    else
        avro_value_set_long(&br, 4711);
    avro_value_get_by_name(&rec, "conn_id", &f, NULL);
    avro_value_set_long(&f, sync ? 0 : 99);
    avro_value_get_by_name(&rec, "gateway_id", &f, NULL);
    avro_value_set_string(&f, "gw-v2");
    avro_value_get_by_name(&rec, "gateway_epoch", &f, NULL);
    avro_value_set_long(&f, 1732400000000);
    avro_value_get_by_name(&rec, "seq", &f, NULL);
    avro_value_set_long(&f, 8);
    avro_value_get_by_name(&rec, "ts_ms", &f, NULL);
    avro_value_set_long(&f, 1732400000123);
    avro_value_get_by_name(&rec, "reason", &f, NULL);
    avro_value_set_branch(&f, 0, &br);
    avro_value_set_null(&br);
    avro_value_get_by_name(&rec, "sync", &f, NULL);
    if (!sync) {
        avro_value_set_branch(&f, 0, &br);
        avro_value_set_null(&br);
    } else {
        avro_value_set_branch(&f, 1, &s);
        avro_value_get_by_name(&s, "snapshot_id", &v, NULL);
        avro_value_set_long(&v, 5);
        avro_value_get_by_name(&s, "chunk", &v, NULL);
        avro_value_set_int(&v, 0);
        avro_value_get_by_name(&s, "chunks", &v, NULL);
        avro_value_set_int(&v, 1);
        avro_value_get_by_name(&s, "viewers", &arr, NULL);
        for (size_t i = 0; i < nviewers; i++) {
            avro_value_append(&arr, &item, NULL);
            avro_value_get_by_name(&item, "conn_id", &v, NULL);
            avro_value_set_long(&v, (int64_t)i + 1);
            avro_value_get_by_name(&item, "user_id", &v, NULL);
            avro_value_set_branch(&v, 1, &u);
            avro_value_set_long(&u, (int64_t)i + 100);
            avro_value_get_by_name(&item, "joined_ms", &v, NULL);
            avro_value_set_long(&v, 1732400000000 + (int64_t)i);
            avro_value_get_by_name(&item, "device", &v, NULL);
            avro_value_set_branch(&v, 1, &u);
            avro_value_set_string(&u, "tv");
        }
    }
    avro_value_get_by_name(&rec, "client", &f, NULL);
    avro_value_set_string(&f, "web");

    uint64_t fp = v2_fingerprint();
    cr_assert_gt(size, 10);
    out[0] = 0xC3;
    out[1] = 0x01;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(fp >> (8 * i));
    avro_writer_t w = avro_writer_memory((const char *)out + 10, (int64_t)(size - 10));
    cr_assert_eq(avro_value_write(w, &rec), 0, "%s", avro_strerror());
    size_t len = 10 + (size_t)avro_writer_tell(w);
    avro_writer_free(w);
    avro_value_decref(&rec);
    avro_value_iface_decref(cls);
    avro_schema_decref(schema);
    return len;
}

static void register_v2(void)
{
    char err[256] = "";
    char *json = v2_json();
    cr_assert_eq(vc_schema_register(json, err, sizeof err), 0, "%s", err);
    free(json);
}

static uint8_t msg[VC_EVENT_ENCODED_MAX];

Test(evolution, unregistered_newer_schema_is_rejected)
{
    char err[256] = "";
    vc_event ev;
    size_t len = write_v2(msg, sizeof msg, 0, 0);
    vc_event_init(&ev);
    cr_assert_neq(v2_fingerprint(), vc_schema_fingerprint());
    cr_assert_eq(vc_event_decode(msg, len, &ev, err, sizeof err), VC_CODEC_ERR_FINGERPRINT, "%s", err);
}

Test(evolution, registered_newer_schema_is_read)
{
    char err[256] = "";
    vc_event ev;
    size_t len = write_v2(msg, sizeof msg, 0, 0);
    register_v2();
    register_v2(); /* idempotent */
    vc_event_init(&ev);
    cr_assert_eq(vc_event_decode(msg, len, &ev, err, sizeof err), VC_CODEC_OK, "%s", err);
    cr_assert_eq(ev.type, VC_EV_JOIN);
    cr_assert_eq(ev.stream_id, 31337);
    cr_assert_eq(ev.user_id, 4711);
    cr_assert_eq(ev.conn_id, 99);
    cr_assert_str_eq(ev.gateway_id, "gw-v2");
    cr_assert_eq(ev.gateway_epoch, 1732400000000);
    cr_assert_eq(ev.seq, 8);
    cr_assert_eq(ev.ts_ms, 1732400000123);
    cr_assert_eq(ev.reason, VC_LEAVE_NONE);
    vc_event_free(&ev);

    /* The current schema still takes the fast path. */
    vc_event cur;
    vc_event_init(&cur);
    cur.type = VC_EV_HEARTBEAT;
    snprintf(cur.gateway_id, sizeof cur.gateway_id, "%s", "gw");
    cur.gateway_epoch = 1;
    cur.ts_ms = 2;
    uint8_t buf[128];
    cr_assert_eq(vc_event_encode(&cur, buf, sizeof buf, &len), VC_CODEC_OK);
    cr_assert_eq(vc_event_decode(buf, len, &ev, err, sizeof err), VC_CODEC_OK, "%s", err);
}

Test(evolution, registered_sync_with_nested_new_field)
{
    char err[256] = "";
    vc_event ev;
    size_t len = write_v2(msg, sizeof msg, 1, 300);
    register_v2();
    vc_event_init(&ev);
    cr_assert_eq(vc_event_decode(msg, len, &ev, err, sizeof err), VC_CODEC_OK, "%s", err);
    cr_assert_eq(ev.type, VC_EV_SYNC);
    cr_assert_eq(ev.snapshot_id, 5);
    cr_assert_eq(ev.chunks, 1);
    cr_assert_eq(ev.nviewers, 300);
    for (size_t i = 0; i < ev.nviewers; i++) {
        cr_assert_eq(ev.viewers[i].conn_id, (int64_t)i + 1);
        cr_assert_eq(ev.viewers[i].user_id, (int64_t)i + 100);
        cr_assert_eq(ev.viewers[i].joined_ms, 1732400000000 + (int64_t)i);
    }
    vc_event_free(&ev);
}

/* Hostile bodies with a registered fingerprint: never a crash, always an error. */
Test(evolution, hostile_bodies_on_the_resolution_path)
{
    vc_event ev;
    size_t len = write_v2(msg, sizeof msg, 0, 0);
    register_v2();
    vc_event_init(&ev);

    for (size_t cut = 10; cut < len; cut++) {
        uint8_t *part = malloc(cut);
        memcpy(part, msg, cut);
        cr_assert_eq(vc_event_decode(part, cut, &ev, NULL, 0), VC_CODEC_ERR_TRUNCATED, "cut at %zu", cut);
        free(part);
    }
    /* Trailing garbage. */
    msg[len] = 0;
    cr_assert_eq(vc_event_decode(msg, len + 1, &ev, NULL, 0), VC_CODEC_ERR_MALFORMED);

    /* The gateway_id length: bytes 10.. are type(1) stream(2..3) user branch+id conn; find "gw-v2". */
    uint8_t *g = memmem(msg, len, "gw-v2", 5);
    cr_assert_not_null(g);
    uint8_t saved = g[-1];
    g[-1] = 0x01; /* zig-zag -1 */
    cr_assert_eq(vc_event_decode(msg, len, &ev, NULL, 0), VC_CODEC_ERR_MALFORMED);
    g[-1] = 0x7e; /* 63: runs past the end */
    cr_assert_eq(vc_event_decode(msg, len, &ev, NULL, 0), VC_CODEC_ERR_TRUNCATED);
    g[-1] = saved;

    /* The trailing client string: its length is the byte before "web". */
    uint8_t *c = memmem(msg, len, "web", 3);
    cr_assert_not_null(c);
    c[-1] = 0x05; /* -3 */
    cr_assert_eq(vc_event_decode(msg, len, &ev, NULL, 0), VC_CODEC_ERR_MALFORMED);
    c[-1] = 0x06;

    /* A bad union branch (user_id at byte 10 + type(1) + stream_id(3)). */
    msg[14] = 0x04;
    cr_assert_eq(vc_event_decode(msg, len, &ev, NULL, 0), VC_CODEC_ERR_MALFORMED);
    msg[14] = 0x02;
    /* A bad enum symbol. */
    msg[10] = 0x08;
    cr_assert_eq(vc_event_decode(msg, len, &ev, NULL, 0), VC_CODEC_ERR_MALFORMED);
    msg[10] = 0x00;
    cr_assert_eq(vc_event_decode(msg, len, &ev, NULL, 0), VC_CODEC_OK);
    vc_event_free(&ev);
}

Test(evolution, sync_viewer_limits_apply_after_resolution)
{
    vc_event ev;
    size_t len = write_v2(msg, sizeof msg, 1, VC_SYNC_VIEWERS_MAX + 1);
    register_v2();
    vc_event_init(&ev);
    cr_assert_eq(vc_event_decode(msg, len, &ev, NULL, 0), VC_CODEC_ERR_INVALID);
    cr_assert_null(ev.viewers);
}

Test(evolution, register_refuses_what_cannot_be_resolved)
{
    char err[256] = "";
    cr_assert_eq(vc_schema_register("{", err, sizeof err), -1);
    cr_assert_neq(err[0], '\0');
    /* stream_id as a string cannot be read into a long. */
    const char *incompatible = "{\"type\":\"record\",\"name\":\"vc.events.ViewerEvent\",\"fields\":["
                               "{\"name\":\"stream_id\",\"type\":\"string\"}]}";
    err[0] = '\0';
    cr_assert_eq(vc_schema_register(incompatible, err, sizeof err), -1);
    cr_assert_neq(err[0], '\0');
    /* The current schema is always known. */
    cr_assert_eq(vc_schema_register(vc_schema_json(), err, sizeof err), 0);
}

/* The current schema's JSON with one edit, for the registration tests. */
static char *edited_schema(const char *from, const char *to)
{
    const char *json = vc_schema_json();
    const char *at = strstr(json, from);
    cr_assert_not_null(at, "%s", from);
    char *s = malloc(strlen(json) + strlen(to) + 1);
    size_t head = (size_t)(at - json);
    memcpy(s, json, head);
    memcpy(s + head, to, strlen(to));
    memcpy(s + head + strlen(to), at + strlen(from), strlen(at + strlen(from)) + 1);
    return s;
}

/* avro-c 1.11 cannot resolve these and crashes (double free) on some of them:
 * they must be refused up front, with the reason. */
Test(evolution, register_refuses_unresolvable_edits)
{
    static const struct {
        const char *from, *to, *why;
    } edits[] = {
        /* An older writer without a field the reader has. */
        {"{\"name\": \"seq\", \"type\": \"long\", \"doc\": \"Per gateway epoch, strictly increasing.\"},", "", "seq"},
        /* A new enum symbol. */
        {"\"REJECTED\"", "\"REJECTED\", \"KICKED\"", "KICKED"},
        /* A changed type. */
        {"{\"name\": \"seq\", \"type\": \"long\"", "{\"name\": \"seq\", \"type\": \"string\"", "string"},
        /* A renamed record. */
        {"\"name\": \"SyncViewer\"", "\"name\": \"SyncMember\"", "SyncMember"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char err[256] = "";
        char *json = edited_schema(edits[i].from, edits[i].to);
        cr_assert_eq(vc_schema_register(json, err, sizeof err), -1, "edit %zu accepted", i);
        free(json);
        cr_assert(strstr(err, edits[i].why), "edit %zu: \"%s\" lacks \"%s\"", i, err, edits[i].why);
    }
}

/* A writer whose seq was an int: the reader widens it to long. */
Test(evolution, register_accepts_widening)
{
    char err[256] = "";
    char *json = edited_schema("{\"name\": \"seq\", \"type\": \"long\"", "{\"name\": \"seq\", \"type\": \"int\"");
    int rc = vc_schema_register(json, err, sizeof err);
    uint64_t fp;
    cr_assert_eq(vc_schema_fingerprint_of(json, &fp, NULL, 0), 0);
    free(json);
    cr_assert_eq(rc, 0, "%s", err);

    /* Write a JOIN with that schema by hand: seq is a zig-zag int either way. */
    uint8_t m[64] = {0xC3, 0x01};
    for (int i = 0; i < 8; i++)
        m[2 + i] = (uint8_t)(fp >> (8 * i));
    static const uint8_t body[] = {0x00, 0x02, 0x02, 0x04, 0x06, 0x02, 'g', 0x80, 0x01, 0x0e, 0x02, 0x00, 0x00};
    memcpy(m + 10, body, sizeof body);
    vc_event ev;
    vc_event_init(&ev);
    cr_assert_eq(vc_event_decode(m, 10 + sizeof body, &ev, err, sizeof err), VC_CODEC_OK, "%s", err);
    cr_assert_eq(ev.seq, 7);
    cr_assert_eq(ev.gateway_epoch, 64);
}

/* An older writer (viewer_event_older.avsc): without `reason` on the event
 * and without `user_id` on sync viewers. Both have defaults (null), which the
 * reader fills in. */
static char *older_schema(void)
{
    FILE *f = fopen(VC_OLDER_AVSC, "rb");
    cr_assert_not_null(f, "%s", VC_OLDER_AVSC);
    char *s = calloc(1, 1 << 16);
    size_t n = fread(s, 1, (1 << 16) - 1, f);
    fclose(f);
    cr_assert_gt(n, 0);
    return s;
}

static size_t older_message(uint8_t *m, const char *json, const uint8_t *body, size_t len)
{
    uint64_t fp;
    cr_assert_eq(vc_schema_fingerprint_of(json, &fp, NULL, 0), 0);
    m[0] = 0xC3;
    m[1] = 0x01;
    for (int i = 0; i < 8; i++)
        m[2 + i] = (uint8_t)(fp >> (8 * i));
    memcpy(m + 10, body, len);
    return 10 + len;
}

Test(evolution, older_writer_gets_the_reader_defaults)
{
    char err[256] = "";
    char *json = older_schema();
    int rc = vc_schema_register(json, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);

    /* SYNC of stream 5, gateway "g", epoch 64, seq 0, ts 1, (no reason), sync:
     * snapshot 3, chunk 0 of 1, viewers [{conn 7, joined 9}, {conn 8, joined 10}]. */
    static const uint8_t sync_body[] = {0x06, 0x0a, 0x00, 0x00, 0x02, 'g', 0x80, 0x01, 0x00, 0x02,
                                        0x02, 0x06, 0x00, 0x02, 0x04, 0x0e, 0x12, 0x10, 0x14, 0x00};
    uint8_t m[64];
    size_t len = older_message(m, json, sync_body, sizeof sync_body);
    vc_event ev;
    vc_event_init(&ev);
    cr_assert_eq(vc_event_decode(m, len, &ev, err, sizeof err), VC_CODEC_OK, "%s", err);
    cr_assert_eq(ev.type, VC_EV_SYNC);
    cr_assert_eq(ev.reason, VC_LEAVE_NONE);
    cr_assert_eq(ev.snapshot_id, 3);
    cr_assert_eq(ev.nviewers, 2);
    cr_assert_eq(ev.viewers[0].conn_id, 7);
    cr_assert_eq(ev.viewers[0].user_id, 0);
    cr_assert_eq(ev.viewers[0].joined_ms, 9);
    cr_assert_eq(ev.viewers[1].conn_id, 8);
    cr_assert_eq(ev.viewers[1].joined_ms, 10);
    vc_event_free(&ev);

    /* A LEAVE of that writer has no reason: it decodes, and breaks the contract. */
    static const uint8_t leave_body[] = {0x02, 0x0a, 0x00, 0x0e, 0x02, 'g', 0x80, 0x01, 0x00, 0x02, 0x00};
    len = older_message(m, json, leave_body, sizeof leave_body);
    cr_assert_eq(vc_event_decode(m, len, &ev, err, sizeof err), VC_CODEC_ERR_INVALID);
    cr_assert(strstr(err, "reason"), "%s", err);

    /* Truncated and garbled bodies of the older writer are still error values. */
    len = older_message(m, json, sync_body, sizeof sync_body);
    for (size_t cut = 10; cut < len; cut++)
        cr_assert_eq(vc_event_decode(m, cut, &ev, NULL, 0), VC_CODEC_ERR_TRUNCATED, "cut at %zu", cut);
    m[10 + 14] = 0x03; /* viewers block count -2, then a byte size */
    cr_assert_neq(vc_event_decode(m, len, &ev, NULL, 0), VC_CODEC_OK);
    free(json);
}
