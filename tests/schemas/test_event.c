/* test_event.c -- the event contract: validation, the single-object codec,
 * fingerprints, and every error the decoder can return. */
#include <avro.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "vc_event.h"

/* --- helpers --- */

static vc_event join_event(void)
{
    vc_event ev;
    vc_event_init(&ev);
    ev.type = VC_EV_JOIN;
    ev.stream_id = 4242;
    ev.user_id = 77;
    ev.conn_id = ((int64_t)1700000000 << 32) | 5;
    snprintf(ev.gateway_id, sizeof ev.gateway_id, "%s", "gw-eu-1");
    ev.gateway_epoch = 1732400000000;
    ev.seq = 12;
    ev.ts_ms = 1732400001234;
    return ev;
}

static vc_event leave_event(void)
{
    vc_event ev = join_event();
    ev.type = VC_EV_LEAVE;
    ev.user_id = 0;
    ev.reason = VC_LEAVE_HEARTBEAT_TIMEOUT;
    return ev;
}

static vc_event heartbeat_event(void)
{
    vc_event ev = join_event();
    ev.type = VC_EV_HEARTBEAT;
    ev.stream_id = 0;
    ev.user_id = 0;
    ev.conn_id = 0;
    return ev;
}

/* A SYNC chunk with n viewers (caller frees with vc_event_free). */
static vc_event sync_event(size_t n)
{
    vc_event ev = heartbeat_event();
    ev.type = VC_EV_SYNC;
    ev.stream_id = 99;
    ev.snapshot_id = 31337;
    ev.chunk = 2;
    ev.chunks = 3;
    ev.nviewers = n;
    ev.viewers = n ? calloc(n, sizeof *ev.viewers) : NULL;
    for (size_t i = 0; i < n; i++) {
        ev.viewers[i].conn_id = (int64_t)i * 1000003 + 1;
        ev.viewers[i].user_id = i % 3 ? (int64_t)(i * 7919) : 0;
        ev.viewers[i].joined_ms = 1732400000000 + (int64_t)i;
    }
    return ev;
}

static void assert_events_equal(const vc_event *a, const vc_event *b)
{
    cr_assert_eq(a->type, b->type);
    cr_assert_eq(a->stream_id, b->stream_id);
    cr_assert_eq(a->user_id, b->user_id);
    cr_assert_eq(a->conn_id, b->conn_id);
    cr_assert_str_eq(a->gateway_id, b->gateway_id);
    cr_assert_eq(a->gateway_epoch, b->gateway_epoch);
    cr_assert_eq(a->seq, b->seq);
    cr_assert_eq(a->ts_ms, b->ts_ms);
    cr_assert_eq(a->reason, b->reason);
    cr_assert_eq(a->snapshot_id, b->snapshot_id);
    cr_assert_eq(a->chunk, b->chunk);
    cr_assert_eq(a->chunks, b->chunks);
    cr_assert_eq(a->nviewers, b->nviewers);
    for (size_t i = 0; i < a->nviewers; i++) {
        cr_assert_eq(a->viewers[i].conn_id, b->viewers[i].conn_id);
        cr_assert_eq(a->viewers[i].user_id, b->viewers[i].user_id);
        cr_assert_eq(a->viewers[i].joined_ms, b->viewers[i].joined_ms);
    }
}

static uint8_t buf[VC_EVENT_ENCODED_MAX];

static size_t encode_ok(const vc_event *ev)
{
    size_t len = 0;
    vc_codec_rc rc = vc_event_encode(ev, buf, sizeof buf, &len);
    cr_assert_eq(rc, VC_CODEC_OK, "encode: %s", vc_codec_strerror(rc));
    return len;
}

static void round_trip(const vc_event *ev)
{
    char err[256] = "";
    vc_event out;
    size_t len = encode_ok(ev);

    vc_event_init(&out);
    vc_codec_rc rc = vc_event_decode(buf, len, &out, err, sizeof err);
    cr_assert_eq(rc, VC_CODEC_OK, "decode: %s: %s", vc_codec_strerror(rc), err);
    assert_events_equal(ev, &out);
    vc_event_free(&out);
}

/* A hand-built message: the header of the current schema and a body of varints. */
typedef struct {
    uint8_t b[512];
    size_t n;
} msg;

static void msg_header(msg *m)
{
    uint64_t fp = vc_schema_fingerprint();
    m->n = 0;
    m->b[m->n++] = 0xC3;
    m->b[m->n++] = 0x01;
    for (int i = 0; i < 8; i++)
        m->b[m->n++] = (uint8_t)(fp >> (8 * i));
}

