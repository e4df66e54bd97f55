/*  token: see token.h.
 *
 *  The signature is checked here, with libsodium's HMAC and a constant-time
 *  compare, before libjwt ever sees the token: libjwt then only parses the
 *  claims of a token already known to be ours.  The header's algorithm is
 *  read first and anything but HS256 is refused, which closes the "alg:
 *  none" and algorithm-confusion doors whatever the library would do. */
#include "token.h"
#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "wire.h"

#include <jwt.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KEY_BYTES 32
#define MAX_KEYS 2

typedef struct {
    char kid[17];
    unsigned char secret[KEY_BYTES];
} jwt_key_t;

typedef struct {
    char path[4096];
    struct timespec mtime;
    off_t size;
    ino_t inode;
    int count;
    jwt_key_t keys[MAX_KEYS];
} keyring_t;

static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static keyring_t ring;

char *token_keys_path(config_t *cfg, char *buf, size_t len)
{
    const char *file = config_str(cfg, "security.jwt_keys_file", "");
    if (*file)
        snprintf(buf, len, "%s", file);
    else
        snprintf(buf, len, "%s/security/jwt.keys", config_str(cfg, "data_dir", "./var/keel"));
    return buf;
}

/* Parses "kid:hex" lines into keys; returns how many. */
static int parse_keys(const char *text, jwt_key_t *keys)
{
    int count = 0;
    const char *line = text;
    while (line && *line && count < MAX_KEYS) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        const char *colon = memchr(line, ':', n);
        if (colon && colon - line < 17 && n - (size_t)(colon - line + 1) == KEY_BYTES * 2) {
            jwt_key_t *k = &keys[count];
            memset(k->kid, 0, sizeof k->kid);
            memcpy(k->kid, line, (size_t)(colon - line));
            size_t bin_len;
            if (sodium_hex2bin(k->secret, KEY_BYTES, colon + 1, KEY_BYTES * 2, NULL, &bin_len, NULL) == 0
                && bin_len == KEY_BYTES)
                count++;
        }
        line = end ? end + 1 : NULL;
    }
    return count;
}

/* Copies the current keys out, re-reading the file when it changed. */
static int load_keys(config_t *cfg, jwt_key_t *out)
{
    char path[4096];
    token_keys_path(cfg, path, sizeof path);
    struct stat st;
    if (stat(path, &st) < 0)
        return 0;
    pthread_mutex_lock(&ring_lock);
    if (strcmp(ring.path, path) || st.st_mtim.tv_sec != ring.mtime.tv_sec
        || st.st_mtim.tv_nsec != ring.mtime.tv_nsec || st.st_size != ring.size
        || st.st_ino != ring.inode) {
        char *text = fs_read_all(path, NULL);
        ring.count = text ? parse_keys(text, ring.keys) : 0;
        if (text)
            sodium_memzero(text, strlen(text));
        free(text);
        snprintf(ring.path, sizeof ring.path, "%s", path);
        ring.mtime = st.st_mtim;
        ring.size = st.st_size;
        ring.inode = st.st_ino;
    }
    int count = ring.count;
    memcpy(out, ring.keys, sizeof ring.keys);
    pthread_mutex_unlock(&ring_lock);
    return count;
}

static int write_keys(config_t *cfg, const jwt_key_t *keys, int count)
{
    char path[4096], dir[4096], text[256] = "";
    token_keys_path(cfg, path, sizeof path);
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        fs_mkdirs(dir);
    }
    size_t used = 0;
    for (int i = 0; i < count; i++) {
        char hex[KEY_BYTES * 2 + 1];
        sodium_bin2hex(hex, sizeof hex, keys[i].secret, KEY_BYTES);
        used += (size_t)snprintf(text + used, sizeof text - used, "%s:%s\n", keys[i].kid, hex);
        sodium_memzero(hex, sizeof hex);
    }
    int rc = fs_write_atomic(path, text, used, 0600);
    sodium_memzero(text, sizeof text);
    if (rc < 0)
        log_error("token", "cannot write the JWT key file %s", path);
    return rc;
}

static void fresh_key(jwt_key_t *k)
{
    unsigned char id[8];
    randombytes_buf(id, sizeof id);
    sodium_bin2hex(k->kid, sizeof k->kid, id, sizeof id);
    randombytes_buf(k->secret, KEY_BYTES);
}

