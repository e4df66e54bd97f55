/*  store: see store.h.
 *
 *  The connection is opened NOMUTEX: the owner already serialises its use,
 *  and SQLite's own mutex would only be a second lock taken on every call.
 *  For the same reason SQLite's memory statistics are switched off before
 *  the first connection: they count every allocation of every connection
 *  under one process-wide mutex, for sqlite3_memory_used(), which Keel
 *  never reads (the ErrorBus writer paid about 5% of an event for them).
 *  The page size and auto_vacuum must be chosen before the first table
 *  exists, so they are set before anything else touches the file; on an
 *  existing database both are harmless no-ops (it keeps its own).  WAL with synchronous=NORMAL survives a process crash
 *  (the committed frames are in the OS page cache); FULL is for data a
 *  client was told is safe, where a power cut must not lose it either.
 *
 *  Migration n (1-based, migrations[n-1]) runs in its own IMMEDIATE
 *  transaction together with `PRAGMA user_version = n`, so the schema and
 *  its version move as one: a failure rolls both back and the next start
 *  retries from the last version that committed.  Migration text must not
 *  contain its own BEGIN/COMMIT.
 *
 *  Prepared statements are cached by SQL text in a small chained hash
 *  (services use a few dozen statements, prepared on hot paths).  A cached
 *  statement is handed out again on the next store_prepare of the same
 *  text, so a caller finishes with one before preparing that text again.
 *  All of them are finalized at destroy. */
#include "store.h"
#include "log.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_BUCKETS 64

typedef struct cached_t {
    char *sql;
    sqlite3_stmt *stmt;
    struct cached_t *next;
} cached_t;

struct store_t {
    sqlite3 *db;
    char *path;
    int version;
    cached_t *cache[CACHE_BUCKETS];
};

static int exec_sql(sqlite3 *db, const char *sql, char *reason, size_t len)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    if (reason)
        snprintf(reason, len, "%s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return -1;
}

static int query_int(sqlite3 *db, const char *sql, int *out)
{
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* A file system without shared memory leaves the journal mode as it was,
 * silently; say so, since readers will then block the writer. */
static void warn_unless_wal(store_t *self)
{
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(self->db, "PRAGMA journal_mode", -1, &stmt, NULL) != SQLITE_OK)
        return;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(stmt, 0);
        if (mode && strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)
            log_warn("store", "%s: journal mode is %s, not wal", self->path, mode);
    }
    sqlite3_finalize(stmt);
}

static int configure(store_t *self, int page_size, char *reason, size_t len)
{
    char pragmas[256], size[48] = "";
    if (page_size)
        snprintf(size, sizeof size, "PRAGMA page_size=%d;", page_size);
    snprintf(pragmas, sizeof pragmas, "%s"
             "PRAGMA auto_vacuum=INCREMENTAL;"
             "PRAGMA journal_mode=WAL;"
             "PRAGMA synchronous=NORMAL;"
             "PRAGMA foreign_keys=ON;", size);
    char msg[256] = "cannot set busy timeout";
    if (sqlite3_busy_timeout(self->db, 5000) != SQLITE_OK
        || exec_sql(self->db, pragmas, msg, sizeof msg) != 0) {
        snprintf(reason, len, "cannot configure %s: %s", self->path, msg);
        return -1;
    }
    warn_unless_wal(self);
    return 0;
}

static int migrate_one(store_t *self, const char *sql, int target, char *reason, size_t len)
{
    char msg[512];
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d", target);
    if (exec_sql(self->db, "BEGIN IMMEDIATE", msg, sizeof msg) == 0) {
        if (exec_sql(self->db, sql, msg, sizeof msg) == 0
            && exec_sql(self->db, pragma, msg, sizeof msg) == 0
            && exec_sql(self->db, "COMMIT", msg, sizeof msg) == 0)
            return 0;
        exec_sql(self->db, "ROLLBACK", NULL, 0);
    }
    snprintf(reason, len, "migration %d failed: %.400s", target, msg);
    return -1;
}

static int migrate(store_t *self, const char *const *migrations, char *reason, size_t len)
{
    if (query_int(self->db, "PRAGMA user_version", &self->version) != 0) {
        snprintf(reason, len, "cannot read version of %s: %s", self->path,
                 sqlite3_errmsg(self->db));
        return -1;
    }
    int available = 0;
    while (migrations && migrations[available])
        available++;
    if (self->version > available) {
        snprintf(reason, len, "database version %d is newer than this build (%d)",
                 self->version, available);
        return -1;
    }
    for (int v = self->version; v < available; v++) {
        if (migrate_one(self, migrations[v], v + 1, reason, len) != 0)
            return -1;
        self->version = v + 1;
        log_info("store", "%s: migrated to version %d", self->path, self->version);
    }
    return 0;
}

