/*  breaker: see breaker.h.
 *
 *  The state is never advanced by a timer: every entry point takes `now`
 *  and first settles what time alone has changed (refresh()).  So OPEN
 *  becomes HALF_OPEN lazily, the first time anyone looks after the reset
 *  timeout, and nothing has to run in the background.
 *
 *  HALF_OPEN hands out at most `probe_budget` probes per window.  The
 *  window opens with the first probe and lasts one (current) reset
 *  timeout; a probe that has not reported by then is written off and its
 *  slot goes to a new probe.  A lost report therefore costs one timeout,
 *  never the downstream's place forever.  The grown timeout goes back to
 *  the configured one only when a probe succeeds: a downstream that flaps
 *  keeps its long ejections.  Reports that arrive while OPEN come from
 *  calls let through before it opened and change nothing.  One mutex guards everything; the name is
 *  immutable and read without it. */
#include "breaker.h"
#include "log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct breaker_t {
    pthread_mutex_t lock;
    char *name;
    int threshold;
    double base_timeout;
    double max_timeout;
    double timeout;             /* current, grows on probe failures */
    breaker_state_t state;
    int failures;               /* consecutive */
    double opened_at;
    int probe_budget;
    int probes_out;             /* taken in this HALF_OPEN window */
    double window_start;        /* first probe of the window */
};

breaker_t *breaker_new(const char *name, int failure_threshold, double reset_timeout_s)
{
    if (!name || failure_threshold < 1 || !(reset_timeout_s > 0)) {
        log_error("breaker", "invalid breaker parameters (threshold %d, timeout %g)",
                  failure_threshold, reset_timeout_s);
        return NULL;
    }
    breaker_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->name = strdup(name);
    if (!self->name) {
        free(self);
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    self->threshold = failure_threshold;
    self->base_timeout = reset_timeout_s;
    self->timeout = reset_timeout_s;
    self->max_timeout = 8 * reset_timeout_s;
    self->state = BREAKER_CLOSED;
    self->probe_budget = 1;
    return self;
}

void breaker_destroy(breaker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    breaker_t *self = *self_p;
    pthread_mutex_destroy(&self->lock);
    free(self->name);
    free(self);
    *self_p = NULL;
}

void breaker_set_probe_budget(breaker_t *self, int probes)
{
    pthread_mutex_lock(&self->lock);
    self->probe_budget = probes < 1 ? 1 : probes;
    pthread_mutex_unlock(&self->lock);
}

void breaker_set_max_reset_timeout(breaker_t *self, double seconds)
{
    pthread_mutex_lock(&self->lock);
    self->max_timeout = seconds < self->base_timeout ? self->base_timeout : seconds;
    if (self->timeout > self->max_timeout)
        self->timeout = self->max_timeout;
    pthread_mutex_unlock(&self->lock);
}

/* Applies what the passage of time alone changes.  Caller holds the lock. */
static void refresh(breaker_t *self, double now)
{
    if (self->state == BREAKER_OPEN && now - self->opened_at >= self->timeout) {
        self->state = BREAKER_HALF_OPEN;
        self->probes_out = 0;
        log_info("breaker", "%s: half open after %gs", self->name, self->timeout);
    }
    if (self->state == BREAKER_HALF_OPEN && self->probes_out > 0
        && now - self->window_start >= self->timeout) {
        log_warn("breaker", "%s: %d probe(s) never reported, allowing new ones",
                 self->name, self->probes_out);
        self->probes_out = 0;
    }
}

static void trip(breaker_t *self, double now)
{
    self->state = BREAKER_OPEN;
    self->opened_at = now;
    self->probes_out = 0;
    log_warn("breaker", "%s: open for %gs after %d failure(s)",
             self->name, self->timeout, self->failures);
}

bool breaker_allow(breaker_t *self, double now)
{
    pthread_mutex_lock(&self->lock);
    refresh(self, now);
    bool allowed = true;
    if (self->state == BREAKER_OPEN)
        allowed = false;
    else if (self->state == BREAKER_HALF_OPEN) {
        allowed = self->probes_out < self->probe_budget;
        if (allowed && self->probes_out++ == 0)
            self->window_start = now;
    }
    pthread_mutex_unlock(&self->lock);
    return allowed;
}

void breaker_record_success(breaker_t *self, double now)
{
    pthread_mutex_lock(&self->lock);
    refresh(self, now);
    if (self->state == BREAKER_HALF_OPEN) {
        log_info("breaker", "%s: closed after a successful probe", self->name);
        self->state = BREAKER_CLOSED;
        self->timeout = self->base_timeout;
        self->probes_out = 0;
    }
    if (self->state == BREAKER_CLOSED)
        self->failures = 0;
    pthread_mutex_unlock(&self->lock);
}

void breaker_record_failure(breaker_t *self, double now)
{
    pthread_mutex_lock(&self->lock);
    refresh(self, now);
    if (self->state == BREAKER_CLOSED) {
        if (++self->failures >= self->threshold)
            trip(self, now);
    } else if (self->state == BREAKER_HALF_OPEN) {
        self->failures++;
        self->timeout *= 2;
        if (self->timeout > self->max_timeout)
            self->timeout = self->max_timeout;
        trip(self, now);
    }
    pthread_mutex_unlock(&self->lock);
}

breaker_state_t breaker_state(breaker_t *self, double now)
{
    pthread_mutex_lock(&self->lock);
    refresh(self, now);
    breaker_state_t state = self->state;
    pthread_mutex_unlock(&self->lock);
    return state;
}

const char *breaker_state_name(breaker_state_t state)
{
    switch (state) {
    case BREAKER_CLOSED:
        return "CLOSED";
    case BREAKER_OPEN:
        return "OPEN";
    case BREAKER_HALF_OPEN:
        return "HALF_OPEN";
    }
    return "UNKNOWN";
}

const char *breaker_name(breaker_t *self)
{
    return self->name;
}

int breaker_failures(breaker_t *self)
{
    pthread_mutex_lock(&self->lock);
    int failures = self->failures;
    pthread_mutex_unlock(&self->lock);
    return failures;
}
