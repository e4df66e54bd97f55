/*  perffeeds: PerformanceMonitor's two PUB broadcasts, kept for the agents
 *  that still subscribe: every 5 s the full metrics dict on 5619 and the
 *  health dict on 5620, one JSON frame each with no topic.  On when
 *  legacy_ports is, or observability.performance_feeds says so.  A
 *  failure is reported to ErrorBus as metrics_broadcast_error or
 *  health_monitoring_error and the loop goes on. */
#ifndef OBS_PERFFEEDS_H
#define OBS_PERFFEEDS_H
#include "errpub.h"
#include "perfmon.h"

typedef struct perffeeds_t perffeeds_t;

/* NULL when neither socket could be bound (logged). */
perffeeds_t *perffeeds_new(perfmon_t *perf, errpub_t *errors, const char *metrics_endpoint,
                   const char *health_endpoint, double interval_s, double started_mono);
void perffeeds_destroy(perffeeds_t **self_p);
/* Broadcasts at once and then every interval.  0 or -1. */
int perffeeds_start(perffeeds_t *self);
#endif
