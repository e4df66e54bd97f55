/*  evstore: see evstore.h.
 *
 *  Durability bound.  An event is safe from kill -9 once its batch has
 *  committed: WAL with synchronous=NORMAL puts the committed frames in the
 *  OS page cache, which outlives the process.  The writer wakes as soon as
 *  the queue goes from empty to non-empty and otherwise at least every
 *  50 ms, so what a kill -9 can take is what was queued or in the batch
 *  being written at that instant: the events of the last ~50 ms plus one
 *  batch's write time.  On a clean stop the queue is written out in full.
 *
 *  Grouping and the per-agent health rows are folded per batch (one upsert
 *  per fingerprint and per agent, not per event), which is what keeps a
 *  batch of many events cheap.  error_id is unique: a replayed event (NATS
 *  redelivery, a repeated legacy id) is counted as a duplicate and neither
 *  stored nor fanned out twice.
 *
 *  The queue is bounded.  When it is full a producer waits for the writer
 *  as long as the writer makes progress, so a burst backs up into the
 *  ingress socket's buffers (and from there to the publishers' send
 *  queues) instead of being dropped; only a writer that has written
 *  nothing for STALL_S (a broken disk) makes the queue drop, and every
 *  drop is counted in /metrics and get_statistics, never silent. */
#include "evstore.h"
#include "actor.h"
#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "rates.h"
#include "store.h"

#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLUSH_S 0.05
#define BATCH_MAX 16384         /* events per transaction: steady progress, bounded latency */
#define INSERT_ROWS 32          /* events per INSERT statement */
#define CHECKPOINT_S 0.5
/* The writer's longest pass: a retention pass deleting a backlog. */
#define WRITER_WATCH_S 60
#define PAGE_SIZE 16384         /* of a database this creates; see evstore_new */
#define WAL_RESTART_BYTES (16 << 20)    /* past this much WAL, a pass starts it over */
#define STALL_S 2.0             /* a writer silent this long with a full queue is stuck */
#define QUARANTINE_SAMPLE 4096

static const char *const migrations[] = {
    "CREATE TABLE IF NOT EXISTS errors(id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp REAL,"
    " agent TEXT, error_type TEXT, message TEXT, severity TEXT, context TEXT,"
    " error_id TEXT, level TEXT, fingerprint TEXT, grouping_version INTEGER, framing TEXT,"
    " received REAL, raw TEXT);"
    "CREATE UNIQUE INDEX IF NOT EXISTS errors_error_id ON errors(error_id);"
    "CREATE INDEX IF NOT EXISTS errors_timestamp ON errors(timestamp);"
    "CREATE INDEX IF NOT EXISTS errors_agent ON errors(agent, timestamp);"
    "CREATE TABLE IF NOT EXISTS agent_health(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " agent TEXT UNIQUE, status TEXT, last_heartbeat REAL, error_count INTEGER);"
    /* EMS read its errors from error_log; one table under two names keeps
     * both views of the same events without writing each one twice. */
    "CREATE VIEW IF NOT EXISTS error_log AS SELECT error_id, agent AS source, error_type,"
    " message, severity, timestamp, context AS details FROM errors;"
    "CREATE TABLE IF NOT EXISTS recovery_actions(action_id TEXT PRIMARY KEY, agent_name TEXT,"
    " action_type TEXT, reason TEXT, timestamp REAL, success INTEGER, details TEXT);"
    "CREATE TABLE IF NOT EXISTS error_groups(fingerprint TEXT PRIMARY KEY, signature TEXT,"
    " grouping_version INTEGER, agent TEXT, error_type TEXT, pattern TEXT, sample TEXT,"
    " level TEXT, count INTEGER, first_seen REAL, last_seen REAL);"
    "CREATE INDEX IF NOT EXISTS error_groups_signature ON error_groups(signature);"
    "CREATE TABLE IF NOT EXISTS correlations(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " error_id_a TEXT, error_id_b TEXT, source_a TEXT, source_b TEXT, delta_s REAL,"
    " detected_at REAL, UNIQUE(error_id_a, error_id_b));"
    "CREATE TABLE IF NOT EXISTS quarantine(id INTEGER PRIMARY KEY AUTOINCREMENT, received REAL,"
    " framing TEXT, reason TEXT, size INTEGER, sample TEXT);"
    "CREATE TABLE IF NOT EXISTS alerts(id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp REAL,"
    " kind TEXT, subject TEXT, severity TEXT, count INTEGER, message TEXT);"
    "CREATE TABLE IF NOT EXISTS log_offsets(path TEXT PRIMARY KEY, position INTEGER,"
    " inode INTEGER);",
    NULL,
};

#define INSERT_EVENT "INSERT OR IGNORE INTO errors(timestamp, agent, error_type, message," \
    " severity, context, error_id, level, fingerprint, grouping_version, framing, received, raw)" \
    " VALUES"
#define EVENT_ROW "(?,?,?,?,?,?,?,?,?,?,?,?,?)"
#define EVENT_COLUMNS 13

