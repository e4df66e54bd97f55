/*  alerting: see alerting.h.
 *
 *  The metric rings are keyed by name in a jansson object holding the
 *  index of the ring, so a new metric (a GPU appearing) needs no code.
 *  The history ring of the original (maxlen 1000) is a jansson array
 *  trimmed from the front; the database keeps the same 1000 newest rows
 *  and is read back at start.  Active alerts are rebuilt from the
 *  history: an alert whose last transition was "firing" is still active. */
#include "alerting.h"
#include "actor.h"
#include "clock.h"
#include "gpu.h"
#include "log.h"
#include "names.h"
#include "predictor.h"
#include "ring.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HISTORY_MAX 1000
#define METRIC_HISTORY 10000
#define ANOMALIES_MAX 100
#define MAX_METRICS 64

typedef struct {
    char *name, *source;
    ring_t *ring;
    anomaly_t detector;
    json_t *tags;
} series_t;

struct alerting_t {
    config_t *config;
    hubdb_t *db;
    hostsampler_t *sampler;
    errpub_t *errors;
    gpu_t *gpu;
    actor_t *collector;         /* a ticker every collection interval */
    pthread_mutex_t lock;
    series_t series[MAX_METRICS];
    size_t nseries;
    json_t *rules;          /* rule_id -> rule */
    json_t *pending;        /* key -> unix time the condition started holding */
    json_t *active;         /* key -> alert */
    json_t *history;        /* array, oldest first */
    json_t *anomalies;      /* array, oldest first */
    double collection_time;
};

bool alerting_condition(const char *condition, double value, double threshold)
{
    if (!strcmp(condition, "gt"))
        return value > threshold;
    if (!strcmp(condition, "lt"))
        return value < threshold;
    if (!strcmp(condition, "eq"))
        return value == threshold;
    if (!strcmp(condition, "ne"))
        return value != threshold;
    return false;
}

static void put_rule(alerting_t *self, json_t *rule, bool persist)
{
    const char *id = json_string_value(json_object_get(rule, "rule_id"));
    json_object_set(self->rules, id, rule);
    if (!persist)
        return;
    char *text = json_dumps(rule, JSON_COMPACT);
    hubdb_lock(self->db);
    sqlite3_stmt *st = store_prepare(self->db->store,
                                     "INSERT OR REPLACE INTO alert_rules(rule_id, rule) VALUES (?, ?)");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    hubdb_unlock(self->db);
    free(text);
}

static void default_rules(alerting_t *self)
{
    static const struct { const char *id, *metric; double threshold; const char *severity; } defs[] = {
        { "cpu_high", "cpu_percent", 90, "critical" },
        { "memory_high", "memory_percent", 85, "warning" },
        { "disk_full", "disk_percent", 95, "critical" },
    };
    for (size_t i = 0; i < 3; i++) {
        json_t *rule = json_pack("{s:s, s:s, s:s, s:f, s:b, s:s, s:f}", "rule_id", defs[i].id,
                                 "metric_name", defs[i].metric, "condition", "gt",
                                 "threshold", defs[i].threshold, "enabled", 1,
                                 "severity", defs[i].severity, "for_s", 0.0);
        put_rule(self, rule, false);
        json_decref(rule);
    }
}

static void load(alerting_t *self)
{
    hubdb_lock(self->db);
    sqlite3_stmt *st = store_prepare(self->db->store, "SELECT rule FROM alert_rules");
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        json_t *rule = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        if (json_is_string(json_object_get(rule, "rule_id")))
            json_object_set(self->rules, json_string_value(json_object_get(rule, "rule_id")), rule);
        json_decref(rule);
    }
    if (st)
        sqlite3_reset(st);
    st = store_prepare(self->db->store, "SELECT state, alert FROM (SELECT * FROM alert_history"
                                        " ORDER BY id DESC LIMIT 1000) ORDER BY id");
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        json_t *alert = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
        if (!alert)
            continue;
        const char *state = (const char *)sqlite3_column_text(st, 0);
        char key[2 * NAMES_BUF];
        snprintf(key, sizeof key, "%s_%s", json_string_value(json_object_get(alert, "rule_id")),
                 json_string_value(json_object_get(alert, "metric_name")));
        if (!strcmp(state, "firing") || !strcmp(state, "acknowledged"))
            json_object_set(self->active, key, alert);
        else
            json_object_del(self->active, key);
        json_array_append_new(self->history, alert);
    }
    if (st)
        sqlite3_reset(st);
    hubdb_unlock(self->db);
}

static void collect(void *arg)
{
    alerting_collect(arg);
}

