/*  alerting: the prior hub's system metrics, alert rules and anomaly
 *  detection.  A ticker collects cpu_percent, memory_percent,
 *  memory_available_gb, disk_percent (and real GPU readings when NVML has
 *  a device; never constants) every collection interval into per-metric
 *  history rings, evaluates the alert rules and feeds each metric to its
 *  anomaly detector.  An alert fires once its condition has held for the
 *  rule's `for_s` (Alertmanager's `for:`), can be acknowledged, and is
 *  cleared when it stops holding; every transition goes to the alert history, which is persisted
 *  so it survives kill -9, as are the rules added over HTTP. */
#ifndef OBS_ALERTING_H
#define OBS_ALERTING_H
#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "errpub.h"
#include "hubdb.h"
#include "metrics.h"
#include "hostsampler.h"

typedef struct alerting_t alerting_t;

alerting_t *alerting_new(config_t *config, hubdb_t *db, hostsampler_t *sampler, errpub_t *errors);
void alerting_destroy(alerting_t **self_p);
int alerting_start(alerting_t *self);
/* Collects once and evaluates: one pass of the ticker. */
void alerting_collect(alerting_t *self);
/* Feeds one value of a named metric (rules and anomaly detection). */
void alerting_feed(alerting_t *self, const char *metric, double value, const char *source);
/* POST /add_alert_rule: {"status":"success","rule_id"} or NULL with *why set. */
json_t *alerting_add_rule(alerting_t *self, json_t *body, const char **why);
/* POST /acknowledge_alert {rule_id, metric_name}: marks the active alert
 * acknowledged (kept until it clears); NULL with *why set when there is none. */
json_t *alerting_acknowledge(alerting_t *self, json_t *body, const char **why);
/* {"active_alerts":[...],"alert_history":[last <= 50]} */
json_t *alerting_view(alerting_t *self);
json_t *alerting_rules(alerting_t *self);
/* {"anomalies":[...]}: recent detections, newest last. */
json_t *alerting_anomalies(alerting_t *self);
/* GET /metrics.json (OH-58, the prior hub's unified mode). */
json_t *alerting_metrics_json(alerting_t *self);
void alerting_export(alerting_t *self, metrics_t *metrics);
/* OH-51: strict comparison of a rule condition. */
bool alerting_condition(const char *condition, double value, double threshold);
#endif
