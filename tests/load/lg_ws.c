/* lg_ws.c -- client side of the WebSocket protocol (see lg_ws.h). */
#include "lg_ws.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void b64(const uint8_t *in, size_t len, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

void lg_ws_make_key(const uint8_t nonce[16], char key[LG_WS_KEY_LEN + 1])
{
    b64(nonce, 16, key);
}

void lg_ws_accept_for(const char *key, char accept[LG_WS_ACCEPT_LEN + 1])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char cat[LG_WS_KEY_LEN + sizeof(guid)];
    uint8_t md[SHA_DIGEST_LENGTH];
    int n = snprintf(cat, sizeof(cat), "%s%s", key, guid);

    SHA1((const unsigned char *)cat, (size_t)n, md);
    b64(md, sizeof(md), accept);
}

int lg_ws_request(char *buf, size_t size, const char *host_port, const char *path_query, const char *key)
{
    int n = snprintf(buf, size,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "User-Agent: vc-loadgen\r\n"
                     "\r\n",
                     path_query, host_port, key);

    if (n < 0 || (size_t)n >= size)
        return -1;
    return n;
}

/* Does the comma-separated header value contain token (case-insensitive)? */
static int has_token(const char *v, size_t vlen, const char *token)
{
    size_t tlen = strlen(token);

    for (size_t i = 0; i + tlen <= vlen; i++) {
        if (strncasecmp(v + i, token, tlen) == 0) {
            int before = i == 0 || v[i - 1] == ' ' || v[i - 1] == ',';
            int after = i + tlen == vlen || v[i + tlen] == ' ' || v[i + tlen] == ',';

            if (before && after)
                return 1;
        }
    }
    return 0;
}

int lg_ws_parse_response(const char *buf, size_t len, const char *key, int *status, int *accept_ok)
{
    const char *end = NULL;
    int upgrade = 0, connection = 0, accept = 0;
    char want[LG_WS_ACCEPT_LEN + 1];

    for (size_t i = 3; i < len; i++)
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
            end = buf + i + 1;
            break;
        }
    if (end == NULL)
        return 0;
    if (len < 12 || strncmp(buf, "HTTP/1.1 ", 9) != 0 || buf[9] < '1' || buf[9] > '5' || buf[10] < '0' ||
        buf[10] > '9' || buf[11] < '0' || buf[11] > '9')
        return -1;
    *status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    lg_ws_accept_for(key, want);
    for (const char *p = memchr(buf, '\n', (size_t)(end - buf)); p && p + 1 < end;) {
        const char *line = p + 1, *eol = memchr(line, '\r', (size_t)(end - line)), *colon;
        const char *v;
        size_t vlen;

        if (eol == NULL || eol == line)
            break;
        colon = memchr(line, ':', (size_t)(eol - line));
        if (colon != NULL) {
            size_t nlen = (size_t)(colon - line);

            v = colon + 1;
            while (v < eol && *v == ' ')
                v++;
            vlen = (size_t)(eol - v);
            while (vlen && v[vlen - 1] == ' ')
                vlen--;
            if (nlen == 7 && strncasecmp(line, "upgrade", 7) == 0)
                upgrade = has_token(v, vlen, "websocket");
            else if (nlen == 10 && strncasecmp(line, "connection", 10) == 0)
                connection = has_token(v, vlen, "upgrade");
            else if (nlen == 20 && strncasecmp(line, "sec-websocket-accept", 20) == 0)
                accept = vlen == LG_WS_ACCEPT_LEN && memcmp(v, want, LG_WS_ACCEPT_LEN) == 0;
        }
        p = eol + 1;
    }
    *accept_ok = *status == 101 && upgrade && connection && accept;
    return (int)(end - buf);
}

int lg_ws_frame(uint8_t *out, size_t size, int opcode, const void *payload, size_t len, const uint8_t mask[4])
{
    size_t h = 2;
    const uint8_t *p = payload;

    if ((opcode & 0x8) && len > 125)
        return -1;
    if (len >= 126 && len <= 0xffff)
        h += 2;
    else if (len > 0xffff)
        h += 8;
    if (h + 4 + len > size)
        return -1;
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        out[1] = 0x80 | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
    } else {
        out[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(out + h, mask, 4);
    for (size_t i = 0; i < len; i++)
        out[h + 4 + i] = p[i] ^ mask[i & 3];
    return (int)(h + 4 + len);
}

long lg_ws_parse_frame(const uint8_t *buf, size_t len, size_t max_payload, lg_ws_frame_in *f)
{
    size_t h = 2;
    uint64_t plen;

    if (len < 2)
        return 0;
    if (buf[0] & 0x70)
        return -1;
    f->fin = (buf[0] & 0x80) != 0;
    f->opcode = buf[0] & 0x0f;
    f->masked = (buf[1] & 0x80) != 0;
    plen = buf[1] & 0x7f;
    if (plen == 126) {
        if (len < 4)
            return 0;
        plen = ((uint64_t)buf[2] << 8) | buf[3];
        h = 4;
    } else if (plen == 127) {
        if (len < 10)
            return 0;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = (plen << 8) | buf[2 + i];
        h = 10;
    }
    if (plen > max_payload)
        return -1;
    if (f->masked)
        h += 4;
    if (len < h + plen)
        return 0;
    f->payload = buf + h;
    f->len = (size_t)plen;
    return (long)(h + plen);
}
