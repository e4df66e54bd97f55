/*  keelstats: Keel's own five services as the dashboard charts them:
 *  requests a second, 99th percentile latency and error replies a second
 *  of each service's ZMQ requests, and ErrorBus's stored events a minute
 *  by level.  All of it comes from the services' own /metrics
 *  (keel_requests_total, keel_request_duration_seconds,
 *  keel_errorbus_events_total), read at every history step: a rate is
 *  the difference of two readings over the time between them, and the
 *  p99 is read from the difference of the histogram buckets, as
 *  Prometheus's histogram_quantile() does, so it covers that interval
 *  only and not the service's whole life. */
#ifndef OBS_KEELSTATS_H
#define OBS_KEELSTATS_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define KEELSTATS_BUCKETS 32
#define KEELSTATS_LEVELS 5
#define KEELSTATS_SERVICES 5
#define KEELSTATS_FIGURES 3

/* One reading of one service's /metrics. */
typedef struct {
    bool ok;                            /* the service answered */
    double requests, errors;            /* keel_requests_total, all and outcome="error" */
    double le[KEELSTATS_BUCKETS];       /* bucket bounds, ascending (+Inf last) */
    double count[KEELSTATS_BUCKETS];    /* cumulative counts at those bounds */
    size_t buckets;
    double levels[KEELSTATS_LEVELS];    /* keel_errorbus_events_total by level */
} keelstats_reading_t;

typedef struct keelstats_t keelstats_t;

keelstats_t *keelstats_new(config_t *config);
void keelstats_destroy(keelstats_t **self_p);
/* Reads every service now and adds to `points` (borrowed) one value per
 * series for the interval since the previous reading:
 * service/<name>/{requests_per_s,p99_ms,errors_per_s} and
 * errorbus/<level>/per_min.  A service that did not answer, restarted
 * (a counter went down) or served nothing (no p99) adds nothing.  The
 * reading ends at once when cancel_fd turns readable (-1: none). */
void keelstats_step(keelstats_t *self, double now, json_t *points, int cancel_fd);

/* The Prometheus text of a /metrics reply into *out (pure, for tests). */
void keelstats_parse(const char *text, keelstats_reading_t *out);
/* The q-quantile (0..1) of cumulative bucket counts, interpolated within
 * its bucket; a quantile past the last finite bound is that bound.  -1
 * when the histogram is empty. */
double keelstats_quantile(const double *le, const double *count, size_t n, double q);
/* The level names, index for index with keelstats_reading_t.levels. */
extern const char *const keelstats_levels[KEELSTATS_LEVELS];
/* The services' names and the figures of each, as in the series names. */
extern const char *const keelstats_services[KEELSTATS_SERVICES];
extern const char *const keelstats_figures[KEELSTATS_FIGURES];
#endif
