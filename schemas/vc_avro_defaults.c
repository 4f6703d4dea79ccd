/* vc_avro_defaults.c -- defaults of reader fields that a registered writer
 * schema lacks (an older writer). See vc_avro_internal.h for the mechanism. */
#include <avro.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vc_avro_internal.h"

#define DEFAULT_DEPTH_MAX 32
#define DEFAULT_BYTES_MAX 4096

const char *vc_avro_full_name(avro_schema_t schema, char *buf, size_t size)
{
    const char *ns = avro_schema_namespace(schema);
    const char *name = avro_schema_name(schema);
    int n;

    if (!name)
        name = "";
    n = ns && *ns ? snprintf(buf, size, "%s.%s", ns, name) : snprintf(buf, size, "%s", name);
    if (n < 0 || (size_t)n >= size)
        buf[0] = '\0';
    return buf;
}

/* --- finding a record's JSON by its full name --- */

static json_t *find_record(json_t *s, const char *full, const char *ns, int depth);

static json_t *find_named(json_t *s, const char *t, const char *full, const char *ns, int depth)
{
    const char *name = json_string_value(json_object_get(s, "name"));
    const char *space = json_string_value(json_object_get(s, "namespace"));
    char fn[512], child_ns[512];
    const char *dot;

    if (!name)
        return NULL;
    if (strchr(name, '.'))
        snprintf(fn, sizeof fn, "%s", name);
    else if (space ? *space : *ns)
        snprintf(fn, sizeof fn, "%s.%s", space ? space : ns, name);
    else
        snprintf(fn, sizeof fn, "%s", name);
    dot = strrchr(fn, '.');
    snprintf(child_ns, sizeof child_ns, "%.*s", dot ? (int)(dot - fn) : 0, fn);
    if (strcmp(t, "record") != 0 && strcmp(t, "error") != 0)
        return NULL;
    if (strcmp(fn, full) == 0)
        return s;
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(s, "fields"), i, f) {
        json_t *found = find_record(json_object_get(f, "type"), full, child_ns, depth + 1);
        if (found)
            return found;
    }
    return NULL;
}

static json_t *find_record(json_t *s, const char *full, const char *ns, int depth)
{
    if (!s || depth > DEFAULT_DEPTH_MAX)
        return NULL;
    if (json_is_array(s)) {
        size_t i;
        json_t *b;
        json_array_foreach(s, i, b) {
            json_t *found = find_record(b, full, ns, depth + 1);
            if (found)
                return found;
        }
        return NULL;
    }
    if (!json_is_object(s))
        return NULL;
    json_t *type = json_object_get(s, "type");
    if (!json_is_string(type))
        return find_record(type, full, ns, depth + 1);
    const char *t = json_string_value(type);
    if (strcmp(t, "array") == 0)
        return find_record(json_object_get(s, "items"), full, ns, depth + 1);
    if (strcmp(t, "map") == 0)
        return find_record(json_object_get(s, "values"), full, ns, depth + 1);
    return find_named(s, t, full, ns, depth);
}

static json_t *field_json(json_t *record_json, const char *field, size_t *index)
{
    size_t i;
    json_t *f;

    json_array_foreach(json_object_get(record_json, "fields"), i, f) {
        if (strcmp(json_string_value(json_object_get(f, "name")) ? json_string_value(json_object_get(f, "name")) : "",
                   field) == 0) {
            if (index)
                *index = i;
            return f;
        }
    }
    return NULL;
}

/* --- encoding a JSON default in Avro binary --- */

typedef struct {
    uint8_t b[DEFAULT_BYTES_MAX];
    size_t len;
    int failed;
} out_buf;

static void put(out_buf *o, const void *p, size_t n)
{
    if (o->failed || DEFAULT_BYTES_MAX - o->len < n) {
        o->failed = 1;
        return;
    }
    memcpy(o->b + o->len, p, n);
    o->len += n;
}