alerting_t *alerting_new(config_t *config, hubdb_t *db, hostsampler_t *sampler, errpub_t *errors)
{
    alerting_t *self = calloc(1, sizeof *self);
    self->config = config;
    self->db = db;
    self->sampler = sampler;
    self->errors = errors;
    self->gpu = gpu_new();
    pthread_mutex_init(&self->lock, NULL);
    long ms = config_int(config, "observability.metrics.collection_interval_ms",
                         config_int(config, "observability.metrics.collection_interval_s", 5) * 1000);
    self->collector = actor_new("obs alerting", (ms > 10 ? ms : 10) / 1000.0, collect, self);
    self->rules = json_object();
    self->pending = json_object();
    self->active = json_object();
    self->history = json_array();
    self->anomalies = json_array();
    default_rules(self);
    load(self);
    return self;
}

void alerting_destroy(alerting_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    alerting_t *self = *self_p;
    actor_destroy(&self->collector);
    for (size_t i = 0; i < self->nseries; i++) {
        free(self->series[i].name);
        free(self->series[i].source);
        ring_destroy(&self->series[i].ring);
        json_decref(self->series[i].tags);
    }
    gpu_destroy(&self->gpu);
    json_decref(self->rules);
    json_decref(self->pending);
    json_decref(self->active);
    json_decref(self->history);
    json_decref(self->anomalies);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

static series_t *series_for(alerting_t *self, const char *name, const char *source, json_t *tags)
{
    for (size_t i = 0; i < self->nseries; i++)
        if (!strcmp(self->series[i].name, name)) {
            json_decref(tags);
            return &self->series[i];
        }
    if (self->nseries >= MAX_METRICS) {
        json_decref(tags);
        return NULL;
    }
    series_t *s = &self->series[self->nseries++];
    s->name = strdup(name);
    s->source = strdup(source);
    s->ring = ring_new(METRIC_HISTORY);
    s->tags = tags ? tags : json_object();
    anomaly_init(&s->detector);
    return s;
}

/* Appends a transition to the history (memory and database); caller locks. */
static void record(alerting_t *self, json_t *alert, const char *state)
{
    json_t *entry = json_deep_copy(alert);
    json_object_set_new(entry, "state", json_string(state));
    json_array_append(self->history, entry);
    while (json_array_size(self->history) > HISTORY_MAX)
        json_array_remove(self->history, 0);
    char *text = json_dumps(entry, JSON_COMPACT);
    hubdb_lock(self->db);
    sqlite3_stmt *st = store_prepare(self->db->store,
                                     "INSERT INTO alert_history(ts, state, alert) VALUES (?, ?, ?)");
    if (st) {
        sqlite3_bind_double(st, 1, clock_wall());
        sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, text, -1, SQLITE_TRANSIENT);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    hubdb_unlock(self->db);
    free(text);
    json_decref(entry);
}

/* Caller locks. */
static void evaluate(alerting_t *self, const char *metric, double value, const char *source)
{
    const char *id;
    json_t *rule;
    double now = clock_wall();
    json_object_foreach(self->rules, id, rule) {
        if (!json_is_true(json_object_get(rule, "enabled"))
            || strcmp(json_string_value(json_object_get(rule, "metric_name")), metric))
            continue;
        char key[2 * NAMES_BUF];
        snprintf(key, sizeof key, "%s_%s", id, metric);
        double threshold = json_number_value(json_object_get(rule, "threshold"));
        bool holds = alerting_condition(json_string_value(json_object_get(rule, "condition")), value,
                                      threshold);
        if (!holds) {
            json_object_del(self->pending, key);
            json_t *active = json_object_get(self->active, key);
            if (active) {
                record(self, active, "resolved");
                json_object_del(self->active, key);
            }
            continue;
        }
        if (!json_object_get(self->pending, key))
            json_object_set_new(self->pending, key, json_real(now));
        double since = json_real_value(json_object_get(self->pending, key));
        if (json_object_get(self->active, key)
            || now - since < json_number_value(json_object_get(rule, "for_s")))
            continue;
        char ts[40];
        clock_iso_utc(now, ts, sizeof ts);
        json_t *alert = json_pack("{s:s, s:s, s:f, s:f, s:O, s:s, s:s}", "rule_id", id,
                                  "metric_name", metric, "metric_value", value, "threshold", threshold,
                                  "severity", json_object_get(rule, "severity"), "timestamp", ts,
                                  "source", source);
        json_object_set(self->active, key, alert);
        record(self, alert, "firing");
        errpub_report(self->errors, "alert_fired", "WARNING", alert, "%s: %s = %g (threshold %g)",
                      id, metric, value, threshold);
        json_decref(alert);
    }
}

void alerting_feed(alerting_t *self, const char *metric, double value, const char *source)
{
    pthread_mutex_lock(&self->lock);
    series_t *s = series_for(self, metric, source, NULL);
    if (s) {
        double now = clock_wall(), z;
        ring_push(s->ring, now, value);
        if (anomaly_check(&s->detector, value, &z)) {
            char ts[40];
            clock_iso_utc(now, ts, sizeof ts);
            json_array_append_new(self->anomalies, json_pack("{s:s, s:f, s:f, s:s}", "metric_name",
                                                             metric, "value", value, "z_score", z,
                                                             "timestamp", ts));
            while (json_array_size(self->anomalies) > ANOMALIES_MAX)
                json_array_remove(self->anomalies, 0);
        }
    }
    evaluate(self, metric, value, source);
    pthread_mutex_unlock(&self->lock);
}

static void feed_tagged(alerting_t *self, const char *metric, double value, const char *source,
                        json_t *tags)
{
    pthread_mutex_lock(&self->lock);
    series_for(self, metric, source, tags);
    pthread_mutex_unlock(&self->lock);
    alerting_feed(self, metric, value, source);
}

void alerting_collect(alerting_t *self)
{
    sysstat_sample_t s;
    if (hostsampler_latest(self->sampler, &s, NULL, 0)) {
        static const char *names[] = { "cpu_percent", "memory_percent", "memory_available_gb",
                                       "disk_percent" };
        double values[] = { s.cpu_percent, s.mem_percent,
                            (double)s.mem_available_bytes / (1024.0 * 1024.0 * 1024.0), s.disk_percent };
        for (size_t i = 0; i < 4; i++)
            feed_tagged(self, names[i], values[i], "system", json_pack("{s:s}", "type", "system"));
    }
    for (int i = 0; i < gpu_count(self->gpu); i++) {
        gpu_device_t d;
        if (gpu_device(self->gpu, i, &d) < 0)
            continue;
        char name[64], id[16];
        snprintf(id, sizeof id, "%d", i);
        if (d.util_gpu_percent >= 0) {
            snprintf(name, sizeof name, i ? "gpu%d_utilization_percent" : "gpu_utilization_percent", i);
            feed_tagged(self, name, d.util_gpu_percent, "gpu",
                        json_pack("{s:s, s:s}", "gpu_id", id, "type", "gpu"));
        }
        snprintf(name, sizeof name, i ? "gpu%d_memory_percent" : "gpu_memory_percent", i);
        feed_tagged(self, name, d.mem_percent, "gpu", json_pack("{s:s, s:s}", "gpu_id", id, "type", "gpu"));
    }
    pthread_mutex_lock(&self->lock);
    self->collection_time = clock_wall();
    pthread_mutex_unlock(&self->lock);
}

int alerting_start(alerting_t *self)
{
    return actor_start(self->collector);
}

json_t *alerting_add_rule(alerting_t *self, json_t *body, const char **why)
{
    static const char *const required[] = { "rule_id", "metric_name", "condition", "threshold" };
    for (size_t i = 0; i < 4; i++)
        if (!json_object_get(body, required[i])) {
            *why = required[i];
            return NULL;
        }
    const char *id = json_string_value(json_object_get(body, "rule_id"));
    const char *metric = json_string_value(json_object_get(body, "metric_name"));
    const char *cond = json_string_value(json_object_get(body, "condition"));
    json_t *threshold = json_object_get(body, "threshold");
    json_t *enabled = json_object_get(body, "enabled");
    json_t *severity = json_object_get(body, "severity");
    json_t *for_s = json_object_get(body, "for_s");
    if (!id || !*id || !metric || !cond || !json_is_number(threshold)
        || (strcmp(cond, "gt") && strcmp(cond, "lt") && strcmp(cond, "eq") && strcmp(cond, "ne"))
        || (enabled && !json_is_boolean(enabled)) || (severity && !json_is_string(severity))
        || (for_s && !json_is_number(for_s))) {
        *why = "invalid rule: rule_id, metric_name and condition (gt|lt|eq|ne) are strings,"
               " threshold a number";
        return NULL;
    }
    /* A negative hold would fire at once; past a week it would never fire. */
    if (for_s && !(json_number_value(for_s) >= 0 && json_number_value(for_s) <= 7 * 86400)) {
        *why = "invalid rule: for_s must be from 0 to 604800 seconds";
        return NULL;
    }
    json_t *rule = json_pack("{s:s, s:s, s:s, s:f, s:b, s:s, s:f}", "rule_id", id, "metric_name", metric,
                             "condition", cond, "threshold", json_number_value(threshold),
                             "enabled", enabled ? json_is_true(enabled) : 1,
                             "severity", severity ? json_string_value(severity) : "warning",
                             "for_s", for_s ? json_number_value(for_s) : 0.0);
    pthread_mutex_lock(&self->lock);
    put_rule(self, rule, true);
    pthread_mutex_unlock(&self->lock);
    json_decref(rule);
    return json_pack("{s:s, s:s}", "status", "success", "rule_id", id);
}

json_t *alerting_acknowledge(alerting_t *self, json_t *body, const char **why)
{
    const char *id = json_string_value(json_object_get(body, "rule_id"));
    const char *metric = json_string_value(json_object_get(body, "metric_name"));
    if (!id || !metric) {
        *why = "rule_id and metric_name are required strings";
        return NULL;
    }
    char key[2 * NAMES_BUF];
    snprintf(key, sizeof key, "%s_%s", id, metric);
    pthread_mutex_lock(&self->lock);
    json_t *alert = json_object_get(self->active, key);
    if (alert && !json_is_true(json_object_get(alert, "acknowledged"))) {
        json_object_set_new(alert, "acknowledged", json_true());
        record(self, alert, "acknowledged");
    }
    pthread_mutex_unlock(&self->lock);
    if (!alert) {
        *why = "no such active alert";
        return NULL;
    }
    return json_pack("{s:s, s:s}", "status", "success", "alert", key);
}

json_t *alerting_view(alerting_t *self)
{
    pthread_mutex_lock(&self->lock);
    json_t *active = json_array(), *history = json_array();
    const char *key;
    json_t *alert;
    json_object_foreach(self->active, key, alert)
        json_array_append(active, alert);
    size_t n = json_array_size(self->history);
    for (size_t i = n > 50 ? n - 50 : 0; i < n; i++)
        json_array_append(history, json_array_get(self->history, i));
    pthread_mutex_unlock(&self->lock);
    return json_pack("{s:o, s:o}", "active_alerts", active, "alert_history", history);
}

json_t *alerting_rules(alerting_t *self)
{
    pthread_mutex_lock(&self->lock);
    json_t *copy = json_deep_copy(self->rules);
    pthread_mutex_unlock(&self->lock);
    return copy;
}

json_t *alerting_anomalies(alerting_t *self)
{
    pthread_mutex_lock(&self->lock);
    json_t *copy = json_deep_copy(self->anomalies);
    pthread_mutex_unlock(&self->lock);
    return json_pack("{s:o}", "anomalies", copy);
}

json_t *alerting_metrics_json(alerting_t *self)
{
    json_t *metrics = json_object();
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < self->nseries; i++) {
        ring_point_t p;
        if (ring_last(self->series[i].ring, &p) < 0)
            continue;
        char ts[40];
        clock_iso_utc(p.t, ts, sizeof ts);
        json_object_set_new(metrics, self->series[i].name,
                            json_pack("{s:f, s:s, s:s, s:O}", "value", p.value, "timestamp", ts,
                                      "source", self->series[i].source, "tags", self->series[i].tags));
    }
    char ts[40];
    clock_iso_utc(self->collection_time ? self->collection_time : clock_wall(), ts, sizeof ts);
    pthread_mutex_unlock(&self->lock);
    return json_pack("{s:s, s:o, s:s}", "status", "success", "metrics", metrics, "collection_time", ts);
}

