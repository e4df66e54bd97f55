/*  actor: see actor.h.  Waits run on the monotonic clock, so a wall-clock
 *  jump neither stalls nor hurries a loop; a wake ends the current wait
 *  only, and stop is a wake too.  The stop descriptor is an eventfd,
 *  written once when the actor is told to stop and emptied when it starts.
 *  The only pthread_create in src/ is here (tests/check-blocks.sh). */
#include "actor.h"
#include "clock.h"
#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>

struct actor_t {
    char name[32];
    actor_tick_fn *tick;
    actor_run_fn *run;
    actor_interrupt_fn *interrupt;
    void *arg;
    double interval_s;
    bool delay_first;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_bool running;    /* written under lock; read without it on every pass */
    bool woken;             /* guarded by lock */
    bool started;           /* touched by the owner only */
    pthread_t thread;
    int stop_fd;
    liveness_t *liveness;   /* borrowed, or NULL */
    double watch_s;
    liveness_stamp_t *stamp;    /* from _start to _stop */
};

static actor_t *actor_make(const char *name, void *arg)
{
    actor_t *self = calloc(1, sizeof *self);
    snprintf(self->name, sizeof self->name, "%s", name);
    self->arg = arg;
    self->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&self->lock, NULL);
    clock_cond_init(&self->cond);
    return self;
}

actor_t *actor_new(const char *name, double interval_s, actor_tick_fn *tick, void *arg)
{
    actor_t *self = actor_make(name, arg);
    self->interval_s = interval_s;
    self->tick = tick;
    return self;
}

actor_t *actor_new_runner(const char *name, actor_run_fn *run, actor_interrupt_fn *interrupt,
                          void *arg)
{
    actor_t *self = actor_make(name, arg);
    self->run = run;
    self->interrupt = interrupt;
    return self;
}

void actor_destroy(actor_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    actor_t *self = *self_p;
    actor_stop(self);
    if (self->stop_fd >= 0)
        close(self->stop_fd);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

void actor_delay_first(actor_t *self)
{
    self->delay_first = true;
}

void actor_watch(actor_t *self, liveness_t *liveness, double interval_s)
{
    self->liveness = liveness;
    self->watch_s = interval_s;
}

/* Sleeps `seconds`, or until woken or stopped (stop wakes too); the lock
 * is held.  The wake is consumed. */
static void sleep_unless_woken(actor_t *self, double seconds)
{
    struct timespec until;
    clock_deadline(seconds, &until);
    while (!self->woken && pthread_cond_timedwait(&self->cond, &self->lock, &until) == 0)
        ;
    self->woken = false;
}

static void *actor_main(void *arg)
{
    actor_t *self = arg;
    char shown[16];     /* the kernel keeps 15 characters of a thread's name */
    snprintf(shown, sizeof shown, "%.15s", self->name);
    pthread_setname_np(pthread_self(), shown);
    if (self->run) {
        self->run(self, self->arg);
        return NULL;
    }
    pthread_mutex_lock(&self->lock);
    if (self->delay_first && self->running)
        sleep_unless_woken(self, self->interval_s);
    while (self->running) {
        pthread_mutex_unlock(&self->lock);
        liveness_beat(self->stamp);
        self->tick(self->arg);
        pthread_mutex_lock(&self->lock);
        if (self->running)
            sleep_unless_woken(self, self->interval_s);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

int actor_start(actor_t *self)
{
    if (self->started)
        return 0;
    pthread_mutex_lock(&self->lock);
    self->running = true;
    self->woken = false;
    pthread_mutex_unlock(&self->lock);
    uint64_t told;          /* a restarted runner must not see the last stop */
    while (self->stop_fd >= 0 && read(self->stop_fd, &told, sizeof told) > 0)
        ;
    /* A delayed first pass is quiet for a whole interval: allow for it. */
    double watch_s = self->watch_s > 0 ? self->watch_s : self->interval_s;
    self->stamp = liveness_stamp(self->liveness, self->name, self->delay_first ? 2 * watch_s : watch_s);
    if (pthread_create(&self->thread, NULL, actor_main, self) != 0) {
        log_error("actor", "cannot start the %s thread", self->name);
        liveness_retire(self->stamp);
        self->stamp = NULL;
        pthread_mutex_lock(&self->lock);
        self->running = false;
        pthread_mutex_unlock(&self->lock);
        return -1;
    }
    self->started = true;
    return 0;
}

/* Clears running and cuts the current wait short; does not wait. */
static void tell_to_stop(actor_t *self)
{
    pthread_mutex_lock(&self->lock);
    self->running = false;
    self->woken = true;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
    uint64_t one = 1;
    if (self->stop_fd >= 0 && write(self->stop_fd, &one, sizeof one) < 0)
        log_error("actor", "cannot tell %s to stop through its descriptor", self->name);
    if (self->interrupt)
        self->interrupt(self->arg);
}

static void join(actor_t *self)
{
    pthread_join(self->thread, NULL);
    liveness_retire(self->stamp);
    self->stamp = NULL;
    self->started = false;
}

void actor_stop(actor_t *self)
{
    actor_stop_all(&self, 1);
}

void actor_stop_all(actor_t *const *actors, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (actors[i] && actors[i]->started)
            tell_to_stop(actors[i]);
    for (size_t i = 0; i < n; i++)
        if (actors[i] && actors[i]->started)
            join(actors[i]);
}

void actor_wake(actor_t *self)
{
    pthread_mutex_lock(&self->lock);
    self->woken = true;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
}

void actor_set_interval(actor_t *self, double interval_s)
{
    pthread_mutex_lock(&self->lock);
    self->interval_s = interval_s;
    pthread_mutex_unlock(&self->lock);
}

bool actor_running(actor_t *self)
{
    return atomic_load(&self->running);
}

bool actor_wait(actor_t *self, double seconds)
{
    liveness_beat(self->stamp);
    pthread_mutex_lock(&self->lock);
    if (self->running)
        sleep_unless_woken(self, seconds);
    bool running = self->running;
    pthread_mutex_unlock(&self->lock);
    return running;
}

void actor_alive(actor_t *self)
{
    liveness_beat(self->stamp);
}

int actor_stop_fd(actor_t *self)
{
    return self->stop_fd;
}
