/* test_counts.c -- vc-aggregator against the real Redis Cluster and broker:
 * distinct viewers, leave before join, anonymous viewers, peak, ranking. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "vc_partition.h"

static h_ctx h;
static pid_t agg;

static void start(const char *tag)
{
    h_setup(&h, tag);
    agg = h_agg_start(&h, NULL);
}

static void finish(void)
{
    cr_assert_eq(h_agg_stop(agg, SIGTERM), 0, "vc-aggregator did not exit 0 on SIGTERM");
    h_teardown(&h);
}

static void produce(const vc_event *ev)
{
    h_produce(&h, ev);
}

Test(counts, two_tabs_one_user_count_once_until_the_last_leaves, .timeout = 120)
{
    start("tabs");
    int64_t t = 1000000;
    vc_event a = h_join(101, 7, 1, "gw-a", 1, t), b = h_join(101, 7, 2, "gw-a", 1, t + 1);
    produce(&a);
    produce(&b);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60), "events not applied within 60 s");
    cr_expect_eq(h_stream_int(&h, 101, "viewers"), 1, "two tabs of one user count once");
    vc_event la = h_leave(101, 1, "gw-a", 1, t + 2);
    produce(&la);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    cr_expect_eq(h_stream_int(&h, 101, "viewers"), 1, "closing one of two tabs keeps the user counted");
    vc_event lb = h_leave(101, 2, "gw-a", 1, t + 3);
    produce(&lb);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    cr_expect_eq(h_stream_int(&h, 101, "viewers"), 0);
    cr_expect_eq(h_stream_int(&h, 101, "peak"), 1);
    cr_expect_eq(h_rank_score(&h, 101, 0), -1, "a stream without viewers leaves the ranking");
    /* The same user on a second gateway counts once too. */
    vc_event c = h_join(101, 7, 3, "gw-a", 1, t + 4), d = h_join(101, 7, 4, "gw-b", 1, t + 5);
    produce(&c);
    produce(&d);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    cr_expect_eq(h_stream_int(&h, 101, "viewers"), 1);
    char *off = h_stream_str(&h, 101, "offset");
    cr_assert_not_null(off);
    cr_expect_eq(strtoll(off, NULL, 10), h.last_offset[vc_stream_partition(101, H_PARTITIONS)],
                 "the count carries the offset it is valid as of");
    free(off);
    finish();
}

Test(counts, leave_before_join_and_anonymous_viewers, .timeout = 120)
{
    start("anon");
    int64_t t = 2000000;
    /* A leave whose join comes later (a replay or cleanup interleaving):
     * never negative, and the late join nets to nothing. */
    vc_event l = h_leave(202, 50, "gw-a", 1, t);
    produce(&l);
    vc_event j = h_join(202, 9, 50, "gw-a", 1, t + 1);
    /* three anonymous connections count three times */
    vc_event a1 = h_join(202, 0, 51, "gw-a", 1, t + 2), a2 = h_join(202, 0, 52, "gw-a", 1, t + 3),
             a3 = h_join(202, 0, 53, "gw-b", 1, t + 4);
    produce(&a1);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    cr_expect_eq(h_stream_int(&h, 202, "viewers"), 1, "an unknown leave must not go negative");
    produce(&j);
    produce(&a2);
    produce(&a3);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    cr_expect_eq(h_stream_int(&h, 202, "viewers"), 3, "late join of a left connection must not count");
    vc_event la = h_leave(202, 52, "gw-a", 1, t + 5);
    produce(&la);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    cr_expect_eq(h_stream_int(&h, 202, "viewers"), 2);
    cr_expect_eq(h_stream_int(&h, 202, "peak"), 3);
    finish();
}

