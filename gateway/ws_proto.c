/* ws_proto.c -- the one libwebsockets protocol of the gateway: viewers on
 * /ws and the HTTP endpoints on the same port. Per-session state is
 * gw_session (service.h); one switch on the callback reason; writes happen
 * in the WRITEABLE callbacks, except a count to a viewer with nothing
 * pending (viewer_offer says why). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fanout.h"
#include "history.h"
#include "service.h"
#include "vc_event.h"
#include "web.h"

#define GW_STR_(x) #x
#define GW_STR(x) GW_STR_(x)

_Static_assert(LWS_PRE <= GW_WEB_HEADROOM, "static files keep LWS_PRE bytes before their bodies");

#define CLOSE_UNAUTHORIZED 4401

static gw_service *svc_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

gw_msg *gw_msg_new(const char *text, size_t len)
{
    gw_msg *m = malloc(sizeof(*m) + LWS_PRE + len);

    if (m == NULL)
        return NULL;
    m->refs = 1;
    m->len = (uint32_t)len;
    m->born_ms = 0;
    m->fanned_out = 0;
    memcpy(m->buf + LWS_PRE, text, len);
    return m;
}

gw_msg *gw_msg_ref(gw_msg *m)
{
    m->refs++;
    return m;
}

void gw_msg_unref(gw_msg *m)
{
    if (m && --m->refs == 0)
        free(m);
}

/* ---- streams and their viewers ---- */

static gw_stream *stream_join(gw_service *s, gw_session *pss)
{
    gw_stream *st = gw_idmap_get(s->streams, pss->stream_id);

    if (st == NULL) {
        st = calloc(1, sizeof(*st));
        if (st == NULL)
            return NULL;
        st->id = pss->stream_id;
        st->result_ms = gw_mono_ms();
        if (gw_idmap_put(s->streams, st->id, st)) {
            free(st);
            return NULL;
        }
        s->m.streams++;
    }
    pss->prev = NULL;
    pss->next = st->head;
    if (st->head)
        st->head->prev = pss;
    st->head = pss;
    st->nviewers++;
    pss->stream = st;
    return st;
}

static void stream_leave(gw_service *s, gw_session *pss)
{
    gw_stream *st = pss->stream;

    if (st == NULL)
        return;
    if (pss->prev)
        pss->prev->next = pss->next;
    else
        st->head = pss->next;
    if (pss->next)
        pss->next->prev = pss->prev;
    pss->prev = pss->next = NULL;
    pss->stream = NULL;
    if (--st->nviewers == 0) {
        gw_idmap_del(s->streams, st->id);
        gw_msg_unref(st->msg);
        free(st);
        s->m.streams--;
    }
}

static void emit(gw_service *s, vc_event_type type, gw_session *pss, vc_leave_reason reason)
{
    vc_event ev;

    vc_event_init(&ev);
    ev.type = type;
    ev.stream_id = pss->stream_id;
    ev.user_id = pss->user_id;
    ev.conn_id = pss->conn_id;
    ev.reason = type == VC_EV_LEAVE ? reason : VC_LEAVE_NONE;
    gw_producer_send(s->prod, &ev, -1, gw_now_ms());
    if (type == VC_EV_JOIN)
        s->m.joins++;
    else if (type == VC_EV_LEAVE && (unsigned)reason < 4)
        s->m.leaves[reason]++;
}

static void viewer_leave(gw_service *s, gw_session *pss, vc_leave_reason reason)
{
    if (!pss->joined || pss->left)
        return;
    pss->left = 1;
    emit(s, VC_EV_LEAVE, pss, reason);
}

/* A count message has reached every viewer of its stream: only the stream
 * itself still holds it (plus `holders` references the caller is about to
 * drop). */
static void fanout_check(gw_service *s, gw_msg *m, gw_stream *st, unsigned holders)
{
    if (m->refs == 1 + holders && !m->fanned_out && st && st->msg == m) {
        m->fanned_out = 1;
        s->m.fanout_ms_last = (double)(gw_mono_ms() - m->born_ms);
        s->m.fanout_ms_sum += s->m.fanout_ms_last;
        s->m.fanouts++;
    }
}

/* msg waits for WRITEABLE, replacing an older count still waiting. */
static void viewer_queue(gw_service *s, gw_session *pss, gw_msg *msg)
{
    if (pss->pending) {
        gw_msg_unref(pss->pending);
        s->m.pushes_superseded++;
    }
    pss->pending = gw_msg_ref(msg);
    lws_callback_on_writable(pss->wsi);
}

/* Give msg to one viewer. A count is one small frame: when nothing of this
 * viewer waits (no queued count, nothing lws still buffers from an earlier
 * write), it is written at once, from the loop, outside WRITEABLE. This is
 * a deliberate exception to "write only in WRITEABLE": a push is then one
 * send() instead of POLLOUT on (epoll_ctl), a loop round, the send and POLLOUT
 * off (epoll_ctl), which made fan-out to 19,500 viewers of a stream miss its
 * 200 ms goal. It is safe with lws 4.1: lws_write() on a non-blocking socket
 * never blocks, and whatever the kernel does not take is kept by lws and sent
 * before any later WRITEABLE (lws_partial_buffered() then says 1, so we queue
 * instead). Otherwise (or when the viewer is closing) the message waits in
 * pss->pending for WRITEABLE, and a viewer that has not taken the previous
 * one only gets the newest (counts supersede each other). */
