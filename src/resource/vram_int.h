/*  vram_int: the optimizer's state, shared by its request side (vram.c)
 *  and its loops (vram_loops.c).  One mutex guards everything below it and
 *  is only ever held for copying in or out: every request to another agent
 *  is made with it released, which is what removes the original's
 *  deadlocks (a handler re-taking the lock the monitor already held). */
#ifndef KEEL_RS_VRAM_INT_H
#define KEEL_RS_VRAM_INT_H
#include <pthread.h>

#include "actor.h"
#include "vram.h"

#define VRAM_DEVICES 2

/* The four loops of vram_loops.c. */
enum { VRAM_MONITOR, VRAM_IDLE, VRAM_PREDICTOR, VRAM_OPTIMIZER, VRAM_LOOPS };

typedef struct {
    bool present;
    double total_mb, used_mb, free_mb, ratio;
} vram_metrics_t;

struct vram_t {
    vram_config_t config;
    gpu_t *gpu;
    manager_t *manager;
    metrics_t *metrics;
    errpub_t *errors;
    double started_mono;
    actor_t *loops[VRAM_LOOPS];
    wire_client_t *clients[VRAM_LOOPS];  /* each loop's own REQ client to the ModelManager */
    pthread_mutex_t lock;
    /* guarded by lock */
    double critical, warning, safe, idle_timeout_s;
    json_t *loaded_models;      /* MMA's table, replaced each monitor cycle */
    json_t *usage_patterns;     /* model -> [epoch, ...] */
    json_t *requirements;       /* model -> MiB */
    json_t *mma;                /* what the ModelManager registered and reported */
    json_t *batch_sizes;        /* model -> batch */
    double mma_used_mb;         /* MMA's total_vram_used_mb, last reported */
    double fragmentation;
    unsigned long unloads, loads, defrags;
};

/* Device d's figures (NVML, or the budget fallback for MainPC). */
void vram_metrics(vram_t *self, int d, vram_metrics_t *out);
/* MiB a load may still take on device d: total * critical - used - reserved. */
double vram_room(vram_t *self, int d, const vram_metrics_t *m);
/* UNLOAD_MODEL / LOAD_MODEL through a loop's client: true iff "SUCCESS". */
bool vram_unload(vram_t *self, wire_client_t *client, const char *model);
bool vram_load(vram_t *self, wire_client_t *client, const char *model, const char *device,
               const char *quantization);
/* The original's can_load_model, in MiB, with the SDT consult above 2048. */
bool vram_can_load(vram_t *self, const char *model, double required_mb, int timeout_ms);
/* The loops (arg: the vram_t); the idle sweep pauses between unloads,
 * so it is a runner, the others tickers. */
actor_tick_fn vram_monitor;
actor_run_fn vram_unload_idle;
actor_tick_fn vram_predict;
actor_tick_fn vram_optimize;
#endif
