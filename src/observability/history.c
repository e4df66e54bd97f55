/*  history: see history.h.
 *
 *  One row per step, not one per point: a step's points for every series
 *  are packed into one blob of (series id, value) records sorted by id, so
 *  a step of 1,000 agents is one 24 kB row written where a row per point
 *  would dirty a page per series (about 5 MB of WAL every 10 s); a chart
 *  reads the ninety-odd rows of its range and finds its series in each by
 *  binary search.
 *
 *  Rings rather than rows aged out by a DELETE: a slot is (time / width)
 *  modulo the ring's size, written with INSERT OR REPLACE, so the table
 *  never holds more than 16 + 64 + 100 rows, a write never scans, and a
 *  hub that was down for a week finds its old rows simply outside every
 *  range it is asked for.  The coarser points are summed in memory while
 *  their bucket is open, because recomputing a minute from the finer rows
 *  would read them all under the database lock the wire workers share; a
 *  restart loses the open buckets' share of what was already written at
 *  the finer resolution, nothing else.  Series ids are never reused
 *  (AUTOINCREMENT), so a row older than a forgotten series cannot lend its
 *  values to a new one.
 *
 *  Lock order: the history lock, then the hub's database lock. */
#include "history.h"
#include "actor.h"
#include "clock.h"
#include "log.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIERS 3
#define STALE_S (25 * 3600.0)
#define CLEANUP_S 3600.0
#define RECORD 12               /* uint32 id, double value */

const char *const history_agent_figures[HISTORY_AGENT_FIGURES] = { "latency_ms", "error_pct" };

typedef struct {
    double width;               /* seconds a point covers */
    long slots;                 /* points the ring keeps */
} tier_t;

typedef struct {
    char *name;
    uint32_t id;                /* history_series.id */
    bool by_max;                /* a percentile: rolled up by its maximum */
    double last_t;              /* the newest point's time */
    /* the open bucket of each coarser tier (index 0 unused) */
    double bucket[TIERS], sum[TIERS], max[TIERS];
    long n[TIERS];
} series_t;

typedef struct {
    uint32_t id;
    double value;
} entry_t;

struct history_t {
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
    actor_t *ticker;
};

static void add_series(history_t *self, const char *name, uint32_t id, double last_t)
{
    self->series = realloc(self->series, (self->count + 1) * sizeof *self->series);
    series_t *s = &self->series[self->count];
    memset(s, 0, sizeof *s);
    s->name = strdup(name);
    s->id = id;
    s->by_max = strstr(name, "/p99") != NULL;
    s->last_t = last_t;
    json_object_set_new(self->index, name, json_integer((json_int_t)self->count++));
}

/* The series already stored, so a restarted hub answers for them at once. */
static void load_series(history_t *self)
{
    hubdb_lock(self->db);
    sqlite3_stmt *st = store_prepare(self->db->store, "SELECT id, name, last_t FROM history_series");
    while (st && sqlite3_step(st) == SQLITE_ROW)
        add_series(self, (const char *)sqlite3_column_text(st, 1), (uint32_t)sqlite3_column_int64(st, 0),
                   sqlite3_column_double(st, 2));
    if (st)
        sqlite3_reset(st);
    hubdb_unlock(self->db);
}

static actor_tick_fn tick;

history_t *history_new(config_t *config, hubdb_t *db, fleet_t *fleet, keelstats_t *stats,
                       metrics_t *metrics)
{
    history_t *self = calloc(1, sizeof *self);
    self->db = db;
    self->fleet = fleet;
    self->stats = stats;
    self->metrics = metrics;
    /* At most the next tier's 60 s (the key's range), which it rolls up. */
    double step = config_double(config, "observability.history.step_s", 10);
    self->tier[0] = (tier_t){ step, (long)ceil(16 * 60 / step) };
    self->tier[1] = (tier_t){ 60, 64 };
    self->tier[2] = (tier_t){ 900, 100 };
    self->index = json_object();
    pthread_mutex_init(&self->lock, NULL);
    self->ticker = actor_new("obs history", step, tick, self);
    actor_delay_first(self->ticker);
    load_series(self);
    if (metrics) {
        metrics_declare(metrics, "keel_history_step_seconds",
                        "Time the last history step took (sweep figures, five /metrics, one write).",
                        METRIC_GAUGE, NULL, 0);
        metrics_declare(metrics, "keel_history_series", "Time series the hub stores for the dashboard.",
                        METRIC_GAUGE, NULL, 0);
    }
    return self;
}

