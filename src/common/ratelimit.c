/*  ratelimit: see ratelimit.h.  A linear scan finds a source: the table
 *  holds the few addresses of two machines' agents, and only requests that
 *  would create a name ever look. */
#include "ratelimit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SOURCE_MAX 64           /* an IPv6 text address is at most 45 bytes */

typedef struct {
    char source[SOURCE_MAX];
    double tokens;
    double at;                  /* when tokens was last brought up to date */
} bucket_t;

struct ratelimit_t {
    pthread_mutex_t lock;
    double burst, per_s;
    bucket_t *buckets;
    size_t count, max;
};

ratelimit_t *ratelimit_new(double burst, double per_minute, size_t max_sources)
{
    ratelimit_t *self = calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    self->max = max_sources > 0 ? max_sources : 1;
    self->buckets = calloc(self->max, sizeof *self->buckets);
    ratelimit_configure(self, burst, per_minute);
    return self;
}

void ratelimit_destroy(ratelimit_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pthread_mutex_destroy(&(*self_p)->lock);
    free((*self_p)->buckets);
    free(*self_p);
    *self_p = NULL;
}

void ratelimit_configure(ratelimit_t *self, double burst, double per_minute)
{
    pthread_mutex_lock(&self->lock);
    self->burst = burst > 0 ? burst : 0;
    self->per_s = per_minute > 0 ? per_minute / 60.0 : 0;
    for (size_t i = 0; i < self->count; i++)
        if (self->buckets[i].tokens > self->burst)
            self->buckets[i].tokens = self->burst;
    pthread_mutex_unlock(&self->lock);
}

/* Caller locks. */
static void refill(ratelimit_t *self, bucket_t *b, double now)
{
    if (now > b->at) {
        b->tokens += (now - b->at) * self->per_s;
        if (b->tokens > self->burst)
            b->tokens = self->burst;
        b->at = now;
    }
}

/* The slot a new source takes: a free one, else a refilled one, else the
 * one idle longest.  Caller locks. */
static bucket_t *slot_for_new(ratelimit_t *self, double now)
{
    if (self->count < self->max)
        return &self->buckets[self->count++];
    bucket_t *oldest = &self->buckets[0];
    for (size_t i = 0; i < self->count; i++) {
        bucket_t *b = &self->buckets[i];
        refill(self, b, now);
        if (b->tokens >= self->burst)
            return b;
        if (b->at < oldest->at)
            oldest = b;
    }
    return oldest;
}

bool ratelimit_take(ratelimit_t *self, const char *source, double now)
{
    if (!source)
        source = "";
    pthread_mutex_lock(&self->lock);
    if (self->burst <= 0) {
        pthread_mutex_unlock(&self->lock);
        return true;
    }
    bucket_t *b = NULL;
    for (size_t i = 0; i < self->count && !b; i++)
        if (!strncmp(self->buckets[i].source, source, SOURCE_MAX - 1))
            b = &self->buckets[i];
    if (!b) {
        b = slot_for_new(self, now);
        snprintf(b->source, sizeof b->source, "%s", source);
        b->tokens = self->burst;
        b->at = now;
    }
    refill(self, b, now);
    bool allowed = b->tokens >= 1;
    if (allowed)
        b->tokens -= 1;
    pthread_mutex_unlock(&self->lock);
    return allowed;
}

char *ratelimit_describe(ratelimit_t *self, char *buf, size_t len)
{
    pthread_mutex_lock(&self->lock);
    if (self->burst <= 0)
        snprintf(buf, len, "no limit");
    else
        snprintf(buf, len, "at most %.0f at once and %g a minute", self->burst, self->per_s * 60.0);
    pthread_mutex_unlock(&self->lock);
    return buf;
}
