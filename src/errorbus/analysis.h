/*  analysis: what the bus learns from the events it stored.  Correlation is
 *  the EMS rule (pairs of errors from different sources less than 60 s
 *  apart among the 100 newest), kept in a table and answered with one
 *  investigate task; alerts fire when an error type reaches the
 *  UnifiedErrorAgent thresholds for its severity, or an agent's error rate
 *  passes errorbus.rate_alert_per_min, each at most once per window so an
 *  alert is news, not noise. */
#ifndef KEEL_ERRORBUS_ANALYSIS_H
#define KEEL_ERRORBUS_ANALYSIS_H
#include <jansson.h>

#include "evstore.h"
#include "fanout.h"
#include "recovery.h"

typedef struct {
    double correlation_interval_s;  /* 300 */
    double correlation_window_s;    /* 60 */
    int correlation_rows;           /* 100 */
    double alert_interval_s;        /* 60 */
    double alert_window_s;          /* 3600: counts and re-fire suppression */
    double rate_alert_per_min;      /* per agent; 0 disables */
} analysis_config_t;

typedef struct analysis_t analysis_t;

/* The ticker beats a stamp of `liveness` (borrowed; NULL: none). */
analysis_t *analysis_new(const analysis_config_t *config, evstore_t *store, fanout_t *fanout,
                         recovery_t *recovery, liveness_t *liveness);
void analysis_destroy(analysis_t **self_p);
int analysis_start(analysis_t *self);
/* One correlation pass; the number of pairs found. */
int analysis_correlate(analysis_t *self, double now);
/* Investigate tasks enqueued so far. */
long analysis_investigations(analysis_t *self);
/* One alert pass; the number of alerts raised. */
int analysis_alerts(analysis_t *self, double now);
/* Stores an alert, publishes it and logs it. */
void analysis_raise(evstore_t *store, fanout_t *fanout, const char *kind, const char *subject,
                    const char *severity, long count, const char *message);
/* The threshold of a group severity (critical 1, high 3, medium 5, low 10). */
int analysis_threshold(const char *group_severity);
#endif
