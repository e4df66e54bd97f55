/*  perfmon: see perfmon.h.
 *
 *  The service table is bounded (observability.max_services) because each
 *  service costs three rings of 1000 points; past the bound a new service
 *  is refused with an error instead of growing the hub without limit.
 *  Throughput keeps the original's odd definition: the number of samples
 *  retained (the values are ignored) divided by the seconds since the last
 *  full calculation, so only a count per service is needed.  On start the
 *  newest 1000 samples of every series and the counters are read back. */
#include "perfmon.h"
#include "clock.h"
#include "log.h"
#include "ring.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    ring_t *response, *queue;
    size_t throughput;          /* entries retained, at most PERF_HISTORY */
    long long errors, requests;
} perf_service_t;

struct perfmon_t {
    pthread_mutex_t lock;
    hubdb_t *db;
    hostsampler_t *sampler;
    perf_thresholds_t limits;
    perf_service_t **services;
    size_t count, max;
    ring_t *cpu, *memory;
    double last_metrics_time;   /* monotonic */
};

static perf_service_t *find(perfmon_t *self, const char *name, bool create)
{
    for (size_t i = 0; i < self->count; i++)
        if (!strcmp(self->services[i]->name, name))
            return self->services[i];
    if (!create || self->count >= self->max)
        return NULL;
    perf_service_t *s = calloc(1, sizeof *s);
    s->name = strdup(name);
    s->response = ring_new(PERF_HISTORY);
    s->queue = ring_new(PERF_HISTORY);
    self->services = realloc(self->services, (self->count + 1) * sizeof *self->services);
    self->services[self->count++] = s;
    return s;
}

static void apply(perf_service_t *s, const char *type, double value, double t)
{
    if (!strcmp(type, "response_time"))
        ring_push(s->response, t, value);
    else if (!strcmp(type, "queue_size"))
        ring_push(s->queue, t, value);
    else if (!strcmp(type, "throughput"))
        s->throughput += s->throughput < PERF_HISTORY;
    else if (!strcmp(type, "error"))
        s->errors++;
    else if (!strcmp(type, "request"))
        s->requests++;
}

static void load(perfmon_t *self)
{
    hubdb_lock(self->db);
    sqlite3_stmt *st = store_prepare(self->db->store,
        "SELECT service, metric_type, value, ts FROM (SELECT *, ROW_NUMBER() OVER"
        " (PARTITION BY service, metric_type ORDER BY id DESC) AS rn FROM perf_samples)"
        " WHERE rn <= 1000 ORDER BY id");
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        perf_service_t *s = find(self, (const char *)sqlite3_column_text(st, 0), true);
        if (s)
            apply(s, (const char *)sqlite3_column_text(st, 1), sqlite3_column_double(st, 2),
                  sqlite3_column_double(st, 3));
    }
    if (st)
        sqlite3_reset(st);
    st = store_prepare(self->db->store, "SELECT service, errors, requests FROM perf_counters");
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        perf_service_t *s = find(self, (const char *)sqlite3_column_text(st, 0), true);
        if (s) {
            s->errors = sqlite3_column_int64(st, 1);
            s->requests = sqlite3_column_int64(st, 2);
        }
    }
    if (st)
        sqlite3_reset(st);
    hubdb_unlock(self->db);
}

perfmon_t *perfmon_new(config_t *config, hubdb_t *db, hostsampler_t *sampler)
{
    perfmon_t *self = calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    self->db = db;
    self->sampler = sampler;
    self->max = (size_t)config_int(config, "observability.max_services", 500);
    perfmon_configure(self, config);
    self->cpu = ring_new(PERF_HISTORY);
    self->memory = ring_new(PERF_HISTORY);
    self->last_metrics_time = clock_mono();
    load(self);
    return self;
}

void perfmon_configure(perfmon_t *self, config_t *config)
{
    perf_thresholds_t limits = {
        config_double(config, "observability.thresholds.cpu_percent", 80),
        config_double(config, "observability.thresholds.memory_percent", 85),
        config_double(config, "observability.thresholds.response_time", 2.0),
        config_double(config, "observability.thresholds.error_rate", 0.05),
        config_double(config, "observability.thresholds.queue_size", 100),
    };
    pthread_mutex_lock(&self->lock);
    self->limits = limits;
    pthread_mutex_unlock(&self->lock);
}

void perfmon_destroy(perfmon_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    perfmon_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++) {
        ring_destroy(&self->services[i]->response);
        ring_destroy(&self->services[i]->queue);
        free(self->services[i]->name);
        free(self->services[i]);
    }
    free(self->services);
    ring_destroy(&self->cpu);
    ring_destroy(&self->memory);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