/* INSERT_EVENT with INSERT_ROWS rows of values; the caller frees it. */
static char *insert_many_sql(void)
{
    size_t row = strlen(EVENT_ROW) + 1;
    char *sql = malloc(sizeof INSERT_EVENT + INSERT_ROWS * row), *o = sql;
    o += sprintf(o, "%s", INSERT_EVENT);
    for (int r = 0; r < INSERT_ROWS; r++)
        o += sprintf(o, "%s" EVENT_ROW, r ? "," : "");
    return sql;
}

typedef struct {
    event_t *event;             /* or a quarantine record: */
    double received;
    char *framing, *reason, *sample;
    size_t size;
} item_t;

typedef struct {
    item_t *items;
    size_t n, cap;
} batch_t;

struct evstore_t {
    char *path;
    store_t *writer, *reader;
    char *insert_many;          /* the INSERT of INSERT_ROWS events */
    pthread_mutex_t read_lock;
    metrics_t *metrics;
    evstore_sink_fn *sink;
    void *sink_ctx;

    actor_t *queue_writer;      /* a runner, woken when the queue stops being empty */
    actor_t *checkpointer;      /* a ticker on its own connection: */
    sqlite3 *checkpoint_db;

    pthread_mutex_t lock;
    pthread_cond_t done, space;
    double progress;            /* clock_mono() of the writer's last batch */
    batch_t pending;
    /* sequence numbers of submitted items, for evstore_submit_wait */
    unsigned long submitted, done_upto, failed_from, failed_to;
    char failed_why[200];       /* SQLite's words for the failed batch */
    size_t writing;             /* taken by the writer, not yet written */
    size_t queue_max;           /* bounds pending + writing */

    double retention_days, retention_interval, next_retention;
    rates_t *rates[3];          /* by agent, type, level */
    int wal_restart_frames;     /* WAL_RESTART_BYTES in this database's pages */
    evstore_stats_t stats;      /* under lock */
};

/* ---- setup ------------------------------------------------------------ */

static void declare_metrics(metrics_t *m)
{
    metrics_declare(m, "keel_errorbus_stored_total", "Events committed to the database.",
                    METRIC_COUNTER, NULL, 0);
    metrics_declare(m, "keel_errorbus_events_total",
                    "Events committed to the database, by level (the dashboard's rate by level).",
                    METRIC_COUNTER, NULL, 0);
    metrics_declare(m, "keel_errorbus_dropped_total",
                    "Events lost, by reason (queue_full, write_failed).", METRIC_COUNTER, NULL, 0);
    metrics_declare(m, "keel_errorbus_duplicates_total",
                    "Events whose error_id was already stored.", METRIC_COUNTER, NULL, 0);
    metrics_declare(m, "keel_errorbus_quarantined_total",
                    "Ingress messages kept in quarantine, by reason.", METRIC_COUNTER, NULL, 0);
    metrics_declare(m, "keel_errorbus_queue_depth", "Events waiting for the writer.",
                    METRIC_GAUGE, NULL, 0);
    static const double sizes[] = { 1, 10, 100, 1000, 10000, 100000 };
    metrics_declare(m, "keel_errorbus_batch_size", "Events per write transaction.",
                    METRIC_HISTOGRAM, sizes, sizeof sizes / sizeof sizes[0]);
    metrics_declare(m, "keel_errorbus_batch_duration_seconds", "Time to write one batch.",
                    METRIC_HISTOGRAM, NULL, 0);
}

static void collect(metrics_t *m, void *arg)
{
    evstore_t *self = arg;
    pthread_mutex_lock(&self->lock);
    double depth = (double)self->pending.n;
    pthread_mutex_unlock(&self->lock);
    metrics_set(m, "keel_errorbus_queue_depth", "", depth);
}

static actor_run_fn write_queue;
static actor_interrupt_fn wake_producers;
static actor_tick_fn checkpoint;

evstore_t *evstore_new(const char *path, metrics_t *metrics, liveness_t *liveness, size_t queue_max,
                       char *err, size_t errlen)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    if (fs_mkdirs(dirname(dir)) < 0) {
        snprintf(err, errlen, "cannot create the directory of %s", path);
        return NULL;
    }
    evstore_t *self = calloc(1, sizeof *self);
    self->path = strdup(path);
    self->insert_many = insert_many_sql();
    self->metrics = metrics;
    self->queue_max = queue_max ? queue_max : 1;
    self->retention_days = 30;
    self->retention_interval = 3600;
    pthread_mutex_init(&self->lock, NULL);
    pthread_mutex_init(&self->read_lock, NULL);
    clock_cond_init(&self->done);
    clock_cond_init(&self->space);
    self->queue_writer = actor_new_runner("errorbus writer", write_queue, wake_producers, self);
    actor_watch(self->queue_writer, liveness, WRITER_WATCH_S);
    self->checkpointer = actor_new("errorbus checkpointer", CHECKPOINT_S, checkpoint, self);
    actor_delay_first(self->checkpointer);
    self->rates[RATES_AGENT] = rates_new(1, 300, 5000);
    self->rates[RATES_TYPE] = rates_new(60, 60, 5000);
    self->rates[RATES_LEVEL] = rates_new(60, 60, 16);
    /* 16 KiB pages: a row is some 600 bytes, so the WAL takes a frame (two
     * writes) per 25 events instead of per 6, a fifth of the writer's CPU
     * time.  A database made with smaller pages keeps them. */
    self->writer = store_new_paged(path, migrations, PAGE_SIZE, err, errlen);
    if (self->writer)
        self->reader = store_new(path, migrations, err, errlen);
    if (!self->reader) {
        evstore_destroy(&self);
        return NULL;
    }
    /* SQLite's default page cache (2 MiB), not a big one: the writer only
     * appends (error ids are UUIDv7, timestamps rise) plus one leaf per
     * agent in errors_agent, and the pages it fills are never its again, so
     * a 64 MiB cache just kept them, growing keeld by ~2 MiB a minute at 100
     * events/s until full (tests/soak).  The OS page cache has them anyway. */
    store_exec(self->writer, "PRAGMA wal_autocheckpoint=0;");
    self->stats.total = (long)evstore_scalar(self, 0, "SELECT count(*) FROM errors", "");
    self->wal_restart_frames = WAL_RESTART_BYTES
                             / (int)evstore_scalar(self, PAGE_SIZE, "PRAGMA page_size", "");
    if (metrics) {
        declare_metrics(metrics);
        metrics_add_collector(metrics, collect, self);
    }
    return self;
}

