/*  gateway: the state SecurityGateway's modules share.  One SQLite file
 *  (security.db) holds users, sessions and lockout counters, behind one
 *  mutex because a connection serves one thread at a time; the slow part
 *  of a login (Argon2id) always runs outside that mutex, and validations
 *  read the sessions' in-memory index, so they never wait for a password
 *  hash or a commit.  Trust scores keep
 *  their own file (agent_trust_scores.db, the original's name). */
#ifndef KEEL_SECURITY_GATEWAY_H
#define KEEL_SECURITY_GATEWAY_H
#include <pthread.h>
#include <stdbool.h>

#include "actor.h"
#include "lockout.h"
#include "monitor.h"
#include "passwd.h"
#include "service.h"
#include "sessions.h"
#include "store.h"
#include "trust.h"

typedef struct {
    service_t *svc;
    store_t *db;
    pthread_mutex_t db_lock;
    sessions_t *sessions;           /* writes under db_lock; validation needs no lock */
    passwd_params_t pw;
    char decoy_hash[PASSWD_MAX];    /* verified for unknown users: same cost, same answer */
    lockout_params_t lockout;
    double session_ttl_s;
    int max_sessions;
    bool allow_registration;
    size_t max_user_len, max_password_len;
    trust_t *trust;
    monitor_t *monitor;
    actor_t *sweeper;               /* a ticker every sweep_interval_s */
    double sweep_interval_s;
} gateway_t;

/* auth.c: the AuthenticationAgent actions on `wire`. */
void auth_attach(gateway_t *gw, wire_server_t *wire);
/* True when `token` is an administrator's: a live session of an admin
 * user, or a JWT with scope admin. */
bool auth_is_admin(gateway_t *gw, const char *token);
/* accounts.c: user management for administrators (add_user, set_password,
 * delete_user, list_users, and add_first_admin) on `wire`. */
void accounts_attach(gateway_t *gw, wire_server_t *wire);
#endif