void history_destroy(history_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    history_t *self = *self_p;
    actor_destroy(&self->ticker);
    for (size_t i = 0; i < self->count; i++)
        free(self->series[i].name);
    free(self->series);
    json_decref(self->index);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* ---- writing ------------------------------------------------------------------ */

static double bucket_of(const tier_t *tier, double t)
{
    return floor(t / tier->width) * tier->width;
}

static int by_id(const void *a, const void *b)
{
    uint32_t x = ((const entry_t *)a)->id, y = ((const entry_t *)b)->id;
    return x < y ? -1 : x > y;
}

/* One step's points into tier k's ring.  Caller holds both locks. */
static void write_row(history_t *self, int k, double t, entry_t *entries, size_t n)
{
    if (n == 0)
        return;
    qsort(entries, n, sizeof *entries, by_id);
    unsigned char *blob = malloc(n * RECORD);
    for (size_t i = 0; i < n; i++) {
        memcpy(blob + i * RECORD, &entries[i].id, 4);
        memcpy(blob + i * RECORD + 4, &entries[i].value, 8);
    }
    sqlite3_stmt *st = store_prepare(self->db->store,
        "INSERT OR REPLACE INTO history(tier, slot, t, points) VALUES (?, ?, ?, ?)");
    if (st) {
        sqlite3_bind_int(st, 1, k);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)(t / self->tier[k].width) % self->tier[k].slots);
        sqlite3_bind_double(st, 3, t);
        sqlite3_bind_blob(st, 4, blob, (int)(n * RECORD), SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    free(blob);
}

static series_t *series_for(history_t *self, const char *name, double t)
{
    json_t *at = json_object_get(self->index, name);
    if (at)
        return &self->series[json_integer_value(at)];
    sqlite3_stmt *st = store_prepare(self->db->store,
                                     "INSERT INTO history_series(name, last_t) VALUES (?, ?)");
    if (!st)
        return NULL;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, t);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return NULL;
    add_series(self, name, (uint32_t)sqlite3_last_insert_rowid(store_db(self->db->store)), t);
    return &self->series[self->count - 1];
}

/* Writes the open buckets of the coarser tiers that `t` has left behind:
 * every series' bucket of a tier closes at the same boundary, so each
 * closing bucket is one row.  Caller holds both locks. */
static void close_buckets(history_t *self, double t, entry_t *entries)
{
    for (int k = 1; k < TIERS; k++) {
        double current = bucket_of(&self->tier[k], t);
        for (;;) {
            double closing = -1;
            for (size_t i = 0; i < self->count; i++) {
                series_t *s = &self->series[i];
                if (s->n[k] > 0 && s->bucket[k] < current && s->bucket[k] > closing)
                    closing = s->bucket[k];
            }
            if (closing < 0)
                break;
            size_t n = 0;
            for (size_t i = 0; i < self->count; i++) {
                series_t *s = &self->series[i];
                if (s->n[k] == 0 || s->bucket[k] != closing)
                    continue;
                entries[n++] = (entry_t){ s->id, s->by_max ? s->max[k] : s->sum[k] / (double)s->n[k] };
                s->n[k] = 0;
            }
            write_row(self, k, closing, entries, n);
        }
    }
}

static void accumulate(history_t *self, series_t *s, double t, double value)
{
    s->last_t = t;
    for (int k = 1; k < TIERS; k++) {
        if (s->n[k] == 0) {
            s->bucket[k] = bucket_of(&self->tier[k], t);
            s->sum[k] = 0;
            s->max[k] = value;
        }
        s->sum[k] += value;
        s->max[k] = value > s->max[k] ? value : s->max[k];
        s->n[k]++;
    }
}

/* Saves every series' last time, and deletes those nothing was written to
 * for a day.  Caller holds both locks. */