static void put_long(out_buf *o, int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (0 - ((uint64_t)v >> 63));
    uint8_t tmp[10];
    size_t n = 0;

    while (u >= 0x80) {
        tmp[n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    tmp[n++] = (uint8_t)u;
    put(o, tmp, n);
}

static void put_le(out_buf *o, uint64_t bits, size_t n)
{
    uint8_t tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (uint8_t)(bits >> (8 * i));
    put(o, tmp, n);
}

/* A bytes/fixed default is a string of code points 0-255; ASCII only here. */
static int put_ascii(out_buf *o, json_t *def, int with_length, int64_t want)
{
    const char *s = json_string_value(def);
    size_t n = json_string_length(def);

    if (!s)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return -1;
    if (want >= 0 && (int64_t)n != want)
        return -1;
    if (with_length)
        put_long(o, (int64_t)n);
    put(o, s, n);
    return 0;
}

static int encode_default(json_t *reader_json, avro_schema_t s, json_t *def, out_buf *o, int depth)
{
    if (depth > DEFAULT_DEPTH_MAX || !def)
        return -1;
    if (avro_typeof(s) == AVRO_LINK)
        s = avro_schema_link_target(s);
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return json_is_null(def) ? 0 : -1;
    case AVRO_BOOLEAN:
        if (!json_is_boolean(def))
            return -1;
        put_le(o, json_is_true(def), 1);
        return 0;
    case AVRO_INT32:
        if (!json_is_integer(def) || json_integer_value(def) < INT32_MIN || json_integer_value(def) > INT32_MAX)
            return -1;
        put_long(o, json_integer_value(def));
        return 0;
    case AVRO_INT64:
        if (!json_is_integer(def))
            return -1;
        put_long(o, json_integer_value(def));
        return 0;
    case AVRO_FLOAT: {
        if (!json_is_number(def))
            return -1;
        float f = (float)json_number_value(def);
        uint32_t bits;
        memcpy(&bits, &f, sizeof bits);
        put_le(o, bits, 4);
        return 0;
    }
    case AVRO_DOUBLE: {
        if (!json_is_number(def))
            return -1;
        double d = json_number_value(def);
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        put_le(o, bits, 8);
        return 0;
    }
    case AVRO_STRING:
        if (!json_is_string(def))
            return -1;
        put_long(o, (int64_t)json_string_length(def));
        put(o, json_string_value(def), json_string_length(def));
        return 0;
    case AVRO_BYTES:
        return put_ascii(o, def, 1, -1);
    case AVRO_FIXED:
        return put_ascii(o, def, 0, avro_schema_fixed_size(s));
    case AVRO_ENUM: {
        int sym = json_is_string(def) ? avro_schema_enum_get_by_name(s, json_string_value(def)) : -1;
        if (sym < 0)
            return -1;
        put_long(o, sym);
        return 0;
    }
    case AVRO_UNION: /* the default is of the first branch */
        if (avro_schema_union_size(s) == 0)
            return -1;
        put_long(o, 0);
        return encode_default(reader_json, avro_schema_union_branch(s, 0), def, o, depth + 1);
    case AVRO_ARRAY: {
        size_t i;
        json_t *item;
        if (!json_is_array(def))
            return -1;
        if (json_array_size(def)) {
            put_long(o, (int64_t)json_array_size(def));
            json_array_foreach(def, i, item) {
                if (encode_default(reader_json, avro_schema_array_items(s), item, o, depth + 1) != 0)
                    return -1;
            }
        }
        put_long(o, 0);
        return 0;
    }
    case AVRO_MAP: {
        const char *key;
        json_t *value;
        if (!json_is_object(def))
            return -1;
        if (json_object_size(def)) {
            put_long(o, (int64_t)json_object_size(def));
            json_object_foreach(def, key, value) {
                put_long(o, (int64_t)strlen(key));
                put(o, key, strlen(key));
                if (encode_default(reader_json, avro_schema_map_values(s), value, o, depth + 1) != 0)
                    return -1;
            }
        }
        put_long(o, 0);
        return 0;
    }
    case AVRO_RECORD: {
        char full[512];
        json_t *rec = find_record(reader_json, vc_avro_full_name(s, full, sizeof full), "", 0);
        if (!json_is_object(def))
            return -1;
        for (size_t i = 0; i < avro_schema_record_size(s); i++) {
            const char *name = avro_schema_record_field_name(s, (int)i);
            json_t *v = json_object_get(def, name);
            if (!v) { /* not given: the field's own default */
                json_t *f = rec ? field_json(rec, name, NULL) : NULL;
                v = f ? json_object_get(f, "default") : NULL;
            }
            if (encode_default(reader_json, avro_schema_record_field_get_by_index(s, (int)i), v, o, depth + 1) != 0)
                return -1;
        }
        return 0;
    }
    default:
        return -1;
    }
}

int vc_avro_defaults_add(vc_avro_defaults *d, json_t *reader_json, avro_schema_t record, const char *field,
                         char *errstr, size_t errstr_size)
{
    char full[512];
    json_t *rec, *f, *def;
    static out_buf o; /* registration runs under the registry lock */
    vc_avro_default *v;

    vc_avro_full_name(record, full, sizeof full);
    if (vc_avro_defaults_find(d, full, field))
        return 0;
    rec = find_record(reader_json, full, "", 0);
    f = rec ? field_json(rec, field, NULL) : NULL;
    def = f ? json_object_get(f, "default") : NULL;
    if (!def) {
        vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size,
                      "%s.%s is not in the writer schema and has no default", full, field);
        return -1;
    }
    memset(&o, 0, sizeof o);
    for (size_t i = 0; i < avro_schema_record_size(record); i++)
        if (strcmp(avro_schema_record_field_name(record, (int)i), field) == 0 &&
            encode_default(reader_json, avro_schema_record_field_get_by_index(record, (int)i), def, &o, 0) == 0 &&
            !o.failed)
            goto encoded;
    vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size, "the default of %s.%s does not fit its type", full,
                  field);
    return -1;