static void item_free(item_t *item)
{
    event_destroy(&item->event);
    free(item->framing);
    free(item->reason);
    free(item->sample);
}

void evstore_destroy(evstore_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    evstore_t *self = *self_p;
    evstore_stop(self);
    actor_destroy(&self->queue_writer);
    actor_destroy(&self->checkpointer);
    for (size_t i = 0; i < self->pending.n; i++)
        item_free(&self->pending.items[i]);
    free(self->pending.items);
    store_destroy(&self->writer);
    store_destroy(&self->reader);
    for (int i = 0; i < 3; i++)
        rates_destroy(&self->rates[i]);
    pthread_mutex_destroy(&self->lock);
    pthread_mutex_destroy(&self->read_lock);
    pthread_cond_destroy(&self->done);
    pthread_cond_destroy(&self->space);
    free(self->path);
    free(self->insert_many);
    free(self);
    *self_p = NULL;
}

void evstore_set_sink(evstore_t *self, evstore_sink_fn *fn, void *ctx)
{
    self->sink = fn;
    self->sink_ctx = ctx;
}

void evstore_set_retention(evstore_t *self, double days, double interval_s)
{
    self->retention_days = days;
    self->retention_interval = interval_s > 0 ? interval_s : 3600;
    self->next_retention = 0;
}

const char *evstore_path(evstore_t *self)
{
    return self->path;
}

/* ---- producers -------------------------------------------------------- */

/* Appends an item; its sequence number goes to *seq.  The lock is held
 * by the caller. */
static int enqueue_locked(evstore_t *self, item_t *item, unsigned long *seq)
{
    /* Full: wait for the writer while it makes progress, so a burst is
     * absorbed by the socket buffers behind us instead of being dropped;
     * drop (and count) only when the writer is not running or has
     * written nothing for STALL_S. */
    while (self->pending.n + self->writing >= self->queue_max) {
        if (!actor_running(self->queue_writer) || clock_mono() - self->progress > STALL_S) {
            self->stats.dropped++;
            return -1;
        }
        struct timespec until;
        clock_deadline(0.1, &until);
        pthread_cond_timedwait(&self->space, &self->lock, &until);
    }
    if (self->pending.n == self->pending.cap) {
        size_t cap = self->pending.cap ? self->pending.cap * 2 : 1024;
        item_t *grown = realloc(self->pending.items, cap * sizeof *grown);
        if (!grown) {
            self->stats.dropped++;
            return -1;
        }
        self->pending.items = grown;
        self->pending.cap = cap;
    }
    self->pending.items[self->pending.n++] = *item;
    *seq = ++self->submitted;
    if (self->pending.n == 1)
        actor_wake(self->queue_writer);
    return 0;
}

static int enqueue(evstore_t *self, item_t *item)
{
    unsigned long seq;
    pthread_mutex_lock(&self->lock);
    int rc = enqueue_locked(self, item, &seq);
    pthread_mutex_unlock(&self->lock);
    return rc;
}

int evstore_submit_wait(evstore_t *self, event_t *event, int timeout_ms, char *why, size_t whylen)
{
    item_t item = { .event = event };
    unsigned long seq;
    struct timespec until;
    clock_deadline(timeout_ms / 1000.0, &until);
    pthread_mutex_lock(&self->lock);
    if (enqueue_locked(self, &item, &seq) < 0) {
        pthread_mutex_unlock(&self->lock);
        if (self->metrics)
            metrics_add(self->metrics, "keel_errorbus_dropped_total", "reason=\"queue_full\"", 1);
        event_destroy(&event);
        snprintf(why, whylen, "the write queue is full");
        return -1;
    }
    int rc = 0;
    while (self->done_upto < seq && rc == 0)
        rc = pthread_cond_timedwait(&self->done, &self->lock, &until);
    bool done = self->done_upto >= seq;
    bool failed = done && seq > self->failed_from && seq <= self->failed_to;
    if (!done)
        snprintf(why, whylen, "not written within %d ms", timeout_ms);
    else if (failed)
        snprintf(why, whylen, "database write failed: %s", self->failed_why);
    pthread_mutex_unlock(&self->lock);
    return done && !failed ? 0 : -1;
}

