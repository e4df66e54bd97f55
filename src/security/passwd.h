/*  passwd: password hashes.  New hashes are Argon2id strings (libsodium's
 *  crypto_pwhash_str, which carries its own salt and parameters); the
 *  original agent's unsalted SHA-256 hex is still verified, once, so a
 *  migrated user can log in and be rehashed on the spot.  Every comparison
 *  is constant-time. */
#ifndef KEEL_SECURITY_PASSWD_H
#define KEEL_SECURITY_PASSWD_H
#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>

#define PASSWD_MAX crypto_pwhash_STRBYTES

typedef struct {
    unsigned long long opslimit;
    size_t memlimit;                /* bytes */
} passwd_params_t;

/* Argon2id of `password` into out (PASSWD_MAX bytes); 0 or -1 (out of memory). */
int passwd_hash(const passwd_params_t *params, const char *password, char *out);
/* An Argon2id string with these parameters, a random salt and a random
 * hash, into out (PASSWD_MAX bytes): no password matches it, and checking
 * one against it costs what checking against a real one does (the
 * parameters are read from the string), while making it costs nothing.
 * 0, or -1 for parameters too large to write. */
int passwd_decoy(const passwd_params_t *params, char *out);
/* 0 when `password` matches `stored` (Argon2id or legacy SHA-256 hex), -1
 * otherwise; *rehash is set when the stored form should be replaced. */
int passwd_verify(const passwd_params_t *params, const char *stored, const char *password,
                  bool *rehash);
/* True for the original agent's 64-hex SHA-256 form. */
bool passwd_is_legacy(const char *stored);
#endif