static void viewer_offer(gw_service *s, gw_session *pss, gw_msg *msg)
{
    if (!pss->pending && !pss->close_code && !lws_partial_buffered(pss->wsi)) {
        if (lws_write(pss->wsi, msg->buf + LWS_PRE, msg->len, LWS_WRITE_TEXT) < 0) {
            /* Not in this wsi's callback: lws closes it on its next timeout check. */
            lws_set_timeout(pss->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            return;
        }
        s->m.pushes_sent++;
        return;
    }
    viewer_queue(s, pss, msg);
}


/* The 101 response and the count right after the join leave as one TCP
 * segment: the socket is corked before lws writes the 101 and uncorked once
 * the count is written (viewer_established). Two small writes are otherwise
 * two segments, each with its own transmit, loopback/NIC receive and ACK:
 * about a tenth of the gateway's CPU per accepted viewer. Only done when the
 * stream has a count to send; uncorking flushes at once. */
static void viewer_cork(gw_session *pss, struct lws *wsi, int on)
{
    int v = on;

    if (pss->corked == (on != 0))
        return;
    pss->corked = on != 0;
    setsockopt(lws_get_socket_fd(wsi), IPPROTO_TCP, TCP_CORK, &v, sizeof(v));
}

/* ---- HTTP ---- */

static void shared_release(gw_session *pss)
{
    if (pss->shared && --pss->shared->refs == 0)
        free(pss->shared);
    pss->shared = NULL;
}

static void http_respond(gw_session *pss, struct lws *wsi, unsigned status, int ctype, const char *body, size_t len)
{
    shared_release(pss);
    pss->body_static = NULL;
    pss->etag = NULL;
    free(pss->body);
    pss->body = malloc(LWS_PRE + len + 1);
    if (pss->body == NULL) {
        pss->body_len = 0;
        pss->status = 500;
    } else {
        memcpy(pss->body + LWS_PRE, body, len);
        pss->body_len = (uint32_t)len;
        pss->status = (uint16_t)status;
    }
    pss->ctype = (uint8_t)ctype;
    lws_callback_on_writable(wsi);
}

static void http_wait(gw_service *s, gw_session *pss, struct lws *wsi, int what, int64_t id, int limit)
{
    pss->waiting = (uint8_t)what;
    pss->api_id = id;
    pss->api_limit = limit;
    pss->wsi = wsi;
    pss->http_next = s->http_waiting;
    s->http_waiting = pss;
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, 10);
}

static void http_unwait(gw_service *s, gw_session *pss)
{
    for (gw_session **pp = &s->http_waiting; *pp; pp = &(*pp)->http_next)
        if (*pp == pss) {
            *pp = pss->http_next;
            pss->http_next = NULL;
            pss->waiting = 0;
            return;
        }
}

static void http_answer_count(gw_session *pss, int64_t id, const gw_count *c)
{
    char buf[GW_COUNT_MSG_MAX];
    int n = gw_count_format(buf, sizeof(buf), id, c);

    lws_set_timeout(pss->wsi, NO_PENDING_TIMEOUT, 0);
    http_respond(pss, pss->wsi, 200, 0, buf, n > 0 ? (size_t)n : 0);
}

static gw_rank_cached *rank_cache_find(gw_service *s, int64_t category, int limit)
{
    for (int i = 0; i < GW_RANK_CACHE; i++)
        if (s->rank_cache[i].at_ms && s->rank_cache[i].category == category && s->rank_cache[i].limit == limit)
            return &s->rank_cache[i];
    return NULL;
}

/* Keep r's answer (the oldest entry makes room). */
static void rank_cache_put(gw_service *s, const gw_ranking_result *r)
{
    gw_rank_cached *c = rank_cache_find(s, r->category, r->limit);
    char *json;

    if (r->json == NULL || (json = strdup(r->json)) == NULL)
        return;
    if (c == NULL) {
        c = &s->rank_cache[0];
        for (int i = 1; i < GW_RANK_CACHE; i++)
            if (s->rank_cache[i].at_ms < c->at_ms)
                c = &s->rank_cache[i];
    }
    free(c->json);
    c->category = r->category;
    c->limit = r->limit;
    c->ok = r->ok;
    c->json = json;
    c->at_ms = gw_mono_ms();
}

void gw_proto_free_caches(gw_service *s)
{
    gw_fanout_destroy(s->fanout);
    s->fanout = NULL;
    for (int i = 0; i < GW_RANK_CACHE; i++) {
        free(s->rank_cache[i].json);
        s->rank_cache[i].json = NULL;
        s->rank_cache[i].at_ms = 0;
    }
}

/* GET /api/streams/<id>/history?hours=N: from the history thread's cache,
 * or wait for its read (answered in gw_proto_take_history). */
static void http_history(gw_service *s, struct lws *wsi, gw_session *pss, int64_t id)
{
    static const char bad_hours[] = "{\"error\":\"hours must be an integer from " GW_STR(GW_HISTORY_HOURS_MIN) " to " GW_STR(
        GW_HISTORY_HOURS_MAX) "\"}\n";
    static const char no_db[] = "{\"error\":\"history unavailable: no database configured\"}\n";
    static const char busy[] = "{\"error\":\"history unavailable: too many reads waiting\"}\n";
    /* Large enough for any argument (the headers are at most
     * max_http_header_data, 4 KB): a long value is a 400, never "absent". */
    char buf[4200], *json;
    const char *v = lws_get_urlarg_by_name(wsi, "hours=", buf, sizeof(buf));
    int64_t hours;
    int status;

    /* "hours" without a value is not "absent" */
    for (int i = 0; v == NULL && i < 32 && lws_hdr_copy_fragment(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_URI_ARGS, i) >= 0;
         i++)
        if (!strcmp(buf, "hours"))
            v = "";
    if (gw_parse_query_int(v, GW_HISTORY_HOURS_MIN, GW_HISTORY_HOURS_MAX, GW_HISTORY_HOURS_DEFAULT, &hours)) {
        http_respond(pss, wsi, 400, GW_CT_JSON, bad_hours, sizeof(bad_hours) - 1);
        return;
    }
    if (s->history == NULL) {
        http_respond(pss, wsi, 503, GW_CT_JSON, no_db, sizeof(no_db) - 1);
        return;
    }
    s->m.history_requests++;
    if (gw_history_lookup(s->history, id, (int)hours, &status, &json)) {
        if (json)
            http_respond(pss, wsi, (unsigned)status, GW_CT_JSON, json, strlen(json));
        else
            http_respond(pss, wsi, 503, GW_CT_JSON, busy, sizeof(busy) - 1);
        free(json);
        return;
    }
    http_wait(s, pss, wsi, 3, id, (int)hours);
}

