/*  predictor: the statistics behind anomaly alerts and failure prediction.
 *
 *  anomaly_t is the prior hub's baseline detector (OH-53..OH-55), kept
 *  exactly: a baseline of at most 100 values, no verdict before 10, sample
 *  standard deviation, anomalous iff z > 2, anomalies kept out of the
 *  baseline.
 *
 *  predictor_failure turns an agent's recent probes into a probability in
 *  [0, 1]: the share of recent failed probes, or, when it is larger, a
 *  latency anomaly score.  That score needs a short (20) and a long (100)
 *  window to agree that the latest latency is high (the smaller of the two
 *  z-scores is used, so one noisy window cannot raise an alarm) and adds a
 *  trend term, the least-squares slope of the last 5 latencies measured
 *  against the probe timeout. */
#ifndef OBS_PREDICTOR_H
#define OBS_PREDICTOR_H
#include <stdbool.h>
#include <stddef.h>

#include "ring.h"

#define ANOMALY_BASELINE 100
#define ANOMALY_MIN 10
#define ANOMALY_Z 2.0

typedef struct {
    double values[ANOMALY_BASELINE];
    size_t count, head;         /* head: index of the oldest value */
} anomaly_t;

void anomaly_init(anomaly_t *self);
/* Feeds one value; true when it is anomalous (*z_out gets its z-score). */
bool anomaly_check(anomaly_t *self, double value, double *z_out);

/* failures: failed probes among the last `window` probes. */
double predictor_failure(ring_t *latency, int failures, int window, double timeout_s);
#endif
