/*
 * vc-broker: the local Kafka-protocol broker.
 *
 * Runs librdkafka's in-memory mock cluster (rdkafka_mock.h) in a process of
 * its own so that the services, kcat and the tests talk to it over TCP as
 * they would to Apache Kafka. It is NOT a durable Kafka: everything lives in
 * this process's memory and is gone when it exits.
 *
 * It creates the project's topics, writes the bootstrap list to a file
 * (the source of truth for VC_KAFKA_BROKERS), then serves a one-line control
 * protocol on a unix socket for fault injection until SIGTERM/SIGINT:
 *
 *   ping                              -> OK
 *   bootstraps                        -> OK host:port,...
 *   broker down|up <id|-1>            -> rd_kafka_mock_broker_set_down/up
 *   leader <topic> <partition> <id>   -> rd_kafka_mock_partition_set_leader
 *   rtt <id|-1> <ms>                  -> rd_kafka_mock_broker_set_rtt
 *   topic <name> <partitions> [repl]  -> rd_kafka_mock_topic_create
 *
 * Every reply is one line starting with "OK" or "ERR".
 *
 * Listener ports: librdkafka 2.0.2's mock always binds 127.0.0.1:0 (an
 * ephemeral port) and has no setting for it. With --port P this program
 * pins broker i (1-based) to P+i-1 by wrapping bind(): the executable's
 * bind() interposes libc's for librdkafka's call. Pinned ports survive a
 * broker restart, so clients reconnect to the same bootstrap list.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define BRK_LINE_MAX 512
#define BRK_ARGS_MAX 8

/* --- configuration: one table drives flags, environment and --help --- */

struct brk_config {
    long brokers;
    long port;
    const char *bootstrap_file;
    const char *control;
    const char *send;
    const char *events_topic;
    long events_partitions;
    const char *dlq_topic;
    long dlq_partitions;
    const char *checkpoint_topic;
    long checkpoint_partitions;
    long replication;
};

enum brk_opt_type { BRK_STR, BRK_LONG };

struct brk_opt {
    const char *flag;
    const char *env;
    enum brk_opt_type type;
    size_t offset;
    long min;
    long max;
    const char *help;
};

#define STR_OPT(f, e, field, h) \
    { f, e, BRK_STR, offsetof(struct brk_config, field), 0, 0, h }
#define LONG_OPT(f, e, field, lo, hi, h) \
    { f, e, BRK_LONG, offsetof(struct brk_config, field), lo, hi, h }

static const struct brk_opt brk_opts[] = {
    LONG_OPT("brokers", "VC_BROKER_COUNT", brokers, 1, 16, "number of mock brokers (ids 1..N)"),
    LONG_OPT("port", "VC_BROKER_PORT", port, 0, 65535 - 16,
             "first listener port, broker i on port+i-1 (0: ephemeral)"),
    STR_OPT("bootstrap-file", "VC_BROKER_BOOTSTRAP_FILE", bootstrap_file,
            "write the bootstrap list here once the topics exist"),
    STR_OPT("control", "VC_BROKER_CONTROL", control, "unix socket of the control protocol"),
    STR_OPT("send", NULL, send, "client mode: send this command to --control and print the reply"),
    STR_OPT("events-topic", "VC_EVENTS_TOPIC", events_topic, "events topic"),
    LONG_OPT("events-partitions", "VC_EVENTS_PARTITIONS", events_partitions, 1, 10000,
             "partitions of the events topic"),
    STR_OPT("dlq-topic", "VC_DLQ_TOPIC", dlq_topic, "dead-letter topic"),
    LONG_OPT("dlq-partitions", "VC_DLQ_PARTITIONS", dlq_partitions, 1, 10000,
             "partitions of the dead-letter topic"),
    STR_OPT("checkpoint-topic", "VC_CHECKPOINT_TOPIC", checkpoint_topic, "aggregator checkpoint topic"),
    LONG_OPT("checkpoint-partitions", "VC_CHECKPOINT_PARTITIONS", checkpoint_partitions, 1, 10000,
             "partitions of the checkpoint topic"),
    LONG_OPT("replication", "VC_BROKER_REPLICATION", replication, 1, 16,
             "replication factor of the topics (at most --brokers)"),
};

