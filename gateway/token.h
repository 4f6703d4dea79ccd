/* token.h -- viewer identity: HS256 JWTs (libjwt), algorithm pinned. */
#ifndef GW_TOKEN_H
#define GW_TOKEN_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    GW_TOKEN_OK = 0,
    GW_TOKEN_MALFORMED,     /* not a JWT, or bad signature, or wrong key */
    GW_TOKEN_BAD_ALG,       /* anything but HS256 (none, HS512, RS256, ...) */
    GW_TOKEN_BAD_SUB,       /* sub missing or not a positive decimal user id */
    GW_TOKEN_NO_EXP,        /* exp missing */
    GW_TOKEN_EXPIRED,       /* exp <= now */
    GW_TOKEN_NOT_YET,       /* nbf > now */
    GW_TOKEN_NOKEY,         /* no secret configured */
    GW_TOKEN__COUNT
} gw_token_rc;

/* Short name of a result ("expired", "bad_alg"), used as a metrics label. */
const char *gw_token_strerror(gw_token_rc rc);

/* Verify token against secret (secret_len bytes) at unix time now (seconds)
 * and set *user_id from `sub`. Pure: no global state besides libjwt. */
gw_token_rc gw_token_verify(const char *token, const unsigned char *secret, size_t secret_len,
                            int64_t now, int64_t *user_id);

/* Mint an HS256 token for user_id valid until now + ttl_s. Returns a string
 * the caller frees with free(), or NULL. */
char *gw_token_mint(int64_t user_id, int64_t now, int64_t ttl_s, const unsigned char *secret,
                    size_t secret_len);

#endif
