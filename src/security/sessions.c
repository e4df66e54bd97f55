/*  sessions: see sessions.h.  The index is a chained hash table keyed by
 *  the token's SHA-256 (already uniformly random, so its first bytes are the
 *  bucket), behind a read-write lock: validations share it.
 *
 *  SHA-256 was a third of a validation, so a session validated once is
 *  also found by a quicker key: the token's 128-bit SipHash under a key
 *  drawn at start and never stored (crypto_shorthash_siphashx24, a keyed
 *  PRF: who does not hold the key cannot make another token land on a
 *  session's quick key, and 128 bits leave no collision to stumble on).
 *  It is kept only in memory, beside the digest, in a second table; a
 *  token not found by it (a session loaded from the file, or an unknown
 *  token) is looked up by its SHA-256 as before. */
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
#define QUICK crypto_shorthash_siphashx24_BYTES

typedef struct entry_t {
    unsigned char digest[DIGEST];
    unsigned char quick[QUICK];
    bool has_quick;             /* in the quick table too */
    char *user_id;
    double created, expires;
    struct entry_t *next, *next_quick;
} entry_t;

struct sessions_t {
    store_t *db;
    pthread_rwlock_t lock;
    entry_t **buckets, **quick;         /* both nbuckets long */
    size_t nbuckets, count;
    unsigned char quick_key[crypto_shorthash_siphashx24_KEYBYTES];
};

static void digest_of(const char *token, unsigned char *digest)
{
    crypto_hash_sha256(digest, (const unsigned char *)token, strlen(token));
}

static void hex_of(const unsigned char *digest, char *hex)
{
    sodium_bin2hex(hex, DIGEST * 2 + 1, digest, DIGEST);
}

/* Both keys are uniformly random: their first bytes are the bucket. */
static size_t bucket_of(sessions_t *self, const unsigned char *digest)
{
    uint64_t h;
    memcpy(&h, digest, sizeof h);
    return (size_t)(h & (self->nbuckets - 1));
}

static void quick_of(sessions_t *self, const char *token, unsigned char *quick)
{
    crypto_shorthash_siphashx24(quick, (const unsigned char *)token, strlen(token), self->quick_key);
}

/* Links e into the quick table by the hash it holds (the write lock is
 * held). */
static void quick_link(sessions_t *self, entry_t *e)
{
    size_t b = bucket_of(self, e->quick);
    e->next_quick = self->quick[b];
    self->quick[b] = e;
}

static void quick_add(sessions_t *self, entry_t *e, const unsigned char *quick)
{
    memcpy(e->quick, quick, QUICK);
    e->has_quick = true;
    quick_link(self, e);
}

static void quick_remove(sessions_t *self, entry_t *e)
{
    if (!e->has_quick)
        return;
    for (entry_t **p = &self->quick[bucket_of(self, e->quick)]; *p; p = &(*p)->next_quick)
        if (*p == e) {
            *p = e->next_quick;
            break;
        }
}

/* ---- the index (callers hold the write lock) ---------------------------- */

static void grow(sessions_t *self)
{
    size_t old_n = self->nbuckets;
    entry_t **old = self->buckets;
    self->nbuckets = old_n * 2;
    self->buckets = calloc(self->nbuckets, sizeof *self->buckets);
    free(self->quick);
    self->quick = calloc(self->nbuckets, sizeof *self->quick);
    for (size_t i = 0; i < old_n; i++)
        for (entry_t *e = old[i], *next; e; e = next) {
            next = e->next;
            size_t b = bucket_of(self, e->digest);
            e->next = self->buckets[b];
            self->buckets[b] = e;
            if (e->has_quick)
                quick_link(self, e);
        }
    free(old);
}

/* quick may be NULL (a session loaded from the file). */
static void index_add(sessions_t *self, const unsigned char *digest, const unsigned char *quick,
                      const char *user, double created, double expires)
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
    if (quick)
        quick_add(self, e, quick);
    self->count++;
}

static void entry_free(entry_t *e)
{
    free(e->user_id);
    free(e);
}

static entry_t *find_digest(sessions_t *self, const unsigned char *digest)
{
    for (entry_t *e = self->buckets[bucket_of(self, digest)]; e; e = e->next)
        if (sodium_memcmp(e->digest, digest, DIGEST) == 0)
            return e;
    return NULL;
}