#define BRK_NOPTS (sizeof(brk_opts) / sizeof(brk_opts[0]))

static void brk_config_init(struct brk_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->brokers = 3;
    cfg->events_topic = "vc.events";
    cfg->events_partitions = 12;
    cfg->dlq_topic = "vc.events.dlq";
    cfg->dlq_partitions = 3;
    cfg->checkpoint_topic = "vc.aggregator.checkpoints";
    cfg->checkpoint_partitions = 12;
    cfg->replication = 3;
}

static int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* The one setter for flags and environment. Returns 0, or -1 with errstr. */
static int brk_config_set(struct brk_config *cfg, const struct brk_opt *opt, const char *value,
                          char *errstr, size_t errlen)
{
    char *field = (char *)cfg + opt->offset;

    if (opt->type == BRK_STR) {
        if (*value == '\0') {
            snprintf(errstr, errlen, "--%s: empty value", opt->flag);
            return -1;
        }
        memcpy(field, &value, sizeof(value));
        return 0;
    }
    long v;
    if (parse_long(value, opt->min, opt->max, &v) != 0) {
        snprintf(errstr, errlen, "--%s: '%s' is not an integer in [%ld, %ld]", opt->flag, value,
                 opt->min, opt->max);
        return -1;
    }
    memcpy(field, &v, sizeof(v));
    return 0;
}

static void brk_usage(FILE *out)
{
    fprintf(out, "usage: vc-broker [--option value]...\n"
                 "       vc-broker --control PATH --send 'broker down 1'\n"
                 "Runs librdkafka's in-memory mock Kafka cluster (not durable).\n\n");
    for (size_t i = 0; i < BRK_NOPTS; i++)
        fprintf(out, "  --%-22s %-26s %s\n", brk_opts[i].flag,
                brk_opts[i].env ? brk_opts[i].env : "", brk_opts[i].help);
}

static int brk_config_load(struct brk_config *cfg, int argc, char **argv, char *errstr,
                           size_t errlen)
{
    for (size_t i = 0; i < BRK_NOPTS; i++) {
        const char *v = brk_opts[i].env ? getenv(brk_opts[i].env) : NULL;
        if (v && *v && brk_config_set(cfg, &brk_opts[i], v, errstr, errlen) != 0)
            return -1;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            brk_usage(stdout);
            exit(0);
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(errstr, errlen, "unexpected argument '%s'", arg);
            return -1;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct brk_opt *opt = NULL;
        for (size_t i = 0; i < BRK_NOPTS; i++)
            if (strlen(brk_opts[i].flag) == nlen && strncmp(brk_opts[i].flag, name, nlen) == 0)
                opt = &brk_opts[i];
        if (!opt) {
            snprintf(errstr, errlen, "unknown option '%s' (see --help)", arg);
            return -1;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (a + 1 >= argc) {
                snprintf(errstr, errlen, "--%s needs a value", opt->flag);
                return -1;
            }
            value = argv[++a];
        }
        if (brk_config_set(cfg, opt, value, errstr, errlen) != 0)
            return -1;
    }
    if (cfg->replication > cfg->brokers) {
        snprintf(errstr, errlen, "--replication %ld exceeds --brokers %ld", cfg->replication,
                 cfg->brokers);
        return -1;
    }
    return 0;
}

/* --- listener port pinning --- */

/* Set only by main around rd_kafka_mock_cluster_new(), which creates the
 * listeners in the calling thread before any other thread of ours binds. */
static int brk_pin_next_port;
static int brk_pin_left;

