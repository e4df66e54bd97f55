/*  breaker: a circuit breaker (CLOSED / OPEN / HALF_OPEN) for calls to one
 *  downstream.  CLOSED counts consecutive failures; at `failure_threshold`
 *  it opens.  OPEN refuses calls until `reset_timeout_s` has passed, then
 *  lets a bounded number of probes through (HALF_OPEN).  A probe success
 *  closes it; a probe failure re-opens it, and each re-open lasts longer
 *  (reset timeout doubled, capped at `max_reset_timeout_s`), so a downstream
 *  that keeps failing stays ejected longer each time (Envoy's lesson).
 *  HALF_OPEN itself has a time limit: probes that never report back do not
 *  keep it half open forever.  Thread-safe; time is passed in (seconds,
 *  monotonic) so tests need no sleeps. */
#ifndef KEEL_BREAKER_H
#define KEEL_BREAKER_H
#include <stdbool.h>

#include "config.h"

typedef enum { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN } breaker_state_t;

typedef struct {
    int failures;               /* consecutive failures that open it */
    double reset_s;             /* how long the first opening lasts */
    double max_reset_s;         /* the cap on an opening grown by failed probes */
    int half_open_probes;       /* probes let through while HALF_OPEN */
} breaker_limits_t;

/* 3 failures, 30 s, growing to 240 s, one probe: the originals' 3 and 30 s. */
#define BREAKER_DEFAULT_LIMITS ((breaker_limits_t){ 3, 30.0, 240.0, 1 })

typedef struct breaker_t breaker_t;

/* NULL (logged) when a limit is out of range. */
breaker_t *breaker_new(const char *name, const breaker_limits_t *limits);
void breaker_destroy(breaker_t **self_p);
/* The limits configured under `prefix` ("core.coordinator.breaker":
 * failures, reset_s, max_reset_s, half_open_probes), the defaults where a
 * key is absent. */
breaker_limits_t breaker_limits_read(config_t *config, const char *prefix);
/* May a call go through now?  In HALF_OPEN this consumes one probe. */
bool breaker_allow(breaker_t *self, double now);
void breaker_record_success(breaker_t *self, double now);
void breaker_record_failure(breaker_t *self, double now);
breaker_state_t breaker_state(breaker_t *self, double now);
const char *breaker_state_name(breaker_state_t state);   /* "CLOSED", "OPEN", "HALF_OPEN" */
const char *breaker_name(breaker_t *self);
int breaker_failures(breaker_t *self);
#endif
