/*  scheduler: see scheduler.h.
 *
 *  Life of a task: the request thread counts it against its level (a full
 *  level is refused there and then) and adds it to the pending journal
 *  writes.  If no commit is under way it commits them itself; otherwise the
 *  journal writer commits whatever gathered meanwhile in one transaction.
 *  A committed task is marked so (its waiter wakes) and moved to the
 *  queue, or to the delay heap when it is not due yet.
 *  Workers pop, run with the lock released, then either finish the task
 *  (statistics, a delete for the journal, the waiter woken) or put it back
 *  in the delay heap with its backoff.  A task shared by a waiter and the
 *  scheduler is freed by whichever lets go last.
 *
 *  The journal writer and the workers are runners (actor.h) that wait on
 *  the scheduler's own conditions; stop stops the workers first, then the
 *  writer, which commits what they left before it ends. */
#include "scheduler.h"
#include "actor.h"
#include "clock.h"
#include "heap.h"
#include "journal.h"
#include "log.h"
#include "names.h"
#include "pycompat.h"
#include "task.h"
#include "taskq.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORKERS 16
#define RECENT 256
#define MAX_ENDPOINTS 8
#define MAX_TYPES 256

typedef struct {
    int64_t id;
    char *type;
    bool ok;
    char *error;
    int attempts, gpu;
    double finished_at;
} recent_t;

typedef struct {
    char *endpoint;
    wire_client_t *client;
} link_t;

typedef struct {
    scheduler_t *sched;
    int index;
    actor_t *actor;
    link_t links[MAX_ENDPOINTS];
    int nlinks;
} worker_t;

/* Work for the journal writer, swapped out whole at each commit. */
typedef struct {
    task_t **inserts;
    size_t ninserts, cap_inserts;
    journal_update_t *updates;
    size_t nupdates, cap_updates;
    int64_t *deletes;
    size_t ndeletes, cap_deletes;
} ops_t;

struct scheduler_t {
    scheduler_config_t config;
    json_t *handlers;
    journal_t *journal;
    metrics_t *metrics;
    errpub_t *errors;
    pthread_mutex_t lock;
    pthread_cond_t work, journal_wake;
    taskq_t *ready;
    heap_t *delayed;
    size_t pending[TASK_PRIO_LEVELS];
    int64_t next_id;
    ops_t ops;
    json_t *task_stats;
    recent_t recent[RECENT];
    size_t recent_next;
    bool committing;
    actor_t *journal_writer;
    worker_t workers[MAX_WORKERS];
    int nworkers;
};

static const char *const builtin_types[] = { "logging", "analysis", "memory" };

/* ---- small helpers ---------------------------------------------------- */

static void grow(void **items, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return;
    *cap = *cap ? *cap * 2 : 64;
    if (*cap < need)
        *cap = need;
    *items = realloc(*items, *cap * size);
}

static void ops_free(ops_t *ops)
{
    free(ops->inserts);
    free(ops->updates);
    free(ops->deletes);
    memset(ops, 0, sizeof *ops);
}

static bool ops_empty(const ops_t *ops)
{
    return !ops->ninserts && !ops->nupdates && !ops->ndeletes;
}

static void count(scheduler_t *self, const char *family, const char *k1, const char *v1,
                  const char *k2, const char *v2)
{
    char labels[256];
    metrics_labels(labels, sizeof labels, k1, v1, k2, v2, NULL);
    metrics_add(self->metrics, family, labels, 1);
}

static void stats_record(scheduler_t *self, const char *type, bool ok, double seconds)
{
    json_t *entry = json_object_get(self->task_stats, type);
    /* Unknown types are counted under their own name, as the original did,
     * but a flood of made-up names must not grow the table without bound. */
    if (!entry && json_object_size(self->task_stats) >= MAX_TYPES)
        type = "(other)";
    entry = json_object_get(self->task_stats, type);
    if (!entry) {
        entry = json_pack("{s:i, s:i, s:f}", "success", 0, "failed", 0, "total_time", 0.0);
        json_object_set_new(self->task_stats, type, entry);
    }
    const char *key = ok ? "success" : "failed";
    json_object_set_new(entry, key, json_integer(json_integer_value(json_object_get(entry, key)) + 1));
    json_object_set_new(entry, "total_time",
                        json_real(json_real_value(json_object_get(entry, "total_time")) + seconds));
}

