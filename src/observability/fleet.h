/*  fleet: the agents the hub watches and their health.  Agents come from
 *  the configuration (observability.agents) and from CoreOrchestrator's
 *  registry (describe_agents, which also gives each agent's last heartbeat);
 *  a sweep probes all of them at once (prober.h) every interval.
 *
 *  Each agent has the raw result of its last probe (HealthMonitor's record:
 *  healthy, degraded, unhealthy, timeout, error) and a damped probe state
 *  that only changes after N failures among the last M probes, so one lost
 *  reply never flaps it.  From the damped probe, the registry's heartbeat
 *  and the partition rule, agentstate_combine makes the agent's one state
 *  (up, degraded, down, unknown, with the reason) that every view shows and
 *  recovery acts on; the hub sends these verdicts back to the registry, so
 *  `keelctl agents` shows them too.  When most agents of one machine fail
 *  together the link is suspected: they become unknown, not down, and are
 *  not restarted.  State changes are published as JSON on a PUB socket and
 *  recorded in health_events.
 *
 *  The table is bounded (observability.max_agents) and keeps the real
 *  agents when junk fills the registry: configured agents, and agents
 *  whose own heartbeats the registry saw within its TTL, are always
 *  watched; when the table is full, a name new to the hub takes the place
 *  of the agent that ranks lowest (one that has not answered a probe
 *  within the TTL first, least recently seen first) only if it ranks above
 *  it, and is refused otherwise.  Evictions and refusals are counted. */
#ifndef OBS_FLEET_H
#define OBS_FLEET_H
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

#include "agentstate.h"
#include "config.h"
#include "hubdb.h"
#include "liveness.h"
#include "metrics.h"
#include "prober.h"
#include "ring.h"

/* The damped probe state: one input of the agent's state, not the state. */
typedef enum { AGENT_UNKNOWN, AGENT_UP, AGENT_DOWN } agent_state_t;

typedef struct {
    char *name, *host, *machine, *source;
    int port;                   /* the ZMQ port probed */
    int http_port;              /* HTTP /health port; 0 = none */
    bool zmq_check, http_check;
    char *request;              /* the probe's JSON text */
    hprobe_expect_t expect;
    int timeout_ms;
    bool required, auto_recover;
    int strategy;               /* configured first recovery tier, 1..4 */
    json_t *dependencies;       /* array of names */
    bool removed;               /* gone from the registry: freed by the next sweep */
    /* last probe */
    hprobe_result_t result;
    double last_checked;        /* unix seconds; 0 = never */
    double probe_started;       /* monotonic start of that probe */
    double latency_s;
    json_t *details;
    char error[192];
    /* damping and prediction */
    unsigned outcomes;          /* bit 0 = newest probe; 1 = failed */
    bool skipped;               /* the last sweep ran out of time before probing it */
    int probes;
    agent_state_t probe_state;  /* damped */
    double failing_since;       /* wall time the current run of failures began */
    ring_t *latency;
    double failure_probability;
    bool predicted;             /* failure_predicted already reported */
    /* the registry's view, from describe_agents */
    double heartbeat_at;        /* wall time of the last registration or heartbeat; 0 = none */
    double beat_at;             /* wall time of its last heartbeat action alone; 0 = none */
    double ttl_s;
    double answered_at;         /* wall time of the last probe it answered; 0 = never */
    /* the one state (agentstate.h) */
    bool partitioned;
    agentstate_t state;
    double state_since;         /* wall time */
    char reason[256];
    /* recovery (recovery.c) */
    int tier;                   /* tier of the attempt in progress; 0 = none */
    double tier_at;             /* monotonic time of that attempt */
    double last_restart;        /* monotonic */
    bool gave_up;
    /* probes since the history last took them (fleet_take_spans) */
    int span_probes, span_failures, span_answered;
    double span_latency_s;      /* summed over the answered probes */
} agent_t;

typedef struct fleet_t fleet_t;
typedef void (fleet_sweep_fn)(void *arg);

typedef struct {
    config_t *config;
    hubdb_t *db;
    const char *status_endpoint;    /* PUB bind, or NULL */
    const char *registry_endpoint;  /* CoreOrchestrator, or NULL */
    liveness_t *liveness;           /* the service's: the sweep beats a stamp */
} fleet_args_t;

fleet_t *fleet_new(const fleet_args_t *args);
void fleet_destroy(fleet_t **self_p);
/* Called by the sweeper after every sweep (recovery, prediction). */
void fleet_on_sweep(fleet_t *self, fleet_sweep_fn *fn, void *arg);
int fleet_start(fleet_t *self);
void fleet_stop(fleet_t *self);

/* Agents are read and changed under this lock. */
void fleet_lock(fleet_t *self);
void fleet_unlock(fleet_t *self);
size_t fleet_count(fleet_t *self);
agent_t *fleet_agent(fleet_t *self, size_t i);
agent_t *fleet_find(fleet_t *self, const char *name);
/* Forgets an agent's probe history (tier2's clear_agent_state); caller locks. */
void fleet_clear_history(fleet_t *self, agent_t *agent);

/* HealthMonitor's per-agent record plus Keel's fields (state, reason, ...);
 * caller locks. */
json_t *fleet_agent_record(agent_t *a);
/* {name: record} of every agent. */
json_t *fleet_agents_health(fleet_t *self);
/* {machine: {agents, up, degraded, down, unknown, partitioned, status}}. */
json_t *fleet_machines(fleet_t *self);
/* Agents watched, and how many of them are up / degraded or down. */
void fleet_counts(fleet_t *self, int *total, int *healthy, int *unhealthy);
/* "healthy" iff every agent's record is healthy (OH-39: one not yet
 * checked is not); no agents at all is healthy. */
const char *fleet_overall(fleet_t *self);
/* Sets the per-agent gauges for /metrics. */
void fleet_export(fleet_t *self, metrics_t *metrics);
/* Each agent's probes since the previous call, {name: {probes, failures,
 * answered, latency_s}} (latency summed over the answered ones), and a
 * new span begun.  A new reference. */
json_t *fleet_take_spans(fleet_t *self);
/* Duration of the last sweep in seconds and sweeps done. */
void fleet_sweep_stats(fleet_t *self, double *last_s, long *count);
/* N-of-M: the damped state after one more outcome (pure, for tests). */
agent_state_t fleet_next_state(agent_state_t state, unsigned outcomes, int probes,
                               int n_fail, int m_window);
#endif
