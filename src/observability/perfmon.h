/*  perfmon: the PerformanceMonitor.  Clients push per-service samples
 *  (response_time, queue_size, throughput, error, request) with log_metric;
 *  the hub combines them with host CPU and memory into the metrics, health
 *  and alert dicts of OH-12..OH-22, with the original formulas kept exactly
 *  (including the throughput window that each full calculation resets).
 *  Every sample is also written to SQLite, so the histories survive kill -9.
 *
 *  The service table is bounded (observability.max_services) and keeps the
 *  services that keep reporting when junk names arrive: a new name takes
 *  the place of a service that reported once (least recently seen first),
 *  else of one silent for a day, and is refused only when neither exists;
 *  an evicted service's rows are deleted with it, and a start reads back
 *  the services that reported most and last.  Each source address may
 *  create only so many new services a minute (observability.new_services,
 *  ratelimit.h). */
#ifndef OBS_PERFMON_H
#define OBS_PERFMON_H
#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "hubdb.h"
#include "metrics.h"
#include "hostsampler.h"

#define PERF_HISTORY 1000

typedef enum {
    PERF_LOGGED,
    PERF_REFUSED_RATE,          /* a new service, and its source created too many */
    PERF_REFUSED_FULL,          /* a new service, and every one in the table keeps reporting */
    PERF_FAILED,                /* the write failed */
} perf_outcome_t;

typedef struct {
    double cpu_percent, memory_percent, response_time, error_rate, queue_size;
} perf_thresholds_t;

typedef struct perfmon_t perfmon_t;

perfmon_t *perfmon_new(config_t *config, hubdb_t *db, hostsampler_t *sampler);
/* Reads observability.thresholds.* and observability.new_services (SIGHUP reload). */
void perfmon_configure(perfmon_t *self, config_t *config);
void perfmon_destroy(perfmon_t **self_p);
/* Records one sample sent from `source` (the client's address); when it
 * is refused, `why` says so in words a client can act on. */
perf_outcome_t perfmon_log(perfmon_t *self, const char *service, const char *type, double value,
                           const char *source, char *why, size_t len);
/* The full metrics dict; resets the throughput window. */
json_t *perfmon_metrics(perfmon_t *self);
/* One service's metrics (zeros for an unknown one); leaves the window. */
json_t *perfmon_service_metrics(perfmon_t *self, const char *service);
json_t *perfmon_health(perfmon_t *self, double uptime);
json_t *perfmon_alerts(perfmon_t *self);
/* OH-19: resources OK iff cpu <= threshold and memory <= threshold. */
bool perfmon_resources_ok(const perf_thresholds_t *t, double cpu, double memory);
/* Sets the per-service gauges and the table's counters for /metrics. */
void perfmon_export(perfmon_t *self, metrics_t *metrics);
/* Keeps only the newest PERF_HISTORY samples per series in the database. */
void perfmon_trim(perfmon_t *self);
#endif