/* A static file of the web page, from memory; 304 when the client's
 * If-None-Match holds its ETag. */
static void http_static(gw_service *s, struct lws *wsi, gw_session *pss, const char *path)
{
    const gw_web_file *f;
    char inm[256];

    switch (gw_web_files_find(s->web, path, &f)) {
    case GW_WEB_OK:
        if (lws_hdr_copy(wsi, inm, sizeof(inm), WSI_TOKEN_HTTP_IF_NONE_MATCH) > 0 && gw_web_etag_match(inm, f->etag)) {
            s->m.web_not_modified++;
            http_respond(pss, wsi, 304, f->ctype, "", 0);
            if (pss->status != 304)
                break; /* out of memory: a bare 500 */
            pss->body_len = (uint32_t)f->len; /* the length a 200 would have: RFC 9110 8.6 */
        } else {
            http_respond(pss, wsi, 200, f->ctype, "", 0);
            if (pss->status != 200)
                break;
            pss->body_static = (const unsigned char *)f->body;
            pss->body_len = (uint32_t)f->len;
        }
        pss->etag = f->etag;
        break;
    case GW_WEB_BAD_PATH:
        http_respond(pss, wsi, 400, GW_CT_TEXT, "bad path\n", 9);
        break;
    default:
        http_respond(pss, wsi, 404, GW_CT_TEXT, "not found\n", 10);
        break;
    }
}

static int http_request(gw_service *s, struct lws *wsi, gw_session *pss, const char *path)
{
    char buf[256];
    int64_t id = 0;

    s->m.http_requests++;
    pss->kind = GW_SESS_HTTP;
    switch (gw_route_path(path, &id)) {
    case GW_ROUTE_HEALTHZ:
        http_respond(pss, wsi, 200, 2, "ok\n", 3);
        break;
    case GW_ROUTE_READYZ: {
        gw_reader_stats rs;
        int kafka = gw_producer_reachable(s->prod);
        int n;

        int redis, ready;

        gw_reader_get_stats(s->reader, &rs);
        /* A reader stuck on an unresponsive Redis has not failed yet: also
         * require an answer within the bound that makes counts stale. */
        redis = rs.redis_up && rs.redis_ok_ms && gw_mono_ms() - rs.redis_ok_ms <= gw_stale_ms(s->cfg);
        ready = kafka && redis && !s->shutting_down;
        n = snprintf(buf, sizeof(buf), "{\"ready\":%s,\"kafka\":%s,\"redis\":%s,\"draining\":%s}\n",
                     ready ? "true" : "false", kafka ? "true" : "false", redis ? "true" : "false",
                     s->shutting_down ? "true" : "false");
        http_respond(pss, wsi, ready ? 200 : 503, 0, buf, (size_t)n);
        break;
    }
    case GW_ROUTE_METRICS: {
        gw_producer_stats ps;
        gw_reader_stats rs;
        size_t cap = 16384;
        char *text = malloc(cap);
        int n;

        if (text == NULL)
            return -1;
        s->m.connections = s->nviewers;
        gw_producer_get_stats(s->prod, &ps);
        gw_reader_get_stats(s->reader, &rs);
        {
            gw_history_stats hs;

            gw_history_get_stats(s->history, &hs);
            s->m.history_cache_hits = hs.cache_hits;
            s->m.history_queries = hs.queries;
            s->m.history_query_errors = hs.query_errors;
        }
        n = gw_metrics_format(text, cap, &s->m, &ps, &rs, s->cfg->gateway_id);
        http_respond(pss, wsi, n < 0 ? 500 : 200, 1, text, n < 0 ? 0 : (size_t)n);
        free(text);
        break;
    }
    case GW_ROUTE_STREAM: {
        gw_stream *st = gw_idmap_get(s->streams, id);

        if (st && st->has_count) {
            pss->wsi = wsi;
            http_answer_count(pss, id, &st->count);
        } else {
            http_wait(s, pss, wsi, 1, id, 0);
            gw_reader_want_stream(s->reader, id);
        }
        break;
    }
    case GW_ROUTE_RANKING: {
        int64_t limit = 10, category = 0;
        const char *v;

        v = lws_get_urlarg_by_name(wsi, "limit=", buf, sizeof(buf));
        if (v && gw_parse_id(v, &limit)) {
            http_respond(pss, wsi, 400, 0, "{\"error\":\"limit must be a positive integer\"}\n", 45);
            break;
        }
        v = lws_get_urlarg_by_name(wsi, "category=", buf, sizeof(buf));
        if (v && gw_parse_id(v, &category)) {
            http_respond(pss, wsi, 400, 0, "{\"error\":\"category must be a positive id\"}\n", 43);
            break;
        }
        if (limit > GW_RANKING_LIMIT_MAX)
            limit = GW_RANKING_LIMIT_MAX;
        {
            gw_rank_cached *c = rank_cache_find(s, category, (int)limit);

            if (c && gw_mono_ms() - c->at_ms < s->cfg->tick_ms) {
                http_respond(pss, wsi, c->ok ? 200 : 503, 0, c->json, strlen(c->json));
                break;
            }
        }
        http_wait(s, pss, wsi, 2, category, (int)limit);
        gw_reader_want_ranking(s->reader, category, (int)limit);
        break;
    }
    case GW_ROUTE_HISTORY:
        http_history(s, wsi, pss, id);
        break;
    case GW_ROUTE_BAD_ID:
        http_respond(pss, wsi, 400, 0, "{\"error\":\"malformed stream id\"}\n", 32);
        break;
    case GW_ROUTE_CONFIG: {
        char *json = gw_web_config_json(s->cfg->gateway_id, s->cfg->allow_anonymous, s->cfg->tick_ms, s->cfg->peer_ws);

        http_respond(pss, wsi, json ? 200 : 500, GW_CT_JSON, json ? json : "", json ? strlen(json) : 0);
        free(json);
        break;
    }
    case GW_ROUTE_CATALOG: {
        char *json = gw_catalog_json(s->catalog);

        if (json)
            http_respond(pss, wsi, 200, GW_CT_JSON, json, strlen(json));
        else
            http_respond(pss, wsi, s->catalog ? 503 : 404, GW_CT_JSON, "{\"error\":\"no catalog\"}\n", 23);
        free(json);
        break;
    }
    case GW_ROUTE_WS:
        http_respond(pss, wsi, 400, 2, "WebSocket upgrade required\n", 27);
        break;
    case GW_ROUTE_NOT_FOUND:
        http_static(s, wsi, pss, path);
        break;
    }
    return 0;
}

