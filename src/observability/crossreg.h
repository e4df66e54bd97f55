/*  crossreg: PredictiveHealthMonitor's cross-machine registry, the
 *  `request_type` dialect (register, unregister, heartbeat, get_status),
 *  served on the hub's port.  Entries are keyed "<machine_id>/<agent_name>"
 *  so get_status can be serialised (the original's tuple keys could not),
 *  and an entry whose heartbeat is older than stale_s reads "stale". */
#ifndef OBS_CROSSREG_H
#define OBS_CROSSREG_H
#include <jansson.h>

typedef struct crossreg_t crossreg_t;

crossreg_t *crossreg_new(double stale_s);
void crossreg_destroy(crossreg_t **self_p);
/* Answers one request carrying `request_type`. */
json_t *crossreg_handle(crossreg_t *self, json_t *request);
#endif