static const char *handler_for(scheduler_t *self, const char *type)
{
    return json_string_value(json_object_get(self->handlers, type));
}

static bool known_type(scheduler_t *self, const char *type)
{
    for (size_t i = 0; i < sizeof builtin_types / sizeof builtin_types[0]; i++)
        if (!strcmp(type, builtin_types[i]))
            return true;
    return handler_for(self, type) != NULL;
}

/* Queue or delay a committed task.  Lock held. */
static void place(scheduler_t *self, task_t *task)
{
    if (task->not_before > clock_wall() || taskq_push(self->ready, task) < 0)
        heap_push(self->delayed, task->not_before, task);
    pthread_cond_signal(&self->work);
}

static void remember(scheduler_t *self, task_t *task)
{
    recent_t *r = &self->recent[self->recent_next++ % RECENT];
    free(r->type);
    free(r->error);
    r->id = task->id;
    r->type = strdup(task->type);
    r->ok = task->ok;
    r->error = task->error ? strdup(task->error) : NULL;
    r->attempts = task->attempts;
    r->gpu = task->gpu;
    r->finished_at = clock_wall();
}

/* Ends a task for good.  Lock held; drops the scheduler's reference. */
static void finish(scheduler_t *self, task_t *task, bool ok, const char *error, double seconds)
{
    task->done = true;
    task->ok = ok;
    free(task->error);
    task->error = error ? strdup(error) : NULL;
    stats_record(self, task->type, ok, seconds);
    count(self, "keel_resource_tasks_total", "type", task->type, "outcome", ok ? "success" : "failed");
    if (task->committed) {
        bool first = ops_empty(&self->ops);
        grow((void **)&self->ops.deletes, &self->ops.cap_deletes, self->ops.ndeletes + 1,
             sizeof(int64_t));
        self->ops.deletes[self->ops.ndeletes++] = task->id;
        if (first)      /* otherwise the journal writer already has work to wake for */
            pthread_cond_signal(&self->journal_wake);
    }
    remember(self, task);
    pthread_cond_broadcast(&task->cond);
    task_unref(task);
}

/* ---- the journal writer ------------------------------------------------ */

/* Deletes and retry updates wait a moment for an insert to share their
 * commit: losing one in a crash costs only a rerun, while a commit of its
 * own would cost a transaction (and, when durable, an fsync) per task. */
static void linger(scheduler_t *self, actor_t *actor)
{
    struct timespec until;
    clock_deadline(0.02, &until);
    while (self->ops.ninserts == 0 && actor_running(actor))
        if (pthread_cond_timedwait(&self->journal_wake, &self->lock, &until) == ETIMEDOUT)
            break;
}

/* Commits everything gathered so far.  Lock held on entry and exit (it is
 * released around the write); the caller checked that no commit is under
 * way and there is something to write. */
static void commit_locked(scheduler_t *self)
{
    self->committing = true;
    ops_t batch = self->ops;
    memset(&self->ops, 0, sizeof self->ops);
    pthread_mutex_unlock(&self->lock);
    int rc = journal_apply(self->journal, batch.inserts, batch.ninserts, batch.updates,
                           batch.nupdates, batch.deletes, batch.ndeletes);
    char why[320] = "";
    if (rc != 0)
        snprintf(why, sizeof why, "task could not be written to the journal: %s",
                 journal_last_error(self->journal));
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < batch.ninserts; i++) {
        task_t *task = batch.inserts[i];
        if (rc == 0) {
            task->committed = true;
            pthread_cond_broadcast(&task->cond);
            place(self, task);
        } else {
            self->pending[task->prio]--;
            finish(self, task, false, why, 0);
        }
    }
    ops_free(&batch);
    self->committing = false;
    if (!ops_empty(&self->ops))     /* what gathered meanwhile is the journal writer's */
        pthread_cond_signal(&self->journal_wake);
}

/* Writes what request threads left behind: inserts that arrived while
 * another commit was under way, and the workers' deletes and updates.
 * Stopped, it writes what is left and ends. */
