/* vc_partition.c -- Kafka's murmur2 partitioner and the message key. */
#include "vc_partition.h"

#include <stdio.h>

/* The Java client's Utils.murmur2 and librdkafka's rd_murmur2: 4-byte
 * little-endian blocks, the tail folded in as the Java switch does. */
uint32_t vc_murmur2(const void *key, size_t len)
{
    const uint32_t seed = 0x9747b28cu;
    const uint32_t m = 0x5bd1e995u;
    const int r = 24;
    const unsigned char *p = key;
    uint32_t h = seed ^ (uint32_t)len;

    while (len >= 4) {
        uint32_t k = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
        p += 4;
        len -= 4;
    }
    switch (len) {
    case 3:
        h ^= (uint32_t)p[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)p[1] << 8;
        /* fall through */
    case 1:
        h ^= p[0];
        h *= m;
        break;
    default:
        break;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

size_t vc_stream_key(int64_t stream_id, char buf[VC_STREAM_KEY_MAX])
{
    int n = snprintf(buf, VC_STREAM_KEY_MAX, "%lld", (long long)stream_id);
    return n < 0 ? 0 : (size_t)n;
}

int32_t vc_stream_partition(int64_t stream_id, int32_t partition_count)
{
    char key[VC_STREAM_KEY_MAX];
    size_t len = vc_stream_key(stream_id, key);

    if (partition_count <= 0)
        return 0;
    return (int32_t)((vc_murmur2(key, len) & 0x7fffffffu) % (uint32_t)partition_count);
}
