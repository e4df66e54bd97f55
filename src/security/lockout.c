/*  lockout: see lockout.h. */
#include "lockout.h"
#include "log.h"

#include <math.h>
#include <string.h>

typedef struct {
    long failures, level;
    double window_start, locked_until;
} row_t;

static void load(store_t *db, const char *kind, const char *key, row_t *r)
{
    memset(r, 0, sizeof *r);
    sqlite3_stmt *st = store_prepare(db, "SELECT failures, window_start, locked_until, level"
                                         " FROM lockouts WHERE kind=? AND key=?");
    if (!st)
        return;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
        r->failures = sqlite3_column_int64(st, 0);
        r->window_start = sqlite3_column_double(st, 1);
        r->locked_until = sqlite3_column_double(st, 2);
        r->level = sqlite3_column_int64(st, 3);
    }
    sqlite3_reset(st);
}

static void save(store_t *db, const char *kind, const char *key, const row_t *r)
{
    sqlite3_stmt *st = store_prepare(db, "INSERT OR REPLACE INTO lockouts(kind, key, failures,"
                                         " window_start, locked_until, level) VALUES(?,?,?,?,?,?)");
    if (!st)
        return;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, r->failures);
    sqlite3_bind_double(st, 4, r->window_start);
    sqlite3_bind_double(st, 5, r->locked_until);
    sqlite3_bind_int64(st, 6, r->level);
    if (sqlite3_step(st) != SQLITE_DONE)
        log_error("security", "cannot save a lockout counter: %s", store_errmsg(db));
}

static int limit_of(const lockout_params_t *p, const char *kind)
{
    return strcmp(kind, "source") == 0 ? p->source_failures : p->failures;
}

bool lockout_begin(store_t *db, const lockout_params_t *p, const char *kind, const char *key,
                   double now, double *retry_after)
{
    row_t r;
    load(db, kind, key, &r);
    if (r.locked_until > now) {
        *retry_after = r.locked_until - now;
        return false;
    }
    if (r.failures > 0 && now - r.window_start > p->window_s)
        r.failures = 0;
    if (r.failures >= limit_of(p, kind)) {     /* the limit's worth of guesses are in flight */
        *retry_after = p->base_lock_s;
        return false;
    }
    if (r.failures == 0)
        r.window_start = now;
    r.failures++;
    save(db, kind, key, &r);
    return true;
}

bool lockout_fail(store_t *db, const lockout_params_t *p, const char *kind, const char *key,
                  double now, double *lock_s)
{
    row_t r;
    load(db, kind, key, &r);
    if (r.locked_until > now || r.failures < limit_of(p, kind))
        return false;
    double duration = p->base_lock_s * pow(2.0, (double)(r.level < 30 ? r.level : 30));
    if (duration > p->max_lock_s)
        duration = p->max_lock_s;
    r.locked_until = now + duration;
    r.level++;
    r.failures = 0;
    save(db, kind, key, &r);
    *lock_s = duration;
    return true;
}

void lockout_success(store_t *db, const char *key)
{
    row_t r;
    load(db, "user", key, &r);
    r.failures = 0;
    r.level = 0;
    save(db, "user", key, &r);
}

void lockout_undo(store_t *db, const char *kind, const char *key)
{
    row_t r;
    load(db, kind, key, &r);
    if (r.failures > 0) {
        r.failures--;
        save(db, kind, key, &r);
    }
}

int lockout_sweep(store_t *db, const lockout_params_t *p, double now)
{
    sqlite3_stmt *st = store_prepare(db, "DELETE FROM lockouts WHERE locked_until + ?1 < ?2"
                                         " AND window_start + ?3 < ?2");
    if (!st)
        return -1;
    sqlite3_bind_double(st, 1, p->max_lock_s);
    sqlite3_bind_double(st, 2, now);
    sqlite3_bind_double(st, 3, p->window_s);
    if (sqlite3_step(st) != SQLITE_DONE)
        return -1;
    return sqlite3_changes(store_db(db));
}
