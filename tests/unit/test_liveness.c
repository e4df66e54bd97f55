/*  test_liveness: a loop that beats stays fresh; one that stops beating is
 *  reported, by name, once its interval and the grace have passed, and
 *  fresh again when it beats; a retired loop is no longer watched, and its
 *  stamp is taken again by the next loop.  Times
 *  are given to liveness_fresh, so no test sleeps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "clock.h"
#include "liveness.h"

static void test_fresh_stale_and_fresh_again(void **state)
{
    (void)state;
    liveness_t *l = liveness_new();
    liveness_stamp_t *wire = liveness_stamp(l, "core wire thread", 0.1);
    liveness_stamp_t *sweep = liveness_stamp(l, "observability health sweep", 30);
    assert_non_null(wire);
    assert_non_null(sweep);
    char stalled[128] = "";
    double now = clock_mono();
    assert_true(liveness_fresh(l, now, 5, stalled, sizeof stalled));
    /* 6 s later the wire thread (0.1 s + 5 s grace) has stalled, the sweep
     * (30 s + 5 s) has not. */
    assert_false(liveness_fresh(l, now + 6, 5, stalled, sizeof stalled));
    assert_non_null(strstr(stalled, "core wire thread (quiet for 6."));
    liveness_beat(wire);
    assert_true(liveness_fresh(l, clock_mono() + 1, 5, stalled, sizeof stalled));
    assert_false(liveness_fresh(l, now + 40, 5, stalled, sizeof stalled));
    liveness_destroy(&l);
    assert_null(l);
}

static void test_retired_loops_are_not_watched(void **state)
{
    (void)state;
    liveness_t *l = liveness_new();
    liveness_stamp_t *a = liveness_stamp(l, "a", 1);
    char stalled[64];
    assert_false(liveness_fresh(l, clock_mono() + 100, 1, stalled, sizeof stalled));
    liveness_retire(a);
    assert_true(liveness_fresh(l, clock_mono() + 100, 1, stalled, sizeof stalled));
    liveness_destroy(&l);
}

static void test_null_and_full(void **state)
{
    (void)state;
    char stalled[64];
    assert_null(liveness_stamp(NULL, "x", 1));
    liveness_beat(NULL);
    liveness_retire(NULL);
    assert_true(liveness_fresh(NULL, 0, 0, stalled, sizeof stalled));
    liveness_t *l = liveness_new();
    for (int i = 0; i < 64; i++)
        assert_non_null(liveness_stamp(l, "loop", 1));
    assert_null(liveness_stamp(l, "one too many", 1));
    liveness_destroy(&l);
}

/* A loop stopped and started again takes a retired stamp, not a new one:
 * restarts never use the array up. */
static void test_retired_stamps_are_taken_again(void **state)
{
    (void)state;
    liveness_t *l = liveness_new();
    for (int i = 0; i < 63; i++)
        assert_non_null(liveness_stamp(l, "loop", 3600));
    for (int i = 0; i < 500; i++) {
        liveness_stamp_t *s = liveness_stamp(l, "restarted", 1);
        assert_non_null(s);
        liveness_retire(s);
    }
    liveness_stamp_t *last = liveness_stamp(l, "restarted", 1);
    char stalled[64];
    assert_false(liveness_fresh(l, clock_mono() + 100, 1, stalled, sizeof stalled));
    assert_non_null(strstr(stalled, "restarted"));
    liveness_beat(last);
    assert_true(liveness_fresh(l, clock_mono(), 1, stalled, sizeof stalled));
    liveness_destroy(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_stale_and_fresh_again),
        cmocka_unit_test(test_retired_loops_are_not_watched),
        cmocka_unit_test(test_null_and_full),
        cmocka_unit_test(test_retired_stamps_are_taken_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
