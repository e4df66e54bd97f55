/*  test_actor: the one background-loop shape every module uses.  Waits
 *  poll a condition against a deadline scaled by KEEL_TIME_FACTOR, so a
 *  busy machine slows the test down instead of failing it; the bounds that
 *  matter (stop is prompt, a long interval does not tick twice) are checked
 *  with margins far wider than any scheduling delay. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actor.h"
#include "clock.h"
#include "liveness.h"
#include "testutil.h"


/* Polls until *counter reaches `at_least`; false on timeout. */
static bool wait_count(atomic_int *counter, int at_least, double seconds)
{
    double until = clock_mono() + seconds * tu_factor();
    while (atomic_load(counter) < at_least) {
        if (clock_mono() > until)
            return false;
        usleep(2000);
    }
    return true;
}

typedef struct {
    atomic_int ticks;
    atomic_int interrupts;
    double block_s;         /* a tick that takes this long */
} probe_t;

static void count_tick(void *arg)
{
    probe_t *p = arg;
    atomic_fetch_add(&p->ticks, 1);
    if (p->block_s > 0)
        usleep((useconds_t)(p->block_s * 1e6));
}

static void test_ticker_ticks_at_once_then_every_interval(void **state)
{
    (void)state;
    probe_t p = { 0 };
    actor_t *a = actor_new("t-interval", 0.01, count_tick, &p);
    assert_int_equal(atomic_load(&p.ticks), 0);     /* _new starts nothing */
    assert_int_equal(actor_start(a), 0);
    assert_true(wait_count(&p.ticks, 5, 5.0));
    actor_destroy(&a);
    assert_null(a);
}

static void test_wake_ticks_before_the_interval_ends(void **state)
{
    (void)state;
    probe_t p = { 0 };
    actor_t *a = actor_new("t-wake", 3600, count_tick, &p);
    assert_int_equal(actor_start(a), 0);
    assert_true(wait_count(&p.ticks, 1, 5.0));
    actor_wake(a);
    assert_true(wait_count(&p.ticks, 2, 5.0));
    actor_destroy(&a);
    assert_int_equal(atomic_load(&p.ticks), 2);
}

static void test_stop_is_prompt_and_synchronous(void **state)
{
    (void)state;
    probe_t p = { 0 };
    actor_t *a = actor_new("t-stop", 3600, count_tick, &p);
    assert_int_equal(actor_start(a), 0);
    assert_true(wait_count(&p.ticks, 1, 5.0));
    double started = clock_mono();
    actor_stop(a);
    assert_true(clock_mono() - started < 1.0 * tu_factor());
    assert_false(actor_running(a));
    int after = atomic_load(&p.ticks);
    usleep(20000);
    assert_int_equal(atomic_load(&p.ticks), after);
    actor_stop(a);          /* twice: harmless */
    actor_destroy(&a);
}

static void test_stop_without_start_is_harmless(void **state)
{
    (void)state;
    probe_t p = { 0 };
    actor_t *a = actor_new("t-never", 1, count_tick, &p);
    actor_stop(a);
    actor_destroy(&a);
    assert_int_equal(atomic_load(&p.ticks), 0);
}

static void test_delay_first_waits_one_interval(void **state)
{
    (void)state;
    probe_t p = { 0 };
    actor_t *a = actor_new("t-delay", 3600, count_tick, &p);
    actor_delay_first(a);
    assert_int_equal(actor_start(a), 0);
    usleep(50000);
    assert_int_equal(atomic_load(&p.ticks), 0);
    actor_wake(a);          /* a wake ends the first wait too */
    assert_true(wait_count(&p.ticks, 1, 5.0));
    actor_destroy(&a);
}

static void test_set_interval_takes_effect(void **state)
{
    (void)state;
    probe_t p = { 0 };
    actor_t *a = actor_new("t-retime", 3600, count_tick, &p);
    assert_int_equal(actor_start(a), 0);
    assert_true(wait_count(&p.ticks, 1, 5.0));
    actor_set_interval(a, 0.005);
    actor_wake(a);
    assert_true(wait_count(&p.ticks, 6, 5.0));
    actor_destroy(&a);
}

/* A runner that waits on the actor itself, the way a queue consumer does. */
static void run_waiting(actor_t *actor, void *arg)
{
    probe_t *p = arg;
    while (actor_wait(actor, 3600))
        atomic_fetch_add(&p->ticks, 1);
}

static void note_interrupt(void *arg)
{
    probe_t *p = arg;
    atomic_fetch_add(&p->interrupts, 1);
}

static void test_runner_ends_on_stop_and_is_interrupted(void **state)
{
    (void)state;
    probe_t p = { 0 };
    actor_t *a = actor_new_runner("t-runner", run_waiting, note_interrupt, &p);
    assert_int_equal(actor_start(a), 0);
    assert_true(actor_running(a));
    actor_wake(a);
    assert_true(wait_count(&p.ticks, 1, 5.0));
    double started = clock_mono();
    actor_stop(a);
    assert_true(clock_mono() - started < 1.0 * tu_factor());
    assert_int_equal(atomic_load(&p.interrupts), 1);
    actor_destroy(&a);
}

