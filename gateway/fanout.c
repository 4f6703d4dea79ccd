/* fanout.c -- one frame to many sockets on two threads (see fanout.h). */
#include "fanout.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>

struct gw_fanout {
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t split_min;
    int stop;
    int busy;                   /* the helper has a job (set by the caller, cleared by the helper) */
    unsigned gen;               /* job number, so a spurious wake-up does not run a job twice */
    /* the helper's half, valid while busy */
    const int *fds;
    ssize_t *sent;
    size_t n;
    const void *frame;
    size_t len;
    size_t whole;
};

static size_t send_all(const int *fds, ssize_t *sent, size_t n, const void *frame, size_t len)
{
    size_t whole = 0;

    for (size_t i = 0; i < n; i++) {
        ssize_t r = send(fds[i], frame, len, MSG_NOSIGNAL | MSG_DONTWAIT);

        sent[i] = r < 0 ? -(ssize_t)errno : r;
        whole += r == (ssize_t)len;
    }
    return whole;
}

static void *helper(void *arg)
{
    gw_fanout *f = arg;
    unsigned seen = 0;

    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->stop && f->gen == seen)
            pthread_cond_wait(&f->cv, &f->mu);
        if (f->stop)
            break;
        seen = f->gen;
        pthread_mutex_unlock(&f->mu);
        f->whole = send_all(f->fds, f->sent, f->n, f->frame, f->len);
        pthread_mutex_lock(&f->mu);
        f->busy = 0;
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

gw_fanout *gw_fanout_new(size_t split_min)
{
    gw_fanout *f;
    cpu_set_t cpus;

    /* A second thread only helps with a second CPU to run on. */
    if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) < 2)
        return NULL;
    if ((f = calloc(1, sizeof(*f))) == NULL)
        return NULL;
    f->split_min = split_min;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    if (pthread_create(&f->tid, NULL, helper, f) != 0) {
        pthread_cond_destroy(&f->cv);
        pthread_mutex_destroy(&f->mu);
        free(f);
        return NULL;
    }
    return f;
}

void gw_fanout_destroy(gw_fanout *f)
{
    if (f == NULL)
        return;
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->tid, NULL);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

size_t gw_fanout_send(gw_fanout *f, const int *fds, ssize_t *sent, size_t n, const void *frame, size_t len)
{
    size_t half, whole;

    if (f == NULL || n < f->split_min || n < 2)
        return send_all(fds, sent, n, frame, len);
    half = n / 2;
    pthread_mutex_lock(&f->mu);
    f->fds = fds + half;
    f->sent = sent + half;
    f->n = n - half;
    f->frame = frame;
    f->len = len;
    f->busy = 1;
    f->gen++;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    whole = send_all(fds, sent, half, frame, len);
    pthread_mutex_lock(&f->mu);
    while (f->busy)
        pthread_cond_wait(&f->cv, &f->mu);
    whole += f->whole;
    pthread_mutex_unlock(&f->mu);
    return whole;
}

size_t gw_fanout_text_header(unsigned char hdr[10], size_t len)
{
    hdr[0] = 0x81; /* FIN, text */
    if (len < 126) {
        hdr[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        hdr[1] = 126;
        hdr[2] = (unsigned char)(len >> 8);
        hdr[3] = (unsigned char)len;
        return 4;
    }
    hdr[1] = 127;
    for (int i = 0; i < 8; i++)
        hdr[2 + i] = (unsigned char)((unsigned long long)len >> (56 - 8 * i));
    return 10;
}