encoded:
    v = realloc(d->v, (d->n + 1) * sizeof *v);
    if (!v)
        return -1;
    d->v = v;
    v = &d->v[d->n];
    v->record = strdup(full);
    v->field = strdup(field);
    v->bytes = malloc(o.len ? o.len : 1);
    if (!v->record || !v->field || !v->bytes) {
        free(v->record);
        free(v->field);
        free(v->bytes);
        return -1;
    }
    memcpy(v->bytes, o.b, o.len);
    v->len = o.len;
    d->n++;
    return 0;
}

const vc_avro_default *vc_avro_defaults_find(const vc_avro_defaults *d, const char *record, const char *field)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->v[i].record, record) == 0 && strcmp(d->v[i].field, field) == 0)
            return &d->v[i];
    return NULL;
}

void vc_avro_defaults_truncate(vc_avro_defaults *d, size_t n)
{
    while (d->n > n) {
        d->n--;
        free(d->v[d->n].record);
        free(d->v[d->n].field);
        free(d->v[d->n].bytes);
    }
    if (n == 0) {
        free(d->v);
        d->v = NULL;
    }
}

char *vc_avro_defaults_project(json_t *reader_json, const vc_avro_defaults *d, char *errstr, size_t errstr_size)
{
    json_t *copy = json_deep_copy(reader_json);
    char *out;

    if (!copy)
        return NULL;
    for (size_t i = 0; i < d->n; i++) {
        json_t *rec = find_record(copy, d->v[i].record, "", 0);
        size_t index;
        if (!rec || !field_json(rec, d->v[i].field, &index)) {
            vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size, "cannot project %s.%s", d->v[i].record,
                          d->v[i].field);
            json_decref(copy);
            return NULL;
        }
        json_array_remove(json_object_get(rec, "fields"), index);
    }
    out = json_dumps(copy, JSON_COMPACT);
    json_decref(copy);
    return out;
}
