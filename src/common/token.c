/*  token: see token.h.
 *
 *  The header's algorithm is read first and anything but HS256 is refused,
 *  which closes the "alg: none" and algorithm-confusion doors; then the
 *  signature is checked with libsodium's HMAC and a constant-time compare;
 *  only then are the claims read (iss, sub, exp, scopes), as JSON, here:
 *  libjwt, which checked the HMAC a second time and parsed everything
 *  again, cost two thirds of a validation.  Tokens are written here too,
 *  byte for byte as libjwt wrote them (compact JSON, keys sorted, header
 *  alg, kid, typ), so agents holding one notice nothing, and no process
 *  maps libjwt (and the libcrypto it pulled in) for the few tokens issued.
 *
 *  Validations at wire speed: the keys are parsed once and kept, the file
 *  looked at (stat) at most once a second, and at once when a signature
 *  matches none of the keys kept (a key another process just rotated in),
 *  and rotation in this process reloads them at once.  A token whose
 *  signature and claims were checked is remembered (VERIFIED slots) by its
 *  128-bit SipHash under a key drawn at start (a keyed PRF: no one without
 *  the key can make another token land on it, and the token itself is not
 *  kept): the next time it is presented under the same keys, only its
 *  expiry and scope are checked, against the claims kept.  What changes the answer is never skipped: expiry is
 *  checked on every call, and a reload of the keys forgets every token
 *  checked under the old ones.  So a key removed from the file by another
 *  process stops being accepted within a second; JWTs have no other
 *  revocation (sessions, which do, are SecurityGateway's). */
#include "token.h"
#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "wire.h"
#include "wirejson.h"

#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KEY_BYTES 32
#define MAX_KEYS 2
#define KEYS_RECHECK_S 1.0      /* how often the key file is looked at */
#define VERIFIED 256            /* tokens remembered (a power of two) */
#define B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING

_Static_assert(KEY_BYTES == crypto_auth_hmacsha256_KEYBYTES, "a key file's key is an HMAC-SHA256 key as it is");

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
    double checked;             /* clock_mono() of the last stat */
    const config_t *cfg;        /* whose path was looked at then */
    bool stale;                 /* rotated here: read the file again now */
    unsigned long generation;   /* moves with every reload */
} keyring_t;

static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static keyring_t ring;

/* A token whose signature and claims were checked, under the keys of
 * `generation`, known by its keyed hash. */
typedef struct {
    unsigned char id[crypto_shorthash_siphashx24_BYTES];
    bool used;
    unsigned long generation;
    long exp;
    char subject[256];
    json_t *scopes;             /* the claim as it was, or NULL */
} verified_t;

static pthread_mutex_t verified_lock = PTHREAD_MUTEX_INITIALIZER;
static verified_t verified[VERIFIED];
static unsigned char verified_key[crypto_shorthash_siphashx24_KEYBYTES];
static bool verified_keyed;

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

/* Copies the current keys out and their generation, re-reading the file
 * when it changed: looked at when `recheck`, else at most every
 * KEYS_RECHECK_S. */
