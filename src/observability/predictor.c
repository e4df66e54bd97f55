/*  predictor: see predictor.h. */
#include "predictor.h"

#include <math.h>

void anomaly_init(anomaly_t *self)
{
    self->count = self->head = 0;
}

static void baseline_add(anomaly_t *self, double value)
{
    if (self->count < ANOMALY_BASELINE) {
        self->values[(self->head + self->count++) % ANOMALY_BASELINE] = value;
    } else {
        self->values[self->head] = value;
        self->head = (self->head + 1) % ANOMALY_BASELINE;
    }
}

bool anomaly_check(anomaly_t *self, double value, double *z_out)
{
    if (z_out)
        *z_out = 0;
    if (self->count < ANOMALY_MIN) {
        baseline_add(self, value);
        return false;
    }
    double sum = 0;
    for (size_t i = 0; i < self->count; i++)
        sum += self->values[i];
    double mean = sum / (double)self->count, var = 0;
    for (size_t i = 0; i < self->count; i++)
        var += (self->values[i] - mean) * (self->values[i] - mean);
    double stdev = sqrt(var / (double)(self->count - 1));
    if (stdev == 0)
        return false;
    double z = fabs(value - mean) / stdev;
    if (z_out)
        *z_out = z;
    if (z > ANOMALY_Z)
        return true;
    baseline_add(self, value);
    return false;
}

static double clamp01(double x)
{
    return x < 0 ? 0 : x > 1 ? 1 : x;
}

/* z of the newest point against the `window` points before it; 0 when
 * there are too few or they do not vary. */
static double latest_z(ring_t *r, size_t window)
{
    size_t n = ring_size(r);
    if (n < ANOMALY_MIN + 1)
        return 0;
    size_t w = n - 1 < window ? n - 1 : window;
    double sum = 0, sq = 0;
    ring_point_t p;
    for (size_t i = n - 1 - w; i < n - 1; i++) {
        ring_get(r, i, &p);
        sum += p.value;
        sq += p.value * p.value;
    }
    double mean = sum / (double)w, var = sq / (double)w - mean * mean;
    ring_last(r, &p);
    if (var <= 1e-18 || p.value <= mean)
        return 0;
    return (p.value - mean) / sqrt(var);
}

double predictor_failure(ring_t *latency, int failures, int window, double timeout_s)
{
    double observed = window > 0 ? (double)failures / (double)window : 0;
    double z_short = latest_z(latency, 20), z_long = latest_z(latency, ANOMALY_BASELINE);
    double z = z_short < z_long ? z_short : z_long;
    double anomaly = clamp01((z - ANOMALY_Z) / 4.0 + (z > ANOMALY_Z ? 0.5 : 0));
    double trend = 0;
    ring_stats_t st;
    if (timeout_s > 0 && ring_stats(latency, 5, &st) == 0 && st.n >= 5 && st.slope > 0)
        trend = clamp01(st.slope * 5.0 / timeout_s);
    double score = clamp01(0.7 * anomaly + 0.3 * trend);
    return clamp01(observed > score ? observed : score);
}
