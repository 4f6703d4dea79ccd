/* lg_ws.h -- the client side of RFC 6455 that vc-loadgen needs: the opening
 * handshake, masked client frames and parsing of server frames. Pure: no
 * I/O, so thousands of connections can share one epoll loop. */
#ifndef LG_WS_H
#define LG_WS_H

#include <stddef.h>
#include <stdint.h>

#define LG_WS_KEY_LEN 24    /* base64 of 16 bytes */
#define LG_WS_ACCEPT_LEN 28 /* base64 of a SHA-1 */

enum {
    LG_WS_CONT = 0x0,
    LG_WS_TEXT = 0x1,
    LG_WS_BINARY = 0x2,
    LG_WS_CLOSE = 0x8,
    LG_WS_PING = 0x9,
    LG_WS_PONG = 0xA,
};

/* Base64 of 16 random bytes (from the caller) into key[LG_WS_KEY_LEN + 1]. */
void lg_ws_make_key(const uint8_t nonce[16], char key[LG_WS_KEY_LEN + 1]);

/* The Sec-WebSocket-Accept a server must answer to key. */
void lg_ws_accept_for(const char *key, char accept[LG_WS_ACCEPT_LEN + 1]);

/* Write the GET request of the opening handshake into buf. Returns its
 * length, or -1 when it does not fit. */
int lg_ws_request(char *buf, size_t size, const char *host_port, const char *path_query, const char *key);

/* Parse a handshake response at the start of buf[0..len).
 * Returns 0 while the header is incomplete; otherwise the header's length
 * (the bytes after it are frames) with *status set to the HTTP status, and
 * *accept_ok to 1 when it is a 101 whose Upgrade, Connection and
 * Sec-WebSocket-Accept are right for key. Returns -1 on garbage. */
int lg_ws_parse_response(const char *buf, size_t len, const char *key, int *status, int *accept_ok);

/* Encode one final client frame (masked with mask) of opcode with payload
 * into out. Returns the frame's length, or -1 when it does not fit or
 * payload is over 125 bytes for a control frame. */
int lg_ws_frame(uint8_t *out, size_t size, int opcode, const void *payload, size_t len, const uint8_t mask[4]);

/* A server frame found at the start of a buffer. */
typedef struct {
    int fin;
    int opcode;
    int masked;              /* a server must not mask: a protocol error */
    const uint8_t *payload;  /* points into the parsed buffer */
    size_t len;
} lg_ws_frame_in;

/* Parse one frame at buf[0..len). Returns the frame's total length, 0 when
 * incomplete, -1 when its payload is over max_payload (or reserved bits are
 * set). */
long lg_ws_parse_frame(const uint8_t *buf, size_t len, size_t max_payload, lg_ws_frame_in *f);

#endif
