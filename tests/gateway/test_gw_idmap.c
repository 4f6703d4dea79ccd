/* The id -> pointer map behind the stream table. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "idmap.h"

static void sum(int64_t id, void *value, void *arg)
{
    *(int64_t *)arg += id + (int64_t)(intptr_t)value;
}

Test(idmap, put_get_replace_delete_and_grow)
{
    gw_idmap *m = gw_idmap_new();
    int64_t total = 0, expect = 0;

    for (int64_t i = 1; i <= 10000; i++)
        cr_assert_eq(gw_idmap_put(m, i * 7919, (void *)(intptr_t)i), 0);
    cr_assert_eq(gw_idmap_size(m), 10000);
    for (int64_t i = 1; i <= 10000; i++)
        cr_assert_eq((intptr_t)gw_idmap_get(m, i * 7919), i);
    cr_assert_null(gw_idmap_get(m, 5));
    cr_assert_eq(gw_idmap_put(m, 7919, (void *)(intptr_t)42), 0);
    cr_assert_eq((intptr_t)gw_idmap_get(m, 7919), 42, "put replaces");
    cr_assert_eq(gw_idmap_size(m), 10000);
    cr_assert_eq((intptr_t)gw_idmap_del(m, 7919), 42);
    cr_assert_null(gw_idmap_del(m, 7919));
    cr_assert_eq(gw_idmap_size(m), 9999);
    gw_idmap_each(m, sum, &total);
    for (int64_t i = 2; i <= 10000; i++)
        expect += i * 7919 + i;
    cr_assert_eq(total, expect);
    gw_idmap_destroy(m);
    gw_idmap_destroy(NULL);
}
