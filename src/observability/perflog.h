/*  perflog: the PerformanceLoggerAgent.  Agents log action durations and
 *  resource usage into the SQLite tables of OH-24..OH-30, and LearningAdjuster
 *  reads them back by agent and time range.  Retention (30 days of
 *  metrics, 7 of resource usage) compares real instants, not text. */
#ifndef OBS_PERFLOG_H
#define OBS_PERFLOG_H
#include <jansson.h>

#include "hubdb.h"

/* Each takes the request body and returns the reply (a new reference). */
json_t *perflog_log_metric(hubdb_t *db, json_t *metric);
json_t *perflog_log_resource_usage(hubdb_t *db, json_t *body);
json_t *perflog_get_agent_metrics(hubdb_t *db, json_t *body);
json_t *perflog_get_agent_resource_usage(hubdb_t *db, json_t *body);
/* Deletes rows older than the retention at `now` (unix seconds); returns
 * the number of rows deleted, or -1. */
int perflog_retention(hubdb_t *db, double now, int metrics_days, int usage_days);
#endif
