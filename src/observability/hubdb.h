/*  hubdb: the ObservabilityHub's one SQLite file.  It holds the
 *  PerformanceLoggerAgent tables exactly as the original declared them,
 *  the PredictiveHealthMonitor tables (health_events now really exists),
 *  and what the hub must not lose on kill -9: performance samples, alert
 *  history, alert rules and pushed agent health; and the dashboard's time
 *  series (history.h).  One connection, one
 *  mutex: the wire workers and the background loops take turns. */
#ifndef OBS_HUBDB_H
#define OBS_HUBDB_H
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

#include "store.h"

typedef struct {
    store_t *store;
    pthread_mutex_t lock;
} hubdb_t;

hubdb_t *hubdb_new(const char *path);
void hubdb_destroy(hubdb_t **self_p);
void hubdb_lock(hubdb_t *self);
void hubdb_unlock(hubdb_t *self);
/* A health_events row (details borrowed, may be NULL); takes the lock. */
int hubdb_event(hubdb_t *self, const char *agent, const char *event_type, json_t *details);
/* A recovery_actions row; takes the lock. */
int hubdb_recovery_action(hubdb_t *self, const char *agent, const char *action,
                          bool success, const char *error);
/* Recent health_events, newest first, as objects; takes the lock. */
json_t *hubdb_events(hubdb_t *self, const char *agent, int limit);
#endif
