/* vc_avro_schema.c -- Parsing Canonical Form and CRC-64-AVRO fingerprints
 * (Avro specification, "Schema Fingerprints" and "Parsing Canonical Form"). */
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vc_avro_internal.h"

extern const char vc_schema_json_text[];

#define CRC64_AVRO_EMPTY 0xc15d213aa4d7a795ull
#define PCF_DEPTH_MAX 64

static uint64_t crc64_table[256];
static pthread_once_t crc64_once = PTHREAD_ONCE_INIT;

static void crc64_table_init(void)
{
    for (unsigned i = 0; i < 256; i++) {
        uint64_t fp = i;
        for (int j = 0; j < 8; j++)
            fp = (fp >> 1) ^ (CRC64_AVRO_EMPTY & (0 - (fp & 1)));
        crc64_table[i] = fp;
    }
}

uint64_t vc_crc64_avro(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint64_t fp = CRC64_AVRO_EMPTY;

    pthread_once(&crc64_once, crc64_table_init);
    for (size_t i = 0; i < len; i++)
        fp = (fp >> 8) ^ crc64_table[(fp ^ p[i]) & 0xff];
    return fp;
}

/* --- Parsing Canonical Form --- */

typedef struct {
    char *buf;
    size_t len, cap;
    char *errstr;
    size_t errstr_size;
    int failed;
} pcf_out;