static void msg_long(msg *m, int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (u >= 0x80) {
        m->b[m->n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    m->b[m->n++] = (uint8_t)u;
}

static void msg_str(msg *m, const char *s)
{
    msg_long(m, (int64_t)strlen(s));
    memcpy(m->b + m->n, s, strlen(s));
    m->n += strlen(s);
}

/* The fields of a JOIN up to and including ts_ms, with the given user branch. */
static void msg_join_head(msg *m, int64_t type, int64_t user_branch)
{
    msg_header(m);
    msg_long(m, type);
    msg_long(m, 10);          /* stream_id */
    msg_long(m, user_branch); /* user_id union */
    if (user_branch == 1)
        msg_long(m, 5);
    msg_long(m, 20);          /* conn_id */
    msg_str(m, "gw");
    msg_long(m, 1000);        /* gateway_epoch */
    msg_long(m, 1);           /* seq */
    msg_long(m, 2000);        /* ts_ms */
}

static vc_codec_rc decode_msg(const msg *m, char *err, size_t err_size)
{
    vc_event ev;
    vc_event_init(&ev);
    vc_codec_rc rc = vc_event_decode(m->b, m->n, &ev, err, err_size);
    if (rc == VC_CODEC_OK) {
        cr_assert_eq(ev.stream_id, 10);
        vc_event_free(&ev);
    } else {
        cr_assert_null(ev.viewers, "error left viewers behind");
    }
    return rc;
}

/* --- validation --- */

Test(validate, good_events)
{
    vc_event ev = join_event();
    cr_assert_eq(vc_event_validate(&ev, NULL, 0), VC_CODEC_OK);
    ev.user_id = 0; /* anonymous */
    cr_assert_eq(vc_event_validate(&ev, NULL, 0), VC_CODEC_OK);
    ev = leave_event();
    cr_assert_eq(vc_event_validate(&ev, NULL, 0), VC_CODEC_OK);
    ev = heartbeat_event();
    cr_assert_eq(vc_event_validate(&ev, NULL, 0), VC_CODEC_OK);
    ev = sync_event(3);
    cr_assert_eq(vc_event_validate(&ev, NULL, 0), VC_CODEC_OK);
    vc_event_free(&ev);
    ev = sync_event(0);
    cr_assert_eq(vc_event_validate(&ev, NULL, 0), VC_CODEC_OK);
}

#define EXPECT_INVALID(ev, needle)                                                                                 \
    do {                                                                                                           \
        char e_[256] = "";                                                                                         \
        cr_assert_eq(vc_event_validate(&(ev), e_, sizeof e_), VC_CODEC_ERR_INVALID, "accepted: %s", needle);      \
        cr_assert(strstr(e_, needle), "reason \"%s\" lacks \"%s\"", e_, needle);                                   \
    } while (0)

Test(validate, bad_values)
{
    vc_event ev;

    ev = join_event(); ev.stream_id = 0; EXPECT_INVALID(ev, "stream_id");
    ev = join_event(); ev.stream_id = -5; EXPECT_INVALID(ev, "stream_id");
    ev = heartbeat_event(); ev.stream_id = -1; EXPECT_INVALID(ev, "stream_id");
    ev = join_event(); ev.user_id = -1; EXPECT_INVALID(ev, "user_id");
    ev = join_event(); ev.conn_id = 0; EXPECT_INVALID(ev, "conn_id");
    ev = leave_event(); ev.conn_id = 0; EXPECT_INVALID(ev, "conn_id");
    ev = heartbeat_event(); ev.conn_id = 3; EXPECT_INVALID(ev, "conn_id");
    ev = heartbeat_event(); ev.user_id = 3; EXPECT_INVALID(ev, "user_id");
    ev = join_event(); ev.gateway_id[0] = '\0'; EXPECT_INVALID(ev, "gateway_id");
    ev = join_event(); memset(ev.gateway_id, 'a', sizeof ev.gateway_id); EXPECT_INVALID(ev, "gateway_id");
    ev = join_event(); snprintf(ev.gateway_id, sizeof ev.gateway_id, "%s", "gw\n1"); EXPECT_INVALID(ev, "gateway_id");
    ev = join_event(); snprintf(ev.gateway_id, sizeof ev.gateway_id, "%s", "gw\xff"); EXPECT_INVALID(ev, "gateway_id");
    ev = join_event(); snprintf(ev.gateway_id, sizeof ev.gateway_id, "%s", "gw\xc3"); EXPECT_INVALID(ev, "gateway_id"); /* cut sequence */
    ev = join_event(); snprintf(ev.gateway_id, sizeof ev.gateway_id, "%s", "\xc0\xaf"); EXPECT_INVALID(ev, "gateway_id"); /* overlong */
    ev = join_event(); snprintf(ev.gateway_id, sizeof ev.gateway_id, "%s", "\xed\xa0\x80"); EXPECT_INVALID(ev, "gateway_id"); /* surrogate */
    ev = join_event(); ev.gateway_epoch = 0; EXPECT_INVALID(ev, "gateway_epoch");
    ev = join_event(); ev.seq = -1; EXPECT_INVALID(ev, "seq");
    ev = join_event(); ev.ts_ms = 0; EXPECT_INVALID(ev, "ts_ms");
    ev = join_event(); ev.type = (vc_event_type)7; EXPECT_INVALID(ev, "type");
    ev = join_event(); ev.reason = VC_LEAVE_CLIENT_CLOSED; EXPECT_INVALID(ev, "reason");
    ev = leave_event(); ev.reason = VC_LEAVE_NONE; EXPECT_INVALID(ev, "reason");
    ev = leave_event(); ev.reason = (vc_leave_reason)9; EXPECT_INVALID(ev, "reason");
    ev = join_event(); ev.chunks = 1; EXPECT_INVALID(ev, "sync");
    ev = join_event(); ev.nviewers = 1; EXPECT_INVALID(ev, "sync");
    ev = sync_event(0); ev.chunks = 0; ev.chunk = 0; EXPECT_INVALID(ev, "chunks");
    ev = sync_event(0); ev.chunk = 3; EXPECT_INVALID(ev, "chunk");
    ev = sync_event(0); ev.chunk = -1; EXPECT_INVALID(ev, "chunk");
    ev = sync_event(0); ev.stream_id = 0; EXPECT_INVALID(ev, "stream_id");
    ev = sync_event(0); ev.snapshot_id = -1; EXPECT_INVALID(ev, "snapshot_id");
    ev = sync_event(0); ev.nviewers = 2; EXPECT_INVALID(ev, "viewers");
    ev = sync_event(2); ev.viewers[1].conn_id = 0; EXPECT_INVALID(ev, "conn_id"); vc_event_free(&ev);
    ev = sync_event(2); ev.viewers[0].user_id = -4; EXPECT_INVALID(ev, "user_id"); vc_event_free(&ev);
    ev = sync_event(2); ev.viewers[0].joined_ms = 0; EXPECT_INVALID(ev, "joined_ms"); vc_event_free(&ev);
    ev = sync_event(VC_SYNC_VIEWERS_MAX + 1); EXPECT_INVALID(ev, "viewers"); vc_event_free(&ev);
}

Test(validate, gateway_id_utf8_and_max_length)
{
    vc_event ev = join_event();
    snprintf(ev.gateway_id, sizeof ev.gateway_id, "%s", "gw-\xc3\xa9t\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x98\x80");
    cr_assert_eq(vc_event_validate(&ev, NULL, 0), VC_CODEC_OK);
    memset(ev.gateway_id, 'g', VC_GATEWAY_ID_MAX);
    ev.gateway_id[VC_GATEWAY_ID_MAX] = '\0';
    cr_assert_eq(vc_event_validate(&ev, NULL, 0), VC_CODEC_OK);
    round_trip(&ev);
}

/* --- round trips --- */

Test(codec, round_trip_every_type)
{
    vc_event ev = join_event();
    round_trip(&ev);
    ev.user_id = 0;
    round_trip(&ev);
    ev.user_id = INT64_MAX;
    ev.conn_id = INT64_MAX;
    ev.seq = 0;
    round_trip(&ev);
    ev = leave_event();
    for (int r = VC_LEAVE_CLIENT_CLOSED; r <= VC_LEAVE_REJECTED; r++) {
        ev.reason = (vc_leave_reason)r;
        round_trip(&ev);
    }
    ev = heartbeat_event();
    round_trip(&ev);
    ev.stream_id = 5;
    round_trip(&ev);
    ev = sync_event(0);
    round_trip(&ev);
    ev = sync_event(1);
    round_trip(&ev);
    vc_event_free(&ev);
}

Test(codec, round_trip_largest_sync_chunk)
{
    vc_event ev = sync_event(VC_SYNC_VIEWERS_MAX);
    for (size_t i = 0; i < ev.nviewers; i++) {
        ev.viewers[i].conn_id = INT64_MAX - (int64_t)i;
        ev.viewers[i].user_id = i % 2 ? INT64_MAX - (int64_t)i : 0;
        ev.viewers[i].joined_ms = INT64_MAX - (int64_t)i;
    }
    ev.snapshot_id = INT64_MAX;
    ev.chunk = INT32_MAX - 1;
    ev.chunks = INT32_MAX;
    ev.seq = INT64_MAX;
    ev.ts_ms = INT64_MAX;
    ev.gateway_epoch = INT64_MAX;
    memset(ev.gateway_id, 'z', VC_GATEWAY_ID_MAX);
    ev.gateway_id[VC_GATEWAY_ID_MAX] = '\0';
    size_t len = encode_ok(&ev);
    cr_assert_leq(len, VC_EVENT_ENCODED_MAX);
    round_trip(&ev);
    vc_event_free(&ev);
}

/* The exact bytes, worked out by hand from the Avro specification. */
Test(codec, join_bytes)
{
    vc_event ev;
    vc_event_init(&ev);
    ev.type = VC_EV_JOIN;
    ev.stream_id = 1;
    ev.user_id = 2;
    ev.conn_id = 3;
    snprintf(ev.gateway_id, sizeof ev.gateway_id, "%s", "g");
    ev.gateway_epoch = 64;
    ev.seq = 0;
    ev.ts_ms = 1;
    static const uint8_t body[] = {
        0x00,             /* type JOIN */
        0x02,             /* stream_id 1 */
        0x02, 0x04,       /* user_id: branch long, 2 */
        0x06,             /* conn_id 3 */
        0x02, 'g',        /* gateway_id */
        0x80, 0x01,       /* gateway_epoch 64 */
        0x00,             /* seq */
        0x02,             /* ts_ms 1 */
        0x00,             /* reason null */
        0x00,             /* sync null */
    };
    size_t len = encode_ok(&ev);
    uint64_t fp = vc_schema_fingerprint();
    cr_assert_eq(len, 10 + sizeof body);
    cr_assert_eq(buf[0], 0xC3);
    cr_assert_eq(buf[1], 0x01);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(buf[2 + i], (uint8_t)(fp >> (8 * i)), "fingerprint byte %d", i);
    cr_assert_arr_eq(buf + 10, body, sizeof body);
}

/* avro-c's own encoder writes the same body for the same datum. */
static void avro_c_body(const vc_event *ev, char *out, size_t size, size_t *len)
{
    avro_schema_t schema;
    const char *json = vc_schema_json();
    cr_assert_eq(avro_schema_from_json_length(json, strlen(json), &schema), 0, "%s", avro_strerror());
    avro_value_iface_t *cls = avro_generic_class_from_schema(schema);
    avro_value_t rec, f, br, sync, arr, item;
    cr_assert_eq(avro_generic_value_new(cls, &rec), 0);

    avro_value_get_by_name(&rec, "type", &f, NULL);
    avro_value_set_enum(&f, (int)ev->type);
    avro_value_get_by_name(&rec, "stream_id", &f, NULL);
    avro_value_set_long(&f, ev->stream_id);
    avro_value_get_by_name(&rec, "user_id", &f, NULL);
    avro_value_set_branch(&f, ev->user_id ? 1 : 0, &br);
    if (ev->user_id)
        avro_value_set_long(&br, ev->user_id);
    else
        avro_value_set_null(&br);
    avro_value_get_by_name(&rec, "conn_id", &f, NULL);
    avro_value_set_long(&f, ev->conn_id);
    avro_value_get_by_name(&rec, "gateway_id", &f, NULL);
    avro_value_set_string(&f, ev->gateway_id);
    avro_value_get_by_name(&rec, "gateway_epoch", &f, NULL);
    avro_value_set_long(&f, ev->gateway_epoch);
    avro_value_get_by_name(&rec, "seq", &f, NULL);
    avro_value_set_long(&f, ev->seq);
    avro_value_get_by_name(&rec, "ts_ms", &f, NULL);
    avro_value_set_long(&f, ev->ts_ms);
    avro_value_get_by_name(&rec, "reason", &f, NULL);
    if (ev->reason == VC_LEAVE_NONE) {
        avro_value_set_branch(&f, 0, &br);
        avro_value_set_null(&br);
    } else {
        avro_value_set_branch(&f, 1, &br);
        avro_value_set_enum(&br, (int)ev->reason);
    }
    avro_value_get_by_name(&rec, "sync", &f, NULL);
    if (ev->type != VC_EV_SYNC) {
        avro_value_set_branch(&f, 0, &br);
        avro_value_set_null(&br);
    } else {
        avro_value_set_branch(&f, 1, &sync);
        avro_value_get_by_name(&sync, "snapshot_id", &br, NULL);
        avro_value_set_long(&br, ev->snapshot_id);
        avro_value_get_by_name(&sync, "chunk", &br, NULL);
        avro_value_set_int(&br, ev->chunk);
        avro_value_get_by_name(&sync, "chunks", &br, NULL);
        avro_value_set_int(&br, ev->chunks);
        avro_value_get_by_name(&sync, "viewers", &arr, NULL);
        for (size_t i = 0; i < ev->nviewers; i++) {
            avro_value_t v, u;
            avro_value_append(&arr, &item, NULL);
            avro_value_get_by_name(&item, "conn_id", &v, NULL);
            avro_value_set_long(&v, ev->viewers[i].conn_id);
            avro_value_get_by_name(&item, "user_id", &v, NULL);
            avro_value_set_branch(&v, ev->viewers[i].user_id ? 1 : 0, &u);
            if (ev->viewers[i].user_id)
                avro_value_set_long(&u, ev->viewers[i].user_id);
            else
                avro_value_set_null(&u);
            avro_value_get_by_name(&item, "joined_ms", &v, NULL);
            avro_value_set_long(&v, ev->viewers[i].joined_ms);
        }
    }
    avro_writer_t w = avro_writer_memory(out, (int64_t)size);
    cr_assert_eq(avro_value_write(w, &rec), 0, "%s", avro_strerror());
    *len = (size_t)avro_writer_tell(w);
    avro_writer_free(w);
    avro_value_decref(&rec);
    avro_value_iface_decref(cls);
    avro_schema_decref(schema);
}

static void assert_same_as_avro_c(const vc_event *ev)
{
    static char ref[VC_EVENT_ENCODED_MAX];
    size_t ref_len = 0;
    size_t len = encode_ok(ev);
    avro_c_body(ev, ref, sizeof ref, &ref_len);
    cr_assert_eq(len - 10, ref_len, "body length %zu, avro-c %zu", len - 10, ref_len);
    cr_assert_arr_eq(buf + 10, ref, ref_len);
}

Test(codec, byte_identical_to_avro_c)
{
    vc_event ev = join_event();
    assert_same_as_avro_c(&ev);
    ev.user_id = 0;
    assert_same_as_avro_c(&ev);
    ev = leave_event();
    assert_same_as_avro_c(&ev);
    ev = heartbeat_event();
    assert_same_as_avro_c(&ev);
    ev = sync_event(0);
    assert_same_as_avro_c(&ev);
    ev = sync_event(VC_SYNC_VIEWERS_MAX);
    assert_same_as_avro_c(&ev);
    vc_event_free(&ev);
}

Test(codec, encode_into_too_small_buffer)
{
    vc_event ev = sync_event(5);
    size_t full = encode_ok(&ev);
    uint8_t *small = malloc(full + 16);

    for (size_t size = 0; size < full; size++) {
        size_t len = 12345;
        memset(small, 0xAA, full + 16);
        cr_assert_eq(vc_event_encode(&ev, small, size, &len), VC_CODEC_ERR_NOSPACE, "size %zu", size);
        cr_assert_eq(len, 12345, "len set on failure");
        for (size_t i = size; i < full + 16; i++)
            cr_assert_eq(small[i], 0xAA, "byte %zu written with a buffer of %zu", i, size);
    }
    size_t len = 0;
    cr_assert_eq(vc_event_encode(&ev, small, full, &len), VC_CODEC_OK);
    cr_assert_eq(len, full);
    free(small);
    vc_event_free(&ev);
}

Test(codec, encode_refuses_invalid)
{
    vc_event ev = join_event();
    size_t len;
    ev.conn_id = 0;
    cr_assert_eq(vc_event_encode(&ev, buf, sizeof buf, &len), VC_CODEC_ERR_INVALID);
}

/* --- decoding errors --- */

Test(decode, bad_magic)
{
    char err[256];
    vc_event ev = join_event();
    size_t len = encode_ok(&ev);
    vc_event out;
    vc_event_init(&out);
    buf[0] = 0xC4;
    cr_assert_eq(vc_event_decode(buf, len, &out, err, sizeof err), VC_CODEC_ERR_MAGIC);
    buf[0] = 0xC3;
    buf[1] = 0x02;
    cr_assert_eq(vc_event_decode(buf, len, &out, err, sizeof err), VC_CODEC_ERR_MAGIC);
    /* A data file, JSON, nothing. */
    cr_assert_eq(vc_event_decode((const uint8_t *)"Obj\x01", 4, &out, err, sizeof err), VC_CODEC_ERR_MAGIC);
    cr_assert_eq(vc_event_decode((const uint8_t *)"{}", 2, &out, err, sizeof err), VC_CODEC_ERR_MAGIC);
    cr_assert_eq(vc_event_decode(buf, 0, &out, err, sizeof err), VC_CODEC_ERR_TRUNCATED);
}

Test(decode, unknown_fingerprint)
{
    char err[256] = "";
    vc_event ev = join_event();
    size_t len = encode_ok(&ev);
    vc_event out;
    vc_event_init(&out);
    buf[5] ^= 0x40;
    cr_assert_eq(vc_event_decode(buf, len, &out, err, sizeof err), VC_CODEC_ERR_FINGERPRINT);
    cr_assert(strstr(err, "fingerprint"), "%s", err);
}

Test(decode, truncated_at_every_byte)
{
    vc_event evs[4] = {join_event(), leave_event(), heartbeat_event(), sync_event(7)};
    for (int k = 0; k < 4; k++) {
        size_t len = encode_ok(&evs[k]);
        uint8_t *copy = malloc(len);
        memcpy(copy, buf, len);
        for (size_t cut = 0; cut < len; cut++) {
            /* An exact-size heap copy, so ASan catches any read past the end. */
            uint8_t *part = malloc(cut ? cut : 1);
            memcpy(part, copy, cut);
            vc_event out;
            vc_event_init(&out);
            vc_codec_rc rc = vc_event_decode(part, cut, &out, NULL, 0);
            cr_assert_eq(rc, VC_CODEC_ERR_TRUNCATED, "%s cut at %zu of %zu: %s", vc_event_type_name(evs[k].type),
                         cut, len, vc_codec_strerror(rc));
            cr_assert_null(out.viewers);
            free(part);
        }
        vc_event out;
        vc_event_init(&out);
        cr_assert_eq(vc_event_decode(copy, len, &out, NULL, 0), VC_CODEC_OK);
        vc_event_free(&out);
        free(copy);
    }
    vc_event_free(&evs[3]);
}

Test(decode, trailing_bytes)
{
    vc_event ev = join_event();
    size_t len = encode_ok(&ev);
    vc_event out;
    vc_event_init(&out);
    buf[len] = 0;
    cr_assert_eq(vc_event_decode(buf, len + 1, &out, NULL, 0), VC_CODEC_ERR_MALFORMED);
}

Test(decode, hand_built_join_decodes)
{
    msg m;
    char err[256] = "";
    msg_join_head(&m, 0, 1);
    msg_long(&m, 0);
    msg_long(&m, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_OK, "%s", err);
}

Test(decode, bad_union_index)
{
    msg m;
    char err[256] = "";
    msg_join_head(&m, 0, 2); /* user_id branch 2 of ["null","long"] */
    msg_long(&m, 0);
    msg_long(&m, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_MALFORMED);
    cr_assert(strstr(err, "union"), "%s", err);
    msg_join_head(&m, 0, -1);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_MALFORMED);
    msg_join_head(&m, 0, 1);
    msg_long(&m, 5); /* reason branch 5 */
    msg_long(&m, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_MALFORMED);
    msg_join_head(&m, 0, 1);
    msg_long(&m, 0);
    msg_long(&m, 2); /* sync branch 2 */
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_MALFORMED);
}