static void write_journal(actor_t *actor, void *arg)
{
    scheduler_t *self = arg;
    pthread_mutex_lock(&self->lock);
    for (;;) {
        while ((ops_empty(&self->ops) || self->committing) && actor_running(actor))
            pthread_cond_wait(&self->journal_wake, &self->lock);
        if (!actor_running(actor) && (ops_empty(&self->ops) || self->committing)) {
            if (!self->committing)
                break;
            pthread_cond_wait(&self->journal_wake, &self->lock);
            continue;
        }
        linger(self, actor);
        if (!self->committing && !ops_empty(&self->ops))
            commit_locked(self);
    }
    pthread_mutex_unlock(&self->lock);
}

/* The interrupt of the journal writer and, through wake_worker, of the
 * workers: their waits are on the lock. */
static void wake_all(void *arg)
{
    scheduler_t *self = arg;
    pthread_mutex_lock(&self->lock);
    pthread_cond_broadcast(&self->work);
    pthread_cond_broadcast(&self->journal_wake);
    pthread_mutex_unlock(&self->lock);
}

static void wake_worker(void *arg)
{
    worker_t *w = arg;
    wake_all(w->sched);
}

/* ---- workers ------------------------------------------------------------- */

static wire_client_t *link_for(worker_t *w, const char *endpoint, int timeout_ms)
{
    for (int i = 0; i < w->nlinks; i++)
        if (!strcmp(w->links[i].endpoint, endpoint)) {
            wire_client_destroy(&w->links[i].client);
            w->links[i].client = wire_client_new_agent(endpoint, timeout_ms, 0);
            return w->links[i].client;
        }
    if (w->nlinks == MAX_ENDPOINTS) {
        free(w->links[0].endpoint);
        wire_client_destroy(&w->links[0].client);
        memmove(&w->links[0], &w->links[1], sizeof w->links[0] * (MAX_ENDPOINTS - 1));
        w->nlinks--;
    }
    link_t *l = &w->links[w->nlinks++];
    l->endpoint = strdup(endpoint);
    l->client = wire_client_new_agent(endpoint, timeout_ms, 0);
    return l->client;
}

/* Runs one attempt with no lock held.  True on success; else *error. */
static bool execute(worker_t *w, task_t *task, const char *endpoint, char *error, size_t len)
{
    if (!endpoint) {
        char *text = json_dumps(task->data, JSON_COMPACT | JSON_ENCODE_ANY);
        log_debug("resource", "Processing %s data: %.200s", task->type, text ? text : "");
        free(text);
        return true;
    }
    int timeout_ms = (int)(task->timeout_s * 1000);
    wire_client_t *client = link_for(w, endpoint, timeout_ms > 0 ? timeout_ms : 1);
    json_t *request = json_pack("{s:s, s:I, s:s, s:O, s:s, s:i, s:i}", "action", "process_task",
                                "task_id", (json_int_t)task->id, "type", task->type,
                                "data", task->data, "priority", task_prio_name(task->prio),
                                "attempt", task->attempts + 1, "gpu", w->index);
    char err[256] = "";
    json_t *reply = wire_client_call(client, request, err, sizeof err);
    json_decref(request);
    if (!reply) {
        snprintf(error, len, "no reply from %s within %g s", endpoint, task->timeout_s);
        return false;
    }
    const char *status = json_string_value(json_object_get(reply, "status"));
    bool ok = status && (!strcmp(status, "success") || !strcmp(status, "ok") || !strcmp(status, "SUCCESS"));
    if (!ok) {
        const char *why = json_string_value(json_object_get(reply, "error"));
        if (!why)
            why = json_string_value(json_object_get(reply, "message"));
        snprintf(error, len, "%s", why ? why : "handler answered without success");
    }
    json_decref(reply);
    return ok;
}

static double backoff(scheduler_t *self, int attempt)
{
    double delay = self->config.backoff_s * pow(2.0, attempt - 1);
    return delay < self->config.backoff_max_s ? delay : self->config.backoff_max_s;
}

