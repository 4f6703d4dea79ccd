/* vc_avro_resolve.c -- events written with another registered writer schema,
 * read through avro-c's schema resolution into the current reader schema.
 *
 * avro-c trusts the lengths it reads (a negative string length makes it write
 * before its buffer, a huge one allocates it), so a body is first walked by a
 * bounds-checked validator driven by the writer schema, and avro-c runs with
 * a bounded allocator. The resolved value is then written back as a body of
 * the current schema and read by the fast decoder, which applies the contract.
 *
 * An older writer, lacking reader fields that have defaults, is resolved into
 * a projection of the reader schema without them; their defaults are spliced
 * into the re-encoded body (vc_avro_defaults.c). */
#include <avro.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vc_avro_internal.h"

#define REGISTRY_MAX 16
#define AVRO_ALLOC_MAX ((size_t)16 << 20) /* far above any event: a backstop, not a limit we expect to meet */
#define WALK_DEPTH_MAX 32
#define WALK_ITEMS_MAX 65536 /* array and map items per message */

/* A body is read into a generic value of its writer schema; the resolved
 * reader presents that value in the current schema. (avro-c 1.11's resolved
 * writer, the other direction, leaks the strings it reads.) Both values live
 * for one decode only: a reset generic array keeps its storage, unreachable. */
typedef struct {
    uint64_t fp;
    avro_schema_t writer;
    avro_value_iface_t *writer_class;
    avro_value_iface_t *resolver;
    avro_schema_t projected;   /* the reader without the fields below, or NULL */
    vc_avro_defaults defaults; /* reader fields the writer lacks */
} registered_schema;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static registered_schema registry[REGISTRY_MAX];
static size_t registry_len;
static avro_schema_t reader_schema;
static json_t *reader_json; /* for the defaults */
static pthread_once_t allocator_once = PTHREAD_ONCE_INIT;

static void *bounded_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (nsize > AVRO_ALLOC_MAX)
        return NULL;
    return realloc(ptr, nsize);
}

static void allocator_install(void)
{
    avro_set_allocator(bounded_alloc, NULL);
}

/* Called with registry_lock held. */
static int reader_ensure(char *errstr, size_t errstr_size)
{
    const char *json = vc_schema_json();

    if (reader_schema)
        return 0;
    pthread_once(&allocator_once, allocator_install);
    reader_json = json_loads(json, 0, NULL);
    if (!reader_json) {
        vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size, "current schema: bad JSON");
        return -1;
    }
    if (avro_schema_from_json_length(json, strlen(json), &reader_schema) != 0) {
        vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size, "current schema: %s", avro_strerror());
        reader_schema = NULL;
        json_decref(reader_json);
        reader_json = NULL;
        return -1;
    }
    return 0;
}

/* --- can avro-c resolve writer into reader? ---
 *
 * avro-c 1.11's avro_resolved_reader_new() frees memory twice when it meets a
 * reader field that the writer lacks (it cannot fill defaults), so resolution
 * is checked here first and avro-c only sees pairs it resolves. The rules are
 * the specification's: reader fields the writer lacks take their default
 * (collected in ctx->defaults when allowed), writer-only fields are skipped;
 * enum symbols must be known to the reader; numbers may widen (int to long,
 * float, double; long to float, double; float to double). */

typedef struct {
    vc_avro_defaults *defaults; /* NULL: a missing reader field is an error */
    int quiet;                  /* probing a union branch: no message */
    char *errstr;
    size_t errstr_size;
} resolve_ctx;

