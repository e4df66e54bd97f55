/*  supervisor: UnifiedSystemAgent (CO-67..CO-69): the status of the agents it
 *  watches (pinged at an interval), and the processes it runs: the agents
 *  listed under core.agents with a command, each a child (child.h): started
 *  in dependency order, restarted with exponential backoff, their output
 *  kept in log files or logged, their exit codes recorded.  The only owner
 *  of processes in Keel: ObservabilityHub's and ErrorBus's recovery ask it
 *  to restart an agent. */
#ifndef KEEL_CORE_SUPERVISOR_H
#define KEEL_CORE_SUPERVISOR_H
#include <jansson.h>

#include "service.h"

typedef struct supervisor_t supervisor_t;

supervisor_t *supervisor_new(service_t *svc);
void supervisor_destroy(supervisor_t **self_p);
int supervisor_start(supervisor_t *self);
void supervisor_attach(supervisor_t *self, wire_server_t *wire);
void supervisor_health(supervisor_t *self, json_t *dict);
/* get_agent_info with the key `agent` (variant A's reply). */
json_t *supervisor_agent_info(supervisor_t *self, json_t *agent);
#endif
