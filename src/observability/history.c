/*  history: see history.h.
 *
 *  Rings rather than rows aged out by a DELETE: a slot is (time / width)
 *  modulo the ring's size, written with INSERT OR REPLACE, so the size of
 *  the table is fixed by the number of series, a write never scans, and a
 *  hub that was down for a week finds its old points simply outside every
 *  range it is asked for.  The coarser points are summed in memory while
 *  their bucket is open, because recomputing a minute from the table
 *  would scan every series' points under the database lock the wire
 *  workers share; a restart loses the open buckets' share of the points
 *  already written at the finer resolution, nothing else.
 *
 *  Lock order: the history lock, then the hub's database lock. */
#include "history.h"
#include "clock.h"
#include "log.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIERS 3
#define STALE_S (25 * 3600.0)
#define CLEANUP_S 3600.0

typedef struct {
    double width;               /* seconds a point covers */
    long slots;                 /* points the ring keeps */
} tier_t;

typedef struct {
    char *name;
    bool by_max;                /* a percentile: rolled up by its maximum */
    double last_t;              /* the newest point's time */
    /* the open bucket of each coarser tier (index 0 unused) */
    double bucket[TIERS], sum[TIERS], max[TIERS];
    long n[TIERS];
} series_t;

struct history_t {
    config_t *config;
    hubdb_t *db;
    fleet_t *fleet;
    keelstats_t *stats;
    metrics_t *metrics;
    tier_t tier[TIERS];
    pthread_mutex_t lock;
    series_t *series;
    size_t count;
    json_t *index;              /* name -> position in series */
    double next_cleanup;        /* unix seconds */
    pthread_cond_t wake;
    pthread_t thread;
    bool running;
};

static const char *UPSERT =
    "INSERT OR REPLACE INTO history(tier, series, slot, t, value)"
    " SELECT ?1, id, ?2, ?3, ?4 FROM history_series WHERE name = ?5";

history_t *history_new(config_t *config, hubdb_t *db, fleet_t *fleet, keelstats_t *stats,
                       metrics_t *metrics)
{
    history_t *self = calloc(1, sizeof *self);
    self->config = config;
    self->db = db;
    self->fleet = fleet;
    self->stats = stats;
    self->metrics = metrics;
    double step = config_double(config, "observability.history.step_s", 10);
    if (step < 0.5)
        step = 0.5;
    if (step > 60)
        step = 60;
    self->tier[0] = (tier_t){ step, (long)ceil(16 * 60 / step) };
    self->tier[1] = (tier_t){ 60, 64 };
    self->tier[2] = (tier_t){ 900, 100 };
    self->index = json_object();
    pthread_mutex_init(&self->lock, NULL);
    clock_cond_init(&self->wake);
    if (metrics) {
        metrics_declare(metrics, "keel_history_step_seconds",
                        "Time the last history step took (sweep figures, five /metrics, one write).",
                        METRIC_GAUGE, NULL, 0);
        metrics_declare(metrics, "keel_history_series", "Time series the hub stores for the dashboard.",
                        METRIC_GAUGE, NULL, 0);
    }
    return self;
}

static void stop(history_t *self)
{
    pthread_mutex_lock(&self->lock);
    bool was = self->running;
    self->running = false;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    if (was)
        pthread_join(self->thread, NULL);
}

void history_destroy(history_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    history_t *self = *self_p;
    stop(self);
    for (size_t i = 0; i < self->count; i++)
        free(self->series[i].name);
    free(self->series);
    json_decref(self->index);
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* ---- writing ------------------------------------------------------------------ */

static double bucket_of(const tier_t *tier, double t)
{
    return floor(t / tier->width) * tier->width;
}

/* One point into tier k's ring.  Caller holds both locks. */
static void write_point(history_t *self, int k, const char *name, double t, double value)
{
    sqlite3_stmt *st = store_prepare(self->db->store, UPSERT);
    if (!st)
        return;
    sqlite3_bind_int(st, 1, k);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)(t / self->tier[k].width) % self->tier[k].slots);
    sqlite3_bind_double(st, 3, t);
    sqlite3_bind_double(st, 4, value);
    sqlite3_bind_text(st, 5, name, -1, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_reset(st);
}

