/*  recovery: see recovery.h.
 *
 *  One ticker (actor.h) runs both EMS loops: the heartbeat check every
 *  heartbeat_interval_s and the recovery worker every poll_s, so the two
 *  never race over an agent's state; it sleeps until the sooner is due.
 *  Detection keeps the original's timing (an agent silent for more than
 *  45 s gains a miss per 15 s check and goes offline at 3: about 75 to 90 s
 *  after its last beat), and the restart task is enqueued once, on the
 *  transition to offline.
 *
 *  The registry lives in memory, as it did in EMS: after a restart of the
 *  bus an agent is unknown until its next heartbeat, which is the safe
 *  direction (no restart storm from stale state). */
#include "recovery.h"
#include "actor.h"
#include "analysis.h"
#include "child.h"
#include "clock.h"
#include "log.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Heartbeats are unauthenticated: a bound on names keeps a flood of
 * invented ones from growing the registry without limit. */
#define MAX_AGENTS 10000

typedef struct agent_t {
    char *name;
    double last_heartbeat;
    int missed;
    bool offline;
    struct agent_t *next;
} agent_t;

typedef struct task_t {
    char *action, *target, *reason;
    json_t *details;
    int attempts;
    struct task_t *next;
} task_t;

struct recovery_t {
    recovery_config_t config;
    char *core_endpoint;
    evstore_t *store;
    fanout_t *fanout;
    pthread_mutex_t lock;
    agent_t *agents;
    size_t nagents;
    task_t *head, *tail;
    size_t queued;
    actor_t *ticker;
    double next_check, next_poll;   /* the ticker's own, monotonic */
};

static actor_tick_fn recovery_pass;

recovery_t *recovery_new(const recovery_config_t *config, evstore_t *store, fanout_t *fanout,
                         liveness_t *liveness)
{
    recovery_t *self = calloc(1, sizeof *self);
    self->config = *config;
    self->core_endpoint = strdup(config->core_endpoint);
    self->config.core_endpoint = self->core_endpoint;
    self->store = store;
    self->fanout = fanout;
    pthread_mutex_init(&self->lock, NULL);
    self->ticker = actor_new("errorbus recovery", fmin(config->heartbeat_interval_s, config->poll_s),
                             recovery_pass, self);
    actor_delay_first(self->ticker);
    /* A pass may wait for one restart_agent call. */
    actor_watch(self->ticker, liveness, fmax(config->heartbeat_interval_s, config->poll_s)
                                        + config->call_timeout_ms / 1000.0);
    return self;
}

static void task_free(task_t *t)
{
    free(t->action);
    free(t->target);
    free(t->reason);
    json_decref(t->details);
    free(t);
}

void recovery_destroy(recovery_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    recovery_t *self = *self_p;
    actor_destroy(&self->ticker);
    while (self->agents) {
        agent_t *a = self->agents;
        self->agents = a->next;
        free(a->name);
        free(a);
    }
    while (self->head) {
        task_t *t = self->head;
        self->head = t->next;
        task_free(t);
    }
    pthread_mutex_destroy(&self->lock);
    free(self->core_endpoint);
    free(self);
    *self_p = NULL;
}