static void forget_stale(history_t *self, double now)
{
    sqlite3_stmt *st = store_prepare(self->db->store, "UPDATE history_series SET last_t = ? WHERE id = ?");
    for (size_t i = 0; st && i < self->count; i++) {
        sqlite3_bind_double(st, 1, self->series[i].last_t);
        sqlite3_bind_int64(st, 2, self->series[i].id);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    st = store_prepare(self->db->store, "DELETE FROM history_series WHERE last_t < ?");
    if (st) {
        sqlite3_bind_double(st, 1, now - STALE_S);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
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
        entry_t *entries = malloc((self->count + json_object_size(points) + 1) * sizeof *entries);
        close_buckets(self, t, entries);
        size_t n = 0;
        const char *name;
        json_t *value;
        json_object_foreach(points, name, value) {
            series_t *s = json_is_number(value) ? series_for(self, name, t) : NULL;
            if (!s)
                continue;
            entries[n++] = (entry_t){ s->id, json_number_value(value) };
            accumulate(self, s, t, json_number_value(value));
        }
        write_row(self, 0, t, entries, n);
        free(entries);
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

/* ---- the ticker ------------------------------------------------------------------ */

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
            snprintf(name, sizeof name, "agent/%s/%s", agent, history_agent_figures[HISTORY_FAILURES]);
            json_object_set_new(points, name, json_real(100.0 * json_number_value(
                json_object_get(span, "failures")) / probes));
        }
        if (answered > 0) {
            snprintf(name, sizeof name, "agent/%s/%s", agent, history_agent_figures[HISTORY_LATENCY]);
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
        keelstats_step(self->stats, clock_wall(), points, actor_stop_fd(self->ticker));
    history_record(self, clock_wall(), points);
    json_decref(points);
    if (self->metrics)
        metrics_set(self->metrics, "keel_history_step_seconds", "", clock_mono() - started);
}

/* Steps on the wall clock's multiples of the step, so that every point
 * of a bucket covers the same stretch of time: the seconds to the next. */
static double until_next_step(history_t *self)
{
    double width = self->tier[0].width, now = clock_wall();
    return (floor(now / width) + 1) * width - now + 0.01;
}

static void tick(void *arg)
{
    history_t *self = arg;
    step(self);
    actor_set_interval(self->ticker, until_next_step(self));
}

int history_start(history_t *self)
{
    actor_set_interval(self->ticker, until_next_step(self));
    return actor_start(self->ticker);
}

/* ---- reading ------------------------------------------------------------------ */

/* The value of series `id` in one row's records; false when absent. */
static bool find_value(const unsigned char *blob, size_t n, uint32_t id, double *value)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint32_t at;
        memcpy(&at, blob + mid * RECORD, 4);
        if (at == id) {
            memcpy(value, blob + mid * RECORD + 4, 8);
            return true;
        }
        if (at < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

json_t *history_query(history_t *self, const char *const *names, size_t n, double range_s,
                      double now, double *step_s)
{
    int k = 0;
    while (k < TIERS - 1 && self->tier[k].width * (double)self->tier[k].slots < range_s)
        k++;
    *step_s = self->tier[k].width;
    json_t *out = json_object();
    series_t **wanted = calloc(n ? n : 1, sizeof *wanted);
    json_t **arrays = calloc(n ? n : 1, sizeof *arrays);
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < n; i++) {
        arrays[i] = json_array();
        json_object_set_new(out, names[i], arrays[i]);
        json_t *at = json_object_get(self->index, names[i]);
        wanted[i] = at ? &self->series[json_integer_value(at)] : NULL;
    }
    hubdb_lock(self->db);
    sqlite3_stmt *st = store_prepare(self->db->store,
        "SELECT t, points FROM history WHERE tier = ?1 AND t > ?2 AND t <= ?3 ORDER BY t");
    if (st) {
        sqlite3_bind_int(st, 1, k);
        sqlite3_bind_double(st, 2, now - range_s);
        sqlite3_bind_double(st, 3, now);
        while (sqlite3_step(st) == SQLITE_ROW) {
            double t = sqlite3_column_double(st, 0), value;
            const unsigned char *blob = sqlite3_column_blob(st, 1);
            size_t records = (size_t)sqlite3_column_bytes(st, 1) / RECORD;
            for (size_t i = 0; i < n; i++)
                if (wanted[i] && find_value(blob, records, wanted[i]->id, &value))
                    json_array_append_new(arrays[i], json_pack("[f,f]", t, value));
        }
        sqlite3_reset(st);
    }
    hubdb_unlock(self->db);
    for (size_t i = 0; i < n; i++) {
        series_t *s = wanted[i];
        if (k > 0 && s && s->n[k] > 0 && s->bucket[k] > now - range_s)
            json_array_append_new(arrays[i], json_pack("[f,f]", s->bucket[k],
                s->by_max ? s->max[k] : s->sum[k] / (double)s->n[k]));
    }
    pthread_mutex_unlock(&self->lock);
    free(wanted);
    free(arrays);
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