static int http_writeable(struct lws *wsi, gw_session *pss)
{
    static const char no_cache[] = "no-cache";
    unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;
    unsigned char *body = pss->shared        ? pss->shared->data + LWS_PRE
                          : pss->body_static ? (unsigned char *)pss->body_static
                          : pss->body        ? pss->body + LWS_PRE
                                             : NULL;
    int rc;

    if (pss->status == 0)
        return 0;
    /* A 304 carries no body; its Content-Length is the length a 200 would
     * have (RFC 9110 8.6). With a length lws keeps the connection open (without
     * one it closes it to end the response). */
    if (lws_add_http_common_headers(wsi, pss->status, gw_content_types[pss->ctype % GW_CT_COUNT],
                                    pss->body_len, &p, end))
        return 1;
    /* Static files: revalidated on every use (cheap: a 304 without the body). */
    if (pss->etag &&
        (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_ETAG, (const unsigned char *)pss->etag,
                                      (int)strlen(pss->etag), &p, end) ||
         lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (const unsigned char *)no_cache,
                                      (int)sizeof(no_cache) - 1, &p, end)))
        return 1;
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    rc = pss->body_len && body && pss->status != 304 ? lws_write(wsi, body, pss->body_len, LWS_WRITE_HTTP_FINAL) : 0;
    free(pss->body);
    pss->body = NULL;
    shared_release(pss);
    pss->body_static = NULL;
    pss->etag = NULL;
    pss->status = 0;
    if (rc < 0)
        return -1;
    if (lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

/* ---- WebSocket handshake ---- */

static int reject_http(gw_service *s, struct lws *wsi, gw_reject cause, unsigned status)
{
    s->m.rejects[cause]++;
    lws_return_http_status(wsi, status, NULL);
    return 1;
}

/* The checks that can still answer with an HTTP status (lws has no
 * per-session memory yet at this point). */
static int confirm_upgrade(gw_service *s, struct lws *wsi)
{
    const gw_config *cfg = s->cfg;
    char path[64], buf[512], ip[46];
    const char *v;
    int64_t id;
    int olen;

    if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) < 0 || gw_route_path(path, NULL) != GW_ROUTE_WS) {
        lws_return_http_status(wsi, 404, NULL);
        return 1;
    }
    if (s->shutting_down)
        return reject_http(s, wsi, GW_REJECT_SHUTDOWN, 503);
    v = lws_get_urlarg_by_name(wsi, "stream=", buf, 64);
    if (v == NULL || gw_parse_id(v, &id))
        return reject_http(s, wsi, GW_REJECT_BAD_STREAM, 400);
    olen = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (cfg->allowed_origins[0]) {
        if (olen > 0) {
            if (olen >= (int)sizeof(buf) || lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_ORIGIN) < 0 ||
                !gw_origin_allowed(cfg->allowed_origins, buf))
                return reject_http(s, wsi, GW_REJECT_ORIGIN, 403);
        } else if (cfg->allow_anonymous)
            return reject_http(s, wsi, GW_REJECT_ORIGIN, 403);
    }
    if (s->nsessions >= (uint32_t)cfg->max_connections)
        return reject_http(s, wsi, GW_REJECT_CAPACITY, 503);
    if (lws_get_peer_simple(wsi, ip, sizeof(ip)) == NULL)
        snprintf(ip, sizeof(ip), "?");
    s->peer_wsi = NULL;
    switch (gw_limiter_check(s->lim, ip, gw_mono_ms())) {
    case GW_LIMIT_OK:
        break;
    case GW_LIMIT_RATE:
        return reject_http(s, wsi, GW_REJECT_RATE, 429);
    case GW_LIMIT_CONNS:
        return reject_http(s, wsi, GW_REJECT_CONNS_PER_IP, 429);
    case GW_LIMIT_TABLE_FULL:
        return reject_http(s, wsi, GW_REJECT_IP_TABLE, 503);
    }
    s->peer_wsi = wsi;
    memcpy(s->peer_ip, ip, sizeof(s->peer_ip));
    return 0;
}

/* The upgrade goes ahead: take the per-IP slot and check the token into the
 * session. A bad token is answered after the upgrade (close 4401), so that
 * browsers can see why. */
