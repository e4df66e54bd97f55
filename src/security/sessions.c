/*  sessions: see sessions.h.  The index is a chained hash table keyed by
 *  the token's SHA-256 (already uniformly random, so its first bytes are the
 *  bucket), behind a read-write lock: validations share it.
 *
 *  Passwords are replaced by another process (keelctl user add), which
 *  deletes the user's sessions from the file.  A second connection of the
 *  index's own (the gateway's is held across fsyncs by logins) asks SQLite's
 *  data_version before each validation: one cheap step that changes only
 *  when some other connection committed.  Then the users whose password
 *  changed since the last look lose every indexed session the file no
 *  longer holds, before the token in hand is looked up. */
#include "sessions.h"
#include "log.h"

#include <pthread.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIGEST crypto_hash_sha256_BYTES

typedef struct entry_t {
    unsigned char digest[DIGEST];
    char *user_id;
    double created, expires;
    struct entry_t *next;
} entry_t;

struct sessions_t {
    store_t *db;
    pthread_rwlock_t lock;
    entry_t **buckets;
    size_t nbuckets, count;
    sqlite3 *watch;                 /* NULL for a database without a file */
    pthread_mutex_t watch_lock;
    sqlite3_stmt *data_version;
    int version;
    double passwords_seen;          /* the newest password_changed_at acted on */
};

static void digest_of(const char *token, unsigned char *digest)
{
    crypto_hash_sha256(digest, (const unsigned char *)token, strlen(token));
}

static void hex_of(const unsigned char *digest, char *hex)
{
    sodium_bin2hex(hex, DIGEST * 2 + 1, digest, DIGEST);
}

static size_t bucket_of(sessions_t *self, const unsigned char *digest)
{
    uint64_t h;
    memcpy(&h, digest, sizeof h);
    return (size_t)(h & (self->nbuckets - 1));
}

/* ---- the index (callers hold the write lock) ---------------------------- */

static void grow(sessions_t *self)
{
    size_t old_n = self->nbuckets;
    entry_t **old = self->buckets;
    self->nbuckets = old_n * 2;
    self->buckets = calloc(self->nbuckets, sizeof *self->buckets);
    for (size_t i = 0; i < old_n; i++)
        for (entry_t *e = old[i], *next; e; e = next) {
            next = e->next;
            size_t b = bucket_of(self, e->digest);
            e->next = self->buckets[b];
            self->buckets[b] = e;
        }
    free(old);
}

static void index_add(sessions_t *self, const unsigned char *digest, const char *user, double created,
                      double expires)
{
    if (self->count >= self->nbuckets)
        grow(self);
    entry_t *e = calloc(1, sizeof *e);
    memcpy(e->digest, digest, DIGEST);
    e->user_id = strdup(user);
    e->created = created;
    e->expires = expires;
    size_t b = bucket_of(self, digest);
    e->next = self->buckets[b];
    self->buckets[b] = e;
    self->count++;
}

static void entry_free(entry_t *e)
{
    free(e->user_id);
    free(e);
}

static int remove_digest(sessions_t *self, const unsigned char *digest)
{
    for (entry_t **p = &self->buckets[bucket_of(self, digest)]; *p; p = &(*p)->next)
        if (memcmp((*p)->digest, digest, DIGEST) == 0) {
            entry_t *e = *p;
            *p = e->next;
            entry_free(e);
            self->count--;
            return 1;
        }
    return 0;
}

static int remove_expired(sessions_t *self, double now)
{
    int removed = 0;
    for (size_t i = 0; i < self->nbuckets; i++)
        for (entry_t **p = &self->buckets[i]; *p;) {
            entry_t *e = *p;
            if (e->expires < now) {
                *p = e->next;
                entry_free(e);
                self->count--;
                removed++;
            } else {
                p = &e->next;
            }
        }
    return removed;
}

/* ---- passwords changed by another process -------------------------------- */

static int data_version(sessions_t *self)
{
    int version = -1;
    if (sqlite3_step(self->data_version) == SQLITE_ROW)
        version = sqlite3_column_int(self->data_version, 0);
    sqlite3_reset(self->data_version);
    return version;
}

/* Drops the user's indexed sessions that the file no longer holds.  The
 * caller holds watch_lock. */
