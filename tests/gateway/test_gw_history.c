/* The history module without a database: the answer's JSON, the DECIMAL
 * parsing, and the thread's behaviour when MariaDB cannot be reached (one
 * read per key however many ask, a cached 503, wake-ups). The reads against
 * the real MariaDB replica are in test_gw_http.c. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "history.h"

Test(history, decimal_thousandths)
{
    int64_t m = -1;

    cr_expect_eq(gw_history_parse_milli("12.500", &m), 0);
    cr_expect_eq(m, 12500);
    cr_expect_eq(gw_history_parse_milli("7", &m), 0);
    cr_expect_eq(m, 7000);
    cr_expect_eq(gw_history_parse_milli("0.25", &m), 0);
    cr_expect_eq(m, 250);
    cr_expect_eq(gw_history_parse_milli("0.001", &m), 0);
    cr_expect_eq(m, 1);
    cr_expect_eq(gw_history_parse_milli("999999999.999", &m), 0);
    cr_expect_eq(m, 999999999999);
    cr_expect_eq(gw_history_parse_milli("1.2500", &m), 0, "trailing zeros beyond 3 digits are fine");
    cr_expect_eq(m, 1250);
    m = -1;
    cr_expect_eq(gw_history_parse_milli("1.2345", &m), -1, "never rounded");
    cr_expect_eq(gw_history_parse_milli("-1", &m), -1);
    cr_expect_eq(gw_history_parse_milli("", &m), -1);
    cr_expect_eq(gw_history_parse_milli(".5", &m), -1);
    cr_expect_eq(gw_history_parse_milli("5.", &m), -1);
    cr_expect_eq(gw_history_parse_milli("1e3", &m), -1);
    cr_expect_eq(gw_history_parse_milli(NULL, &m), -1);
    cr_expect_eq(gw_history_parse_milli("99999999999999999999", &m), -1);
    cr_expect_eq(m, -1);
}

Test(history, json_of_rows)
{
    gw_history_row rows[] = {
        {1795572000, 300, 12500, 20, 5, 30, 3, 1},
        {1795572300, 300, 7000, 9, 4, 15, 6, 2},
        {1795572600, 60, 125, 1, 0, 2, 2, 2},
        {1795572660, 300, 1234567, 2000, 100, 2500, 400, 300},
    };
    char *j = gw_history_format(42, 6, rows, 4);

    cr_assert_not_null(j);
    cr_expect_str_eq(j, "{\"stream\":42,\"hours\":6,\"buckets\":["
                        "{\"start\":1795572000,\"at\":\"2026-11-25T02:00:00Z\",\"seconds\":300,\"avg\":12.5,\"peak\":20,"
                        "\"min\":5,\"distinct\":30,\"joins\":3,\"leaves\":1},"
                        "{\"start\":1795572300,\"at\":\"2026-11-25T02:05:00Z\",\"seconds\":300,\"avg\":7,\"peak\":9,"
                        "\"min\":4,\"distinct\":15,\"joins\":6,\"leaves\":2},"
                        "{\"start\":1795572600,\"at\":\"2026-11-25T02:10:00Z\",\"seconds\":60,\"avg\":0.125,\"peak\":1,"
                        "\"min\":0,\"distinct\":2,\"joins\":2,\"leaves\":2},"
                        "{\"start\":1795572660,\"at\":\"2026-11-25T02:11:00Z\",\"seconds\":300,\"avg\":1234.567,"
                        "\"peak\":2000,\"min\":100,\"distinct\":2500,\"joins\":400,\"leaves\":300}]}");
    free(j);
    j = gw_history_format(9223372036854775807LL, 48, NULL, 0);
    cr_expect_str_eq(j, "{\"stream\":9223372036854775807,\"hours\":48,\"buckets\":[]}");
    free(j);
}

Test(history, json_of_many_rows_grows)
{
    enum { N = GW_HISTORY_ROWS_MAX };
    gw_history_row *rows = calloc(N, sizeof(*rows));
    char *j;
    size_t count = 0;

    for (int i = 0; i < N; i++)
        rows[i] = (gw_history_row){1795572000 + i * 300, 300, 4294967295000LL, 4294967295LL, 4294967295LL,
                                   4294967295LL, 4294967295LL, 4294967295LL};
    j = gw_history_format(1, 48, rows, N);
    cr_assert_not_null(j);
    for (const char *p = j; (p = strstr(p, "\"start\":")) != NULL; p++)
        count++;
    cr_expect_eq(count, N);
    cr_expect_eq(j[strlen(j) - 1], '}');
    cr_expect(strstr(j, "\"avg\":4294967295,\"peak\":4294967295,"));
    free(j);
    free(rows);
}

static atomic_int wakes;

static void on_wake(void *arg)
{
    (void)arg;
    atomic_fetch_add(&wakes, 1);
}

static size_t take_wait(gw_history *h, gw_history_answer **a, int ms)
{
    size_t n = 0;

    for (int i = 0; i < ms / 10; i++) {
        gw_history_take(h, a, &n);
        if (n)
            return n;
        free(*a);
        usleep(10 * 1000);
    }
    *a = NULL;
    return 0;
}

Test(history, unreachable_database_answers_503_once_per_key)
{
    /* Nothing listens on port 1: a refused connection, at once. */
    gw_history_conf conf = {"127.0.0.1", 1, "u", "p", "vc", 60000, on_wake, NULL};
    char err[128], *json;
    int status;
    gw_history *h = gw_history_new(&conf, err, sizeof(err));
    gw_history_answer *a;
    gw_history_stats st;
    size_t n;

    cr_assert_not_null(h, "%s", err);
    /* Three requests for one key before the answer: one read queued. */
    cr_expect_eq(gw_history_lookup(h, 5, 6, &status, &json), 0);
    cr_expect_null(json);
    gw_history_lookup(h, 5, 6, &status, &json);
    gw_history_lookup(h, 5, 6, &status, &json);
    n = take_wait(h, &a, 5000);
    cr_assert_eq(n, 1, "one answer for the key");
    cr_expect_eq(a[0].stream, 5);
    cr_expect_eq(a[0].hours, 6);
    cr_expect_eq(a[0].status, 503);
    cr_expect_str_eq(a[0].json, "{\"error\":\"history unavailable: the database cannot be reached\"}");
    free(a[0].json);
    free(a);
    cr_expect_geq(atomic_load(&wakes), 1, "the loop was woken");

    /* The error is served from memory for a short while (not 60 s). */
    cr_expect_eq(gw_history_lookup(h, 5, 6, &status, &json), 1);
    cr_expect_eq(status, 503);
    cr_assert_not_null(json);
    free(json);
    gw_history_get_stats(h, &st);
    cr_expect_eq(st.query_errors, 1);
    cr_expect_eq(st.cache_hits, 1);
    cr_expect_eq(st.requests, 4);

    /* Another hours value is another key. */
    cr_expect_eq(gw_history_lookup(h, 5, 7, &status, &json), 0);
    n = take_wait(h, &a, 5000);
    cr_assert_eq(n, 1);
    cr_expect_eq(a[0].hours, 7);
    free(a[0].json);
    free(a);

    /* After GW_HISTORY_ERROR_CACHE_MS the key is read again. */
    usleep((GW_HISTORY_ERROR_CACHE_MS + 200) * 1000);
    cr_expect_eq(gw_history_lookup(h, 5, 6, &status, &json), 0, "expired: read again");
    n = take_wait(h, &a, 5000);
    cr_assert_eq(n, 1);
    free(a[0].json);
    free(a);
    gw_history_destroy(h);
    gw_history_destroy(NULL);
}

Test(history, a_full_queue_answers_503_at_once)
{
    /* A socket that listens and never answers: the thread sits in its
     * connection's handshake (bounded by the 3 s connect timeout) while
     * the queue fills. */
    struct sockaddr_in a = {0};
    socklen_t alen = sizeof(a);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    gw_history_conf conf = {"127.0.0.1", 0, "u", "p", "vc", 60000, NULL, NULL};
    char err[128], *json;
    int status, full = 0;
    gw_history *h;

    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(lfd, 16), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    conf.mysql_port = ntohs(a.sin_port);
    h = gw_history_new(&conf, err, sizeof(err));
    cr_assert_not_null(h, "%s", err);
    for (int64_t s = 1; s <= GW_HISTORY_QUEUE_MAX + 5; s++)
        if (gw_history_lookup(h, s, 6, &status, &json) == 1) {
            cr_expect_eq(status, 503);
            cr_expect_null(json);
            full++;
        }
    /* one may already be in flight (off the queue) */
    cr_expect(full == 4 || full == 5, "%d refused", full);
    gw_history_destroy(h);
    close(lfd);
}
