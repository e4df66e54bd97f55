/*  manager: the ResourceManager actions (get_stats, check_resources,
 *  allocate_resources, release_resources, get_status, set_thresholds) with
 *  the original replies, over a reservation table that really holds
 *  capacity (alloc.h).  Keel adds renew_resources (extend a lease) and
 *  agent_dead (release everything an agent held), and a reaper (actor.h) that
 *  ends leases on time even when no request comes.  One mutex guards the
 *  thresholds and the table; it is never held across a call to another
 *  agent. */
#ifndef KEEL_RS_MANAGER_H
#define KEEL_RS_MANAGER_H
#include "alloc.h"
#include "metrics.h"
#include "stats.h"
#include "wire.h"

typedef struct manager_t manager_t;

/* default_lease_s: lease given when a request names none (0: none). */
manager_t *manager_new(stats_t *stats, metrics_t *metrics,
                       const alloc_thresholds_t *thresholds, double default_lease_s);
void manager_destroy(manager_t **self_p);
/* Starts ending leases on time.  0 or -1. */
int manager_start(manager_t *self);
void manager_attach(manager_t *self, wire_server_t *wire);
/* MiB held by vram reservations on each device (STATS_MAX_GPUS entries). */
void manager_vram_held(manager_t *self, double *held);
alloc_thresholds_t manager_thresholds(manager_t *self);
/* Threshold check of the original (strict >): true when resources are available. */
bool manager_check(const stats_sample_t *sample, const alloc_thresholds_t *limits);
/* Reserves vram on a device for a lease (the ModelManager's loads). 0 or -1. */
int manager_reserve_vram(manager_t *self, const char *id, double mb, int device,
                         double lease_s, const char *owner);
/* Releases one allocation by id; 0, or -1 when it is not held. */
int manager_release(manager_t *self, const char *id);
/* Live allocation count, for health and keelctl. */
size_t manager_count(manager_t *self);
#endif