static int persist(perfmon_t *self, const char *service, const char *type, double value, double t)
{
    bool counter = !strcmp(type, "error") || !strcmp(type, "request");
    bool sample = !strcmp(type, "response_time") || !strcmp(type, "queue_size")
                  || !strcmp(type, "throughput");
    if (!counter && !sample)
        return 0;
    hubdb_lock(self->db);
    sqlite3_stmt *st;
    if (counter)
        st = store_prepare(self->db->store, !strcmp(type, "error")
            ? "INSERT INTO perf_counters(service, errors) VALUES (?1, 1)"
              " ON CONFLICT(service) DO UPDATE SET errors = errors + 1"
            : "INSERT INTO perf_counters(service, requests) VALUES (?1, 1)"
              " ON CONFLICT(service) DO UPDATE SET requests = requests + 1");
    else
        st = store_prepare(self->db->store,
            "INSERT INTO perf_samples(service, metric_type, value, ts) VALUES (?1, ?2, ?3, ?4)");
    int rc = -1;
    if (st) {
        sqlite3_bind_text(st, 1, service, -1, SQLITE_TRANSIENT);
        if (sample) {
            sqlite3_bind_text(st, 2, type, -1, SQLITE_TRANSIENT);
            sqlite3_bind_double(st, 3, value);
            sqlite3_bind_double(st, 4, t);
        }
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
        sqlite3_reset(st);
    }
    hubdb_unlock(self->db);
    return rc;
}

int perfmon_log(perfmon_t *self, const char *service, const char *type, double value)
{
    double t = clock_wall();
    pthread_mutex_lock(&self->lock);
    perf_service_t *s = find(self, service, true);
    pthread_mutex_unlock(&self->lock);
    if (!s) {
        log_warn("observability", "performance table full (%zu services): %s refused",
                 self->max, service);
        return -1;
    }
    if (persist(self, service, type, value, t) < 0)
        return -1;
    pthread_mutex_lock(&self->lock);
    apply(s, type, value, t);
    pthread_mutex_unlock(&self->lock);
    return 0;
}

static double mean_of(ring_t *r, size_t window)
{
    ring_stats_t st;
    return ring_stats(r, window, &st) == 0 ? st.mean : 0.0;
}

/* Caller holds the lock.  time_diff <= 0 gives a throughput of 0. */
static json_t *service_dict(perf_service_t *s, double time_diff)
{
    double tp = time_diff > 0 ? (double)s->throughput / time_diff : 0.0;
    long long requests = s->requests > 1 ? s->requests : 1;
    return json_pack("{s:{s:f, s:f}, s:f, s:f, s:f}",
                     "response_time", "current", mean_of(s->response, 10),
                     "average", mean_of(s->response, 0),
                     "error_rate", (double)s->errors / (double)requests,
                     "throughput", tp, "queue_size", mean_of(s->queue, 10));
}

/* get_stats(): the latest sample, appended to the histories (caller locks). */
static json_t *stats(perfmon_t *self)
{
    sysstat_sample_t s;
    hostsampler_latest(self->sampler, &s, NULL, 0);
    double now = clock_wall();
    ring_push(self->cpu, now, s.cpu_percent);
    ring_push(self->memory, now, s.mem_percent);
    return json_pack("{s:f, s:f, s:f}", "cpu_percent", s.cpu_percent,
                     "memory_percent", s.mem_percent, "timestamp", now);
}

json_t *perfmon_metrics(perfmon_t *self)
{
    char ts[40];
    clock_iso_local(clock_wall(), ts, sizeof ts);
    pthread_mutex_lock(&self->lock);
    double now = clock_mono();
    double time_diff = now - self->last_metrics_time;
    json_t *services = json_object();
    for (size_t i = 0; i < self->count; i++)
        json_object_set_new(services, self->services[i]->name,
                            service_dict(self->services[i], time_diff));
    json_t *resources = stats(self);
    json_t *dict = json_pack("{s:s, s:o, s:{s:f, s:f}, s:o}", "timestamp", ts,
                             "resources", resources, "averages",
                             "cpu_avg", mean_of(self->cpu, 0), "memory_avg", mean_of(self->memory, 0),
                             "services", services);
    self->last_metrics_time = now;
    pthread_mutex_unlock(&self->lock);
    return dict;
}

json_t *perfmon_service_metrics(perfmon_t *self, const char *service)
{
    pthread_mutex_lock(&self->lock);
    perf_service_t *s = find(self, service, false);
    json_t *dict;
    if (s) {
        dict = service_dict(s, clock_mono() - self->last_metrics_time);
    } else {
        dict = json_pack("{s:{s:f, s:f}, s:f, s:f, s:f}", "response_time", "current", 0.0,
                         "average", 0.0, "error_rate", 0.0, "throughput", 0.0, "queue_size", 0.0);
    }
    pthread_mutex_unlock(&self->lock);
    return dict;
}

bool perfmon_resources_ok(const perf_thresholds_t *t, double cpu, double memory)
{
    return cpu <= t->cpu_percent && memory <= t->memory_percent;
}

static perf_thresholds_t limits_of(perfmon_t *self)
{
    pthread_mutex_lock(&self->lock);
    perf_thresholds_t limits = self->limits;
    pthread_mutex_unlock(&self->lock);
    return limits;
}

