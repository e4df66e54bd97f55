/*  perflog: see perflog.h.
 *
 *  A missing key inside `metric`/`usage` is answered as Python's KeyError
 *  text ("'agent'"), which is what the original sent back, and nothing is
 *  inserted.  Values are stored as the client sent them: numbers as REAL,
 *  the timestamp as its text, metadata as compact JSON text, so the
 *  time-range queries keep the original's inclusive text BETWEEN. */
#include "perflog.h"

#include <stdio.h>
#include <string.h>

static const char *missing_key(json_t *obj, const char *const *keys)
{
    for (size_t i = 0; keys[i]; i++)
        if (!json_object_get(obj, keys[i]))
            return keys[i];
    return NULL;
}

static void bind_value(sqlite3_stmt *st, int i, json_t *v)
{
    if (json_is_integer(v))
        sqlite3_bind_int64(st, i, json_integer_value(v));
    else if (json_is_real(v))
        sqlite3_bind_double(st, i, json_real_value(v));
    else if (json_is_string(v))
        sqlite3_bind_text(st, i, json_string_value(v), -1, SQLITE_TRANSIENT);
    else if (json_is_true(v) || json_is_false(v))
        sqlite3_bind_int(st, i, json_is_true(v));
    else if (json_is_null(v))
        sqlite3_bind_null(st, i);
    else {
        char *text = json_dumps(v, JSON_COMPACT);
        sqlite3_bind_text(st, i, text ? text : "", -1, SQLITE_TRANSIENT);
        free(text);
    }
}

static json_t *insert(hubdb_t *db, const char *sql, json_t *row, const char *const *keys)
{
    if (!json_is_object(row))
        return json_pack("{s:s, s:s}", "status", "error", "message",
                         "'NoneType' object is not subscriptable");
    const char *missing = missing_key(row, keys);
    if (missing)
        return json_pack("{s:s, s:s++}", "status", "error", "message", "'", missing, "'");
    char *metadata = json_dumps(json_object_get(row, "metadata"), JSON_COMPACT | JSON_ENCODE_ANY);
    hubdb_lock(db);
    sqlite3_stmt *st = store_prepare(db->store, sql);
    int rc = -1;
    if (st) {
        for (int i = 0; i < 4; i++)
            bind_value(st, i + 1, json_object_get(row, keys[i]));
        sqlite3_bind_text(st, 5, metadata ? metadata : "null", -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
        sqlite3_reset(st);
    }
    const char *why = rc < 0 ? store_errmsg(db->store) : NULL;
    json_t *reply = rc == 0 ? json_pack("{s:s}", "status", "success")
                            : json_pack("{s:s, s:s}", "status", "error", "message", why ? why : "insert failed");
    hubdb_unlock(db);
    free(metadata);
    return reply;
}

json_t *perflog_log_metric(hubdb_t *db, json_t *metric)
{
    static const char *const keys[] = { "agent", "action", "duration", "timestamp", "metadata", NULL };
    return insert(db, "INSERT INTO metrics(agent, action, duration, timestamp, metadata)"
                      " VALUES (?, ?, ?, ?, ?)", metric, keys);
}

json_t *perflog_log_resource_usage(hubdb_t *db, json_t *body)
{
    static const char *const keys[] = { "agent", "cpu_percent", "memory_mb", "timestamp", "metadata", NULL };
    return insert(db, "INSERT INTO resource_usage(agent, cpu_percent, memory_mb, timestamp, metadata)"
                      " VALUES (?, ?, ?, ?, ?)", json_object_get(body, "usage"), keys);
}

static json_t *column(sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: return json_integer(sqlite3_column_int64(st, i));
    case SQLITE_FLOAT: return json_real(sqlite3_column_double(st, i));
    case SQLITE_TEXT: return json_string((const char *)sqlite3_column_text(st, i));
    default: return json_null();
    }
}

static json_t *query(hubdb_t *db, json_t *body, const char *sql, const char *list_key,
                     const char *const *names)
{
    static const char *const keys[] = { "agent", "start_time", "end_time", NULL };
    const char *missing = missing_key(body, keys);
    if (missing)
        return json_pack("{s:s, s:s++}", "status", "error", "message", "'", missing, "'");
    json_t *rows = json_array();
    hubdb_lock(db);
    sqlite3_stmt *st = store_prepare(db->store, sql);
    if (st) {
        bind_value(st, 1, json_object_get(body, "agent"));
        bind_value(st, 2, json_object_get(body, "start_time"));
        bind_value(st, 3, json_object_get(body, "end_time"));
        while (sqlite3_step(st) == SQLITE_ROW) {
            json_t *row = json_object();
            for (int i = 0; i < 3; i++)
                json_object_set_new(row, names[i], column(st, i));
            const char *meta = (const char *)sqlite3_column_text(st, 3);
            json_t *parsed = meta ? json_loads(meta, JSON_DECODE_ANY, NULL) : NULL;
            json_object_set_new(row, "metadata", parsed ? parsed : json_null());
            json_array_append_new(rows, row);
        }
        sqlite3_reset(st);
    }
    hubdb_unlock(db);
    return json_pack("{s:s, s:o}", "status", "success", list_key, rows);
}

json_t *perflog_get_agent_metrics(hubdb_t *db, json_t *body)
{
    static const char *const names[] = { "action", "duration", "timestamp" };
    return query(db, body, "SELECT action, duration, timestamp, metadata FROM metrics"
                           " WHERE agent = ? AND timestamp BETWEEN ? AND ? ORDER BY timestamp",
                 "metrics", names);
}

json_t *perflog_get_agent_resource_usage(hubdb_t *db, json_t *body)
{
    static const char *const names[] = { "cpu_percent", "memory_mb", "timestamp" };
    return query(db, body, "SELECT cpu_percent, memory_mb, timestamp, metadata FROM resource_usage"
                           " WHERE agent = ? AND timestamp BETWEEN ? AND ? ORDER BY timestamp",
                 "usage", names);
}

int perflog_retention(hubdb_t *db, double now, int metrics_days, int usage_days)
{
    hubdb_lock(db);
    int deleted = 0, rc = 0;
    static const char *const sql[] = {
        "DELETE FROM metrics WHERE keel_epoch(timestamp) < ?",
        "DELETE FROM resource_usage WHERE keel_epoch(timestamp) < ?",
    };
    for (int i = 0; i < 2 && rc == 0; i++) {
        sqlite3_stmt *st = store_prepare(db->store, sql[i]);
        if (!st) {
            rc = -1;
            break;
        }
        sqlite3_bind_double(st, 1, now - 86400.0 * (i == 0 ? metrics_days : usage_days));
        if (sqlite3_step(st) == SQLITE_DONE)
            deleted += sqlite3_changes(store_db(db->store));
        else
            rc = -1;
        sqlite3_reset(st);
    }
    hubdb_unlock(db);
    return rc < 0 ? -1 : deleted;
}
