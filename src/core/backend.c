/*  backend: see backend.h.
 *
 *  The sqlite flavour keeps every table in memory as well as on disk: the
 *  registry is small (hundreds of agents) and read far more often than it
 *  is written, so lookups are served from the cache and only writes pay
 *  for a durable commit.  The cache is filled once at open, in insertion
 *  order (`seq`), and an upsert keeps the row's `seq`, so a replaced
 *  record keeps its place in list_agents as the original dict did.
 *
 *  Redis calls carry a one-second connect and command timeout: a Redis
 *  that hangs costs a request at most that, never the service. */
#include "backend.h"
#include "log.h"
#include "store.h"
#include "wirejson.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define REDIS_TIMEOUT_MS 1000
#define MAINTAIN_EVERY 1000     /* sqlite writes between checkpoint + vacuum */

/* An entry as it was before a deferred write: put back if the commit fails. */
typedef struct {
    char *table, *key;
    json_t *old;                /* NULL: it was absent */
} undo_t;

struct backend_t {
    backend_kind_t kind;
    pthread_mutex_t lock;
    json_t *tables;             /* memory and sqlite: table -> {key: value} */
    store_t *store;
    redisContext *redis;
    char host[256];
    int port, db;
    char password[128];
    char prefix[128];
    atomic_bool up;             /* read by /health without the lock */
    bool reported;              /* this outage is already on ErrorBus */
    errpub_t *errors;
    long long seq;              /* sqlite: the last insertion number used */
    long writes;                /* sqlite: since the last maintenance */
    bool deferring;             /* backend_defer until backend_commit */
    pthread_t deferrer;         /* the thread whose writes wait for the commit */
    bool txn;                   /* a transaction of deferred writes is open */
    undo_t *undo;
    size_t nundo, undo_cap;
    char lost[512];             /* why deferred writes were lost before the commit, or "" */
};

static const char *const migrations[] = {
    "CREATE TABLE entries (tbl TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    " seq INTEGER NOT NULL, PRIMARY KEY (tbl, key));",
    NULL,
};

/* ---- helpers ------------------------------------------------------------ */

static json_t *table_of(backend_t *self, const char *table)
{
    json_t *t = json_object_get(self->tables, table);
    if (!t) {
        t = json_object();
        json_object_set_new(self->tables, table, t);
    }
    return t;
}

static int parse_redis_url(backend_t *self, const char *url, char *err, size_t errlen)
{
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0) {
        snprintf(err, errlen, "redis_url must start with redis://: %s", url);
        return -1;
    }
    p += 8;
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        snprintf(self->password, sizeof self->password, "%.*s", (int)(at - pw), pw);
        p = at + 1;
    }
    self->port = 6379;
    self->db = 0;
    size_t hostlen = strcspn(p, ":/");
    snprintf(self->host, sizeof self->host, "%.*s", (int)hostlen, p);
    p += hostlen;
    if (*p == ':')
        self->port = (int)strtol(p + 1, (char **)&p, 10);
    if (*p == '/')
        self->db = atoi(p + 1);
    if (!*self->host || self->port <= 0 || self->port > 65535) {
        snprintf(err, errlen, "bad redis_url: %s", url);
        return -1;
    }
    return 0;
}

/* The Redis key of an entry. */
static void redis_key(backend_t *self, const char *table, const char *key, char *buf, size_t len)
{
    if (!strcmp(table, "agents"))
        snprintf(buf, len, "%s%s", self->prefix, key);
    else
        snprintf(buf, len, "keel:%s:%s", table, key);
}

static void redis_drop(backend_t *self)
{
    if (self->redis)
        redisFree(self->redis);
    self->redis = NULL;
    self->up = false;
}

/* One ErrorBus event per outage, not one per failed request. */
static void redis_failed(backend_t *self, const char *why)
{
    redis_drop(self);
    if (self->reported || !self->errors)
        return;
    self->reported = true;
    errpub_report(self->errors, "registry_backend_unavailable", "high", NULL, "%s", why);
}