static int load_keys(config_t *cfg, jwt_key_t *out, bool recheck, unsigned long *generation)
{
    double now = clock_mono();
    pthread_mutex_lock(&ring_lock);
    if (!recheck && !ring.stale && ring.count > 0 && ring.cfg == cfg && now - ring.checked < KEYS_RECHECK_S) {
        int count = ring.count;
        memcpy(out, ring.keys, sizeof ring.keys);
        if (generation)
            *generation = ring.generation;
        pthread_mutex_unlock(&ring_lock);
        return count;
    }
    pthread_mutex_unlock(&ring_lock);
    char path[4096];
    token_keys_path(cfg, path, sizeof path);      /* again at each look: a reload may move it */
    struct stat st;
    if (stat(path, &st) < 0)
        return 0;
    pthread_mutex_lock(&ring_lock);
    ring.checked = now;
    ring.cfg = cfg;
    if (ring.stale || strcmp(ring.path, path) || st.st_mtim.tv_sec != ring.mtime.tv_sec
        || st.st_mtim.tv_nsec != ring.mtime.tv_nsec || st.st_size != ring.size
        || st.st_ino != ring.inode) {
        ring.stale = false;
        ring.generation++;
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
    if (generation)
        *generation = ring.generation;
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
    pthread_mutex_lock(&ring_lock);
    ring.stale = true;          /* this process's next check reads the file */
    pthread_mutex_unlock(&ring_lock);
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
    int count = load_keys(cfg, keys, true, NULL);
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
    int count = load_keys(cfg, keys, true, NULL);
    if (count > 0)
        keys[1] = keys[0];
    fresh_key(&keys[0]);
    int rc = write_keys(cfg, keys, count > 0 ? 2 : 1);
    sodium_memzero(keys, sizeof keys);
    if (rc == 0)
        log_info("token", "JWT signing key rotated; the previous key stays accepted");
    return rc;
}

/* header.claims.signature: the two JSON texts in base64url, then the
 * HMAC-SHA256 of those two parts under `secret`. */
static char *signed_token(const char *header, const char *claims, const unsigned char *secret)
{
    size_t header_len = strlen(header), claims_len = strlen(claims);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    /* each ENCODED_LEN counts a NUL: the first two make room for the dots */
    size_t header_room = sodium_base64_ENCODED_LEN(header_len, B64URL);
    size_t claims_room = sodium_base64_ENCODED_LEN(claims_len, B64URL);
    size_t mac_room = sodium_base64_ENCODED_LEN(sizeof mac, B64URL);
    char *out = malloc(header_room + claims_room + mac_room);
    if (!out)
        return NULL;
    sodium_bin2base64(out, header_room, (const unsigned char *)header, header_len, B64URL);
    size_t used = strlen(out);
    out[used++] = '.';
    sodium_bin2base64(out + used, claims_room, (const unsigned char *)claims, claims_len, B64URL);
    used += strlen(out + used);
    crypto_auth_hmacsha256(mac, (const unsigned char *)out, used, secret);
    out[used++] = '.';
    sodium_bin2base64(out + used, mac_room, mac, sizeof mac, B64URL);
    sodium_memzero(mac, sizeof mac);
    return out;
}

char *token_issue(config_t *cfg, const char *subject, json_t *scopes, long ttl_s)
{
    jwt_key_t keys[MAX_KEYS];
    if (load_keys(cfg, keys, false, NULL) < 1) {
        log_error("token", "no JWT signing key: cannot issue a token");
        return NULL;
    }
    long now = (long)clock_wall();
    json_t *header = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "kid", keys[0].kid, "typ", "JWT");
    json_t *claims = json_pack("{s:s, s:s, s:I, s:I, s:o}", "iss", TOKEN_ISSUER, "sub", subject,
                               "iat", (json_int_t)now, "exp", (json_int_t)(now + ttl_s),
                               "scopes", scopes ? json_incref(scopes) : json_array());
    /* sorted keys, as libjwt wrote them: the same claims give the same token */
    char *header_text = header ? json_dumps(header, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    char *claims_text = claims ? json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    char *out = header_text && claims_text ? signed_token(header_text, claims_text, keys[0].secret) : NULL;
    if (!out)
        log_error("token", "cannot encode a JWT");
    free(header_text);
    free(claims_text);
    json_decref(header);
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

/* The bytes a JWT may hold: base64url's alphabet and the two dots. */
static const unsigned char b64url_or_dot[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* A base64url part of a token decoded and read as JSON, or NULL. */
static json_t *decode_part(const char *b64, size_t len)
{
    unsigned char bin[TOKEN_MAX_LEN];
    size_t bin_len;
    if (sodium_base642bin(bin, sizeof bin, b64, len, NULL, &bin_len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return NULL;
    return wirejson_load((const char *)bin, bin_len);
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

static bool has_scope(json_t *scopes, const char *scope)
{
    if (!scope)
        return true;
    size_t i;
    json_t *s;
    json_array_foreach(scopes, i, s)
        if (json_is_string(s) && strcmp(json_string_value(s), scope) == 0)
            return true;
    return false;
}

/* The answer for claims already known to be signed by a key of ours:
 * exp (an integer, else treated as none) and scope, checked now. */
static int answer(long exp, json_t *scopes, const char *sub, const char *scope, char *subject,
                  size_t subject_len, const char **reason)
{
    if (exp <= 0 || (double)exp <= clock_wall()) {
        *reason = "expired";
        return -1;
    }
    if (!has_scope(scopes, scope)) {
        *reason = "missing scope";
        return -1;
    }
    if (subject)
        snprintf(subject, subject_len, "%s", sub);
    return 0;
}

/* The token's keyed hash, and the slot it is remembered in.  The lock is held. */
static verified_t *slot_of(const char *jwt, size_t len, unsigned char *id)
{
    if (!verified_keyed) {
        randombytes_buf(verified_key, sizeof verified_key);
        verified_keyed = true;
    }
    crypto_shorthash_siphashx24(id, (const unsigned char *)jwt, len, verified_key);
    uint64_t v;
    memcpy(&v, id, sizeof v);
    return &verified[v & (VERIFIED - 1)];
}

/* The answer for a token checked before under the same keys: 1 and the
 * answer in *rc, or 0 when it is not remembered. */
static int recall(const char *jwt, size_t len, unsigned long generation, const char *scope,
                  char *subject, size_t subject_len, const char **reason, int *rc)
{
    unsigned char id[crypto_shorthash_siphashx24_BYTES];
    pthread_mutex_lock(&verified_lock);
    verified_t *slot = slot_of(jwt, len, id);
    bool hit = slot->used && slot->generation == generation && sodium_memcmp(slot->id, id, sizeof id) == 0;
    if (hit)
        *rc = answer(slot->exp, slot->scopes, slot->subject, scope, subject, subject_len, reason);
    pthread_mutex_unlock(&verified_lock);
    return hit;
}

static void remember(const char *jwt, size_t len, unsigned long generation, long exp, const char *sub,
                     json_t *scopes)
{
    if (strlen(sub) >= sizeof verified[0].subject)
        return;
    unsigned char id[crypto_shorthash_siphashx24_BYTES];
    pthread_mutex_lock(&verified_lock);
    verified_t *slot = slot_of(jwt, len, id);
    json_decref(slot->scopes);
    *slot = (verified_t){ .used = true, .generation = generation, .exp = exp,
                          .scopes = json_incref(scopes) };
    memcpy(slot->id, id, sizeof id);
    snprintf(slot->subject, sizeof slot->subject, "%s", sub);
    pthread_mutex_unlock(&verified_lock);
}

/* Checks the claims of a token whose signature matched one of our keys,
 * and remembers them when they are well formed. */
static int check_claims(const char *jwt, size_t len, const char *dot1, const char *dot2,
                        unsigned long generation, const char *scope, char *subject, size_t subject_len,
                        const char **reason)
{
    json_t *claims = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!json_is_object(claims)) {
        json_decref(claims);
        *reason = "malformed";
        return -1;
    }
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    json_t *exp_claim = json_object_get(claims, "exp");
    long exp = json_is_integer(exp_claim) ? (long)json_integer_value(exp_claim) : -1;
    json_t *scopes = json_object_get(claims, "scopes");
    int rc = -1;
    if (!iss || strcmp(iss, TOKEN_ISSUER) || !sub || !*sub) {
        *reason = "wrong issuer or subject";
    } else {
        remember(jwt, len, generation, exp, sub, scopes);
        rc = answer(exp, scopes, sub, scope, subject, subject_len, reason);
    }
    json_decref(claims);
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
    for (const unsigned char *p = (const unsigned char *)jwt; *p; p++)
        if (!b64url_or_dot[*p])
            return -1;
    jwt_key_t keys[MAX_KEYS];
    unsigned long generation;
    int count = load_keys(cfg, keys, false, &generation);
    int rc = -1;
    if (recall(jwt, len, generation, scope, subject, subject_len, r, &rc)) {
        sodium_memzero(keys, sizeof keys);
        return rc;
    }
    json_t *header = decode_part(jwt, (size_t)(dot1 - jwt));
    const char *alg = json_string_value(json_object_get(header, "alg"));
    bool hs256 = alg && strcmp(alg, "HS256") == 0;
    json_decref(header);
    if (!hs256) {
        sodium_memzero(keys, sizeof keys);
        *r = "algorithm refused";
        return -1;
    }
    int which = match_key(jwt, (size_t)(dot2 - jwt), dot2 + 1, keys, count);
    if (which < 0) {            /* perhaps a key rotated in since the file was last looked at */
        count = load_keys(cfg, keys, true, &generation);
        which = match_key(jwt, (size_t)(dot2 - jwt), dot2 + 1, keys, count);
    }
    sodium_memzero(keys, sizeof keys);
    if (which < 0) {
        *r = "bad signature";
        return -1;
    }
    return check_claims(jwt, len, dot1, dot2, generation, scope, subject, subject_len, r);
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