json_t *perfmon_health(perfmon_t *self, double uptime)
{
    perf_thresholds_t lim = limits_of(self);
    json_t *metrics = perfmon_metrics(self);
    char ts[40];
    clock_iso_local(clock_wall(), ts, sizeof ts);
    pthread_mutex_lock(&self->lock);
    json_t *res = stats(self);
    pthread_mutex_unlock(&self->lock);
    bool res_ok = perfmon_resources_ok(&lim,
                                       json_number_value(json_object_get(res, "cpu_percent")),
                                       json_number_value(json_object_get(res, "memory_percent")));
    bool all_ok = res_ok;
    json_t *services = json_object();
    const char *name;
    json_t *m;
    json_object_foreach(json_object_get(metrics, "services"), name, m) {
        json_t *alerts = json_array();
        if (json_number_value(json_object_get(json_object_get(m, "response_time"), "current"))
            > lim.response_time)
            json_array_append_new(alerts, json_string("High response time"));
        if (json_number_value(json_object_get(m, "error_rate")) > lim.error_rate)
            json_array_append_new(alerts, json_string("High error rate"));
        if (json_number_value(json_object_get(m, "queue_size")) > lim.queue_size)
            json_array_append_new(alerts, json_string("Large queue size"));
        bool ok = json_array_size(alerts) == 0;
        all_ok = all_ok && ok;
        json_object_set_new(services, name, json_pack("{s:s, s:o}", "status", ok ? "ok" : "degraded",
                                                      "alerts", alerts));
    }
    json_decref(metrics);
    return json_pack("{s:s, s:s, s:{s:s, s:o}, s:o, s:s, s:f}", "timestamp", ts,
                     "status", all_ok ? "ok" : "degraded",
                     "resources", "status", res_ok ? "ok" : "degraded", "stats", res,
                     "services", services, "service", "PerformanceMonitor", "uptime", uptime);
}

json_t *perfmon_alerts(perfmon_t *self)
{
    perf_thresholds_t lim = limits_of(self);
    json_t *metrics = perfmon_metrics(self);
    json_t *alerts = json_array();
    pthread_mutex_lock(&self->lock);
    json_t *res = stats(self);
    pthread_mutex_unlock(&self->lock);
    if (!perfmon_resources_ok(&lim, json_number_value(json_object_get(res, "cpu_percent")),
                              json_number_value(json_object_get(res, "memory_percent"))))
        json_array_append_new(alerts, json_pack("{s:s, s:s, s:s, s:O}", "type", "resource",
                                                "level", "warning", "message",
                                                "High resource usage detected", "details", res));
    json_decref(res);
    const char *name;
    json_t *m;
    json_object_foreach(json_object_get(metrics, "services"), name, m) {
        json_t *rt = json_object_get(m, "response_time");
        if (json_number_value(json_object_get(rt, "current")) > lim.response_time)
            json_array_append_new(alerts, json_pack("{s:s, s:s, s:s, s:s, s:O}", "type", "service",
                                                    "service", name, "level", "warning",
                                                    "message", "High response time", "details", rt));
        json_t *er = json_object_get(m, "error_rate");
        if (json_number_value(er) > lim.error_rate)
            json_array_append_new(alerts, json_pack("{s:s, s:s, s:s, s:s, s:{s:O}}", "type", "service",
                                                    "service", name, "level", "error",
                                                    "message", "High error rate", "details",
                                                    "error_rate", er));
    }
    json_decref(metrics);
    return alerts;
}

void perfmon_export(perfmon_t *self, metrics_t *metrics)
{
    char labels[256];
    pthread_mutex_lock(&self->lock);
    double time_diff = clock_mono() - self->last_metrics_time;
    for (size_t i = 0; i < self->count; i++) {
        perf_service_t *s = self->services[i];
        json_t *d = service_dict(s, time_diff);
        metrics_labels(labels, sizeof labels, "agent", s->name, NULL);
        json_t *rt = json_object_get(d, "response_time");
        metrics_set(metrics, "keel_perf_response_time_seconds", labels,
                    json_number_value(json_object_get(rt, "current")));
        metrics_set(metrics, "keel_perf_response_time_average_seconds", labels,
                    json_number_value(json_object_get(rt, "average")));
        metrics_set(metrics, "keel_perf_error_ratio", labels,
                    json_number_value(json_object_get(d, "error_rate")));
        metrics_set(metrics, "keel_perf_queue_size", labels,
                    json_number_value(json_object_get(d, "queue_size")));
        metrics_set(metrics, "keel_perf_errors_total", labels, (double)s->errors);
        metrics_set(metrics, "keel_perf_requests_total", labels, (double)s->requests);
        json_decref(d);
    }
    pthread_mutex_unlock(&self->lock);
}

void perfmon_trim(perfmon_t *self)
{
    hubdb_lock(self->db);
    store_exec(self->db->store,
        "DELETE FROM perf_samples WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER"
        " (PARTITION BY service, metric_type ORDER BY id DESC) AS rn FROM perf_samples)"
        " WHERE rn > 1000)");
    hubdb_unlock(self->db);
}
