/*  pushhealth: see pushhealth.h.
 *
 *  last_seen is kept as unix seconds beside the record and rendered as
 *  UTC ISO text, so staleness is a subtraction, not a parse.  Unlike the
 *  prior hub, marking an agent stale keeps its last_seen and location (the
 *  original refreshed last_seen, which made a stale agent look fresh), and
 *  an unexpected location is bucketed under Unknown instead of failing
 *  the whole summary. */
#include "pushhealth.h"
#include "clock.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct pushhealth_t {
    hubdb_t *db;
    double stale_s;
    pthread_mutex_t lock;
    json_t *agents;         /* name -> {agent_name,status,last_seen,details,location,seen} */
};

static void persist(pushhealth_t *self, const char *name, json_t *rec)
{
    char *text = json_dumps(rec, JSON_COMPACT);
    hubdb_lock(self->db);
    sqlite3_stmt *st = store_prepare(self->db->store,
                                     "INSERT OR REPLACE INTO pushed_health(agent_name, record) VALUES (?, ?)");
    if (st) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    hubdb_unlock(self->db);
    free(text);
}

pushhealth_t *pushhealth_new(hubdb_t *db, double stale_s)
{
    pushhealth_t *self = calloc(1, sizeof *self);
    self->db = db;
    self->stale_s = stale_s;
    pthread_mutex_init(&self->lock, NULL);
    self->agents = json_object();
    hubdb_lock(db);
    sqlite3_stmt *st = store_prepare(db->store, "SELECT agent_name, record FROM pushed_health");
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        json_t *rec = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
        if (json_is_object(rec))
            json_object_set(self->agents, (const char *)sqlite3_column_text(st, 0), rec);
        json_decref(rec);
    }
    if (st)
        sqlite3_reset(st);
    hubdb_unlock(db);
    return self;
}

void pushhealth_destroy(pushhealth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    json_decref((*self_p)->agents);
    pthread_mutex_destroy(&(*self_p)->lock);
    free(*self_p);
    *self_p = NULL;
}

json_t *pushhealth_update(pushhealth_t *self, json_t *body, const char **why)
{
    const char *name = json_string_value(json_object_get(body, "agent_name"));
    const char *status = json_string_value(json_object_get(body, "status"));
    json_t *details = json_object_get(body, "details");
    json_t *location = json_object_get(body, "location");
    if (!name || !*name || !status) {
        *why = "agent_name and status are required strings";
        return NULL;
    }
    if ((details && !json_is_object(details)) || (location && !json_is_string(location))) {
        *why = "details must be an object and location a string";
        return NULL;
    }
    double now = clock_wall();
    char ts[40];
    clock_iso_utc(now, ts, sizeof ts);
    json_t *rec = json_pack("{s:s, s:s, s:s, s:o, s:s, s:f}", "agent_name", name, "status", status,
                            "last_seen", ts, "details", details ? json_incref(details) : json_object(),
                            "location", location ? json_string_value(location) : "Unknown",
                            "seen", now);
    pthread_mutex_lock(&self->lock);
    json_object_set(self->agents, name, rec);
    persist(self, name, rec);
    pthread_mutex_unlock(&self->lock);
    json_decref(rec);
    return json_pack("{s:s, s:s++}", "status", "success", "message", "Updated health for ", name, "");
}

static bool is_stale(pushhealth_t *self, json_t *rec, double now)
{
    return now - json_number_value(json_object_get(rec, "seen")) > self->stale_s;
}

void pushhealth_sweep(pushhealth_t *self)
{
    double now = clock_wall();
    pthread_mutex_lock(&self->lock);
    const char *name;
    json_t *rec;
    json_object_foreach(self->agents, name, rec) {
        if (!is_stale(self, rec, now) || !strcmp(json_string_value(json_object_get(rec, "status")), "unknown"))
            continue;
        json_object_set_new(rec, "status", json_string("unknown"));
        json_object_set_new(rec, "details", json_pack("{s:s}", "reason", "stale"));
        persist(self, name, rec);
    }
    pthread_mutex_unlock(&self->lock);
}

json_t *pushhealth_summary(pushhealth_t *self)
{
    double now = clock_wall();
    json_t *counts = json_pack("{s:i, s:i, s:i, s:i}", "healthy", 0, "warning", 0, "critical", 0,
                               "unknown", 0);
    json_t *by_location = json_pack("{s:[], s:[], s:[]}", "MainPC", "PC2", "Unknown");
    json_t *stale = json_array();
    pthread_mutex_lock(&self->lock);
    const char *name;
    json_t *rec;
    size_t total = 0;
    json_object_foreach(self->agents, name, rec) {
        total++;
        const char *status = json_string_value(json_object_get(rec, "status"));
        json_t *count = json_object_get(counts, status);
        if (count)
            json_object_set_new(counts, status, json_integer(json_integer_value(count) + 1));
        if (is_stale(self, rec, now)) {
            json_array_append_new(stale, json_string(name));
            json_object_set_new(counts, "unknown",
                                json_integer(json_integer_value(json_object_get(counts, "unknown")) + 1));
        }
        json_t *bucket = json_object_get(by_location, json_string_value(json_object_get(rec, "location")));
        if (!bucket)
            bucket = json_object_get(by_location, "Unknown");
        json_array_append_new(bucket, json_pack("{s:s, s:O, s:O}", "name", name, "status",
                                                json_object_get(rec, "status"), "last_seen",
                                                json_object_get(rec, "last_seen")));
    }
    pthread_mutex_unlock(&self->lock);
    const char *overall = json_integer_value(json_object_get(counts, "critical")) ? "critical"
                          : json_integer_value(json_object_get(counts, "warning")) ? "warning"
                          : json_integer_value(json_object_get(counts, "unknown")) ? "degraded"
                          : "healthy";
    char ts[40];
    clock_iso_utc(now, ts, sizeof ts);
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:i, s:s}", "status", "success",
                     "overall_status", overall, "agent_counts", counts,
                     "agents_by_location", by_location, "stale_agents", stale,
                     "total_agents", (json_int_t)total, "timestamp", ts);
}
