/* gateway.c -- the service object: a libuv loop shared with libwebsockets
 * (a "foreign" loop, so the timers and signals below live on it too), the
 * producer, the reader thread, and the drain on SIGTERM (see gateway.h). */
#include "gateway.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "history.h"
#include "service.h"
#include "web.h"

#define POLL_MS 20
#define SWEEP_MS 1000
#define LIMITER_MAX_IPS 1000000
#define ACCEPT_BATCH 256        /* connections accepted per wake-up */
#define ACCEPT_PAUSE_MS 100     /* after EMFILE: let connections close first */

int64_t gw_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t gw_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t gw_stale_ms(const gw_config *cfg)
{
    int64_t ms = 3 * (int64_t)cfg->tick_ms;

    return ms > 2000 ? ms : 2000;
}

static const struct lws_protocols protocols[] = {
    {
        .name = "vc-viewer",
        .callback = gw_proto_callback,
        .per_session_data_size = sizeof(gw_session),
        /* Client messages are tiny; lws allocates this per connection. */
        .rx_buffer_size = 128,
        /* A send cap only (0 would cap sends at rx_buffer_size). */
        .tx_packet_size = 4096,
    },
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* No lws validity timer per connection: lws 4.1 keeps its timers in one
 * sorted list, so a per-connection timer costs O(connections) to insert and
 * re-arm on every pong. Liveness is the sweep in ws_proto.c instead. */
static const lws_retry_bo_t no_validity = {
    .secs_since_valid_ping = 0,
    .secs_since_valid_hangup = 0,
};

static void wake_loop(void *arg)
{
    gw_service *s = arg;

    lws_cancel_service(s->ctx);
}

static void on_poll(uv_timer_t *t)
{
    gw_service *s = t->data;

    gw_producer_poll(s->prod);
    if (gw_producer_take_recovered(s->prod) && !s->shutting_down)
        gw_proto_send_sync(s); /* repair whatever was lost during the outage */
}

static void on_tick(uv_timer_t *t)
{
    gw_service *s = t->data;

    if (s->shutting_down)
        return;
    gw_proto_post_streams(s);
    gw_proto_mark_stalled(s, gw_mono_ms(), gw_stale_ms(s->cfg));
}

static void on_heartbeat(uv_timer_t *t)
{
    gw_service *s = t->data;

    if (!s->shutting_down)
        s->m.heartbeats += gw_producer_heartbeat(s->prod, gw_now_ms()) > 0;
}

static void on_sync(uv_timer_t *t)
{
    gw_service *s = t->data;

    if (!s->shutting_down)
        gw_proto_send_sync(s);
}

static void on_sweep(uv_timer_t *t)
{
    gw_service *s = t->data;
    int64_t now = gw_mono_ms();

    gw_proto_sweep(s, now);
    gw_limiter_sweep(s->lim, now);
}

static void on_drain(uv_timer_t *t)
{
    gw_service *s = t->data;
    int64_t now = gw_mono_ms();

    gw_producer_poll(s->prod);
    /* Every viewer closed (or the first half of the budget spent): flush the
     * producer with what remains, then leave the loop. */
    if (s->nsessions == 0 || now >= s->drain_deadline_ms - (int64_t)s->cfg->shutdown_seconds * 500) {
        int budget = (int)(s->drain_deadline_ms - now) - 500;
        int left = gw_producer_flush(s->prod, budget > 0 ? budget : 0);

        if (left > 0)
            fprintf(stderr, "vc-gateway: %d events not flushed at shutdown\n", left);
        s->stopped = 1;
        uv_stop(&s->loop);
    }
}

/* The listening socket is ours, not lws's: SO_REUSEPORT when asked, a
 * batch of accepts per wake-up, and closing it stops accepting at once. */
static int listen_open(const gw_config *cfg, char *errstr, size_t errstr_size)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0) {
        snprintf(errstr, errstr_size, "socket: %s", strerror(errno));
        return -1;
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)cfg->port);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Accepted sockets inherit TCP_NODELAY from the listener (Linux): no
     * setsockopt() per connection. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if ((cfg->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 4096) != 0) {
        snprintf(errstr, errstr_size, "cannot listen on port %d: %s", cfg->port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void on_readable(uv_poll_t *h, int status, int events);

static void on_accept_resume(uv_timer_t *t)
{
    gw_service *s = t->data;

    if (s->listen_fd >= 0 && !uv_is_closing((uv_handle_t *)&s->listen_poll))
        uv_poll_start(&s->listen_poll, UV_READABLE, on_readable);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    gw_service *s = h->data;

    (void)status;
    (void)events;
    for (int i = 0; i < ACCEPT_BATCH && !uv_is_closing((uv_handle_t *)&s->listen_poll); i++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                s->m.accept_errors++;
                uv_poll_stop(&s->listen_poll);
                uv_timer_start(&s->t_accept, on_accept_resume, ACCEPT_PAUSE_MS, 0);
            }
            return;
        }
        if (lws_adopt_socket_vhost(s->vh, fd) == NULL) /* lws closed fd */
            s->m.accept_errors++;
    }
}

