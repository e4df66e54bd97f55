/*  users: see users.h.  Only a hash of each session token is stored, so a
 *  copy of the database file does not hand out live sessions. */
#include "users.h"
#include "clock.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

static const char *const migrations[] = {
    "CREATE TABLE users(user_id TEXT PRIMARY KEY, password_hash TEXT NOT NULL,"
    "  is_admin INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, last_login TEXT);"
    "CREATE TABLE sessions(token_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL,"
    "  created_at REAL NOT NULL, expires_at REAL NOT NULL);"
    "CREATE INDEX sessions_user ON sessions(user_id, created_at);"
    "CREATE INDEX sessions_expiry ON sessions(expires_at);"
    "CREATE TABLE lockouts(kind TEXT NOT NULL, key TEXT NOT NULL,"
    "  failures INTEGER NOT NULL DEFAULT 0, window_start REAL NOT NULL DEFAULT 0,"
    "  locked_until REAL NOT NULL DEFAULT 0, level INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY(kind, key));",
    NULL,
};

store_t *users_open(const char *path, char *err, size_t errlen)
{
    store_t *db = store_new(path, migrations, err, errlen);
    if (db)
        store_set_durable(db, true);
    return db;
}

int users_add(store_t *db, const char *user_id, const char *hash, bool admin)
{
    char now[40];
    clock_iso_local(clock_wall(), now, sizeof now);
    sqlite3_stmt *st = store_prepare(db, "INSERT OR IGNORE INTO users(user_id, password_hash,"
                                         " is_admin, created_at) VALUES(?,?,?,?)");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, admin);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) {
        log_error("security", "cannot add a user: %s", store_errmsg(db));
        return -1;
    }
    return sqlite3_changes(store_db(db)) == 1 ? 0 : 1;
}

int users_get(store_t *db, const char *user_id, char *hash, size_t hash_len, bool *admin)
{
    sqlite3_stmt *st = store_prepare(db, "SELECT password_hash, is_admin FROM users WHERE user_id=?");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return -1;
    snprintf(hash, hash_len, "%s", (const char *)sqlite3_column_text(st, 0));
    if (admin)
        *admin = sqlite3_column_int(st, 1) != 0;
    sqlite3_reset(st);
    return 1;
}

int users_set_hash(store_t *db, const char *user_id, const char *hash)
{
    sqlite3_stmt *st = store_prepare(db, "UPDATE users SET password_hash=? WHERE user_id=?");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, user_id, -1, SQLITE_TRANSIENT);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

int users_touch_login(store_t *db, const char *user_id)
{
    char now[40];
    clock_iso_local(clock_wall(), now, sizeof now);
    sqlite3_stmt *st = store_prepare(db, "UPDATE users SET last_login=? WHERE user_id=?");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, user_id, -1, SQLITE_TRANSIENT);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

int users_delete(store_t *db, const char *user_id)
{
    sqlite3_stmt *st = store_prepare(db, "DELETE FROM users WHERE user_id=?");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE)
        return -1;
    return sqlite3_changes(store_db(db)) > 0 ? 1 : 0;
}

static long count_of(store_t *db, const char *sql)
{
    sqlite3_stmt *st = store_prepare(db, sql);
    if (!st || sqlite3_step(st) != SQLITE_ROW)
        return -1;
    long n = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return n;
}

long users_count(store_t *db)
{
    return count_of(db, "SELECT COUNT(*) FROM users");
}

long users_count_admins(store_t *db)
{
    return count_of(db, "SELECT COUNT(*) FROM users WHERE is_admin != 0");
}

json_t *users_list(store_t *db)
{
    sqlite3_stmt *st = store_prepare(db, "SELECT user_id, is_admin, created_at, last_login FROM users"
                                         " ORDER BY user_id");
    if (!st)
        return NULL;
    json_t *list = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *last = (const char *)sqlite3_column_text(st, 3);
        json_array_append_new(list, json_pack("{s:s, s:b, s:s, s:o}",
                                              "user_id", (const char *)sqlite3_column_text(st, 0),
                                              "admin", sqlite3_column_int(st, 1) != 0,
                                              "created_at", (const char *)sqlite3_column_text(st, 2),
                                              "last_login", last ? json_string(last) : json_null()));
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        json_decref(list);
        return NULL;
    }
    return list;
}