static agent_t *find(recovery_t *self, const char *name)
{
    for (agent_t *a = self->agents; a; a = a->next)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

int recovery_heartbeat(recovery_t *self, const char *name)
{
    pthread_mutex_lock(&self->lock);
    agent_t *a = find(self, name);
    if (!a && self->nagents >= MAX_AGENTS) {
        pthread_mutex_unlock(&self->lock);
        return -1;
    }
    if (!a) {
        self->nagents++;
        a = calloc(1, sizeof *a);
        a->name = strdup(name);
        a->next = self->agents;
        self->agents = a;
    }
    a->last_heartbeat = clock_wall();
    a->missed = 0;
    a->offline = false;
    pthread_mutex_unlock(&self->lock);
    return 0;
}

json_t *recovery_agents(recovery_t *self)
{
    json_t *agents = json_object();
    pthread_mutex_lock(&self->lock);
    for (agent_t *a = self->agents; a; a = a->next)
        json_object_set_new(agents, a->name, json_pack("{s:i, s:f, s:s}",
                            "missed_heartbeats", a->missed, "last_heartbeat", a->last_heartbeat,
                            "status", a->offline ? "offline" : "online"));
    pthread_mutex_unlock(&self->lock);
    return agents;
}

static void append_locked(recovery_t *self, task_t *t)
{
    t->next = NULL;
    if (self->tail)
        self->tail->next = t;
    else
        self->head = t;
    self->tail = t;
    self->queued++;
}

void recovery_enqueue(recovery_t *self, const char *action, const char *target,
                      const char *reason, json_t *details)
{
    task_t *t = calloc(1, sizeof *t);
    t->action = strdup(action);
    t->target = strdup(target);
    t->reason = strdup(reason);
    t->details = details ? json_incref(details) : NULL;
    pthread_mutex_lock(&self->lock);
    append_locked(self, t);
    pthread_mutex_unlock(&self->lock);
}

size_t recovery_queue_length(recovery_t *self)
{
    pthread_mutex_lock(&self->lock);
    size_t n = self->queued;
    pthread_mutex_unlock(&self->lock);
    return n;
}

/* EB-25, EB-26: one check over every agent. */
static void check_heartbeats(recovery_t *self, double now)
{
    pthread_mutex_lock(&self->lock);
    for (agent_t *a = self->agents; a; a = a->next) {
        if (now - a->last_heartbeat <= self->config.heartbeat_timeout_s)
            continue;
        a->missed++;
        if (a->missed >= self->config.max_missed && !a->offline) {
            a->offline = true;
            log_warn("errorbus", "agent %s offline after %d missed heartbeats", a->name, a->missed);
            task_t *t = calloc(1, sizeof *t);
            t->action = strdup("restart");
            t->target = strdup(a->name);
            t->reason = strdup("Missed heartbeats");
            append_locked(self, t);
        }
    }
    pthread_mutex_unlock(&self->lock);
}

static task_t *pop(recovery_t *self)
{
    pthread_mutex_lock(&self->lock);
    task_t *t = self->head;
    if (t) {
        self->head = t->next;
        if (!self->head)
            self->tail = NULL;
        self->queued--;
    }
    pthread_mutex_unlock(&self->lock);
    return t;
}

static void record_success(recovery_t *self, const char *agent)
{
    char id[64];
    normalise_new_id("", id, sizeof id);
    evstore_exec(self->store, "INSERT INTO recovery_actions(action_id, agent_name, action_type,"
                 " reason, timestamp, success, details) VALUES(?, ?, 'restart', 'Agent recovery',"
                 " ?, 1, '')", "ssd", id, agent, clock_wall());
}

/* The escalation the original crashed on: a stored critical event and an
 * alert, and the worker goes on. */
static void give_up(recovery_t *self, task_t *t)
{
    char message[512];
    snprintf(message, sizeof message, "Failed to restart %s after %d attempts", t->target,
             t->attempts);
    log_error("errorbus", "%s", message);
    json_t *payload = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:i}}", "source", "RecoveryManager",
                                "error_type", "recovery_failed", "message", message,
                                "severity", "critical", "details", "agent", t->target,
                                "attempts", t->attempts);
    char reason[64];
    event_t *e = normalise_payload(payload, FRAMING_INTERNAL, clock_wall(), "critical",
                                   reason, sizeof reason);
    json_decref(payload);
    if (e)
        evstore_submit(self->store, e);
    analysis_raise(self->store, self->fanout, "recovery_failed", t->target, "critical",
                   t->attempts, message);
}

/* EB-29 (changed): CoreOrchestrator supervises processes, so a restart is
 * its restart_agent (child.h).  Success is its "success" reply. */
static bool restart(recovery_t *self, const char *agent)
{
    char why[256];
    if (child_ask_restart(self->config.keys, self->config.core_endpoint, "ErrorBus", agent,
                          "Missed heartbeats", self->config.call_timeout_ms, why, sizeof why) == 0)
        return true;
    log_warn("errorbus", "restart of %s failed: %s", agent, why);
    return false;
}

static void run_task(recovery_t *self, task_t *t)
{
    if (strcmp(t->action, "restart") != 0) {
        log_info("errorbus", "recovery task %s for %s: %s (logged only)", t->action, t->target,
                 t->reason);
        task_free(t);
        return;
    }
    t->attempts++;
    if (restart(self, t->target)) {
        log_info("errorbus", "restarted %s (attempt %d)", t->target, t->attempts);
        record_success(self, t->target);
        task_free(t);
        return;
    }
    if (t->attempts < self->config.max_attempts) {
        pthread_mutex_lock(&self->lock);
        append_locked(self, t);
        pthread_mutex_unlock(&self->lock);
        return;
    }
    give_up(self, t);
    task_free(t);
}

static void recovery_pass(void *arg)
{
    recovery_t *self = arg;
    double now = clock_mono();
    if (now >= self->next_check) {
        check_heartbeats(self, clock_wall());
        self->next_check = now + self->config.heartbeat_interval_s;
    }
    if (now >= self->next_poll) {
        task_t *t = pop(self);
        if (t)
            run_task(self, t);
        self->next_poll = clock_mono() + self->config.poll_s;
    }
    actor_set_interval(self->ticker, fmax(0, fmin(self->next_check, self->next_poll) - clock_mono()));
}

int recovery_start(recovery_t *self)
{
    double now = clock_mono();
    self->next_check = now + self->config.heartbeat_interval_s;
    self->next_poll = now + self->config.poll_s;
    return actor_start(self->ticker);
}