static int resolve_fail(resolve_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int resolve_fail(resolve_ctx *c, const char *fmt, ...)
{
    va_list ap;

    if (!c->quiet && c->errstr && c->errstr_size) {
        va_start(ap, fmt);
        vsnprintf(c->errstr, c->errstr_size, fmt, ap);
        va_end(ap);
    }
    return 0;
}

static avro_schema_t schema_deref(avro_schema_t s)
{
    return avro_typeof(s) == AVRO_LINK ? avro_schema_link_target(s) : s;
}

static int resolvable(avro_schema_t w, avro_schema_t r, int depth, resolve_ctx *c);

static int resolvable_record(avro_schema_t w, avro_schema_t r, int depth, resolve_ctx *c)
{
    for (size_t i = 0; i < avro_schema_record_size(r); i++) {
        const char *name = avro_schema_record_field_name(r, (int)i);
        avro_schema_t wf = NULL;
        /* By position, not avro_schema_record_field_get(): in avro-c 1.11 that
         * finds fields of another parsed schema with the same record name. */
        for (size_t j = 0; j < avro_schema_record_size(w) && !wf; j++)
            if (strcmp(avro_schema_record_field_name(w, (int)j), name) == 0)
                wf = avro_schema_record_field_get_by_index(w, (int)j);
        if (wf) {
            if (!resolvable(wf, avro_schema_record_field_get_by_index(r, (int)i), depth + 1, c))
                return 0;
            continue;
        }
        if (!c->defaults)
            return resolve_fail(c, "%s.%s is not in the writer schema", avro_schema_name(r), name);
        if (vc_avro_defaults_add(c->defaults, reader_json, r, name, c->quiet ? NULL : c->errstr, c->errstr_size) != 0)
            return 0;
    }
    return 1;
}

static int resolvable_same_type(avro_schema_t w, avro_schema_t r, int depth, resolve_ctx *c)
{
    switch (avro_typeof(r)) {
    case AVRO_RECORD:
    case AVRO_ENUM:
    case AVRO_FIXED:
        if (strcmp(avro_schema_name(w), avro_schema_name(r)) != 0)
            return resolve_fail(c, "writer %s where the reader has %s", avro_schema_name(w), avro_schema_name(r));
        break;
    default:
        break;
    }
    switch (avro_typeof(r)) {
    case AVRO_RECORD:
        return resolvable_record(w, r, depth, c);
    case AVRO_ENUM:
        for (int i = 0; i < avro_schema_enum_number_of_symbols(w); i++) {
            const char *sym = avro_schema_enum_get(w, i);
            if (avro_schema_enum_get_by_name(r, sym) < 0)
                return resolve_fail(c, "enum %s: symbol %s unknown to the reader", avro_schema_name(r), sym);
        }
        return 1;
    case AVRO_FIXED:
        if (avro_schema_fixed_size(w) != avro_schema_fixed_size(r))
            return resolve_fail(c, "fixed %s changed size", avro_schema_name(r));
        return 1;
    case AVRO_ARRAY:
        return resolvable(avro_schema_array_items(w), avro_schema_array_items(r), depth + 1, c);
    case AVRO_MAP:
        return resolvable(avro_schema_map_values(w), avro_schema_map_values(r), depth + 1, c);
    default:
        return 1; /* the same primitive */
    }
}

static int resolvable(avro_schema_t w, avro_schema_t r, int depth, resolve_ctx *c)
{
    avro_type_t tw, tr;

    if (depth > WALK_DEPTH_MAX)
        return resolve_fail(c, "schema nested deeper than %d", WALK_DEPTH_MAX);
    w = schema_deref(w);
    r = schema_deref(r);
    tw = avro_typeof(w);
    tr = avro_typeof(r);
    if (tw == AVRO_UNION) {
        for (size_t i = 0; i < avro_schema_union_size(w); i++)
            if (!resolvable(avro_schema_union_branch(w, (int)i), r, depth + 1, c))
                return 0;
        return 1;
    }
    if (tr == AVRO_UNION) {
        size_t mark = c->defaults ? c->defaults->n : 0;
        for (size_t i = 0; i < avro_schema_union_size(r); i++) {
            c->quiet++;
            int ok = resolvable(w, avro_schema_union_branch(r, (int)i), depth + 1, c);
            c->quiet--;
            if (ok)
                return 1;
            if (c->defaults)
                vc_avro_defaults_truncate(c->defaults, mark);
        }
        /* Say why the branch of the same type does not fit, if there is one. */
        for (size_t i = 0; i < avro_schema_union_size(r); i++) {
            avro_schema_t b = schema_deref(avro_schema_union_branch(r, (int)i));
            if (avro_typeof(b) == tw)
                return resolvable(w, b, depth + 1, c);
        }
        return resolve_fail(c, "no branch of a reader union takes writer %s", avro_schema_type_name(w));
    }
    if (tw == tr)
        return resolvable_same_type(w, r, depth, c);
    if ((tw == AVRO_INT32 && (tr == AVRO_INT64 || tr == AVRO_FLOAT || tr == AVRO_DOUBLE)) ||
        (tw == AVRO_INT64 && (tr == AVRO_FLOAT || tr == AVRO_DOUBLE)) || (tw == AVRO_FLOAT && tr == AVRO_DOUBLE))
        return 1;
    return resolve_fail(c, "writer %s cannot be read as %s", avro_schema_type_name(w), avro_schema_type_name(r));
}

/* The schema avro-c resolves writer into: the reader, or the reader without
 * the fields the writer lacks. Returns it with a reference for the caller,
 * or NULL with errstr filled. d receives the defaults to splice in. */
static avro_schema_t resolution_target(avro_schema_t writer, vc_avro_defaults *d, char *errstr, size_t errstr_size)
{
    resolve_ctx c = {d, 0, errstr, errstr_size};
    resolve_ctx strict = {NULL, 0, errstr, errstr_size};
    avro_schema_t projected;
    char *json;

    if (!resolvable(writer, reader_schema, 0, &c))
        return NULL;
    if (d->n == 0)
        return avro_schema_incref(reader_schema);
    json = vc_avro_defaults_project(reader_json, d, errstr, errstr_size);
    if (!json)
        return NULL;
    if (avro_schema_from_json_length(json, strlen(json), &projected) != 0) {
        vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size, "projected reader schema: %s", avro_strerror());
        free(json);
        return NULL;
    }
    free(json);
    if (!resolvable(writer, projected, 0, &strict)) {
        avro_schema_decref(projected);
        return NULL;
    }
    return projected;
}

