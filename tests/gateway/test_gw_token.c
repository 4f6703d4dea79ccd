/* Viewer tokens: HS256 only, sub/exp/nbf rules, forged tokens refused. */
#include <criterion/criterion.h>
#include <jwt.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

static const unsigned char secret[] = "test-secret-0123456789";
#define SLEN (sizeof(secret) - 1)
#define NOW 1800000000

/* A token with arbitrary claims and algorithm, signed by libjwt with key. */
static char *make(jwt_alg_t alg, const unsigned char *key, int keylen, const char *sub, long exp, long nbf)
{
    jwt_t *jwt = NULL;
    char *s;

    cr_assert_eq(jwt_new(&jwt), 0);
    if (sub)
        jwt_add_grant(jwt, "sub", sub);
    if (exp)
        jwt_add_grant_int(jwt, "exp", exp);
    if (nbf)
        jwt_add_grant_int(jwt, "nbf", nbf);
    cr_assert_eq(jwt_set_alg(jwt, alg, key, keylen), 0);
    s = jwt_encode_str(jwt);
    jwt_free(jwt);
    cr_assert_not_null(s);
    return s;
}

Test(token, minted_token_verifies_to_its_user)
{
    char *t = gw_token_mint(42, NOW, 60, secret, SLEN);
    int64_t user = 0;

    cr_assert_not_null(t);
    cr_assert_eq(gw_token_verify(t, secret, SLEN, NOW, &user), GW_TOKEN_OK);
    cr_assert_eq(user, 42);
    free(t);
}

Test(token, expired_token_is_refused)
{
    char *t = gw_token_mint(42, NOW - 100, 60, secret, SLEN);
    int64_t user;

    cr_assert_eq(gw_token_verify(t, secret, SLEN, NOW, &user), GW_TOKEN_EXPIRED);
    free(t);
}

Test(token, wrong_secret_is_refused)
{
    char *t = gw_token_mint(42, NOW, 60, (const unsigned char *)"other", 5);
    int64_t user;

    cr_assert_eq(gw_token_verify(t, secret, SLEN, NOW, &user), GW_TOKEN_MALFORMED);
    free(t);
}

Test(token, alg_none_is_refused)
{
    char *t = make(JWT_ALG_NONE, NULL, 0, "42", NOW + 60, 0);
    int64_t user;

    cr_assert_neq(gw_token_verify(t, secret, SLEN, NOW, &user), GW_TOKEN_OK);
    free(t);
}

Test(token, hand_made_alg_none_is_refused)
{
    /* {"alg":"none","typ":"JWT"}.{"sub":"42","exp":4102444800}. */
    const char *t = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiI0MiIsImV4cCI6NDEwMjQ0NDgwMH0.";
    int64_t user;

    cr_assert_neq(gw_token_verify(t, secret, SLEN, NOW, &user), GW_TOKEN_OK);
}

Test(token, hs512_with_the_same_secret_is_refused)
{
    char *t = make(JWT_ALG_HS512, secret, SLEN, "42", NOW + 60, 0);
    int64_t user;

    cr_assert_eq(gw_token_verify(t, secret, SLEN, NOW, &user), GW_TOKEN_BAD_ALG);
    free(t);
}

Test(token, rs256_header_with_hmac_signature_is_refused)
{
    /* Algorithm confusion: header says RS256, body signed with HMAC of the
     * secret. The HS256 token's signature is re-used under an RS256 header. */
    char *hs = make(JWT_ALG_HS256, secret, SLEN, "42", NOW + 60, 0);
    const char *rs_header = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"; /* {"alg":"RS256","typ":"JWT"} */
    char forged[1024];
    int64_t user;

    snprintf(forged, sizeof(forged), "%s%s", rs_header, strchr(hs, '.'));
    cr_assert_neq(gw_token_verify(forged, secret, SLEN, NOW, &user), GW_TOKEN_OK);
    free(hs);
}

Test(token, sub_must_be_a_positive_decimal)
{
    const char *subs[] = {"0", "-1", "abc", "12a", "", "99999999999999999999"};
    int64_t user;

    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        char *t = make(JWT_ALG_HS256, secret, SLEN, subs[i], NOW + 60, 0);

        cr_expect_eq(gw_token_verify(t, secret, SLEN, NOW, &user), GW_TOKEN_BAD_SUB, "sub '%s'", subs[i]);
        free(t);
    }
}

Test(token, missing_sub_and_missing_exp)
{
    char *nosub = make(JWT_ALG_HS256, secret, SLEN, NULL, NOW + 60, 0);
    char *noexp = make(JWT_ALG_HS256, secret, SLEN, "42", 0, 0);
    int64_t user;

    cr_expect_eq(gw_token_verify(nosub, secret, SLEN, NOW, &user), GW_TOKEN_BAD_SUB);
    cr_expect_eq(gw_token_verify(noexp, secret, SLEN, NOW, &user), GW_TOKEN_NO_EXP);
    free(nosub);
    free(noexp);
}

Test(token, nbf_in_the_future_is_refused_and_in_the_past_accepted)
{
    char *later = make(JWT_ALG_HS256, secret, SLEN, "42", NOW + 600, NOW + 60);
    char *earlier = make(JWT_ALG_HS256, secret, SLEN, "42", NOW + 600, NOW - 60);
    int64_t user;

    cr_expect_eq(gw_token_verify(later, secret, SLEN, NOW, &user), GW_TOKEN_NOT_YET);
    cr_expect_eq(gw_token_verify(earlier, secret, SLEN, NOW, &user), GW_TOKEN_OK);
    free(later);
    free(earlier);
}

Test(token, garbage_and_no_secret)
{
    int64_t user;

    cr_expect_eq(gw_token_verify("not-a-jwt", secret, SLEN, NOW, &user), GW_TOKEN_MALFORMED);
    cr_expect_eq(gw_token_verify("", secret, SLEN, NOW, &user), GW_TOKEN_MALFORMED);
    cr_expect_eq(gw_token_verify("a.b.c", NULL, 0, NOW, &user), GW_TOKEN_NOKEY);
    cr_expect_str_eq(gw_token_strerror(GW_TOKEN_EXPIRED), "expired");
}
