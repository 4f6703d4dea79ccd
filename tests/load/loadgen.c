/* vc-loadgen -- viewers as real WebSocket clients, and the ground truth.
 *
 * The controller (this file) decides who watches what: N viewer sessions
 * over S streams with Zipf popularity, exponential watch times (churn), some
 * users with two tabs, refreshes, and a spike (a star goes live: X viewers in
 * Y seconds), once or every --spike-every seconds (the star ends after
 * --spike-length and its viewers leave; lg_spike.c says when). Forked workers (lg_worker.c) hold the connections, each from
 * its own 127.(10+w).x.y source addresses, and report what they are pushed.
 *
 * At checkpoints (and at the end) churn pauses and the controller waits,
 * bounded by --converge-timeout, until for every stream the count pushed to
 * each of its tabs, GET /api/streams/<id> on every gateway and the Redis
 * stream hash all equal the truth exactly; streams that do not are reported.
 * At the very end every tab closes and everything must come back to zero
 * with no per-viewer state left in Redis. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lg_check.h"
#include "lg_model.h"
#include "lg_spike.h"
#include "lg_worker.h"
#include "vc_redis.h"

#define MAX_WORKERS 128
#define MAX_AT 16
#define MAX_CHECKPOINTS 32
#define API_SRC ((127u << 24) | (9u << 16) | 1u) /* 127.9.0.1 */

typedef struct {
    int64_t viewers, streams;
    double zipf, tabs_fraction, refresh_fraction, churn_s, duration_s, ramp_s;
    int64_t spike_x;
    double spike_y, spike_at, spike_every, spike_length;
    int ngw;
    struct sockaddr_in gw[LG_GW_MAX];
    char gw_host[LG_GW_MAX][32];
    const char *report;
    double converge_timeout_s, drain_timeout_s;
    double checkpoints[MAX_CHECKPOINTS];
    int ncheckpoints;
    double at_time[MAX_AT];
    const char *at_cmd[MAX_AT];
    int nat;
    int workers, ips_per_worker;
    uint64_t seed;
    int64_t stream_base, user_base;
    int partitions;
    const char *redis_nodes, *secret;
    int drain_check;
    double progress_s;
    int arrival_by_stream;
    int max_handshakes;
} options;

typedef struct {
    int64_t user;
    int sidx;
    uint8_t active, pending, spike, tabs; /* tabs: bit 0 tab 1, bit 1 tab 2 */
    uint8_t preset;                       /* sidx was chosen in advance (--arrival-by-stream) */
    double start_at, end_at, tab2_close_at, refresh_at;
} session;

typedef struct {
    uint32_t gen;
    uint8_t open, est, st;
    uint8_t gw;
    int sidx;
    int64_t pushed;
} slot;

typedef struct {
    pid_t pid;
    int cmd_fd, rep_fd;
    lg_outq q;
    char buf[sizeof(lg_rep) * 512];
    size_t len;
    int dead;
} wproc;

typedef struct {
    options o;
    lg_rng rng;
    lg_zipf zipf;
    int nstreams;
    int64_t *ids;
    int64_t *truth, *truth_peak;
    int64_t *conns, *sessions; /* per stream: connections established, sessions started */
    int64_t *unknown;          /* per stream: handshakes that timed out after the request */
    double *truth_changed;
    session *sess;
    size_t nsess;
    slot *slots;
    size_t nslots;
    wproc w[MAX_WORKERS];
    int nw;
    int64_t next_user;
    uint32_t gw_rr;
    double t_start, paused;
    vc_redis *redis;
    /* counters */
    int64_t opens, closes, refreshes, est, downs, fails, pushes, session_starts, session_ends;
    int64_t fail_codes[1024], down_codes[5000];
    int64_t hs_hist[64];
    int64_t last_est, last_closes, last_opens, last_pushes;
    json_t *checkpoints_json, *commands_json;
    pid_t at_pid[MAX_AT];
    int at_started[MAX_AT], at_failed;
    int any_mismatch;
    size_t ramp_next;     /* the first sessions start in index order: the next one */
    lg_spike_plan plan;
    int spike_k;                      /* the spike being scheduled or live; -1: none left */
    int64_t spike_pending;            /* its sessions not started yet */
    int64_t spike_sessions, spike_peak; /* its sessions started (churn included), the star's peak */
    json_t *spikes_json;
    double active_due;    /* earliest churn/tab/refresh time of an active session */
    int quitting; /* workers were told to quit: their exit is expected */
} lg;

/* The slots of session i's tabs: consecutive sessions' first tabs land on
 * consecutive workers (slot % workers), whatever the number of workers. */
#define TAB1(g, i) ((uint32_t)(i))
#define TAB2(g, i) ((uint32_t)((g)->nsess + (i)))

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double sim_now(const lg *g)
{
    return mono_s() - g->t_start - g->paused;
}

/* ---------------------------------------------------------------- options */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vc-loadgen [options]\n"
            "Viewers as real WebSocket clients with real tokens; checks that pushed counts,\n"
            "GET /api/streams/<id> and Redis converge exactly to the ground truth.\n\n"
            "  --viewers N            concurrent viewer sessions (default 1000)\n"
            "  --streams S            streams, Zipf popularity (default 50)\n"
            "  --zipf s               Zipf exponent (default 1.0)\n"
            "  --tabs-fraction f      share of users with a second tab (default 0.2)\n"
            "  --refresh-fraction f   share of sessions that refresh once (default 0.1)\n"
            "  --churn-seconds T      mean watch time; 0 = no churn (default 900)\n"
            "  --spike X:Y            a star goes live: X viewers arrive within Y seconds\n"
            "  --spike-at T           when the (first) spike starts (default duration/3)\n"
            "  --spike-every P        a new spike every P seconds for the whole run (default 0: one spike)\n"
            "  --spike-length L       the star ends L seconds after its spike starts and its viewers leave\n"
            "                         (default: never for one spike, 2/3 of P with --spike-every)\n"
            "  --duration D           seconds of load, not counting checkpoints (default 60)\n"
            "  --ramp R               seconds over which the first viewers arrive (default viewers/400, >= 1)\n"
            "  --gateways LIST        host:port or ws://host:port/ws, comma-separated (loopback only);\n"
            "                         default: every gateway listening on VC_PORT_BASE+20..29, else VC_GATEWAY_WS\n"
            "  --checkpoints T1,T2..  convergence checks at these load times (and always at the end)\n"
            "  --converge-timeout S   bound of each convergence check (default 15)\n"
            "  --drain-timeout S      bound of the final check after every viewer left (default = converge timeout)\n"
            "  --no-drain-check       skip that final check\n"
            "  --at T:COMMAND         run COMMAND (sh -c) at load time T; repeatable (fault injection)\n"
            "  --report FILE          write the machine-readable JSON report\n"
            "  --workers W            worker processes (default: one per 15000 tabs, at least 2)\n"
            "  --ips-per-worker K     source addresses per worker (default 64)\n"
            "  --seed N               seed of the model (default 1)\n"
            "  --stream-base ID       first stream id (default 1000)\n"
            "  --user-base ID         first user id (default 1000000)\n"
            "  --partitions P         partitions of the events topic (default VC_EVENTS_PARTITIONS or 12)\n"
            "  --redis-nodes LIST     Redis Cluster nodes (default VC_REDIS_NODES)\n"
            "  --token-secret S       HS256 secret (default VC_TOKEN_SECRET)\n"
            "  --progress S           seconds between progress lines (default 1 on a terminal, else 5)\n"
            "  --max-handshakes N     handshakes in flight per worker at most; the others wait in the worker\n"
            "                         (default 0: no bound, every open connects at once)\n"
            "  --arrival-by-stream    the first viewers arrive stream after stream (same Zipf shares), so\n"
            "                         that few streams change per tick while a large ramp fills (headline run)\n"
            "Exit status: 0 every check converged, 1 a mismatch or a failed --at command, 2 usage/setup.\n");
}