int token_keys_ensure(config_t *cfg)
{
    if (sodium_init() < 0)
        return -1;
    jwt_key_t keys[MAX_KEYS];
    int count = load_keys(cfg, keys);
    sodium_memzero(keys, sizeof keys);
    if (count > 0)
        return 0;
    fresh_key(&keys[0]);
    int rc = write_keys(cfg, keys, 1);
    sodium_memzero(keys, sizeof keys);
    return rc;
}

int token_keys_rotate(config_t *cfg)
{
    jwt_key_t keys[MAX_KEYS];
    int count = load_keys(cfg, keys);
    if (count > 0)
        keys[1] = keys[0];
    fresh_key(&keys[0]);
    int rc = write_keys(cfg, keys, count > 0 ? 2 : 1);
    sodium_memzero(keys, sizeof keys);
    if (rc == 0)
        log_info("token", "JWT signing key rotated; the previous key stays accepted");
    return rc;
}

char *token_issue(config_t *cfg, const char *subject, json_t *scopes, long ttl_s)
{
    jwt_key_t keys[MAX_KEYS];
    if (load_keys(cfg, keys) < 1) {
        log_error("token", "no JWT signing key: cannot issue a token");
        return NULL;
    }
    jwt_t *jwt = NULL;
    char *out = NULL;
    json_t *claims = json_pack("{s:O}", "scopes", scopes ? scopes : json_array());
    char *claims_text = json_dumps(claims, JSON_COMPACT);
    long now = (long)clock_wall();
    if (jwt_new(&jwt) == 0 && jwt_add_grant(jwt, "iss", TOKEN_ISSUER) == 0
        && jwt_add_grant(jwt, "sub", subject) == 0 && jwt_add_grant_int(jwt, "iat", now) == 0
        && jwt_add_grant_int(jwt, "exp", now + ttl_s) == 0
        && jwt_add_grants_json(jwt, claims_text) == 0 && jwt_add_header(jwt, "kid", keys[0].kid) == 0
        && jwt_set_alg(jwt, JWT_ALG_HS256, keys[0].secret, KEY_BYTES) == 0)
        out = jwt_encode_str(jwt);
    if (!out)
        log_error("token", "cannot encode a JWT");
    jwt_free(jwt);
    free(claims_text);
    json_decref(claims);
    sodium_memzero(keys, sizeof keys);
    return out;
}

bool token_is_session(const char *text)
{
    if (!text || strlen(text) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f')))
            return false;
    return true;
}

static bool b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
           || c == '-' || c == '_';
}