Test(decode, bad_enum)
{
    msg m;
    char err[256] = "";
    msg_join_head(&m, 4, 1); /* type symbol 4 of 4 */
    msg_long(&m, 0);
    msg_long(&m, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_MALFORMED);
    cr_assert(strstr(err, "type"), "%s", err);
    msg_join_head(&m, -1, 1);
    msg_long(&m, 0);
    msg_long(&m, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_MALFORMED);
    msg_join_head(&m, 1, 1); /* LEAVE with reason symbol 4 */
    msg_long(&m, 1);
    msg_long(&m, 4);
    msg_long(&m, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_MALFORMED);
    cr_assert(strstr(err, "reason"), "%s", err);
}

Test(decode, varint_overflow)
{
    msg m;
    char err[256] = "";
    msg_header(&m);
    m.b[m.n++] = 0x00; /* type */
    for (int i = 0; i < 10; i++)
        m.b[m.n++] = 0xff; /* stream_id: 10 bytes, all with the continuation bit */
    m.b[m.n++] = 0x01;
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_MALFORMED);
    cr_assert(strstr(err, "overflow"), "%s", err);

    /* The tenth byte may carry only one bit. */
    msg_header(&m);
    m.b[m.n++] = 0x00;
    for (int i = 0; i < 9; i++)
        m.b[m.n++] = 0xff;
    m.b[m.n++] = 0x02;
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_MALFORMED);

    /* An int (the enum index) has at most five bytes. */
    msg_header(&m);
    for (int i = 0; i < 5; i++)
        m.b[m.n++] = 0x80;
    m.b[m.n++] = 0x00;
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_MALFORMED);
}

