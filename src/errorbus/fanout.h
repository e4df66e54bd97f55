/*  fanout: re-publishing what the bus stored.  A PUB socket bound on 7151
 *  carries each stored event as two frames, a topic and the normalised
 *  JSON record; the topic is `ERROR:<level>:<agent>`, so a subscriber
 *  chooses everything (`ERROR:`), one severity (`ERROR:critical:`) or one
 *  severity of one agent, and EMS-style consumers that split topic and
 *  body keep working.  Alerts go out on `ALERT:<severity>`.  Events are
 *  also handed to the NATS bridge, when there is one.  Its own runner
 *  (actor.h), so a slow subscriber or a NATS outage never slows the
 *  database writer. */
#ifndef KEEL_ERRORBUS_FANOUT_H
#define KEEL_ERRORBUS_FANOUT_H
#include <jansson.h>

#include "metrics.h"
#include "normalise.h"

typedef struct fanout_t fanout_t;

/* Called on the fan-out's runner for every event (borrowed). */
typedef void (fanout_bridge_fn)(void *ctx, const event_t *event, const char *json, size_t len);

fanout_t *fanout_new(const char *endpoint, metrics_t *metrics, size_t queue_max);
/* Sends what is queued first. */
void fanout_destroy(fanout_t **self_p);
void fanout_set_bridge(fanout_t *self, fanout_bridge_fn *fn, void *ctx);
int fanout_start(fanout_t *self);
/* The evstore sink: takes ownership of the events. */
void fanout_events(void *self, event_t **events, size_t n);
/* Publishes an alert (borrowed). */
void fanout_alert(fanout_t *self, json_t *alert);
#endif