static series_t *series_for(history_t *self, const char *name)
{
    json_t *at = json_object_get(self->index, name);
    if (at)
        return &self->series[json_integer_value(at)];
    sqlite3_stmt *st = store_prepare(self->db->store, "INSERT OR IGNORE INTO history_series(name) VALUES (?)");
    if (!st)
        return NULL;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_reset(st);
    self->series = realloc(self->series, (self->count + 1) * sizeof *self->series);
    series_t *s = &self->series[self->count];
    memset(s, 0, sizeof *s);
    s->name = strdup(name);
    s->by_max = strstr(name, "/p99") != NULL;
    json_object_set_new(self->index, name, json_integer((json_int_t)self->count++));
    return s;
}

/* Closes the open buckets of every series that are older than the
 * buckets `now` falls in.  Caller holds both locks. */
static void close_buckets(history_t *self, double t)
{
    for (size_t i = 0; i < self->count; i++) {
        series_t *s = &self->series[i];
        for (int k = 1; k < TIERS; k++) {
            if (s->n[k] == 0 || s->bucket[k] >= bucket_of(&self->tier[k], t))
                continue;
            write_point(self, k, s->name, s->bucket[k], s->by_max ? s->max[k] : s->sum[k] / (double)s->n[k]);
            s->n[k] = 0;
        }
    }
}

static void add_point(history_t *self, series_t *s, double t, double value)
{
    write_point(self, 0, s->name, t, value);
    s->last_t = t;
    for (int k = 1; k < TIERS; k++) {
        double b = bucket_of(&self->tier[k], t);
        if (s->n[k] == 0) {
            s->bucket[k] = b;
            s->sum[k] = 0;
            s->max[k] = value;
        }
        s->sum[k] += value;
        s->max[k] = value > s->max[k] ? value : s->max[k];
        s->n[k]++;
    }
}

/* Deletes the series nothing was written to for a day.  Caller holds
 * both locks. */
