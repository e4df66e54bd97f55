/*  fuzz_jwt: bearer-token verification as every service does it.  An
 *  input whose first byte is even is verified as it is, which covers the
 *  shape checks, the base64url header and the algorithm refusal.  A random
 *  string can never carry a valid HMAC, so an odd first byte means the rest
 *  is "header-JSON 0x1F claims-JSON", which is encoded and signed with the
 *  real key here; the claims checks (iss, sub, exp, scopes) behind the
 *  signature are then fuzzed too.  The key file lives in a directory made
 *  once per process. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "config.h"
#include "token.h"

#define KEY_BYTES 32

static config_t *cfg;
static unsigned char secret[KEY_BYTES];

static int setup(void)
{
    char dir[4096], err[256], path[4096];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/keel-fuzz-jwt-XXXXXX", tmp ? tmp : "/tmp");
    if (sodium_init() < 0 || !mkdtemp(dir))
        return -1;
    cfg = config_new();
    if (config_set(cfg, "data_dir", dir, err, sizeof err) != 0 || token_keys_ensure(cfg) != 0)
        return -1;
    FILE *f = fopen(token_keys_path(cfg, path, sizeof path), "r");
    char line[256] = "";
    if (!f)
        return -1;
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    char *colon = ok ? strchr(line, ':') : NULL;
    size_t bin_len;
    if (!colon || sodium_hex2bin(secret, KEY_BYTES, colon + 1, KEY_BYTES * 2, NULL, &bin_len, NULL) != 0)
        return -1;
    return 0;
}

static void b64(char *out, size_t outlen, const uint8_t *data, size_t len)
{
    sodium_bin2base64(out, outlen, data, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* "b64(header).b64(claims).b64(hmac)" of the two parts; caller frees. */
static char *signed_token(const uint8_t *data, size_t size)
{
    const uint8_t *sep = memchr(data, 0x1F, size);
    size_t hlen = sep ? (size_t)(sep - data) : size;
    size_t clen = sep ? size - hlen - 1 : 0;
    size_t cap = sodium_base64_ENCODED_LEN(size, sodium_base64_VARIANT_URLSAFE_NO_PADDING) * 2 + 64;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    b64(out, cap, data, hlen);
    strcat(out, ".");
    size_t n = strlen(out);
    b64(out + n, cap - n, sep ? sep + 1 : data, clen);
    n = strlen(out);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, secret, KEY_BYTES);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)out, n);
    crypto_auth_hmacsha256_final(&st, mac);
    out[n++] = '.';
    b64(out + n, cap - n, mac, sizeof mac);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg && setup() != 0)
        abort();
    if (size == 0)
        return 0;
    char *text;
    if (data[0] & 1) {
        text = signed_token(data + 1, size - 1);
    } else {
        text = malloc(size);
        if (text) {
            memcpy(text, data + 1, size - 1);
            text[size - 1] = '\0';
        }
    }
    if (!text)
        return 0;
    char subject[128];
    const char *reason;
    token_verify_jwt(cfg, text, NULL, subject, sizeof subject, &reason);
    token_verify_jwt(cfg, text, "admin", subject, sizeof subject, &reason);
    token_is_session(text);
    free(text);
    return 0;
}