static int parse_double(const char *s, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(s, &end);
    return errno || end == s || *end || *out < 0 ? -1 : 0;
}

static int parse_i64(const char *s, int64_t *out)
{
    char *end;

    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno || end == s || *end || *out < 0 ? -1 : 0;
}

static int add_gateway(options *o, const char *spec, size_t len)
{
    char buf[128], *p, *colon;
    long port;

    if (len >= sizeof(buf) || o->ngw >= LG_GW_MAX)
        return -1;
    memcpy(buf, spec, len);
    buf[len] = '\0';
    p = buf;
    if (strncmp(p, "ws://", 5) == 0)
        p += 5;
    if (strchr(p, '/'))
        *strchr(p, '/') = '\0';
    colon = strrchr(p, ':');
    if (colon == NULL)
        return -1;
    *colon = '\0';
    port = strtol(colon + 1, NULL, 10);
    memset(&o->gw[o->ngw], 0, sizeof(o->gw[0]));
    o->gw[o->ngw].sin_family = AF_INET;
    o->gw[o->ngw].sin_port = htons((uint16_t)port);
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, p, &o->gw[o->ngw].sin_addr) != 1 ||
        (ntohl(o->gw[o->ngw].sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "vc-loadgen: gateway '%s': need a loopback address 127.x.y.z:port\n", buf);
        return -1;
    }
    if (strlen(p) > 16)
        return -1;
    snprintf(o->gw_host[o->ngw], sizeof(o->gw_host[0]), "%.16s:%ld", p, port);
    o->ngw++;
    return 0;
}

static int add_gateways(options *o, const char *list)
{
    while (*list) {
        size_t n = strcspn(list, ",");

        if (n && add_gateway(o, list, n))
            return -1;
        list += n;
        if (*list == ',')
            list++;
    }
    return 0;
}

static int port_listens(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;

    if (fd < 0)
        return 0;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    return rc == 0;
}

static int parse_options(options *o, int argc, char **argv)
{
    const char *env;

    memset(o, 0, sizeof(*o));
    o->viewers = 1000;
    o->streams = 50;
    o->zipf = 1.0;
    o->tabs_fraction = 0.2;
    o->refresh_fraction = 0.1;
    o->churn_s = 900;
    o->duration_s = 60;
    o->ramp_s = -1;
    o->spike_at = -1;
    o->spike_length = -1;
    o->converge_timeout_s = 15;
    o->drain_timeout_s = -1;
    o->ips_per_worker = 64;
    o->seed = 1;
    o->stream_base = 1000;
    o->user_base = 1000000;
    o->drain_check = 1;
    o->progress_s = isatty(2) ? 1 : 5;
    env = getenv("VC_EVENTS_PARTITIONS");
    o->partitions = env ? (int)strtol(env, NULL, 10) : 12;
    if (o->partitions < 1)
        o->partitions = 12;
    o->redis_nodes = getenv("VC_REDIS_NODES");
    o->secret = getenv("VC_TOKEN_SECRET");

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n;
        double d;
        int bad = 0, takes = 1;

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--no-drain-check")) {
            o->drain_check = 0;
            takes = 0;
        } else if (!strcmp(a, "--arrival-by-stream")) {
            o->arrival_by_stream = 1;
            takes = 0;
        } else if (v == NULL) {
            fprintf(stderr, "vc-loadgen: %s needs a value (see --help)\n", a);
            return -1;
        } else if (!strcmp(a, "--viewers")) {
            bad = parse_i64(v, &o->viewers);
        } else if (!strcmp(a, "--streams")) {
            bad = parse_i64(v, &o->streams) || o->streams < 1;
        } else if (!strcmp(a, "--zipf")) {
            bad = parse_double(v, &o->zipf);
        } else if (!strcmp(a, "--tabs-fraction")) {
            bad = parse_double(v, &o->tabs_fraction) || o->tabs_fraction > 1;
        } else if (!strcmp(a, "--refresh-fraction")) {
            bad = parse_double(v, &o->refresh_fraction) || o->refresh_fraction > 1;
        } else if (!strcmp(a, "--churn-seconds")) {
            bad = parse_double(v, &o->churn_s);
        } else if (!strcmp(a, "--spike")) {
            char *end;

            o->spike_x = strtoll(v, &end, 10);
            bad = *end != ':' || o->spike_x < 0 || parse_double(end + 1, &o->spike_y);
        } else if (!strcmp(a, "--spike-at")) {
            bad = parse_double(v, &o->spike_at);
        } else if (!strcmp(a, "--spike-every")) {
            bad = parse_double(v, &o->spike_every) || o->spike_every <= 0;
        } else if (!strcmp(a, "--spike-length")) {
            bad = parse_double(v, &o->spike_length) || o->spike_length <= 0;
        } else if (!strcmp(a, "--duration")) {
            bad = parse_double(v, &o->duration_s);
        } else if (!strcmp(a, "--ramp")) {
            bad = parse_double(v, &o->ramp_s);
        } else if (!strcmp(a, "--gateways")) {
            bad = add_gateways(o, v);
        } else if (!strcmp(a, "--checkpoints")) {
            for (const char *p = v; *p;) {
                char *end;

                if (o->ncheckpoints == MAX_CHECKPOINTS) {
                    bad = 1;
                    break;
                }
                o->checkpoints[o->ncheckpoints++] = strtod(p, &end);
                if (end == p || (*end && *end != ',')) {
                    bad = 1;
                    break;
                }
                p = *end ? end + 1 : end;
            }
        } else if (!strcmp(a, "--converge-timeout")) {
            bad = parse_double(v, &o->converge_timeout_s);
        } else if (!strcmp(a, "--drain-timeout")) {
            bad = parse_double(v, &o->drain_timeout_s);
        } else if (!strcmp(a, "--at")) {
            char *end;

            if (o->nat == MAX_AT) {
                bad = 1;
            } else {
                o->at_time[o->nat] = strtod(v, &end);
                bad = end == v || *end != ':' || !end[1];
                o->at_cmd[o->nat++] = end + 1;
            }
        } else if (!strcmp(a, "--report")) {
            o->report = v;
        } else if (!strcmp(a, "--workers")) {
            bad = parse_i64(v, &n) || n < 1 || n > MAX_WORKERS;
            o->workers = (int)n;
        } else if (!strcmp(a, "--max-handshakes")) {
            bad = parse_i64(v, &n) || n > 1000000;
            o->max_handshakes = (int)n;
        } else if (!strcmp(a, "--ips-per-worker")) {
            bad = parse_i64(v, &n) || n < 1 || n > 60000;
            o->ips_per_worker = (int)n;
        } else if (!strcmp(a, "--seed")) {
            bad = parse_i64(v, &n);
            o->seed = (uint64_t)n;
        } else if (!strcmp(a, "--stream-base")) {
            bad = parse_i64(v, &o->stream_base) || o->stream_base < 1;
        } else if (!strcmp(a, "--user-base")) {
            bad = parse_i64(v, &o->user_base) || o->user_base < 1;
        } else if (!strcmp(a, "--partitions")) {
            bad = parse_i64(v, &n) || n < 1;
            o->partitions = (int)n;
        } else if (!strcmp(a, "--redis-nodes")) {
            o->redis_nodes = v;
        } else if (!strcmp(a, "--token-secret")) {
            o->secret = v;
        } else if (!strcmp(a, "--progress")) {
            bad = parse_double(v, &d) || d <= 0;
            o->progress_s = d;
        } else {
            fprintf(stderr, "vc-loadgen: unknown option '%s' (see --help)\n", a);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "vc-loadgen: bad value '%s' for %s (see --help)\n", v, a);
            return -1;
        }
        i += takes;
    }
    if (o->ngw == 0 && (env = getenv("VC_PORT_BASE")) != NULL) {
        int base = (int)strtol(env, NULL, 10);

        for (int i = 0; i < 10 && base > 0; i++)
            if (port_listens(base + 20 + i)) {
                char spec[32];

                snprintf(spec, sizeof(spec), "127.0.0.1:%d", base + 20 + i);
                add_gateway(o, spec, strlen(spec));
            }
    }
    if (o->ngw == 0 && (env = getenv("VC_GATEWAY_WS")) != NULL && add_gateways(o, env))
        return -1;
    if (o->ngw == 0) {
        fprintf(stderr, "vc-loadgen: no gateway: give --gateways, or VC_PORT_BASE of a running stack\n");
        return -1;
    }
    if (o->secret == NULL || !o->secret[0]) {
        fprintf(stderr, "vc-loadgen: no token secret: set VC_TOKEN_SECRET (deploy/local/stack env) or --token-secret\n");
        return -1;
    }
    if (o->redis_nodes == NULL || !o->redis_nodes[0]) {
        fprintf(stderr, "vc-loadgen: no Redis nodes: set VC_REDIS_NODES (deploy/local/stack env) or --redis-nodes\n");
        return -1;
    }
    if (o->ramp_s < 0)
        o->ramp_s = o->viewers / 400.0 < 1 ? 1 : o->viewers / 400.0;
    if (o->spike_at < 0)
        o->spike_at = o->duration_s / 3;
    if ((o->spike_every > 0 || o->spike_length > 0) && o->spike_x == 0) {
        fprintf(stderr, "vc-loadgen: --spike-every and --spike-length need --spike X:Y\n");
        return -1;
    }
    if (o->spike_length < 0)
        o->spike_length = o->spike_every > 0 ? o->spike_every * 2 / 3 : 0;
    if (o->drain_timeout_s < 0)
        o->drain_timeout_s = o->converge_timeout_s;
    return 0;
}