static int filter_connection(gw_service *s, struct lws *wsi, gw_session *pss)
{
    const gw_config *cfg = s->cfg;
    char buf[4200];
    const char *v;

    memset(pss, 0, sizeof(*pss));
    v = lws_get_urlarg_by_name(wsi, "stream=", buf, 64);
    if (v == NULL || gw_parse_id(v, &pss->stream_id))
        return -1; /* confirm_upgrade has answered 400 already */
    if (s->peer_wsi == wsi)
        memcpy(pss->ip, s->peer_ip, sizeof(pss->ip));
    else if (lws_get_peer_simple(wsi, pss->ip, sizeof(pss->ip)) == NULL)
        snprintf(pss->ip, sizeof(pss->ip), "?");
    s->peer_wsi = NULL;
    if (gw_limiter_admit(s->lim, pss->ip, gw_mono_ms()) != GW_LIMIT_OK) {
        s->m.rejects[GW_REJECT_RATE]++;
        return -1;
    }
    pss->admitted = 1;
    pss->upgrading = 1;
    {
        gw_stream *st = gw_idmap_get(s->streams, pss->stream_id);

        if (st && st->has_count)
            viewer_cork(pss, wsi, 1);
    }

    v = lws_get_urlarg_by_name(wsi, "token=", buf, sizeof(buf));
    if (v == NULL && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) > 0 &&
        lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_AUTHORIZATION) >= 0)
        v = gw_bearer_token(buf);
    if (v == NULL || !v[0]) {
        if (!cfg->allow_anonymous) {
            pss->close_code = CLOSE_UNAUTHORIZED;
            pss->reject = GW_REJECT_NO_TOKEN;
            s->m.rejects[GW_REJECT_NO_TOKEN]++;
        }
        return 0;
    }
    {
        gw_token_rc trc = gw_token_verify(v, (const unsigned char *)cfg->token_secret, strlen(cfg->token_secret),
                                          gw_now_ms() / 1000, &pss->user_id);

        if (trc != GW_TOKEN_OK) {
            pss->close_code = CLOSE_UNAUTHORIZED;
            pss->reject = GW_REJECT_TOKEN;
            pss->token_rc = (uint8_t)trc;
            pss->user_id = 0;
            s->m.token_rejects[trc]++;
        }
    }
    return 0;
}

static void viewer_established(gw_service *s, struct lws *wsi, gw_session *pss)
{
    int64_t now = gw_now_ms();

    pss->wsi = wsi;
    pss->kind = GW_SESS_VIEWER;
    pss->last_rx_ms = gw_mono_ms();
    pss->ping_ms = pss->last_rx_ms;
    s->nsessions++;
    if (!pss->upgrading) {
        /* Not through confirm_upgrade (should not happen): refuse. */
        pss->close_code = LWS_CLOSE_STATUS_POLICY_VIOLATION;
    } else if (s->shutting_down && !pss->close_code) {
        /* Upgraded while the drain began: no join that no leave would follow. */
        pss->close_code = LWS_CLOSE_STATUS_GOINGAWAY;
    }
    if (pss->close_code) {
        viewer_cork(pss, wsi, 0);
        lws_callback_on_writable(wsi);
        return;
    }
    pss->conn_id = (int64_t)((((uint64_t)(s->epoch_ms / 1000) & 0x7fffffffu) << 32) | ++s->conn_counter);
    pss->joined_ms = now;
    if (stream_join(s, pss) == NULL) {
        pss->close_code = LWS_CLOSE_STATUS_UNEXPECTED_CONDITION;
        viewer_cork(pss, wsi, 0);
        lws_callback_on_writable(wsi);
        return;
    }
    pss->joined = 1;
    s->nviewers++;
    s->m.connections = s->nviewers;
    emit(s, VC_EV_JOIN, pss, VC_LEAVE_NONE);
    if (pss->stream->has_count)
        viewer_offer(s, pss, pss->stream->msg);
    viewer_cork(pss, wsi, 0); /* the 101 and the count leave together */
}

static void viewer_closed(gw_service *s, gw_session *pss)
{
    s->nsessions--;
    if (pss->joined) {
        viewer_leave(s, pss, (vc_leave_reason)pss->leave_reason);
        stream_leave(s, pss);
        s->nviewers--;
        s->m.connections = s->nviewers;
    }
    if (pss->admitted)
        gw_limiter_release(s->lim, pss->ip);
    pss->admitted = 0;
    gw_msg_unref(pss->pending);
    pss->pending = NULL;
    free(pss->rx);
    pss->rx = NULL;
}

/* ---- frames from the viewer ---- */

static int close_bad(gw_service *s, struct lws *wsi, gw_badframe kind, enum lws_close_status code,
                     const char *why)
{
    s->m.badframes[kind]++;
    lws_close_reason(wsi, code, (unsigned char *)why, strlen(why));
    return -1;
}

static int viewer_message(gw_service *s, struct lws *wsi, gw_session *pss, const char *buf, size_t len)
{
    switch (gw_parse_client_msg(buf, len)) {
    case GW_MSG_PING:
        pss->pong_due = 1;
        s->m.pongs++;
        lws_callback_on_writable(wsi);
        return 0;
    case GW_MSG_NOT_JSON:
        return close_bad(s, wsi, GW_BADFRAME_NOT_JSON, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                         "expected a JSON object with a type");
    case GW_MSG_UNKNOWN_TYPE:
        break;
    }
    return close_bad(s, wsi, GW_BADFRAME_UNKNOWN_TYPE, LWS_CLOSE_STATUS_POLICY_VIOLATION, "unknown message type");
}