static void pcf_fail(pcf_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void pcf_fail(pcf_out *o, const char *fmt, ...)
{
    va_list ap;

    if (o->failed)
        return;
    o->failed = 1;
    if (o->errstr && o->errstr_size) {
        va_start(ap, fmt);
        vsnprintf(o->errstr, o->errstr_size, fmt, ap);
        va_end(ap);
    }
}

static void pcf_put(pcf_out *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (o->len + n + 1 > cap)
            cap *= 2;
        char *b = realloc(o->buf, cap);
        if (!b) {
            pcf_fail(o, "out of memory");
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void pcf_puts(pcf_out *o, const char *s)
{
    pcf_put(o, s, strlen(s));
}

static void pcf_quoted(pcf_out *o, const char *s)
{
    pcf_puts(o, "\"");
    pcf_puts(o, s);
    pcf_puts(o, "\"");
}

static int is_primitive(const char *t)
{
    static const char *const prim[] = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"};
    for (size_t i = 0; i < sizeof prim / sizeof prim[0]; i++)
        if (strcmp(t, prim[i]) == 0)
            return 1;
    return 0;
}

/* Avro names: [A-Za-z_][A-Za-z0-9_]*, dot-separated when full. Checking them
 * also means no string of ours needs JSON escaping. */
static int is_valid_name(const char *s, int allow_dots)
{
    int at_start = 1;

    if (*s == '\0')
        return 0;
    for (; *s; s++) {
        char c = *s;
        if (c == '.' && allow_dots && !at_start) {
            at_start = 1;
            continue;
        }
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || (!at_start && c >= '0' && c <= '9')))
            return 0;
        at_start = 0;
    }
    return !at_start;
}

/* The full name of a name written in namespace ns ("" for none). */
static char *full_name(const char *name, const char *ns)
{
    char *s;

    if (strchr(name, '.') || ns[0] == '\0')
        return strdup(name);
    if (asprintf(&s, "%s.%s", ns, name) < 0)
        return NULL;
    return s;
}

static void pcf_schema(pcf_out *o, json_t *s, const char *ns, int depth);

static void pcf_name_ref(pcf_out *o, const char *t, const char *ns)
{
    if (is_primitive(t)) {
        pcf_quoted(o, t);
        return;
    }
    if (!is_valid_name(t, 1)) {
        pcf_fail(o, "invalid type name \"%s\"", t);
        return;
    }
    char *fn = full_name(t, ns);
    if (!fn) {
        pcf_fail(o, "out of memory");
        return;
    }
    pcf_quoted(o, fn);
    free(fn);
}

/* Writes {"name":"<full>","type":"<t>" and returns the namespace of the
 * named type (malloc'd) for its children, or NULL on error. */
static char *pcf_named_head(pcf_out *o, json_t *s, const char *t, const char *ns)
{
    json_t *jname = json_object_get(s, "name");
    json_t *jns = json_object_get(s, "namespace");
    const char *name;
    char *fn, *dot, *child_ns;

    if (!json_is_string(jname)) {
        pcf_fail(o, "%s without a name", t);
        return NULL;
    }
    name = json_string_value(jname);
    if (!is_valid_name(name, 1)) {
        pcf_fail(o, "invalid name \"%s\"", name);
        return NULL;
    }
    if (jns && !json_is_null(jns)) {
        if (!json_is_string(jns) || (json_string_length(jns) && !is_valid_name(json_string_value(jns), 1))) {
            pcf_fail(o, "invalid namespace of %s", name);
            return NULL;
        }
        ns = json_string_value(jns);
    }
    fn = full_name(name, ns);
    if (!fn) {
        pcf_fail(o, "out of memory");
        return NULL;
    }
    dot = strrchr(fn, '.');
    child_ns = dot ? strndup(fn, (size_t)(dot - fn)) : strdup("");
    pcf_puts(o, "{\"name\":");
    pcf_quoted(o, fn);
    pcf_puts(o, ",\"type\":");
    pcf_quoted(o, t);
    free(fn);
    if (!child_ns)
        pcf_fail(o, "out of memory");
    return child_ns;
}

static void pcf_object(pcf_out *o, json_t *s, const char *ns, int depth)
{
    json_t *jt = json_object_get(s, "type");
    const char *t;

    if (!json_is_string(jt)) {
        /* {"type": {...}} is not a schema the specification defines. */
        pcf_fail(o, "object schema without a string \"type\"");
        return;
    }
    t = json_string_value(jt);
    if (strcmp(t, "record") == 0 || strcmp(t, "error") == 0) {
        json_t *fields = json_object_get(s, "fields");
        char *child_ns = pcf_named_head(o, s, t, ns);
        size_t i;
        json_t *f;

        if (!child_ns)
            return;
        if (!json_is_array(fields)) {
            pcf_fail(o, "record without fields");
            free(child_ns);
            return;
        }
        pcf_puts(o, ",\"fields\":[");
        json_array_foreach(fields, i, f) {
            json_t *fname = json_object_get(f, "name");
            if (!json_is_object(f) || !json_is_string(fname) || !is_valid_name(json_string_value(fname), 0)) {
                pcf_fail(o, "record field %zu without a valid name", i);
                break;
            }
            if (!json_object_get(f, "type")) {
                pcf_fail(o, "record field %s without a type", json_string_value(fname));
                break;
            }
            pcf_puts(o, i ? ",{\"name\":" : "{\"name\":");
            pcf_quoted(o, json_string_value(fname));
            pcf_puts(o, ",\"type\":");
            pcf_schema(o, json_object_get(f, "type"), child_ns, depth + 1);
            pcf_puts(o, "}");
        }
        pcf_puts(o, "]}");
        free(child_ns);
    } else if (strcmp(t, "enum") == 0) {
        json_t *symbols = json_object_get(s, "symbols");
        char *child_ns = pcf_named_head(o, s, t, ns);
        size_t i;
        json_t *sym;

        if (!child_ns)
            return;
        free(child_ns);
        if (!json_is_array(symbols)) {
            pcf_fail(o, "enum without symbols");
            return;
        }
        pcf_puts(o, ",\"symbols\":[");
        json_array_foreach(symbols, i, sym) {
            if (!json_is_string(sym) || !is_valid_name(json_string_value(sym), 0)) {
                pcf_fail(o, "invalid enum symbol");
                return;
            }
            if (i)
                pcf_puts(o, ",");
            pcf_quoted(o, json_string_value(sym));
        }
        pcf_puts(o, "]}");
    } else if (strcmp(t, "fixed") == 0) {
        json_t *size = json_object_get(s, "size");
        char *child_ns = pcf_named_head(o, s, t, ns);
        char num[32];

        if (!child_ns)
            return;
        free(child_ns);
        if (!json_is_integer(size) || json_integer_value(size) < 0) {
            pcf_fail(o, "fixed without a valid size");
            return;
        }
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(size));
        pcf_puts(o, ",\"size\":");
        pcf_puts(o, num);
        pcf_puts(o, "}");
    } else if (strcmp(t, "array") == 0) {
        json_t *items = json_object_get(s, "items");
        if (!items) {
            pcf_fail(o, "array without items");
            return;
        }
        pcf_puts(o, "{\"type\":\"array\",\"items\":");
        pcf_schema(o, items, ns, depth + 1);
        pcf_puts(o, "}");
    } else if (strcmp(t, "map") == 0) {
        json_t *values = json_object_get(s, "values");
        if (!values) {
            pcf_fail(o, "map without values");
            return;
        }
        pcf_puts(o, "{\"type\":\"map\",\"values\":");
        pcf_schema(o, values, ns, depth + 1);
        pcf_puts(o, "}");
    } else {
        /* {"type":"long","logicalType":...} and the like: [PRIMITIVES]. */
        pcf_name_ref(o, t, ns);
    }
}