/* ---------------------------------------------------------------- workers */

static int start_workers(lg *g)
{
    const options *o = &g->o;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (int i = 0; i < g->nw; i++) {
        int cmd[2], rep[2];
        pid_t pid;

        if (pipe2(cmd, O_CLOEXEC) || pipe2(rep, O_CLOEXEC)) {
            perror("vc-loadgen: pipe");
            return -1;
        }
        fcntl(cmd[1], F_SETPIPE_SZ, 1 << 20);
        fcntl(rep[1], F_SETPIPE_SZ, 1 << 20);
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
            perror("vc-loadgen: fork");
            return -1;
        }
        if (pid == 0) {
            lg_worker_conf c;

            signal(SIGINT, SIG_IGN);
            signal(SIGTERM, SIG_DFL);
            for (int j = 0; j < i; j++) {
                close(g->w[j].cmd_fd);
                close(g->w[j].rep_fd);
            }
            close(cmd[1]);
            close(rep[0]);
            memset(&c, 0, sizeof(c));
            c.index = i;
            c.nworkers = g->nw;
            c.cmd_fd = cmd[0];
            c.rep_fd = rep[1];
            c.ngw = o->ngw;
            memcpy(c.gw, o->gw, sizeof(c.gw));
            memcpy(c.gw_host, o->gw_host, sizeof(c.gw_host));
            c.nsrc = o->ips_per_worker;
            c.secret = o->secret;
            c.token_ttl_s = 6 * 3600;
            c.slots = (uint32_t)g->nslots;
            c.seed = o->seed;
            c.handshake_timeout_ms = 10000;
            c.max_inflight = o->max_handshakes;
            _exit(lg_worker_run(&c));
        }
        close(cmd[0]);
        close(rep[1]);
        g->w[i].pid = pid;
        g->w[i].cmd_fd = cmd[1];
        g->w[i].rep_fd = rep[0];
        g->w[i].q.max = (size_t)512 << 20;
        fcntl(cmd[1], F_SETFL, O_NONBLOCK);
        fcntl(rep[0], F_SETFL, O_NONBLOCK);
    }
    return 0;
}

static void send_cmd(lg *g, int type, uint32_t s, int64_t stream, int64_t user)
{
    lg_cmd c;
    wproc *w = &g->w[s % (uint32_t)g->nw];

    memset(&c, 0, sizeof(c));
    c.type = (uint8_t)type;
    c.slot = s;
    c.gen = g->slots[s].gen;
    c.gw = g->slots[s].gw;
    c.stream = stream;
    c.user = user;
    if (lg_outq_push(&w->q, &c, sizeof(c))) {
        fprintf(stderr, "vc-loadgen: command queue of worker %d over its bound\n", (int)(s % (uint32_t)g->nw));
        stop_flag = 1;
    }
}

static void slot_open(lg *g, uint32_t s, int sidx, int64_t user)
{
    slot *sl = &g->slots[s];

    sl->gen++;
    sl->open = 1;
    sl->est = 0;
    sl->st = LG_ST_NONE;
    sl->pushed = -1;
    sl->sidx = sidx;
    sl->gw = (uint8_t)(g->gw_rr++ % (uint32_t)g->o.ngw);
    g->opens++;
    send_cmd(g, LG_CMD_OPEN, s, g->ids[sidx], user);
}

static void slot_close(lg *g, uint32_t s)
{
    slot *sl = &g->slots[s];

    if (!sl->open)
        return;
    sl->gen++;
    sl->open = 0;
    sl->est = 0;
    g->closes++;
    send_cmd(g, LG_CMD_CLOSE, s, 0, 0);
}

