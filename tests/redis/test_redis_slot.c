/* vc_redis_key_slot against the cluster specification's examples. */
#include <criterion/criterion.h>
#include <string.h>

#include "vc_redis.h"

static unsigned slot(const char *key)
{
    return vc_redis_key_slot(key, strlen(key));
}

Test(redis_slot, crc16_of_the_spec)
{
    cr_expect_eq(slot("123456789"), 12739); /* CRC16 0x31C3 */
    cr_expect_eq(slot("foo"), 12182);
    cr_expect_eq(slot("bar"), 5061);
    cr_expect_eq(slot(""), 0);
}

Test(redis_slot, hash_tags)
{
    cr_expect_eq(slot("{user1000}.following"), slot("{user1000}.followers"));
    cr_expect_eq(slot("{user1000}.following"), slot("user1000"));
    /* Expected values from CLUSTER KEYSLOT of redis-server 7.0. */
    cr_expect_eq(slot("foo{}{bar}"), 8363); /* empty tag: the whole key */
    cr_expect_neq(slot("foo{}{bar}"), slot("bar"));
    cr_expect_eq(slot("foo{{bar}}zap"), slot("{bar"));
    cr_expect_eq(slot("foo{bar}{zap}"), slot("bar"));
    cr_expect_eq(slot("foo{{bar}}zap"), 4015);
    cr_expect_eq(slot("no{close"), 7129); /* no closing brace: the whole key */
    cr_expect_eq(slot("{a}"), slot("a"));
}

Test(redis_slot, binary_keys_use_the_length)
{
    const char key[] = {'a', '\0', 'b'};
    cr_expect_neq(vc_redis_key_slot(key, 3), slot("a"));
    cr_expect_eq(vc_redis_key_slot(key, 1), slot("a"));
}

Test(redis_slot, every_slot_is_reachable)
{
    static unsigned char seen[16384];
    unsigned covered = 0;
    char key[32];
    for (int i = 0; covered < 16384 && i < 1000000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        unsigned s = vc_redis_key_slot(key, (size_t)n);
        cr_assert_lt(s, 16384u);
        covered += !seen[s];
        seen[s] = 1;
    }
    cr_expect_eq(covered, 16384u);
}
