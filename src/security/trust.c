/*  trust: see trust.h.  Timestamps are written as the original's sqlite3
 *  adapter wrote datetime.now(): local "YYYY-MM-DD HH:MM:SS.ffffff". */
#include "trust.h"
#include "pycompat.h"
#include "clock.h"
#include "log.h"
#include "names.h"
#include "store.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HISTORY_DEFAULT 10
#define HISTORY_MAX 1000

struct trust_t {
    store_t *db;
    pthread_mutex_t lock;
    monitor_t *monitor;
};

static const char *const migrations[] = {
    "CREATE TABLE IF NOT EXISTS model_scores(model_id TEXT PRIMARY KEY, trust_score REAL DEFAULT 0.5,"
    "  total_interactions INTEGER DEFAULT 0, successful_interactions INTEGER DEFAULT 0,"
    "  last_updated TIMESTAMP);"
    "CREATE TABLE IF NOT EXISTS performance_logs(id INTEGER PRIMARY KEY AUTOINCREMENT, model_id TEXT,"
    "  success BOOLEAN, response_time REAL, error_message TEXT, timestamp TIMESTAMP,"
    "  FOREIGN KEY(model_id) REFERENCES model_scores(model_id));"
    "CREATE INDEX IF NOT EXISTS performance_logs_model ON performance_logs(model_id, id);",
    NULL,
};

double trust_formula(long successes, long total, double response_time)
{
    double base = (double)successes / (double)total;
    double time_factor = fmax(0.0, 1.0 - response_time / 5.0);
    return base * 0.7 + time_factor * 0.3;
}

double trust_score(long successes, long total, double response_time)
{
    double score = trust_formula(successes, total, response_time);
    return score < 0.0 ? 0.0 : score > 1.0 ? 1.0 : score;
}

trust_t *trust_new(const char *db_path, monitor_t *monitor, char *err, size_t errlen)
{
    store_t *db = store_new(db_path, migrations, err, errlen);
    if (!db)
        return NULL;
    store_set_durable(db, true);
    trust_t *self = calloc(1, sizeof *self);
    self->db = db;
    self->monitor = monitor;
    pthread_mutex_init(&self->lock, NULL);
    return self;
}

void trust_destroy(trust_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    trust_t *self = *self_p;
    store_destroy(&self->db);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

static void sql_timestamp(char *buf, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf, len, "%.19s.%06d", date, (int)(ts.tv_nsec / 1000) % 1000000);
}

/* The original's KeyError text for a missing field: the key in quotes. */
static json_t *key_error(const char *key)
{
    return wire_error_key("message", "'%s'", key);
}

/* model_id as a string, or NULL with *reply set. */
static const char *model_of(trust_t *self, json_t *body, json_t **reply)
{
    json_t *id = json_object_get(body, "model_id");
    if (!id) {
        *reply = key_error("model_id");
        return NULL;
    }
    if (json_is_string(id) && json_string_length(id) > NAMES_MAX)
        monitor_name_too_long(self->monitor);
    if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) > NAMES_MAX) {
        *reply = wire_error_key("message", "model_id must be a non-empty string of at most %d bytes", NAMES_MAX);
        return NULL;
    }
    return json_string_value(id);
}

/* Python truthiness, except that the strings "false", "0" and "no" are false
 * (the original counted "false" as a success). */