static void handle_rep(lg *g, const lg_rep *r)
{
    slot *sl;
    int64_t sidx = r->stream - g->o.stream_base;

    if (sidx < 0 || sidx >= g->nstreams)
        sidx = -1;
    switch (r->type) {
    case LG_REP_EST: {
        int b = 0;

        for (int64_t us = r->value; us > 1 && b < 63; us >>= 1)
            b++;
        g->hs_hist[b]++;
        g->est++;
        /* Each established connection is one join, so one finished session
         * in the database once it ends. */
        if (sidx >= 0)
            g->conns[sidx]++;
        break;
    }
    case LG_REP_UNKNOWN:
        if (sidx >= 0)
            g->unknown[sidx]++;
        return;
    case LG_REP_DOWN:
        g->downs++;
        g->down_codes[r->code < 5000 ? r->code : 4999]++;
        break;
    case LG_REP_FAIL:
        g->fails++;
        g->fail_codes[r->code < 1024 ? r->code : 1023]++;
        break;
    case LG_REP_COUNT:
        g->pushes++;
        break;
    }
    if (r->slot >= g->nslots)
        return;
    sl = &g->slots[r->slot];
    if (r->gen != sl->gen || !sl->open)
        return;
    switch (r->type) {
    case LG_REP_EST:
        sl->est = 1;
        sl->gw = (uint8_t)r->gw;
        sl->st = LG_ST_NONE;
        sl->pushed = -1;
        break;
    case LG_REP_DOWN:
    case LG_REP_FAIL:
        sl->est = 0;
        break;
    case LG_REP_COUNT:
        sl->st = r->status;
        sl->pushed = r->value;
        break;
    }
}

/* Read reports and flush commands, waiting up to wait_ms. */
static void pump(lg *g, int wait_ms)
{
    struct pollfd pfd[MAX_WORKERS * 2];
    int n = 0;

    for (int i = 0; i < g->nw; i++) {
        wproc *w = &g->w[i];

        if (lg_outq_flush(&w->q, w->cmd_fd) && !w->dead && !g->quitting) {
            fprintf(stderr, "vc-loadgen: worker %d is gone\n", i);
            w->dead = 1;
            stop_flag = 1;
        }
        pfd[n].fd = w->rep_fd;
        pfd[n].events = POLLIN;
        n++;
        pfd[n].fd = w->q.len > w->q.off ? w->cmd_fd : -1;
        pfd[n].events = POLLOUT;
        n++;
    }
    if (poll(pfd, (nfds_t)n, wait_ms) <= 0)
        return;
    for (int i = 0; i < g->nw; i++) {
        wproc *w = &g->w[i];

        if (!(pfd[2 * i].revents & (POLLIN | POLLHUP)))
            continue;
        for (;;) {
            ssize_t r = read(w->rep_fd, w->buf + w->len, sizeof(w->buf) - w->len);
            size_t off = 0;

            if (r <= 0) {
                if (r == 0 && !w->dead) {
                    w->dead = 1;
                    if (!g->quitting) {
                        fprintf(stderr, "vc-loadgen: worker %d exited\n", i);
                        stop_flag = 1;
                    }
                }
                break;
            }
            w->len += (size_t)r;
            while (w->len - off >= sizeof(lg_rep)) {
                lg_rep rep;

                memcpy(&rep, w->buf + off, sizeof(rep));
                off += sizeof(rep);
                handle_rep(g, &rep);
            }
            memmove(w->buf, w->buf + off, w->len - off);
            w->len -= off;
        }
    }
}

/* ---------------------------------------------------------------- the model */

static void truth_add(lg *g, int sidx, int delta)
{
    g->truth[sidx] += delta;
    if (g->truth[sidx] > g->truth_peak[sidx])
        g->truth_peak[sidx] = g->truth[sidx];
    if (g->o.spike_x > 0 && sidx == g->nstreams - 1 && g->truth[sidx] > g->spike_peak)
        g->spike_peak = g->truth[sidx];
    g->truth_changed[sidx] = sim_now(g);
}

static void session_start(lg *g, size_t i, double now)
{
    const options *o = &g->o;
    session *s = &g->sess[i];
    double inf = 1e300;

    s->pending = 0;
    s->active = 1;
    s->user = g->next_user++;
    if (s->preset)
        s->preset = 0; /* its first stream was drawn in advance */
    else
        s->sidx = s->spike ? g->nstreams - 1 : (int)lg_zipf_draw(&g->zipf, &g->rng);
    s->end_at = o->churn_s > 0 ? now + lg_rng_exp(&g->rng, o->churn_s) : inf;
    s->tab2_close_at = inf;
    s->refresh_at = inf;
    s->tabs = 1;
    truth_add(g, s->sidx, 1);
    g->sessions[s->sidx]++;
    g->session_starts++;
    if (s->spike)
        g->spike_sessions++;
    slot_open(g, TAB1(g, i), s->sidx, s->user);
    if (lg_rng_unit(&g->rng) < o->tabs_fraction) {
        s->tabs |= 2;
        slot_open(g, TAB2(g, i), s->sidx, s->user);
        /* Some close one of their two tabs before leaving: still watching. */
        if (o->churn_s > 0)
            s->tab2_close_at = now + lg_rng_exp(&g->rng, o->churn_s / 2);
    }
    if (lg_rng_unit(&g->rng) < o->refresh_fraction) {
        double span = (s->end_at < o->duration_s ? s->end_at : o->duration_s) - now;

        s->refresh_at = now + lg_rng_unit(&g->rng) * (span > 0 ? span : 1);
    }
    if (s->end_at < g->active_due)
        g->active_due = s->end_at;
    if (s->tab2_close_at < g->active_due)
        g->active_due = s->tab2_close_at;
    if (s->refresh_at < g->active_due)
        g->active_due = s->refresh_at;
}

static void session_end(lg *g, size_t i);

/* Arms spike k: its sessions start again, with new users and new arrival
 * times within Y seconds of its start, most in the first seconds. */
static void spike_arm(lg *g)
{
    double t0 = lg_spike_start(&g->plan, g->spike_k);

    for (size_t i = (size_t)g->o.viewers; i < g->nsess; i++) {
        double u = lg_rng_unit(&g->rng);

        g->sess[i].pending = 1;
        g->sess[i].start_at = t0 + g->o.spike_y * u * u;
    }
    g->spike_pending = g->o.spike_x;
    g->spike_sessions = 0;
    g->spike_peak = 0;
}

/* Spike k is over (the star ended, or the run did): its viewers leave, and it
 * goes into the report with what it really was. */
static void spike_record(lg *g, double now, int star_ended)
{
    json_array_append_new(g->spikes_json,
                          json_pack("{s:i, s:f, s:f, s:b, s:I, s:I}", "spike", g->spike_k, "start",
                                    lg_spike_start(&g->plan, g->spike_k), "end", now, "star_ended", star_ended,
                                    "sessions", (json_int_t)g->spike_sessions, "truth_peak", (json_int_t)g->spike_peak));
}

static void spike_end(lg *g, double now)
{
    int64_t left = g->truth[g->nstreams - 1];

    for (size_t i = (size_t)g->o.viewers; i < g->nsess; i++) {
        g->sess[i].pending = 0;
        session_end(g, i);
    }
    g->spike_pending = 0;
    fprintf(stderr, "vc-loadgen: [%6.1fs] spike %d: the star ends, %lld viewers leave\n", now, g->spike_k,
            (long long)left);
    spike_record(g, now, 1);
}

/* The spike sessions: start those that are due; when the live star's length
 * is over, end it and arm the next spike, if one starts within the run. */
static void spike_schedule(lg *g, double now)
{
    if (g->spike_k < 0)
        return;
    if (now >= lg_spike_end(&g->plan, g->spike_k)) {
        spike_end(g, now);
        if (++g->spike_k >= lg_spike_count(&g->plan)) {
            g->spike_k = -1;
            return;
        }
        spike_arm(g);
    }
    if (g->spike_pending > 0 && now >= lg_spike_start(&g->plan, g->spike_k))
        for (size_t i = (size_t)g->o.viewers; i < g->nsess; i++)
            if (g->sess[i].pending && g->sess[i].start_at <= now) {
                session_start(g, i, now);
                g->spike_pending--;
            }
}