Test(decode, negative_string_length)
{
    msg m;
    char err[256] = "";
    msg_header(&m);
    msg_long(&m, 0);
    msg_long(&m, 10);
    msg_long(&m, 0);
    msg_long(&m, 20);
    msg_long(&m, -3); /* gateway_id length */
    msg_long(&m, 1000);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_MALFORMED);
    cr_assert(strstr(err, "negative"), "%s", err);
}

Test(decode, overlong_gateway_id)
{
    msg m;
    char err[256] = "";
    char gid[VC_GATEWAY_ID_MAX + 2];
    memset(gid, 'g', VC_GATEWAY_ID_MAX + 1);
    gid[VC_GATEWAY_ID_MAX + 1] = '\0';
    msg_header(&m);
    msg_long(&m, 0);
    msg_long(&m, 10);
    msg_long(&m, 0);
    msg_long(&m, 20);
    msg_str(&m, gid);
    msg_long(&m, 1000);
    msg_long(&m, 1);
    msg_long(&m, 2000);
    msg_long(&m, 0);
    msg_long(&m, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_INVALID);
    cr_assert(strstr(err, "gateway_id"), "%s", err);
    /* A length far past the message. */
    msg_header(&m);
    msg_long(&m, 0);
    msg_long(&m, 10);
    msg_long(&m, 0);
    msg_long(&m, 20);
    msg_long(&m, 40);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_TRUNCATED);
}

