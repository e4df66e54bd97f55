/*  optimiser: PredictiveHealthMonitor's resource optimisation loop, made
 *  safe.  Every interval (300 s) it checks whether memory > 80 %, CPU > 80 %
 *  or the data disk > 90 % (strict); if so it records the pressure, and
 *  only when observability.optimizer.kill_processes is true (it is false
 *  by default) does it terminate up to 3 processes above 5 % of memory, and
 *  even then only children of this keeld process: processes Keel itself
 *  started, never the user's. */
#ifndef OBS_OPTIMISER_H
#define OBS_OPTIMISER_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "errpub.h"
#include "hubdb.h"
#include "hostsampler.h"

typedef struct {
    double memory, cpu, disk;       /* percent thresholds */
    double process_memory_limit;    /* percent of total memory */
    int max_kills;
} optimiser_limits_t;

typedef struct {
    pid_t pid;
    uint64_t rss_bytes;
} optimiser_proc_t;

typedef struct optimiser_t optimiser_t;

optimiser_t *optimiser_new(config_t *config, hostsampler_t *sampler, hubdb_t *db, errpub_t *errors);
void optimiser_destroy(optimiser_t **self_p);
int optimiser_start(optimiser_t *self);
bool optimiser_alive(optimiser_t *self);
/* One pass (the ticker's): returns what it found and did. */
json_t *optimiser_run(optimiser_t *self);
bool optimiser_needed(const optimiser_limits_t *l, double cpu, double memory, double disk);
/* Sorts the candidates above the limit by memory, largest first, and keeps
 * at most max_kills; returns how many remain in procs. */
size_t optimiser_pick(const optimiser_limits_t *l, optimiser_proc_t *procs, size_t n,
                      uint64_t mem_total);
#endif
