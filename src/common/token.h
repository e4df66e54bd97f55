/*  token: bearer tokens any Keel service can check.  Two kinds exist:
 *  session tokens (64 lowercase hex characters, issued by SecurityGateway's
 *  login and only known to its database, so they are checked by asking it
 *  over ZMQ) and service tokens (HS256 JWTs with iss, sub, exp and scopes,
 *  checked locally against the shared key file, so a service never needs
 *  SecurityGateway to be up to accept an agent's JWT).
 *
 *  The key file (<data_dir>/security/jwt.keys, or security.jwt_keys_file)
 *  holds one "kid:hex-secret" per line, signing key first.  Rotation puts a
 *  new key in front and keeps the previous one, so tokens signed with either
 *  verify while agents move over; the file is re-read when it changes.  Only
 *  HS256 is ever accepted (alg "none" and every other algorithm are refused
 *  before any key is tried) and signatures are compared in constant time. */
#ifndef KEEL_TOKEN_H
#define KEEL_TOKEN_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define TOKEN_ISSUER "keel"
#define TOKEN_MAX_LEN 8192

/* The key file's path for this configuration. */
char *token_keys_path(config_t *cfg, char *buf, size_t len);
/* Creates the key file with one random key when it is missing (mode 0600). */
int token_keys_ensure(config_t *cfg);
/* Puts a fresh signing key in front and keeps only the previous one. */
int token_keys_rotate(config_t *cfg);
/* A JWT for `subject` with `scopes` (array of strings, borrowed) valid for
 * ttl_s seconds; the caller frees it.  NULL on error (logged). */
char *token_issue(config_t *cfg, const char *subject, json_t *scopes, long ttl_s);
/* 0 when `jwt` is a valid, unexpired Keel JWT carrying `scope` (NULL: any);
 * the subject is copied out.  -1 otherwise, with a short reason (no secret). */
int token_verify_jwt(config_t *cfg, const char *jwt, const char *scope,
                     char *subject, size_t subject_len, const char **reason);
/* True for the shape of a session token: 64 lowercase hex characters. */
bool token_is_session(const char *text);
/* True when `bearer` may change state: a JWT with scope admin, or the
 * session token of an administrator (asked of SecurityGateway). */
bool token_verify_admin(config_t *cfg, const char *bearer);
/* token_verify_admin as a privilege_admin_fn: ctx is the service's config_t. */
bool token_check_admin(void *ctx, const char *token);
/* An administrator's JWT for a Keel service's own calls that need one (a
 * restart its recovery asks of CoreOrchestrator), valid ttl_s; creates the
 * key file when missing.  The caller frees it; NULL on error (logged). */
char *token_issue_service(config_t *cfg, const char *service, long ttl_s);
#endif