int vc_schema_register(const char *schema_json, char *errstr, size_t errstr_size)
{
    uint64_t fp;
    avro_schema_t writer = NULL;
    avro_schema_t target;
    avro_value_iface_t *resolver;
    int rc = -1;

    if (vc_schema_fingerprint_of(schema_json, &fp, errstr, errstr_size) != 0)
        return -1;
    if (fp == vc_schema_fingerprint())
        return 0;
    pthread_mutex_lock(&registry_lock);
    if (reader_ensure(errstr, errstr_size) != 0)
        goto out;
    for (size_t i = 0; i < registry_len; i++)
        if (registry[i].fp == fp) {
            rc = 0;
            goto out;
        }
    if (registry_len == REGISTRY_MAX) {
        vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size, "already %d writer schemas registered",
                      REGISTRY_MAX);
        goto out;
    }
    if (avro_schema_from_json_length(schema_json, strlen(schema_json), &writer) != 0) {
        vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size, "schema: %s", avro_strerror());
        goto out;
    }
    registered_schema *e = &registry[registry_len];
    memset(e, 0, sizeof *e);
    target = resolution_target(writer, &e->defaults, errstr, errstr_size);
    if (!target) {
        vc_avro_defaults_truncate(&e->defaults, 0);
        avro_schema_decref(writer);
        goto out;
    }
    resolver = avro_resolved_reader_new(writer, target);
    e->writer_class = resolver ? avro_generic_class_from_schema(writer) : NULL;
    if (!resolver || !e->writer_class) {
        vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size, "cannot resolve into the current schema: %s",
                      avro_strerror());
        if (resolver)
            avro_value_iface_decref(resolver);
        vc_avro_defaults_truncate(&e->defaults, 0);
        avro_schema_decref(target);
        avro_schema_decref(writer);
        goto out;
    }
    if (e->defaults.n)
        e->projected = target; /* the reference moves to the entry */
    else
        avro_schema_decref(target);
    e->fp = fp;
    e->writer = writer;
    e->resolver = resolver;
    registry_len++;
    rc = 0;
out:
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

/* --- the pre-validating walk over a body of a writer schema --- */

typedef struct {
    const uint8_t *p, *end;
    size_t items_left;
    char *errstr;
    size_t errstr_size;
} walk;

#define WALK_FAIL(w, rc, ...) vc_codec_fail((rc), (w)->errstr, (w)->errstr_size, __VA_ARGS__)
#define TRY(expr)                                                                                                  \
    do {                                                                                                           \
        vc_codec_rc rc_ = (expr);                                                                                  \
        if (rc_ != VC_CODEC_OK)                                                                                    \
            return rc_;                                                                                            \
    } while (0)