static void on_listen_closed(uv_handle_t *h)
{
    gw_service *s = h->data;

    close(s->listen_fd);
    s->listen_fd = -1;
}

/* Stop accepting: the fd is closed once libuv has let go of it. */
static void listen_stop(gw_service *s)
{
    if (s->listen_fd < 0 || uv_is_closing((uv_handle_t *)&s->listen_poll))
        return;
    uv_timer_stop(&s->t_accept);
    uv_close((uv_handle_t *)&s->listen_poll, on_listen_closed);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    gw_service *s = sig->data;

    if (s->shutting_down)
        return;
    fprintf(stderr, "vc-gateway: signal %d: draining %u viewers\n", signum, s->nviewers);
    s->shutting_down = 1;
    listen_stop(s); /* new connections are refused: clients go to another gateway */
    s->drain_deadline_ms = gw_mono_ms() + (int64_t)s->cfg->shutdown_seconds * 1000;
    gw_proto_shutdown(s);
    uv_timer_start(&s->t_drain, on_drain, 20, 20);
}

gw_service *gw_service_new(const gw_config *cfg, char *errstr, size_t errstr_size)
{
    gw_service *s = calloc(1, sizeof(*s));
    struct lws_context_creation_info info;
    gw_reader_conf rc;
    void *loops[1];
    uv_timer_t *timers[7];

    if (s == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    s->listen_fd = -1;
    s->epoch_ms = gw_now_ms();
    if (uv_loop_init(&s->loop) != 0) {
        snprintf(errstr, errstr_size, "uv_loop_init failed");
        free(s);
        return NULL;
    }
    s->streams = gw_idmap_new();
    s->lim = gw_limiter_new((uint32_t)cfg->max_conns_per_ip, (uint32_t)cfg->handshakes_per_ip_per_sec, LIMITER_MAX_IPS);
    if (s->streams == NULL || s->lim == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    /* The web page's files, read once here and served from memory. */
    if (cfg->web_root && cfg->web_root[0]) {
        s->web = gw_web_files_load(cfg->web_root, GW_WEB_TOTAL_MAX, errstr, errstr_size);
        if (s->web == NULL)
            goto fail;
    }
    s->prod = gw_producer_new(cfg->kafka_brokers, cfg->events_topic, cfg->gateway_id, s->epoch_ms,
                              cfg->kafka_queue_max, errstr, errstr_size);
    if (s->prod == NULL)
        goto fail;

    lws_set_log_level(cfg->log_level, NULL);
    memset(&info, 0, sizeof(info));
    loops[0] = &s->loop;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* we listen (listen_open) and lws adopts */
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE |
                   LWS_SERVER_OPTION_DISABLE_IPV6;
    info.foreign_loops = loops;
    info.user = s;
    info.pcontext = &s->ctx;
    info.timeout_secs = (unsigned)cfg->handshake_timeout_seconds;
    info.timeout_secs_ah_idle = (unsigned)cfg->handshake_timeout_seconds;
    info.max_http_header_data = 4096;
    info.max_http_header_pool = 256;
    info.pt_serv_buf_size = 4096;
    info.retry_and_idle_policy = &no_validity;
    info.ka_time = 60;
    info.ka_probes = 3;
    info.ka_interval = 10;
    /* An explicit vhost, so a port that cannot be bound is an error here
     * (lws would otherwise start a context that listens nowhere). */
    info.options |= LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    s->ctx = lws_create_context(&info);
    if (s->ctx == NULL) {
        snprintf(errstr, errstr_size, "libwebsockets context creation failed");
        goto fail;
    }
    s->vh = lws_create_vhost(s->ctx, &info);
    if (s->vh == NULL) {
        snprintf(errstr, errstr_size, "libwebsockets vhost creation failed");
        goto fail;
    }
    s->listen_fd = listen_open(cfg, errstr, errstr_size);
    if (s->listen_fd < 0)
        goto fail;

    memset(&rc, 0, sizeof(rc));
    rc.redis_nodes = cfg->redis_nodes;
    rc.redis_timeout_ms = cfg->redis_timeout_ms;
    rc.mysql_host = cfg->mysql_reader_host[0] ? cfg->mysql_reader_host : cfg->mysql_host;
    rc.mysql_port = cfg->mysql_reader_host[0] && cfg->mysql_reader_port ? cfg->mysql_reader_port : cfg->mysql_port;
    rc.mysql_user = cfg->mysql_user;
    rc.mysql_password = cfg->mysql_password;
    rc.mysql_db = cfg->mysql_db;
    rc.producer = s->prod;
    rc.wake = wake_loop;
    rc.wake_arg = s;
    s->reader = gw_reader_new(&rc, errstr, errstr_size);
    if (s->reader == NULL)
        goto fail;
    if (cfg->catalog_seconds > 0 && rc.mysql_host && rc.mysql_host[0]) {
        gw_catalog_conf cc = {rc.mysql_host, rc.mysql_port, rc.mysql_user, rc.mysql_password, rc.mysql_db,
                              cfg->catalog_seconds * 1000};

        s->catalog = gw_catalog_new(&cc, errstr, errstr_size);
        if (s->catalog == NULL)
            goto fail;
    }
    /* Stream history: the reader replica (else the writer), a thread of its own. */
    if (rc.mysql_host && rc.mysql_host[0]) {
        gw_history_conf hc = {rc.mysql_host, rc.mysql_port, rc.mysql_user, rc.mysql_password, rc.mysql_db,
                              cfg->history_cache_seconds * 1000, wake_loop, s};

        s->history = gw_history_new(&hc, errstr, errstr_size);
        if (s->history == NULL)
            goto fail;
    }

    timers[0] = &s->t_poll;
    timers[1] = &s->t_tick;
    timers[2] = &s->t_heartbeat;
    timers[3] = &s->t_sync;
    timers[4] = &s->t_sweep;
    timers[5] = &s->t_drain;
    timers[6] = &s->t_accept;
    for (int i = 0; i < 7; i++) {
        uv_timer_init(&s->loop, timers[i]);
        timers[i]->data = s;
    }
    uv_signal_init(&s->loop, &s->sig_term);
    uv_signal_init(&s->loop, &s->sig_int);
    s->sig_term.data = s->sig_int.data = s;
    uv_poll_init(&s->loop, &s->listen_poll, s->listen_fd);
    s->listen_poll.data = s;
    s->handles_open = 1;
    uv_poll_start(&s->listen_poll, UV_READABLE, on_readable);
    uv_timer_start(&s->t_poll, on_poll, POLL_MS, POLL_MS);
    uv_timer_start(&s->t_tick, on_tick, (uint64_t)cfg->tick_ms, (uint64_t)cfg->tick_ms);
    uv_timer_start(&s->t_heartbeat, on_heartbeat, 1000, (uint64_t)cfg->heartbeat_seconds * 1000);
    uv_timer_start(&s->t_sync, on_sync, (uint64_t)cfg->sync_seconds * 1000, (uint64_t)cfg->sync_seconds * 1000);
    uv_timer_start(&s->t_sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    return s;
fail:
    gw_service_destroy(s);
    return NULL;
}

int gw_service_run(gw_service *s)
{
    fprintf(stderr, "vc-gateway %s: listening on port %d\n", s->cfg->gateway_id, s->cfg->port);
    while (!s->stopped)
        if (uv_run(&s->loop, UV_RUN_DEFAULT) == 0 && !s->stopped)
            return -1; /* nothing left to run: should not happen */
    return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

void gw_service_destroy(gw_service *s)
{
    if (s == NULL)
        return;
    if (s->handles_open)
        listen_stop(s); /* closes the fd in the loop runs below */
    else if (s->listen_fd >= 0)
        close(s->listen_fd);
    /* The reader calls lws_cancel_service(): stop it before the context goes. */
    gw_reader_destroy(s->reader);
    s->reader = NULL;
    gw_catalog_destroy(s->catalog);
    s->catalog = NULL;
    gw_history_destroy(s->history); /* it calls lws_cancel_service() too */
    s->history = NULL;
    if (s->handles_open) {
        uv_handle_t *hs[] = {(uv_handle_t *)&s->t_poll, (uv_handle_t *)&s->t_tick,     (uv_handle_t *)&s->t_heartbeat,
                             (uv_handle_t *)&s->t_sync, (uv_handle_t *)&s->t_sweep,    (uv_handle_t *)&s->t_drain,
                             (uv_handle_t *)&s->sig_term, (uv_handle_t *)&s->sig_int, (uv_handle_t *)&s->t_accept};

        for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++)
            uv_close(hs[i], on_handle_closed);
    }
    /* On a foreign loop lws 4.1 destroys in two stages: the first call
     * closes its handles, which needs the loop to run; the second, after
     * that, frees the context and clears s->ctx (info.pcontext). */
    if (s->ctx)
        lws_context_destroy(s->ctx);
    for (int i = 0; i < 1000 && uv_run(&s->loop, UV_RUN_NOWAIT); i++)
        ;
    if (s->ctx)
        lws_context_destroy(s->ctx);
    for (int i = 0; i < 1000 && uv_run(&s->loop, UV_RUN_NOWAIT); i++)
        ;
    uv_loop_close(&s->loop);
    gw_producer_destroy(s->prod);
    if (s->streams) {
        /* Sessions are gone with the context; only empty streams could remain. */
        gw_idmap_destroy(s->streams);
    }
    gw_limiter_destroy(s->lim);
    gw_proto_free_caches(s);
    gw_web_files_free(s->web); /* after the context: sessions may point into it until then */
    free(s);
}
