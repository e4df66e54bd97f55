/*  store: the SQLite helper every service uses for its database file.
 *  Opens with WAL, synchronous=NORMAL (FULL when asked), a busy timeout and
 *  foreign keys on; brings the schema up to date by running the numbered
 *  migrations above `PRAGMA user_version`, each in its own transaction; and
 *  gives short helpers for statements and transactions.  One store per
 *  service: a connection is used by one thread at a time (the owner locks). */
#ifndef KEEL_STORE_H
#define KEEL_STORE_H
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct store_t store_t;

/* migrations[i] brings the schema from version i to i+1; NULL-terminated.
 * Returns NULL on failure, with the reason logged and written to err. */
store_t *store_new(const char *path, const char *const *migrations,
                   char *err, size_t errlen);
/* The same for a database that, when this creates it, has pages of
 * page_size bytes (a power of two from 512 to 65536; 0 for SQLite's
 * default): larger pages for a table that takes many rows at once. */
store_t *store_new_paged(const char *path, const char *const *migrations, int page_size,
                         char *err, size_t errlen);
void store_destroy(store_t **self_p);
sqlite3 *store_db(store_t *self);
int store_version(store_t *self);
/* Durable commits (synchronous=FULL) for data that was acknowledged. */
void store_set_durable(store_t *self, bool durable);
/* Runs SQL text with no results. 0 or -1 (logged). */
int store_exec(store_t *self, const char *sql);
/* Prepares (and caches by SQL text) a statement; reset and bindings
 * cleared before it is returned.  NULL on error (logged). */
sqlite3_stmt *store_prepare(store_t *self, const char *sql);
int store_begin(store_t *self);     /* BEGIN IMMEDIATE */
int store_commit(store_t *self);
int store_rollback(store_t *self);
/* Passive WAL checkpoint and incremental vacuum, so the file never grows
 * without bound. */
int store_maintain(store_t *self);
const char *store_errmsg(store_t *self);
#endif