Test(counts, peak_and_ranking_order_match_the_ground_truth, .timeout = 180)
{
    start("rank");
    h_model *m = calloc(1, sizeof(*m));
    int64_t t = 3000000, conn = 1;
    /* streams 301..320 with i viewers each, users shared across streams */
    for (int i = 1; i <= 20; i++) {
        for (int k = 0; k < i + 5; k++) {
            vc_event ev = h_join(300 + i, 1000 + k, conn++, "gw-a", 1, t++);
            produce(&ev);
            h_model_apply(m, &ev);
        }
        for (int k = 0; k < 5; k++) { /* five leave again: the peak stays i + 5 */
            vc_event ev = h_leave(300 + i, conn - 1 - k, "gw-a", 1, t++);
            produce(&ev);
            h_model_apply(m, &ev);
        }
    }
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 90));
    for (int i = 1; i <= 20; i++) {
        cr_expect_eq(h_stream_int(&h, 300 + i, "viewers"), h_model_viewers(m, 300 + i), "stream %d", 300 + i);
        cr_expect_eq(h_stream_int(&h, 300 + i, "viewers"), i);
        cr_expect_eq(h_stream_int(&h, 300 + i, "peak"), h_model_peak(m, 300 + i));
        cr_expect_eq(h_rank_score(&h, 300 + i, 0), i, "rank score of %d", 300 + i);
    }
    /* the merged top 5 over every partition's ranking */
    long long best[5] = {0};
    int64_t best_id[5] = {0};
    for (int p = 0; p < H_PARTITIONS; p++) {
        char key[64];
        snprintf(key, sizeof(key), "vc:{vc.%d}:rank", p);
        redisReply *r = h_cmd(&h, key, "ZREVRANGE %s 0 4 WITHSCORES", key);
        for (size_t e = 0; e + 1 < r->elements; e += 2) {
            long long score = strtoll(r->element[e + 1]->str, NULL, 10);
            int64_t id = strtoll(r->element[e]->str, NULL, 10);
            for (int b = 0; b < 5; b++) {
                if (score > best[b]) {
                    memmove(best + b + 1, best + b, (size_t)(4 - b) * sizeof(*best));
                    memmove(best_id + b + 1, best_id + b, (size_t)(4 - b) * sizeof(*best_id));
                    best[b] = score;
                    best_id[b] = id;
                    break;
                }
            }
        }
        freeReplyObject(r);
    }
    for (int b = 0; b < 5; b++)
        cr_expect_eq(best_id[b], 320 - b, "rank %d is %lld", b + 1, (long long)best_id[b]);
    free(m);
    finish();
}

Test(counts, a_stream_whose_category_is_known_is_ranked_in_it, .timeout = 180)
{
    h_setup(&h, "cat");
    /* master data is the platform's, written as the administrator (the sink's
     * user may not); ids far from the other tests' rows; INSERT IGNORE: a rerun finds them */
    cr_assert_eq(h_stack(&h, "mysql admin -D \"$VC_MYSQL_DB\" -e \""
                             "INSERT IGNORE INTO users (user_id, username) VALUES (990001, 'agg-test-broadcaster');"
                             "INSERT IGNORE INTO categories (category_id, name, slug) VALUES (9901, 'Agg test', 'agg-test');"
                             "INSERT IGNORE INTO broadcasters (broadcaster_id, user_id, channel_name) VALUES (990001, 990001, 'agg-test');"
                             "INSERT IGNORE INTO streams (stream_id, broadcaster_id, category_id, status) VALUES (990401, 990001, 9901, 'live');"
                             "\""),
                 0, "cannot write the streams table");
    const char *env[] = {"VC_CATEGORY_REFRESH_MS=100", NULL};
    agg = h_agg_start(&h, env);
    vc_event a = h_join(990401, 1, 1, "gw-a", 1, 1000), b = h_join(990402, 2, 2, "gw-a", 1, 1000);
    vc_event c = h_join(990401, 3, 3, "gw-a", 1, 1001);
    produce(&a);
    produce(&b);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    int ranked = 0;
    for (int i = 0; i < 300 && !ranked; i++) {
        ranked = h_rank_score(&h, 990401, 9901) == 1;
        if (!ranked) {
            struct timespec ts = {0, 100000000L};
            nanosleep(&ts, NULL);
        }
    }
    cr_expect(ranked, "stream 990401 not in its category's ranking within 30 s");
    cr_expect_eq(h_stream_int(&h, 990401, "cat"), 9901);
    cr_expect_eq(h_rank_score(&h, 990402, 0), 1, "a stream of unknown category is ranked overall");
    cr_expect_eq(h_rank_score(&h, 990402, 9901), -1);
    cr_expect_eq(h_stream_int(&h, 990402, "cat"), -1);
    produce(&c);
    h_sync(&h);
    cr_assert(h_wait_applied(&h, 60));
    cr_expect_eq(h_rank_score(&h, 990401, 9901), 2, "the category ranking follows the count");
    cr_expect_eq(h_rank_score(&h, 990401, 0), 2);
    finish();
}

