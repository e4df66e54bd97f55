/*  tiers: see tiers.h.
 *
 *  Decisions are taken under the fleet lock and the calls made without
 *  it: a restart can take CoreOrchestrator seconds, and sweeps must go on
 *  meanwhile.  Cooldowns double per tier (base restart_cooldown, 60 s by
 *  default), so a lower tier always gets time to show it worked before a
 *  heavier one runs; only a probe that started after the attempt and
 *  failed may escalate it (one already in flight proves nothing, and an
 *  agent whose latest probe succeeded is on its way back).  tier4's restart_all_agents only
 *  restarts agents that allow auto_recover, the only ones the operator let
 *  the hub touch. */
#include "tiers.h"
#include "actor.h"
#include "child.h"
#include "clock.h"
#include "log.h"
#include "wire.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define KICK_WAIT_S 3600        /* a kick ends the wait */

struct tiers_t {
    config_t *config;
    fleet_t *fleet;
    hubdb_t *db;
    errpub_t *errors;
    char *core;
    char *self_healing;
    double base_cooldown, predict_threshold;
    int timeout_ms;
    actor_t *runner;            /* a pass after every sweep */
    atomic_bool kicked;
};

typedef struct {
    char *name;
    int tier;
    json_t *deps;
    bool give_up, predicted, recovered;
    double probability;
} job_t;

json_t *tiers_tier_actions(int tier)
{
    switch (tier) {
    case 2: return json_pack("[s,s]", "clear_agent_state", "restart_agent");
    case 3: return json_pack("[s,s,s]", "restart_dependencies", "clear_agent_state", "restart_agent");
    case 4: return json_pack("[s]", "restart_all_agents");
    default: return json_pack("[s]", "restart_agent");
    }
}

double tiers_cooldown(tiers_t *self, int tier)
{
    return self->base_cooldown * pow(2.0, tier > 1 ? tier - 1 : 0);
}

static actor_run_fn recover;

tiers_t *tiers_new(config_t *config, fleet_t *fleet, hubdb_t *db, errpub_t *errors,
                   const char *core_endpoint)
{
    tiers_t *self = calloc(1, sizeof *self);
    self->config = config;
    self->fleet = fleet;
    self->db = db;
    self->errors = errors;
    self->core = strdup(core_endpoint);
    const char *sh = config_str(config, "observability.self_healing_endpoint", "");
    self->self_healing = *sh ? strdup(sh) : NULL;
    self->base_cooldown = config_double(config, "observability.recovery.cooldown_s", 60);
    self->predict_threshold = config_double(config, "observability.predict_threshold", 0.7);
    self->timeout_ms = (int)config_int(config, "observability.recovery.timeout_ms", 5000);
    self->runner = actor_new_runner("obs tiers", recover, NULL, self);
    return self;
}

void tiers_destroy(tiers_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tiers_t *self = *self_p;
    actor_destroy(&self->runner);
    free(self->core);
    free(self->self_healing);
    free(self);
    *self_p = NULL;
}

/* One restart, asked of CoreOrchestrator; 0 on success, else the reason. */
static int restart_agent(tiers_t *self, const char *name, char *why, size_t len)
{
    int rc = child_ask_restart(self->config, self->core, "ObservabilityHub", name, NULL, self->timeout_ms,
                               why, len);
    hubdb_recovery_action(self->db, name, "restart_agent", rc == 0, rc == 0 ? NULL : why);
    return rc;
}

static void clear_state(tiers_t *self, const char *name)
{
    fleet_lock(self->fleet);
    agent_t *a = fleet_find(self->fleet, name);
    if (a)
        fleet_clear_history(self->fleet, a);
    fleet_unlock(self->fleet);
    hubdb_recovery_action(self->db, name, "clear_agent_state", true, NULL);
}

static json_t *recoverable_agents(tiers_t *self)
{
    json_t *names = json_array();
    fleet_lock(self->fleet);
    for (size_t i = 0; i < fleet_count(self->fleet); i++) {
        agent_t *a = fleet_agent(self->fleet, i);
        if (!a->removed && a->auto_recover)
            json_array_append_new(names, json_string(a->name));
    }
    fleet_unlock(self->fleet);
    return names;
}

