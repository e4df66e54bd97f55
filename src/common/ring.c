/*  ring: see ring.h.
 *
 *  One fixed array, the index of the oldest point and a count: a push
 *  into a full ring overwrites the oldest slot and moves the start, so
 *  nothing is ever shifted or reallocated.  Statistics walk the newest
 *  `window` points in place and take two passes (mean first, then the
 *  deviations from it), which stays accurate for values that sit far from
 *  zero, such as timestamps or byte counts, where the one-pass sum of
 *  squares cancels catastrophically. */
#include "ring.h"
#include "log.h"

#include <math.h>
#include <stdlib.h>

struct ring_t {
    ring_point_t *points;
    size_t capacity;
    size_t start;               /* oldest */
    size_t count;
};

ring_t *ring_new(size_t capacity)
{
    if (capacity == 0) {
        log_error("ring", "capacity must be at least 1");
        return NULL;
    }
    ring_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->points = calloc(capacity, sizeof *self->points);
    if (!self->points) {
        free(self);
        return NULL;
    }
    self->capacity = capacity;
    return self;
}

void ring_destroy(ring_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->points);
    free(*self_p);
    *self_p = NULL;
}

void ring_push(ring_t *self, double t, double value)
{
    size_t slot = (self->start + self->count) % self->capacity;
    self->points[slot] = (ring_point_t){ .t = t, .value = value };
    if (self->count < self->capacity)
        self->count++;
    else
        self->start = (self->start + 1) % self->capacity;
}

size_t ring_size(ring_t *self)
{
    return self->count;
}

size_t ring_capacity(ring_t *self)
{
    return self->capacity;
}

static const ring_point_t *at(ring_t *self, size_t i)
{
    return &self->points[(self->start + i) % self->capacity];
}

int ring_get(ring_t *self, size_t i, ring_point_t *out)
{
    if (i >= self->count)
        return -1;
    *out = *at(self, i);
    return 0;
}

int ring_last(ring_t *self, ring_point_t *out)
{
    if (self->count == 0)
        return -1;
    return ring_get(self, self->count - 1, out);
}

void ring_clear(ring_t *self)
{
    self->start = 0;
    self->count = 0;
}

int ring_stats(ring_t *self, size_t window, ring_stats_t *out)
{
    if (self->count == 0)
        return -1;
    size_t n = window == 0 || window > self->count ? self->count : window;
    size_t first = self->count - n;

    double sum = 0, min = INFINITY, max = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double v = at(self, first + i)->value;
        sum += v;
        if (v < min)
            min = v;
        if (v > max)
            max = v;
    }
    double mean = sum / n;
    double x_mean = (n - 1) / 2.0;
    double sq = 0, sxy = 0, sxx = 0;
    for (size_t i = 0; i < n; i++) {
        double dy = at(self, first + i)->value - mean;
        double dx = i - x_mean;
        sq += dy * dy;
        sxy += dx * dy;
        sxx += dx * dx;
    }
    *out = (ring_stats_t){
        .n = n, .mean = mean, .stddev = sqrt(sq / n),
        .min = min, .max = max, .slope = sxx > 0 ? sxy / sxx : 0,
    };
    return 0;
}
