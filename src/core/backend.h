/*  backend: where CoreOrchestrator keeps what it was told: a small store of
 *  JSON values in named tables ("agents", "legacy", "status", "beats"),
 *  with three implementations behind one interface.
 *
 *  memory  - a JSON object per table; lost at exit (the original default).
 *  sqlite  - the same objects as a read cache, written through to one table
 *            of a SQLite file (WAL) before the reply, so what was
 *            acknowledged survives kill -9.  fsync_each adds an fsync per
 *            commit, for a power cut too; off by default because agents
 *            register again when they start, and a power cut restarts
 *            them all.  Lookups never touch the disk.
 *  redis   - one plain key per entry, no TTL: the registry's entries are
 *            `<prefix><agent_id>` as the original wrote them, the other
 *            tables `keel:<table>:<key>`.  Shared
 *            between machines; listed with SCAN, never KEYS, because KEYS
 *            blocks every other Redis client.  The connection is made
 *            lazily and remade after a failure, so an outage costs one
 *            error reply per request and nothing more.
 *
 *  Group commit (sqlite): between backend_defer and
 *  backend_commit, one thread's writes go into one transaction, so
 *  the registrations of a batch of requests share a commit; the caller
 *  holds every reply until the commit returns (wire_server_set_batch), so
 *  nothing is acknowledged before it is on disk.  A failed commit undoes
 *  the batch's writes in memory too.
 *
 *  The sqlite file is checkpointed and vacuumed every thousand writes, so
 *  it never grows without bound.  Insertion order is kept by memory and sqlite (a first registration
 *  keeps its place when it is replaced).  Thread-safe: one mutex. */
#ifndef KEEL_CORE_BACKEND_H
#define KEEL_CORE_BACKEND_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "errpub.h"

typedef enum { BACKEND_MEMORY, BACKEND_SQLITE, BACKEND_REDIS } backend_kind_t;

typedef struct backend_t backend_t;

/* kind "memory" | "sqlite" | "redis"; path is the SQLite file, redis_url
 * "redis://[:password@]host:port/db", prefix the key prefix of the
 * "agents" table.  NULL with the reason in err. */
backend_t *backend_new(const char *kind, const char *path, const char *redis_url,
                       const char *prefix, bool fsync_each, char *err, size_t errlen);
void backend_destroy(backend_t **self_p);
backend_kind_t backend_kind(backend_t *self);
const char *backend_kind_name(backend_t *self);
/* From now on the calling thread's sqlite writes join one open
 * transaction (reads see them at once) that backend_commit ends;
 * they must not be acknowledged before.  A write from another thread
 * meanwhile commits that transaction with its own.  Nothing for memory
 * and Redis, which write at once. */
void backend_defer(backend_t *self);
/* Ends backend_defer: commits the open transaction.  0, or -1 with
 * SQLite's words in err when the deferred writes could not all be made
 * durable; then they are undone, in memory as on disk, and undone(arg,
 * table, key) (may be NULL) is told of each entry put back. */
int backend_commit(backend_t *self, char *err, size_t errlen,
                        void (*undone)(void *arg, const char *table, const char *key), void *arg);
/* Stores a copy of value.  0, or -1 with the reason in err. */
int backend_put(backend_t *self, const char *table, const char *key, json_t *value,
                char *err, size_t errlen);
/* 1 and *out (a new reference) when found, 0 when absent, -1 on error. */
int backend_get(backend_t *self, const char *table, const char *key, json_t **out,
                char *err, size_t errlen);
/* 1 when present, 0 when absent, -1 on error: a get without the copy. */
int backend_has(backend_t *self, const char *table, const char *key, char *err, size_t errlen);
/* 1 when removed, 0 when absent, -1 on error. */
int backend_del(backend_t *self, const char *table, const char *key, char *err, size_t errlen);
/* The whole table as an object (a new reference), or NULL with err. */
json_t *backend_all(backend_t *self, const char *table, char *err, size_t errlen);
/* Entries in a table; -1 for Redis, where counting means a full SCAN. */
long backend_count(backend_t *self, const char *table);
/* Whether the last Redis call worked (always true for the others). */
bool backend_up(backend_t *self);
/* Where a Redis outage is reported (once per outage). */
void backend_set_errors(backend_t *self, errpub_t *errors);
#endif
