/*  perfmon: the PerformanceMonitor.  Clients push per-service samples
 *  (response_time, queue_size, throughput, error, request) with log_metric;
 *  the hub combines them with host CPU and memory into the metrics, health
 *  and alert dicts of OH-12..OH-22, with the original formulas kept exactly
 *  (including the throughput window that each full calculation resets).
 *  Every sample is also written to SQLite, so the histories survive kill -9. */
#ifndef OBS_PERFMON_H
#define OBS_PERFMON_H
#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "hubdb.h"
#include "metrics.h"
#include "hostsampler.h"

#define PERF_HISTORY 1000

typedef struct {
    double cpu_percent, memory_percent, response_time, error_rate, queue_size;
} perf_thresholds_t;

typedef struct perfmon_t perfmon_t;

perfmon_t *perfmon_new(config_t *config, hubdb_t *db, hostsampler_t *sampler);
/* Reads observability.thresholds.* (SIGHUP reload). */
void perfmon_configure(perfmon_t *self, config_t *config);
void perfmon_destroy(perfmon_t **self_p);
/* Records one sample; -1 when the service table is full or the write failed. */
int perfmon_log(perfmon_t *self, const char *service, const char *type, double value);
/* The full metrics dict; resets the throughput window. */
json_t *perfmon_metrics(perfmon_t *self);
/* One service's metrics (zeros for an unknown one); leaves the window. */
json_t *perfmon_service_metrics(perfmon_t *self, const char *service);
json_t *perfmon_health(perfmon_t *self, double uptime);
json_t *perfmon_alerts(perfmon_t *self);
/* OH-19: resources OK iff cpu <= threshold and memory <= threshold. */
bool perfmon_resources_ok(const perf_thresholds_t *t, double cpu, double memory);
/* Sets the per-service gauges for /metrics. */
void perfmon_export(perfmon_t *self, metrics_t *metrics);
/* Keeps only the newest PERF_HISTORY samples per series in the database. */
void perfmon_trim(perfmon_t *self);
#endif
