/*  users: the security database (security.db) and its users table.  The
 *  schema lives here because two programs open the file: SecurityGateway,
 *  and keelctl when it manages users offline (`keelctl --data-dir DIR
 *  user ...`), which it does only while no service holds the directory's
 *  lock.  While the service runs, users are managed through it
 *  (accounts.c), so that it can end the sessions a change invalidates. */
#ifndef KEEL_SECURITY_USERS_H
#define KEEL_SECURITY_USERS_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "store.h"

/* Opens (creating and migrating) security.db; durable commits. */
store_t *users_open(const char *path, char *err, size_t errlen);
/* 0, 1 when the user exists already, -1 on error. */
int users_add(store_t *db, const char *user_id, const char *hash, bool admin);
/* 1 found (hash copied), 0 unknown, -1 error. */
int users_get(store_t *db, const char *user_id, char *hash, size_t hash_len, bool *admin);
int users_set_hash(store_t *db, const char *user_id, const char *hash);
int users_touch_login(store_t *db, const char *user_id);
/* 1 deleted, 0 unknown, -1 error. */
int users_delete(store_t *db, const char *user_id);
long users_count(store_t *db);
long users_count_admins(store_t *db);
/* [{user_id, admin, created_at, last_login}] by name (a new reference), or NULL. */
json_t *users_list(store_t *db);
#endif
