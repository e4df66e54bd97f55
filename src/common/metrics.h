/*  metrics: a registry of counters, gauges and histograms with labels,
 *  rendered in the Prometheus text exposition format.  A series is named by
 *  its family and a label text built with metrics_labels(), which escapes
 *  values, so callers never format label syntax by hand.  Collectors run
 *  just before each render to set gauges that are cheaper to read than to
 *  maintain (queue sizes, registry counts).  Thread-safe: one mutex; the
 *  hot path is a hash lookup and an add, or only the add for a series
 *  held by its handle. */
#ifndef KEEL_METRICS_H
#define KEEL_METRICS_H
#include <stddef.h>

typedef enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type_t;

typedef struct metrics_t metrics_t;
typedef void (metrics_collector_fn)(metrics_t *metrics, void *arg);

metrics_t *metrics_new(void);
void metrics_destroy(metrics_t **self_p);
/* Declares a family (idempotent).  Histograms get `buckets` (upper bounds,
 * ascending) or, when NULL, latency buckets from 50 us to 10 s.
 * Returns 0, or -1 if the name is invalid or already declared as another type. */
int metrics_declare(metrics_t *self, const char *name, const char *help,
                    metric_type_t type, const double *buckets, size_t nbuckets);
/* Builds `k1="v1",k2="v2"` from NULL-terminated key/value pairs. */
char *metrics_labels(char *buf, size_t len, ...) __attribute__((sentinel));
void metrics_add(metrics_t *self, const char *name, const char *labels, double delta);
void metrics_set(metrics_t *self, const char *name, const char *labels, double value);
void metrics_observe(metrics_t *self, const char *name, const char *labels, double value);
/* A series to update without finding it by name each time (a request's
 * own counters): found or created on first use, and valid until
 * metrics_destroy, since series are never removed.  NULL when the family
 * is undeclared. */
typedef struct series_t metrics_series_t;
metrics_series_t *metrics_series(metrics_t *self, const char *name, const char *labels);
void metrics_series_add(metrics_t *self, metrics_series_t *series, double delta);
/* Adds one to `counter` and observes `value` in `histogram`, under one
 * lock: a request's count and its duration.  Either may be NULL. */
void metrics_series_count(metrics_t *self, metrics_series_t *counter, metrics_series_t *histogram,
                          double value);
/* Current value of a counter or gauge series (0 when absent): for health
 * dicts and tests. */
double metrics_value(metrics_t *self, const char *name, const char *labels);
/* Sum of a family's series whose label text contains `filter` (NULL = all). */
double metrics_sum(metrics_t *self, const char *name, const char *filter);
/* Drops every series of a gauge family (before a collector refills it). */
void metrics_reset(metrics_t *self, const char *name);
void metrics_add_collector(metrics_t *self, metrics_collector_fn *fn, void *arg);
/* Renders every family; the caller frees the text. */
char *metrics_render(metrics_t *self, size_t *len_out);
#endif
