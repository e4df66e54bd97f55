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
    /* When the password was last replaced (keelctl user add): SecurityGateway
     * drops the user's older sessions from its index (sessions.h). */
    "ALTER TABLE users ADD COLUMN password_changed_at REAL NOT NULL DEFAULT 0;",
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

/* The new password, its time, and the end of every session of the user. */
static int replace_password(store_t *db, const char *user_id, const char *hash, bool admin)
{
    sqlite3_stmt *st = store_prepare(db, "UPDATE users SET password_hash=?, is_admin=?,"
                                         " password_changed_at=? WHERE user_id=?");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, admin);
    sqlite3_bind_double(st, 3, clock_wall());
    sqlite3_bind_text(st, 4, user_id, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE)
        return -1;
    st = store_prepare(db, "DELETE FROM sessions WHERE user_id=?");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

int users_upsert(store_t *db, const char *user_id, const char *hash, bool admin)
{
    if (store_begin(db) < 0)
        return -1;
    int rc = users_add(db, user_id, hash, admin);
    if (rc == 1)
        rc = replace_password(db, user_id, hash, admin);
    if (rc < 0 || store_commit(db) < 0) {
        log_error("security", "cannot save the user: %s", store_errmsg(db));
        store_rollback(db);
        return -1;
    }
    return 0;
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

long users_count(store_t *db)
{
    sqlite3_stmt *st = store_prepare(db, "SELECT COUNT(*) FROM users");
    if (!st || sqlite3_step(st) != SQLITE_ROW)
        return -1;
    long n = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return n;
}
