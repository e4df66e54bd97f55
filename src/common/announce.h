/*  announce: every name a service answers for, kept in the registry.
 *
 *  The kept agents find each other by name: DISCOVER on 7120,
 *  get_agent_endpoint on 7100, get_service_address in their own client.
 *  They ask for ResourceManager, VRAMOptimizerAgent, HealthMonitor... and for
 *  the five Keel services themselves, so each service registers its title
 *  and every absorbed agent it serves, at the address where it runs: this
 *  host as advertised (`advertise_host`) and the service's ZMQ port, on
 *  whichever machine that is, so a name absorbed by a service on PC2
 *  resolves to PC2.  A module delegated to its still-running original
 *  resolves to the original, where its requests are answered.
 *
 *  Registration goes over the wire to `registry_endpoint` (CoreOrchestrator
 *  on this machine by default), from a ticker of its own that retries with
 *  backoff while the registry is away (the services of `keeld all` start in
 *  any order, and the registry may be on the other machine), heartbeats
 *  each name at a third of the registry's TTL so the names stay fresh, and
 *  registers again when the registry has lost them or a reload changed a
 *  module's delegation. */
#ifndef KEEL_ANNOUNCE_H
#define KEEL_ANNOUNCE_H
#include <jansson.h>

#include "service.h"

typedef struct announce_t announce_t;

/* svc is borrowed and must outlive the announcer. */
announce_t *announce_new(service_t *svc);
void announce_destroy(announce_t **self_p);
/* Starts keeping the names registered (once the service is ready).  0 or -1. */
int announce_start(announce_t *self);
/* Stops; the names stay registered, as an agent's do. */
void announce_stop(announce_t *self);
/* Registers every name again now (after a reload). */
void announce_kick(announce_t *self);
/* The register_agent fields of each name the service answers for, as it is
 * configured and delegated now: an array (a new reference). */
json_t *announce_records(service_t *svc);
/* The host other machines reach this one at, into buf. */
char *announce_host(config_t *config, char *buf, size_t len);
#endif