static void drop_gone(sessions_t *self, const char *user_id)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(self->watch, "SELECT token_hash FROM sessions WHERE user_id=?", -1, &st,
                           NULL) != SQLITE_OK)
        return;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    size_t n = 0, cap = 16;
    unsigned char(*kept)[DIGEST] = malloc(cap * DIGEST);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *hex = (const char *)sqlite3_column_text(st, 0);
        size_t len;
        if (n == cap)
            kept = realloc(kept, (cap *= 2) * DIGEST);
        if (hex && sodium_hex2bin(kept[n], DIGEST, hex, strlen(hex), NULL, &len, NULL) == 0 && len == DIGEST)
            n++;
    }
    sqlite3_finalize(st);
    int dropped = 0;
    pthread_rwlock_wrlock(&self->lock);
    for (size_t b = 0; b < self->nbuckets; b++)
        for (entry_t **p = &self->buckets[b]; *p;) {
            entry_t *e = *p;
            bool keep = strcmp(e->user_id, user_id) != 0;
            for (size_t i = 0; i < n && !keep; i++)
                keep = memcmp(kept[i], e->digest, DIGEST) == 0;
            if (keep) {
                p = &e->next;
                continue;
            }
            *p = e->next;
            entry_free(e);
            self->count--;
            dropped++;
        }
    pthread_rwlock_unlock(&self->lock);
    free(kept);
    if (dropped)
        log_info("security", "a password was replaced: %d session(s) of its user ended", dropped);
}

static void follow_password_changes(sessions_t *self)
{
    if (!self->watch)
        return;
    pthread_mutex_lock(&self->watch_lock);
    int version = data_version(self);
    if (version != self->version) {
        self->version = version;
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(self->watch, "SELECT user_id, password_changed_at FROM users"
                                            " WHERE password_changed_at > ?", -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_double(st, 1, self->passwords_seen);
            double newest = self->passwords_seen;
            while (sqlite3_step(st) == SQLITE_ROW) {
                double at = sqlite3_column_double(st, 1);
                drop_gone(self, (const char *)sqlite3_column_text(st, 0));
                newest = at > newest ? at : newest;
            }
            sqlite3_finalize(st);
            self->passwords_seen = newest;
        }
    }
    pthread_mutex_unlock(&self->watch_lock);
}

/* The watching connection; none for a database that is not a file. */
static void watch_open(sessions_t *self)
{
    pthread_mutex_init(&self->watch_lock, NULL);
    const char *path = sqlite3_db_filename(store_db(self->db), "main");
    if (!path || !*path)
        return;
    if (sqlite3_open_v2(path, &self->watch, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK
        || sqlite3_prepare_v2(self->watch, "PRAGMA data_version", -1, &self->data_version, NULL) != SQLITE_OK) {
        log_warn("security", "cannot watch %s for replaced passwords: %s", path, sqlite3_errmsg(self->watch));
        sqlite3_close(self->watch);
        self->watch = NULL;
        return;
    }
    sqlite3_busy_timeout(self->watch, 1000);
    self->version = data_version(self);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(self->watch, "SELECT max(password_changed_at) FROM users", -1, &st, NULL) == SQLITE_OK
        && sqlite3_step(st) == SQLITE_ROW)
        self->passwords_seen = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
}

/* ---- lifecycle ------------------------------------------------------------ */

sessions_t *sessions_new(store_t *db, double now)
{
    sqlite3_stmt *st = store_prepare(db, "SELECT token_hash, user_id, created_at, expires_at FROM sessions"
                                         " WHERE expires_at >= ?");
    if (!st)
        return NULL;
    sessions_t *self = calloc(1, sizeof *self);
    self->db = db;
    pthread_rwlock_init(&self->lock, NULL);
    self->nbuckets = 1024;
    self->buckets = calloc(self->nbuckets, sizeof *self->buckets);
    sqlite3_bind_double(st, 1, now);
    while (sqlite3_step(st) == SQLITE_ROW) {
        unsigned char digest[DIGEST];
        size_t len;
        const char *hex = (const char *)sqlite3_column_text(st, 0);
        if (hex && sodium_hex2bin(digest, DIGEST, hex, strlen(hex), NULL, &len, NULL) == 0 && len == DIGEST)
            index_add(self, digest, (const char *)sqlite3_column_text(st, 1), sqlite3_column_double(st, 2),
                      sqlite3_column_double(st, 3));
    }
    sqlite3_reset(st);
    watch_open(self);
    return self;
}