static void forget_stale(history_t *self, double now)
{
    sqlite3_stmt *st = store_prepare(self->db->store,
        "DELETE FROM history WHERE series IN"
        " (SELECT series FROM history GROUP BY series HAVING max(t) < ?1)");
    if (st) {
        sqlite3_bind_double(st, 1, now - STALE_S);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    store_exec(self->db->store,
               "DELETE FROM history_series WHERE id NOT IN (SELECT DISTINCT series FROM history)");
    size_t kept = 0;
    json_object_clear(self->index);
    for (size_t i = 0; i < self->count; i++) {
        series_t *s = &self->series[i];
        if (s->last_t < now - STALE_S) {
            free(s->name);
            continue;
        }
        self->series[kept] = *s;
        json_object_set_new(self->index, s->name, json_integer((json_int_t)kept++));
    }
    self->count = kept;
}

void history_record(history_t *self, double now, json_t *points)
{
    double t = bucket_of(&self->tier[0], now);
    pthread_mutex_lock(&self->lock);
    hubdb_lock(self->db);
    if (store_begin(self->db->store) == 0) {
        close_buckets(self, t);
        const char *name;
        json_t *value;
        json_object_foreach(points, name, value) {
            series_t *s = json_is_number(value) ? series_for(self, name) : NULL;
            if (s)
                add_point(self, s, t, json_number_value(value));
        }
        if (now >= self->next_cleanup) {
            forget_stale(self, now);
            self->next_cleanup = now + CLEANUP_S;
        }
        if (store_commit(self->db->store) < 0)
            store_rollback(self->db->store);
    }
    hubdb_unlock(self->db);
    if (self->metrics)
        metrics_set(self->metrics, "keel_history_series", "", (double)self->count);
    pthread_mutex_unlock(&self->lock);
}

/* ---- the thread ------------------------------------------------------------------ */

/* The sweeps' figures since the last step, as points. */
static void fleet_points(history_t *self, json_t *points)
{
    json_t *spans = fleet_take_spans(self->fleet);
    const char *agent;
    json_t *span;
    json_object_foreach(spans, agent, span) {
        double probes = json_number_value(json_object_get(span, "probes"));
        double answered = json_number_value(json_object_get(span, "answered"));
        char name[320];
        if (probes > 0) {
            snprintf(name, sizeof name, "agent/%s/error_pct", agent);
            json_object_set_new(points, name, json_real(100.0 * json_number_value(
                json_object_get(span, "failures")) / probes));
        }
        if (answered > 0) {
            snprintf(name, sizeof name, "agent/%s/latency_ms", agent);
            json_object_set_new(points, name, json_real(1000.0 * json_number_value(
                json_object_get(span, "latency_s")) / answered));
        }
    }
    json_decref(spans);
}

static void step(history_t *self)
{
    double started = clock_mono();
    json_t *points = json_object();
    if (self->fleet)
        fleet_points(self, points);
    if (self->stats)
        keelstats_step(self->stats, clock_wall(), points);
    history_record(self, clock_wall(), points);
    json_decref(points);
    if (self->metrics)
        metrics_set(self->metrics, "keel_history_step_seconds", "", clock_mono() - started);
}

/* Steps on the wall clock's multiples of the step, so that every point
 * of a bucket covers the same stretch of time. */
static void *loop(void *arg)
{
    history_t *self = arg;
    pthread_mutex_lock(&self->lock);
    for (;;) {
        double width = self->tier[0].width, now = clock_wall();
        double wait = (floor(now / width) + 1) * width - now + 0.01;
        if (!clock_cond_wait(&self->wake, &self->lock, wait, &self->running))
            break;
        pthread_mutex_unlock(&self->lock);
        step(self);
        pthread_mutex_lock(&self->lock);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

int history_start(history_t *self)
{
    self->running = true;
    if (pthread_create(&self->thread, NULL, loop, self) != 0) {
        self->running = false;
        return -1;
    }
    return 0;
}

/* ---- reading ------------------------------------------------------------------ */

json_t *history_query(history_t *self, const char *const *names, size_t n, double range_s,
                      double now, double *step_s)
{
    int k = 0;
    while (k < TIERS - 1 && self->tier[k].width * (double)self->tier[k].slots < range_s)
        k++;
    *step_s = self->tier[k].width;
    json_t *out = json_object();
    pthread_mutex_lock(&self->lock);
    hubdb_lock(self->db);
    sqlite3_stmt *st = store_prepare(self->db->store,
        "SELECT h.t, h.value FROM history h JOIN history_series s ON s.id = h.series"
        " WHERE s.name = ?1 AND h.tier = ?2 AND h.t > ?3 AND h.t <= ?4 ORDER BY h.t");
    for (size_t i = 0; i < n; i++) {
        json_t *points = json_array();
        json_object_set_new(out, names[i], points);
        if (!st)
            continue;
        sqlite3_bind_text(st, 1, names[i], -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, k);
        sqlite3_bind_double(st, 3, now - range_s);
        sqlite3_bind_double(st, 4, now);
        while (sqlite3_step(st) == SQLITE_ROW)
            json_array_append_new(points, json_pack("[f,f]", sqlite3_column_double(st, 0),
                                                    sqlite3_column_double(st, 1)));
        sqlite3_reset(st);
        json_t *at = json_object_get(self->index, names[i]);
        series_t *s = at ? &self->series[json_integer_value(at)] : NULL;
        if (k > 0 && s && s->n[k] > 0 && s->bucket[k] > now - range_s)
            json_array_append_new(points, json_pack("[f,f]", s->bucket[k],
                s->by_max ? s->max[k] : s->sum[k] / (double)s->n[k]));
    }
    hubdb_unlock(self->db);
    pthread_mutex_unlock(&self->lock);
    return out;
}

long history_rows(history_t *self)
{
    long rows = -1;
    hubdb_lock(self->db);
    sqlite3_stmt *st = store_prepare(self->db->store, "SELECT count(*) FROM history");
    if (st && sqlite3_step(st) == SQLITE_ROW)
        rows = (long)sqlite3_column_int64(st, 0);
    if (st)
        sqlite3_reset(st);
    hubdb_unlock(self->db);
    return rows;
}