Test(decode, gateway_id_with_nul_or_control)
{
    msg m;
    char err[256] = "";
    msg_header(&m);
    msg_long(&m, 0);
    msg_long(&m, 10);
    msg_long(&m, 0);
    msg_long(&m, 20);
    msg_long(&m, 3);
    memcpy(m.b + m.n, "g\0w", 3);
    m.n += 3;
    msg_long(&m, 1000);
    msg_long(&m, 1);
    msg_long(&m, 2000);
    msg_long(&m, 0);
    msg_long(&m, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_INVALID);
}

/* The head of a SYNC (stream 10, no user, no conn) up to the viewers array. */
static void msg_sync_head(msg *m)
{
    msg_header(m);
    msg_long(m, 3);
    msg_long(m, 10);
    msg_long(m, 0);
    msg_long(m, 0);
    msg_str(m, "gw");
    msg_long(m, 1000);
    msg_long(m, 1);
    msg_long(m, 2000);
    msg_long(m, 0);   /* reason null */
    msg_long(m, 1);   /* sync present */
    msg_long(m, 7);   /* snapshot_id */
    msg_long(m, 0);   /* chunk */
    msg_long(m, 1);   /* chunks */
}

static void msg_viewer(msg *m, int64_t conn, int64_t user)
{
    msg_long(m, conn);
    if (user) {
        msg_long(m, 1);
        msg_long(m, user);
    } else {
        msg_long(m, 0);
    }
    msg_long(m, 1500);
}

