/*  tiers: PredictiveHealthMonitor's tiered recovery, made to escalate.
 *  An agent whose one state (agentstate.h) is down -- never one degraded
 *  or unknown, as the agents behind a suspected partition are -- and that
 *  allows auto_recover gets its configured tier first
 *  (tier1 unless recovery_strategy says otherwise); if it is still down
 *  once that tier's cooldown has passed, the next tier runs, up to tier4;
 *  if tier4 fails too, the hub gives up loudly (ErrorBus CRITICAL) and
 *  waits for the agent to come back.  Restarts are executed by
 *  CoreOrchestrator (restart_agent), the only owner of processes in Keel;
 *  every attempt and failure is recorded in health_events and recovery_actions and reported to ErrorBus.  The
 *  same runner raises failure_predicted when an agent's failure
 *  probability crosses 0.7 and tells SelfHealingAgent when one is set. */
#ifndef OBS_TIERS_H
#define OBS_TIERS_H
#include <jansson.h>

#include "config.h"
#include "errpub.h"
#include "fleet.h"
#include "hubdb.h"

typedef struct tiers_t tiers_t;

/* Restarts are asked of CoreOrchestrator at `core_endpoint`. */
tiers_t *tiers_new(config_t *config, fleet_t *fleet, hubdb_t *db, errpub_t *errors,
                   const char *core_endpoint);
void tiers_destroy(tiers_t **self_p);
int tiers_start(tiers_t *self);
/* Wakes the recovery runner (the fleet calls it after every sweep). */
void tiers_kick(void *self);
/* OH-60: the action list of a tier (1..4); anything else is tier1's. */
json_t *tiers_tier_actions(int tier);
/* The cooldown before tier `tier` may escalate, in seconds. */
double tiers_cooldown(tiers_t *self, int tier);
/* Runs one tier for an agent now, as the POST /trigger_recovery route
 * asks; returns {"status","agent_name","strategy","actions","results"}. */
json_t *tiers_trigger(tiers_t *self, const char *agent, int tier);
#endif
