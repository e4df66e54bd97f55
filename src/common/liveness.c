/*  liveness: see liveness.h.  A fixed array of stamps, so that a stamp's
 *  address never moves and a beat needs no lock; only taking a stamp locks,
 *  and that happens while a service starts. */
#include "liveness.h"
#include "clock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_STAMPS 64

struct liveness_stamp_t {
    char name[64];
    double interval_s;
    atomic_llong beat_us;       /* clock_mono() of the last beat, in microseconds */
    atomic_bool watched;
};

struct liveness_t {
    pthread_mutex_t lock;
    liveness_stamp_t stamps[MAX_STAMPS];
    atomic_int count;
};

liveness_t *liveness_new(void)
{
    liveness_t *self = calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    return self;
}

void liveness_destroy(liveness_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pthread_mutex_destroy(&(*self_p)->lock);
    free(*self_p);
    *self_p = NULL;
}

liveness_stamp_t *liveness_stamp(liveness_t *self, const char *name, double interval_s)
{
    if (!self)
        return NULL;
    pthread_mutex_lock(&self->lock);
    liveness_stamp_t *stamp = NULL;
    int n = atomic_load(&self->count);
    /* A retired stamp is taken again first: a loop stopped and started
     * (a restart, a reload) must not use up the array. */
    for (int i = 0; i < n && !stamp; i++)
        if (!atomic_load(&self->stamps[i].watched))
            stamp = &self->stamps[i];
    if (!stamp && n < MAX_STAMPS)
        stamp = &self->stamps[n];
    if (stamp) {
        snprintf(stamp->name, sizeof stamp->name, "%s", name);
        stamp->interval_s = interval_s;
        liveness_beat(stamp);
        atomic_store(&stamp->watched, true);
        if (stamp == &self->stamps[n])
            atomic_store(&self->count, n + 1);
    }
    pthread_mutex_unlock(&self->lock);
    return stamp;
}

void liveness_beat(liveness_stamp_t *stamp)
{
    if (stamp)
        atomic_store_explicit(&stamp->beat_us, (long long)(clock_mono() * 1e6),
                              memory_order_relaxed);
}

void liveness_retire(liveness_stamp_t *stamp)
{
    if (stamp)
        atomic_store(&stamp->watched, false);
}

bool liveness_fresh(liveness_t *self, double now, double grace_s, char *stalled, size_t len)
{
    if (!self)
        return true;
    int n = atomic_load(&self->count);
    for (int i = 0; i < n; i++) {
        liveness_stamp_t *s = &self->stamps[i];
        if (!atomic_load(&s->watched))
            continue;
        double quiet = now - (double)atomic_load_explicit(&s->beat_us, memory_order_relaxed) / 1e6;
        if (quiet > s->interval_s + grace_s) {
            snprintf(stalled, len, "%s (quiet for %.1f s)", s->name, quiet);
            return false;
        }
    }
    return true;
}
