/*  vram: the VRAMOptimizerAgent.  Its legacy `command` dialect
 *  (TRACK_MODEL_USAGE, GET_VRAM_STATUS, SET_IDLE_TIMEOUT,
 *  SET_VRAM_THRESHOLD, HEALTH_CHECK; UPPERCASE replies), the four requests
 *  the ModelManager sends and the original never answered
 *  (register_model_manager, update_vram_status, can_accommodate_model,
 *  make_room_for_model), and the background loops that watch the devices
 *  and tell the ModelManager what to unload or load (vram_loops.c).
 *
 *  Devices are named as the original named them: GPU 0 is "MainPC" and
 *  GPU 1 "PC2" (resource.vram.device_names), read locally through NVML, so
 *  a two-card machine and the two-machine layout see the same names.
 *  Admission of a model load is the ResourceManager's: free VRAM is the
 *  device's total minus NVML's used figure minus live reservations, in
 *  MiB, and an accepted load holds a reservation until the ModelManager
 *  reports the model loaded or the lease ends. */
#ifndef KEEL_RS_VRAM_H
#define KEEL_RS_VRAM_H
#include <jansson.h>
#include <stdbool.h>

#include "errpub.h"
#include "gpu.h"
#include "manager.h"
#include "metrics.h"
#include "wire.h"

typedef struct {
    char mma_endpoint[256], sdt_endpoint[256], rc_endpoint[256], mef_endpoint[256];
    double critical, warning, safe;
    double idle_timeout_s, defrag_threshold;
    double monitor_interval_s, idle_check_interval_s, optimization_interval_s;
    double predict_interval_s, prediction_window_s, unload_pause_s;
    bool predictive_loading;
    double mainpc_budget_mb, pc2_budget_mb;
    int timeout_ms;             /* every outbound request */
    int admission_timeout_ms;   /* SDT consult inside can_accommodate_model */
    int probe_timeout_ms;       /* HEALTH_CHECK's peer pings */
    double load_reservation_s;
    char device_names[2][32];
} vram_config_t;

typedef struct vram_t vram_t;

vram_t *vram_new(const vram_config_t *config, gpu_t *gpu, manager_t *manager,
                 metrics_t *metrics, errpub_t *errors);
void vram_destroy(vram_t **self_p);
void vram_attach(vram_t *self, wire_server_t *wire);
/* Starts the monitor, idle, predictor and optimizer loops.  0 or -1. */
int vram_start(vram_t *self);
/* {"devices":{MainPC:{...},PC2:{...}|null},"loaded_models":{...},"thresholds":{...},...} */
json_t *vram_snapshot(vram_t *self);
#endif
