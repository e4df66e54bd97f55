/*  housekeep: the hub's slow housekeeping on one ticker.  PerformanceLogger
 *  retention runs at start and then every 86400 s (3600 s after a failure);
 *  pushed health is swept for stale agents every stale_check interval
 *  (30 s); performance samples are trimmed to their rings and the SQLite
 *  file checkpointed hourly, so the database never grows without bound. */
#ifndef OBS_HOUSEKEEP_H
#define OBS_HOUSEKEEP_H
#include "config.h"
#include "hubdb.h"
#include "perfmon.h"
#include "pushhealth.h"

typedef struct housekeep_t housekeep_t;

housekeep_t *housekeep_new(config_t *config, hubdb_t *db, perfmon_t *perf, pushhealth_t *pushed);
void housekeep_destroy(housekeep_t **self_p);
/* Runs retention and the trim at once, then each chore when due.  0 or -1. */
int housekeep_start(housekeep_t *self);
#endif
