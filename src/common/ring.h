/*  ring: a bounded ring buffer of doubles with timestamps, the metric
 *  history of the original deques (maxlen N): pushing into a full ring
 *  drops the oldest point.  Gives the statistics the monitors need (mean,
 *  standard deviation, min, max, least-squares slope) without copying.
 *  Not thread-safe: the owner holds its own lock. */
#ifndef KEEL_RING_H
#define KEEL_RING_H
#include <stddef.h>

typedef struct {
    double t;       /* unix seconds */
    double value;
} ring_point_t;

typedef struct ring_t ring_t;

ring_t *ring_new(size_t capacity);
void ring_destroy(ring_t **self_p);
void ring_push(ring_t *self, double t, double value);
size_t ring_size(ring_t *self);
size_t ring_capacity(ring_t *self);
/* i = 0 is the oldest point kept; returns 0 or -1 when out of range. */
int ring_get(ring_t *self, size_t i, ring_point_t *out);
/* The newest point; -1 when empty. */
int ring_last(ring_t *self, ring_point_t *out);
void ring_clear(ring_t *self);
/* Statistics over the newest `window` points (0 = all). 0 on success, -1 if empty. */
typedef struct {
    size_t n;
    double mean, stddev, min, max;
    double slope;   /* least-squares value change per point index */
} ring_stats_t;
int ring_stats(ring_t *self, size_t window, ring_stats_t *out);
#endif
