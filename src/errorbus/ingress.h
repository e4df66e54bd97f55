/*  ingress: where every agent's errors arrive.  A SUB socket *bound* on
 *  7150 (the agents' PUB sockets connect to it), subscribed to "ERROR" so
 *  that all three framings match, including F3's 5-byte "ERROR" topic that
 *  the originals' "ERROR:" filter could never see.  Its own runner turns
 *  each message into an event and hands it to the store; whatever cannot
 *  become an event goes to quarantine with the reason, never nowhere. */
#ifndef KEEL_ERRORBUS_INGRESS_H
#define KEEL_ERRORBUS_INGRESS_H
#include <stddef.h>

#include "evstore.h"
#include "metrics.h"

typedef struct ingress_t ingress_t;

/* `rcvhwm` is the SUB receive high-water mark; `max_event` the largest
 * message accepted (bigger ones are quarantined with a sample).  The
 * runner beats a stamp of `liveness` (borrowed; NULL: none). */
ingress_t *ingress_new(const char *endpoint, evstore_t *store, metrics_t *metrics, liveness_t *liveness,
                       int rcvhwm, size_t max_event);
void ingress_destroy(ingress_t **self_p);
int ingress_start(ingress_t *self);
void ingress_stop(ingress_t *self);
long ingress_received(ingress_t *self);
#endif
