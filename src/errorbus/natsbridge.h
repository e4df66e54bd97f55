/*  natsbridge: the bus across machines.  When errorbus.nats_url is set,
 *  every stored event is published to NATS on
 *  <prefix>.<level>.<agent> with the event id as Nats-Msg-Id (so a
 *  JetStream stream deduplicates a replay), and events published by other
 *  buses or agents on <prefix>.> are taken in like ingress events.  The
 *  connection retries from the start and reconnects forever, buffering
 *  while the server is away, so a restarted nats-server costs nothing. */
#ifndef KEEL_ERRORBUS_NATSBRIDGE_H
#define KEEL_ERRORBUS_NATSBRIDGE_H
#include <jansson.h>
#include <stdbool.h>

#include "evstore.h"
#include "metrics.h"
#include "normalise.h"

typedef struct natsbridge_t natsbridge_t;

natsbridge_t *natsbridge_new(const char *url, const char *prefix, evstore_t *store,
                             metrics_t *metrics);
void natsbridge_destroy(natsbridge_t **self_p);
/* Stops taking events from NATS (before the store stops). */
void natsbridge_unsubscribe(natsbridge_t *self);
/* The fan-out's bridge hook. */
void natsbridge_publish(void *self, const event_t *event, const char *json, size_t len);
/* Whether the server is reachable now (the bus is degraded while not). */
bool natsbridge_connected(natsbridge_t *self);
/* {url, connected, published, received, reconnects, failed} */
json_t *natsbridge_status(natsbridge_t *self);
#endif
