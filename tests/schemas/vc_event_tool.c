/* vc_event_tool -- the event codec on the command line, for the interop tests
 * and the fuzz seed corpus.
 *
 *   vc_event_tool encode [--binary]     JSON events (one per line) -> hex lines,
 *                                       or with --binary one event -> raw bytes
 *   vc_event_tool decode [--binary] [--register SCHEMA.avsc]...
 *                                       hex lines -> JSON lines, or with --binary
 *                                       all of stdin as one message
 *   vc_event_tool fingerprint [SCHEMA.avsc]   CRC-64-AVRO, 16 hex digits
 *   vc_event_tool canonical [SCHEMA.avsc]     Parsing Canonical Form
 *
 * The JSON shape is the Avro datum (what python3-avro reads and writes):
 * {"type":"JOIN","stream_id":1,"user_id":null,...,"reason":null,"sync":null}.
 * A message that does not decode prints {"error":"<code>","message":"..."}. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vc_avro_internal.h"
#include "vc_event.h"

static const char *const rc_names[] = {"OK", "MAGIC", "FINGERPRINT", "TRUNCATED", "MALFORMED", "INVALID", "NOSPACE"};
static const char *const type_names[] = {"JOIN", "LEAVE", "HEARTBEAT", "SYNC"};
static const char *const reason_names[] = {"CLIENT_CLOSED", "HEARTBEAT_TIMEOUT", "GATEWAY_SHUTDOWN", "REJECTED"};

static int usage(void)
{
    fprintf(stderr, "usage: vc_event_tool encode [--binary] | decode [--binary] [--register SCHEMA]... |"
                    " fingerprint [SCHEMA] | canonical [SCHEMA]\n");
    return 64;
}

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;

    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *b = realloc(buf, cap * 2 + 1);
            if (!b) {
                free(buf);
                return NULL;
            }
            buf = b;
            cap *= 2;
        }
    }
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

static char *read_file(const char *path)
{
    size_t len;
    FILE *f = path ? fopen(path, "rb") : stdin;
    char *s;

    if (!f) {
        perror(path);
        return NULL;
    }
    s = read_all(f, &len);
    if (path)
        fclose(f);
    return s;
}

static int64_t opt_id(json_t *v)
{
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static int name_index(json_t *v, const char *const *names, int n)
{
    const char *s = json_string_value(v);
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* JSON datum -> event; viewers are malloc'd. Missing fields stay 0. */
static int event_from_json(json_t *j, vc_event *ev)
{
    json_t *sync = json_object_get(j, "sync");
    json_t *reason = json_object_get(j, "reason");
    const char *gid = json_string_value(json_object_get(j, "gateway_id"));

    vc_event_init(ev);
    ev->type = (vc_event_type)name_index(json_object_get(j, "type"), type_names, 4);
    ev->stream_id = opt_id(json_object_get(j, "stream_id"));
    ev->user_id = opt_id(json_object_get(j, "user_id"));
    ev->conn_id = opt_id(json_object_get(j, "conn_id"));
    if (gid)
        snprintf(ev->gateway_id, sizeof ev->gateway_id, "%s", gid);
    ev->gateway_epoch = opt_id(json_object_get(j, "gateway_epoch"));
    ev->seq = opt_id(json_object_get(j, "seq"));
    ev->ts_ms = opt_id(json_object_get(j, "ts_ms"));
    if (json_is_string(reason))
        ev->reason = (vc_leave_reason)name_index(reason, reason_names, 4);
    if (json_is_object(sync)) {
        json_t *viewers = json_object_get(sync, "viewers");
        ev->snapshot_id = opt_id(json_object_get(sync, "snapshot_id"));
        ev->chunk = (int32_t)opt_id(json_object_get(sync, "chunk"));
        ev->chunks = (int32_t)opt_id(json_object_get(sync, "chunks"));
        ev->nviewers = json_array_size(viewers);
        if (ev->nviewers) {
            ev->viewers = calloc(ev->nviewers, sizeof *ev->viewers);
            if (!ev->viewers)
                return -1;
        }
        for (size_t i = 0; i < ev->nviewers; i++) {
            json_t *v = json_array_get(viewers, i);
            ev->viewers[i].conn_id = opt_id(json_object_get(v, "conn_id"));
            ev->viewers[i].user_id = opt_id(json_object_get(v, "user_id"));
            ev->viewers[i].joined_ms = opt_id(json_object_get(v, "joined_ms"));
        }
    }
    return 0;
}

static json_t *json_opt_id(int64_t id)
{
    return id ? json_integer(id) : json_null();
}