int evstore_submit(evstore_t *self, event_t *event)
{
    item_t item = { .event = event };
    if (enqueue(self, &item) == 0)
        return 0;
    if (self->metrics)
        metrics_add(self->metrics, "keel_errorbus_dropped_total", "reason=\"queue_full\"", 1);
    event_destroy(&event);
    return -1;
}

/* The sample is kept as text: valid UTF-8 stays readable, anything else
 * is escaped byte by byte, so one bad frame never breaks a query reply. */
static char *sample_text(const void *data, size_t len)
{
    size_t n = len < QUARANTINE_SAMPLE ? len : QUARANTINE_SAMPLE;
    const unsigned char *p = data;
    char *out = malloc(n * 4 + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f)
            *o++ = (char)p[i];
        else
            o += sprintf(o, "\\x%02x", p[i]);
    }
    *o = '\0';
    return out;
}

void evstore_quarantine(evstore_t *self, const char *framing, const char *reason,
                        const void *data, size_t len)
{
    item_t item = { .received = clock_wall(), .framing = strdup(framing),
                    .reason = strdup(reason), .sample = sample_text(data, len), .size = len };
    if (self->metrics) {
        char labels[160], kind[48];
        snprintf(kind, sizeof kind, "%.*s", (int)strcspn(reason, ":"), reason);
        metrics_labels(labels, sizeof labels, "reason", kind, NULL);
        metrics_add(self->metrics, "keel_errorbus_quarantined_total", labels, 1);
    }
    if (enqueue(self, &item) < 0) {
        if (self->metrics)
            metrics_add(self->metrics, "keel_errorbus_dropped_total", "reason=\"queue_full\"", 1);
        item_free(&item);
    }
}

void evstore_stats(evstore_t *self, evstore_stats_t *out)
{
    pthread_mutex_lock(&self->lock);
    *out = self->stats;
    out->queued = (long)(self->pending.n + self->writing);
    pthread_mutex_unlock(&self->lock);
}

/* ---- the writer ------------------------------------------------------- */

/* A small open-addressing table keyed by string, for folding a batch. */
typedef struct {
    const char *key;
    event_t *last;
    long count;
    int rank;                   /* worst level seen */
    double first, latest;
} fold_t;

typedef struct {
    fold_t *slots;
    size_t cap, used;
} folds_t;

int evstore_level_rank(const char *level)
{
    if (!level)
        return 1;
    if (!strcmp(level, "critical"))
        return 4;
    if (!strcmp(level, "error"))
        return 3;
    return strcmp(level, "warning") ? 1 : 2;
}

static const char *const level_names[] = { "debug", "info", "warning", "error", "critical" };

/* Index into level_names of a canonical level (the normaliser only ever
 * produces these five words). */
static int level_index(const char *level)
{
    switch (level ? level[0] : 'e') {
    case 'd': return 0;
    case 'i': return 1;
    case 'w': return 2;
    case 'c': return 4;
    default: return 3;
    }
}

static void count_rates(rates_t *rates, folds_t *folds, double now)
{
    for (size_t i = 0; i < folds->cap; i++)
        if (folds->slots[i].key)
            rates_add(rates, folds->slots[i].key, now, folds->slots[i].count, folds->slots[i].rank);
}

json_t *evstore_rates(evstore_t *self, evstore_rates_t which, double now, double window_s)
{
    return rates_snapshot(self->rates[which], now, window_s);
}

