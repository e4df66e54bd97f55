/*  evstore: the ErrorBus database (error_system.db) and the path every
 *  event takes into it.  Producers (ingress, NATS, log scanner, recovery)
 *  hand events to an in-memory queue and return at once; one writer thread
 *  takes everything queued and writes it in one transaction, so the cost of
 *  a commit is shared by every event that arrived while the previous one
 *  ran.  Events that were committed go on to a sink (the fan-out), so
 *  subscribers only ever see what is stored.  Reads use a second
 *  connection, which WAL lets run beside the writer. */
#ifndef KEEL_ERRORBUS_EVSTORE_H
#define KEEL_ERRORBUS_EVSTORE_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "liveness.h"
#include "metrics.h"
#include "normalise.h"

typedef struct evstore_t evstore_t;

/* The sliding counts the writer keeps (see rates.h), by received time. */
typedef enum { RATES_AGENT, RATES_TYPE, RATES_LEVEL } evstore_rates_t;

/* Receives committed events; takes ownership of each one. */
typedef void (evstore_sink_fn)(void *ctx, event_t **events, size_t n);

typedef struct {
    long stored, duplicates, dropped, quarantined, write_failed, batches, queued;
    long total;                 /* rows in errors (counted at start, kept up to date) */
    long last_batch;
} evstore_stats_t;

/* The writer beats a stamp of `liveness` (borrowed; NULL: none). */
evstore_t *evstore_new(const char *path, metrics_t *metrics, liveness_t *liveness, size_t queue_max,
                       char *err, size_t errlen);
void evstore_destroy(evstore_t **self_p);
void evstore_set_sink(evstore_t *self, evstore_sink_fn *fn, void *ctx);
/* Retention: rows older than `days` go, checked every `interval_s`. */
void evstore_set_retention(evstore_t *self, double days, double interval_s);
int evstore_start(evstore_t *self);
/* Writes everything still queued, then stops the writer. */
void evstore_stop(evstore_t *self);

/* Takes ownership.  A full queue waits while the writer makes progress;
 * -1 when the writer is stopped or stuck: the event is counted as dropped
 * (never silently) and destroyed. */
int evstore_submit(evstore_t *self, event_t *event);
/* Submits and waits until the event's batch has committed, for callers
 * that acknowledge (report_error): 0 once stored (or found to be a
 * duplicate), -1 when dropped, failed or not committed within timeout_ms,
 * with the reason in `why`. */
int evstore_submit_wait(evstore_t *self, event_t *event, int timeout_ms, char *why, size_t whylen);
/* Keeps a message the ingress could not use, with the reason. */
void evstore_quarantine(evstore_t *self, const char *framing, const char *reason,
                        const void *data, size_t len);
void evstore_stats(evstore_t *self, evstore_stats_t *out);
const char *evstore_path(evstore_t *self);

/* {key: {count, rank}} of events stored over the last window_s seconds:
 * per agent (up to 300 s), per error type and per level (up to 3600 s).
 * rank is the worst level seen: 1 info or debug, 2 warning, 3 error,
 * 4 critical. */
json_t *evstore_rates(evstore_t *self, evstore_rates_t which, double now, double window_s);
int evstore_level_rank(const char *level);

/* Reads and small writes on the reader connection (serialised by a lock).
 * `types` names one bind per character: 'i' long, 'd' double, 's' string
 * (NULL binds null).  Rows come back as objects keyed by column name. */
json_t *evstore_query(evstore_t *self, const char *sql, const char *types, ...);
/* The first column of the first row as a number; `fallback` on failure. */
double evstore_scalar(evstore_t *self, double fallback, const char *sql, const char *types, ...);
/* Statements with no result: the number of rows changed, or -1. */
int evstore_exec(evstore_t *self, const char *sql, const char *types, ...);
#endif