static redisReply *redis_vcommand(backend_t *self, char *err, size_t errlen, const char *fmt, ...)
{
    if (!self->redis) {
        struct timeval tv = { REDIS_TIMEOUT_MS / 1000, (REDIS_TIMEOUT_MS % 1000) * 1000 };
        self->redis = redisConnectWithTimeout(self->host, self->port, tv);
        if (!self->redis || self->redis->err) {
            snprintf(err, errlen, "Redis unavailable at %s:%d: %s", self->host, self->port,
                     self->redis ? self->redis->errstr : "out of memory");
            redis_failed(self, err);
            return NULL;
        }
        redisSetTimeout(self->redis, tv);
        redisReply *r = NULL;
        if (*self->password)
            r = redisCommand(self->redis, "AUTH %s", self->password);
        if (r)
            freeReplyObject(r);
        r = redisCommand(self->redis, "SELECT %d", self->db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "Redis SELECT %d failed", self->db);
            if (r)
                freeReplyObject(r);
            redis_failed(self, err);
            return NULL;
        }
        freeReplyObject(r);
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = redisvCommand(self->redis, fmt, ap);
    va_end(ap);
    if (!reply) {
        snprintf(err, errlen, "Redis error at %s:%d: %s", self->host, self->port,
                 self->redis->errstr[0] ? self->redis->errstr : "connection lost");
        redis_failed(self, err);
        return NULL;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "Redis error: %s", reply->str);
        freeReplyObject(reply);
        return NULL;
    }
    self->up = true;
    self->reported = false;
    return reply;
}

/* ---- group commit -------------------------------------------------------- */

/* A checkpoint cannot run inside a transaction: it waits for the commit. */
static void maintain(backend_t *self)
{
    if (self->writes >= MAINTAIN_EVERY && !self->txn) {
        self->writes = 0;
        store_maintain(self->store);
    }
}

/* Whether this write waits for backend_commit; opens the
 * transaction it joins.  The lock is held. */
static int defer_write(backend_t *self, bool *deferred, char *err, size_t errlen)
{
    *deferred = self->kind == BACKEND_SQLITE && self->deferring && pthread_equal(pthread_self(), self->deferrer);
    if (!*deferred || self->txn)
        return 0;
    if (store_begin(self->store) < 0) {
        snprintf(err, errlen, "database write failed: %s", store_errmsg(self->store));
        return -1;
    }
    self->txn = true;
    return 0;
}

static void remember_old(backend_t *self, const char *table, const char *key)
{
    if (self->nundo == self->undo_cap) {
        self->undo_cap = self->undo_cap ? self->undo_cap * 2 : 64;
        self->undo = realloc(self->undo, self->undo_cap * sizeof *self->undo);
    }
    json_t *old = json_object_get(json_object_get(self->tables, table), key);
    self->undo[self->nundo++] = (undo_t){ strdup(table), strdup(key), json_incref(old) };
}

/* Puts the deferred writes back in memory, newest first (the transaction
 * is rolled back already); the keys go to *undone (the caller frees). */
static void undo_all(backend_t *self, undo_t **undone, size_t *nundone)
{
    for (size_t i = self->nundo; i-- > 0;) {
        undo_t *u = &self->undo[i];
        if (u->old)
            json_object_set(table_of(self, u->table), u->key, u->old);
        else
            json_object_del(table_of(self, u->table), u->key);
    }
    *undone = self->undo;
    *nundone = self->nundo;
    self->undo = NULL;
    self->nundo = self->undo_cap = 0;
    self->txn = false;
}

static void forget_undo(undo_t *undo, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(undo[i].table);
        free(undo[i].key);
        json_decref(undo[i].old);
    }
    free(undo);
}

/* Commits the open transaction; on failure rolls it back, undoes it in
 * memory and keeps why in self->lost.  The lock is held. */
static int flush(backend_t *self, undo_t **undone, size_t *nundone)
{
    *undone = NULL;
    *nundone = 0;
    if (!self->txn)
        return 0;
    /* A statement that failed may have rolled the whole transaction back. */
    if (!sqlite3_get_autocommit(store_db(self->store)) && store_commit(self->store) == 0) {
        forget_undo(self->undo, self->nundo);
        self->undo = NULL;
        self->nundo = self->undo_cap = 0;
        self->txn = false;
        maintain(self);
        return 0;
    }
    if (!*self->lost)
        snprintf(self->lost, sizeof self->lost, "database write failed: %s", store_errmsg(self->store));
    if (!sqlite3_get_autocommit(store_db(self->store)))
        store_rollback(self->store);
    undo_all(self, undone, nundone);
    return -1;
}