static uint64_t hash_text(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

/* Batches repeat a few agents, types and fingerprints many times, so the
 * table starts small and doubles as keys arrive. */
static void folds_init(folds_t *f)
{
    f->cap = 64;
    f->slots = calloc(f->cap, sizeof *f->slots);
    f->used = 0;
}

static fold_t *folds_slot(folds_t *f, const char *key)
{
    size_t i = hash_text(key) & (f->cap - 1);
    while (f->slots[i].key && strcmp(f->slots[i].key, key) != 0)
        i = (i + 1) & (f->cap - 1);
    return &f->slots[i];
}

static void folds_grow(folds_t *f)
{
    folds_t bigger = { calloc(f->cap * 2, sizeof *f->slots), f->cap * 2, f->used };
    for (size_t i = 0; i < f->cap; i++)
        if (f->slots[i].key)
            *folds_slot(&bigger, f->slots[i].key) = f->slots[i];
    free(f->slots);
    *f = bigger;
}

static void folds_add(folds_t *f, const char *key, event_t *e, long count, int rank)
{
    fold_t *slot = folds_slot(f, key);
    if (!slot->key) {
        if ((f->used + 1) * 2 > f->cap) {
            folds_grow(f);
            slot = folds_slot(f, key);
        }
        slot->key = key;
        slot->first = e->timestamp;
        slot->latest = e->timestamp;
        f->used++;
    }
    slot->count += count;
    slot->last = e;
    if (rank > slot->rank)
        slot->rank = rank;
    if (e->timestamp < slot->first)
        slot->first = e->timestamp;
    if (e->timestamp > slot->latest)
        slot->latest = e->timestamp;
}

/* Binds one event's columns from parameter `at` + 1 on. */
static void bind_event(sqlite3_stmt *s, int at, const event_t *e)
{
    sqlite3_bind_double(s, at + 1, e->timestamp);
    sqlite3_bind_text(s, at + 2, e->agent, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, at + 3, e->error_type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, at + 4, e->message, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, at + 5, e->severity, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, at + 6, e->context, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, at + 7, e->error_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, at + 8, e->level, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, at + 9, e->fingerprint, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, at + 10, NORMALISE_GROUPING_VERSION);
    sqlite3_bind_text(s, at + 11, framing_name(e->framing), -1, SQLITE_STATIC);
    sqlite3_bind_double(s, at + 12, e->received);
    sqlite3_bind_text(s, at + 13, e->raw, -1, SQLITE_STATIC);
}

/* Which of the n events one INSERT OR IGNORE just stored (`added` of
 * them), for a statement that met a duplicate.  AUTOINCREMENT gives a new
 * row an id above every id the table ever held, so the rows this statement
 * stored hold the `added` highest of the distinct ids its events' error_ids
 * lead to, and an event was stored when its id is one of those and no
 * earlier event of the statement had the same (that one was stored, the
 * later ones ignored).  The ids need not follow each other: an ignored row
 * still uses up the id it was given. */
static int find_stored(store_t *st, event_t **events, size_t n, int added, bool *stored)
{
    sqlite3_int64 ids[INSERT_ROWS];
    bool first[INSERT_ROWS];
    sqlite3_stmt *s = store_prepare(st, "SELECT id FROM errors WHERE error_id = ?");
    if (!s)
        return -1;
    for (size_t r = 0; r < n; r++) {
        sqlite3_bind_text(s, 1, events[r]->error_id, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        ids[r] = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
        sqlite3_reset(s);
        if (rc != SQLITE_ROW)
            return -1;
        first[r] = true;
        for (size_t q = 0; q < r && first[r]; q++)
            first[r] = ids[q] != ids[r];
    }
    for (size_t r = 0; r < n; r++) {
        int higher = 0;
        for (size_t q = 0; q < n; q++)
            higher += first[q] && ids[q] > ids[r];
        stored[r] = first[r] && higher < added;
    }
    return 0;
}

/* Inserts n events (1 or INSERT_ROWS, with the statement for that many)
 * and says which were stored, the others being duplicates.  0 or -1. */
static int insert_events(store_t *st, sqlite3_stmt *s, event_t **events, size_t n, bool *stored)
{
    for (size_t r = 0; r < n; r++)
        bind_event(s, (int)r * EVENT_COLUMNS, events[r]);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return -1;
    int added = sqlite3_changes(store_db(st));
    if ((size_t)added == n) {
        for (size_t r = 0; r < n; r++)
            stored[r] = true;
        return 0;
    }
    return find_stored(st, events, n, added, stored);
}

static int insert_quarantine(store_t *st, item_t *q)
{
    sqlite3_stmt *s = store_prepare(st,
        "INSERT INTO quarantine(received, framing, reason, size, sample) VALUES(?,?,?,?,?)");
    if (!s)
        return -1;
    sqlite3_bind_double(s, 1, q->received);
    sqlite3_bind_text(s, 2, q->framing, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, q->reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)q->size);
    sqlite3_bind_text(s, 5, q->sample, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int upsert_agents(store_t *st, folds_t *agents, double now)
{
    sqlite3_stmt *s = store_prepare(st,
        "INSERT INTO agent_health(agent, status, last_heartbeat, error_count) VALUES(?, 'error', ?, ?)"
        " ON CONFLICT(agent) DO UPDATE SET error_count = error_count + excluded.error_count,"
        " status = 'error', last_heartbeat = excluded.last_heartbeat");
    if (!s)
        return -1;
    for (size_t i = 0; i < agents->cap; i++) {
        fold_t *f = &agents->slots[i];
        if (!f->key)
            continue;
        sqlite3_bind_text(s, 1, f->key, -1, SQLITE_STATIC);
        sqlite3_bind_double(s, 2, now);
        sqlite3_bind_int64(s, 3, f->count);
        int rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE)
            return -1;
    }
    return 0;
}

static int upsert_groups(store_t *st, folds_t *groups)
{
    sqlite3_stmt *s = store_prepare(st,
        "INSERT INTO error_groups(fingerprint, signature, grouping_version, agent, error_type,"
        " pattern, sample, level, count, first_seen, last_seen) VALUES(?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(fingerprint) DO UPDATE SET count = count + excluded.count,"
        " sample = excluded.sample, level = excluded.level,"
        " first_seen = min(first_seen, excluded.first_seen),"
        " last_seen = max(last_seen, excluded.last_seen)");
    if (!s)
        return -1;
    for (size_t i = 0; i < groups->cap; i++) {
        fold_t *f = &groups->slots[i];
        if (!f->key)
            continue;
        event_t *e = f->last;
        sqlite3_bind_text(s, 1, e->fingerprint, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, e->signature, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 3, NORMALISE_GROUPING_VERSION);
        sqlite3_bind_text(s, 4, e->agent, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 5, e->error_type, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 6, e->pattern ? e->pattern : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 7, e->message, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 8, e->level, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 9, f->count);
        sqlite3_bind_double(s, 10, f->first);
        sqlite3_bind_double(s, 11, f->latest);
        int rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE)
            return -1;
    }
    return 0;
}

/* Writes one batch in one transaction.  Events newly stored move from
 * the batch into `fresh` (*nfresh of them); returns 0, or -1 when the
 * transaction failed. */
static int write_batch(evstore_t *self, batch_t *b, event_t **fresh, size_t *nfresh, long *dups,
                       char *why, size_t whylen)
{
    store_t *st = self->writer;
    if (store_begin(st) < 0)
        return -1;
    sqlite3_stmt *one = store_prepare(st, INSERT_EVENT EVENT_ROW);
    sqlite3_stmt *many = store_prepare(st, self->insert_many);
    folds_t agents, groups;
    folds_init(&agents);
    folds_init(&groups);
    long levels[5] = { 0 };
    int rc = one && many ? 0 : -1;
    /* Quarantined messages first, then the events in statements of
     * INSERT_ROWS rows (one statement's fixed cost, shared), the rest one
     * by one. */
    event_t **events = malloc((b->n ? b->n : 1) * sizeof *events);
    item_t **owners = malloc((b->n ? b->n : 1) * sizeof *owners);
    size_t nevents = 0;
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        if (b->items[i].event) {
            owners[nevents] = &b->items[i];
            events[nevents++] = b->items[i].event;
        } else
            rc = insert_quarantine(st, &b->items[i]);
    }
    bool stored[INSERT_ROWS];
    for (size_t at = 0; at < nevents && rc == 0;) {
        size_t n = nevents - at >= INSERT_ROWS ? INSERT_ROWS : 1;
        rc = insert_events(st, n == 1 ? one : many, events + at, n, stored);
        for (size_t r = 0; r < n && rc == 0; r++) {
            event_t *e = events[at + r];
            if (!stored[r]) {
                (*dups)++;
                continue;
            }
            int rank = evstore_level_rank(e->level);
            folds_add(&agents, e->agent, e, 1, rank);
            folds_add(&groups, e->fingerprint, e, 1, rank);
            levels[level_index(e->level)]++;
            fresh[(*nfresh)++] = e;
            owners[at + r]->event = NULL;
        }
        at += n;
    }
    free(events);
    free(owners);
    if (rc == 0)
        rc = upsert_agents(st, &agents, clock_wall());
    if (rc == 0)
        rc = upsert_groups(st, &groups);
    if (rc == 0 && store_commit(st) == 0) {
        double now = clock_wall();
        count_rates(self->rates[RATES_AGENT], &agents, now);
        /* a fingerprint has one type, so types fold from the groups */
        folds_t types;
        folds_init(&types);
        for (size_t i = 0; i < groups.cap; i++)
            if (groups.slots[i].key)
                folds_add(&types, groups.slots[i].last->error_type, groups.slots[i].last,
                          groups.slots[i].count, groups.slots[i].rank);
        count_rates(self->rates[RATES_TYPE], &types, now);
        free(types.slots);
        for (int i = 0; i < 5; i++) {
            if (!levels[i])
                continue;
            rates_add(self->rates[RATES_LEVEL], level_names[i], now, levels[i], i < 2 ? 1 : i);
            if (self->metrics) {
                char labels[64];
                metrics_labels(labels, sizeof labels, "level", level_names[i], NULL);
                metrics_add(self->metrics, "keel_errorbus_events_total", labels, (double)levels[i]);
            }
        }
    } else {
        rc = -1;
    }
    free(agents.slots);
    free(groups.slots);
    if (rc == 0)
        return 0;
    snprintf(why, whylen, "%s", store_errmsg(st));
    log_error("errorbus", "batch of %zu not written: %s", b->n, why);
    store_rollback(st);
    return -1;
}

