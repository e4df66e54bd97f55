/*  test_ring: order, overwrite of the oldest point, and the statistics
 *  over windows, checked against values worked out by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "ring.h"

#define assert_near(a, b) assert_true(fabs((a) - (b)) < 1e-9)

static void test_new_and_empty(void **state)
{
    (void)state;
    assert_null(ring_new(0));
    ring_t *r = ring_new(4);
    assert_non_null(r);
    assert_int_equal(ring_capacity(r), 4);
    assert_int_equal(ring_size(r), 0);
    ring_point_t pt;
    ring_stats_t st;
    assert_int_equal(ring_get(r, 0, &pt), -1);
    assert_int_equal(ring_last(r, &pt), -1);
    assert_int_equal(ring_stats(r, 0, &st), -1);
    ring_destroy(&r);
    assert_null(r);
    ring_destroy(&r);
    ring_destroy(NULL);
}

static void test_push_get_last(void **state)
{
    (void)state;
    ring_t *r = ring_new(4);
    ring_push(r, 10.0, 1.5);
    ring_push(r, 11.0, 2.5);
    assert_int_equal(ring_size(r), 2);
    ring_point_t pt;
    assert_int_equal(ring_get(r, 0, &pt), 0);
    assert_true(pt.t == 10.0 && pt.value == 1.5);
    assert_int_equal(ring_get(r, 1, &pt), 0);
    assert_true(pt.t == 11.0 && pt.value == 2.5);
    assert_int_equal(ring_get(r, 2, &pt), -1);
    assert_int_equal(ring_last(r, &pt), 0);
    assert_true(pt.t == 11.0);
    ring_destroy(&r);
}

static void test_overwrites_oldest_when_full(void **state)
{
    (void)state;
    ring_t *r = ring_new(3);
    for (int i = 0; i < 10; i++)
        ring_push(r, i, i * 10);
    assert_int_equal(ring_size(r), 3);
    ring_point_t pt;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ring_get(r, i, &pt), 0);
        assert_true(pt.t == 7 + i);
        assert_true(pt.value == (7 + i) * 10);
    }
    assert_int_equal(ring_last(r, &pt), 0);
    assert_true(pt.value == 90);
    ring_clear(r);
    assert_int_equal(ring_size(r), 0);
    assert_int_equal(ring_last(r, &pt), -1);
    ring_push(r, 100, 5);
    assert_int_equal(ring_get(r, 0, &pt), 0);
    assert_true(pt.value == 5);
    ring_destroy(&r);
}

static void test_stats_all(void **state)
{
    (void)state;
    ring_t *r = ring_new(8);
    double v[] = { 2, 4, 4, 4, 5, 5, 7, 9 };     /* mean 5, population sd 2 */
    for (int i = 0; i < 8; i++)
        ring_push(r, i, v[i]);
    ring_stats_t st;
    assert_int_equal(ring_stats(r, 0, &st), 0);
    assert_int_equal(st.n, 8);
    assert_near(st.mean, 5.0);
    assert_near(st.stddev, 2.0);
    assert_near(st.min, 2.0);
    assert_near(st.max, 9.0);
    /* x = 0..7, x mean 3.5, sxx 42, sxy 34 */
    assert_near(st.slope, 34.0 / 42.0);
    ring_destroy(&r);
}

static void test_stats_window_after_wrap(void **state)
{
    (void)state;
    ring_t *r = ring_new(5);
    for (int i = 0; i < 12; i++)
        ring_push(r, 1000 + i, 3.0 * i + 1);       /* exact line, slope 3 */
    ring_stats_t st;
    assert_int_equal(ring_stats(r, 3, &st), 0);    /* values 28, 31, 34 */
    assert_int_equal(st.n, 3);
    assert_near(st.mean, 31.0);
    assert_near(st.min, 28.0);
    assert_near(st.max, 34.0);
    assert_near(st.slope, 3.0);
    assert_near(st.stddev, sqrt(6.0));
    assert_int_equal(ring_stats(r, 99, &st), 0);   /* larger than size: all */
    assert_int_equal(st.n, 5);
    assert_near(st.mean, 28.0);
    ring_destroy(&r);
}

static void test_stats_single_point_and_large_offset(void **state)
{
    (void)state;
    ring_t *r = ring_new(4);
    ring_push(r, 0, 7.0);
    ring_stats_t st;
    assert_int_equal(ring_stats(r, 0, &st), 0);
    assert_int_equal(st.n, 1);
    assert_near(st.mean, 7.0);
    assert_near(st.stddev, 0.0);
    assert_near(st.slope, 0.0);
    ring_clear(r);
    /* Values near 1e9 with spread 1: the two-pass variance stays exact. */
    ring_push(r, 0, 1e9 + 1);
    ring_push(r, 1, 1e9 - 1);
    assert_int_equal(ring_stats(r, 0, &st), 0);
    assert_true(fabs(st.stddev - 1.0) < 1e-6);
    assert_true(fabs(st.slope + 2.0) < 1e-6);
    ring_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_and_empty),
        cmocka_unit_test(test_push_get_last),
        cmocka_unit_test(test_overwrites_oldest_when_full),
        cmocka_unit_test(test_stats_all),
        cmocka_unit_test(test_stats_window_after_wrap),
        cmocka_unit_test(test_stats_single_point_and_large_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
