/*  test_token: HS256 service tokens as every service verifies them: a good
 *  token passes, and forged ones fail (alg none, another algorithm, a key
 *  we do not hold, tampered claims, expired, wrong scope, garbage); key
 *  rotation keeps exactly one previous key.  A token verified once is
 *  remembered, and still expires on time, still answers each scope, is
 *  forgotten when another process takes its key out of the file, and a
 *  key another process rotated in is accepted at once.  Tokens are written
 *  byte for byte as libjwt wrote them before Keel wrote its own (tokens it
 *  issued are kept below, with their key). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "config.h"
#include "testutil.h"
#include "token.h"

typedef struct {
    char dir[64];
    config_t *cfg;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/keel-token-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->cfg = config_new();
    char err[128];
    config_set(f->cfg, "data_dir", f->dir, err, sizeof err);
    *state = f;
    return token_keys_ensure(f->cfg);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    config_destroy(&f->cfg);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

static char *issue(fixture_t *f, const char *scope, long ttl)
{
    json_t *scopes = json_pack("[s]", scope);
    char *jwt = token_issue(f->cfg, "agent", scopes, ttl);
    json_decref(scopes);
    return jwt;
}

static char *b64(const char *text)
{
    char *out = malloc(512);
    sodium_bin2base64(out, 512, (const unsigned char *)text, strlen(text),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return out;
}

/* header.payload.signature with a signature made by `key` (NULL: empty). */
static char *forge(const char *header, const char *claims, const unsigned char *key)
{
    char *h = b64(header), *c = b64(claims);
    char *out = malloc(2048);
    int n = snprintf(out, 2048, "%s.%s.", h, c);
    if (key) {
        unsigned char mac[32];
        crypto_auth_hmacsha256(mac, (unsigned char *)out, (size_t)n - 1, key);
        sodium_bin2base64(out + n, 2048 - (size_t)n, mac, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    }
    free(h);
    free(c);
    return out;
}

static void test_good_token_and_scope(void **state)
{
    fixture_t *f = *state;
    char *jwt = issue(f, "admin", 60);
    char subject[64];
    const char *reason;
    assert_int_equal(token_verify_jwt(f->cfg, jwt, "admin", subject, sizeof subject, &reason), 0);
    assert_string_equal(subject, "agent");
    assert_int_equal(token_verify_jwt(f->cfg, jwt, NULL, NULL, 0, NULL), 0);
    assert_int_equal(token_verify_jwt(f->cfg, jwt, "write", NULL, 0, &reason), -1);
    assert_string_equal(reason, "missing scope");
    assert_true(token_verify_admin(f->cfg, jwt));
    free(jwt);
    char path[256];
    struct stat st;
    assert_int_equal(stat(token_keys_path(f->cfg, path, sizeof path), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_forged_tokens(void **state)
{
    fixture_t *f = *state;
    char claims[256];
    snprintf(claims, sizeof claims, "{\"iss\":\"keel\",\"sub\":\"x\",\"exp\":%ld,\"scopes\":[\"admin\"]}",
             (long)time(NULL) + 600);
    unsigned char other[32] = { 7 };
    const char *reason;
    char *none = forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", claims, NULL);
    assert_int_equal(token_verify_jwt(f->cfg, none, "admin", NULL, 0, &reason), -1);
    assert_string_equal(reason, "algorithm refused");
    assert_false(token_verify_admin(f->cfg, none));
    char *hs512 = forge("{\"alg\":\"HS512\"}", claims, other);
    assert_int_equal(token_verify_jwt(f->cfg, hs512, NULL, NULL, 0, &reason), -1);
    char *wrong = forge("{\"alg\":\"HS256\"}", claims, other);
    assert_int_equal(token_verify_jwt(f->cfg, wrong, NULL, NULL, 0, &reason), -1);
    assert_string_equal(reason, "bad signature");
    char *good = issue(f, "read", 60);
    char *dot = strchr(good, '.');
    char *tampered = forge("{\"alg\":\"HS256\"}", claims, NULL);
    /* our header, the forged admin claims, our signature: must fail */
    char mixed[2048];
    snprintf(mixed, sizeof mixed, "%.*s.%s%s", (int)(dot - good), good,
             strchr(tampered, '.') + 1, strrchr(good, '.') + 1);
    assert_int_equal(token_verify_jwt(f->cfg, mixed, NULL, NULL, 0, &reason), -1);
    const char *garbage[] = { "", "a", "a.b", "a.b.c", "a.b.c.d", "!!.??.**", "..", NULL };
    for (int i = 0; garbage[i]; i++)
        assert_int_equal(token_verify_jwt(f->cfg, garbage[i], NULL, NULL, 0, NULL), -1);
    char *huge = malloc(TOKEN_MAX_LEN + 10);
    memset(huge, 'a', TOKEN_MAX_LEN + 9);
    huge[TOKEN_MAX_LEN + 9] = '\0';
    assert_int_equal(token_verify_jwt(f->cfg, huge, NULL, NULL, 0, NULL), -1);
    assert_false(token_verify_admin(f->cfg, NULL));
    assert_false(token_verify_admin(f->cfg, ""));
    free(huge);
    free(none);
    free(hs512);
    free(wrong);
    free(good);
    free(tampered);
}

static void test_expired(void **state)
{
    fixture_t *f = *state;
    char *jwt = issue(f, "admin", -5);
    const char *reason;
    assert_int_equal(token_verify_jwt(f->cfg, jwt, NULL, NULL, 0, &reason), -1);
    assert_string_equal(reason, "expired");
    free(jwt);
}

static void test_rotation_keeps_one_previous_key(void **state)
{
    fixture_t *f = *state;
    char *old = issue(f, "admin", 60);
    assert_int_equal(token_keys_rotate(f->cfg), 0);
    char *mid = issue(f, "admin", 60);
    assert_int_equal(token_verify_jwt(f->cfg, old, NULL, NULL, 0, NULL), 0);
    assert_int_equal(token_verify_jwt(f->cfg, mid, NULL, NULL, 0, NULL), 0);
    assert_int_equal(token_keys_rotate(f->cfg), 0);
    assert_int_equal(token_verify_jwt(f->cfg, old, NULL, NULL, 0, NULL), -1);
    assert_int_equal(token_verify_jwt(f->cfg, mid, NULL, NULL, 0, NULL), 0);
    free(old);
    free(mid);
}

/* Waits (at most `seconds`) for token_verify_jwt to give `want`. */
static bool verify_becomes(fixture_t *f, const char *jwt, int want, double seconds)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        if (token_verify_jwt(f->cfg, jwt, NULL, NULL, 0, NULL) == want)
            return true;
        usleep(20000);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((double)(now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
    return false;
}

static void test_remembered_token_still_expires(void **state)
{
    fixture_t *f = *state;
    char *jwt = issue(f, "admin", 2);
    const char *reason = NULL;
    assert_int_equal(token_verify_jwt(f->cfg, jwt, "admin", NULL, 0, &reason), 0);
    assert_int_equal(token_verify_jwt(f->cfg, jwt, "admin", NULL, 0, &reason), 0);   /* remembered */
    assert_true(verify_becomes(f, jwt, -1, 10));
    assert_int_equal(token_verify_jwt(f->cfg, jwt, NULL, NULL, 0, &reason), -1);
    assert_string_equal(reason, "expired");
    free(jwt);
}

/* The key file as another process writes it: these keys, first signs. */
static void write_keys_file(fixture_t *f, const char *const *kids, unsigned char (*secrets)[32], int n)
{
    char path[256], text[512] = "", hex[65];
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        sodium_bin2hex(hex, sizeof hex, secrets[i], 32);
        used += (size_t)snprintf(text + used, sizeof text - used, "%s:%s\n", kids[i], hex);
    }
    token_keys_path(f->cfg, path, sizeof path);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *out = fopen(tmp, "w");
    assert_non_null(out);
    fputs(text, out);
    fclose(out);
    assert_int_equal(rename(tmp, path), 0);
}

static void test_keys_changed_by_another_process(void **state)
{
    fixture_t *f = *state;
    char *old = issue(f, "admin", 600);
    assert_int_equal(token_verify_jwt(f->cfg, old, NULL, NULL, 0, NULL), 0);
    /* Another process puts a new key in front and drops ours. */
    unsigned char secrets[1][32];
    randombytes_buf(secrets[0], 32);
    const char *kids[] = { "k-new" };
    write_keys_file(f, kids, secrets, 1);
    char claims[256];
    snprintf(claims, sizeof claims, "{\"iss\":\"keel\",\"sub\":\"x\",\"exp\":%ld,\"scopes\":[\"admin\"]}",
             (long)time(NULL) + 600);
    char *fresh = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, secrets[0]);
    char subject[16];
    assert_int_equal(token_verify_jwt(f->cfg, fresh, "admin", subject, sizeof subject, NULL), 0);   /* at once */
    assert_string_equal(subject, "x");
    /* The dropped key's token, remembered or not, stops passing. */
    assert_int_equal(token_verify_jwt(f->cfg, old, NULL, NULL, 0, NULL), -1);
    free(old);
    free(fresh);
}

/* Issued by libjwt 1.10.2 (Keel's writer until it wrote its own) under the
 * key below: agent-1 with [admin, read] and 600 s, then x"y\é with no
 * scopes and 60 s, both at iat 1796665368. */
static const char *const libjwt_tokens[] = {
    "eyJhbGciOiJIUzI1NiIsImtpZCI6ImU5MjVlNmI2MmFkYmJmYjciLCJ0eXAiOiJKV1QifQ.eyJleHAiOjE3OTY2NjU5NjgsImlhdCI6MTc5NjY2NTM2OCwiaXNzIjoia2VlbCIsInNjb3BlcyI6WyJhZG1pbiIsInJlYWQiXSwic3ViIjoiYWdlbnQtMSJ9.-Y_onlMahVOX1vsj-oQF34r560ToCzHfxxy43wFBMVQ",
    "eyJhbGciOiJIUzI1NiIsImtpZCI6ImU5MjVlNmI2MmFkYmJmYjciLCJ0eXAiOiJKV1QifQ.eyJleHAiOjE3OTY2NjU0MjgsImlhdCI6MTc5NjY2NTM2OCwiaXNzIjoia2VlbCIsInNjb3BlcyI6W10sInN1YiI6InhcInlcXMOpIn0.QfSjy2k82aPDrKJ06HTUIPKlsZD2DJEpuNZAIW00LPA",
};
static const char libjwt_key[] = "05f00e7afb27df0361687920540bbc31303a32d5c922cd60389ce9006e665f8d";

/* The JSON text of a token's part `index` (0 header, 1 claims). */
static void part_text(const char *jwt, int index, char *out, size_t len)
{
    const char *start = jwt;
    for (int i = 0; i < index; i++)
        start = strchr(start, '.') + 1;
    size_t bin_len;
    assert_int_equal(sodium_base642bin((unsigned char *)out, len - 1, start, strcspn(start, "."), NULL,
                                       &bin_len, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
    out[bin_len] = '\0';
}

/* Whether the signature is the HMAC-SHA256 of the first two parts under `key`. */
static bool signed_with(const char *jwt, const unsigned char *key)
{
    const char *sig = strrchr(jwt, '.');
    unsigned char mac[32];
    char expect[64];
    crypto_auth_hmacsha256(mac, (const unsigned char *)jwt, (size_t)(sig - jwt), key);
    sodium_bin2base64(expect, sizeof expect, mac, sizeof mac, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return strcmp(expect, sig + 1) == 0;
}

static void test_written_as_libjwt_wrote(void **state)
{
    fixture_t *f = *state;
    unsigned char secrets[1][32];
    assert_int_equal(sodium_hex2bin(secrets[0], 32, libjwt_key, 64, NULL, NULL, NULL), 0);
    const char *kids[] = { "e925e6b62adbbfb7" };
    write_keys_file(f, kids, secrets, 1);
    const char *claims_format[] = {
        "{\"exp\":%ld,\"iat\":%ld,\"iss\":\"keel\",\"scopes\":[\"admin\",\"read\"],\"sub\":\"agent-1\"}",
        "{\"exp\":%ld,\"iat\":%ld,\"iss\":\"keel\",\"scopes\":[],\"sub\":\"x\\\"y\\\\\u00e9\"}",
    };
    const char *subjects[] = { "agent-1", "x\"y\\\u00e9" };
    json_t *scopes[] = { json_pack("[s, s]", "admin", "read"), NULL };
    long ttl[] = { 600, 60 };
    for (int i = 0; i < 2; i++) {
        char text[512], expect[512];
        /* the format matches what libjwt wrote, and so does the key's use */
        part_text(libjwt_tokens[i], 1, text, sizeof text);
        snprintf(expect, sizeof expect, claims_format[i], 1796665368L + ttl[i], 1796665368L);
        assert_string_equal(text, expect);
        assert_true(signed_with(libjwt_tokens[i], secrets[0]));

        char *jwt = token_issue(f->cfg, subjects[i], scopes[i], ttl[i]);
        assert_non_null(jwt);
        assert_memory_equal(jwt, libjwt_tokens[i], (size_t)(strchr(jwt, '.') - jwt) + 1);
        part_text(jwt, 0, text, sizeof text);
        assert_string_equal(text, "{\"alg\":\"HS256\",\"kid\":\"e925e6b62adbbfb7\",\"typ\":\"JWT\"}");
        part_text(jwt, 1, text, sizeof text);
        long iat = atol(strstr(text, "\"iat\":") + 6);
        assert_true(labs(iat - (long)time(NULL)) <= 5);
        snprintf(expect, sizeof expect, claims_format[i], iat + ttl[i], iat);
        assert_string_equal(text, expect);
        assert_true(signed_with(jwt, secrets[0]));
        char subject[32];
        assert_int_equal(token_verify_jwt(f->cfg, jwt, NULL, subject, sizeof subject, NULL), 0);
        assert_string_equal(subject, subjects[i]);
        free(jwt);
    }
    json_decref(scopes[0]);
    assert_null(token_issue(f->cfg, NULL, NULL, 60));
}

static void test_session_shape(void **state)
{
    (void)state;
    assert_true(token_is_session("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
    assert_false(token_is_session("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
    assert_false(token_is_session("0123"));
    assert_false(token_is_session(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_token_and_scope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_keeps_one_previous_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remembered_token_still_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_changed_by_another_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_written_as_libjwt_wrote, setup, teardown),
        cmocka_unit_test(test_session_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