/* The decoded header, or NULL when it is not base64url JSON. */
static json_t *decode_header(const char *b64, size_t len)
{
    unsigned char bin[1024];
    size_t bin_len;
    if (len > 1300 || sodium_base642bin(bin, sizeof bin, b64, len, NULL, &bin_len, NULL,
                                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return NULL;
    json_error_t jerr;
    return json_loadb((const char *)bin, bin_len, 0, &jerr);
}

/* Index of the key whose HMAC matches the signature, or -1. */
static int match_key(const char *jwt, size_t signed_len, const char *sig, const jwt_key_t *keys, int count)
{
    int found = -1;
    for (int i = 0; i < count; i++) {
        unsigned char mac[crypto_auth_hmacsha256_BYTES];
        crypto_auth_hmacsha256_state st;
        crypto_auth_hmacsha256_init(&st, keys[i].secret, KEY_BYTES);
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)jwt, signed_len);
        crypto_auth_hmacsha256_final(&st, mac);
        char expect[64];
        sodium_bin2base64(expect, sizeof expect, mac, sizeof mac,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        size_t n = strlen(expect);
        if (strlen(sig) == n && sodium_memcmp(expect, sig, n) == 0)
            found = i;
    }
    return found;
}

static bool has_scope(jwt_t *jwt, const char *scope)
{
    if (!scope)
        return true;
    char *text = jwt_get_grants_json(jwt, "scopes");
    json_error_t jerr;
    json_t *scopes = text ? json_loads(text, JSON_DECODE_ANY, &jerr) : NULL;
    free(text);
    bool found = false;
    size_t i;
    json_t *s;
    json_array_foreach(scopes, i, s)
        if (json_is_string(s) && strcmp(json_string_value(s), scope) == 0)
            found = true;
    json_decref(scopes);
    return found;
}

/* Checks the claims of a token whose signature matched `key`. */
static int check_claims(const char *jwt_text, const jwt_key_t *key, const char *scope,
                        char *subject, size_t subject_len, const char **reason)
{
    jwt_t *jwt = NULL;
    int rc = -1;
    if (jwt_decode(&jwt, jwt_text, key->secret, KEY_BYTES) != 0 || jwt_get_alg(jwt) != JWT_ALG_HS256) {
        *reason = "malformed";
    } else {
        const char *iss = jwt_get_grant(jwt, "iss"), *sub = jwt_get_grant(jwt, "sub");
        long exp = jwt_get_grant_int(jwt, "exp");
        if (!iss || strcmp(iss, TOKEN_ISSUER) || !sub || !*sub)
            *reason = "wrong issuer or subject";
        else if (exp <= 0 || (double)exp <= clock_wall())
            *reason = "expired";
        else if (!has_scope(jwt, scope))
            *reason = "missing scope";
        else {
            if (subject)
                snprintf(subject, subject_len, "%s", sub);
            rc = 0;
        }
    }
    jwt_free(jwt);
    return rc;
}

int token_verify_jwt(config_t *cfg, const char *jwt, const char *scope,
                     char *subject, size_t subject_len, const char **reason)
{
    const char *why = "malformed";
    const char **r = reason ? reason : &why;
    *r = "malformed";
    size_t len = jwt ? strnlen(jwt, TOKEN_MAX_LEN + 1) : 0;
    if (len == 0 || len > TOKEN_MAX_LEN)
        return -1;
    const char *dot1 = strchr(jwt, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot1 || !dot2 || strchr(dot2 + 1, '.'))
        return -1;
    for (const char *p = jwt; *p; p++)
        if (*p != '.' && !b64url_char(*p))
            return -1;
    json_t *header = decode_header(jwt, (size_t)(dot1 - jwt));
    const char *alg = json_string_value(json_object_get(header, "alg"));
    bool hs256 = alg && strcmp(alg, "HS256") == 0;
    json_decref(header);
    if (!hs256) {
        *r = "algorithm refused";
        return -1;
    }
    jwt_key_t keys[MAX_KEYS];
    int count = load_keys(cfg, keys);
    int which = match_key(jwt, (size_t)(dot2 - jwt), dot2 + 1, keys, count);
    int rc = -1;
    if (which < 0)
        *r = "bad signature";
    else
        rc = check_claims(jwt, &keys[which], scope, subject, subject_len, r);
    sodium_memzero(keys, sizeof keys);
    return rc;
}

/* Asks SecurityGateway whether a session token belongs to an administrator. */
static bool session_is_admin(config_t *cfg, const char *token)
{
    char endpoint[256], err[256];
    const char *configured = config_str(cfg, "security.endpoint", "");
    if (*configured)
        snprintf(endpoint, sizeof endpoint, "%s", configured);
    else
        config_local_endpoint(cfg, 7005, endpoint, sizeof endpoint);
    json_t *request = json_pack("{s:s, s:s, s:s}", "action", "authorize", "token", token,
                                "scope", "admin");
    json_t *reply = wire_call(endpoint, request, 2000, 0, err, sizeof err);
    json_decref(request);
    bool ok = json_is_true(json_object_get(reply, "valid"));
    if (!reply)
        log_warn("token", "cannot check a session token: %s", err);
    json_decref(reply);
    return ok;
}

bool token_verify_admin(config_t *cfg, const char *bearer)
{
    if (!bearer || !*bearer)
        return false;
    if (token_is_session(bearer))
        return session_is_admin(cfg, bearer);
    return token_verify_jwt(cfg, bearer, "admin", NULL, 0, NULL) == 0;
}

bool token_check_admin(void *ctx, const char *token)
{
    return token_verify_admin(ctx, token);
}

char *token_issue_service(config_t *cfg, const char *service, long ttl_s)
{
    if (token_keys_ensure(cfg) < 0)
        return NULL;
    json_t *scopes = json_pack("[s]", "admin");
    char *jwt = token_issue(cfg, service, scopes, ttl_s);
    json_decref(scopes);
    return jwt;
}