void backend_defer(backend_t *self)
{
    if (self->kind != BACKEND_SQLITE)
        return;
    pthread_mutex_lock(&self->lock);
    self->deferring = true;
    self->deferrer = pthread_self();
    pthread_mutex_unlock(&self->lock);
}

int backend_commit(backend_t *self, char *err, size_t errlen,
                        void (*undone)(void *arg, const char *table, const char *key), void *arg)
{
    if (self->kind != BACKEND_SQLITE)
        return 0;
    pthread_mutex_lock(&self->lock);
    self->deferring = false;
    undo_t *back;
    size_t nback;
    int rc = flush(self, &back, &nback);
    if (*self->lost) {
        rc = -1;
        snprintf(err, errlen, "%s", self->lost);
        *self->lost = '\0';
    }
    pthread_mutex_unlock(&self->lock);
    for (size_t i = 0; undone && i < nback; i++)
        undone(arg, back[i].table, back[i].key);
    forget_undo(back, nback);
    return rc;
}

/* After a write in the open transaction: another thread's write commits
 * it at once (its writer answers when this returns: rc, or -1 when that
 * commit failed; rc >= 0 is success), and a statement that rolled the transaction back loses
 * the deferred writes.  The lock is held; the keys put back go to the
 * caller (freed after it unlocks). */
static int after_write(backend_t *self, bool deferred, int rc, undo_t **back, size_t *nback,
                       char *err, size_t errlen)
{
    *back = NULL;
    *nback = 0;
    if (!self->txn || (deferred && (rc >= 0 || !sqlite3_get_autocommit(store_db(self->store)))))
        return rc;
    if (flush(self, back, nback) < 0 && !deferred && rc >= 0) {
        snprintf(err, errlen, "%s", self->lost);
        return -1;
    }
    return rc;
}

/* ---- lifecycle ------------------------------------------------------------ */

static int sqlite_load(backend_t *self, char *err, size_t errlen)
{
    sqlite3_stmt *stmt = store_prepare(self->store, "SELECT tbl, key, value, seq FROM entries ORDER BY seq");
    if (!stmt) {
        snprintf(err, errlen, "%s", store_errmsg(self->store));
        return -1;
    }
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        json_t *value = json_loads((const char *)sqlite3_column_text(stmt, 2), JSON_DECODE_ANY, NULL);
        if (value)
            json_object_set_new(table_of(self, (const char *)sqlite3_column_text(stmt, 0)),
                                (const char *)sqlite3_column_text(stmt, 1), value);
        self->seq = sqlite3_column_int64(stmt, 3);
    }
    sqlite3_reset(stmt);
    return 0;
}

backend_t *backend_new(const char *kind, const char *path, const char *redis_url,
                       const char *prefix, bool fsync_each, char *err, size_t errlen)
{
    backend_t *self = calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    self->tables = json_object();
    self->up = true;
    snprintf(self->prefix, sizeof self->prefix, "%s", prefix ? prefix : "service_registry:");
    if (!strcmp(kind, "memory")) {
        self->kind = BACKEND_MEMORY;
    } else if (!strcmp(kind, "sqlite")) {
        self->kind = BACKEND_SQLITE;
        self->store = store_new(path, migrations, err, errlen);
        if (!self->store || sqlite_load(self, err, errlen) < 0) {
            backend_destroy(&self);
            return NULL;
        }
        store_set_durable(self->store, fsync_each);
    } else if (!strcmp(kind, "redis")) {
        self->kind = BACKEND_REDIS;
        if (parse_redis_url(self, redis_url ? redis_url : "", err, errlen) < 0) {
            backend_destroy(&self);
            return NULL;
        }
        self->up = false;
    } else {
        snprintf(err, errlen, "unknown registry backend '%s' (memory, sqlite or redis)", kind);
        backend_destroy(&self);
        return NULL;
    }
    return self;
}

