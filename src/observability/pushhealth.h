/*  pushhealth: health that agents push to the hub (the prior hub's
 *  POST /update_agent_health) and its summary (GET /health_summary).  An
 *  agent silent for more than stale_s (300 s) is stale: listed as such and
 *  marked unknown with details {"reason":"stale"} by the sweep, keeping the
 *  location it reported.  Records are persisted so a restart keeps them. */
#ifndef OBS_PUSHHEALTH_H
#define OBS_PUSHHEALTH_H
#include <jansson.h>

#include "hubdb.h"

typedef struct pushhealth_t pushhealth_t;

pushhealth_t *pushhealth_new(hubdb_t *db, double stale_s);
void pushhealth_destroy(pushhealth_t **self_p);
/* Stores one update; the reply, or NULL with *why set. */
json_t *pushhealth_update(pushhealth_t *self, json_t *body, const char **why);
/* Marks stale agents unknown (the prior hub's 30 s health loop step). */
void pushhealth_sweep(pushhealth_t *self);
json_t *pushhealth_summary(pushhealth_t *self);
#endif