/* Writers may split arrays into blocks, with negative counts and a byte size. */
Test(decode, sync_viewers_in_blocks)
{
    msg m;
    char err[256] = "";
    vc_event ev;
    msg_sync_head(&m);
    msg_long(&m, 2);
    msg_viewer(&m, 1, 0);
    msg_viewer(&m, 2, 9);
    msg_long(&m, -1); /* one item, byte size follows */
    msg_long(&m, 3);
    msg_viewer(&m, 3, 0);
    msg_long(&m, 0);
    vc_event_init(&ev);
    cr_assert_eq(vc_event_decode(m.b, m.n, &ev, err, sizeof err), VC_CODEC_OK, "%s", err);
    cr_assert_eq(ev.nviewers, 3);
    cr_assert_eq(ev.viewers[0].conn_id, 1);
    cr_assert_eq(ev.viewers[1].user_id, 9);
    cr_assert_eq(ev.viewers[2].conn_id, 3);
    cr_assert_eq(ev.viewers[2].joined_ms, 1500);
    vc_event_free(&ev);

    /* A negative block size is garbage. */
    msg_sync_head(&m);
    msg_long(&m, -1);
    msg_long(&m, -3);
    msg_viewer(&m, 3, 0);
    msg_long(&m, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_MALFORMED);
    /* INT64_MIN as a block count cannot be negated. */
    msg_sync_head(&m);
    msg_long(&m, INT64_MIN);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_MALFORMED);
}

Test(decode, too_many_viewers)
{
    msg m;
    char err[256] = "";
    msg_sync_head(&m);
    msg_long(&m, VC_SYNC_VIEWERS_MAX + 1);
    msg_viewer(&m, 1, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_INVALID);
    cr_assert(strstr(err, "viewers"), "%s", err);
    /* A huge count in small blocks is caught by the running total too. */
    msg_sync_head(&m);
    msg_long(&m, INT64_MAX);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_INVALID);
    msg_sync_head(&m);
    msg_long(&m, -(int64_t)VC_SYNC_VIEWERS_MAX);
    msg_long(&m, 1);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_TRUNCATED);
}