static int remove_digest(sessions_t *self, const unsigned char *digest)
{
    for (entry_t **p = &self->buckets[bucket_of(self, digest)]; *p; p = &(*p)->next)
        if (memcmp((*p)->digest, digest, DIGEST) == 0) {
            entry_t *e = *p;
            *p = e->next;
            quick_remove(self, e);
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
                quick_remove(self, e);
                entry_free(e);
                self->count--;
                removed++;
            } else {
                p = &e->next;
            }
        }
    return removed;
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
    self->quick = calloc(self->nbuckets, sizeof *self->quick);
    randombytes_buf(self->quick_key, sizeof self->quick_key);
    sqlite3_bind_double(st, 1, now);
    while (sqlite3_step(st) == SQLITE_ROW) {
        unsigned char digest[DIGEST];
        size_t len;
        const char *hex = (const char *)sqlite3_column_text(st, 0);
        if (hex && sodium_hex2bin(digest, DIGEST, hex, strlen(hex), NULL, &len, NULL) == 0 && len == DIGEST)
            index_add(self, digest, NULL, (const char *)sqlite3_column_text(st, 1),
                      sqlite3_column_double(st, 2), sqlite3_column_double(st, 3));
    }
    sqlite3_reset(st);
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
    free(self->quick);
    sodium_memzero(self->quick_key, sizeof self->quick_key);
    pthread_rwlock_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* ---- operations ------------------------------------------------------------- */

/* Deletes the user's oldest sessions beyond `keep`, in the file and the
 * index; how many, or -1. */
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
    return rc == 0 ? n : -1;
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
        unsigned char quick[QUICK];
        quick_of(self, token, quick);
        pthread_rwlock_wrlock(&self->lock);
        index_add(self, digest, quick, user_id, now, *expires_at);
        pthread_rwlock_unlock(&self->lock);
        if (max_per_user > 0 && trim_user(self, user_id, max_per_user) < 0)
            log_warn("security", "cannot trim a user's old sessions: %s", store_errmsg(self->db));
        return 0;
    }
    log_error("security", "cannot store a session: %s", store_errmsg(self->db));
    store_rollback(self->db);
    return -1;
}

/* The state of the entry found (the lock is held). */
static session_state_t state_of(entry_t *e, double now, char *user_id, size_t user_len)
{
    if (user_id)
        snprintf(user_id, user_len, "%s", e->user_id);
    return now <= e->expires ? SESSION_LIVE : SESSION_EXPIRED;
}

session_state_t sessions_check(sessions_t *self, const char *token, double now,
                               char *user_id, size_t user_len)
{
    unsigned char quick[QUICK], digest[DIGEST];
    quick_of(self, token, quick);
    session_state_t state = SESSION_UNKNOWN;
    pthread_rwlock_rdlock(&self->lock);
    for (entry_t *e = self->quick[bucket_of(self, quick)]; e; e = e->next_quick)
        if (sodium_memcmp(e->quick, quick, QUICK) == 0) {
            state = state_of(e, now, user_id, user_len);
            memcpy(digest, e->digest, DIGEST);
            break;
        }
    pthread_rwlock_unlock(&self->lock);
    if (state == SESSION_UNKNOWN) {
        /* By its digest, under the read lock: a forged or forgotten token
         * must not hold up every other validation.  A session loaded from
         * the file gets its quick key under the write lock, once. */
        digest_of(token, digest);
        bool keyless = false;
        pthread_rwlock_rdlock(&self->lock);
        entry_t *e = find_digest(self, digest);
        if (e) {
            state = state_of(e, now, user_id, user_len);
            keyless = !e->has_quick;
        }
        pthread_rwlock_unlock(&self->lock);
        if (keyless) {
            pthread_rwlock_wrlock(&self->lock);
            e = find_digest(self, digest);
            if (e && !e->has_quick)
                quick_add(self, e, quick);
            pthread_rwlock_unlock(&self->lock);
        }
    }
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

int sessions_end_user(sessions_t *self, const char *user_id)
{
    return trim_user(self, user_id, 0);
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
