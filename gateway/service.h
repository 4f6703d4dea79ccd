/* service.h -- what the protocol callback (ws_proto.c) and the service
 * (gateway.c) share. Internal to the gateway. Everything here lives on the
 * loop thread. */
#ifndef GW_SERVICE_H
#define GW_SERVICE_H

#include <libwebsockets.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "count.h"
#include "idmap.h"
#include "limiter.h"
#include "metrics.h"
#include "parse.h"
#include "producer.h"
#include "reader.h"
#include "token.h"

#define GW_FRAME_MAX 4096        /* largest client message; over it: close 1009 */

/* A count message shared by every viewer of a stream (refcounted), with the
 * LWS_PRE headroom lws_write() needs. */
typedef struct gw_msg {
    uint32_t refs;
    uint32_t len;
    int64_t born_ms;            /* monotonic: when the reader's result was published */
    int fanned_out;             /* every viewer of the publish has been written to */
    unsigned char buf[];
} gw_msg;

gw_msg *gw_msg_new(const char *text, size_t len);
gw_msg *gw_msg_ref(gw_msg *m);
void gw_msg_unref(gw_msg *m); /* accepts NULL */

struct gw_session;

typedef struct gw_stream {
    int64_t id;
    struct gw_session *head;    /* viewers, doubly linked */
    uint32_t nviewers;
    int has_count;
    gw_count count;             /* what was pushed last */
    gw_msg *msg;                /* its message */
    int64_t result_ms;          /* when the reader last answered for it (monotonic) */
} gw_stream;

enum {
    GW_SESS_HTTP = 0,
    GW_SESS_VIEWER,             /* upgraded, joined */
};

/* Per-connection state: lws allocates it (per_session_data_size) and frees
 * it; keep it small, it is most of a viewer's cost. */
/* One HTTP answer shared by every request that waited for it (a crowd opening
 * a star's page at once gets one copy, not one each): counted references, freed
 * after the last one is written or its connection closes. */
typedef struct gw_shared_body {
    uint32_t refs;
    uint32_t len;
    unsigned char data[];       /* LWS_PRE headroom, then len bytes */
} gw_shared_body;

typedef struct gw_session {
    struct lws *wsi;
    gw_stream *stream;
    struct gw_session *prev, *next;
    gw_msg *pending;            /* the one count message waiting to be sent */
    int64_t stream_id, user_id, conn_id, joined_ms;
    int64_t last_rx_ms, ping_ms;
    char *rx;                   /* reassembly of a fragmented message, while in flight */
    uint16_t rxlen;
    uint16_t close_code;        /* close with this at the next WRITEABLE */
    uint8_t kind;
    uint8_t admitted : 1, joined : 1, left : 1, pong_due : 1, ping_due : 1, upgrading : 1;
    uint8_t corked : 1;         /* TCP_CORK from the upgrade until the first count is written */
    uint8_t leave_reason;       /* vc_leave_reason when we end it */
    uint8_t reject;             /* gw_reject cause behind close_code */
    uint8_t token_rc;           /* gw_token_rc behind a 4401 */
    uint8_t ctype;              /* HTTP: content type, GW_CT_* (web.h) */
    char ip[46];
    /* HTTP only */
    struct gw_session *http_next;
    unsigned char *body;        /* LWS_PRE headroom, then body_len bytes */
    uint32_t body_len;
    uint16_t status;
    const unsigned char *body_static; /* a static file's body in memory (web.h), instead of body */
    struct gw_shared_body *shared; /* or a body shared with other requests (history answers) */
    const char *etag;           /* its ETag, sent with it */
    uint8_t waiting;            /* 1: stream read, 2: ranking, 3: history */
    int64_t api_id;             /* stream id, or category for the ranking */
    int api_limit;              /* ranking limit, or history hours */
} gw_session;

/* A ranking answer kept for a tick, so API polling costs one Redis read per
 * (category, limit) per tick. */
#define GW_RANK_CACHE 16
typedef struct {
    int64_t category;
    int limit;
    int ok;
    int64_t at_ms;              /* monotonic; 0: empty */
    char *json;
} gw_rank_cached;

typedef struct gw_service {
    const gw_config *cfg;
    uv_loop_t loop;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    gw_producer *prod;
    gw_reader *reader;
    struct gw_catalog *catalog;   /* the web page's catalog (web.h), NULL: none */
    struct gw_history *history;   /* stream history reads (history.h), NULL: no database */
    struct gw_web_files *web;     /* the web page's files in memory (web.h), NULL: no web root */
    gw_limiter *lim;
    gw_idmap *streams;          /* id -> gw_stream */
    gw_metrics m;
    int64_t epoch_ms;
    uint32_t conn_counter;
    int64_t snapshot_id;
    uv_timer_t t_poll, t_tick, t_heartbeat, t_sync, t_sweep, t_drain;
    uv_signal_t sig_term, sig_int;
    uv_poll_t listen_poll;      /* our own listening socket; lws adopts what it accepts */
    uv_timer_t t_accept;        /* accept paused after EMFILE */
    int listen_fd;
    int handles_open;
    int shutting_down;
    int64_t drain_deadline_ms;
    int stopped;
    gw_session *http_waiting;   /* API requests waiting for the reader */
    gw_rank_cached rank_cache[GW_RANK_CACHE];
    uint32_t nviewers;          /* joined viewer sessions */
    uint32_t nsessions;         /* upgraded sessions, joined or being rejected */
    /* The peer address confirm_upgrade looked up, reused by the
     * filter_connection that lws calls next for the same wsi (one
     * getpeername() per handshake instead of two). */
    struct lws *peer_wsi;
    char peer_ip[46];
    struct gw_fanout *fanout;   /* helper thread of large fan-outs, started by the first one (ws_proto.c) */
} gw_service;

int64_t gw_now_ms(void);        /* wall clock */
/* How long without a Redis answer before counts are shown stale and the
 * gateway is not ready: three ticks, at least 2 s. */
int64_t gw_stale_ms(const gw_config *cfg);
int64_t gw_mono_ms(void);

/* Protocol callback (ws_proto.c). */
int gw_proto_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

/* ws_proto.c, called by gateway.c on the loop thread. */
void gw_proto_take_reader_results(gw_service *s);
void gw_proto_take_history(gw_service *s);
void gw_proto_sweep(gw_service *s, int64_t now_mono);
void gw_proto_shutdown(gw_service *s);
int gw_proto_send_sync(gw_service *s);
void gw_proto_post_streams(gw_service *s);
/* The ranking cache and the fan-out helper thread (after the context is gone). */
void gw_proto_free_caches(gw_service *s);
/* Streams the reader has not answered for since stale_ms: show their last
 * value as stale (the reader may be stuck on an unresponsive Redis). */
void gw_proto_mark_stalled(gw_service *s, int64_t now_mono, int64_t stale_ms);

#endif
