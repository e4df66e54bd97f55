/*  test_clock: the two clocks and the ISO texts the Python agents wrote
 *  (isoformat drops a zero microsecond part), checked against epochs worked
 *  out with date(1).  Local time is pinned to UTC so the texts are fixed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#define assert_near(a, b, eps) assert_true(fabs((a) - (b)) < (eps))

static const double july16 = 1752660000.0;      /* 2025-07-16T10:00:00Z */

static void test_mono_moves_forward(void **state)
{
    (void)state;
    double a = clock_mono();
    usleep(20000);
    double b = clock_mono();
    assert_true(b - a >= 0.019);
    assert_true(b - a < 1.0);
}

static void test_wall_is_unix_time(void **state)
{
    (void)state;
    assert_near(clock_wall(), (double)time(NULL), 2.0);
}

static void test_iso_utc(void **state)
{
    (void)state;
    char buf[40];
    assert_string_equal(clock_iso_utc(0, buf, sizeof buf), "1970-01-01T00:00:00Z");
    assert_string_equal(clock_iso_utc(july16, buf, sizeof buf), "2025-07-16T10:00:00Z");
    assert_string_equal(clock_iso_utc(july16 + 0.5, buf, sizeof buf),
                        "2025-07-16T10:00:00.500000Z");
    assert_string_equal(clock_iso_utc(july16 + 0.000123, buf, sizeof buf),
                        "2025-07-16T10:00:00.000123Z");
    /* Rounding up to a whole second carries into the seconds. */
    assert_string_equal(clock_iso_utc(july16 + 0.9999996, buf, sizeof buf),
                        "2025-07-16T10:00:01Z");
}

static void test_iso_local_is_python_isoformat(void **state)
{
    (void)state;
    char buf[40];
    assert_string_equal(clock_iso_local(july16, buf, sizeof buf), "2025-07-16T10:00:00");
    assert_string_equal(clock_iso_local(july16 + 0.25, buf, sizeof buf),
                        "2025-07-16T10:00:00.250000");
}

/* A buffer too short for the text gets an empty string, never garbage. */
static void test_iso_short_buffer_is_terminated(void **state)
{
    (void)state;
    char buf[8] = "xxxxxxx";
    assert_string_equal(clock_iso_utc(july16 + 0.5, buf, sizeof buf), "");
    memset(buf, 'x', sizeof buf);
    assert_string_equal(clock_iso_local(july16, buf, sizeof buf), "");
}

static void test_parse_forms(void **state)
{
    (void)state;
    double t = 0;
    assert_int_equal(clock_parse_iso("2025-07-16T10:00:00Z", &t), 0);
    assert_near(t, july16, 1e-6);
    assert_int_equal(clock_parse_iso("2025-07-16T10:00:00", &t), 0);      /* local = UTC here */
    assert_near(t, july16, 1e-6);
    assert_int_equal(clock_parse_iso("2025-07-16 10:00:00", &t), 0);
    assert_near(t, july16, 1e-6);
    assert_int_equal(clock_parse_iso("2025-07-16T10:00:00.250000Z", &t), 0);
    assert_near(t, july16 + 0.25, 1e-6);
    assert_int_equal(clock_parse_iso("2025-07-16T12:00:00+02:00", &t), 0);
    assert_near(t, july16, 1e-6);
    assert_int_equal(clock_parse_iso("2025-07-16T05:30:00-0430", &t), 0);
    assert_near(t, july16, 1e-6);
    assert_int_equal(clock_parse_iso("2025-07-16T10:00:00.5+00:00", &t), 0);
    assert_near(t, july16 + 0.5, 1e-6);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    double t = 42;
    assert_int_equal(clock_parse_iso(NULL, &t), -1);
    assert_int_equal(clock_parse_iso("", &t), -1);
    assert_int_equal(clock_parse_iso("yesterday", &t), -1);
    assert_int_equal(clock_parse_iso("2025-07-16", &t), -1);
    assert_int_equal(clock_parse_iso("2025-07-16T10:00:00 junk", &t), -1);
    assert_int_equal(clock_parse_iso("2025-07-16T10:00:00+1", &t), -1);
    assert_near(t, 42, 1e-9);       /* untouched on failure */
}

static void test_round_trip(void **state)
{
    (void)state;
    char buf[40];
    double now = floor(clock_wall() * 1e6) / 1e6;
    double back = 0;
    assert_int_equal(clock_parse_iso(clock_iso_utc(now, buf, sizeof buf), &back), 0);
    assert_near(back, now, 2e-6);
    assert_int_equal(clock_parse_iso(clock_iso_local(now, buf, sizeof buf), &back), 0);
    assert_near(back, now, 2e-6);
}

/* The monotonic condition and its deadline, on which every timed wait in
 * Keel runs: a wait ends at the deadline, and a deadline in the past is now. */
static void test_deadline_times_a_monotonic_wait(void **state)
{
    (void)state;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_mutex_init(&lock, NULL);
    clock_cond_init(&cond);
    const double waits[] = { 0.1, -5 };
    for (int i = 0; i < 2; i++) {
        struct timespec until;
        double t0 = clock_mono();
        clock_deadline(waits[i], &until);
        pthread_mutex_lock(&lock);
        int rc;
        while ((rc = pthread_cond_timedwait(&cond, &lock, &until)) == 0)
            ;
        pthread_mutex_unlock(&lock);
        assert_int_equal(rc, ETIMEDOUT);
        double waited = clock_mono() - t0;
        assert_true(waited >= (waits[i] > 0 ? waits[i] - 0.01 : 0) && waited < 2.0);
    }
    pthread_cond_destroy(&cond);
    pthread_mutex_destroy(&lock);
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mono_moves_forward),
        cmocka_unit_test(test_wall_is_unix_time),
        cmocka_unit_test(test_iso_utc),
        cmocka_unit_test(test_iso_local_is_python_isoformat),
        cmocka_unit_test(test_iso_short_buffer_is_terminated),
        cmocka_unit_test(test_parse_forms),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_deadline_times_a_monotonic_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
