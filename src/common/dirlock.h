/*  dirlock: one process at a time serves a service's data directory.
 *
 *  A service's files (SQLite databases with in-memory indexes and caches)
 *  must have a single writer, and keelctl must know whether a service is
 *  running on a directory before it writes there offline (`keelctl
 *  --data-dir DIR user add`, `keelctl migrate state`).  A pid file cannot
 *  say that: two keeld processes sharing a data directory overwrite it, and
 *  a pid outlives its process.  A lock can: the holder takes an
 *  open-file-description lock on DIR/keeld.lock, which the kernel drops when
 *  the process dies (kill -9 included), and writes its pid there for the
 *  messages.  Asking who holds it never takes it, so a query cannot make a
 *  starting service fail. */
#ifndef KEEL_DIRLOCK_H
#define KEEL_DIRLOCK_H
#include <stddef.h>

typedef struct dirlock_t dirlock_t;

/* Takes DIR/keeld.lock (DIR must exist); NULL with the reason in err, which
 * names the holder's pid when another process has it. */
dirlock_t *dirlock_take(const char *dir, char *err, size_t errlen);
/* Releases the lock; the file stays (its pid line is cleared). */
void dirlock_release(dirlock_t **self_p);
/* The pid that holds DIR's lock: 0 when nobody does (or there is no lock
 * file), -1 when held by a process whose pid is not known yet. */
long dirlock_holder(const char *dir);
#endif
