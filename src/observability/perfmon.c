/*  perfmon: see perfmon.h.
 *
 *  The service table is bounded (observability.max_services) because each
 *  service costs three rings of 1000 points.  What tells a real service
 *  from junk is that it comes back: a name logged once is the first to
 *  make room, and a service silent for a day the next, so a stream of new
 *  names churns among themselves and never displaces a service that
 *  reports.  A log holds the table's lock through its write, so a service
 *  evicted by one request is never written or read by another meanwhile.
 *  Throughput keeps the original's odd definition: the number of samples
 *  retained (the values are ignored) divided by the seconds since the last
 *  full calculation, so only a count per service is needed.  On start the
 *  newest 1000 samples of every series and the counters are read back. */
#include "perfmon.h"
#include "clock.h"
#include "log.h"
#include "names.h"
#include "ratelimit.h"
#include "ring.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SILENT_S 86400.0        /* a service this long without a sample may be evicted */
#define LIMITED_SOURCES 1024    /* source addresses the limit on new services remembers */

typedef struct {
    char *name;
    ring_t *response, *queue;
    size_t throughput;          /* entries retained, at most PERF_HISTORY */
    long long errors, requests;
    long long logged;           /* samples of any kind, read back ones included */
    double last_seen;           /* wall time of the newest */
} perf_service_t;

struct perfmon_t {
    pthread_mutex_t lock;
    hubdb_t *db;
    hostsampler_t *sampler;
    perf_thresholds_t limits;
    perf_service_t **services;
    size_t count, max;
    ratelimit_t *new_services;  /* per source address */
    long evicted, refused_rate, refused_full;
    ring_t *cpu, *memory;
    double last_metrics_time;   /* monotonic */
};

static perf_service_t *find(perfmon_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++)
        if (!strcmp(self->services[i]->name, name))
            return self->services[i];
    return NULL;
}

static perf_service_t *add(perfmon_t *self, const char *name)
{
    perf_service_t *s = calloc(1, sizeof *s);
    s->name = strdup(name);
    s->response = ring_new(PERF_HISTORY);
    s->queue = ring_new(PERF_HISTORY);
    self->services = realloc(self->services, (self->count + 1) * sizeof *self->services);
    self->services[self->count++] = s;
    return s;
}

static void service_free(perf_service_t *s)
{
    ring_destroy(&s->response);
    ring_destroy(&s->queue);
    free(s->name);
    free(s);
}

/* Deletes a service's persisted rows, so it is not read back. */
static void forget(perfmon_t *self, const char *name)
{
    static const char *const sql[] = { "DELETE FROM perf_samples WHERE service = ?1",
                                       "DELETE FROM perf_counters WHERE service = ?1" };
    hubdb_lock(self->db);
    for (size_t i = 0; i < 2; i++) {
        sqlite3_stmt *st = store_prepare(self->db->store, sql[i]);
        if (st) {
            sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(st) != SQLITE_DONE)
                log_warn("observability", "cannot delete the rows of evicted service %s", name);
            sqlite3_reset(st);
        }
    }
    hubdb_unlock(self->db);
}

/* The index of the service a new name may replace: one logged once, else
 * one silent for a day, least recently seen first; -1 when none. */
static long victim(perfmon_t *self, double now)
{
    long once = -1, silent = -1;
    for (size_t i = 0; i < self->count; i++) {
        perf_service_t *s = self->services[i];
        if (s->logged <= 1 && (once < 0 || s->last_seen < self->services[once]->last_seen))
            once = (long)i;
        else if (now - s->last_seen > SILENT_S && (silent < 0 || s->last_seen < self->services[silent]->last_seen))
            silent = (long)i;
    }
    return once >= 0 ? once : silent;
}

/* The service of a sample, made room for when it is new.  Caller locks. */
static perf_service_t *admit(perfmon_t *self, const char *name, const char *source, double now,
                             perf_outcome_t *outcome, char *why, size_t len)
{
    perf_service_t *s = find(self, name);
    if (s)
        return s;
    char limit[96];
    if (!ratelimit_take(self->new_services, source, clock_mono())) {
        self->refused_rate++;
        *outcome = PERF_REFUSED_RATE;
        snprintf(why, len, "too many new services from %s: %s per address (observability.new_services); "
                 "try again later", source && *source ? source : "an unknown address",
                 ratelimit_describe(self->new_services, limit, sizeof limit));
        return NULL;
    }
    if (self->count < self->max)
        return add(self, name);
    long v = victim(self, now);
    if (v < 0) {
        self->refused_full++;
        *outcome = PERF_REFUSED_FULL;
        snprintf(why, len, "the performance table is full (observability.max_services = %zu) of services "
                 "that keep reporting", self->max);
        return NULL;
    }
    perf_service_t *gone = self->services[v];
    self->services[v] = self->services[--self->count];
    log_warn("observability", "performance table full (%zu services): %s evicted for %s", self->max,
             gone->name, name);
    forget(self, gone->name);
    service_free(gone);
    self->evicted++;
    return add(self, name);
}