Test(decode, contract_violations_are_invalid)
{
    msg m;
    char err[256] = "";
    /* A JOIN whose conn_id is 0. */
    msg_header(&m);
    msg_long(&m, 0);
    msg_long(&m, 10);
    msg_long(&m, 0);
    msg_long(&m, 0);
    msg_str(&m, "gw");
    msg_long(&m, 1000);
    msg_long(&m, 1);
    msg_long(&m, 2000);
    msg_long(&m, 0);
    msg_long(&m, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_INVALID);
    cr_assert(strstr(err, "conn_id"), "%s", err);
    /* A present user_id of 0 (0 is written as null). */
    msg_header(&m);
    msg_long(&m, 0);
    msg_long(&m, 10);
    msg_long(&m, 1);
    msg_long(&m, 0);
    msg_long(&m, 20);
    msg_str(&m, "gw");
    msg_long(&m, 1000);
    msg_long(&m, 1);
    msg_long(&m, 2000);
    msg_long(&m, 0);
    msg_long(&m, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_INVALID);
    /* A LEAVE without a reason. */
    msg_join_head(&m, 1, 1);
    msg_long(&m, 0);
    msg_long(&m, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_INVALID);
    /* A JOIN with a reason. */
    msg_join_head(&m, 0, 1);
    msg_long(&m, 1);
    msg_long(&m, 0);
    msg_long(&m, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_INVALID);
    /* A SYNC without its chunk, a JOIN with one. */
    msg_sync_head(&m);
    m.n -= 4; /* back to the sync branch: it, snapshot 7, chunk 0 and chunks 1 take a byte each */
    msg_long(&m, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_INVALID);
    cr_assert(strstr(err, "SYNC"), "%s", err);
    msg_join_head(&m, 0, 1);
    msg_long(&m, 0);
    msg_long(&m, 1);
    msg_long(&m, 7);
    msg_long(&m, 0);
    msg_long(&m, 1);
    msg_long(&m, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_INVALID);
    cr_assert(strstr(err, "sync"), "%s", err);
    /* A SYNC with chunk >= chunks. */
    msg_sync_head(&m);
    m.b[m.n - 2] = 0x04; /* chunk 2 of 1 */
    msg_long(&m, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_INVALID);
    cr_assert(strstr(err, "chunk"), "%s", err);
    /* A sync viewer without conn_id. */
    msg_sync_head(&m);
    msg_long(&m, 1);
    msg_viewer(&m, 0, 0);
    msg_long(&m, 0);
    cr_assert_eq(decode_msg(&m, err, sizeof err), VC_CODEC_ERR_INVALID);
}

Test(decode, reuses_event_without_leaking)
{
    vc_event ev = sync_event(10);
    vc_event out;
    vc_event_init(&out);
    size_t len = encode_ok(&ev);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(vc_event_decode(buf, len, &out, NULL, 0), VC_CODEC_OK);
    cr_assert_eq(out.nviewers, 10);
    buf[0] = 0;
    cr_assert_eq(vc_event_decode(buf, len, &out, NULL, 0), VC_CODEC_ERR_MAGIC);
    cr_assert_null(out.viewers);
    cr_assert_eq(out.nviewers, 0);
    vc_event_free(&out);
    vc_event_free(&ev);
}

Test(decode, strerror_names_every_code)
{
    for (int rc = VC_CODEC_OK; rc <= VC_CODEC_ERR_NOSPACE; rc++)
        cr_assert_str_neq(vc_codec_strerror((vc_codec_rc)rc), "unknown codec result");
    cr_assert_str_eq(vc_event_type_name(VC_EV_SYNC), "SYNC");
    cr_assert_str_eq(vc_leave_reason_name(VC_LEAVE_REJECTED), "REJECTED");
}

/* --- Parsing Canonical Form and CRC-64-AVRO --- */

#include "vc_avro_internal.h"

/* From the Avro project's share/test/data/schema-tests.txt (input, canonical
 * form, fingerprint as Java's signed long; 0 where the file gives none). */
