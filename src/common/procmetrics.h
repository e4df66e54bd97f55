/*  procmetrics: the process_* series every Prometheus client library
 *  exports (CPU seconds, resident and virtual memory, open and maximum file
 *  descriptors, start time), read from /proc/self at each scrape, so a Keel
 *  target looks like any other in the dashboards and alerts people already
 *  have; and keel_build_info, the version as a label. */
#ifndef KEEL_PROCMETRICS_H
#define KEEL_PROCMETRICS_H
#include "metrics.h"

/* Declares the families on `metrics` and refreshes them before each render. */
void procmetrics_attach(metrics_t *metrics, const char *version);
#endif