/* Runs a tier's actions in order; the results and whether all succeeded. */
static bool run_tier(tiers_t *self, const char *name, int tier, json_t *deps, json_t *results)
{
    json_t *actions = tiers_tier_actions(tier);
    bool ok = true;
    size_t i, k;
    json_t *action, *dep;
    char why[256];
    json_array_foreach(actions, i, action) {
        const char *act = json_string_value(action);
        if (!strcmp(act, "clear_agent_state")) {
            clear_state(self, name);
            json_array_append_new(results, json_pack("{s:s, s:b}", "action", act, "success", 1));
            continue;
        }
        json_t *targets = !strcmp(act, "restart_dependencies") ? json_incref(deps)
                          : !strcmp(act, "restart_all_agents") ? recoverable_agents(self)
                          : json_pack("[s]", name);
        json_array_foreach(targets, k, dep) {
            if (!json_is_string(dep))
                continue;
            bool done = restart_agent(self, json_string_value(dep), why, sizeof why) == 0;
            ok = ok && done;
            json_t *r = json_pack("{s:s, s:s, s:b}", "action", act, "agent", json_string_value(dep),
                                  "success", done);
            if (!done)
                json_object_set_new(r, "error", json_string(why));
            json_array_append_new(results, r);
        }
        json_decref(targets);
    }
    char strategy[8];
    snprintf(strategy, sizeof strategy, "tier%d", tier);
    json_t *details = json_pack("{s:s, s:o, s:O}", "strategy", strategy, "actions", actions,
                                "results", results);
    hubdb_event(self->db, name, "recovery_attempted", details);
    errpub_report(self->errors, "recovery_attempted", "WARNING", details,
                  "%s recovery of %s: %s", strategy, name, ok ? "done" : "failed");
    json_decref(details);
    if (!ok) {
        json_t *failed = json_pack("{s:s, s:s}", "error", "restart failed", "strategy", strategy);
        hubdb_event(self->db, name, "recovery_failed", failed);
        errpub_report(self->errors, "recovery_failed", "ERROR", failed, "%s recovery of %s failed",
                      strategy, name);
        json_decref(failed);
    }
    return ok;
}

/* The cooldown and the "probed since" rule count from the end of the
 * attempt: a restart that took seconds must not look failed because a probe
 * ran while it was still going on. */
static void attempt_done(tiers_t *self, const char *name)
{
    fleet_lock(self->fleet);
    agent_t *a = fleet_find(self->fleet, name);
    if (a)
        a->tier_at = a->last_restart = clock_mono();
    fleet_unlock(self->fleet);
}

json_t *tiers_trigger(tiers_t *self, const char *name, int tier)
{
    fleet_lock(self->fleet);
    agent_t *a = fleet_find(self->fleet, name);
    json_t *deps = a ? json_deep_copy(a->dependencies) : json_array();
    if (a) {
        a->tier = tier;
        a->tier_at = a->last_restart = clock_mono();
    }
    fleet_unlock(self->fleet);
    json_t *results = json_array();
    bool ok = run_tier(self, name, tier, deps, results);
    attempt_done(self, name);
    json_decref(deps);
    char strategy[8];
    snprintf(strategy, sizeof strategy, "tier%d", tier);
    return json_pack("{s:s, s:s, s:s, s:o, s:o}", "status", ok ? "success" : "error",
                     "agent_name", name, "strategy", strategy,
                     "actions", tiers_tier_actions(tier), "results", results);
}

