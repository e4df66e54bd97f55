/*  rates: event counts over a sliding time window, per key (agent, error
 *  type, level), kept in memory in fixed time buckets.  Error rates and
 *  alert thresholds are asked for every few seconds while events may
 *  arrive at 100 000 a second; counting them with SQL over the window
 *  would rescan millions of rows each time, so the writer adds each
 *  batch's per-key counts here instead and a question costs one pass over
 *  the keys.  Bounded: past max_keys, new keys are counted under "(other)".
 *  Thread-safe (one mutex). */
#ifndef KEEL_ERRORBUS_RATES_H
#define KEEL_ERRORBUS_RATES_H
#include <jansson.h>
#include <stddef.h>

typedef struct rates_t rates_t;

rates_t *rates_new(double bucket_s, int nbuckets, size_t max_keys);
void rates_destroy(rates_t **self_p);
/* Adds `count` events for key at time `now`; rank is the worst severity
 * seen (1 low .. 4 critical), kept as a maximum per bucket. */
void rates_add(rates_t *self, const char *key, double now, long count, int rank);
/* {key: {"count": n, "rank": r}} over the last window_s seconds (at most
 * the ring's span), keys with no events left out. */
json_t *rates_snapshot(rates_t *self, double now, double window_s);
#endif