/* No memory statistics: a process-wide mutex on every allocation, for
 * figures nothing reads.  No bulk page-cache allocation per connection:
 * SQLite's default takes 20 pages up front for each, 330 kB for ErrorBus's
 * 16 KiB pages, even for a connection that reads a page or two (the
 * checkpointer, the readers); keeld all held 0.5 MB more for it idle.
 * Pages are then allocated as they are read, as they are anyway once the
 * 20 are used. */
static void configure_library(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
}

/* Internal steps write their reason into `reason` (always a real buffer);
 * store_new logs it once and copies it to the caller's err. */
static store_t *open_db(const char *path, const char *const *migrations, int page_size,
                        char *reason, size_t len)
{
    store_t *self = calloc(1, sizeof *self);
    if (!self || !(self->path = strdup(path))) {
        free(self);
        snprintf(reason, len, "out of memory");
        return NULL;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &self->db, flags, NULL) != SQLITE_OK)
        snprintf(reason, len, "cannot open %s: %s", path,
                 self->db ? sqlite3_errmsg(self->db) : "out of memory");
    else if (configure(self, page_size, reason, len) == 0
             && migrate(self, migrations, reason, len) == 0)
        return self;
    store_destroy(&self);
    return NULL;
}

store_t *store_new(const char *path, const char *const *migrations,
                   char *err, size_t errlen)
{
    return store_new_paged(path, migrations, 0, err, errlen);
}

store_t *store_new_paged(const char *path, const char *const *migrations, int page_size,
                         char *err, size_t errlen)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, configure_library);
    char reason[512] = "no database path";
    store_t *self = path ? open_db(path, migrations, page_size, reason, sizeof reason) : NULL;
    if (self)
        return self;
    log_error("store", "%s", reason);
    if (err && errlen)
        snprintf(err, errlen, "%s", reason);
    return NULL;
}

void store_destroy(store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    store_t *self = *self_p;
    for (int b = 0; b < CACHE_BUCKETS; b++) {
        cached_t *c = self->cache[b];
        while (c) {
            cached_t *next = c->next;
            sqlite3_finalize(c->stmt);
            free(c->sql);
            free(c);
            c = next;
        }
    }
    if (self->db && sqlite3_close(self->db) != SQLITE_OK)
        log_error("store", "%s: close failed: %s", self->path, sqlite3_errmsg(self->db));
    free(self->path);
    free(self);
    *self_p = NULL;
}

sqlite3 *store_db(store_t *self)
{
    return self->db;
}

int store_version(store_t *self)
{
    return self->version;
}

void store_set_durable(store_t *self, bool durable)
{
    store_exec(self, durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
}

int store_exec(store_t *self, const char *sql)
{
    char msg[512];
    if (exec_sql(self->db, sql, msg, sizeof msg) == 0)
        return 0;
    log_error("store", "%s: \"%.120s\" failed: %s", self->path, sql, msg);
    return -1;
}

static unsigned bucket_of(const char *sql)
{
    uint32_t h = 2166136261u;     /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % CACHE_BUCKETS;
}

static sqlite3_stmt *cache_add(store_t *self, unsigned bucket, const char *sql)
{
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v3(self->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                           &stmt, NULL) != SQLITE_OK) {
        log_error("store", "%s: prepare \"%.120s\" failed: %s", self->path, sql,
                  sqlite3_errmsg(self->db));
        return NULL;
    }
    cached_t *c = malloc(sizeof *c);
    if (!c || !(c->sql = strdup(sql))) {
        free(c);
        sqlite3_finalize(stmt);
        log_error("store", "out of memory caching a statement");
        return NULL;
    }
    c->stmt = stmt;
    c->next = self->cache[bucket];
    self->cache[bucket] = c;
    return stmt;
}

sqlite3_stmt *store_prepare(store_t *self, const char *sql)
{
    unsigned bucket = bucket_of(sql);
    for (cached_t *c = self->cache[bucket]; c; c = c->next) {
        if (strcmp(c->sql, sql) == 0) {
            sqlite3_reset(c->stmt);
            sqlite3_clear_bindings(c->stmt);
            return c->stmt;
        }
    }
    return cache_add(self, bucket, sql);
}

int store_begin(store_t *self)
{
    return store_exec(self, "BEGIN IMMEDIATE");
}

int store_commit(store_t *self)
{
    return store_exec(self, "COMMIT");
}

int store_rollback(store_t *self)
{
    return store_exec(self, "ROLLBACK");
}

int store_maintain(store_t *self)
{
    int rc = sqlite3_wal_checkpoint_v2(self->db, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                       NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        log_error("store", "%s: checkpoint failed: %s", self->path,
                  sqlite3_errmsg(self->db));
        return -1;
    }
    return store_exec(self, "PRAGMA incremental_vacuum");
}

const char *store_errmsg(store_t *self)
{
    return sqlite3_errmsg(self->db);
}