/* Under the fleet lock: what each agent needs now. */
static void plan(tiers_t *self, job_t **jobs_out, size_t *n_out)
{
    double now = clock_mono();
    size_t n = 0, cap = fleet_count(self->fleet) + 1;
    job_t *jobs = calloc(cap, sizeof *jobs);
    for (size_t i = 0; i < fleet_count(self->fleet); i++) {
        agent_t *a = fleet_agent(self->fleet, i);
        if (a->removed)
            continue;
        job_t job = { 0 };
        if (a->failure_probability > self->predict_threshold && !a->predicted) {
            a->predicted = true;
            job.predicted = true;
            job.probability = a->failure_probability;
        } else if (a->failure_probability <= self->predict_threshold) {
            a->predicted = false;
        }
        if (a->state == AGENTSTATE_UP && (a->tier || a->gave_up)) {
            job.recovered = a->tier > 0;
            a->tier = 0;
            a->gave_up = false;
        } else if (a->state == AGENTSTATE_DOWN && a->auto_recover && !a->gave_up) {
            if (!a->tier && (!a->last_restart || now - a->last_restart >= self->base_cooldown)) {
                job.tier = a->strategy;
            } else if (a->tier && (a->outcomes & 1) && a->probe_started > a->tier_at
                       && now - a->tier_at >= tiers_cooldown(self, a->tier)) {
                if (a->tier < 4)
                    job.tier = a->tier + 1;
                else
                    job.give_up = true;
            }
            if (job.tier) {
                a->tier = job.tier;
                a->tier_at = a->last_restart = now;
            }
            if (job.give_up)
                a->gave_up = true;
        }
        if (job.tier || job.give_up || job.predicted || job.recovered) {
            job.name = strdup(a->name);
            job.deps = json_deep_copy(a->dependencies);
            jobs[n++] = job;
        }
    }
    *jobs_out = jobs;
    *n_out = n;
}

static void alert_self_healing(tiers_t *self, const char *name, double probability)
{
    if (!self->self_healing)
        return;
    char ts[40], err[128];
    clock_iso_local(clock_wall(), ts, sizeof ts);
    json_t *req = json_pack("{s:s, s:s, s:s, s:f, s:s}", "action", "alert", "agent_name", name,
                            "alert_type", "failure_predicted", "severity", probability, "timestamp", ts);
    json_t *reply = wire_call_agent(self->self_healing, req, 5000, 0, err, sizeof err);
    if (!reply)
        log_warn("observability", "SelfHealingAgent alert for %s: %s", name, err);
    json_decref(reply);
    json_decref(req);
}

static void run_job(tiers_t *self, job_t *job)
{
    if (job->predicted) {
        json_t *d = json_pack("{s:f}", "probability", job->probability);
        hubdb_event(self->db, job->name, "failure_predicted", d);
        json_decref(d);
        alert_self_healing(self, job->name, job->probability);
    }
    if (job->recovered) {
        hubdb_event(self->db, job->name, "recovery_succeeded", NULL);
        log_info("observability", "%s is up again after recovery", job->name);
    }
    if (job->tier) {
        json_t *results = json_array();
        run_tier(self, job->name, job->tier, job->deps, results);
        json_decref(results);
        attempt_done(self, job->name);
    }
    if (job->give_up) {
        json_t *d = json_pack("{s:s}", "error", "still down after tier4");
        hubdb_event(self->db, job->name, "recovery_gave_up", d);
        errpub_report(self->errors, "recovery_gave_up", "CRITICAL", d,
                      "%s is still down after tier4 recovery; giving up until it returns", job->name);
        log_error("observability", "recovery of %s gave up after tier4", job->name);
        json_decref(d);
    }
}

static void recover(actor_t *actor, void *arg)
{
    tiers_t *self = arg;
    while (actor_wait(actor, KICK_WAIT_S)) {
        if (!atomic_exchange(&self->kicked, false))
            continue;
        job_t *jobs;
        size_t n;
        fleet_lock(self->fleet);
        plan(self, &jobs, &n);
        fleet_unlock(self->fleet);
        for (size_t i = 0; i < n; i++) {
            run_job(self, &jobs[i]);
            free(jobs[i].name);
            json_decref(jobs[i].deps);
        }
        free(jobs);
    }
}

void tiers_kick(void *arg)
{
    tiers_t *self = arg;
    atomic_store(&self->kicked, true);
    actor_wake(self->runner);
}

int tiers_start(tiers_t *self)
{
    return actor_start(self->runner);
}
