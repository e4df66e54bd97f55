/*  twin: SystemDigitalTwin (CO-25..CO-54): sampled system metrics and their
 *  history, what-if load simulation, the VRAM picture ModelManager reports,
 *  the agent status table, events and error reports. */
#ifndef KEEL_CORE_TWIN_H
#define KEEL_CORE_TWIN_H
#include <jansson.h>
#include <stdbool.h>

#include "backend.h"
#include "registry.h"
#include "service.h"

typedef struct twin_t twin_t;

typedef struct {
    double cpu_usage, vram_usage_mb, ram_usage_mb, network_latency_ms;
} twin_sample_t;

twin_t *twin_new(service_t *svc, backend_t *backend, registry_t *registry);
void twin_destroy(twin_t **self_p);
int twin_start(twin_t *self);           /* the sampling ticker */
void twin_attach(twin_t *self, wire_server_t *wire);
void twin_health(twin_t *self, json_t *dict);

/* The simulate_load reply for a state (pure, for tests and the handler):
 * capacities in MiB. */
json_t *twin_simulate(const twin_sample_t *current, json_t *current_state, const char *load_type,
                      double value, double vram_capacity_mb, double ram_capacity_mb);
/* The latest sample as current_state (a new reference). */
json_t *twin_current_state(twin_t *self);
/* Upserts a status row.  location NULL keeps the old one (or "Unknown"
 * for a new row); a new row takes a token of `source`, the client's
 * address (registry_admit; NULL is Keel itself).  Returns 1 when the
 * row is new, 0 when updated, -1 with the reason in err. */
int twin_set_status(twin_t *self, const char *name, const char *status, const char *location,
                    const char *source, char *err, size_t errlen);
/* The VRAM update of update_vram_metrics and REPORT_MODEL_VRAM; 0 or -1. */
int twin_update_vram(twin_t *self, json_t *payload, char *err, size_t errlen);
/* A copy of vram_metrics. */
json_t *twin_vram(twin_t *self);
/* The status table {name: {location, status, last_seen}}. */
json_t *twin_status_map(twin_t *self);
/* Handlers shared with core.c's merged actions. */
json_t *twin_register_simple(twin_t *self, json_t *body, const char *source);
json_t *twin_agent_info(twin_t *self, json_t *body);
#endif
