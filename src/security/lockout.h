/*  lockout: failed-login counters per user and per source, in security.db
 *  so a restart forgets nothing.  The Nth failure within the window locks
 *  for base_lock_s, doubling with each lock of the same key (up to
 *  max_lock_s) until a successful login; attempts while locked get the
 *  locked answer, are not checked against the password, and do not extend
 *  the lock.  An attempt is counted when it starts, under the database
 *  mutex, and uncounted if it succeeds: parallel guesses share one atomic
 *  counter and cannot slip past the limit while their hashes run.
 *  Callers hold the gateway's database mutex. */
#ifndef KEEL_SECURITY_LOCKOUT_H
#define KEEL_SECURITY_LOCKOUT_H
#include <stdbool.h>

#include "store.h"

typedef struct {
    int failures;               /* per user */
    int source_failures;        /* per source */
    double window_s, base_lock_s, max_lock_s;
} lockout_params_t;

/* Starts an attempt on key (kind "user" or "source").  Returns true when
 * it may go on (and counts it), false when locked, with the seconds left. */
bool lockout_begin(store_t *db, const lockout_params_t *p, const char *kind, const char *key,
                   double now, double *retry_after);
/* A failed attempt; returns true when this failure set a lock. */
bool lockout_fail(store_t *db, const lockout_params_t *p, const char *kind, const char *key,
                  double now, double *lock_s);
/* A user's successful login: counters and lock level cleared. */
void lockout_success(store_t *db, const char *user);
/* Uncounts an attempt begun with lockout_begin (a source's successful
 * login, or an attempt refused by the other key's lock). */
void lockout_undo(store_t *db, const char *kind, const char *key);
/* Drops rows with nothing left to remember; returns how many. */
int lockout_sweep(store_t *db, const lockout_params_t *p, double now);
#endif
