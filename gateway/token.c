/* token.c -- JWT verification and minting on libjwt (see token.h). */
#include "token.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "parse.h"

static const char *const token_names[GW_TOKEN__COUNT] = {
    [GW_TOKEN_OK] = "ok",           [GW_TOKEN_MALFORMED] = "bad_signature",
    [GW_TOKEN_BAD_ALG] = "bad_alg", [GW_TOKEN_BAD_SUB] = "bad_sub",
    [GW_TOKEN_NO_EXP] = "no_exp",   [GW_TOKEN_EXPIRED] = "expired",
    [GW_TOKEN_NOT_YET] = "not_yet_valid", [GW_TOKEN_NOKEY] = "no_key",
};

const char *gw_token_strerror(gw_token_rc rc)
{
    if ((unsigned)rc >= GW_TOKEN__COUNT)
        return "unknown";
    return token_names[rc];
}

/* A JWT's claims are JSON numbers or strings; accept both for sub. */
static int token_sub(jwt_t *jwt, int64_t *user_id)
{
    const char *s = jwt_get_grant(jwt, "sub");
    long v;

    if (s != NULL)
        return gw_parse_id(s, user_id);
    errno = 0;
    v = jwt_get_grant_int(jwt, "sub");
    if (errno || v <= 0)
        return -1;
    *user_id = v;
    return 0;
}

/* ---- the fast path: HS256 checked here, the rest left to libjwt ----
 *
 * libjwt 1.10 computes the HMAC with OpenSSL 3's HMAC(), which fetches the
 * algorithm from the provider store on every call; that and its JSON work
 * were ~14% of the gateway's CPU per new viewer. A token whose header is
 * exactly what we accept ({"alg":"HS256"}, typ absent or "JWT") is checked
 * here with the same rule as libjwt: HMAC-SHA256 of the bytes before the
 * second dot, base64url without padding, compared (in constant time) with
 * the third part as text. Anything else -- other algorithms, odd encodings,
 * a payload that is not a JSON object -- goes to libjwt, so its answers
 * stay the reference. */

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

enum { FAST_NO = -1 }; /* the fast path cannot decide: ask libjwt */

static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decode unpadded base64url; returns the length or -1. out holds len*3/4+1. */
static long b64url_decode(const char *in, size_t len, unsigned char *out)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_val((unsigned char)in[i]);

        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)o;
}

static void b64url_encode(const unsigned char *in, size_t len, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;

    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;

        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
    }
    out[o] = '\0';
}

/* A base64url part decoded as a JSON object, or NULL. */
static json_t *b64url_json(const char *in, size_t len)
{
    unsigned char buf[3072];
    long n;

    if (len > 4096)
        return NULL;
    n = b64url_decode(in, len, buf);
    if (n < 0)
        return NULL;
    json_t *js = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    if (js && !json_is_object(js)) {
        json_decref(js);
        return NULL;
    }
    return js;
}

static int hmac_sha256(const unsigned char *key, size_t key_len, const char *msg, size_t len, unsigned char mac[32])
{
    unsigned char k[64], pad[64], inner[32];
    unsigned int n;
    EVP_MD_CTX *ctx;
    int ok;

    pthread_once(&sha256_once, sha256_fetch);
    if (sha256_md == NULL || (ctx = EVP_MD_CTX_new()) == NULL)
        return -1;
    memset(k, 0, sizeof(k));
    if (key_len > sizeof(k)) {
        ok = EVP_DigestInit_ex(ctx, sha256_md, NULL) && EVP_DigestUpdate(ctx, key, key_len) &&
             EVP_DigestFinal_ex(ctx, k, &n);
        if (!ok) {
            EVP_MD_CTX_free(ctx);
            return -1;
        }
    } else
        memcpy(k, key, key_len);
    for (size_t i = 0; i < sizeof(k); i++)
        pad[i] = k[i] ^ 0x36;
    ok = EVP_DigestInit_ex(ctx, sha256_md, NULL) && EVP_DigestUpdate(ctx, pad, sizeof(pad)) &&
         EVP_DigestUpdate(ctx, msg, len) && EVP_DigestFinal_ex(ctx, inner, &n);
    for (size_t i = 0; i < sizeof(k); i++)
        pad[i] = k[i] ^ 0x5c;
    ok = ok && EVP_DigestInit_ex(ctx, sha256_md, NULL) && EVP_DigestUpdate(ctx, pad, sizeof(pad)) &&
         EVP_DigestUpdate(ctx, inner, sizeof(inner)) && EVP_DigestFinal_ex(ctx, mac, &n);
    EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
    return ok ? 0 : -1;
}

