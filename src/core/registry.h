/*  registry: ServiceRegistry's endpoint records (CO-12..CO-24): validation with
 *  pydantic's lax rules, the flat get_agent_endpoint reply every BaseAgent
 *  client depends on, and what the original lacked: unregister, heartbeats
 *  with a TTL, the health port of every record, names looked up through an
 *  alias table (the coordinator's MemoryOrchestrator finds the agent that
 *  registered as MemoryOrchestratorService), each agent's one state as
 *  ObservabilityHub reports it, and a revision number with a change log
 *  (watch_registry) so a watcher can resume without missing a change.
 *  An agent id longer than NAMES_MAX (names.h) is refused, never cut, and
 *  each source address may create only so many new names a minute
 *  (ratelimit.h), so junk from one address cannot bury the real agents. */
#ifndef KEEL_CORE_REGISTRY_H
#define KEEL_CORE_REGISTRY_H
#include <jansson.h>

#include "backend.h"
#include "metrics.h"
#include "names.h"
#include "wire.h"

typedef struct registry_t registry_t;

/* aliases: {name: [other names]} (borrowed; copied), tried in order when
 * the name itself is not registered. */
registry_t *registry_new(backend_t *backend, metrics_t *metrics, double ttl_s, json_t *aliases);
void registry_destroy(registry_t **self_p);
/* Each source address may create `burst` new names at once and
 * `per_minute` more each minute, in the registry and in the tables that
 * ask registry_admit; burst <= 0 (the default) is no limit. */
void registry_limit_new_names(registry_t *self, double burst, double per_minute);
/* Whether `source` (a client's address; NULL is Keel itself, never
 * limited) may create one more name in `table` now: 0, or -1 with the
 * refusal in err, counted in keel_core_new_names_refused_total. */
int registry_admit(registry_t *self, const char *table, const char *source, char *err, size_t errlen);
/* Checks an AgentRegistration and builds the stored record (without
 * last_registered); the agent_id goes to id (NAMES_BUF bytes hold any
 * valid one).  NULL with the validation text in err. */
json_t *registry_validate(json_t *fields, char *id, size_t idlen, char *err, size_t errlen);
/* Validates and stores a registration that came from `source` (as in
 * registry_admit: a new agent id takes a token of its source); 0, or
 * -1 with the reason in err. */
int registry_register(registry_t *self, json_t *fields, const char *source, char *id, size_t idlen,
                           char *err, size_t errlen);
/* A write to the agent `id` was undone (a group commit failed): a change
 * like any other for watchers and the replies kept. */
void registry_reverted(registry_t *self, const char *id);
/* The stored record of the name or, failing that, of its first registered
 * alias (a new reference), or NULL with "Agent X not found" or the
 * backend's error in err. */
json_t *registry_lookup(registry_t *self, const char *name, char *err, size_t errlen);
/* Agent ids in registration order, or NULL with err. */
json_t *registry_list(registry_t *self, char *err, size_t errlen);
/* Every record with its heartbeat age (a registration counts as one), the
 * age of its last heartbeat action (beat_age_s, only when it sent one),
 * and its state (agentstate.h): the hub's verdict while fresh, else from
 * the heartbeat alone. */
json_t *registry_describe(registry_t *self, char *err, size_t errlen);
long registry_size(registry_t *self);
/* get_agent_endpoint, list_agents, unregister_agent, heartbeat,
 * describe_agents, watch_registry, report_agent_states. */
void registry_attach(registry_t *self, wire_server_t *wire);
#endif
