/* vc_keys.c -- the Redis key layout (see vc_keys.h and README.md). */
#include "vc_keys.h"

#include <stdarg.h>
#include <stdio.h>

static int key_format(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int key_format(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (buf == NULL || size == 0)
        return -1;
    va_start(ap, fmt);
    n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size) {
        buf[0] = '\0';
        return -1;
    }
    return n;
}

int vc_key_meta(char *buf, size_t size, int32_t partition)
{
    return key_format(buf, size, "vc:{vc.%d}:meta", (int)partition);
}

int vc_key_stream(char *buf, size_t size, int32_t partition, int64_t stream_id)
{
    return key_format(buf, size, "vc:{vc.%d}:s:%lld", (int)partition, (long long)stream_id);
}

int vc_key_rank(char *buf, size_t size, int32_t partition)
{
    return key_format(buf, size, "vc:{vc.%d}:rank", (int)partition);
}

int vc_key_rank_category(char *buf, size_t size, int32_t partition, int64_t category_id)
{
    return key_format(buf, size, "vc:{vc.%d}:rank:c:%lld", (int)partition, (long long)category_id);
}

int vc_key_prefix(char *buf, size_t size, int32_t partition)
{
    return key_format(buf, size, "vc:{vc.%d}:", (int)partition);
}
