/*  recovery: ErrorManagementSystem's heartbeat monitor and recovery worker.
 *  Agents send heartbeats; one that stays silent past the timeout gains a
 *  missed heartbeat per check, goes offline at the limit and gets exactly
 *  one restart task.  The worker takes one task per poll and asks
 *  CoreOrchestrator to restart_agent (Keel supervises processes; the bus
 *  no longer kills and spawns by command-line match).  After the last
 *  failed attempt it stores a critical recovery_failed event and raises an
 *  alert instead of dying as the original did. */
#ifndef KEEL_ERRORBUS_RECOVERY_H
#define KEEL_ERRORBUS_RECOVERY_H
#include <jansson.h>

#include "config.h"
#include "evstore.h"
#include "liveness.h"
#include "fanout.h"

typedef struct {
    double heartbeat_interval_s;    /* 15 */
    double heartbeat_timeout_s;     /* 45 */
    int max_missed;                 /* 3 */
    double poll_s;                  /* 1: one task per poll */
    int max_attempts;               /* 3 */
    const char *core_endpoint;      /* CoreOrchestrator, for restart_agent */
    config_t *keys;                 /* signs the administrator's token restart_agent needs */
    int call_timeout_ms;            /* 5000 */
} recovery_config_t;

typedef struct recovery_t recovery_t;

/* The ticker beats a stamp of `liveness` (borrowed; NULL: none). */
recovery_t *recovery_new(const recovery_config_t *config, evstore_t *store, fanout_t *fanout,
                         liveness_t *liveness);
void recovery_destroy(recovery_t **self_p);
int recovery_start(recovery_t *self);
/* A heartbeat: the agent is online with no missed beats.  -1 when the
 * agent is new and the registry is full. */
int recovery_heartbeat(recovery_t *self, const char *agent);
/* {name: {missed_heartbeats, last_heartbeat, status}} */
json_t *recovery_agents(recovery_t *self);
/* Queues a task (details borrowed, may be NULL). */
void recovery_enqueue(recovery_t *self, const char *action, const char *target,
                      const char *reason, json_t *details);
size_t recovery_queue_length(recovery_t *self);
#endif