/* After a failed attempt: retry later, or give up.  Lock held. */
static void failed_attempt(scheduler_t *self, task_t *task, const char *error, double seconds)
{
    task->attempts++;
    if (task->attempts > task->max_retries) {
        char why[512];
        snprintf(why, sizeof why, "Task %s failed after %d attempts: %s", task->type,
                 task->attempts, error);
        json_t *details = json_pack("{s:s, s:I}", "stack_trace", "NoneType: None\n", "task_id",
                                    (json_int_t)task->id);
        errpub_report(self->errors, "task_processing_error", "ERROR", details, "%s", why);
        json_decref(details);
        finish(self, task, false, why, seconds);
        return;
    }
    task->not_before = clock_wall() + backoff(self, task->attempts);
    count(self, "keel_resource_task_retries_total", "type", task->type, "reason", "failed");
    self->pending[task->prio]++;
    bool first = ops_empty(&self->ops);
    grow((void **)&self->ops.updates, &self->ops.cap_updates, self->ops.nupdates + 1,
         sizeof(journal_update_t));
    self->ops.updates[self->ops.nupdates++] = (journal_update_t){ task->id, task->attempts,
                                                                  task->not_before };
    if (first)
        pthread_cond_signal(&self->journal_wake);
    heap_push(self->delayed, task->not_before, task);
}

/* Moves due tasks from the delay heap to the queue; returns the next due
 * time (0 when none waits).  Lock held. */
static double promote(scheduler_t *self)
{
    double due, now = clock_wall();
    task_t *task;
    while ((task = heap_peek(self->delayed, &due))) {
        if (due > now || taskq_size(self->ready, task->prio) >= taskq_capacity(self->ready))
            return due > now ? due : now + 0.05;
        heap_pop(self->delayed, NULL);
        taskq_push(self->ready, task);
    }
    return 0;
}

static void wait_work(scheduler_t *self, double next_due)
{
    double wait = 0.5;
    if (next_due > 0 && next_due - clock_wall() < wait)
        wait = next_due - clock_wall();
    struct timespec until;
    clock_deadline(wait, &until);
    pthread_cond_timedwait(&self->work, &self->lock, &until);
}

static void work(actor_t *actor, void *arg)
{
    worker_t *w = arg;
    scheduler_t *self = w->sched;
    pthread_mutex_lock(&self->lock);
    while (actor_running(actor)) {
        double next_due = promote(self);
        task_t *task = taskq_pop(self->ready);
        if (!task) {
            wait_work(self, next_due);
            continue;
        }
        self->pending[task->prio]--;
        const char *endpoint = handler_for(self, task->type);
        char *target = endpoint ? strdup(endpoint) : NULL;
        pthread_mutex_unlock(&self->lock);
        char error[256] = "";
        double started = clock_mono();
        bool ok = execute(w, task, target, error, sizeof error);
        double seconds = clock_mono() - started;
        free(target);
        pthread_mutex_lock(&self->lock);
        task->gpu = w->index;
        if (ok)
            finish(self, task, true, NULL, seconds);
        else
            failed_attempt(self, task, error, seconds);
    }
    pthread_mutex_unlock(&self->lock);
    for (int i = 0; i < w->nlinks; i++) {
        free(w->links[i].endpoint);
        wire_client_destroy(&w->links[i].client);
    }
    w->nlinks = 0;
}

/* ---- life cycle --------------------------------------------------------- */

static void restore(void *arg, task_t *task)
{
    scheduler_t *self = arg;
    self->pending[task->prio]++;
    place(self, task);
}

static void unref_item(void *item)
{
    task_unref(item);
}

static void collect(metrics_t *metrics, void *arg)
{
    scheduler_t *self = arg;
    pthread_mutex_lock(&self->lock);
    for (int p = 0; p < TASK_PRIO_LEVELS; p++) {
        char labels[64];
        metrics_labels(labels, sizeof labels, "priority", task_prio_name(p), NULL);
        metrics_set(metrics, "keel_resource_queue_depth", labels, (double)self->pending[p]);
    }
    pthread_mutex_unlock(&self->lock);
}

