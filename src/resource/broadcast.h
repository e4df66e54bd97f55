/*  broadcast: AsyncProcessor's periodic health broadcast, one JSON frame
 *  {status, stats, queue_stats, timestamp} on a PUB socket every interval
 *  (30 s), retried after 5 s when building or sending fails.  Off unless
 *  resource.health_broadcast_port is set: the original's port 7103 now
 *  belongs to ObservabilityHub. */
#ifndef KEEL_RS_BROADCAST_H
#define KEEL_RS_BROADCAST_H
#include <jansson.h>

typedef struct broadcast_t broadcast_t;
/* Builds the frame (a new reference), or NULL when it cannot. */
typedef json_t *(broadcast_fn)(void *arg);

broadcast_t *broadcast_new(const char *endpoint, double interval_s,
                           broadcast_fn *fn, void *arg);
void broadcast_destroy(broadcast_t **self_p);
/* Binds the endpoint and broadcasts a first frame a second later.  0, or
 * -1 (logged) when it cannot bind. */
int broadcast_start(broadcast_t *self);
#endif