static json_t *event_to_json(const vc_event *ev)
{
    json_t *j = json_object();
    json_object_set_new(j, "type", json_string(type_names[ev->type]));
    json_object_set_new(j, "stream_id", json_integer(ev->stream_id));
    json_object_set_new(j, "user_id", json_opt_id(ev->user_id));
    json_object_set_new(j, "conn_id", json_integer(ev->conn_id));
    json_object_set_new(j, "gateway_id", json_string(ev->gateway_id));
    json_object_set_new(j, "gateway_epoch", json_integer(ev->gateway_epoch));
    json_object_set_new(j, "seq", json_integer(ev->seq));
    json_object_set_new(j, "ts_ms", json_integer(ev->ts_ms));
    json_object_set_new(j, "reason",
                        ev->reason == VC_LEAVE_NONE ? json_null() : json_string(reason_names[ev->reason]));
    if (ev->type == VC_EV_SYNC) {
        json_t *sync = json_object(), *viewers = json_array();
        json_object_set_new(sync, "snapshot_id", json_integer(ev->snapshot_id));
        json_object_set_new(sync, "chunk", json_integer(ev->chunk));
        json_object_set_new(sync, "chunks", json_integer(ev->chunks));
        for (size_t i = 0; i < ev->nviewers; i++) {
            json_t *v = json_object();
            json_object_set_new(v, "conn_id", json_integer(ev->viewers[i].conn_id));
            json_object_set_new(v, "user_id", json_opt_id(ev->viewers[i].user_id));
            json_object_set_new(v, "joined_ms", json_integer(ev->viewers[i].joined_ms));
            json_array_append_new(viewers, v);
        }
        json_object_set_new(sync, "viewers", viewers);
        json_object_set_new(j, "sync", sync);
    } else {
        json_object_set_new(j, "sync", json_null());
    }
    return j;
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    puts(s ? s : "null");
    free(s);
    json_decref(j);
}

static void print_error(vc_codec_rc rc, const char *message)
{
    json_t *j = json_object();
    json_object_set_new(j, "error", json_string(rc_names[rc]));
    json_object_set_new(j, "message", json_string(message));
    print_json(j);
}

static int cmd_encode(int binary)
{
    static uint8_t out[VC_EVENT_ENCODED_MAX];
    char *line = NULL;
    size_t cap = 0;
    int status = 0;

    while (getline(&line, &cap, stdin) > 0) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        vc_event ev;
        size_t len;
        char err[256] = "";

        if (!j) {
            if (strspn(line, " \t\r\n") == strlen(line))
                continue;
            fprintf(stderr, "bad JSON: %s\n", jerr.text);
            status = 1;
            break;
        }
        if (event_from_json(j, &ev) != 0) {
            json_decref(j);
            status = 1;
            break;
        }
        json_decref(j);
        vc_codec_rc rc = vc_event_encode(&ev, out, sizeof out, &len);
        if (rc != VC_CODEC_OK) {
            vc_event_validate(&ev, err, sizeof err);
            print_error(rc, err);
            status = 2;
        } else if (binary) {
            fwrite(out, 1, len, stdout);
        } else {
            for (size_t i = 0; i < len; i++)
                printf("%02x", out[i]);
            putchar('\n');
        }
        vc_event_free(&ev);
        if (binary)
            break;
    }
    free(line);
    return status;
}

static int decode_one(const uint8_t *buf, size_t len)
{
    vc_event ev;
    char err[256] = "";

    vc_event_init(&ev);
    vc_codec_rc rc = vc_event_decode(buf, len, &ev, err, sizeof err);
    if (rc != VC_CODEC_OK) {
        print_error(rc, err);
        return 2;
    }
    print_json(event_to_json(&ev));
    vc_event_free(&ev);
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int cmd_decode(int binary)
{
    int status = 0;

    if (binary) {
        size_t len;
        char *buf = read_all(stdin, &len);
        if (!buf)
            return 1;
        /* An exact-size copy, so a sanitizer build catches any over-read. */
        uint8_t *msg = malloc(len ? len : 1);
        memcpy(msg, buf, len);
        free(buf);
        status = decode_one(msg, len);
        free(msg);
        return status;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n % 2) {
            fprintf(stderr, "odd number of hex digits\n");
            status = 1;
            break;
        }
        uint8_t *msg = malloc((size_t)n / 2 + 1);
        int ok = 1;
        for (ssize_t i = 0; i < n / 2; i++) {
            int hi = hexval(line[2 * i]), lo = hexval(line[2 * i + 1]);
            ok &= hi >= 0 && lo >= 0;
            msg[i] = (uint8_t)(hi << 4 | (lo & 0xf));
        }
        if (!ok) {
            fprintf(stderr, "not hex: %s\n", line);
            free(msg);
            status = 1;
            break;
        }
        if (decode_one(msg, (size_t)n / 2) != 0)
            status = 2;
        free(msg);
        fflush(stdout);
    }
    free(line);
    return status;
}

int main(int argc, char **argv)
{
    int binary = 0;

    if (argc < 2)
        return usage();
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--binary") == 0) {
            binary = 1;
        } else if (strcmp(argv[i], "--register") == 0 && i + 1 < argc) {
            char err[256] = "";
            char *json = read_file(argv[++i]);
            if (!json || vc_schema_register(json, err, sizeof err) != 0) {
                fprintf(stderr, "cannot register %s: %s\n", argv[i], err);
                free(json);
                return 1;
            }
            free(json);
        } else if (strcmp(argv[1], "fingerprint") != 0 && strcmp(argv[1], "canonical") != 0) {
            return usage();
        }
    }
    if (strcmp(argv[1], "encode") == 0)
        return cmd_encode(binary);
    if (strcmp(argv[1], "decode") == 0)
        return cmd_decode(binary);
    if (strcmp(argv[1], "fingerprint") == 0 || strcmp(argv[1], "canonical") == 0) {
        char err[256] = "";
        char *json = argc > 2 ? read_file(argv[2]) : strdup(vc_schema_json());
        char *pcf = json ? vc_schema_canonical_form(json, err, sizeof err) : NULL;
        free(json);
        if (!pcf) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        if (argv[1][0] == 'f')
            printf("%016llx\n", (unsigned long long)vc_crc64_avro(pcf, strlen(pcf)));
        else
            puts(pcf);
        free(pcf);
        return 0;
    }
    return usage();
}