static void declare(metrics_t *metrics)
{
    metrics_declare(metrics, "keel_resource_tasks_total", "Tasks finished, by type and outcome.",
                    METRIC_COUNTER, NULL, 0);
    metrics_declare(metrics, "keel_resource_task_retries_total", "Task attempts that will be retried.",
                    METRIC_COUNTER, NULL, 0);
    metrics_declare(metrics, "keel_resource_task_refusals_total",
                    "Tasks refused at the door, by reason.", METRIC_COUNTER, NULL, 0);
    metrics_declare(metrics, "keel_resource_queue_depth", "Tasks waiting, by priority.",
                    METRIC_GAUGE, NULL, 0);
}

scheduler_t *scheduler_new(const scheduler_config_t *config, const char *db_path,
                           metrics_t *metrics, errpub_t *errors, char *err, size_t errlen)
{
    journal_t *journal = journal_new(db_path, config->durable, err, errlen);
    if (!journal)
        return NULL;
    scheduler_t *self = calloc(1, sizeof *self);
    self->config = *config;
    self->handlers = config->handlers ? json_deep_copy(config->handlers) : json_object();
    self->config.handlers = NULL;
    self->journal = journal;
    self->metrics = metrics;
    self->errors = errors;
    pthread_mutex_init(&self->lock, NULL);
    clock_cond_init(&self->work);
    clock_cond_init(&self->journal_wake);
    self->ready = taskq_new(config->queue_size ? config->queue_size : 1000);
    self->delayed = heap_new(0, unref_item);
    self->task_stats = json_object();
    self->next_id = journal_max_id(journal) + 1;
    declare(metrics);
    metrics_add_collector(metrics, collect, self);
    int restored = journal_load(journal, restore, self);
    if (restored > 0)
        log_info("resource", "%d accepted tasks restored from the journal", restored);
    self->journal_writer = actor_new_runner("rs journal", write_journal, wake_all, self);
    self->nworkers = config->workers < 1 ? 1 : config->workers > MAX_WORKERS ? MAX_WORKERS : config->workers;
    for (int i = 0; i < self->nworkers; i++)
        self->workers[i] = (worker_t){ .sched = self, .index = i,
                                       .actor = actor_new_runner("rs worker", work, wake_worker, &self->workers[i]) };
    return self;
}

int scheduler_start(scheduler_t *self)
{
    if (actor_start(self->journal_writer) < 0)
        return -1;
    for (int i = 0; i < self->nworkers; i++)
        if (actor_start(self->workers[i].actor) < 0)
            return -1;
    return 0;
}

void scheduler_destroy(scheduler_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    scheduler_t *self = *self_p;
    actor_t *workers[MAX_WORKERS];
    for (int i = 0; i < self->nworkers; i++)
        workers[i] = self->workers[i].actor;
    actor_stop_all(workers, (size_t)self->nworkers);
    for (int i = 0; i < self->nworkers; i++)
        actor_destroy(&self->workers[i].actor);
    actor_destroy(&self->journal_writer);
    taskq_destroy(&self->ready);
    heap_destroy(&self->delayed);
    ops_free(&self->ops);
    journal_destroy(&self->journal);
    for (int i = 0; i < RECENT; i++) {
        free(self->recent[i].type);
        free(self->recent[i].error);
    }
    json_decref(self->task_stats);
    json_decref(self->handlers);
    pthread_cond_destroy(&self->work);
    pthread_cond_destroy(&self->journal_wake);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* ---- the request side ---------------------------------------------------- */

static json_t *task_error(const char *fmt, const char *arg)
{
    return wire_error_key("error", fmt, arg);
}

typedef struct {
    bool wait;
    double delay_s, timeout_s;
    int max_retries;
} options_t;

/* Keel's optional fields; NULL, or the error reply. */
static json_t *parse_options(scheduler_t *self, json_t *body, options_t *o)
{
    o->wait = true;
    o->delay_s = 0;
    o->timeout_s = self->config.timeout_s;
    o->max_retries = self->config.max_retries;
    json_t *v;
    if ((v = json_object_get(body, "wait")) && !json_is_null(v)) {
        if (!json_is_boolean(v))
            return task_error("Invalid %s: must be true or false", "wait");
        o->wait = json_is_true(v);
    }
    if ((v = json_object_get(body, "delay_s")) && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 7 * 86400)
            return task_error("Invalid %s: seconds from 0 to 604800", "delay_s");
        o->delay_s = json_number_value(v);
        if (o->delay_s > 0)
            o->wait = false;
    }
    if ((v = json_object_get(body, "timeout_s")) && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) <= 0 || json_number_value(v) > 3600)
            return task_error("Invalid %s: seconds above 0, at most 3600", "timeout_s");
        o->timeout_s = json_number_value(v);
    }
    if ((v = json_object_get(body, "max_retries")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 10)
            return task_error("Invalid %s: an integer from 0 to 10", "max_retries");
        o->max_retries = (int)json_integer_value(v);
    }
    return NULL;
}

