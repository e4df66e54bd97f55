/*  registry: ServiceRegistry's endpoint records (CO-12..CO-24): validation with
 *  pydantic's lax rules, the flat get_agent_endpoint reply every BaseAgent
 *  client depends on, and what the original lacked: unregister, heartbeats
 *  with a TTL, the health port of every record, names looked up through an
 *  alias table (the coordinator's MemoryOrchestrator finds the agent that
 *  registered as MemoryOrchestratorService), each agent's one state as
 *  ObservabilityHub reports it, and a revision number with a change log
 *  (watch_registry) so a watcher can resume without missing a change. */
#ifndef KEEL_CORE_REGISTRY_H
#define KEEL_CORE_REGISTRY_H
#include <jansson.h>

#include "backend.h"
#include "metrics.h"
#include "wire.h"

typedef struct registry_t registry_t;

/* aliases: {name: [other names]} (borrowed; copied), tried in order when
 * the name itself is not registered. */
registry_t *core_registry_new(backend_t *backend, metrics_t *metrics, double ttl_s, json_t *aliases);
void core_registry_destroy(registry_t **self_p);
/* Checks an AgentRegistration and builds the stored record (without
 * last_registered); the agent_id goes to id.  NULL with the validation
 * text in err. */
json_t *core_registry_validate(json_t *fields, char *id, size_t idlen, char *err, size_t errlen);
/* Validates and stores; 0, or -1 with the reason in err. */
int core_registry_register(registry_t *self, json_t *fields, char *id, size_t idlen,
                      char *err, size_t errlen);
/* The stored record of the name or, failing that, of its first registered
 * alias (a new reference), or NULL with "Agent X not found" or the
 * backend's error in err. */
json_t *core_registry_lookup(registry_t *self, const char *name, char *err, size_t errlen);
/* Agent ids in registration order, or NULL with err. */
json_t *core_registry_list(registry_t *self, char *err, size_t errlen);
/* Every record with its heartbeat age and its state (agentstate.h): the
 * hub's verdict while fresh, else from the heartbeat alone. */
json_t *core_registry_describe(registry_t *self, char *err, size_t errlen);
long core_registry_size(registry_t *self);
/* get_agent_endpoint, list_agents, unregister_agent, heartbeat,
 * describe_agents, watch_registry, report_agent_states. */
void core_registry_attach(registry_t *self, wire_server_t *wire);
#endif
