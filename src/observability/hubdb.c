/*  hubdb: see hubdb.h.
 *
 *  Retention must compare real instants, not text: the original compared
 *  the client's local "YYYY-MM-DDTHH:MM:SS.ffffff" with SQLite's UTC
 *  "YYYY-MM-DD HH:MM:SS", which is wrong across the 'T'/' ' and across
 *  time zones.  So the connection gets a keel_epoch(text) function that
 *  parses what the clients wrote (ISO with or without zone, or a number of
 *  seconds) into unix seconds, and NULL when it cannot, so a row with an
 *  unreadable stamp is kept rather than guessed at. */
#include "hubdb.h"
#include "clock.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const migrations[] = {
    "CREATE TABLE metrics(metric_id INTEGER PRIMARY KEY AUTOINCREMENT, agent TEXT, action TEXT,"
    " duration REAL, timestamp TIMESTAMP, metadata TEXT);"
    "CREATE TABLE resource_usage(usage_id INTEGER PRIMARY KEY AUTOINCREMENT, agent TEXT,"
    " cpu_percent REAL, memory_mb REAL, timestamp TIMESTAMP, metadata TEXT);"
    "CREATE INDEX idx_metrics_agent ON metrics(agent);"
    "CREATE INDEX idx_metrics_timestamp ON metrics(timestamp);"
    "CREATE INDEX idx_resource_agent ON resource_usage(agent);"
    "CREATE INDEX idx_resource_timestamp ON resource_usage(timestamp);"
    "CREATE TABLE health_metrics(id INTEGER PRIMARY KEY AUTOINCREMENT, agent_name TEXT NOT NULL,"
    " timestamp DATETIME DEFAULT CURRENT_TIMESTAMP, cpu_usage REAL, memory_usage REAL,"
    " response_time REAL, error_rate REAL);"
    "CREATE TABLE recovery_actions(id INTEGER PRIMARY KEY AUTOINCREMENT, agent_name TEXT NOT NULL,"
    " timestamp DATETIME DEFAULT CURRENT_TIMESTAMP, action_type TEXT NOT NULL, success BOOLEAN,"
    " error_message TEXT);"
    "CREATE TABLE health_events(id INTEGER PRIMARY KEY AUTOINCREMENT, agent_name TEXT NOT NULL,"
    " event_type TEXT NOT NULL, details TEXT, timestamp DATETIME DEFAULT CURRENT_TIMESTAMP);"
    "CREATE INDEX idx_health_events_agent ON health_events(agent_name, id);"
    "CREATE TABLE perf_samples(id INTEGER PRIMARY KEY AUTOINCREMENT, service TEXT NOT NULL,"
    " metric_type TEXT NOT NULL, value REAL NOT NULL, ts REAL NOT NULL);"
    "CREATE INDEX idx_perf_samples ON perf_samples(service, metric_type, id);"
    "CREATE TABLE perf_counters(service TEXT PRIMARY KEY, errors INTEGER NOT NULL DEFAULT 0,"
    " requests INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE alert_history(id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,"
    " state TEXT NOT NULL, alert TEXT NOT NULL);"
    "CREATE TABLE alert_rules(rule_id TEXT PRIMARY KEY, rule TEXT NOT NULL);"
    "CREATE TABLE pushed_health(agent_name TEXT PRIMARY KEY, record TEXT NOT NULL);",
    /* the dashboard's time series (history.c): rings of fixed slots, one
     * row per step holding every series' point */
    "CREATE TABLE history_series(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,"
    " last_t REAL NOT NULL DEFAULT 0);"
    "CREATE TABLE history(tier INTEGER NOT NULL, slot INTEGER NOT NULL, t REAL NOT NULL,"
    " points BLOB NOT NULL, PRIMARY KEY (tier, slot)) WITHOUT ROWID;",
    NULL,
};

