/*  history: the hub's stored time series, what the dashboard's charts
 *  draw over 15 minutes, an hour or a day: per agent the mean health-probe
 *  latency and the share of probes that failed (from the fleet's sweeps),
 *  and Keel's own services and ErrorBus's rates by level (keelstats.h).
 *
 *  Every step (observability.history.step_s, 10 s) adds one point per
 *  series.  Points are kept at three resolutions in the hub's SQLite file,
 *  each a ring of fixed slots: one step for the last 16 minutes, one
 *  minute for 64 minutes, a quarter of an hour for 25 hours.  A coarser
 *  point is the mean of the finer ones (the maximum for a p99), written
 *  when its bucket closes; the open one is added to every answer from
 *  memory.  A slot holds every series' point of its step and is
 *  overwritten in place, so the table never holds more than 180 rows
 *  (about 24 kB each with 1,000 agents) however long the hub runs, and a
 *  series nothing wrote to for a day is forgotten. */
#ifndef OBS_HISTORY_H
#define OBS_HISTORY_H
#include <jansson.h>

#include "config.h"
#include "fleet.h"
#include "hubdb.h"
#include "keelstats.h"
#include "metrics.h"

typedef struct history_t history_t;

/* An agent's series are agent/<name>/<figure>, figures as below. */
enum { HISTORY_LATENCY, HISTORY_FAILURES, HISTORY_AGENT_FIGURES };
extern const char *const history_agent_figures[HISTORY_AGENT_FIGURES];

/* fleet and stats may be NULL (nothing taken from them); all borrowed. */
history_t *history_new(config_t *config, hubdb_t *db, fleet_t *fleet, keelstats_t *stats,
                       metrics_t *metrics);
void history_destroy(history_t **self_p);
/* Starts the thread that steps every step_s. */
int history_start(history_t *self);
/* Records {name: number} (borrowed) as the points of the step ending at
 * `now` (unix seconds). */
void history_record(history_t *self, double now, json_t *points);
/* {name: [[unix s, value], ...]} oldest first over (now - range_s, now]
 * for each of names[0..n), at the finest resolution that covers the
 * range; *step_s is that resolution.  A new reference. */
json_t *history_query(history_t *self, const char *const *names, size_t n, double range_s,
                      double now, double *step_s);
/* Rows stored: one per step kept, at every resolution. */
long history_rows(history_t *self);
#endif
