/*  journal: the SQLite file that makes an accepted task survive a crash.
 *  A task is written (durably: synchronous=FULL) before its client hears
 *  "accepted", and deleted when it finishes.  Writes are grouped:
 *  everything that arrived while the previous commit was on disk goes into
 *  the next transaction, so fifty producers pay for one fsync between
 *  them, not fifty.  A finished task whose delete
 *  was not yet on disk at a crash runs again after the restart: delivery
 *  is at least once, never lost.  `durable` false trades the fsync for
 *  speed (synchronous=NORMAL): a commit still survives the process being
 *  killed, since it is in the OS's cache, but not a power cut.
 *  Thread-safe (one mutex around the connection). */
#ifndef KEEL_RS_JOURNAL_H
#define KEEL_RS_JOURNAL_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "task.h"

typedef struct journal_t journal_t;

/* A retry's new attempt count and due time, copied so the journal thread
 * never reads a task a worker may be changing. */
typedef struct {
    int64_t id;
    int attempts;
    double not_before;
} journal_update_t;

journal_t *journal_new(const char *path, bool durable, char *err, size_t errlen);
void journal_destroy(journal_t **self_p);
/* Calls fn for every stored task, oldest first (fn takes the task). */
int journal_load(journal_t *self, void (*fn)(void *arg, task_t *task), void *arg);
int64_t journal_max_id(journal_t *self);
/* One transaction: insert `inserts`, rewrite attempts/not_before of
 * `updates`, delete `deletes`.  0 or -1 (rolled back, logged). */
int journal_apply(journal_t *self, task_t **inserts, size_t ninserts,
                  const journal_update_t *updates, size_t nupdates,
                  const int64_t *deletes, size_t ndeletes);
/* SQLite's words for the latest failed apply ("database or disk is full"):
 * only the thread that applies may read it. */
const char *journal_last_error(journal_t *self);
/* A stored task as JSON, or NULL when it is not stored. */
json_t *journal_get(journal_t *self, int64_t id);
/* Up to `limit` stored tasks, by priority then age. */
json_t *journal_list(journal_t *self, int limit);
size_t journal_count(journal_t *self);
#endif
