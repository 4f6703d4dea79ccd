/* apply.c -- a partition's rule state and the packing of its batch into the
 * apply script's arguments (see apply.h and apply_script.c). */
#include "apply.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vc_keys.h"

#define AGG_HEAD_ARGS 9 /* EVALSHA sha 1 meta prefix last expected lv sa */

struct agg_part {
    int32_t partition;
    agg_rules_conf conf;
    int64_t applied;   /* what Redis holds */
    int64_t position;  /* last offset added to the open batch */
    vc_liveness *lv;
    vc_sync_asm *sa;
    char prefix[VC_KEY_MAX], meta[VC_KEY_MAX];
    size_t pending, gone_total;
    vc_gateway_gone *gone;     /* VC_LIVENESS_MAX scratch entries */

    /* operation arguments: bytes in buf, each arg as (offset, length) */
    char *buf;
    size_t len, cap;
    size_t *arg_off, *arg_len;
    size_t nargs, cap_args;

    /* the sealed call */
    const char **argv;
    size_t *argvlen;
    size_t cap_argv;
    uint8_t *blob;
    size_t cap_blob;
    char last_str[24], expected_str[24];
};

agg_part *agg_part_new(int32_t partition, const agg_rules_conf *conf, int64_t applied,
                       const uint8_t *lv, size_t lv_len, const uint8_t *sa, size_t sa_len,
                       char *errstr, size_t errstr_size)
{
    agg_part *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    p->partition = partition;
    p->conf = *conf;
    p->applied = applied;
    p->position = applied;
    vc_key_prefix(p->prefix, sizeof(p->prefix), partition);
    vc_key_meta(p->meta, sizeof(p->meta), partition);
    p->lv = vc_liveness_load(lv, lv_len, conf->gateway_timeout_ms, errstr, errstr_size);
    if (p->lv == NULL)
        goto fail;
    p->sa = vc_sync_asm_load(sa, sa_len, conf->sync_max_viewers, conf->sync_max_age_ms, errstr,
                             errstr_size);
    if (p->sa == NULL)
        goto fail;
    p->gone = malloc(VC_LIVENESS_MAX * sizeof(*p->gone));
    if (p->gone == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    return p;
fail:
    agg_part_destroy(p);
    return NULL;
}

void agg_part_destroy(agg_part *p)
{
    if (p == NULL)
        return;
    vc_liveness_destroy(p->lv);
    vc_sync_asm_destroy(p->sa);
    free(p->gone);
    free(p->buf);
    free(p->arg_off);
    free(p->arg_len);
    free(p->argv);
    free(p->argvlen);
    free(p->blob);
    free(p);
}

int32_t agg_part_partition(const agg_part *p) { return p->partition; }
int64_t agg_part_applied(const agg_part *p) { return p->applied; }
int64_t agg_part_position(const agg_part *p) { return p->position; }
size_t agg_part_pending(const agg_part *p) { return p->pending; }
size_t agg_part_gone(const agg_part *p) { return p->gone_total; }
size_t agg_part_ops(const agg_part *p) { return p->nargs; }

/* ---- argument arena ----------------------------------------------------- */

static int arg_reserve(agg_part *p, size_t bytes, size_t args)
{
    if (p->len + bytes > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        char *nb;
        while (cap < p->len + bytes)
            cap *= 2;
        nb = realloc(p->buf, cap);
        if (nb == NULL)
            return -1;
        p->buf = nb;
        p->cap = cap;
    }
    if (p->nargs + args > p->cap_args) {
        size_t cap = p->cap_args ? p->cap_args : 1024;
        size_t *no, *nl;
        while (cap < p->nargs + args)
            cap *= 2;
        no = realloc(p->arg_off, cap * sizeof(*no));
        if (no == NULL)
            return -1;
        p->arg_off = no;
        nl = realloc(p->arg_len, cap * sizeof(*nl));
        if (nl == NULL)
            return -1;
        p->arg_len = nl;
        p->cap_args = cap;
    }
    return 0;
}

/* Callers reserve first; these cannot fail. */
static void arg_str(agg_part *p, const char *s, size_t n)
{
    memcpy(p->buf + p->len, s, n);
    p->arg_off[p->nargs] = p->len;
    p->arg_len[p->nargs++] = n;
    p->len += n;
}

static void arg_i64(agg_part *p, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    arg_str(p, tmp, (size_t)n);
}

#define ARG_I64_MAX 21

static int op_expire(agg_part *p, int64_t offset, uint32_t id)
{
    if (arg_reserve(p, 1 + 2 * ARG_I64_MAX, 3) < 0)
        return -1;
    arg_str(p, "X", 1);
    arg_i64(p, offset);
    arg_i64(p, id);
    return 0;
}

static int op_join(agg_part *p, const vc_event *ev, int64_t offset, uint32_t id, int64_t category)
{
    if (arg_reserve(p, 1 + 6 * ARG_I64_MAX, 7) < 0)
        return -1;
    arg_str(p, "J", 1);
    arg_i64(p, offset);
    arg_i64(p, ev->stream_id);
    arg_i64(p, ev->conn_id);
    arg_i64(p, ev->user_id > 0 ? ev->user_id : 0);
    arg_i64(p, id);
    arg_i64(p, category > 0 ? category : 0);
    return 0;
}

static int op_leave(agg_part *p, const vc_event *ev, int64_t offset, uint32_t id)
{
    if (arg_reserve(p, 1 + 4 * ARG_I64_MAX, 5) < 0)
        return -1;
    arg_str(p, "L", 1);
    arg_i64(p, offset);
    arg_i64(p, ev->stream_id);
    arg_i64(p, ev->conn_id);
    arg_i64(p, id);
    return 0;
}

static int op_sync(agg_part *p, const vc_sync_snapshot *snap, int64_t offset, uint32_t id)
{
    if (arg_reserve(p, 1 + 4 * ARG_I64_MAX + snap->nviewers * 2 * ARG_I64_MAX,
                    5 + 2 * snap->nviewers) < 0)
        return -1;
    arg_str(p, "S", 1);
    arg_i64(p, offset);
    arg_i64(p, snap->stream_id);
    arg_i64(p, id);
    arg_i64(p, (int64_t)snap->nviewers);
    for (size_t i = 0; i < snap->nviewers; i++) {
        arg_i64(p, snap->viewers[i].conn_id);
        arg_i64(p, snap->viewers[i].user_id > 0 ? snap->viewers[i].user_id : 0);
    }
    return 0;
}

int agg_part_add_category(agg_part *p, int64_t stream_id, int64_t category)
{
    if (category <= 0 || arg_reserve(p, 2 + 2 * ARG_I64_MAX, 4) < 0)
        return -1;
    arg_str(p, "C", 1);
    arg_str(p, "0", 1);
    arg_i64(p, stream_id);
    arg_i64(p, category);
    return 0;
}

agg_add_rc agg_part_add(agg_part *p, const vc_event *ev, int64_t offset, int64_t category)
{
    vc_liveness_verdict verdict;
    vc_sync_snapshot snap;
    agg_add_rc rc = AGG_ADD_NOOP;
    int ngone, done;

    if (offset <= p->position)
        return AGG_ADD_DUPLICATE;
    /* Reserve the worst case of the expire operations first, so that the
     * liveness state never moves without its operations being recorded. */
    if (arg_reserve(p, VC_LIVENESS_MAX * (1 + 2 * ARG_I64_MAX), VC_LIVENESS_MAX * 3) < 0)
        return AGG_ADD_NOMEM;
    ngone = vc_liveness_observe(p->lv, ev, &verdict, p->gone);
    for (int i = 0; i < ngone; i++) {
        (void)op_expire(p, offset, p->gone[i].id);
        vc_sync_asm_forget_gateway(p->sa, p->gone[i].gateway_id, p->gone[i].epoch);
        rc = AGG_ADD_PACKED;
    }
    p->gone_total += (size_t)ngone;
    p->position = offset;
    p->pending++;
    if (verdict.stale)
        return ngone > 0 ? AGG_ADD_PACKED : AGG_ADD_STALE;

    switch (ev->type) {
    case VC_EV_JOIN:
        if (op_join(p, ev, offset, verdict.id, category) < 0)
            goto nomem;
        return AGG_ADD_PACKED;
    case VC_EV_LEAVE:
        if (op_leave(p, ev, offset, verdict.id) < 0)
            goto nomem;
        return AGG_ADD_PACKED;
    case VC_EV_SYNC:
        done = vc_sync_asm_add(p->sa, ev, &snap);
        if (done < 0)
            goto nomem;
        if (done == 1) {
            int orc = op_sync(p, &snap, offset, verdict.id);
            vc_sync_snapshot_free(&snap);
            if (orc < 0)
                goto nomem;
            return AGG_ADD_PACKED;
        }
        return rc;
    case VC_EV_HEARTBEAT:
        return rc;
    }
    return rc;
nomem:
    /* The rule state has moved and cannot be moved back: the batch keeps the
     * expire operations. Dropping the event's own operation would change the
     * counts, so report it; the caller treats it as fatal. */
    return AGG_ADD_NOMEM;
}

agg_add_rc agg_part_skip(agg_part *p, int64_t offset)
{
    if (offset <= p->position)
        return AGG_ADD_DUPLICATE;
    p->position = offset;
    p->pending++;
    return AGG_ADD_NOOP;
}

void agg_part_confirm(agg_part *p)
{
    p->applied = p->position;
    p->len = 0;
    p->nargs = 0;
    p->pending = 0;
    p->gone_total = 0;
}

int agg_part_seal(agg_part *p, const char *sha, int *argc, const char ***argv,
                  const size_t **argvlen)
{
    size_t lv_len = vc_liveness_save(p->lv, NULL, 0);
    size_t sa_len = vc_sync_asm_save(p->sa, NULL, 0);
    size_t n = AGG_HEAD_ARGS + p->nargs;

    if (n > p->cap_argv) {
        const char **na = realloc(p->argv, n * sizeof(*na));
        size_t *nl;
        if (na == NULL)
            return -1;
        p->argv = na;
        nl = realloc(p->argvlen, n * sizeof(*nl));
        if (nl == NULL)
            return -1;
        p->argvlen = nl;
        p->cap_argv = n;
    }
    if (lv_len + sa_len > p->cap_blob) {
        uint8_t *nb = realloc(p->blob, lv_len + sa_len);
        if (nb == NULL)
            return -1;
        p->blob = nb;
        p->cap_blob = lv_len + sa_len;
    }
    vc_liveness_save(p->lv, p->blob, lv_len);
    vc_sync_asm_save(p->sa, p->blob + lv_len, sa_len);
    snprintf(p->last_str, sizeof(p->last_str), "%" PRId64, p->position);
    snprintf(p->expected_str, sizeof(p->expected_str), "%" PRId64, p->applied);

    p->argv[0] = sha ? "EVALSHA" : "EVAL";
    p->argv[1] = sha ? sha : agg_apply_script;
    p->argv[2] = "1";
    p->argv[3] = p->meta;
    p->argv[4] = p->prefix;
    p->argv[5] = p->last_str;
    p->argv[6] = p->expected_str;
    p->argv[7] = (const char *)p->blob;
    p->argv[8] = (const char *)p->blob + lv_len;
    for (int i = 0; i < 7; i++)
        p->argvlen[i] = strlen(p->argv[i]);
    p->argvlen[7] = lv_len;
    p->argvlen[8] = sa_len;
    for (size_t i = 0; i < p->nargs; i++) {
        p->argv[AGG_HEAD_ARGS + i] = p->buf + p->arg_off[i];
        p->argvlen[AGG_HEAD_ARGS + i] = p->arg_len[i];
    }
    *argc = (int)n;
    *argv = p->argv;
    *argvlen = p->argvlen;
    return 0;
}

static int reply_int(const redisReply *r, long long *v)
{
    if (r->type != REDIS_REPLY_INTEGER)
        return -1;
    *v = r->integer;
    return 0;
}

int agg_part_commit(agg_part *p, const redisReply *reply, agg_result *res, int64_t *stored,
                    char *errstr, size_t errstr_size)
{
    long long v[10];

    if (reply == NULL) {
        snprintf(errstr, errstr_size, "no reply");
        return -1;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "%.*s", (int)reply->len, reply->str);
        return -1;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        reply_int(reply->element[0], &v[0]) < 0) {
        snprintf(errstr, errstr_size, "apply script: unexpected reply");
        return -1;
    }
    if (v[0] == 1) {
        if (reply_int(reply->element[1], &v[1]) < 0) {
            snprintf(errstr, errstr_size, "apply script: unexpected gap reply");
            return -1;
        }
        *stored = v[1];
        return 1;
    }
    if (reply->elements != 10) {
        snprintf(errstr, errstr_size, "apply script: unexpected reply length");
        return -1;
    }
    for (size_t i = 1; i < 10; i++) {
        if (reply_int(reply->element[i], &v[i]) < 0) {
            snprintf(errstr, errstr_size, "apply script: non-integer in reply");
            return -1;
        }
    }
    memset(res, 0, sizeof(*res));
    res->applied = v[1];
    res->skipped = v[2];
    res->repairs[VC_DRIFT_QUIET] = v[3];
    res->repairs[VC_DRIFT_SYNCING] = v[4];
    res->repairs[VC_DRIFT_REBUILD] = v[5];
    res->held = v[6];
    res->added = v[7];
    res->removed = v[8];
    res->expired_viewers = v[9];
    agg_part_confirm(p);
    *stored = p->applied;
    return 0;
}