static void session_end(lg *g, size_t i)
{
    session *s = &g->sess[i];

    if (!s->active)
        return;
    slot_close(g, TAB1(g, i));
    slot_close(g, TAB2(g, i));
    truth_add(g, s->sidx, -1);
    s->active = 0;
    g->session_ends++;
}

/* Starts, churn, second tabs and refreshes that are due. Called every few
 * milliseconds: with a million sessions it must not walk them all each time,
 * so the first sessions start through a cursor (their start times grow with
 * the index), the spike's are scanned only while some are pending, and the
 * active sessions only once the earliest of their due times has come. */
static void schedule(lg *g, double now)
{
    size_t nramp = (size_t)g->o.viewers;

    while (g->ramp_next < nramp && g->sess[g->ramp_next].start_at <= now) {
        if (g->sess[g->ramp_next].pending)
            session_start(g, g->ramp_next, now);
        g->ramp_next++;
    }
    if (g->o.spike_x > 0)
        spike_schedule(g, now);
    if (now < g->active_due)
        return;
    g->active_due = 1e300;
    for (size_t i = 0; i < g->nsess; i++) {
        session *s = &g->sess[i];

        if (s->pending || !s->active)
            continue;
        if (s->end_at <= now) {
            session_end(g, i);
            session_start(g, i, now); /* the next viewer takes the place */
            continue;
        }
        if ((s->tabs & 2) && s->tab2_close_at <= now) {
            s->tabs &= (uint8_t)~2u;
            slot_close(g, TAB2(g, i));
        }
        if (s->refresh_at <= now) {
            s->refresh_at = 1e300;
            g->refreshes++;
            slot_open(g, TAB1(g, i), s->sidx, s->user); /* same user, new connection */
        }
        if (!s->active)
            continue;
        if (s->end_at < g->active_due)
            g->active_due = s->end_at;
        if ((s->tabs & 2) && s->tab2_close_at < g->active_due)
            g->active_due = s->tab2_close_at;
        if (s->refresh_at < g->active_due)
            g->active_due = s->refresh_at;
    }
}

/* ---------------------------------------------------------------- --at commands */

static void at_run(lg *g, double now)
{
    for (int i = 0; i < g->o.nat; i++) {
        if (g->at_started[i] || g->o.at_time[i] > now)
            continue;
        g->at_started[i] = 1;
        fprintf(stderr, "vc-loadgen: [%6.1fs] running: %s\n", now, g->o.at_cmd[i]);
        fflush(NULL);
        g->at_pid[i] = fork();
        if (g->at_pid[i] == 0) {
            /* Nothing of ours (pipes, the Redis connection) must live on in
             * what the command starts (a service restarted by `stack start`). */
            close_range(3, ~0u, 0);
            execl("/bin/sh", "sh", "-c", g->o.at_cmd[i], (char *)NULL);
            _exit(127);
        }
    }
    for (int i = 0; i < g->o.nat; i++) {
        int status;

        if (g->at_pid[i] > 0 && waitpid(g->at_pid[i], &status, WNOHANG) == g->at_pid[i]) {
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            json_t *j = json_pack("{s:f, s:s, s:i, s:f}", "at", g->o.at_time[i], "command", g->o.at_cmd[i],
                                  "exit", code, "finished_at", sim_now(g));

            json_array_append_new(g->commands_json, j);
            g->at_pid[i] = 0;
            fprintf(stderr, "vc-loadgen: [%6.1fs] command exited %d: %s\n", sim_now(g), code, g->o.at_cmd[i]);
            if (code != 0)
                g->at_failed = 1;
        }
    }
}

/* ---------------------------------------------------------------- checks */

static const char *st_name(int st)
{
    static const char *const names[] = {"none", "live", "syncing", "stale", "counting", "other"};

    return st >= 0 && st <= LG_ST_OTHER ? names[st] : "?";
}

typedef struct {
    int64_t tabs, wrong, unconnected;
} pushed_view;

/* Compare everything with the truth. Returns the number of mismatching
 * streams; with detail, adds a JSON object per mismatch to arr and prints it. */
static int evaluate(lg *g, json_t *arr, int *redis_err)
{
    int n = g->nstreams, ngw = g->o.ngw, bad = 0;
    lg_api_ans *api = calloc((size_t)n * (size_t)ngw, sizeof(*api));
    lg_redis_ans *red = calloc((size_t)n, sizeof(*red));
    pushed_view *pv = calloc((size_t)n, sizeof(*pv));
    char errstr[256] = "";

    if (api == NULL || red == NULL || pv == NULL) {
        free(api);
        free(red);
        free(pv);
        return n;
    }
    for (size_t s = 0; s < g->nslots; s++) {
        const slot *sl = &g->slots[s];

        if (!sl->open)
            continue;
        pv[sl->sidx].tabs++;
        if (!sl->est)
            pv[sl->sidx].unconnected++;
        else if (sl->st != LG_ST_LIVE || sl->pushed != g->truth[sl->sidx])
            pv[sl->sidx].wrong++;
    }
    *redis_err = 0;
    if (g->redis == NULL) {
        vc_redis_conf rc = {.nodes = g->o.redis_nodes, .read_replicas = 0, .timeout_ms = 2000};

        g->redis = vc_redis_new(&rc, errstr, sizeof(errstr));
    }
    if (g->redis == NULL || lg_redis_query(g->redis, g->o.partitions, g->ids, (size_t)n, red, errstr, sizeof(errstr))) {
        *redis_err = 1;
        for (int i = 0; i < n; i++)
            red[i].viewers = -2;
        if (arr)
            fprintf(stderr, "vc-loadgen: Redis: %s\n", errstr);
    }
    lg_api_query(g->o.gw, ngw, g->ids, (size_t)n, api, 3000, API_SRC);
    for (int i = 0; i < n; i++) {
        int64_t t = g->truth[i];
        int ok = pv[i].wrong == 0 && pv[i].unconnected == 0;
        int api_ok = 0;

        if (red[i].viewers == -2)
            ok = 0;
        else if (t == 0 ? red[i].found && red[i].viewers != 0 : red[i].viewers != t || red[i].syncing)
            ok = 0;
        for (int gi = 0; gi < ngw; gi++) {
            const lg_api_ans *a = &api[(size_t)i * (size_t)ngw + (size_t)gi];

            if (a->http == 0)
                continue; /* a gateway that is down (a fault case) answers nothing */
            api_ok++;
            if (a->http != 200)
                ok = 0;
            else if (t == 0 ? !(a->status == LG_ST_COUNTING || (a->status == LG_ST_LIVE && a->viewers == 0))
                            : a->status != LG_ST_LIVE || a->viewers != t)
                ok = 0;
        }
        if (api_ok == 0)
            ok = 0;
        if (ok)
            continue;
        bad++;
        if (arr) {
            json_t *j = json_object(), *ja = json_array();
            char line[1024];
            int len;

            len = snprintf(line, sizeof(line), "MISMATCH stream %lld: truth %lld, redis %s%lld%s, api",
                           (long long)g->ids[i], (long long)t, red[i].found ? "" : "(absent) ",
                           (long long)red[i].viewers, red[i].syncing ? " syncing" : "");
            for (int gi = 0; gi < ngw; gi++) {
                const lg_api_ans *a = &api[(size_t)i * (size_t)ngw + (size_t)gi];

                json_array_append_new(ja, json_pack("{s:s, s:i, s:I, s:s}", "gateway", g->o.gw_host[gi], "http",
                                                    a->http, "viewers", (json_int_t)a->viewers, "status",
                                                    st_name(a->status)));
                if (len < (int)sizeof(line))
                    len += snprintf(line + len, sizeof(line) - (size_t)len, " %s=%d/%lld/%s", g->o.gw_host[gi],
                                    a->http, (long long)a->viewers, st_name(a->status));
            }
            if (len < (int)sizeof(line))
                snprintf(line + len, sizeof(line) - (size_t)len, ", tabs %lld (%lld shown another count, %lld not connected)",
                         (long long)pv[i].tabs, (long long)pv[i].wrong, (long long)pv[i].unconnected);
            fprintf(stderr, "vc-loadgen: %s\n", line);
            json_object_set_new(j, "stream", json_integer(g->ids[i]));
            json_object_set_new(j, "truth", json_integer(t));
            json_object_set_new(j, "redis", red[i].viewers == -2 ? json_string("unreachable")
                                            : red[i].found ? json_integer(red[i].viewers) : json_null());
            json_object_set_new(j, "redis_syncing", json_boolean(red[i].syncing));
            json_object_set_new(j, "api", ja);
            json_object_set_new(j, "tabs", json_integer(pv[i].tabs));
            json_object_set_new(j, "tabs_shown_other", json_integer(pv[i].wrong));
            json_object_set_new(j, "tabs_not_connected", json_integer(pv[i].unconnected));
            /* What the tabs were shown, value -> tabs. */
            {
                json_t *shown = json_object();

                for (size_t s = 0; s < g->nslots; s++) {
                    const slot *sl = &g->slots[s];
                    char k[48];
                    json_t *c;

                    if (!sl->open || !sl->est || sl->sidx != i)
                        continue;
                    snprintf(k, sizeof(k), "%lld/%s", (long long)sl->pushed, st_name(sl->st));
                    c = json_object_get(shown, k);
                    json_object_set_new(shown, k, json_integer(c ? json_integer_value(c) + 1 : 1));
                }
                json_object_set_new(j, "tabs_shown", shown);
            }
            json_array_append_new(arr, j);
        }
    }
    free(api);
    free(red);
    free(pv);
    return bad;
}

