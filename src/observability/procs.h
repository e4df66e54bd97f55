/*  procs: the agents the hub itself runs.  An entry of observability.agents
 *  with a `command` is started by the hub (dependencies first), restarted
 *  by the recovery tiers locally instead of through CoreOrchestrator, and
 *  stopped with the hub: PredictiveHealthMonitor's and HealthMonitor's
 *  process control (OH-63..OH-67), done without their races.  A child's
 *  stdout and stderr lines are logged as "[<agent>] <line>", stderr at
 *  ERROR level. */
#ifndef OBS_PROCS_H
#define OBS_PROCS_H
#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "config.h"

typedef struct procs_t procs_t;

/* Reads the entries with a command from observability.agents. */
procs_t *procs_new(config_t *config);
void procs_destroy(procs_t **self_p);       /* stops every child */
bool procs_manages(procs_t *self, const char *name);
/* Starts the agent after its dependencies (a failed dependency aborts);
 * a running agent is left alone.  Spawning is tried 3 times, 1 s then 2 s
 * apart.  0, or -1 with the reason in why. */
int procs_start(procs_t *self, const char *name, char *why, size_t len);
/* SIGTERM, up to stop_grace_s (5 s) to exit, then SIGKILL; always reaped. */
int procs_stop(procs_t *self, const char *name);
/* Stops the agent and starts it again (dependencies first). */
int procs_restart(procs_t *self, const char *name, char *why, size_t len);
/* Starts every managed agent; the number that failed. */
int procs_start_all(procs_t *self);
/* {name: pid (0 when not running)} of every managed agent. */
json_t *procs_list(procs_t *self);
#endif