void backend_destroy(backend_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    backend_t *self = *self_p;
    if (self->store) {
        undo_t *back;
        size_t nback;
        flush(self, &back, &nback);     /* a batch cut short by the stop */
        forget_undo(back, nback);
        store_maintain(self->store);
    }
    store_destroy(&self->store);
    redis_drop(self);
    json_decref(self->tables);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

backend_kind_t backend_kind(backend_t *self)
{
    return self->kind;
}

const char *backend_kind_name(backend_t *self)
{
    return self->kind == BACKEND_MEMORY ? "memory" : self->kind == BACKEND_SQLITE ? "sqlite" : "redis";
}

/* ---- operations -------------------------------------------------------- */

static int sqlite_put(backend_t *self, const char *table, const char *key, const char *text,
                      char *err, size_t errlen)
{
    sqlite3_stmt *stmt = store_prepare(self->store,
        "INSERT INTO entries (tbl, key, value, seq) VALUES (?1, ?2, ?3, ?4)"
        " ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value");
    if (!stmt) {
        snprintf(err, errlen, "%s", store_errmsg(self->store));
        return -1;
    }
    sqlite3_bind_text(stmt, 1, table, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 4, self->seq + 1);
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "database write failed: %s", store_errmsg(self->store));
        return -1;
    }
    self->seq++;
    self->writes++;
    maintain(self);
    return 0;
}

int backend_put(backend_t *self, const char *table, const char *key, json_t *value,
                char *err, size_t errlen)
{
    int rc = 0;
    undo_t *back = NULL;
    size_t nback = 0;
    pthread_mutex_lock(&self->lock);
    if (self->kind == BACKEND_MEMORY) {
        json_object_set_new(table_of(self, table), key, json_deep_copy(value));
    } else {
        char *text = wirejson_dump(value, NULL);
        if (self->kind == BACKEND_SQLITE) {
            bool deferred;
            rc = text ? defer_write(self, &deferred, err, errlen) : -1;
            if (!text)
                snprintf(err, errlen, "the value cannot be written as JSON");
            if (rc == 0)
                rc = sqlite_put(self, table, key, text, err, errlen);
            if (rc == 0) {
                if (self->txn)
                    remember_old(self, table, key);
                json_object_set_new(table_of(self, table), key, json_deep_copy(value));
            }
            if (text)
                rc = after_write(self, deferred, rc, &back, &nback, err, errlen);
        } else {
            char rkey[512];
            redis_key(self, table, key, rkey, sizeof rkey);
            redisReply *r = redis_vcommand(self, err, errlen, "SET %s %s", rkey, text);
            rc = r ? 0 : -1;
            if (r)
                freeReplyObject(r);
        }
        free(text);
    }
    pthread_mutex_unlock(&self->lock);
    forget_undo(back, nback);
    return rc;
}