static int64_t open_tabs(const lg *g, int64_t *est)
{
    int64_t open = 0;

    *est = 0;
    for (size_t s = 0; s < g->nslots; s++)
        if (g->slots[s].open) {
            open++;
            *est += g->slots[s].est;
        }
    return open;
}

static int64_t truth_total(const lg *g)
{
    int64_t t = 0;

    for (int i = 0; i < g->nstreams; i++)
        t += g->truth[i];
    return t;
}

/* Pause the model and wait until everything equals the truth. */
static int checkpoint(lg *g, const char *label, double timeout_s, int drain)
{
    double t0 = mono_s(), next_eval = t0, sim = sim_now(g);
    int converged = 0, evals = 0, redis_err = 0;
    json_t *cp = json_object(), *mism = json_array();
    int64_t est, open;

    fprintf(stderr, "vc-loadgen: [%6.1fs] checkpoint %s: %lld viewers over %d streams, waiting up to %.0fs\n", sim,
            label, (long long)truth_total(g), g->nstreams, timeout_s);
    while (!stop_flag) {
        double now = mono_s();

        pump(g, 20);
        at_run(g, sim);
        if (now < next_eval)
            continue;
        evals++;
        if (evaluate(g, NULL, &redis_err) == 0) {
            converged = 1;
            break;
        }
        if (mono_s() - t0 >= timeout_s)
            break;
        next_eval = now + 0.5;
    }
    open = open_tabs(g, &est);
    if (!converged) {
        evaluate(g, mism, &redis_err);
        g->any_mismatch = 1;
    }
    fprintf(stderr, "vc-loadgen: [%6.1fs] checkpoint %s: %s after %.1fs (%lld of %lld tabs connected)\n", sim, label,
            converged ? "converged" : "NOT CONVERGED", mono_s() - t0, (long long)est, (long long)open);
    json_object_set_new(cp, "label", json_string(label));
    json_object_set_new(cp, "at", json_real(sim));
    json_object_set_new(cp, "drain", json_boolean(drain));
    json_object_set_new(cp, "converged", json_boolean(converged));
    json_object_set_new(cp, "seconds", json_real(mono_s() - t0));
    json_object_set_new(cp, "timeout", json_real(timeout_s));
    json_object_set_new(cp, "viewers", json_integer(truth_total(g)));
    json_object_set_new(cp, "tabs_open", json_integer(open));
    json_object_set_new(cp, "tabs_connected", json_integer(est));
    json_object_set_new(cp, "streams", json_integer(g->nstreams));
    json_object_set_new(cp, "mismatches", mism);
    json_array_append_new(g->checkpoints_json, cp);
    g->paused += mono_s() - t0;
    return converged;
}

static double hs_quantile(const lg *g, double q)
{
    int64_t total = 0, acc = 0;

    for (int b = 0; b < 64; b++)
        total += g->hs_hist[b];
    if (total == 0)
        return 0;
    for (int b = 0; b < 64; b++) {
        acc += g->hs_hist[b];
        if ((double)acc >= q * (double)total)
            return (double)((int64_t)1 << b) / 1000.0; /* ms, upper bound of the bucket */
    }
    return 0;
}

static void progress(lg *g, double now, double dt)
{
    int64_t est, open = open_tabs(g, &est), stale = 0;
    double lag = 0;

    for (size_t s = 0; s < g->nslots; s++) {
        const slot *sl = &g->slots[s];

        if (sl->open && sl->est && (sl->st != LG_ST_LIVE || sl->pushed != g->truth[sl->sidx])) {
            stale++;
            if (now - g->truth_changed[sl->sidx] > lag)
                lag = now - g->truth_changed[sl->sidx];
        }
    }
    fprintf(stderr,
            "[%6.1fs] tabs %lld/%lld viewers %lld joins/s %.0f leaves/s %.0f events/s %.0f pushes/s %.0f "
            "hs-p99 %.0fms lag %.1fs mismatched-tabs %lld reconnects %lld fails %lld\n",
            now, (long long)est, (long long)open, (long long)truth_total(g), (double)(g->est - g->last_est) / dt,
            (double)(g->closes - g->last_closes) / dt,
            (double)(g->est - g->last_est + g->closes - g->last_closes) / dt,
            (double)(g->pushes - g->last_pushes) / dt, hs_quantile(g, 0.99), lag, (long long)stale,
            (long long)g->downs, (long long)g->fails);
    g->last_est = g->est;
    g->last_closes = g->closes;
    g->last_pushes = g->pushes;
}

/* ---------------------------------------------------------------- report */