/* The collected series as Prometheus families in base units: one family
 * per quantity, the GPU's index as a label (the series name carries it). */
static const struct { const char *series, *family; double scale; } exported[] = {
    { "cpu_percent", "keel_host_cpu_usage_ratio", 0.01 },
    { "memory_percent", "keel_host_memory_usage_ratio", 0.01 },
    { "memory_available_gb", "keel_host_memory_available_bytes", 1024.0 * 1024.0 * 1024.0 },
    { "disk_percent", "keel_host_disk_usage_ratio", 0.01 },
    { "utilization_percent", "keel_gpu_utilization_ratio", 0.01 },
    { "memory_percent", "keel_gpu_memory_usage_ratio", 0.01 },
};

void alerting_export(alerting_t *self, metrics_t *metrics)
{
    char labels[128];
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < self->nseries; i++) {
        ring_point_t p;
        if (ring_last(self->series[i].ring, &p) < 0)
            continue;
        const char *name = self->series[i].name;
        const char *gpu = json_string_value(json_object_get(self->series[i].tags, "gpu_id"));
        if (gpu) {                      /* "gpu_memory_percent", "gpu1_memory_percent" */
            name = strchr(name, '_') ? strchr(name, '_') + 1 : name;
            metrics_labels(labels, sizeof labels, "gpu", gpu, NULL);
        } else {
            labels[0] = '\0';
        }
        for (size_t k = 0; k < sizeof exported / sizeof exported[0]; k++)
            if (!strcmp(name, exported[k].series) && (k >= 4) == (gpu != NULL))
                metrics_set(metrics, exported[k].family, labels, p.value * exported[k].scale);
    }
    metrics_set(metrics, "keel_alerts_active", "", (double)json_object_size(self->active));
    metrics_set(metrics, "keel_anomalies_recent", "", (double)json_array_size(self->anomalies));
    pthread_mutex_unlock(&self->lock);
}
