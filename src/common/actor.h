/*  actor: a background loop on a thread of its own, with the start and
 *  stop every service module needs and nobody should write twice.
 *
 *  Two shapes cover every loop Keel runs:
 *    - a ticker calls tick(arg) at once and then every interval, sooner
 *      when woken (actor_wake), until stopped;
 *    - a runner hands its thread to run(actor, arg), which waits on its own
 *      terms (zmq_poll, a queue's condition, a pipe) and returns once
 *      actor_running() turns false; stop calls the runner's interrupt hook,
 *      if it has one, to cut that wait short, and makes the runner's stop
 *      descriptor readable, which ends a poll that includes it.
 *
 *  _new allocates and starts nothing; _start makes the thread, so a module
 *  can be built, wired and only then set going.  _stop is synchronous:
 *  when it returns the thread has exited, so the owner may free whatever
 *  the loop used.  Stopping twice, or an actor never started, is harmless.
 *
 *  Liveness.  An actor watched by a service's liveness (liveness.h) beats
 *  its stamp on every pass of a ticker and every actor_wait or actor_alive
 *  of a runner, and retires it when stopped: a loop wedged in a deadlock or
 *  an endless call stops beating, and keeld stops feeding systemd's
 *  watchdog. */
#ifndef KEEL_ACTOR_H
#define KEEL_ACTOR_H
#include <stdbool.h>
#include <stddef.h>

#include "liveness.h"

typedef struct actor_t actor_t;

/* One pass of a periodic loop. */
typedef void (actor_tick_fn)(void *arg);
/* A loop that waits on its own; returns when actor_running() is false. */
typedef void (actor_run_fn)(actor_t *actor, void *arg);
/* Cuts a runner's own wait short; called by actor_stop with the runner's
 * arg after it has cleared running, never with the actor's lock held. */
typedef void (actor_interrupt_fn)(void *arg);

/* `name` names the thread (15 characters show in top -H); copied. */
actor_t *actor_new(const char *name, double interval_s, actor_tick_fn *tick, void *arg);
actor_t *actor_new_runner(const char *name, actor_run_fn *run, actor_interrupt_fn *interrupt,
                          void *arg);
/* Stops the actor first when it runs. */
void actor_destroy(actor_t **self_p);
/* Beats a stamp of `liveness` (borrowed; NULL: none) named after the
 * actor; a runner that waits longer than `interval_s` between beats
 * (0: a ticker's own interval) counts as stalled.  Call before actor_start. */
void actor_watch(actor_t *self, liveness_t *liveness, double interval_s);
/* A ticker's first pass waits a whole interval instead of running at once
 * (for checks that must not fire before what they check has started).
 * Call before actor_start. */
void actor_delay_first(actor_t *self);
/* 0, or -1 when the thread cannot be made (logged). */
int actor_start(actor_t *self);
/* Synchronous: returns once the thread has exited. */
void actor_stop(actor_t *self);
/* Stops n actors (NULL entries skipped) together: each is told before any
 * is waited for, so a pool stops in the time of its slowest, not the sum. */
void actor_stop_all(actor_t *const *actors, size_t n);
/* A ticker ticks now instead of at the end of its interval. */
void actor_wake(actor_t *self);
void actor_set_interval(actor_t *self, double interval_s);
bool actor_running(actor_t *self);
/* For runners: waits up to `seconds`, less if stopped, and beats the
 * stamp.  Returns actor_running(). */
bool actor_wait(actor_t *self, double seconds);
/* For runners that block elsewhere: beats the stamp. */
void actor_alive(actor_t *self);
/* A descriptor that turns readable once the actor is told to stop, so a
 * poll set that includes it (a runner's zmq_poll, a call a tick makes:
 * wire_client_cancel_on) ends at once; only readability means anything.
 * -1 when the system had none to give.  Owned by the actor. */
int actor_stop_fd(actor_t *self);
#endif
