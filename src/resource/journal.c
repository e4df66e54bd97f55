/*  journal: see journal.h. */
#include "journal.h"
#include "clock.h"
#include "log.h"
#include "store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct journal_t {
    pthread_mutex_t lock;
    store_t *store;
    char last_error[256];      /* why the latest apply failed */
};

static const char *const migrations[] = {
    "CREATE TABLE tasks ("
    " id INTEGER PRIMARY KEY,"
    " type TEXT NOT NULL,"
    " data TEXT NOT NULL,"
    " priority INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " max_retries INTEGER NOT NULL,"
    " timeout_s REAL NOT NULL,"
    " not_before REAL NOT NULL DEFAULT 0,"
    " created_at REAL NOT NULL);"
    "CREATE INDEX tasks_by_priority ON tasks (priority, id);",
    NULL,
};

journal_t *journal_new(const char *path, bool durable, char *err, size_t errlen)
{
    store_t *store = store_new(path, migrations, err, errlen);
    if (!store)
        return NULL;
    store_set_durable(store, durable);
    journal_t *self = calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    self->store = store;
    return self;
}

void journal_destroy(journal_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    journal_t *self = *self_p;
    store_maintain(self->store);
    store_destroy(&self->store);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

static task_t *task_from_row(sqlite3_stmt *st)
{
    const char *data_text = (const char *)sqlite3_column_text(st, 2);
    json_t *data = json_loads(data_text ? data_text : "null", JSON_DECODE_ANY, NULL);
    int prio = sqlite3_column_int(st, 3);
    task_t *task = task_new((const char *)sqlite3_column_text(st, 1),
                            data ? data : json_null(),
                            prio >= 0 && prio < TASK_PRIO_LEVELS ? prio : TASK_PRIO_MEDIUM);
    json_decref(data);
    task->id = sqlite3_column_int64(st, 0);
    task->attempts = sqlite3_column_int(st, 4);
    task->max_retries = sqlite3_column_int(st, 5);
    task->timeout_s = sqlite3_column_double(st, 6);
    task->not_before = sqlite3_column_double(st, 7);
    task->created_at = sqlite3_column_double(st, 8);
    task->committed = true;
    return task;
}

#define COLUMNS "id, type, data, priority, attempts, max_retries, timeout_s, not_before, created_at"

int journal_load(journal_t *self, void (*fn)(void *arg, task_t *task), void *arg)
{
    pthread_mutex_lock(&self->lock);
    sqlite3_stmt *st = store_prepare(self->store, "SELECT " COLUMNS " FROM tasks ORDER BY id");
    int n = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        fn(arg, task_from_row(st));
        n++;
    }
    pthread_mutex_unlock(&self->lock);
    return st ? n : -1;
}

int64_t journal_max_id(journal_t *self)
{
    pthread_mutex_lock(&self->lock);
    sqlite3_stmt *st = store_prepare(self->store, "SELECT COALESCE(MAX(id), 0) FROM tasks");
    int64_t id = st && sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (st)
        sqlite3_reset(st);
    pthread_mutex_unlock(&self->lock);
    return id;
}

static int insert(journal_t *self, task_t *task)
{
    sqlite3_stmt *st = store_prepare(self->store,
                                     "INSERT INTO tasks (" COLUMNS ") VALUES (?,?,?,?,?,?,?,?,?)");
    if (!st)
        return -1;
    char *data = json_dumps(task->data, JSON_COMPACT | JSON_ENCODE_ANY);
    sqlite3_bind_int64(st, 1, task->id);
    sqlite3_bind_text(st, 2, task->type, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, data ? data : "null", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, task->prio);
    sqlite3_bind_int(st, 5, task->attempts);
    sqlite3_bind_int(st, 6, task->max_retries);
    sqlite3_bind_double(st, 7, task->timeout_s);
    sqlite3_bind_double(st, 8, task->not_before);
    sqlite3_bind_double(st, 9, task->created_at);
    free(data);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

static int update(journal_t *self, const journal_update_t *task)
{
    sqlite3_stmt *st = store_prepare(self->store,
                                     "UPDATE tasks SET attempts = ?, not_before = ? WHERE id = ?");
    if (!st)
        return -1;
    sqlite3_bind_int(st, 1, task->attempts);
    sqlite3_bind_double(st, 2, task->not_before);
    sqlite3_bind_int64(st, 3, task->id);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

static int delete(journal_t *self, int64_t id)
{
    sqlite3_stmt *st = store_prepare(self->store, "DELETE FROM tasks WHERE id = ?");
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

int journal_apply(journal_t *self, task_t **inserts, size_t ninserts,
                  const journal_update_t *updates, size_t nupdates,
                  const int64_t *deletes, size_t ndeletes)
{
    pthread_mutex_lock(&self->lock);
    int rc = store_begin(self->store);
    for (size_t i = 0; rc == 0 && i < ninserts; i++)
        rc = insert(self, inserts[i]);
    for (size_t i = 0; rc == 0 && i < nupdates; i++)
        rc = update(self, &updates[i]);
    for (size_t i = 0; rc == 0 && i < ndeletes; i++)
        rc = delete(self, deletes[i]);
    if (rc == 0)
        rc = store_commit(self->store);
    if (rc != 0) {
        snprintf(self->last_error, sizeof self->last_error, "%s", store_errmsg(self->store));
        log_error("resource", "task journal write failed: %s", self->last_error);
        store_rollback(self->store);
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}

const char *journal_last_error(journal_t *self)
{
    return self->last_error;
}

static json_t *row_json(sqlite3_stmt *st)
{
    task_t *task = task_from_row(st);
    char created[40], due[40];
    clock_iso_local(task->created_at, created, sizeof created);
    clock_iso_local(task->not_before > 0 ? task->not_before : task->created_at, due, sizeof due);
    json_t *row = json_pack("{s:I, s:s, s:O, s:s, s:s, s:i, s:i, s:f, s:s, s:s}",
                            "task_id", (json_int_t)task->id, "type", task->type,
                            "data", task->data, "priority", task_prio_name(task->prio),
                            "state", "pending", "attempts", task->attempts,
                            "max_retries", task->max_retries, "timeout_s", task->timeout_s,
                            "created_at", created, "not_before", due);
    task_unref(task);
    return row;
}

json_t *journal_get(journal_t *self, int64_t id)
{
    pthread_mutex_lock(&self->lock);
    sqlite3_stmt *st = store_prepare(self->store, "SELECT " COLUMNS " FROM tasks WHERE id = ?");
    json_t *row = NULL;
    if (st) {
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) == SQLITE_ROW)
            row = row_json(st);
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&self->lock);
    return row;
}

json_t *journal_list(journal_t *self, int limit)
{
    json_t *rows = json_array();
    pthread_mutex_lock(&self->lock);
    sqlite3_stmt *st = store_prepare(self->store,
                                     "SELECT " COLUMNS " FROM tasks ORDER BY priority, id LIMIT ?");
    if (st) {
        sqlite3_bind_int(st, 1, limit);
        while (sqlite3_step(st) == SQLITE_ROW)
            json_array_append_new(rows, row_json(st));
    }
    pthread_mutex_unlock(&self->lock);
    return rows;
}

size_t journal_count(journal_t *self)
{
    pthread_mutex_lock(&self->lock);
    sqlite3_stmt *st = store_prepare(self->store, "SELECT COUNT(*) FROM tasks");
    size_t n = st && sqlite3_step(st) == SQLITE_ROW ? (size_t)sqlite3_column_int64(st, 0) : 0;
    if (st)
        sqlite3_reset(st);
    pthread_mutex_unlock(&self->lock);
    return n;
}
