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

typedef struct rs_journal_t rs_journal_t;

/* A retry's new attempt count and due time, copied so the journal thread
 * never reads a task a worker may be changing. */
typedef struct {
    int64_t id;
    int attempts;
    double not_before;
} rs_task_update_t;

rs_journal_t *rs_journal_new(const char *path, bool durable, char *err, size_t errlen);
void rs_journal_destroy(rs_journal_t **self_p);
/* Calls fn for every stored task, oldest first (fn takes the task). */
int rs_journal_load(rs_journal_t *self, void (*fn)(void *arg, rs_task_t *task), void *arg);
int64_t rs_journal_max_id(rs_journal_t *self);
/* One transaction: insert `inserts`, rewrite attempts/not_before of
 * `updates`, delete `deletes`.  0 or -1 (rolled back, logged). */
int rs_journal_apply(rs_journal_t *self, rs_task_t **inserts, size_t ninserts,
                     const rs_task_update_t *updates, size_t nupdates,
                     const int64_t *deletes, size_t ndeletes);
/* SQLite's words for the latest failed apply ("database or disk is full"):
 * only the thread that applies may read it. */
const char *rs_journal_last_error(rs_journal_t *self);
/* A stored task as JSON, or NULL when it is not stored. */
json_t *rs_journal_get(rs_journal_t *self, int64_t id);
/* Up to `limit` stored tasks, by priority then age. */
json_t *rs_journal_list(rs_journal_t *self, int limit);
size_t rs_journal_count(rs_journal_t *self);
#endif