static vc_codec_rc walk_varint(walk *w, int max_bytes, uint8_t last_max, int64_t *v)
{
    uint64_t u = 0;

    for (int i = 0; i < max_bytes; i++) {
        if (w->p == w->end)
            return WALK_FAIL(w, VC_CODEC_ERR_TRUNCATED, "message ends inside a varint");
        uint8_t b = *w->p++;
        if (i == max_bytes - 1 && b > last_max)
            return WALK_FAIL(w, VC_CODEC_ERR_MALFORMED, "varint overflows");
        u |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80))
            break;
    }
    *v = (int64_t)((u >> 1) ^ (0 - (u & 1)));
    if (max_bytes == 5)
        *v = (int32_t)(((uint32_t)u >> 1) ^ (0 - ((uint32_t)u & 1)));
    return VC_CODEC_OK;
}

static vc_codec_rc walk_long(walk *w, int64_t *v)
{
    return walk_varint(w, 10, 0x01, v);
}

static vc_codec_rc walk_skip(walk *w, int64_t n, const char *what)
{
    if (n < 0)
        return WALK_FAIL(w, VC_CODEC_ERR_MALFORMED, "negative %s length", what);
    if (n > w->end - w->p)
        return WALK_FAIL(w, VC_CODEC_ERR_TRUNCATED, "message ends inside %s", what);
    w->p += n;
    return VC_CODEC_OK;
}

static vc_codec_rc walk_value(walk *w, avro_schema_t s, int depth);

static vc_codec_rc walk_blocks(walk *w, avro_schema_t items, int is_map, int depth)
{
    for (;;) {
        int64_t count, size;

        TRY(walk_long(w, &count));
        if (count == 0)
            return VC_CODEC_OK;
        if (count < 0) {
            if (count == INT64_MIN)
                return WALK_FAIL(w, VC_CODEC_ERR_MALFORMED, "block count out of range");
            count = -count;
            TRY(walk_long(w, &size));
            if (size < 0)
                return WALK_FAIL(w, VC_CODEC_ERR_MALFORMED, "negative block size");
        }
        if ((uint64_t)count > w->items_left)
            return WALK_FAIL(w, VC_CODEC_ERR_MALFORMED, "more than %d array or map items", WALK_ITEMS_MAX);
        w->items_left -= (size_t)count;
        for (int64_t i = 0; i < count; i++) {
            if (is_map) {
                int64_t klen;
                TRY(walk_long(w, &klen));
                TRY(walk_skip(w, klen, "map key"));
            }
            TRY(walk_value(w, items, depth + 1));
        }
    }
}

static vc_codec_rc walk_value(walk *w, avro_schema_t s, int depth)
{
    int64_t v;

    if (depth > WALK_DEPTH_MAX)
        return WALK_FAIL(w, VC_CODEC_ERR_MALFORMED, "value nested deeper than %d", WALK_DEPTH_MAX);
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return VC_CODEC_OK;
    case AVRO_BOOLEAN:
        if (w->p == w->end)
            return WALK_FAIL(w, VC_CODEC_ERR_TRUNCATED, "message ends inside a boolean");
        if (*w->p > 1)
            return WALK_FAIL(w, VC_CODEC_ERR_MALFORMED, "boolean byte %u", *w->p);
        w->p++;
        return VC_CODEC_OK;
    case AVRO_INT32:
        return walk_varint(w, 5, 0x0f, &v);
    case AVRO_INT64:
        return walk_long(w, &v);
    case AVRO_FLOAT:
        return walk_skip(w, 4, "float");
    case AVRO_DOUBLE:
        return walk_skip(w, 8, "double");
    case AVRO_STRING:
    case AVRO_BYTES:
        TRY(walk_long(w, &v));
        return walk_skip(w, v, "string");
    case AVRO_FIXED:
        return walk_skip(w, avro_schema_fixed_size(s), "fixed");
    case AVRO_ENUM:
        TRY(walk_varint(w, 5, 0x0f, &v));
        if (v < 0 || v >= avro_schema_enum_number_of_symbols(s))
            return WALK_FAIL(w, VC_CODEC_ERR_MALFORMED, "enum symbol %lld out of range", (long long)v);
        return VC_CODEC_OK;
    case AVRO_UNION:
        TRY(walk_long(w, &v));
        if (v < 0 || (uint64_t)v >= avro_schema_union_size(s))
            return WALK_FAIL(w, VC_CODEC_ERR_MALFORMED, "union branch %lld out of range", (long long)v);
        return walk_value(w, avro_schema_union_branch(s, (int)v), depth + 1);
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            TRY(walk_value(w, avro_schema_record_field_get_by_index(s, (int)i), depth + 1));
        return VC_CODEC_OK;
    case AVRO_ARRAY:
        return walk_blocks(w, avro_schema_array_items(s), 0, depth);
    case AVRO_MAP:
        return walk_blocks(w, avro_schema_map_values(s), 1, depth);
    case AVRO_LINK:
        return walk_value(w, avro_schema_link_target(s), depth + 1);
    default:
        return WALK_FAIL(w, VC_CODEC_ERR_MALFORMED, "unsupported schema type %d", (int)avro_typeof(s));
    }
}