/* Writes items[0, n) (sequence numbers up to `upto`) as one transaction. */
static void handle_batch(evstore_t *self, item_t *items, size_t n, unsigned long upto)
{
    batch_t slice = { items, n, n };
    batch_t *b = &slice;
    double started = clock_mono();
    event_t **fresh = malloc((b->n ? b->n : 1) * sizeof *fresh);
    size_t nfresh = 0;
    long dups = 0, quarantined = 0;
    for (size_t i = 0; i < b->n; i++)
        quarantined += b->items[i].event == NULL;
    char why[sizeof self->failed_why] = "";
    int rc = write_batch(self, b, fresh, &nfresh, &dups, why, sizeof why);
    pthread_mutex_lock(&self->lock);
    if (rc == 0) {
        self->stats.stored += (long)nfresh;
        self->stats.total += (long)nfresh;
        self->stats.duplicates += dups;
        self->stats.quarantined += quarantined;
    } else {
        self->stats.write_failed += (long)b->n;
    }
    self->stats.batches++;
    self->stats.last_batch = (long)b->n;
    self->writing -= b->n;
    self->progress = clock_mono();
    pthread_cond_broadcast(&self->space);
    if (rc < 0) {
        self->failed_from = self->done_upto;
        self->failed_to = upto;
        memcpy(self->failed_why, why, sizeof why);
    }
    self->done_upto = upto;
    pthread_cond_broadcast(&self->done);
    pthread_mutex_unlock(&self->lock);
    if (self->metrics) {
        if (rc == 0)
            metrics_add(self->metrics, "keel_errorbus_stored_total", "", (double)nfresh);
        if (dups)
            metrics_add(self->metrics, "keel_errorbus_duplicates_total", "", (double)dups);
        if (rc < 0)
            metrics_add(self->metrics, "keel_errorbus_dropped_total", "reason=\"write_failed\"",
                        (double)b->n);
        metrics_observe(self->metrics, "keel_errorbus_batch_size", "", (double)b->n);
        metrics_observe(self->metrics, "keel_errorbus_batch_duration_seconds", "", clock_mono() - started);
    }
    /* Committed events go on to the sink, which owns them from here. */
    if (rc == 0 && nfresh > 0 && self->sink)
        self->sink(self->sink_ctx, fresh, nfresh);
    else
        for (size_t i = 0; i < nfresh; i++)
            event_destroy(&fresh[i]);
    free(fresh);
    for (size_t i = 0; i < b->n; i++)
        item_free(&b->items[i]);
}

