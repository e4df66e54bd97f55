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
#include <stdio.h>
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

breaker_limits_t breaker_limits_read(config_t *config, const char *prefix)
{
    breaker_limits_t limits = BREAKER_DEFAULT_LIMITS;
    char key[160];
    snprintf(key, sizeof key, "%s.failures", prefix);
    limits.failures = (int)config_int(config, key, limits.failures);
    snprintf(key, sizeof key, "%s.reset_s", prefix);
    limits.reset_s = config_double(config, key, limits.reset_s);
    snprintf(key, sizeof key, "%s.max_reset_s", prefix);
    limits.max_reset_s = config_double(config, key, limits.max_reset_s);
    snprintf(key, sizeof key, "%s.half_open_probes", prefix);
    limits.half_open_probes = (int)config_int(config, key, limits.half_open_probes);
    return limits;
}

breaker_t *breaker_new(const char *name, const breaker_limits_t *limits)
{
    if (!name || limits->failures < 1 || !(limits->reset_s > 0) || limits->max_reset_s < limits->reset_s
        || limits->half_open_probes < 1) {
        log_error("breaker", "invalid breaker limits (failures %d, reset %g s, max %g s, probes %d)",
                  limits->failures, limits->reset_s, limits->max_reset_s, limits->half_open_probes);
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
    self->threshold = limits->failures;
    self->base_timeout = limits->reset_s;
    self->timeout = limits->reset_s;
    self->max_timeout = limits->max_reset_s;
    self->state = BREAKER_CLOSED;
    self->probe_budget = limits->half_open_probes;
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
