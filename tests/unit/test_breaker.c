/*  test_breaker: the circuit breaker's state machine, driven by explicit
 *  times so no test sleeps, and its limits read from the configuration. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "breaker.h"

/* Threshold 3, timeout 10 growing to 80, one probe. */
static const breaker_limits_t tens = { 3, 10.0, 80.0, 1 };

/* Trips a fresh breaker with `limits` at t = 100. */
static breaker_t *tripped_with(breaker_limits_t limits)
{
    breaker_t *b = breaker_new("down", &limits);
    assert_non_null(b);
    for (int i = 0; i < limits.failures; i++)
        breaker_record_failure(b, 100.0);
    assert_int_equal(breaker_state(b, 100.0), BREAKER_OPEN);
    return b;
}

static breaker_t *tripped(void)
{
    return tripped_with(tens);
}

static void test_new_rejects_bad_parameters(void **state)
{
    (void)state;
    assert_null(breaker_new("x", &(breaker_limits_t){ 0, 1.0, 8.0, 1 }));
    assert_null(breaker_new("x", &(breaker_limits_t){ 1, 0.0, 8.0, 1 }));
    assert_null(breaker_new("x", &(breaker_limits_t){ 1, 2.0, 1.0, 1 }));   /* cap below the first */
    assert_null(breaker_new("x", &(breaker_limits_t){ 1, 1.0, 8.0, 0 }));
    assert_null(breaker_new(NULL, &tens));
    breaker_t *b = breaker_new("svc", &(breaker_limits_t){ 1, 1.0, 8.0, 1 });
    assert_non_null(b);
    assert_string_equal(breaker_name(b), "svc");
    breaker_destroy(&b);
    assert_null(b);
    breaker_destroy(&b);
    breaker_destroy(NULL);
}

static void test_threshold_opens(void **state)
{
    (void)state;
    breaker_t *b = breaker_new("down", &tens);
    breaker_record_failure(b, 1.0);
    breaker_record_failure(b, 2.0);
    assert_int_equal(breaker_failures(b), 2);
    assert_int_equal(breaker_state(b, 2.0), BREAKER_CLOSED);
    assert_true(breaker_allow(b, 2.0));
    breaker_record_failure(b, 3.0);
    assert_int_equal(breaker_failures(b), 3);
    assert_int_equal(breaker_state(b, 3.0), BREAKER_OPEN);
    assert_false(breaker_allow(b, 3.0));
    breaker_destroy(&b);
}

static void test_success_resets_consecutive_count(void **state)
{
    (void)state;
    breaker_t *b = breaker_new("down", &tens);
    breaker_record_failure(b, 1.0);
    breaker_record_failure(b, 1.0);
    breaker_record_success(b, 1.0);
    assert_int_equal(breaker_failures(b), 0);
    breaker_record_failure(b, 1.0);
    breaker_record_failure(b, 1.0);
    assert_int_equal(breaker_state(b, 1.0), BREAKER_CLOSED);
    breaker_destroy(&b);
}

static void test_open_refuses_until_timeout(void **state)
{
    (void)state;
    breaker_t *b = tripped();
    assert_false(breaker_allow(b, 105.0));
    assert_false(breaker_allow(b, 109.999));
    assert_int_equal(breaker_state(b, 109.999), BREAKER_OPEN);
    assert_int_equal(breaker_state(b, 110.0), BREAKER_HALF_OPEN);
    assert_true(breaker_allow(b, 110.0));
    breaker_destroy(&b);
}

static void test_half_open_probe_budget(void **state)
{
    (void)state;
    breaker_t *b = tripped();
    assert_true(breaker_allow(b, 110.0));
    assert_false(breaker_allow(b, 110.0));
    assert_false(breaker_allow(b, 111.0));
    breaker_destroy(&b);

    b = tripped_with((breaker_limits_t){ 3, 10.0, 80.0, 3 });
    int allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += breaker_allow(b, 110.0 + i * 0.1);
    assert_int_equal(allowed, 3);
    assert_int_equal(breaker_state(b, 111.0), BREAKER_HALF_OPEN);
    breaker_destroy(&b);
}

static void test_probe_success_closes(void **state)
{
    (void)state;
    breaker_t *b = tripped();
    assert_true(breaker_allow(b, 110.0));
    breaker_record_success(b, 110.5);
    assert_int_equal(breaker_state(b, 110.5), BREAKER_CLOSED);
    assert_int_equal(breaker_failures(b), 0);
    for (int i = 0; i < 5; i++)
        assert_true(breaker_allow(b, 110.5));
    breaker_destroy(&b);
}