static void write_report(lg *g, int leftover, const char *leftover_sample, long index_members, int ok)
{
    const options *o = &g->o;
    json_t *r = json_object(), *cfg = json_object(), *tot = json_object(), *fails = json_object(),
           *downs = json_object(), *gws = json_array(), *streams = json_array();

    for (int i = 0; i < o->ngw; i++)
        json_array_append_new(gws, json_string(o->gw_host[i]));
    json_object_set_new(cfg, "viewers", json_integer(o->viewers));
    json_object_set_new(cfg, "streams", json_integer(o->streams));
    json_object_set_new(cfg, "zipf", json_real(o->zipf));
    json_object_set_new(cfg, "tabs_fraction", json_real(o->tabs_fraction));
    json_object_set_new(cfg, "refresh_fraction", json_real(o->refresh_fraction));
    json_object_set_new(cfg, "churn_seconds", json_real(o->churn_s));
    json_object_set_new(cfg, "spike_viewers", json_integer(o->spike_x));
    json_object_set_new(cfg, "spike_seconds", json_real(o->spike_y));
    json_object_set_new(cfg, "spike_at", json_real(o->spike_at));
    json_object_set_new(cfg, "spike_every", json_real(o->spike_every));
    json_object_set_new(cfg, "spike_length", o->spike_length > 0 ? json_real(o->spike_length) : json_null());
    json_object_set_new(cfg, "duration", json_real(o->duration_s));
    json_object_set_new(cfg, "converge_timeout", json_real(o->converge_timeout_s));
    json_object_set_new(cfg, "workers", json_integer(g->nw));
    json_object_set_new(cfg, "ips_per_worker", json_integer(o->ips_per_worker));
    json_object_set_new(cfg, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(cfg, "stream_base", json_integer(o->stream_base));
    json_object_set_new(cfg, "gateways", gws);
    json_object_set_new(cfg, "arrival_by_stream", json_boolean(o->arrival_by_stream));
    json_object_set_new(cfg, "max_handshakes", json_integer(o->max_handshakes));
    for (int i = 0; i < 1024; i++)
        if (g->fail_codes[i]) {
            char k[16];

            snprintf(k, sizeof(k), "%d", i);
            json_object_set_new(fails, k, json_integer(g->fail_codes[i]));
        }
    for (int i = 0; i < 5000; i++)
        if (g->down_codes[i]) {
            char k[16];

            snprintf(k, sizeof(k), "%d", i);
            json_object_set_new(downs, k, json_integer(g->down_codes[i]));
        }
    json_object_set_new(tot, "sessions_started", json_integer(g->session_starts));
    json_object_set_new(tot, "sessions_ended", json_integer(g->session_ends));
    json_object_set_new(tot, "tab_opens", json_integer(g->opens));
    json_object_set_new(tot, "tab_closes", json_integer(g->closes));
    json_object_set_new(tot, "refreshes", json_integer(g->refreshes));
    json_object_set_new(tot, "connections_established", json_integer(g->est));
    json_object_set_new(tot, "connections_lost", json_integer(g->downs));
    json_object_set_new(tot, "lost_by_close_code", downs);
    json_object_set_new(tot, "attempts_failed", json_integer(g->fails));
    json_object_set_new(tot, "failed_by_code", fails);
    json_object_set_new(tot, "pushes", json_integer(g->pushes));
    json_object_set_new(tot, "handshake_ms_p50", json_real(hs_quantile(g, 0.5)));
    json_object_set_new(tot, "handshake_ms_p99", json_real(hs_quantile(g, 0.99)));
    for (int i = 0; i < g->nstreams; i++)
        json_array_append_new(streams, json_pack("{s:I, s:I, s:I, s:I, s:I}", "stream", (json_int_t)g->ids[i],
                                                 "truth_peak", (json_int_t)g->truth_peak[i], "connections",
                                                 (json_int_t)g->conns[i], "connections_unknown",
                                                 (json_int_t)g->unknown[i], "sessions", (json_int_t)g->sessions[i]));
    json_object_set_new(r, "result", json_string(ok ? "pass" : "fail"));
    json_object_set_new(r, "config", cfg);
    json_object_set_new(r, "totals", tot);
    json_object_set_new(r, "checkpoints", json_incref(g->checkpoints_json));
    json_object_set_new(r, "commands", json_incref(g->commands_json));
    json_object_set_new(r, "leftover_keys", leftover < 0 ? json_null() : json_integer(leftover));
    json_object_set_new(r, "leftover_sample", json_string(leftover_sample));
    json_object_set_new(r, "index_members_left", json_integer(index_members));
    json_object_set_new(r, "streams", streams);
    json_object_set_new(r, "spikes", json_incref(g->spikes_json));
    if (o->report && json_dump_file(r, o->report, JSON_INDENT(2)))
        fprintf(stderr, "vc-loadgen: cannot write %s\n", o->report);
    json_decref(r);
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    lg *g = calloc(1, sizeof(lg));
    options *o;
    double next_progress, last_progress, sim = 0;
    int next_cp = 0, ok, leftover = 0;
    long index_members = 0;
    char sample[512] = "";

    if (g == NULL)
        return 2;
    o = &g->o;
    if (parse_options(o, argc, argv))
        return 2;
    g->plan = (lg_spike_plan){.at = o->spike_at, .arrive_s = o->spike_y, .every = o->spike_every,
                              .length = o->spike_length, .duration = o->duration_s};
    if (o->spike_x > 0) {
        char why[128];

        if (lg_spike_plan_check(&g->plan, why, sizeof(why))) {
            fprintf(stderr, "vc-loadgen: %s\n", why);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    lg_rng_seed(&g->rng, o->seed);
    g->nstreams = (int)o->streams + (o->spike_x > 0 ? 1 : 0);
    g->ids = calloc((size_t)g->nstreams, sizeof(int64_t));
    g->truth = calloc((size_t)g->nstreams, sizeof(int64_t));
    g->truth_peak = calloc((size_t)g->nstreams, sizeof(int64_t));
    g->truth_changed = calloc((size_t)g->nstreams, sizeof(double));
    g->conns = calloc((size_t)g->nstreams, sizeof(int64_t));
    g->sessions = calloc((size_t)g->nstreams, sizeof(int64_t));
    g->unknown = calloc((size_t)g->nstreams, sizeof(int64_t));
    g->nsess = (size_t)(o->viewers + o->spike_x);
    g->sess = calloc(g->nsess ? g->nsess : 1, sizeof(session));
    g->nslots = 2 * g->nsess;
    g->slots = calloc(g->nslots ? g->nslots : 1, sizeof(slot));
    if (!g->ids || !g->truth || !g->truth_peak || !g->truth_changed || !g->conns || !g->sessions || !g->unknown || !g->sess || !g->slots ||
        lg_zipf_init(&g->zipf, (size_t)o->streams, o->zipf)) {
        fprintf(stderr, "vc-loadgen: out of memory\n");
        return 2;
    }
    for (int i = 0; i < g->nstreams; i++)
        g->ids[i] = o->stream_base + i;
    for (size_t i = 0; i < g->nsess; i++) {
        session *s = &g->sess[i];

        s->pending = 1;
        if (i < (size_t)o->viewers) {
            s->start_at = o->ramp_s * (double)i / (double)o->viewers;
        } else {
            double u = lg_rng_unit(&g->rng);

            s->spike = 1;
            s->start_at = o->spike_at + o->spike_y * u * u; /* most arrive in the first seconds */
        }
    }
    if (o->arrival_by_stream && o->viewers > 0) {
        /* The same Zipf draws, sorted by stream (a counting sort): the
         * first viewers fill the streams one after another. */
        int64_t *per = calloc((size_t)g->nstreams + 1, sizeof(int64_t));
        int *draw = calloc((size_t)o->viewers, sizeof(int));

        if (per == NULL || draw == NULL) {
            fprintf(stderr, "vc-loadgen: out of memory\n");
            return 2;
        }
        for (int64_t i = 0; i < o->viewers; i++) {
            draw[i] = (int)lg_zipf_draw(&g->zipf, &g->rng);
            per[draw[i] + 1]++;
        }
        for (int k = 0; k < g->nstreams; k++)
            per[k + 1] += per[k];
        for (int64_t i = 0; i < o->viewers; i++) {
            session *s = &g->sess[per[draw[i]]++];

            s->sidx = draw[i];
            s->preset = 1;
        }
        free(per);
        free(draw);
    }
    g->spike_pending = o->spike_x;
    g->spike_k = o->spike_x > 0 && lg_spike_count(&g->plan) > 0 ? 0 : -1;
    g->active_due = 1e300;
    g->next_user = o->user_base;
    g->nw = o->workers ? o->workers : (int)((g->nslots * 6 / 10) / 15000 + 1);
    if (g->nw < 2)
        g->nw = 2;
    if (g->nw > MAX_WORKERS)
        g->nw = MAX_WORKERS;
    g->checkpoints_json = json_array();
    g->commands_json = json_array();
    g->spikes_json = json_array();
    fprintf(stderr, "vc-loadgen: %lld viewers over %lld streams (zipf %.2f), %.0f%% with two tabs, churn %.0fs, "
            "spike %lld in %.0fs at %.0fs, %d gateways, %d workers x %d source addresses, %.0fs\n",
            (long long)o->viewers, (long long)o->streams, o->zipf, o->tabs_fraction * 100, o->churn_s,
            (long long)o->spike_x, o->spike_y, o->spike_at, o->ngw, g->nw, o->ips_per_worker, o->duration_s);
    if (o->spike_every > 0)
        fprintf(stderr, "vc-loadgen: a spike every %.0fs (%d within the run), the star ends %.0fs after each start\n",
                o->spike_every, lg_spike_count(&g->plan), o->spike_length);
    if (start_workers(g))
        return 2;
    g->t_start = mono_s();
    next_progress = o->progress_s;
    last_progress = 0;
    while (!stop_flag) {
        sim = sim_now(g);
        if (sim >= o->duration_s)
            break;
        schedule(g, sim);
        at_run(g, sim);
        if (next_cp < o->ncheckpoints && sim >= o->checkpoints[next_cp]) {
            char label[32];

            snprintf(label, sizeof(label), "t=%.0f", o->checkpoints[next_cp]);
            next_cp++;
            checkpoint(g, label, o->converge_timeout_s, 0);
            continue;
        }
        pump(g, 10);
        if (sim >= next_progress) {
            progress(g, sim, sim - last_progress);
            last_progress = sim;
            next_progress = sim + o->progress_s;
        }
    }
    if (!stop_flag)
        checkpoint(g, "end", o->converge_timeout_s, 0);
    /* A star still live ends with the run. */
    if (g->spike_k >= 0 && g->spike_sessions > 0)
        spike_record(g, sim_now(g), 0);
    /* Every viewer leaves: all counts go back to 0, nothing is left behind. */
    for (size_t i = 0; i < g->nsess; i++) {
        g->sess[i].pending = 0;
        session_end(g, i);
    }
    if (!stop_flag && o->drain_check) {
        checkpoint(g, "drained", o->drain_timeout_s, 1);
        leftover = (int)lg_redis_leftovers(o->redis_nodes, o->stream_base, o->stream_base + g->nstreams - 1, sample,
                                           sizeof(sample), &index_members);
        if (leftover != 0) {
            fprintf(stderr, "vc-loadgen: %d per-viewer keys left in Redis after every viewer left: %s\n", leftover,
                    sample);
            g->any_mismatch = 1;
        }
        if (index_members > 0)
            fprintf(stderr, "vc-loadgen: note: %ld of these streams are still listed in gateway-epoch indexes "
                    "(vc:*:gs:<G>) after every viewer left\n", index_members);
    }
    g->quitting = 1;
    for (int i = 0; i < g->nw; i++) {
        lg_cmd quit = {.type = LG_CMD_QUIT};

        lg_outq_push(&g->w[i].q, &quit, sizeof(quit));
    }
    for (double t0 = mono_s(); mono_s() - t0 < 5;) {
        int alive = 0;

        pump(g, 20);
        for (int i = 0; i < g->nw; i++)
            if (g->w[i].pid > 0) {
                if (waitpid(g->w[i].pid, NULL, WNOHANG) == g->w[i].pid)
                    g->w[i].pid = 0;
                else
                    alive++;
            }
        if (!alive)
            break;
    }
    for (int i = 0; i < g->nw; i++)
        if (g->w[i].pid > 0) {
            kill(g->w[i].pid, SIGKILL);
            waitpid(g->w[i].pid, NULL, 0);
        }
    for (int i = 0; i < o->nat; i++)
        if (g->at_pid[i] > 0) {
            int status;

            waitpid(g->at_pid[i], &status, 0);
            g->at_pid[i] = -1;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                g->at_failed = 1;
        } else if (!g->at_started[i]) {
            fprintf(stderr, "vc-loadgen: --at %.0f never ran (after the end of the load)\n", o->at_time[i]);
            g->at_failed = 1;
        }
    ok = !g->any_mismatch && !g->at_failed && !stop_flag;
    progress(g, sim_now(g), sim_now(g) - last_progress > 0 ? sim_now(g) - last_progress : 1);
    fprintf(stderr,
            "vc-loadgen: summary: %s; %lld sessions, %lld tab opens, %lld closes, %lld refreshes, %lld connections "
            "(%lld lost, %lld failed attempts), %lld pushes, handshake p50 %.1fms p99 %.1fms; %zu checkpoints\n",
            ok ? "PASS" : "FAIL", (long long)g->session_starts, (long long)g->opens, (long long)g->closes,
            (long long)g->refreshes, (long long)g->est, (long long)g->downs, (long long)g->fails,
            (long long)g->pushes, hs_quantile(g, 0.5), hs_quantile(g, 0.99), json_array_size(g->checkpoints_json));
    write_report(g, leftover, sample, index_members, ok);
    vc_redis_destroy(g->redis);
    for (int i = 0; i < g->nw; i++) {
        lg_outq_free(&g->w[i].q);
        close(g->w[i].cmd_fd);
        close(g->w[i].rep_fd);
    }
    json_decref(g->checkpoints_json);
    json_decref(g->commands_json);
    json_decref(g->spikes_json);
    lg_zipf_free(&g->zipf);
    free(g->ids);
    free(g->truth);
    free(g->truth_peak);
    free(g->truth_changed);
    free(g->conns);
    free(g->sessions);
    free(g->unknown);
    free(g->sess);
    free(g->slots);
    free(g);
    return ok ? 0 : 1;
}
