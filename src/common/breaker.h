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

typedef enum { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN } breaker_state_t;

typedef struct breaker_t breaker_t;

breaker_t *breaker_new(const char *name, int failure_threshold, double reset_timeout_s);
void breaker_destroy(breaker_t **self_p);
/* Probes allowed while HALF_OPEN (default 1) and the cap on the grown reset
 * timeout (default 8 x reset_timeout_s). */
void breaker_set_probe_budget(breaker_t *self, int probes);
void breaker_set_max_reset_timeout(breaker_t *self, double seconds);
/* May a call go through now?  In HALF_OPEN this consumes one probe. */
bool breaker_allow(breaker_t *self, double now);
void breaker_record_success(breaker_t *self, double now);
void breaker_record_failure(breaker_t *self, double now);
breaker_state_t breaker_state(breaker_t *self, double now);
const char *breaker_state_name(breaker_state_t state);   /* "CLOSED", "OPEN", "HALF_OPEN" */
const char *breaker_name(breaker_t *self);
int breaker_failures(breaker_t *self);
#endif