static void apply(perf_service_t *s, const char *type, double value, double t)
{
    s->logged++;
    if (t > s->last_seen)
        s->last_seen = t;
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

typedef struct {
    const char *name;
    long long logged;
    double last_seen;
} stored_t;

/* Most logged first (a service that came back before a name seen once),
 * then the most recently seen. */
static int by_worth(const void *x, const void *y)
{
    const stored_t *a = x, *b = y;
    if ((a->logged > 1) != (b->logged > 1))
        return a->logged > 1 ? -1 : 1;
    return a->last_seen > b->last_seen ? -1 : a->last_seen < b->last_seen;
}

/* {service: [samples, newest ts]} of what the database holds.  Caller
 * holds the database's lock. */
static json_t *stored_services(perfmon_t *self)
{
    json_t *all = json_object();
    sqlite3_stmt *st = store_prepare(self->db->store,
        "SELECT service, COUNT(*), MAX(ts) FROM perf_samples GROUP BY service");
    while (st && sqlite3_step(st) == SQLITE_ROW)
        json_object_set_new(all, (const char *)sqlite3_column_text(st, 0),
                            json_pack("[I, f]", (json_int_t)sqlite3_column_int64(st, 1),
                                      sqlite3_column_double(st, 2)));
    if (st)
        sqlite3_reset(st);
    st = store_prepare(self->db->store, "SELECT service, errors + requests FROM perf_counters");
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        json_t *row = json_object_get(all, name);
        json_int_t n = (json_int_t)sqlite3_column_int64(st, 1);
        if (row)
            json_array_set_new(row, 0, json_integer(json_integer_value(json_array_get(row, 0)) + n));
        else
            json_object_set_new(all, name, json_pack("[I, f]", n, 0.0));
    }
    if (st)
        sqlite3_reset(st);
    return all;
}

/* Reads back the services worth most, up to the bound, and deletes the
 * rest (a bound lowered since, or junk from before this version). */
static void load(perfmon_t *self)
{
    hubdb_lock(self->db);
    json_t *all = stored_services(self);
    size_t n = json_object_size(all), i = 0;
    stored_t *rows = calloc(n + 1, sizeof *rows);
    const char *name;
    json_t *row;
    json_object_foreach(all, name, row)
        rows[i++] = (stored_t){ name, json_integer_value(json_array_get(row, 0)),
                                json_number_value(json_array_get(row, 1)) };
    qsort(rows, n, sizeof *rows, by_worth);
    for (i = 0; i < n && i < self->max; i++)
        add(self, rows[i].name);
    hubdb_unlock(self->db);
    if (n > self->max)
        log_warn("observability", "performance table: %zu services stored, %zu read back "
                 "(observability.max_services); the rest are deleted", n, self->max);
    for (i = self->max; i < n; i++)
        forget(self, rows[i].name);
    free(rows);
    json_decref(all);

    hubdb_lock(self->db);
    sqlite3_stmt *st = store_prepare(self->db->store,
        "SELECT service, metric_type, value, ts FROM (SELECT *, ROW_NUMBER() OVER"
        " (PARTITION BY service, metric_type ORDER BY id DESC) AS rn FROM perf_samples)"
        " WHERE rn <= 1000 ORDER BY id");
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        perf_service_t *s = find(self, (const char *)sqlite3_column_text(st, 0));
        if (s)
            apply(s, (const char *)sqlite3_column_text(st, 1), sqlite3_column_double(st, 2),
                  sqlite3_column_double(st, 3));
    }
    if (st)
        sqlite3_reset(st);
    st = store_prepare(self->db->store, "SELECT service, errors, requests FROM perf_counters");
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        perf_service_t *s = find(self, (const char *)sqlite3_column_text(st, 0));
        if (s) {
            s->errors = sqlite3_column_int64(st, 1);
            s->requests = sqlite3_column_int64(st, 2);
            s->logged += s->errors + s->requests;
        }
    }
    if (st)
        sqlite3_reset(st);
    hubdb_unlock(self->db);
    /* Counters carry no time: such a service counts as seen at start, not
     * as silent since 1970. */
    double now = clock_wall();
    for (size_t i = 0; i < self->count; i++)
        if (self->services[i]->last_seen == 0)
            self->services[i]->last_seen = now;
}

perfmon_t *perfmon_new(config_t *config, hubdb_t *db, hostsampler_t *sampler)
{
    perfmon_t *self = calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    self->db = db;
    self->sampler = sampler;
    self->max = (size_t)config_int(config, "observability.max_services", 500);
    if (self->max < 1)
        self->max = 1;
    self->new_services = ratelimit_new(0, 0, LIMITED_SOURCES);
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
    ratelimit_configure(self->new_services, config_double(config, "observability.new_services.burst", 256),
                        config_double(config, "observability.new_services.per_minute", 60));
}

void perfmon_destroy(perfmon_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    perfmon_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++)
        service_free(self->services[i]);
    free(self->services);
    ratelimit_destroy(&self->new_services);
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

perf_outcome_t perfmon_log(perfmon_t *self, const char *service, const char *type, double value,
                           const char *source, char *why, size_t len)
{
    double t = clock_wall();
    perf_outcome_t outcome = PERF_LOGGED;
    pthread_mutex_lock(&self->lock);
    perf_service_t *s = admit(self, service, source, t, &outcome, why, len);
    if (s && persist(self, service, type, value, t) < 0) {
        outcome = PERF_FAILED;
        snprintf(why, len, "the sample could not be stored");
    } else if (s) {
        apply(s, type, value, t);
    }
    pthread_mutex_unlock(&self->lock);
    return outcome;
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
    perf_service_t *s = find(self, service);
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
    char labels[NAMES_LABELS_BUF];
    pthread_mutex_lock(&self->lock);
    metrics_set(metrics, "keel_perf_agents_evicted_total", "", (double)self->evicted);
    metrics_set(metrics, "keel_perf_agents_refused_total", "reason=\"rate_limited\"", (double)self->refused_rate);
    metrics_set(metrics, "keel_perf_agents_refused_total", "reason=\"table_full\"", (double)self->refused_full);
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
