/*  passwd: see passwd.h. */
#include "passwd.h"

#include <string.h>

bool passwd_is_legacy(const char *stored)
{
    if (strlen(stored) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!strchr("0123456789abcdef", stored[i]))
            return false;
    return true;
}

int passwd_hash(const passwd_params_t *params, const char *password, char *out)
{
    return crypto_pwhash_str(out, password, strlen(password), params->opslimit, params->memlimit);
}

static int verify_legacy(const char *stored, const char *password)
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    char hex[crypto_hash_sha256_BYTES * 2 + 1];
    crypto_hash_sha256(digest, (const unsigned char *)password, strlen(password));
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    int rc = sodium_memcmp(hex, stored, 64) == 0 ? 0 : -1;
    sodium_memzero(hex, sizeof hex);
    sodium_memzero(digest, sizeof digest);
    return rc;
}

int passwd_verify(const passwd_params_t *params, const char *stored, const char *password,
                  bool *rehash)
{
    *rehash = false;
    if (passwd_is_legacy(stored)) {
        *rehash = true;
        return verify_legacy(stored, password);
    }
    if (crypto_pwhash_str_verify(stored, password, strlen(password)) != 0)
        return -1;
    *rehash = crypto_pwhash_str_needs_rehash(stored, params->opslimit, params->memlimit) != 0;
    return 0;
}