typedef int (*brk_bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    static brk_bind_fn real_bind;
    struct sockaddr_in pinned;

    if (!real_bind) {
        void *sym = dlsym(RTLD_NEXT, "bind");
        if (!sym) {
            errno = ENOSYS;
            return -1;
        }
        memcpy(&real_bind, &sym, sizeof(sym));
    }
    if (brk_pin_left > 0 && addr && addr->sa_family == AF_INET && len >= sizeof(pinned)) {
        memcpy(&pinned, addr, sizeof(pinned));
        if (pinned.sin_port == 0 && pinned.sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
            int one = 1;
            pinned.sin_port = htons((uint16_t)brk_pin_next_port);
            brk_pin_next_port++;
            brk_pin_left--;
            /* A restarted broker must get its port back despite TIME_WAIT. */
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            return real_bind(fd, (const struct sockaddr *)&pinned, sizeof(pinned));
        }
    }
    return real_bind(fd, addr, len);
}

/* --- control protocol --- */

static volatile sig_atomic_t brk_run = 1;

static void brk_on_signal(int sig)
{
    (void)sig;
    brk_run = 0;
}

static int brk_split(char *line, char **argv, int max)
{
    int n = 0;
    char *p = line;

    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            *p++ = '\0';
        if (!*p)
            break;
        if (n == max)
            return -1;
        argv[n++] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            p++;
    }
    return n;
}

static void brk_reply_err(char *reply, size_t len, const char *what, rd_kafka_resp_err_t err)
{
    snprintf(reply, len, "ERR %s: %s\n", what, rd_kafka_err2str(err));
}

/* Executes one command line and writes a one-line reply. */
static void brk_command(rd_kafka_mock_cluster_t *mcluster, const struct brk_config *cfg,
                        char *line, char *reply, size_t len)
{
    char *argv[BRK_ARGS_MAX];
    long a, b;
    rd_kafka_resp_err_t err;
    int argc = brk_split(line, argv, BRK_ARGS_MAX);

    if (argc <= 0) {
        snprintf(reply, len, "ERR empty or too long command\n");
        return;
    }
    if (strcmp(argv[0], "ping") == 0 && argc == 1) {
        snprintf(reply, len, "OK\n");
    } else if (strcmp(argv[0], "bootstraps") == 0 && argc == 1) {
        snprintf(reply, len, "OK %s\n", rd_kafka_mock_cluster_bootstraps(mcluster));
    } else if (strcmp(argv[0], "broker") == 0 && argc == 3 &&
               (strcmp(argv[1], "down") == 0 || strcmp(argv[1], "up") == 0) &&
               parse_long(argv[2], -1, cfg->brokers, &a) == 0 && a != 0) {
        if (strcmp(argv[1], "down") == 0)
            err = rd_kafka_mock_broker_set_down(mcluster, (int32_t)a);
        else
            err = rd_kafka_mock_broker_set_up(mcluster, (int32_t)a);
        if (err)
            brk_reply_err(reply, len, "broker", err);
        else
            snprintf(reply, len, "OK broker %ld %s\n", a, argv[1]);
    } else if (strcmp(argv[0], "leader") == 0 && argc == 4 &&
               parse_long(argv[2], 0, INT32_MAX, &a) == 0 &&
               parse_long(argv[3], -1, cfg->brokers, &b) == 0 && b != 0) {
        err = rd_kafka_mock_partition_set_leader(mcluster, argv[1], (int32_t)a, (int32_t)b);
        if (err)
            brk_reply_err(reply, len, "leader", err);
        else
            snprintf(reply, len, "OK leader %s [%ld] = %ld\n", argv[1], a, b);
    } else if (strcmp(argv[0], "rtt") == 0 && argc == 3 &&
               parse_long(argv[1], -1, cfg->brokers, &a) == 0 && a != 0 &&
               parse_long(argv[2], 0, 60000, &b) == 0) {
        err = rd_kafka_mock_broker_set_rtt(mcluster, (int32_t)a, (int)b);
        if (err)
            brk_reply_err(reply, len, "rtt", err);
        else
            snprintf(reply, len, "OK rtt %ld %ld\n", a, b);
    } else if (strcmp(argv[0], "topic") == 0 && (argc == 3 || argc == 4) &&
               parse_long(argv[2], 1, 10000, &a) == 0 &&
               (argc == 3 ? (b = cfg->replication, 1)
                          : parse_long(argv[3], 1, cfg->brokers, &b) == 0)) {
        err = rd_kafka_mock_topic_create(mcluster, argv[1], (int)a, (int)b);
        if (err)
            brk_reply_err(reply, len, "topic", err);
        else
            snprintf(reply, len, "OK topic %s %ld %ld\n", argv[1], a, b);
    } else {
        snprintf(reply, len,
                 "ERR unknown command (ping | bootstraps | broker down|up <id> | "
                 "leader <topic> <partition> <id> | rtt <id> <ms> | topic <name> <partitions> "
                 "[replication])\n");
    }
}