static long delete_older(store_t *st, const char *table, const char *column, double cutoff)
{
    char sql[256];
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE rowid IN (SELECT rowid FROM %s WHERE %s < ?"
             " LIMIT 5000)", table, table, column);
    long total = 0;
    for (;;) {
        sqlite3_stmt *s = store_prepare(st, sql);
        if (!s)
            return total;
        sqlite3_bind_double(s, 1, cutoff);
        int rc = sqlite3_step(s);
        sqlite3_reset(s);
        int n = rc == SQLITE_DONE ? sqlite3_changes(store_db(st)) : 0;
        total += n;
        if (n < 5000)
            return total;
    }
}

static void retain(evstore_t *self)
{
    double now = clock_wall();
    if (now < self->next_retention)
        return;
    self->next_retention = now + self->retention_interval;
    double cutoff = now - self->retention_days * 86400.0;
    long removed = delete_older(self->writer, "errors", "timestamp", cutoff);
    delete_older(self->writer, "quarantine", "received", cutoff);
    delete_older(self->writer, "correlations", "detected_at", cutoff);
    delete_older(self->writer, "alerts", "timestamp", cutoff);
    delete_older(self->writer, "error_groups", "last_seen", cutoff);
    delete_older(self->writer, "recovery_actions", "timestamp", cutoff);
    if (removed > 0) {
        pthread_mutex_lock(&self->lock);
        self->stats.total -= removed;
        pthread_mutex_unlock(&self->lock);
        log_info("errorbus", "retention removed %ld errors older than %.1f days", removed,
                 self->retention_days);
    }
    store_maintain(self->writer);
}

/* The writer never checkpoints (wal_autocheckpoint=0): a checkpoint
 * copies the WAL into the database and fsyncs it, which would stall
 * ingestion every few thousand events.  This ticker does it instead, on
 * its own connection, every CHECKPOINT_S; PASSIVE never blocks the
 * writer.  SQLite starts the WAL over only when a write begins after a
 * pass copied all of it, which a steady stream seldom allows (a batch
 * commits during the pass): at 300 events/s from 1,000 agents the WAL
 * grew by 150 MB in 20 s and kept growing (tests/soak).  So once it holds
 * WAL_RESTART_BYTES, a TRUNCATE pass waits for the writer between two
 * batches (busy timeout), copies what PASSIVE left and empties the WAL;
 * the writer waits on its own busy timeout for that much only. */