static void pcf_schema(pcf_out *o, json_t *s, const char *ns, int depth)
{
    if (o->failed)
        return;
    if (depth > PCF_DEPTH_MAX) {
        pcf_fail(o, "schema nested deeper than %d", PCF_DEPTH_MAX);
        return;
    }
    if (json_is_string(s)) {
        pcf_name_ref(o, json_string_value(s), ns);
    } else if (json_is_array(s)) {
        size_t i;
        json_t *branch;
        pcf_puts(o, "[");
        json_array_foreach(s, i, branch) {
            if (i)
                pcf_puts(o, ",");
            pcf_schema(o, branch, ns, depth + 1);
        }
        pcf_puts(o, "]");
    } else if (json_is_object(s)) {
        pcf_object(o, s, ns, depth);
    } else {
        pcf_fail(o, "not a schema: a JSON %s", json_is_null(s) ? "null" : "number or boolean");
    }
}

char *vc_schema_canonical_form(const char *schema_json, char *errstr, size_t errstr_size)
{
    pcf_out o = {.errstr = errstr, .errstr_size = errstr_size};
    json_error_t jerr;
    json_t *root;

    if (!schema_json) {
        pcf_fail(&o, "no schema");
        return NULL;
    }
    root = json_loads(schema_json, JSON_DECODE_ANY, &jerr);
    if (!root) {
        pcf_fail(&o, "schema JSON: %s (line %d)", jerr.text, jerr.line);
        return NULL;
    }
    pcf_schema(&o, root, "", 0);
    json_decref(root);
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    return o.buf;
}

int vc_schema_fingerprint_of(const char *schema_json, uint64_t *fp, char *errstr, size_t errstr_size)
{
    char *pcf = vc_schema_canonical_form(schema_json, errstr, errstr_size);

    if (!pcf)
        return -1;
    *fp = vc_crc64_avro(pcf, strlen(pcf));
    free(pcf);
    return 0;
}

const char *vc_schema_json(void)
{
    return vc_schema_json_text;
}

static uint64_t current_fp;
static pthread_once_t current_fp_once = PTHREAD_ONCE_INIT;

static void current_fp_init(void)
{
    char err[256];

    if (vc_schema_fingerprint_of(vc_schema_json_text, &current_fp, err, sizeof err) != 0) {
        /* The embedded schema is checked by the unit tests; this cannot happen in a tested build. */
        fprintf(stderr, "vc_schemas: embedded viewer_event.avsc does not parse: %s\n", err);
        abort();
    }
}

uint64_t vc_schema_fingerprint(void)
{
    pthread_once(&current_fp_once, current_fp_init);
    return current_fp;
}
