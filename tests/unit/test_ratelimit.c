/*  test_ratelimit: the per-source token buckets that bound how fast one
 *  address creates names, driven by explicit times so no test sleeps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ratelimit.h"

static int taken(ratelimit_t *r, const char *source, int tries, double now)
{
    int n = 0;
    for (int i = 0; i < tries; i++)
        n += ratelimit_take(r, source, now);
    return n;
}

static void test_burst_then_refused(void **state)
{
    (void)state;
    ratelimit_t *r = ratelimit_new(5, 60, 16);
    assert_int_equal(taken(r, "10.0.0.1", 6000, 100.0), 5);
    ratelimit_destroy(&r);
    assert_null(r);
    ratelimit_destroy(&r);
}

static void test_refills_per_minute_up_to_burst(void **state)
{
    (void)state;
    ratelimit_t *r = ratelimit_new(5, 60, 16);
    assert_int_equal(taken(r, "a", 10, 0.0), 5);
    assert_int_equal(taken(r, "a", 10, 3.0), 3);       /* one a second */
    assert_int_equal(taken(r, "a", 10, 1000.0), 5);    /* never more than the burst */
    ratelimit_destroy(&r);
}

static void test_sources_are_separate(void **state)
{
    (void)state;
    ratelimit_t *r = ratelimit_new(2, 1, 16);
    assert_int_equal(taken(r, "127.0.0.1", 100, 0.0), 2);
    assert_int_equal(taken(r, "127.0.0.2", 100, 0.0), 2);
    assert_int_equal(taken(r, NULL, 100, 0.0), 2);
    assert_int_equal(taken(r, "", 100, 0.0), 0);       /* the same unknown source */
    ratelimit_destroy(&r);
}

static void test_zero_burst_is_no_limit(void **state)
{
    (void)state;
    ratelimit_t *r = ratelimit_new(0, 0, 4);
    assert_int_equal(taken(r, "x", 10000, 0.0), 10000);
    char text[80];
    assert_string_equal(ratelimit_describe(r, text, sizeof text), "no limit");
    ratelimit_configure(r, 3, 30);
    assert_string_equal(ratelimit_describe(r, text, sizeof text), "at most 3 at once and 30 a minute");
    assert_int_equal(taken(r, "x", 10, 0.0), 3);
    ratelimit_destroy(&r);
}

static void test_configure_caps_what_buckets_hold(void **state)
{
    (void)state;
    ratelimit_t *r = ratelimit_new(100, 60, 4);
    assert_int_equal(taken(r, "x", 1, 0.0), 1);
    ratelimit_configure(r, 2, 60);
    assert_int_equal(taken(r, "x", 10, 0.0), 2);
    ratelimit_destroy(&r);
}

/* The bucket table is bounded: a refilled bucket is dropped before one
 * that is still spending, so a busy source keeps its debt. */
static void test_bounded_table_drops_refilled_buckets_first(void **state)
{
    (void)state;
    ratelimit_t *r = ratelimit_new(10, 60, 2);
    assert_int_equal(taken(r, "busy", 20, 0.0), 10);
    assert_int_equal(taken(r, "quiet", 1, 0.0), 1);
    assert_int_equal(taken(r, "third", 1, 5.0), 1);    /* quiet has refilled: its slot is taken */
    assert_int_equal(taken(r, "busy", 20, 5.0), 5);    /* busy kept its debt: 5 s bought 5 */
    ratelimit_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refused),
        cmocka_unit_test(test_refills_per_minute_up_to_burst),
        cmocka_unit_test(test_sources_are_separate),
        cmocka_unit_test(test_zero_burst_is_no_limit),
        cmocka_unit_test(test_configure_caps_what_buckets_hold),
        cmocka_unit_test(test_bounded_table_drops_refilled_buckets_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