int backend_get(backend_t *self, const char *table, const char *key, json_t **out,
                char *err, size_t errlen)
{
    *out = NULL;
    int rc = 0;
    pthread_mutex_lock(&self->lock);
    if (self->kind != BACKEND_REDIS) {
        json_t *value = json_object_get(json_object_get(self->tables, table), key);
        if (value) {
            *out = json_deep_copy(value);
            rc = 1;
        }
    } else {
        char rkey[512];
        redis_key(self, table, key, rkey, sizeof rkey);
        redisReply *r = redis_vcommand(self, err, errlen, "GET %s", rkey);
        if (!r) {
            rc = -1;
        } else {
            /* Bad JSON under a key reads as absent, as the original did. */
            if (r->type == REDIS_REPLY_STRING)
                *out = json_loadb(r->str, r->len, JSON_DECODE_ANY, NULL);
            rc = *out ? 1 : 0;
            freeReplyObject(r);
        }
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}

int backend_has(backend_t *self, const char *table, const char *key, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&self->lock);
    if (self->kind != BACKEND_REDIS) {
        rc = json_object_get(json_object_get(self->tables, table), key) != NULL;
    } else {
        char rkey[512];
        redis_key(self, table, key, rkey, sizeof rkey);
        redisReply *r = redis_vcommand(self, err, errlen, "EXISTS %s", rkey);
        rc = r ? (r->integer > 0) : -1;
        if (r)
            freeReplyObject(r);
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}

int backend_del(backend_t *self, const char *table, const char *key, char *err, size_t errlen)
{
    int rc = 0;
    undo_t *back = NULL;
    size_t nback = 0;
    pthread_mutex_lock(&self->lock);
    if (self->kind == BACKEND_REDIS) {
        char rkey[512];
        redis_key(self, table, key, rkey, sizeof rkey);
        redisReply *r = redis_vcommand(self, err, errlen, "DEL %s", rkey);
        rc = r ? (r->integer > 0) : -1;
        if (r)
            freeReplyObject(r);
    } else {
        json_t *t = json_object_get(self->tables, table);
        rc = json_object_get(t, key) != NULL;
        bool deferred = false;
        if (rc && self->kind == BACKEND_SQLITE && defer_write(self, &deferred, err, errlen) < 0)
            rc = -1;
        if (rc == 1 && self->kind == BACKEND_SQLITE) {
            sqlite3_stmt *stmt = store_prepare(self->store, "DELETE FROM entries WHERE tbl = ?1 AND key = ?2");
            if (stmt) {
                sqlite3_bind_text(stmt, 1, table, -1, SQLITE_STATIC);
                sqlite3_bind_text(stmt, 2, key, -1, SQLITE_STATIC);
                if (sqlite3_step(stmt) != SQLITE_DONE) {
                    snprintf(err, errlen, "database write failed: %s", store_errmsg(self->store));
                    rc = -1;
                }
                sqlite3_reset(stmt);
            } else {
                rc = -1;
            }
            if (rc == 1 && self->txn)
                remember_old(self, table, key);
            if (rc == 1)
                json_object_del(t, key);
            rc = after_write(self, deferred, rc, &back, &nback, err, errlen);
        } else if (rc == 1) {
            json_object_del(t, key);
        }
    }
    pthread_mutex_unlock(&self->lock);
    forget_undo(back, nback);
    return rc;
}

/* SCAN MATCH with the glob characters of the prefix escaped. */
static void scan_pattern(const char *prefix, char *buf, size_t len)
{
    size_t o = 0;
    for (const char *p = prefix; *p && o + 3 < len; p++) {
        if (strchr("*?[]\\", *p))
            buf[o++] = '\\';
        buf[o++] = *p;
    }
    buf[o++] = '*';
    buf[o] = '\0';
}

static json_t *redis_all(backend_t *self, const char *table, char *err, size_t errlen)
{
    char prefix[256], pattern[520];
    redis_key(self, table, "", prefix, sizeof prefix);
    scan_pattern(prefix, pattern, sizeof pattern);
    json_t *all = json_object();
    char cursor[32] = "0";
    do {
        redisReply *r = redis_vcommand(self, err, errlen, "SCAN %s MATCH %s COUNT 500", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r) {
                snprintf(err, errlen, "Redis SCAN gave an unexpected reply");
                freeReplyObject(r);
            }
            json_decref(all);
            return NULL;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const char *k = keys->element[i]->str;
            redisReply *v = redis_vcommand(self, err, errlen, "GET %s", k);
            json_t *value = v && v->type == REDIS_REPLY_STRING ? json_loadb(v->str, v->len, JSON_DECODE_ANY, NULL) : NULL;
            if (value)
                json_object_set_new(all, k + strlen(prefix), value);
            if (v)
                freeReplyObject(v);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return all;
}

json_t *backend_all(backend_t *self, const char *table, char *err, size_t errlen)
{
    pthread_mutex_lock(&self->lock);
    json_t *all;
    if (self->kind == BACKEND_REDIS)
        all = redis_all(self, table, err, errlen);
    else
        all = json_deep_copy(table_of(self, table));
    pthread_mutex_unlock(&self->lock);
    return all;
}

long backend_count(backend_t *self, const char *table)
{
    if (self->kind == BACKEND_REDIS)
        return -1;
    pthread_mutex_lock(&self->lock);
    long n = (long)json_object_size(table_of(self, table));
    pthread_mutex_unlock(&self->lock);
    return n;
}

bool backend_up(backend_t *self)
{
    return self->up;
}

void backend_set_errors(backend_t *self, errpub_t *errors)
{
    self->errors = errors;
}
