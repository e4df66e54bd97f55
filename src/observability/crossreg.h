/*  crossreg: PredictiveHealthMonitor's cross-machine registry, the
 *  `request_type` dialect (register, unregister, heartbeat, get_status),
 *  served on the hub's port.  Entries are keyed "<machine_id>/<agent_name>"
 *  so get_status can be serialised (the original's tuple keys could not),
 *  and an entry whose heartbeat is older than stale_s reads "stale".  A
 *  name over NAMES_MAX, or a machine_id with a '/' (two keys would read
 *  alike), is refused. */
#ifndef OBS_CROSSREG_H
#define OBS_CROSSREG_H
#include <jansson.h>

#include "metrics.h"

typedef struct crossreg_t crossreg_t;

/* metrics counts the names refused (borrowed, may be NULL). */
crossreg_t *crossreg_new(double stale_s, metrics_t *metrics);
void crossreg_destroy(crossreg_t **self_p);
/* Answers one request carrying `request_type`. */
json_t *crossreg_handle(crossreg_t *self, json_t *request);
#endif