static bool stopping(scheduler_t *self)
{
    return self->config.service_state
        && atomic_load(self->config.service_state) == self->config.stopping_state;
}

/* Waits (lock held) until the task is committed, or also done when `done`. */
static void wait_for(scheduler_t *self, task_t *task, bool done, double deadline)
{
    while (!(task->done || (!done && task->committed)) && clock_mono() < deadline
           && !stopping(self)) {
        struct timespec until;
        clock_deadline(0.1, &until);
        pthread_cond_timedwait(&task->cond, &self->lock, &until);
    }
}

static json_t *outcome_reply(task_t *task)
{
    if (!task->done) {
        json_t *reply = wire_error_key("error", "Task %s is still running; it stays queued", task->type);
        json_object_set_new(reply, "task_id", json_integer(task->id));
        return reply;
    }
    if (!task->ok)
        return wire_error_key("error", "%s", task->error ? task->error : "Task failed");
    char message[300];
    snprintf(message, sizeof message, "Task %s processed successfully", task->type);
    return json_pack("{s:s, s:s}", "status", "success", "message", message);
}

static json_t *submit(scheduler_t *self, task_t *task, const options_t *o)
{
    pthread_mutex_lock(&self->lock);
    size_t cap = taskq_capacity(self->ready);
    if (self->pending[task->prio] >= cap) {
        size_t held = self->pending[task->prio];
        pthread_mutex_unlock(&self->lock);
        count(self, "keel_resource_task_refusals_total", "reason", "queue_full", NULL, NULL);
        json_t *reply = wire_error_key("error", "Task queue full: priority %s holds %zu of %zu tasks",
                                       task_prio_name(task->prio), held, cap);
        task_unref(task);
        return reply;
    }
    self->pending[task->prio]++;
    task->id = self->next_id++;
    task->refs++;               /* the waiter's */
    grow((void **)&self->ops.inserts, &self->ops.cap_inserts, self->ops.ninserts + 1,
         sizeof(task_t *));
    self->ops.inserts[self->ops.ninserts++] = task;
    /* The first request to find the journal idle writes the batch itself:
     * a lone producer pays no thread hand-off, a crowd still shares one
     * commit, gathered by the journal thread while this one is on disk. */
    if (!self->committing)
        commit_locked(self);
    else
        pthread_cond_signal(&self->journal_wake);
    double deadline = clock_mono() + self->config.reply_wait_s;
    wait_for(self, task, o->wait, deadline);
    json_t *reply;
    if (!o->wait && task->committed)
        reply = json_pack("{s:s, s:s, s:I, s:s}", "status", "success", "message", "Task queued",
                          "task_id", (json_int_t)task->id, "priority", task_prio_name(task->prio));
    else
        reply = outcome_reply(task);
    task_unref(task);
    pthread_mutex_unlock(&self->lock);
    return reply;
}

json_t *scheduler_task(scheduler_t *self, json_t *body)
{
    json_t *type = json_object_get(body, "type"), *data = json_object_get(body, "data");
    if (!pycompat_truthy(type) || !pycompat_truthy(data))
        return task_error("%s", "Invalid task format. Required fields: type, data");
    char name[NAMES_BUF];
    if (names_refuse(self->metrics, "resource", "type", json_string_value(type), name, sizeof name))
        return task_error("Invalid task format: %s", name);
    pycompat_str(type, name, sizeof name);
    if (!json_is_string(type) || !known_type(self, name)) {
        pthread_mutex_lock(&self->lock);
        stats_record(self, name, false, 0.0);
        pthread_mutex_unlock(&self->lock);
        count(self, "keel_resource_tasks_total", "type", "unknown", "outcome", "failed");
        json_t *details = json_pack("{s:s, s:s}", "stack_trace", "NoneType: None\n", "task_type", name);
        errpub_report(self->errors, "task_processing_error", "ERROR", details,
                      "Unknown task type: %s", name);
        json_decref(details);
        return task_error("Unknown task type: %s", name);
    }
    options_t o;
    json_t *error = parse_options(self, body, &o);
    if (error)
        return error;
    task_t *task = task_new(name, data, task_prio_parse(json_object_get(body, "priority")));
    task->timeout_s = o.timeout_s;
    task->max_retries = o.max_retries;
    task->created_at = clock_wall();
    task->not_before = o.delay_s > 0 ? task->created_at + o.delay_s : 0;
    return submit(self, task, &o);
}