/* --- splicing defaults into a body of the projected reader schema --- */

typedef struct {
    uint8_t *b;
    size_t len, cap;
    int failed;
} splice_out;

static void splice_put(splice_out *o, const void *p, size_t n)
{
    if (o->failed)
        return;
    if (n > VC_EVENT_ENCODED_MAX - o->len) {
        o->failed = 1;
        return;
    }
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->len + n)
            cap *= 2;
        uint8_t *b = realloc(o->b, cap);
        if (!b) {
            o->failed = 1;
            return;
        }
        o->b = b;
        o->cap = cap;
    }
    memcpy(o->b + o->len, p, n);
    o->len += n;
}

static void splice_long(splice_out *o, int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (0 - ((uint64_t)v >> 63));
    uint8_t tmp[10];
    size_t n = 0;

    while (u >= 0x80) {
        tmp[n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    tmp[n++] = (uint8_t)u;
    splice_put(o, tmp, n);
}

/* Copy one value of reader schema r from w (written in the projection, which
 * is r without the fields in d) to o, inserting the defaults of those fields. */
static vc_codec_rc splice_value(walk *w, splice_out *o, const vc_avro_defaults *d, avro_schema_t r, int depth)
{
    const uint8_t *start = w->p;
    int64_t v;

    if (depth > WALK_DEPTH_MAX)
        return WALK_FAIL(w, VC_CODEC_ERR_MALFORMED, "value nested deeper than %d", WALK_DEPTH_MAX);
    r = schema_deref(r);
    switch (avro_typeof(r)) {
    case AVRO_RECORD: {
        char full[512];
        vc_avro_full_name(r, full, sizeof full);
        for (size_t i = 0; i < avro_schema_record_size(r); i++) {
            const vc_avro_default *def = vc_avro_defaults_find(d, full, avro_schema_record_field_name(r, (int)i));
            if (def)
                splice_put(o, def->bytes, def->len);
            else
                TRY(splice_value(w, o, d, avro_schema_record_field_get_by_index(r, (int)i), depth + 1));
        }
        return VC_CODEC_OK;
    }
    case AVRO_UNION:
        TRY(walk_long(w, &v));
        if (v < 0 || (uint64_t)v >= avro_schema_union_size(r))
            return WALK_FAIL(w, VC_CODEC_ERR_MALFORMED, "union branch %lld out of range", (long long)v);
        splice_long(o, v);
        return splice_value(w, o, d, avro_schema_union_branch(r, (int)v), depth + 1);
    case AVRO_ARRAY:
    case AVRO_MAP:
        for (;;) {
            int64_t count, size;
            TRY(walk_long(w, &count));
            if (count < 0) {
                if (count == INT64_MIN)
                    return WALK_FAIL(w, VC_CODEC_ERR_MALFORMED, "block count out of range");
                count = -count;
                TRY(walk_long(w, &size)); /* the byte size changes with the defaults: dropped */
            }
            splice_long(o, count);
            if (count == 0)
                return VC_CODEC_OK;
            if ((uint64_t)count > w->items_left)
                return WALK_FAIL(w, VC_CODEC_ERR_MALFORMED, "more than %d array or map items", WALK_ITEMS_MAX);
            w->items_left -= (size_t)count;
            for (int64_t i = 0; i < count; i++) {
                if (avro_typeof(r) == AVRO_MAP) {
                    const uint8_t *key = w->p;
                    int64_t klen;
                    TRY(walk_long(w, &klen));
                    TRY(walk_skip(w, klen, "map key"));
                    splice_put(o, key, (size_t)(w->p - key));
                }
                TRY(splice_value(w, o, d,
                                 avro_typeof(r) == AVRO_MAP ? avro_schema_map_values(r) : avro_schema_array_items(r),
                                 depth + 1));
            }
        }
    default:
        TRY(walk_value(w, r, depth));
        splice_put(o, start, (size_t)(w->p - start));
        return VC_CODEC_OK;
    }
}

/* --- decoding through resolution --- */

/* Read into a fresh writer-schema value, resolve and re-encode in the current
 * schema (or its projection, then splice the defaults in), decode that with
 * the fast path. */
static vc_codec_rc resolve_written(const registered_schema *e, avro_value_t *written, avro_value_t *resolved,
                                   const uint8_t *body, size_t len, vc_event *ev, char *errstr, size_t errstr_size)
{
    avro_reader_t reader;
    avro_writer_t writer;
    size_t size;
    char *out;
    int err;
    vc_codec_rc rc;

    reader = avro_reader_memory((const char *)body, (int64_t)len);
    if (!reader)
        return vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size, "avro reader: %s", avro_strerror());
    err = avro_value_read(reader, written);
    avro_reader_free(reader);
    if (err)
        return vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size, "avro read: %s", avro_strerror());
    if (avro_value_sizeof(resolved, &size) != 0)
        return vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size, "schema resolution: %s",
                             avro_strerror());
    if (size > VC_EVENT_ENCODED_MAX)
        return vc_codec_fail(VC_CODEC_ERR_INVALID, errstr, errstr_size, "resolved event of %zu bytes", size);
    out = malloc(size ? size : 1);
    if (!out)
        return vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size, "out of memory");
    writer = avro_writer_memory(out, (int64_t)size);
    if (!writer) {
        free(out);
        return vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size, "avro writer: %s", avro_strerror());
    }
    err = avro_value_write(writer, resolved);
    avro_writer_free(writer);
    if (err) {
        rc = vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size, "schema resolution: %s", avro_strerror());
    } else if (e->defaults.n == 0) {
        rc = vc_event_decode_body((const uint8_t *)out, size, ev, errstr, errstr_size);
    } else {
        walk w = {(const uint8_t *)out, (const uint8_t *)out + size, WALK_ITEMS_MAX, errstr, errstr_size};
        splice_out o = {0};
        rc = splice_value(&w, &o, &e->defaults, reader_schema, 0);
        if (rc == VC_CODEC_OK && (o.failed || w.p != w.end))
            rc = vc_codec_fail(VC_CODEC_ERR_INVALID, errstr, errstr_size, "event with defaults too large");
        if (rc == VC_CODEC_OK)
            rc = vc_event_decode_body(o.b, o.len, ev, errstr, errstr_size);
        free(o.b);
    }
    free(out);
    return rc;
}