/* A runner whose wait nothing can cut short: it sees the stop only when
 * its sleep ends. */
static void run_sleeping(actor_t *actor, void *arg)
{
    probe_t *p = arg;
    while (actor_running(actor)) {
        atomic_fetch_add(&p->ticks, 1);
        usleep((useconds_t)(p->block_s * 1e6));
    }
}

static void test_stop_all_stops_a_pool_in_the_time_of_one(void **state)
{
    (void)state;
    enum { N = 8 };
    probe_t p[N];
    actor_t *pool[N + 1];
    for (int i = 0; i < N; i++) {
        p[i] = (probe_t){ .block_s = 0.3 * tu_factor() };
        pool[i] = actor_new_runner("t-pool", run_sleeping, NULL, &p[i]);
        assert_int_equal(actor_start(pool[i]), 0);
    }
    pool[N] = NULL;         /* skipped */
    for (int i = 0; i < N; i++)
        assert_true(wait_count(&p[i].ticks, 1, 5.0));
    double started = clock_mono();
    actor_stop_all(pool, N + 1);
    /* One after another would take N sleeps (2.4 s scaled); together, one. */
    assert_true(clock_mono() - started < 1.2 * tu_factor());
    for (int i = 0; i < N; i++) {
        assert_false(actor_running(pool[i]));
        actor_destroy(&pool[i]);
    }
}

/* A runner that waits in poll(2) for an hour, the stop descriptor in its
 * set and no interrupt hook: the stop must end the wait at once. */
static void run_polling(actor_t *actor, void *arg)
{
    probe_t *p = arg;
    struct pollfd stop = { actor_stop_fd(actor), POLLIN, 0 };
    while (actor_running(actor)) {
        atomic_fetch_add(&p->ticks, 1);
        poll(&stop, 1, 3600 * 1000);
    }
}

static void test_stop_descriptor_ends_a_poll_and_is_reset_on_restart(void **state)
{
    (void)state;
    probe_t p = { 0 };
    actor_t *a = actor_new_runner("t-pollfd", run_polling, NULL, &p);
    for (int round = 1; round <= 2; round++) {
        assert_int_equal(actor_start(a), 0);
        /* Restarted, the runner waits again instead of seeing the last stop. */
        assert_true(wait_count(&p.ticks, round, 5.0));
        usleep(20000);
        assert_int_equal(atomic_load(&p.ticks), round);
        double started = clock_mono();
        actor_stop(a);
        assert_true(clock_mono() - started < 1.0 * tu_factor());
    }
    actor_destroy(&a);
    /* A ticker has one too, for the calls its ticks make. */
    actor_t *t = actor_new("t-tickfd", 3600, count_tick, &p);
    assert_int_equal(actor_start(t), 0);
    struct pollfd told = { actor_stop_fd(t), POLLIN, 0 };
    assert_int_equal(poll(&told, 1, 0), 0);
    actor_stop(t);
    assert_int_equal(poll(&told, 1, 0), 1);
    actor_destroy(&t);
}

static void test_liveness_names_the_wedged_loop(void **state)
{
    (void)state;
    double f = tu_factor();
    liveness_t *live = liveness_new();
    probe_t quick = { 0 }, slow = { .block_s = 1.5 * f };
    actor_t *a = actor_new("t-quick", 0.01, count_tick, &quick);
    actor_t *b = actor_new("t-wedged", 0.01, count_tick, &slow);
    actor_watch(a, live, 0);
    actor_watch(b, live, 0);
    assert_int_equal(actor_start(a), 0);
    char who[96] = "";
    assert_true(liveness_fresh(live, clock_mono(), 0.5 * f, who, sizeof who));
    assert_int_equal(actor_start(b), 0);
    assert_true(wait_count(&slow.ticks, 1, 5.0));
    /* Time has to pass inside b's long tick: this sleep is the thing tested. */
    usleep((useconds_t)(0.8 * f * 1e6));
    assert_false(liveness_fresh(live, clock_mono(), 0.5 * f, who, sizeof who));
    assert_non_null(strstr(who, "t-wedged"));
    actor_destroy(&b);      /* a stopped actor retires its stamp */
    assert_true(liveness_fresh(live, clock_mono(), 0.5 * f, who, sizeof who));
    actor_destroy(&a);
    liveness_destroy(&live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ticker_ticks_at_once_then_every_interval),
        cmocka_unit_test(test_wake_ticks_before_the_interval_ends),
        cmocka_unit_test(test_stop_is_prompt_and_synchronous),
        cmocka_unit_test(test_stop_without_start_is_harmless),
        cmocka_unit_test(test_delay_first_waits_one_interval),
        cmocka_unit_test(test_set_interval_takes_effect),
        cmocka_unit_test(test_runner_ends_on_stop_and_is_interrupted),
        cmocka_unit_test(test_stop_all_stops_a_pool_in_the_time_of_one),
        cmocka_unit_test(test_stop_descriptor_ends_a_poll_and_is_reset_on_restart),
        cmocka_unit_test(test_liveness_names_the_wedged_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
