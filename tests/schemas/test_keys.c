/* test_keys.c -- the Redis key layout of vc_keys.h. */
#include <criterion/criterion.h>
#include <string.h>

#include "vc_keys.h"

/* Redis Cluster's key slot: CRC16-XMODEM of the hash tag (or the whole key) mod 16384. */
static unsigned crc16(const char *s, size_t len)
{
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)s[i] << 8;
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) : (crc << 1);
        crc &= 0xffff;
    }
    return crc;
}

static unsigned key_slot(const char *key)
{
    size_t len = strlen(key);
    const char *open = memchr(key, '{', len);
    if (open) {
        const char *close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) & 16383;
    }
    return crc16(key, len) & 16383;
}

Test(keys, crc16_matches_redis_reference)
{
    /* The value in the Redis Cluster specification for "123456789". */
    cr_assert_eq(crc16("123456789", 9), 0x31c3);
}

Test(keys, layout)
{
    char buf[VC_KEY_MAX];

    cr_assert_eq(vc_key_meta(buf, sizeof buf, 3), (int)strlen("vc:{vc.3}:meta"));
    cr_assert_str_eq(buf, "vc:{vc.3}:meta");
    cr_assert_eq(vc_key_stream(buf, sizeof buf, 11, 123456), (int)strlen("vc:{vc.11}:s:123456"));
    cr_assert_str_eq(buf, "vc:{vc.11}:s:123456");
    cr_assert_eq(vc_key_rank(buf, sizeof buf, 0), (int)strlen("vc:{vc.0}:rank"));
    cr_assert_str_eq(buf, "vc:{vc.0}:rank");
    cr_assert_eq(vc_key_rank_category(buf, sizeof buf, 7, 42), (int)strlen("vc:{vc.7}:rank:c:42"));
    cr_assert_str_eq(buf, "vc:{vc.7}:rank:c:42");
    cr_assert_eq(vc_key_prefix(buf, sizeof buf, 5), (int)strlen("vc:{vc.5}:"));
    cr_assert_str_eq(buf, "vc:{vc.5}:");
}

Test(keys, every_key_starts_with_the_prefix)
{
    char prefix[VC_KEY_MAX], buf[VC_KEY_MAX];
    int n = vc_key_prefix(prefix, sizeof prefix, 9);

    cr_assert_gt(n, 0);
    vc_key_meta(buf, sizeof buf, 9);
    cr_assert_eq(strncmp(buf, prefix, (size_t)n), 0);
    vc_key_stream(buf, sizeof buf, 9, 1);
    cr_assert_eq(strncmp(buf, prefix, (size_t)n), 0);
    vc_key_rank(buf, sizeof buf, 9);
    cr_assert_eq(strncmp(buf, prefix, (size_t)n), 0);
    vc_key_rank_category(buf, sizeof buf, 9, 2);
    cr_assert_eq(strncmp(buf, prefix, (size_t)n), 0);
}

/* All keys of one partition share a cluster slot, so one MULTI/EXEC or Lua
 * script can touch them; partitions spread over different slots. */
Test(keys, one_slot_per_partition)
{
    char buf[VC_KEY_MAX];
    unsigned slots[64];

    for (int32_t p = 0; p < 64; p++) {
        vc_key_meta(buf, sizeof buf, p);
        slots[p] = key_slot(buf);
        vc_key_stream(buf, sizeof buf, p, 987654321);
        cr_assert_eq(key_slot(buf), slots[p]);
        vc_key_rank(buf, sizeof buf, p);
        cr_assert_eq(key_slot(buf), slots[p]);
        vc_key_rank_category(buf, sizeof buf, p, 17);
        cr_assert_eq(key_slot(buf), slots[p]);
        vc_key_prefix(buf, sizeof buf, p);
        cr_assert_eq(crc16(strchr(buf, '{') + 1, (size_t)(strchr(buf, '}') - strchr(buf, '{') - 1)) & 16383,
                     slots[p]);
    }
    int distinct = 0;
    for (int i = 0; i < 64; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= slots[j] == slots[i];
        distinct += !seen;
    }
    cr_assert_gt(distinct, 60);
}

Test(keys, largest_values_fit_and_small_buffers_fail)
{
    char buf[VC_KEY_MAX];
    char tiny[8];

    cr_assert_gt(vc_key_rank_category(buf, sizeof buf, INT32_MAX, INT64_MAX), 0);
    cr_assert_str_eq(buf, "vc:{vc.2147483647}:rank:c:9223372036854775807");
    cr_assert_gt(vc_key_stream(buf, sizeof buf, INT32_MAX, INT64_MAX), 0);
    cr_assert_eq(vc_key_meta(tiny, sizeof tiny, 1), -1);
    cr_assert_str_eq(tiny, "");
    cr_assert_eq(vc_key_stream(tiny, sizeof tiny, 1, 1), -1);
    cr_assert_eq(vc_key_meta(buf, 0, 1), -1);
    /* Exactly the length plus the NUL fits; one less does not. */
    cr_assert_eq(vc_key_rank(buf, strlen("vc:{vc.1}:rank") + 1, 1), (int)strlen("vc:{vc.1}:rank"));
    cr_assert_eq(vc_key_rank(buf, strlen("vc:{vc.1}:rank"), 1), -1);
}
