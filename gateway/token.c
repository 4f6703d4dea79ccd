/* token.c -- JWT verification and minting on libjwt (see token.h). */
#include "token.h"

#include <errno.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
