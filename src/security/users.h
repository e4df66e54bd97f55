/*  users: the security database (security.db) and its users table.  The
 *  schema lives here because keelctl opens the same file to add an
 *  administrator: it writes directly, with SQLite's locking, so `keelctl
 *  user add` works whether SecurityGateway is running or not (the service
 *  reads users from the file at every login, never from a cache). */
#ifndef KEEL_SECURITY_USERS_H
#define KEEL_SECURITY_USERS_H
#include <stdbool.h>
#include <stddef.h>

#include "store.h"

/* Opens (creating and migrating) security.db; durable commits. */
store_t *users_open(const char *path, char *err, size_t errlen);
/* 0, 1 when the user exists already, -1 on error. */
int users_add(store_t *db, const char *user_id, const char *hash, bool admin);
/* 1 found (hash copied), 0 unknown, -1 error. */
int users_get(store_t *db, const char *user_id, char *hash, size_t hash_len, bool *admin);
/* The same password, hashed anew (a legacy hash upgraded): sessions stay. */
int users_set_hash(store_t *db, const char *user_id, const char *hash);
int users_touch_login(store_t *db, const char *user_id);
/* Adds the user, or replaces an existing user's password and role: then
 * every session of the user ends (deleted from the file, and dropped from
 * a running SecurityGateway's index at its next validation). */
int users_upsert(store_t *db, const char *user_id, const char *hash, bool admin);
long users_count(store_t *db);
#endif
