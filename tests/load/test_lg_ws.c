/* The pure parts of vc-loadgen: WebSocket client framing and handshake, the
 * Zipf model. */
#include <criterion/criterion.h>
#include <string.h>

#include "lg_model.h"
#include "lg_ws.h"

Test(lg_ws, accept_matches_rfc6455_example)
{
    char accept[LG_WS_ACCEPT_LEN + 1];

    /* RFC 6455 section 1.3. */
    lg_ws_accept_for("dGhlIHNhbXBsZSBub25jZQ==", accept);
    cr_assert_str_eq(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

Test(lg_ws, response_is_accepted_only_with_the_right_headers)
{
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    const char good[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi";
    const char wrong[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n";
    const char busy[] = "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n";
    int status = 0, ok = 0, h;

    cr_assert_eq(lg_ws_parse_response(good, 40, key, &status, &ok), 0, "incomplete header");
    h = lg_ws_parse_response(good, sizeof(good) - 1, key, &status, &ok);
    cr_assert_eq(h, (int)(sizeof(good) - 1 - 4));
    cr_assert_eq(status, 101);
    cr_assert_eq(ok, 1);
    cr_assert_gt(lg_ws_parse_response(wrong, sizeof(wrong) - 1, key, &status, &ok), 0);
    cr_assert_eq(ok, 0);
    cr_assert_gt(lg_ws_parse_response(busy, sizeof(busy) - 1, key, &status, &ok), 0);
    cr_assert_eq(status, 429);
    cr_assert_eq(ok, 0);
    cr_assert_eq(lg_ws_parse_response("garbage\r\n\r\n", 11, key, &status, &ok), -1);
}

Test(lg_ws, client_frames_are_masked_and_round_trip)
{
    uint8_t out[512], mask[4] = {1, 2, 3, 4}, unmasked[300];
    char payload[300];
    lg_ws_frame_in f;
    int n;

    memset(payload, 'x', sizeof(payload));
    n = lg_ws_frame(out, sizeof(out), LG_WS_TEXT, payload, sizeof(payload), mask);
    cr_assert_eq(n, 2 + 2 + 4 + 300);
    cr_assert_eq(out[0], 0x81);
    cr_assert_eq(out[1], 0x80 | 126);
    cr_assert_eq(lg_ws_parse_frame(out, (size_t)n - 1, 4096, &f), 0, "incomplete frame");
    cr_assert_eq(lg_ws_parse_frame(out, (size_t)n, 4096, &f), n);
    cr_assert(f.masked);
    cr_assert_eq(f.len, 300);
    for (size_t i = 0; i < f.len; i++)
        unmasked[i] = f.payload[i] ^ mask[i & 3];
    cr_assert_eq(memcmp(unmasked, payload, 300), 0);
    cr_assert_eq(lg_ws_frame(out, sizeof(out), LG_WS_PING, payload, 126, mask), -1, "control frames <= 125");
    cr_assert_eq(lg_ws_frame(out, 10, LG_WS_TEXT, payload, 300, mask), -1, "bounded by the buffer");
}

Test(lg_ws, server_frames_parse)
{
    const uint8_t text[] = {0x81, 0x05, 'h', 'e', 'l', 'l', 'o'};
    const uint8_t close[] = {0x88, 0x02, 0x03, 0xe9};
    const uint8_t rsv[] = {0xc1, 0x00};
    const uint8_t big[] = {0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0};
    lg_ws_frame_in f;

    cr_assert_eq(lg_ws_parse_frame(text, sizeof(text), 4096, &f), 7);
    cr_assert_eq(f.opcode, LG_WS_TEXT);
    cr_assert(f.fin && !f.masked);
    cr_assert_eq(memcmp(f.payload, "hello", 5), 0);
    cr_assert_eq(lg_ws_parse_frame(close, sizeof(close), 4096, &f), 4);
    cr_assert_eq(f.opcode, LG_WS_CLOSE);
    cr_assert_eq((f.payload[0] << 8) | f.payload[1], 1001);
    cr_assert_eq(lg_ws_parse_frame(rsv, sizeof(rsv), 4096, &f), -1, "reserved bits");
    cr_assert_eq(lg_ws_parse_frame(big, sizeof(big), 4096, &f), -1, "over the payload bound");
}

Test(lg_model, zipf_prefers_low_ranks_and_is_seeded)
{
    lg_zipf z;
    lg_rng a, b;
    int hits[10] = {0};

    cr_assert_eq(lg_zipf_init(&z, 10, 1.0), 0);
    lg_rng_seed(&a, 42);
    lg_rng_seed(&b, 42);
    for (int i = 0; i < 20000; i++) {
        size_t k = lg_zipf_draw(&z, &a);

        cr_assert_lt(k, 10);
        hits[k]++;
        cr_assert_eq(lg_zipf_draw(&z, &b), k, "same seed, same draws");
    }
    /* P(rank 1) / P(rank 10) = 10 under s = 1. */
    cr_assert_gt(hits[0], 5 * hits[9]);
    cr_assert_gt(hits[0], hits[1]);
    lg_zipf_free(&z);
}

Test(lg_model, exponential_mean)
{
    lg_rng r;
    double sum = 0;

    lg_rng_seed(&r, 7);
    for (int i = 0; i < 100000; i++)
        sum += lg_rng_exp(&r, 15.0);
    cr_assert_float_eq(sum / 100000, 15.0, 0.5);
}