static int viewer_receive(gw_service *s, struct lws *wsi, gw_session *pss, const char *in, size_t len)
{
    size_t remaining = lws_remaining_packet_payload(wsi);
    int final = lws_is_final_fragment(wsi);

    pss->last_rx_ms = gw_mono_ms();
    if (pss->close_code)
        return 0;
    if (lws_frame_is_binary(wsi))
        return close_bad(s, wsi, GW_BADFRAME_BINARY, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                         "binary frames are not accepted");
    if ((size_t)pss->rxlen + len + remaining > GW_FRAME_MAX)
        return close_bad(s, wsi, GW_BADFRAME_TOO_BIG, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message over 4096 bytes");
    if (pss->rxlen == 0 && final)
        return viewer_message(s, wsi, pss, in, len);
    if (pss->rx == NULL && (pss->rx = malloc(GW_FRAME_MAX)) == NULL)
        return -1;
    memcpy(pss->rx + pss->rxlen, in, len);
    pss->rxlen = (uint16_t)(pss->rxlen + len);
    if (!final)
        return 0;
    {
        int rc = viewer_message(s, wsi, pss, pss->rx, pss->rxlen);

        free(pss->rx);
        pss->rx = NULL;
        pss->rxlen = 0;
        return rc;
    }
}

static const char *close_text(const gw_session *pss, char *buf, size_t size)
{
    switch (pss->close_code) {
    case CLOSE_UNAUTHORIZED:
        if (pss->reject == GW_REJECT_NO_TOKEN)
            return "unauthorized: token required";
        snprintf(buf, size, "unauthorized: %s", gw_token_strerror((gw_token_rc)pss->token_rc));
        return buf;
    case LWS_CLOSE_STATUS_GOINGAWAY:
        return "gateway shutting down";
    case LWS_CLOSE_STATUS_NORMAL:
        return "idle timeout";
    default:
        return "closing";
    }
}

static int viewer_writeable(gw_service *s, struct lws *wsi, gw_session *pss)
{
    unsigned char buf[LWS_PRE + 32];

    if (pss->close_code) {
        char text[64];
        const char *why = close_text(pss, text, sizeof(text));

        size_t n = strlen(why);
        unsigned char frame[LWS_PRE + 2 + 96];

        /* Returning -1 right after ESTABLISHED makes lws 4.1 drop the socket
         * without the close frame that lws_close_reason() prepared, so the
         * close frame is written here, then the connection is dropped. */
        if (n > 96)
            n = 96;
        frame[LWS_PRE] = (unsigned char)(pss->close_code >> 8);
        frame[LWS_PRE + 1] = (unsigned char)(pss->close_code & 0xff);
        memcpy(frame + LWS_PRE + 2, why, n);
        lws_write(wsi, frame + LWS_PRE, 2 + n, (enum lws_write_protocol)4 /* LWS_WRITE_CLOSE, internal in 4.1 */);
        return -1;
    }
    if (pss->ping_due) {
        pss->ping_due = 0;
        s->m.pings_sent++;
        /* lws 4.1 only reports a pong with a payload (RECEIVE_PONG). */
        memcpy(buf + LWS_PRE, "vc", 2);
        if (lws_write(wsi, buf + LWS_PRE, 2, LWS_WRITE_PING) < 0)
            return -1;
    } else if (pss->pong_due) {
        static const char pong[] = "{\"type\":\"pong\"}";

        pss->pong_due = 0;
        memcpy(buf + LWS_PRE, pong, sizeof(pong) - 1);
        if (lws_write(wsi, buf + LWS_PRE, sizeof(pong) - 1, LWS_WRITE_TEXT) < 0)
            return -1;
    } else if (pss->pending) {
        gw_msg *m = pss->pending;
        int rc;

        pss->pending = NULL;
        rc = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
        fanout_check(s, m, pss->stream, 1);
        gw_msg_unref(m);
        if (rc < 0)
            return -1;
        s->m.pushes_sent++;
    }
    if (pss->ping_due || pss->pong_due || pss->pending)
        lws_callback_on_writable(wsi);
    return 0;
}

/* ---- the callback ---- */

int gw_proto_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    gw_service *s = svc_of(wsi);
    gw_session *pss = user;

    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (s && s->reader) /* the reader is gone during teardown */
            gw_proto_take_reader_results(s);
        if (s && s->history)
            gw_proto_take_history(s);
        break;

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        if (in == NULL || strcmp(in, "websocket") != 0)
            return -1;
        return confirm_upgrade(s, wsi);

    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return filter_connection(s, wsi, pss);

    case LWS_CALLBACK_HTTP:
        return http_request(s, wsi, pss, in ? (const char *)in : "");

    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_writeable(wsi, pss);

    case LWS_CALLBACK_CLOSED_HTTP:
        if (pss) {
            if (pss->waiting)
                http_unwait(s, pss);
            free(pss->body);
            pss->body = NULL;
            shared_release(pss);
            if (pss->admitted && pss->kind == GW_SESS_HTTP) {
                gw_limiter_release(s->lim, pss->ip);
                pss->admitted = 0;
            }
        }
        break;

    case LWS_CALLBACK_ESTABLISHED:
        viewer_established(s, wsi, pss);
        break;

    case LWS_CALLBACK_CLOSED:
        if (pss && pss->kind == GW_SESS_VIEWER)
            viewer_closed(s, pss);
        break;

    case LWS_CALLBACK_RECEIVE:
        return viewer_receive(s, wsi, pss, in, len);

    case LWS_CALLBACK_RECEIVE_PONG:
        pss->last_rx_ms = gw_mono_ms();
        break;

    case LWS_CALLBACK_SERVER_WRITEABLE:
        return viewer_writeable(s, wsi, pss);

    default:
        break;
    }
    return 0;
}