static void checkpoint(void *arg)
{
    evstore_t *self = arg;
    int frames = 0;
    sqlite3_wal_checkpoint_v2(self->checkpoint_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, NULL);
    if (frames >= self->wal_restart_frames)
        sqlite3_wal_checkpoint_v2(self->checkpoint_db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
}

static int open_checkpoint_db(evstore_t *self)
{
    if (sqlite3_open_v2(self->path, &self->checkpoint_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        log_error("errorbus", "checkpointer cannot open %s", self->path);
        sqlite3_close(self->checkpoint_db);
        self->checkpoint_db = NULL;
        return -1;
    }
    sqlite3_busy_timeout(self->checkpoint_db, 1000);
    /* A connection that has read nothing has not seen the WAL yet: its
     * checkpoints were no-ops (*pnLog -1) and the WAL was never copied. */
    sqlite3_exec(self->checkpoint_db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    return 0;
}

/* Once stopped, the writer writes what is queued and ends when a swap
 * finds the queue empty: producers refuse once it is stopped. */
static void write_queue(actor_t *actor, void *arg)
{
    evstore_t *self = arg;
    batch_t mine = { 0 };
    for (;;) {
        actor_alive(actor);
        bool running = actor_running(actor);
        pthread_mutex_lock(&self->lock);
        batch_t swap = self->pending;
        self->pending = mine;
        mine = swap;
        unsigned long upto = self->submitted;
        self->writing = mine.n;
        pthread_mutex_unlock(&self->lock);
        for (size_t at = 0; at < mine.n; at += BATCH_MAX) {
            size_t n = mine.n - at < BATCH_MAX ? mine.n - at : BATCH_MAX;
            handle_batch(self, mine.items + at, n, upto - (mine.n - at - n));
        }
        bool idle = mine.n == 0;
        mine.n = 0;
        if (idle && !running)
            break;
        retain(self);
        if (idle)
            actor_wait(actor, FLUSH_S);
    }
    free(mine.items);
}

/* Producers waiting for room see the stop at once. */
static void wake_producers(void *arg)
{
    evstore_t *self = arg;
    pthread_mutex_lock(&self->lock);
    pthread_cond_broadcast(&self->space);
    pthread_mutex_unlock(&self->lock);
}

int evstore_start(evstore_t *self)
{
    if (actor_running(self->queue_writer))
        return 0;
    pthread_mutex_lock(&self->lock);
    self->progress = clock_mono();
    pthread_mutex_unlock(&self->lock);
    if (open_checkpoint_db(self) < 0 || actor_start(self->queue_writer) < 0
        || actor_start(self->checkpointer) < 0) {
        evstore_stop(self);
        return -1;
    }
    return 0;
}

void evstore_stop(evstore_t *self)
{
    actor_stop_all((actor_t *[]){ self->queue_writer, self->checkpointer }, 2);
    sqlite3_close(self->checkpoint_db);
    self->checkpoint_db = NULL;
}

/* ---- reads ------------------------------------------------------------ */

static int bind_all(sqlite3_stmt *s, const char *types, va_list ap)
{
    for (int i = 0; types[i]; i++) {
        int rc;
        if (types[i] == 'i') {
            rc = sqlite3_bind_int64(s, i + 1, va_arg(ap, long));
        } else if (types[i] == 'd') {
            rc = sqlite3_bind_double(s, i + 1, va_arg(ap, double));
        } else {
            const char *text = va_arg(ap, const char *);
            rc = text ? sqlite3_bind_text(s, i + 1, text, -1, SQLITE_TRANSIENT)
                      : sqlite3_bind_null(s, i + 1);
        }
        if (rc != SQLITE_OK)
            return -1;
    }
    return 0;
}

static json_t *column_value(sqlite3_stmt *s, int c)
{
    switch (sqlite3_column_type(s, c)) {
    case SQLITE_INTEGER: return json_integer(sqlite3_column_int64(s, c));
    case SQLITE_FLOAT: return json_real(sqlite3_column_double(s, c));
    case SQLITE_NULL: return json_null();
    default: {
        const char *text = (const char *)sqlite3_column_text(s, c);
        return json_stringn_nocheck(text ? text : "", (size_t)sqlite3_column_bytes(s, c));
    }
    }
}

json_t *evstore_query(evstore_t *self, const char *sql, const char *types, ...)
{
    pthread_mutex_lock(&self->read_lock);
    sqlite3_stmt *s = store_prepare(self->reader, sql);
    json_t *rows = NULL;
    va_list ap;
    va_start(ap, types);
    if (s && bind_all(s, types, ap) == 0) {
        rows = json_array();
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            json_t *row = json_object();
            for (int c = 0; c < sqlite3_column_count(s); c++)
                json_object_set_new(row, sqlite3_column_name(s, c), column_value(s, c));
            json_array_append_new(rows, row);
        }
        if (rc != SQLITE_DONE) {
            log_warn("errorbus", "query failed: %s", store_errmsg(self->reader));
            json_decref(rows);
            rows = NULL;
        }
    }
    va_end(ap);
    if (s)
        sqlite3_reset(s);
    pthread_mutex_unlock(&self->read_lock);
    return rows;
}

double evstore_scalar(evstore_t *self, double fallback, const char *sql, const char *types, ...)
{
    pthread_mutex_lock(&self->read_lock);
    sqlite3_stmt *s = store_prepare(self->reader, sql);
    double value = fallback;
    va_list ap;
    va_start(ap, types);
    if (s && bind_all(s, types, ap) == 0 && sqlite3_step(s) == SQLITE_ROW
        && sqlite3_column_type(s, 0) != SQLITE_NULL)
        value = sqlite3_column_double(s, 0);
    va_end(ap);
    if (s)
        sqlite3_reset(s);
    pthread_mutex_unlock(&self->read_lock);
    return value;
}

int evstore_exec(evstore_t *self, const char *sql, const char *types, ...)
{
    pthread_mutex_lock(&self->read_lock);
    sqlite3_stmt *s = store_prepare(self->reader, sql);
    int rc = -1;
    va_list ap;
    va_start(ap, types);
    if (s && bind_all(s, types, ap) == 0)
        rc = sqlite3_step(s) == SQLITE_DONE ? sqlite3_changes(store_db(self->reader)) : -1;
    va_end(ap);
    if (rc < 0)
        log_warn("errorbus", "statement failed: %s", store_errmsg(self->reader));
    if (s)
        sqlite3_reset(s);
    pthread_mutex_unlock(&self->read_lock);
    return rc;
}
