/*  passwd: see passwd.h. */
#include "passwd.h"

#include <stdio.h>
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

/* libsodium's own form for Argon2id: version, memory in KiB, passes,
 * lanes (always 1 in libsodium), then salt and hash in unpadded base64. */
int passwd_decoy(const passwd_params_t *params, char *out)
{
    unsigned char salt[crypto_pwhash_SALTBYTES], hash[32];     /* crypto_pwhash_str's sizes */
    char salt64[sizeof salt * 2], hash64[sizeof hash * 2];
    randombytes_buf(salt, sizeof salt);
    randombytes_buf(hash, sizeof hash);
    sodium_bin2base64(salt64, sizeof salt64, salt, sizeof salt,
                      sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    sodium_bin2base64(hash64, sizeof hash64, hash, sizeof hash,
                      sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    int n = snprintf(out, PASSWD_MAX, "$argon2id$v=19$m=%zu,t=%llu,p=1$%s$%s",
                     params->memlimit / 1024, params->opslimit, salt64, hash64);
    return n > 0 && (size_t)n < PASSWD_MAX ? 0 : -1;
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
