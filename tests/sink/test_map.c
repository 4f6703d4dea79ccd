/* sk_map against a plain array model under random inserts and deletes. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "map.h"

#define N 2000

Test(map, random_operations_match_a_model)
{
    static int64_t model[N]; /* value of key i, or 0 when absent */
    memset(model, 0, sizeof model);
    sk_map m;
    cr_assert_eq(sk_map_init(&m, sizeof(int64_t)), 0);
    uint64_t x = 12345;
    size_t present = 0;
    for (int op = 0; op < 200000; op++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t k = x % N;
        sk_key key = {k * 7919, k % 3}; /* collisions in b, spread in a */
        if ((x >> 32) % 3 == 0) {
            int was = sk_map_del(&m, key);
            cr_assert_eq(was, model[k] != 0, "delete %zu", k);
            if (model[k])
                present--;
            model[k] = 0;
        } else {
            int created;
            int64_t *v = sk_map_put(&m, key, &created);
            cr_assert_not_null(v);
            cr_assert_eq(created, model[k] == 0, "put %zu", k);
            if (created) {
                cr_assert_eq(*v, 0, "a new value is zeroed");
                present++;
            }
            *v = (int64_t)(op + 1);
            model[k] = op + 1;
        }
        if (op % 997 == 0) {
            for (size_t i = 0; i < N; i++) {
                int64_t *v = sk_map_get(&m, (sk_key){i * 7919, i % 3});
                if (model[i])
                    cr_assert(v && *v == model[i], "key %zu lost or wrong after op %d", i, op);
                else
                    cr_assert_null(v, "key %zu present after delete (op %d)", i, op);
            }
            cr_assert_eq(m.len, present);
        }
    }
    sk_map_free(&m);
}

/* Deleting while iterating, as the rollup does (j-- after a delete). */
Test(map, delete_while_iterating_visits_everything)
{
    sk_map m;
    sk_map_init(&m, sizeof(int));
    for (uint64_t i = 0; i < 1000; i++)
        *(int *)sk_map_put(&m, (sk_key){i, 0}, NULL) = (int)i;
    for (size_t j = 0; j < m.cap; j++) {
        if (m.used[j] && *(int *)sk_map_val(&m, j) % 2 == 0) {
            sk_map_del(&m, m.keys[j]);
            j--;
        }
    }
    cr_assert_eq(m.len, 500);
    for (uint64_t i = 0; i < 1000; i++)
        cr_assert_eq(sk_map_get(&m, (sk_key){i, 0}) != NULL, i % 2 == 1, "key %llu", (unsigned long long)i);
    sk_map_free(&m);
}