static int brk_unix_addr(const char *path, struct sockaddr_un *sun, char *errstr, size_t errlen)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path)) {
        snprintf(errstr, errlen, "control socket path too long (max %zu): %s",
                 sizeof(sun->sun_path) - 1, path);
        return -1;
    }
    memcpy(sun->sun_path, path, strlen(path) + 1);
    return 0;
}

static int brk_control_listen(const char *path, char *errstr, size_t errlen)
{
    struct sockaddr_un sun;
    int fd;

    if (brk_unix_addr(path, &sun, errstr, errlen) != 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(errstr, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    unlink(path); /* a stale socket of a previous run */
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || listen(fd, 8) != 0) {
        snprintf(errstr, errlen, "control socket %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads one line (bounded), answers it, closes the connection. */
static void brk_control_serve(int lfd, rd_kafka_mock_cluster_t *mcluster,
                              const struct brk_config *cfg)
{
    char line[BRK_LINE_MAX];
    char reply[BRK_LINE_MAX + 128];
    size_t used = 0;
    struct timeval tv = { .tv_sec = 2 };
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0)
        return;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    while (used < sizeof(line) - 1) {
        ssize_t n = read(fd, line + used, sizeof(line) - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        if (memchr(line, '\n', used))
            break;
    }
    line[used] = '\0';
    char *nl = strchr(line, '\n');
    if (nl)
        *nl = '\0';
    if (!nl && used == sizeof(line) - 1)
        snprintf(reply, sizeof(reply), "ERR command longer than %d bytes\n", BRK_LINE_MAX - 1);
    else
        brk_command(mcluster, cfg, line, reply, sizeof(reply));
    if (write(fd, reply, strlen(reply)) < 0)
        fprintf(stderr, "vc-broker: control reply: %s\n", strerror(errno));
    fprintf(stderr, "vc-broker: control '%s' -> %s", line, reply);
    close(fd);
}

/* Client mode: sends one command, prints the reply. Exit status 0 on OK. */
static int brk_send(const char *path, const char *cmd)
{
    char errstr[256];
    char reply[BRK_LINE_MAX + 128];
    struct sockaddr_un sun;
    size_t used = 0;
    int fd;

    if (brk_unix_addr(path, &sun, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "vc-broker: %s\n", errstr);
        return 2;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        fprintf(stderr, "vc-broker: cannot reach the broker's control socket %s: %s\n", path,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return 2;
    }
    if (write(fd, cmd, strlen(cmd)) < 0 || write(fd, "\n", 1) < 0) {
        fprintf(stderr, "vc-broker: send: %s\n", strerror(errno));
        close(fd);
        return 2;
    }
    while (used < sizeof(reply) - 1) {
        ssize_t n = read(fd, reply + used, sizeof(reply) - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
    }
    close(fd);
    reply[used] = '\0';
    fputs(reply, stdout);
    return strncmp(reply, "OK", 2) == 0 ? 0 : 1;
}

/* --- main --- */

static int brk_write_file(const char *path, const char *content, char *errstr, size_t errlen)
{
    char tmp[PATH_MAX];
    FILE *fp;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        snprintf(errstr, errlen, "path too long: %s", path);
        return -1;
    }
    fp = fopen(tmp, "w");
    if (!fp) {
        snprintf(errstr, errlen, "%.300s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(fp, "%s\n", content);
    if (fclose(fp) != 0 || rename(tmp, path) != 0) {
        snprintf(errstr, errlen, "%.300s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int brk_create_topics(rd_kafka_mock_cluster_t *mcluster, const struct brk_config *cfg,
                             char *errstr, size_t errlen)
{
    const struct {
        const char *name;
        long partitions;
    } topics[] = {
        { cfg->events_topic, cfg->events_partitions },
        { cfg->dlq_topic, cfg->dlq_partitions },
        { cfg->checkpoint_topic, cfg->checkpoint_partitions },
    };

    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(
            mcluster, topics[i].name, (int)topics[i].partitions, (int)cfg->replication);
        if (err) {
            snprintf(errstr, errlen, "topic %s: %s", topics[i].name, rd_kafka_err2str(err));
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct brk_config cfg;
    char errstr[512];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mcluster;
    struct sigaction sa;
    int lfd = -1;
    int rc = 1;

    brk_config_init(&cfg);
    if (brk_config_load(&cfg, argc, argv, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "vc-broker: %s\n", errstr);
        return 2;
    }
    if (cfg.send) {
        if (!cfg.control) {
            fprintf(stderr, "vc-broker: --send needs --control\n");
            return 2;
        }
        return brk_send(cfg.control, cfg.send);
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = brk_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    conf = rd_kafka_conf_new();
    /* The handle only hosts the mock cluster; it never connects anywhere. */
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "vc-broker: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "vc-broker: rd_kafka_new: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    conf = NULL; /* owned by rk */

    brk_pin_next_port = (int)cfg.port;
    brk_pin_left = cfg.port ? (int)cfg.brokers : 0;
    mcluster = rd_kafka_mock_cluster_new(rk, (int)cfg.brokers);
    int unpinned = brk_pin_left;
    brk_pin_left = 0;
    if (mcluster && unpinned) {
        /* This librdkafka did not bind its listeners through bind(). */
        fprintf(stderr, "vc-broker: could not pin %d of the listener ports (bootstraps %s)\n",
                unpinned, rd_kafka_mock_cluster_bootstraps(mcluster));
        goto out;
    }
    if (!mcluster) {
        if (cfg.port)
            fprintf(stderr, "vc-broker: cannot create the mock cluster: ports %ld-%ld taken?\n",
                    cfg.port, cfg.port + cfg.brokers - 1);
        else
            fprintf(stderr, "vc-broker: cannot create the mock cluster\n");
        goto out;
    }
    if (brk_create_topics(mcluster, &cfg, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "vc-broker: %s\n", errstr);
        goto out;
    }
    if (cfg.control) {
        lfd = brk_control_listen(cfg.control, errstr, sizeof(errstr));
        if (lfd < 0) {
            fprintf(stderr, "vc-broker: %s\n", errstr);
            goto out;
        }
    }
    /* Written last: its existence means "ready". */
    if (cfg.bootstrap_file &&
        brk_write_file(cfg.bootstrap_file, rd_kafka_mock_cluster_bootstraps(mcluster), errstr,
                       sizeof(errstr)) != 0) {
        fprintf(stderr, "vc-broker: bootstrap file: %s\n", errstr);
        goto out;
    }
    fprintf(stderr, "vc-broker: %ld brokers at %s; topics %s(%ld) %s(%ld) %s(%ld)\n",
            cfg.brokers, rd_kafka_mock_cluster_bootstraps(mcluster), cfg.events_topic,
            cfg.events_partitions, cfg.dlq_topic, cfg.dlq_partitions, cfg.checkpoint_topic,
            cfg.checkpoint_partitions);

    while (brk_run) {
        struct pollfd pfd = { .fd = lfd, .events = POLLIN };
        int n = poll(&pfd, lfd >= 0 ? 1 : 0, 250);
        if (n > 0 && (pfd.revents & POLLIN))
            brk_control_serve(lfd, mcluster, &cfg);
    }
    fprintf(stderr, "vc-broker: stopping\n");
    rc = 0;

out:
    if (lfd >= 0) {
        close(lfd);
        unlink(cfg.control);
    }
    if (cfg.bootstrap_file && rc == 0)
        unlink(cfg.bootstrap_file);
    if (mcluster)
        rd_kafka_mock_cluster_destroy(mcluster);
    rd_kafka_destroy(rk);
    return rc;
}