json_t *scheduler_queue_stats(scheduler_t *self)
{
    pthread_mutex_lock(&self->lock);
    json_t *stats = json_pack("{s:{s:I, s:I, s:I}, s:O}", "queue_sizes",
                              "high", (json_int_t)self->pending[TASK_PRIO_HIGH],
                              "medium", (json_int_t)self->pending[TASK_PRIO_MEDIUM],
                              "low", (json_int_t)self->pending[TASK_PRIO_LOW],
                              "task_stats", self->task_stats);
    pthread_mutex_unlock(&self->lock);
    json_t *copy = json_deep_copy(stats);
    json_decref(stats);
    return copy;
}

static json_t *on_schedule_task(void *ctx, wire_request_t *req)
{
    return scheduler_task(ctx, req->body);
}

static json_t *recent_json(const recent_t *r)
{
    char ts[40];
    clock_iso_local(r->finished_at, ts, sizeof ts);
    json_t *task = json_pack("{s:I, s:s, s:s, s:i, s:s}", "task_id", (json_int_t)r->id,
                             "type", r->type, "state", r->ok ? "succeeded" : "failed",
                             "attempts", r->attempts + (r->ok ? 1 : 0), "finished_at", ts);
    if (r->gpu >= 0)
        json_object_set_new(task, "worker", json_integer(r->gpu));
    if (r->error)
        json_object_set_new(task, "error", json_string(r->error));
    return task;
}

static json_t *on_get_task(void *ctx, wire_request_t *req)
{
    scheduler_t *self = ctx;
    json_t *id = json_object_get(req->body, "task_id");
    if (!json_is_integer(id))
        return wire_error_key("error", "Invalid task_id: an integer is required");
    json_int_t want = json_integer_value(id);
    json_t *task = NULL;
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < RECENT && !task; i++)
        if (self->recent[i].type && self->recent[i].id == want)
            task = recent_json(&self->recent[i]);
    pthread_mutex_unlock(&self->lock);
    if (!task)
        task = journal_get(self->journal, want);
    if (!task)
        return wire_error_key("error", "Task %lld not found", (long long)want);
    return json_pack("{s:s, s:o}", "status", "success", "task", task);
}

static json_t *on_list_tasks(void *ctx, wire_request_t *req)
{
    scheduler_t *self = ctx;
    json_t *limit = json_object_get(req->body, "limit");
    json_int_t n = json_is_integer(limit) ? json_integer_value(limit) : 100;
    if (n < 1 || n > 1000)
        return wire_error_key("error", "Invalid limit: an integer from 1 to 1000");
    json_t *stats = scheduler_queue_stats(self);
    json_t *reply = json_pack("{s:s, s:o, s:O, s:I}", "status", "success",
                              "tasks", journal_list(self->journal, (int)n),
                              "queue_sizes", json_object_get(stats, "queue_sizes"),
                              "workers", (json_int_t)self->nworkers);
    json_decref(stats);
    return reply;
}

static const wire_route_t routes[] = {
    /* no kept agent sends it (AdvancedRouter names TaskScheduler a dependency and never calls it) */
    { WIRE_ACTION, "schedule_task", on_schedule_task, "TaskScheduler", ROUTE_ADMIN },
    { WIRE_ACTION, "get_task", on_get_task, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "list_tasks", on_list_tasks, NULL, ROUTE_PUBLIC },
    { 0 },
};

void scheduler_attach(scheduler_t *self, wire_server_t *wire)
{
    wire_server_attach(wire, routes, self);
}