static const struct {
    const char *input, *canonical;
    int64_t fingerprint;
} spec_vectors[] = {
    {"\"null\"", "\"null\"", 7195948357588979594},
    {"{\"type\":\"null\"}", "\"null\"", 7195948357588979594},
    {"\"boolean\"", "\"boolean\"", -6970731678124411036},
    {"\"int\"", "\"int\"", 8247732601305521295},
    {"{\"type\":\"int\"}", "\"int\"", 8247732601305521295},
    {"\"long\"", "\"long\"", -3434872931120570953},
    {"\"float\"", "\"float\"", 5583340709985441680},
    {"\"double\"", "\"double\"", -8181574048448539266},
    {"\"bytes\"", "\"bytes\"", 5746618253357095269},
    {"\"string\"", "\"string\"", -8142146995180207161},
    {"[  ]", "[]", -1241056759729112623},
    {"[ \"int\"  ]", "[\"int\"]", -5232228896498058493},
    {"[ \"int\" , {\"type\":\"boolean\"} ]", "[\"int\",\"boolean\"]", 5392556393470105090},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\"}", "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}",
     -4824392279771201922},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"namespace\":\"x.y\"}",
     "{\"name\":\"x.y.foo\",\"type\":\"record\",\"fields\":[]}", 5916914534497305771},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"a.b.foo\", \"namespace\":\"x.y\"}",
     "{\"name\":\"a.b.foo\",\"type\":\"record\",\"fields\":[]}", -4616218487480524110},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"Useful info\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", -4824392279771201922},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"foo\", \"aliases\":[\"foo\",\"bar\"]}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", -4824392279771201922},
    {"{\"fields\":[{\"type\":{\"type\":\"boolean\"}, \"name\":\"f1\"}], \"type\":\"record\", \"name\":\"foo\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"}]}",
     7843277075252814651},
    {"{ \"fields\":[{\"type\":\"boolean\", \"aliases\":[], \"name\":\"f1\", \"default\":\"true\"},\n"
     "  {\"order\":\"descending\",\"name\":\"f2\",\"doc\":\"Hello\",\"type\":\"int\"}],\n"
     "  \"type\":\"record\", \"name\":\"foo\"\n}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"},{\"name\":\"f2\","
     "\"type\":\"int\"}]}",
     -4860222112080293046},
    {"{\"type\":\"enum\", \"name\":\"foo\", \"symbols\":[\"A1\"]}",
     "{\"name\":\"foo\",\"type\":\"enum\",\"symbols\":[\"A1\"]}", -6342190197741309591},
    {"{\"namespace\":\"x.y.z\", \"type\":\"enum\", \"name\":\"foo\", \"doc\":\"foo bar\", \"symbols\":[\"A1\", \"A2\"]}",
     "{\"name\":\"x.y.z.foo\",\"type\":\"enum\",\"symbols\":[\"A1\",\"A2\"]}", -4448647247586288245},
    {"{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}", "{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}",
     1756455273707447556},
    {"{\"namespace\":\"x.y.z\", \"type\":\"fixed\", \"name\":\"foo\", \"doc\":\"foo bar\", \"size\":32}",
     "{\"name\":\"x.y.z.foo\",\"type\":\"fixed\",\"size\":32}", -3064184465700546786},
    {"{ \"items\":{\"type\":\"null\"}, \"type\":\"array\"}", "{\"type\":\"array\",\"items\":\"null\"}",
     -589620603366471059},
    {"{ \"values\":\"string\", \"type\":\"map\"}", "{\"type\":\"map\",\"values\":\"string\"}", -8732877298790414990},
    {"{\"name\":\"PigValue\",\"type\":\"record\",\n"
     " \"fields\":[{\"name\":\"value\", \"type\":[\"null\", \"int\", \"long\", \"PigValue\"]}]}",
     "{\"name\":\"PigValue\",\"type\":\"record\",\"fields\":[{\"name\":\"value\",\"type\":[\"null\",\"int\","
     "\"long\",\"PigValue\"]}]}",
     -1759257747318642341},
};

Test(fingerprint, avro_specification_vectors)
{
    for (size_t i = 0; i < sizeof spec_vectors / sizeof spec_vectors[0]; i++) {
        char err[256] = "";
        uint64_t fp = 0;
        char *pcf = vc_schema_canonical_form(spec_vectors[i].input, err, sizeof err);
        cr_assert_not_null(pcf, "vector %zu: %s", i, err);
        cr_assert_str_eq(pcf, spec_vectors[i].canonical, "vector %zu", i);
        free(pcf);
        cr_assert_eq(vc_schema_fingerprint_of(spec_vectors[i].input, &fp, err, sizeof err), 0, "%s", err);
        cr_assert_eq((int64_t)fp, spec_vectors[i].fingerprint, "vector %zu: %016llx", i, (unsigned long long)fp);
    }
}

Test(fingerprint, crc64_avro_of_nothing_is_the_empty_value)
{
    cr_assert_eq(vc_crc64_avro("", 0), 0xc15d213aa4d7a795ull);
}

Test(fingerprint, current_schema)
{
    uint64_t fp = 0;
    char *pcf = vc_schema_canonical_form(vc_schema_json(), NULL, 0);
    cr_assert_not_null(pcf);
    /* Full names, no doc/default/logicalType, no whitespace. */
    cr_assert(strncmp(pcf, "{\"name\":\"vc.events.ViewerEvent\",\"type\":\"record\",\"fields\":[{\"name\":\"type\","
                           "\"type\":{\"name\":\"vc.events.EventType\",\"type\":\"enum\"", 113) == 0, "%s", pcf);
    cr_assert_null(strstr(pcf, "doc"));
    cr_assert_null(strstr(pcf, "default"));
    cr_assert_null(strstr(pcf, "logicalType"));
    cr_assert_null(strchr(pcf, ' '));
    cr_assert_not_null(strstr(pcf, "\"vc.events.SyncViewer\""));
    cr_assert_eq(vc_schema_fingerprint(), vc_crc64_avro(pcf, strlen(pcf)));
    free(pcf);
    cr_assert_eq(vc_schema_fingerprint_of(vc_schema_json(), &fp, NULL, 0), 0);
    cr_assert_eq(fp, vc_schema_fingerprint());
}

Test(fingerprint, bad_schemas_fail)
{
    char err[256];
    uint64_t fp;
    const char *bad[] = {"", "{", "42", "null", "{\"type\":\"record\",\"fields\":[]}", "{\"type\":\"enum\",\"name\":\"e\"}",
                         "{\"type\":\"array\"}", "\"no-such name\"", "{\"type\":\"fixed\",\"name\":\"f\",\"size\":-1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        cr_assert_eq(vc_schema_fingerprint_of(bad[i], &fp, err, sizeof err), -1, "accepted %s", bad[i]);
        cr_assert_neq(err[0], '\0');
    }
}