/* Random churn (several tabs per user, anonymous viewers, two gateways) in few
 * streams: produced before the aggregator starts, the history lands in large
 * batches where the script buffers its hot keys; produced while it runs, in
 * small ones where it calls Redis per event. Both must give the per-event
 * counts and peak. */
static void churn(h_model *m, int64_t *open, int *nopen, int64_t *conn, int64_t *t, unsigned *seed, int n)
{
    static const char *gws[2] = {"gw-a", "gw-b"};
    for (int e = 0; e < n; e++) {
        vc_event ev;
        if (*nopen > 0 && rand_r(seed) % 3 == 0) {
            int j = (int)((unsigned)rand_r(seed) % (unsigned)*nopen);
            int64_t c = open[j];
            int64_t stream = 0;
            for (int i = 0; i < m->nconn; i++)
                if (m->conn[i] == c)
                    stream = m->conn_stream[i];
            ev = h_leave(stream, c, gws[c % 2], 1, (*t)++);
            open[j] = open[--*nopen];
        } else {
            int64_t stream = 501 + rand_r(seed) % 4;
            int64_t user = rand_r(seed) % 5 == 0 ? 0 : 1 + rand_r(seed) % 12;
            int64_t c = (*conn)++;
            ev = h_join(stream, user, c, gws[c % 2], 1, (*t)++);
            open[(*nopen)++] = c;
        }
        produce(&ev);
        h_model_apply(m, &ev);
    }
}

Test(counts, hot_and_cold_keys_in_a_batch_give_the_per_event_counts, .timeout = 180)
{
    h_setup(&h, "hot");
    h_model *m = calloc(1, sizeof(*m));
    int64_t *open = calloc(4096, sizeof(*open));
    int64_t conn = 1, t = 5000000;
    int nopen = 0;
    unsigned seed = 11;
    churn(m, open, &nopen, &conn, &t, &seed, 1500);
    h_sync(&h);
    agg = h_agg_start(&h, NULL);
    cr_assert(h_wait_applied(&h, 90));
    for (int64_t s = 501; s <= 504; s++) {
        cr_expect_eq(h_stream_int(&h, s, "viewers"), h_model_viewers(m, s), "stream %lld viewers (replayed)", (long long)s);
        cr_expect_eq(h_stream_int(&h, s, "peak"), h_model_peak(m, s), "stream %lld peak (replayed)", (long long)s);
    }
    for (int round = 0; round < 20; round++) {
        churn(m, open, &nopen, &conn, &t, &seed, 25);
        h_sync(&h);
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    cr_assert(h_wait_applied(&h, 90));
    for (int64_t s = 501; s <= 504; s++) {
        long long v = h_model_viewers(m, s);
        cr_expect_eq(h_stream_int(&h, s, "viewers"), v, "stream %lld viewers", (long long)s);
        cr_expect_eq(h_stream_int(&h, s, "peak"), h_model_peak(m, s), "stream %lld peak", (long long)s);
        if (v > 0)
            cr_expect_eq(h_rank_score(&h, s, 0), v, "stream %lld rank score", (long long)s);
    }
    free(open);
    free(m);
    finish();
}