/* The claims rules of gw_token_verify (libjwt's: numbers must be integers). */
static gw_token_rc claims_check(json_t *claims, int64_t now, int64_t *user_id)
{
    json_t *sub = json_object_get(claims, "sub"), *exp = json_object_get(claims, "exp"),
           *nbf = json_object_get(claims, "nbf");

    if (json_is_string(sub)) {
        if (gw_parse_id(json_string_value(sub), user_id))
            return GW_TOKEN_BAD_SUB;
    } else if (json_is_integer(sub) && (long)json_integer_value(sub) > 0) {
        *user_id = (long)json_integer_value(sub);
    } else
        return GW_TOKEN_BAD_SUB;
    if (!json_is_integer(exp))
        return GW_TOKEN_NO_EXP;
    if ((long)json_integer_value(exp) <= now)
        return GW_TOKEN_EXPIRED;
    if (json_is_integer(nbf) && (long)json_integer_value(nbf) > now)
        return GW_TOKEN_NOT_YET;
    return GW_TOKEN_OK;
}

/* GW_TOKEN_* when this path decides, FAST_NO when libjwt must. */
static int token_verify_fast(const char *token, const unsigned char *secret, size_t secret_len, int64_t now,
                             int64_t *user_id)
{
    const char *d1 = strchr(token, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    json_t *head, *claims;
    const char *alg, *typ;
    unsigned char mac[32];
    char mac64[48];
    int rc;

    if (d2 == NULL || strchr(d2 + 1, '.'))
        return FAST_NO;
    head = b64url_json(token, (size_t)(d1 - token));
    if (head == NULL)
        return FAST_NO;
    alg = json_string_value(json_object_get(head, "alg"));
    typ = json_string_value(json_object_get(head, "typ"));
    rc = alg && !strcmp(alg, "HS256") && (typ == NULL || !strcasecmp(typ, "JWT")) ? 0 : FAST_NO;
    json_decref(head);
    if (rc)
        return FAST_NO;
    if (hmac_sha256(secret, secret_len, token, (size_t)(d2 - token), mac))
        return FAST_NO;
    b64url_encode(mac, sizeof(mac), mac64);
    if (strlen(d2 + 1) != strlen(mac64) || CRYPTO_memcmp(d2 + 1, mac64, strlen(mac64)) != 0)
        return GW_TOKEN_MALFORMED;
    claims = b64url_json(d1 + 1, (size_t)(d2 - d1 - 1));
    if (claims == NULL)
        return FAST_NO;
    rc = (int)claims_check(claims, now, user_id);
    json_decref(claims);
    return rc;
}

gw_token_rc gw_token_verify(const char *token, const unsigned char *secret, size_t secret_len, int64_t now,
                            int64_t *user_id)
{
    jwt_t *jwt = NULL;
    gw_token_rc rc = GW_TOKEN_OK;
    long exp, nbf;

    if (secret == NULL || secret_len == 0)
        return GW_TOKEN_NOKEY;
    if (token == NULL || !token[0] || strlen(token) > 4096)
        return GW_TOKEN_MALFORMED;
    {
        int fast = token_verify_fast(token, secret, secret_len, now, user_id);

        if (fast != FAST_NO)
            return (gw_token_rc)fast;
    }
    /* jwt_decode checks the signature with the key for the algorithm the
     * header names; the header is attacker-controlled, so pin it after. */
    if (jwt_decode(&jwt, token, secret, (int)secret_len) != 0 || jwt == NULL) {
        jwt_free(jwt);
        return GW_TOKEN_MALFORMED;
    }
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        rc = GW_TOKEN_BAD_ALG;
        goto out;
    }
    if (token_sub(jwt, user_id)) {
        rc = GW_TOKEN_BAD_SUB;
        goto out;
    }
    errno = 0;
    exp = jwt_get_grant_int(jwt, "exp");
    if (errno) {
        rc = GW_TOKEN_NO_EXP;
        goto out;
    }
    if (exp <= now) {
        rc = GW_TOKEN_EXPIRED;
        goto out;
    }
    errno = 0;
    nbf = jwt_get_grant_int(jwt, "nbf");
    if (!errno && nbf > now)
        rc = GW_TOKEN_NOT_YET;
out:
    jwt_free(jwt);
    return rc;
}

char *gw_token_mint(int64_t user_id, int64_t now, int64_t ttl_s, const unsigned char *secret, size_t secret_len)
{
    jwt_t *jwt = NULL;
    char sub[24], *out = NULL, *s;

    if (user_id <= 0 || secret_len == 0 || jwt_new(&jwt))
        return NULL;
    snprintf(sub, sizeof(sub), "%lld", (long long)user_id);
    if (jwt_add_grant(jwt, "sub", sub) || jwt_add_grant_int(jwt, "iat", (long)now) ||
        jwt_add_grant_int(jwt, "exp", (long)(now + ttl_s)) ||
        jwt_set_alg(jwt, JWT_ALG_HS256, secret, (int)secret_len))
        goto out;
    s = jwt_encode_str(jwt); /* malloc'd: the caller's free() */
    out = s;
out:
    jwt_free(jwt);
    return out;
}