/* ---- called by the service on the loop thread ---- */

/* Write msg to every viewer of st. Viewers with nothing pending (no queued
 * count, nothing lws buffers) get the frame, framed once here, by a plain
 * send() in one tight loop (gw_fanout: split over two threads from
 * GW_FANOUT_SPLIT_MIN viewers on) instead of one lws_write() each; the
 * others, and any whose socket is full, get it in WRITEABLE (viewer_queue).
 * A send the kernel took only part of is handed to lws as raw bytes: lws
 * keeps the rest and writes it before anything else on that connection, so
 * frames stay whole. */
static void fan_out(gw_service *s, gw_stream *st, gw_msg *msg)
{
    unsigned char frame[10 + GW_COUNT_MSG_MAX];
    size_t hlen, flen, n = 0;
    gw_session **who;
    ssize_t *sent;
    int *fds;

    if (msg->len > GW_COUNT_MSG_MAX ||
        (who = malloc((size_t)st->nviewers * (sizeof(*who) + sizeof(*sent) + sizeof(*fds)))) == NULL) {
        for (gw_session *v = st->head; v; v = v->next)
            if (!v->close_code)
                viewer_offer(s, v, msg);
        return;
    }
    sent = (ssize_t *)(who + st->nviewers);
    fds = (int *)(sent + st->nviewers);
    hlen = gw_fanout_text_header(frame, msg->len);
    memcpy(frame + hlen, msg->buf + LWS_PRE, msg->len);
    flen = hlen + msg->len;
    for (gw_session *v = st->head; v; v = v->next) {
        if (v->close_code)
            continue;
        if (v->pending || lws_partial_buffered(v->wsi)) {
            viewer_queue(s, v, msg);
            continue;
        }
        who[n] = v;
        fds[n] = lws_get_socket_fd(v->wsi);
        n++;
    }
    if (n >= GW_FANOUT_SPLIT_MIN && s->fanout == NULL)
        s->fanout = gw_fanout_new(GW_FANOUT_SPLIT_MIN); /* NULL: one thread does it all */
    gw_fanout_send(s->fanout, fds, sent, n, frame, flen);
    for (size_t i = 0; i < n; i++) {
        if (sent[i] == (ssize_t)flen) {
            s->m.pushes_sent++;
        } else if (sent[i] > 0) {
            if (lws_write(who[i]->wsi, frame + sent[i], flen - (size_t)sent[i], LWS_WRITE_RAW) < 0)
                lws_set_timeout(who[i]->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            else
                s->m.pushes_sent++;
        } else if (sent[i] == -EAGAIN || sent[i] == -EWOULDBLOCK || sent[i] == -ENOBUFS || sent[i] == -EINTR) {
            viewer_queue(s, who[i], msg);
        } else {
            lws_set_timeout(who[i]->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        }
    }
    free(who);
}

static void publish_count(gw_service *s, gw_stream *st, const gw_count *c)
{
    char buf[GW_COUNT_MSG_MAX];
    int n;
    gw_msg *msg;

    if (st->has_count && gw_count_equal(&st->count, c))
        return;
    n = gw_count_format(buf, sizeof(buf), st->id, c);
    if (n < 0 || (msg = gw_msg_new(buf, (size_t)n)) == NULL)
        return;
    msg->born_ms = gw_mono_ms();
    gw_msg_unref(st->msg);
    st->msg = msg;
    st->count = *c;
    st->has_count = 1;
    fan_out(s, st, msg);
    fanout_check(s, msg, st, 0);
}

void gw_proto_take_reader_results(gw_service *s)
{
    gw_reader_result *res;
    gw_ranking_result *rank;
    size_t nres, nrank;

    gw_reader_take(s->reader, &res, &nres, &rank, &nrank);
    for (size_t i = 0; i < nres; i++) {
        gw_stream *st = gw_idmap_get(s->streams, res[i].stream_id);

        if (st) {
            st->result_ms = gw_mono_ms();
            publish_count(s, st, &res[i].count);
        }
        for (gw_session **pp = &s->http_waiting; *pp;) {
            gw_session *h = *pp;

            if (h->waiting == 1 && h->api_id == res[i].stream_id) {
                *pp = h->http_next;
                h->http_next = NULL;
                h->waiting = 0;
                http_answer_count(h, res[i].stream_id, &res[i].count);
            } else
                pp = &h->http_next;
        }
    }
    for (size_t i = 0; i < nrank; i++) {
        rank_cache_put(s, &rank[i]);
        for (gw_session **pp = &s->http_waiting; *pp;) {
            gw_session *h = *pp;

            if (h->waiting == 2 && h->api_id == rank[i].category && h->api_limit == rank[i].limit) {
                *pp = h->http_next;
                h->http_next = NULL;
                h->waiting = 0;
                lws_set_timeout(h->wsi, NO_PENDING_TIMEOUT, 0);
                http_respond(h, h->wsi, rank[i].ok ? 200 : 503, 0, rank[i].json,
                             rank[i].json ? strlen(rank[i].json) : 0);
            } else
                pp = &h->http_next;
        }
        free(rank[i].json);
    }
    free(res);
    free(rank);
}

void gw_proto_take_history(gw_service *s)
{
    gw_history_answer *a;
    size_t n;

    gw_history_take(s->history, &a, &n);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(a[i].json);
        gw_shared_body *b = NULL;

        for (gw_session **pp = &s->http_waiting; *pp;) {
            gw_session *h = *pp;

            if (h->waiting == 3 && h->api_id == a[i].stream && h->api_limit == a[i].hours) {
                *pp = h->http_next;
                h->http_next = NULL;
                h->waiting = 0;
                lws_set_timeout(h->wsi, NO_PENDING_TIMEOUT, 0);
                /* one copy of the answer for all its waiters */
                if (b == NULL && (b = malloc(sizeof(*b) + LWS_PRE + len)) != NULL) {
                    b->refs = 0;
                    b->len = (uint32_t)len;
                    memcpy(b->data + LWS_PRE, a[i].json, len);
                }
                http_respond(h, h->wsi, (unsigned)a[i].status, GW_CT_JSON, "", 0);
                if (b == NULL) {
                    h->status = 500; /* out of memory */
                } else if (h->status == (uint16_t)a[i].status) {
                    h->shared = b;
                    b->refs++;
                    h->body_len = b->len;
                }
            } else
                pp = &h->http_next;
        }
        if (b != NULL && b->refs == 0)
            free(b);
        free(a[i].json);
    }
    free(a);
}

/* State of one walk over the streams (gw_idmap_each). */
typedef struct {
    gw_service *s;
    int64_t now;
    int64_t stale_ms;
    int64_t *ids;
    size_t n;
} walk;

static void sweep_stream(int64_t id, void *value, void *arg)
{
    walk *w = arg;
    const gw_config *cfg = w->s->cfg;
    gw_stream *st = value;

    (void)id;
    for (gw_session *v = st->head; v; v = v->next) {
        int64_t idle = w->now - v->last_rx_ms;

        if (v->close_code)
            continue;
        if (idle >= (int64_t)cfg->idle_timeout_seconds * 1000) {
            v->leave_reason = VC_LEAVE_HEARTBEAT_TIMEOUT;
            v->close_code = LWS_CLOSE_STATUS_NORMAL;
            lws_callback_on_writable(v->wsi);
        } else if (idle >= (int64_t)cfg->ping_seconds * 1000 &&
                   w->now - v->ping_ms >= (int64_t)cfg->ping_seconds * 1000) {
            v->ping_ms = w->now;
            v->ping_due = 1;
            lws_callback_on_writable(v->wsi);
        }
    }
}

void gw_proto_sweep(gw_service *s, int64_t now_mono)
{
    walk w = {s, now_mono, 0, NULL, 0};

    gw_idmap_each(s->streams, sweep_stream, &w);
}

static void shutdown_stream(int64_t id, void *value, void *arg)
{
    walk *w = arg;
    gw_stream *st = value;

    (void)id;
    for (gw_session *v = st->head; v; v = v->next) {
        viewer_leave(w->s, v, VC_LEAVE_GATEWAY_SHUTDOWN);
        v->close_code = LWS_CLOSE_STATUS_GOINGAWAY;
        lws_callback_on_writable(v->wsi);
    }
}

void gw_proto_shutdown(gw_service *s)
{
    walk w = {s, 0, 0, NULL, 0};

    gw_idmap_each(s->streams, shutdown_stream, &w);
}

static void sync_stream(int64_t id, void *value, void *arg)
{
    walk *w = arg;
    gw_stream *st = value;
    int32_t chunks = (int32_t)((st->nviewers + VC_SYNC_VIEWERS_MAX - 1) / VC_SYNC_VIEWERS_MAX);
    vc_sync_viewer *vs = malloc(sizeof(*vs) * VC_SYNC_VIEWERS_MAX);
    gw_session *v = st->head;
    int64_t snapshot = ++w->s->snapshot_id;

    if (vs == NULL)
        return;
    for (int32_t c = 0; c < chunks; c++) {
        vc_event ev;
        size_t n = 0;

        for (; v && n < VC_SYNC_VIEWERS_MAX; v = v->next) {
            if (v->left)
                continue;
            vs[n].conn_id = v->conn_id;
            vs[n].user_id = v->user_id;
            vs[n].joined_ms = v->joined_ms;
            n++;
        }
        vc_event_init(&ev);
        ev.type = VC_EV_SYNC;
        ev.stream_id = id;
        ev.snapshot_id = snapshot;
        ev.chunk = c;
        ev.chunks = chunks;
        ev.nviewers = n;
        ev.viewers = vs; /* borrowed: not freed through the event */
        if (gw_producer_send(w->s->prod, &ev, -1, gw_now_ms()) == 0)
            w->s->m.sync_chunks++;
    }
    w->s->m.syncs++;
    free(vs);
}

int gw_proto_send_sync(gw_service *s)
{
    walk w = {s, 0, 0, NULL, 0};

    gw_idmap_each(s->streams, sync_stream, &w);
    return 0;
}

static void collect_id(int64_t id, void *value, void *arg)
{
    walk *w = arg;

    (void)value;
    w->ids[w->n++] = id;
}

void gw_proto_post_streams(gw_service *s)
{
    walk w = {s, 0, 0, NULL, 0};
    size_t n = gw_idmap_size(s->streams);

    w.ids = malloc((n ? n : 1) * sizeof(int64_t));
    if (w.ids == NULL)
        return;
    gw_idmap_each(s->streams, collect_id, &w);
    gw_reader_post_streams(s->reader, w.ids, w.n);
}

static void stall_stream(int64_t id, void *value, void *arg)
{
    walk *w = arg;
    gw_stream *st = value;

    (void)id;
    if (st->has_count && (st->count.status == GW_COUNT_LIVE || st->count.status == GW_COUNT_SYNCING) &&
        w->now - st->result_ms > w->stale_ms) {
        gw_count c = st->count;

        c.status = GW_COUNT_STALE;
        publish_count(w->s, st, &c);
    }
}

void gw_proto_mark_stalled(gw_service *s, int64_t now_mono, int64_t stale_ms)
{
    walk w = {s, now_mono, stale_ms, NULL, 0};

    gw_idmap_each(s->streams, stall_stream, &w);
}