static void test_probe_failure_reopens_with_doubled_timeout_capped(void **state)
{
    (void)state;
    breaker_t *b = tripped();              /* base 10, cap defaults to 80 */
    double now = 110.0;
    double expected[] = { 20, 40, 80, 80 };
    for (int i = 0; i < 4; i++) {
        assert_true(breaker_allow(b, now));
        breaker_record_failure(b, now);
        assert_int_equal(breaker_state(b, now), BREAKER_OPEN);
        assert_false(breaker_allow(b, now + expected[i] - 0.001));
        now += expected[i];
        assert_int_equal(breaker_state(b, now), BREAKER_HALF_OPEN);
    }
    /* A success resets the grown timeout to the configured one. */
    assert_true(breaker_allow(b, now));
    breaker_record_success(b, now);
    for (int i = 0; i < 3; i++)
        breaker_record_failure(b, now);
    assert_int_equal(breaker_state(b, now + 9.999), BREAKER_OPEN);
    assert_int_equal(breaker_state(b, now + 10.0), BREAKER_HALF_OPEN);
    breaker_destroy(&b);
}

static void test_max_reset_timeout_setting(void **state)
{
    (void)state;
    breaker_t *b = tripped_with((breaker_limits_t){ 3, 10.0, 15.0, 1 });
    assert_true(breaker_allow(b, 110.0));
    breaker_record_failure(b, 110.0);
    assert_int_equal(breaker_state(b, 124.999), BREAKER_OPEN);
    assert_int_equal(breaker_state(b, 125.0), BREAKER_HALF_OPEN);
    breaker_destroy(&b);
}

static void test_half_open_time_limit(void **state)
{
    (void)state;
    breaker_t *b = tripped();
    assert_true(breaker_allow(b, 110.0));     /* this probe never reports */
    assert_false(breaker_allow(b, 115.0));
    assert_false(breaker_allow(b, 119.999));
    assert_true(breaker_allow(b, 120.0));     /* written off, new probe */
    assert_false(breaker_allow(b, 120.0));
    breaker_record_success(b, 121.0);
    assert_int_equal(breaker_state(b, 121.0), BREAKER_CLOSED);
    breaker_destroy(&b);
}

static void test_reports_while_open_are_ignored(void **state)
{
    (void)state;
    breaker_t *b = tripped();
    breaker_record_success(b, 101.0);
    assert_int_equal(breaker_state(b, 101.0), BREAKER_OPEN);
    breaker_record_failure(b, 105.0);
    assert_int_equal(breaker_state(b, 110.0), BREAKER_HALF_OPEN);
    breaker_destroy(&b);
}

static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(breaker_state_name(BREAKER_CLOSED), "CLOSED");
    assert_string_equal(breaker_state_name(BREAKER_OPEN), "OPEN");
    assert_string_equal(breaker_state_name(BREAKER_HALF_OPEN), "HALF_OPEN");
}

typedef struct {
    breaker_t *b;
    int allowed;
} worker_t;

static void *probe_worker(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < 1000; i++)
        w->allowed += breaker_allow(w->b, 110.0);
    return NULL;
}

static void test_threads_share_the_probe_budget(void **state)
{
    (void)state;
    breaker_t *b = tripped_with((breaker_limits_t){ 3, 10.0, 80.0, 5 });
    worker_t workers[8];
    pthread_t threads[8];
    for (int i = 0; i < 8; i++) {
        workers[i] = (worker_t){ .b = b };
        assert_int_equal(pthread_create(&threads[i], NULL, probe_worker, &workers[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(threads[i], NULL);
        total += workers[i].allowed;
    }
    assert_int_equal(total, 5);
    breaker_destroy(&b);
}

static void test_limits_from_the_configuration(void **state)
{
    (void)state;
    config_t *config = config_new();
    char err[256];
    assert_int_equal(config_load_text(config, "core: {coordinator: {breaker: {failures: 5, max_reset_s: 600,"
                                              " half_open_probes: 2}}}\n", "test", err, sizeof err), 0);
    breaker_limits_t l = breaker_limits_read(config, "core.coordinator.breaker");
    assert_int_equal(l.failures, 5);
    assert_true(l.reset_s == 30.0);         /* absent: the default */
    assert_true(l.max_reset_s == 600.0);
    assert_int_equal(l.half_open_probes, 2);
    l = breaker_limits_read(config, "modules.ServiceRegistry.breaker");
    assert_int_equal(l.failures, BREAKER_DEFAULT_LIMITS.failures);
    assert_true(l.max_reset_s == BREAKER_DEFAULT_LIMITS.max_reset_s);
    config_destroy(&config);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_from_the_configuration),
        cmocka_unit_test(test_new_rejects_bad_parameters),
        cmocka_unit_test(test_threshold_opens),
        cmocka_unit_test(test_success_resets_consecutive_count),
        cmocka_unit_test(test_open_refuses_until_timeout),
        cmocka_unit_test(test_half_open_probe_budget),
        cmocka_unit_test(test_probe_success_closes),
        cmocka_unit_test(test_probe_failure_reopens_with_doubled_timeout_capped),
        cmocka_unit_test(test_max_reset_timeout_setting),
        cmocka_unit_test(test_half_open_time_limit),
        cmocka_unit_test(test_reports_while_open_are_ignored),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_threads_share_the_probe_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