static bool truthy(json_t *v)
{
    const char *s = json_string_value(v);
    if (s && (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no")))
        return false;
    return pycompat_truthy(v);
}

/* Reads (score, total, successes); returns 1 when the row exists. */
static int read_row(trust_t *self, const char *model, double *score, long *total, long *succ)
{
    sqlite3_stmt *st = store_prepare(self->db, "SELECT trust_score, total_interactions,"
                                               " successful_interactions FROM model_scores WHERE model_id=?");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, model, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? 0 : -1;
    *score = sqlite3_column_double(st, 0);
    *total = sqlite3_column_int64(st, 1);
    *succ = sqlite3_column_int64(st, 2);
    sqlite3_reset(st);
    return 1;
}

static int write_rows(trust_t *self, const char *model, double score, long total, long succ,
                      bool success, double rt, const char *error_message)
{
    char ts[40];
    sql_timestamp(ts, sizeof ts);
    sqlite3_stmt *st = store_prepare(self->db, "INSERT OR REPLACE INTO model_scores(model_id, trust_score,"
                                               " total_interactions, successful_interactions, last_updated)"
                                               " VALUES(?,?,?,?,?)");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, model, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 2, score);
    sqlite3_bind_int64(st, 3, total);
    sqlite3_bind_int64(st, 4, succ);
    sqlite3_bind_text(st, 5, ts, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE)
        return -1;
    st = store_prepare(self->db, "INSERT INTO performance_logs(model_id, success, response_time,"
                                 " error_message, timestamp) VALUES(?,?,?,?,?)");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, model, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, success);
    sqlite3_bind_double(st, 3, rt);
    if (error_message)
        sqlite3_bind_text(st, 4, error_message, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, 4);
    sqlite3_bind_text(st, 5, ts, -1, SQLITE_TRANSIENT);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

/* Updates the counters and returns the new score, or NAN on a database error. */
static double record(trust_t *self, const char *model, bool success, double rt, const char *error_message,
                     double *before)
{
    double old = 0.5, score = NAN;
    long total = 0, succ = 0;
    pthread_mutex_lock(&self->lock);
    if (store_begin(self->db) == 0) {
        int found = read_row(self, model, &old, &total, &succ);
        total = found == 1 ? total + 1 : 1;
        succ = (found == 1 ? succ : 0) + (success ? 1 : 0);
        double fresh = trust_score(succ, total, rt);
        if (found >= 0 && write_rows(self, model, fresh, total, succ, success, rt, error_message) == 0
            && store_commit(self->db) == 0)
            score = fresh;
        else
            store_rollback(self->db);
    }
    pthread_mutex_unlock(&self->lock);
    *before = old;
    return score;
}

static json_t *on_log_performance(void *ctx, wire_request_t *req)
{
    trust_t *self = ctx;
    json_t *reply = NULL;
    const char *model = model_of(self, req->body, &reply);
    if (!model)
        return reply;
    json_t *success = json_object_get(req->body, "success");
    if (!success)
        return key_error("success");
    json_t *rt_value = json_object_get(req->body, "response_time");
    if (rt_value && !json_is_null(rt_value) && !json_is_number(rt_value))
        return wire_error_key("message", "response_time must be a number");
    double rt = json_is_number(rt_value) ? json_number_value(rt_value) : 0.0;
    if (!isfinite(rt))
        return wire_error_key("message", "response_time must be a finite number");
    const char *error_message = json_string_value(json_object_get(req->body, "error_message"));
    double before;
    double score = record(self, model, truthy(success), rt, error_message, &before);
    if (isnan(score)) {
        monitor_error(self->monitor, "PROCESSING_ERROR", "cannot store a performance record");
        return wire_error_key("message", "cannot store the performance record");
    }
    monitor_trust(self->monitor, model, before, score);
    return json_pack("{s:s, s:f}", "status", "success", "new_trust_score", score);
}

static json_t *on_get_trust_score(void *ctx, wire_request_t *req)
{
    trust_t *self = ctx;
    json_t *reply = NULL;
    const char *model = model_of(self, req->body, &reply);
    if (!model)
        return reply;
    double score = 0.5;
    long total, succ;
    pthread_mutex_lock(&self->lock);
    int found = read_row(self, model, &score, &total, &succ);
    pthread_mutex_unlock(&self->lock);
    if (found < 0)
        return wire_error_key("message", "cannot read the trust score");
    return json_pack("{s:s, s:f}", "status", "success", "trust_score", found ? score : 0.5);
}

static long history_limit(json_t *body)
{
    json_t *limit = json_object_get(body, "limit");
    if (!json_is_integer(limit))
        return HISTORY_DEFAULT;
    long n = (long)json_integer_value(limit);
    return n < 0 || n > HISTORY_MAX ? HISTORY_MAX : n;
}

static json_t *on_get_history(void *ctx, wire_request_t *req)
{
    trust_t *self = ctx;
    json_t *reply = NULL;
    const char *model = model_of(self, req->body, &reply);
    if (!model)
        return reply;
    json_t *history = json_array();
    pthread_mutex_lock(&self->lock);
    sqlite3_stmt *st = store_prepare(self->db, "SELECT success, response_time, timestamp FROM performance_logs"
                                               " WHERE model_id=? ORDER BY id DESC LIMIT ?");
    if (st) {
        sqlite3_bind_text(st, 1, model, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, history_limit(req->body));
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *ts = (const char *)sqlite3_column_text(st, 2);
            json_array_append_new(history, json_pack("{s:b, s:f, s:s}", "success", sqlite3_column_int(st, 0),
                                                     "response_time", sqlite3_column_double(st, 1),
                                                     "timestamp", ts ? ts : ""));
        }
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&self->lock);
    return json_pack("{s:s, s:o}", "status", "success", "history", history);
}

/* LearningAdjusterAgent's request, which the original never implemented:
 * every model's score (the `agent` field names the caller, not a filter). */
static json_t *on_get_agent_scores(void *ctx, wire_request_t *req)
{
    (void)req;
    trust_t *self = ctx;
    json_t *scores = json_object();
    pthread_mutex_lock(&self->lock);
    sqlite3_stmt *st = store_prepare(self->db, "SELECT model_id, trust_score FROM model_scores"
                                               " ORDER BY last_updated DESC LIMIT 1000");
    if (st) {
        while (sqlite3_step(st) == SQLITE_ROW)
            json_object_set_new(scores, (const char *)sqlite3_column_text(st, 0),
                                json_real(sqlite3_column_double(st, 1)));
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&self->lock);
    return json_pack("{s:s, s:o}", "status", "success", "scores", scores);
}

#define ATS "AgentTrustScorer"

static const wire_route_t routes[] = {
    /* no kept agent sends it (model_evaluation_framework.py's is log_performance_metric, to itself);
     * whoever may call it decides a model's trust score */
    { WIRE_ACTION, "log_performance", on_log_performance, ATS, ROUTE_ADMIN },
    { WIRE_ACTION, "get_trust_score", on_get_trust_score, ATS, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_performance_history", on_get_history, ATS, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_agent_scores", on_get_agent_scores, ATS, ROUTE_PUBLIC },
    { 0 },
};

void trust_attach(trust_t *self, wire_server_t *wire)
{
    wire_server_attach(wire, routes, self);
}