void sessions_destroy(sessions_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sessions_t *self = *self_p;
    for (size_t i = 0; i < self->nbuckets; i++)
        for (entry_t *e = self->buckets[i], *next; e; e = next) {
            next = e->next;
            entry_free(e);
        }
    free(self->buckets);
    sqlite3_finalize(self->data_version);
    sqlite3_close(self->watch);
    pthread_mutex_destroy(&self->watch_lock);
    pthread_rwlock_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* ---- operations ------------------------------------------------------------- */

/* Deletes the user's oldest sessions beyond `keep`, in the file and the index. */
static int trim_user(sessions_t *self, const char *user_id, int keep)
{
    sqlite3_stmt *st = store_prepare(self->db, "SELECT token_hash FROM sessions WHERE user_id=?"
                                               " ORDER BY created_at DESC LIMIT -1 OFFSET ?");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, keep);
    int n = 0, cap = 16, rc = 0;
    unsigned char(*old)[DIGEST] = malloc((size_t)cap * DIGEST);
    while (sqlite3_step(st) == SQLITE_ROW) {
        size_t len;
        const char *hex = (const char *)sqlite3_column_text(st, 0);
        if (n == cap)
            old = realloc(old, (size_t)(cap *= 2) * DIGEST);
        if (hex && sodium_hex2bin(old[n], DIGEST, hex, strlen(hex), NULL, &len, NULL) == 0)
            n++;
    }
    sqlite3_reset(st);
    for (int i = 0; i < n && rc == 0; i++) {
        char hex[DIGEST * 2 + 1];
        hex_of(old[i], hex);
        st = store_prepare(self->db, "DELETE FROM sessions WHERE token_hash=?");
        sqlite3_bind_text(st, 1, hex, -1, SQLITE_TRANSIENT);
        rc = st && sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    }
    if (rc == 0) {
        pthread_rwlock_wrlock(&self->lock);
        for (int i = 0; i < n; i++)
            remove_digest(self, old[i]);
        pthread_rwlock_unlock(&self->lock);
    }
    free(old);
    return rc;
}

int sessions_create(sessions_t *self, const char *user_id, double now, double ttl_s, int max_per_user,
                    char *token, double *expires_at)
{
    unsigned char raw[32], digest[DIGEST];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(token, 65, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    digest_of(token, digest);
    char hex[DIGEST * 2 + 1];
    hex_of(digest, hex);
    *expires_at = now + ttl_s;
    if (store_begin(self->db) < 0)
        return -1;
    sqlite3_stmt *st = store_prepare(self->db, "INSERT INTO sessions(token_hash, user_id, created_at,"
                                               " expires_at) VALUES(?,?,?,?)");
    int rc = -1;
    if (st) {
        sqlite3_bind_text(st, 1, hex, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, user_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 3, now);
        sqlite3_bind_double(st, 4, *expires_at);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    }
    if (rc == 0 && store_commit(self->db) == 0) {
        pthread_rwlock_wrlock(&self->lock);
        index_add(self, digest, user_id, now, *expires_at);
        pthread_rwlock_unlock(&self->lock);
        if (max_per_user > 0 && trim_user(self, user_id, max_per_user) < 0)
            log_warn("security", "cannot trim a user's old sessions: %s", store_errmsg(self->db));
        return 0;
    }
    log_error("security", "cannot store a session: %s", store_errmsg(self->db));
    store_rollback(self->db);
    return -1;
}

session_state_t sessions_check(sessions_t *self, const char *token, double now,
                               char *user_id, size_t user_len)
{
    follow_password_changes(self);
    unsigned char digest[DIGEST];
    digest_of(token, digest);
    session_state_t state = SESSION_UNKNOWN;
    pthread_rwlock_rdlock(&self->lock);
    for (entry_t *e = self->buckets[bucket_of(self, digest)]; e; e = e->next)
        if (sodium_memcmp(e->digest, digest, DIGEST) == 0) {
            state = now <= e->expires ? SESSION_LIVE : SESSION_EXPIRED;
            if (user_id)
                snprintf(user_id, user_len, "%s", e->user_id);
            break;
        }
    pthread_rwlock_unlock(&self->lock);
    if (state == SESSION_EXPIRED) {
        pthread_rwlock_wrlock(&self->lock);
        remove_digest(self, digest);
        pthread_rwlock_unlock(&self->lock);
    }
    return state;
}

int sessions_delete(sessions_t *self, const char *token)
{
    unsigned char digest[DIGEST];
    char hex[DIGEST * 2 + 1];
    digest_of(token, digest);
    hex_of(digest, hex);
    sqlite3_stmt *st = store_prepare(self->db, "DELETE FROM sessions WHERE token_hash=?");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, hex, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE)
        return -1;
    pthread_rwlock_wrlock(&self->lock);
    int removed = remove_digest(self, digest);
    pthread_rwlock_unlock(&self->lock);
    return removed > 0 ? 1 : 0;
}

int sessions_sweep(sessions_t *self, double now)
{
    pthread_rwlock_wrlock(&self->lock);
    remove_expired(self, now);
    pthread_rwlock_unlock(&self->lock);
    sqlite3_stmt *st = store_prepare(self->db, "DELETE FROM sessions WHERE expires_at < ?");
    if (!st)
        return -1;
    sqlite3_bind_double(st, 1, now);
    if (sqlite3_step(st) != SQLITE_DONE)
        return -1;
    return sqlite3_changes(store_db(self->db));
}

long sessions_active(sessions_t *self, double now)
{
    long n = 0;
    pthread_rwlock_rdlock(&self->lock);
    for (size_t i = 0; i < self->nbuckets; i++)
        for (entry_t *e = self->buckets[i]; e; e = e->next)
            n += e->expires >= now;
    pthread_rwlock_unlock(&self->lock);
    return n;
}
