/*  sessions: login sessions.  A token is 32 CSPRNG bytes as 64 lowercase
 *  hex; only its SHA-256 is stored (a token carries 256 bits of entropy, so
 *  a fast hash is enough).  The expiry is absolute, as in the original:
 *  validating never extends it.
 *
 *  security.db is the record (durable commits, so an acknowledged login
 *  survives kill -9); an in-memory index of the live sessions, loaded at
 *  start and kept in step by every change, answers validations.  Only this
 *  service writes sessions, so the index cannot go stale, and a validation
 *  never waits for the database mutex that a login holds through its fsync;
 *  the one outside writer, `keelctl user add` replacing a password (which
 *  ends the user's sessions: users.h), is noticed before each validation.
 *  An expired session leaves the index at once and the file at the next
 *  sweep.  Functions that write take the gateway's database mutex held by
 *  the caller; sessions_check needs no outside lock. */
#ifndef KEEL_SECURITY_SESSIONS_H
#define KEEL_SECURITY_SESSIONS_H
#include <stddef.h>

#include "store.h"

typedef enum { SESSION_UNKNOWN = 0, SESSION_LIVE = 1, SESSION_EXPIRED = 2 } session_state_t;

typedef struct sessions_t sessions_t;

/* Loads the sessions still live at `now` from db (borrowed). */
sessions_t *sessions_new(store_t *db, double now);
void sessions_destroy(sessions_t **self_p);
/* Makes a session; the oldest sessions of the user go beyond max_per_user.
 * token gets 65 bytes.  0 or -1. */
int sessions_create(sessions_t *self, const char *user_id, double now, double ttl_s, int max_per_user,
                    char *token, double *expires_at);
/* Looks a token up; an expired one is forgotten.  user_id (may be NULL)
 * gets the owner of a live session. */
session_state_t sessions_check(sessions_t *self, const char *token, double now,
                               char *user_id, size_t user_len);
/* 1 deleted, 0 unknown, -1 error. */
int sessions_delete(sessions_t *self, const char *token);
/* Deletes expired sessions; returns how many rows went, or -1. */
int sessions_sweep(sessions_t *self, double now);
long sessions_active(sessions_t *self, double now);
#endif