static void sql_epoch(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    int type = sqlite3_value_type(argv[0]);
    if (type == SQLITE_INTEGER || type == SQLITE_FLOAT) {
        sqlite3_result_double(ctx, sqlite3_value_double(argv[0]));
        return;
    }
    const char *text = (const char *)sqlite3_value_text(argv[0]);
    double t;
    if (text && clock_parse_iso(text, &t) == 0)
        sqlite3_result_double(ctx, t);
    else
        sqlite3_result_null(ctx);
}

hubdb_t *hubdb_new(const char *path)
{
    char err[256];
    store_t *store = store_new(path, migrations, err, sizeof err);
    if (!store) {
        log_error("observability", "cannot open %s: %s", path, err);
        return NULL;
    }
    sqlite3_create_function(store_db(store), "keel_epoch", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                            NULL, sql_epoch, NULL, NULL);
    /* 256 kB of page cache, not SQLite's 2 MB: the hub writes a few rows a
     * sweep and reads history a page at a time, so the pages it would keep
     * are the kernel's to cache; the hub sweeping 1,000 agents is a
     * megabyte smaller (issue 17: under 25 MB). */
    store_exec(store, "PRAGMA cache_size=-256");
    hubdb_t *self = calloc(1, sizeof *self);
    self->store = store;
    pthread_mutex_init(&self->lock, NULL);
    return self;
}

void hubdb_destroy(hubdb_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hubdb_t *self = *self_p;
    store_destroy(&self->store);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

void hubdb_lock(hubdb_t *self)
{
    pthread_mutex_lock(&self->lock);
}

void hubdb_unlock(hubdb_t *self)
{
    pthread_mutex_unlock(&self->lock);
}

int hubdb_event(hubdb_t *self, const char *agent, const char *event_type, json_t *details)
{
    char *text = details ? json_dumps(details, JSON_COMPACT) : NULL;
    hubdb_lock(self);
    sqlite3_stmt *st = store_prepare(self->store,
        "INSERT INTO health_events(agent_name, event_type, details) VALUES (?, ?, ?)");
    int rc = -1;
    if (st) {
        sqlite3_bind_text(st, 1, agent, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, event_type, -1, SQLITE_TRANSIENT);
        if (text)
            sqlite3_bind_text(st, 3, text, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
        sqlite3_reset(st);
    }
    hubdb_unlock(self);
    free(text);
    return rc;
}

int hubdb_recovery_action(hubdb_t *self, const char *agent, const char *action,
                          bool success, const char *error)
{
    hubdb_lock(self);
    sqlite3_stmt *st = store_prepare(self->store,
        "INSERT INTO recovery_actions(agent_name, action_type, success, error_message)"
        " VALUES (?, ?, ?, ?)");
    int rc = -1;
    if (st) {
        sqlite3_bind_text(st, 1, agent, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, action, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 3, success);
        if (error)
            sqlite3_bind_text(st, 4, error, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
        sqlite3_reset(st);
    }
    hubdb_unlock(self);
    return rc;
}

json_t *hubdb_events(hubdb_t *self, const char *agent, int limit)
{
    json_t *events = json_array();
    hubdb_lock(self);
    sqlite3_stmt *st = store_prepare(self->store,
        "SELECT agent_name, event_type, details, timestamp FROM health_events"
        " WHERE ?1 IS NULL OR agent_name = ?1 ORDER BY id DESC LIMIT ?2");
    if (st) {
        if (agent)
            sqlite3_bind_text(st, 1, agent, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 2, limit);
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *details = (const char *)sqlite3_column_text(st, 2);
            json_t *parsed = details ? json_loads(details, 0, NULL) : NULL;
            json_array_append_new(events, json_pack("{s:s, s:s, s:o, s:s}",
                "agent_name", (const char *)sqlite3_column_text(st, 0),
                "event_type", (const char *)sqlite3_column_text(st, 1),
                "details", parsed ? parsed : json_object(),
                "timestamp", (const char *)sqlite3_column_text(st, 3)));
        }
        sqlite3_reset(st);
    }
    hubdb_unlock(self);
    return events;
}