/* Called with registry_lock held. */
static vc_codec_rc resolve_body(registered_schema *e, const uint8_t *body, size_t len, vc_event *ev, char *errstr,
                                size_t errstr_size)
{
    walk w = {body, body + len, WALK_ITEMS_MAX, errstr, errstr_size};
    avro_value_t written, resolved;
    vc_codec_rc rc;

    TRY(walk_value(&w, e->writer, 0));
    if (w.p != w.end)
        return vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size, "%zu bytes after the event",
                             (size_t)(w.end - w.p));
    if (avro_generic_value_new(e->writer_class, &written) != 0)
        return vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size, "writer value: %s", avro_strerror());
    if (avro_resolved_reader_new_value(e->resolver, &resolved) != 0) {
        avro_value_decref(&written);
        return vc_codec_fail(VC_CODEC_ERR_MALFORMED, errstr, errstr_size, "resolved value: %s", avro_strerror());
    }
    avro_resolved_reader_set_source(&resolved, &written);
    rc = resolve_written(e, &written, &resolved, body, len, ev, errstr, errstr_size);
    avro_value_decref(&resolved);
    avro_value_decref(&written);
    return rc;
}

vc_codec_rc vc_avro_decode_resolved(uint64_t fp, const uint8_t *body, size_t len, vc_event *ev, char *errstr,
                                    size_t errstr_size)
{
    vc_codec_rc rc = VC_CODEC_ERR_FINGERPRINT;

    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < registry_len; i++)
        if (registry[i].fp == fp) {
            rc = resolve_body(&registry[i], body, len, ev, errstr, errstr_size);
            break;
        }
    pthread_mutex_unlock(&registry_lock);
    if (rc == VC_CODEC_ERR_FINGERPRINT)
        vc_codec_fail(rc, errstr, errstr_size, "unknown writer schema fingerprint %016llx",
                      (unsigned long long)fp);
    return rc;
}
