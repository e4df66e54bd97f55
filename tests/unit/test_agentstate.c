/*  test_agentstate: the one rule that turns probes, heartbeats and
 *  partitions into up/degraded/down/unknown, driven by explicit times. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "agentstate.h"

#define NOW 10000.0

static agentstate_t combine(agentstate_evidence_t e, char *reason)
{
    e.now = NOW;
    if (!e.ttl_s)
        e.ttl_s = 60;
    return agentstate_combine(&e, reason, 256);
}

static void test_a_passing_probe_is_up_whatever_the_heartbeat(void **state)
{
    (void)state;
    char reason[256];
    /* A kept BaseAgent registers once and never heartbeats: its probe rules. */
    agentstate_evidence_t e = { .probe = AGENTSTATE_PROBE_PASSING, .heartbeat_at = NOW - 86400 };
    assert_int_equal(combine(e, reason), AGENTSTATE_UP);
    assert_string_equal(reason, "answers health checks");
    e.probe_words = "timeout: Request timed out";
    assert_int_equal(combine(e, reason), AGENTSTATE_UP);
    assert_non_null(strstr(reason, "Request timed out"));
}

static void test_degraded_words_are_degraded(void **state)
{
    (void)state;
    char reason[256];
    agentstate_evidence_t e = { .probe = AGENTSTATE_PROBE_DEGRADED, .probe_words = "status 'initializing'" };
    assert_int_equal(combine(e, reason), AGENTSTATE_DEGRADED);
    assert_string_equal(reason, "answers health checks with status 'initializing'");
}

static void test_failing_probe_is_down_unless_a_heartbeat_came_after(void **state)
{
    (void)state;
    char reason[256];
    agentstate_evidence_t e = { .probe = AGENTSTATE_PROBE_FAILING, .probe_words = "timeout: Request timed out",
                                .failing_since = NOW - 30, .heartbeat_at = NOW - 40 };
    assert_int_equal(combine(e, reason), AGENTSTATE_DOWN);
    assert_string_equal(reason, "health checks fail: timeout: Request timed out");
    e.heartbeat_at = NOW - 5;       /* alive after the failures began: only the health port is deaf */
    assert_int_equal(combine(e, reason), AGENTSTATE_DEGRADED);
    assert_non_null(strstr(reason, "heartbeat 5 s ago"));
}

static void test_heartbeat_alone_up_degraded_down_unknown(void **state)
{
    (void)state;
    char reason[256];
    agentstate_evidence_t e = { .probe = AGENTSTATE_PROBE_NONE, .heartbeat_at = NOW - 59 };
    assert_int_equal(combine(e, reason), AGENTSTATE_UP);
    e.heartbeat_at = NOW - 61;
    assert_int_equal(combine(e, reason), AGENTSTATE_DEGRADED);
    assert_non_null(strstr(reason, "stale"));
    e.heartbeat_at = NOW - 121;
    assert_int_equal(combine(e, reason), AGENTSTATE_DOWN);
    e.heartbeat_at = 0;
    assert_int_equal(combine(e, reason), AGENTSTATE_UNKNOWN);
}

static void test_a_partition_is_unknown_never_down(void **state)
{
    (void)state;
    char reason[256];
    agentstate_evidence_t e = { .probe = AGENTSTATE_PROBE_FAILING, .failing_since = NOW - 10,
                                .partitioned = true, .machine = "PC2" };
    assert_int_equal(combine(e, reason), AGENTSTATE_UNKNOWN);
    assert_non_null(strstr(reason, "PC2"));
}

static void test_partition_rule(void **state)
{
    (void)state;
    assert_true(agentstate_partition_suspected(3, 3, 3, 0.8, false));
    assert_true(agentstate_partition_suspected(10, 8, 3, 0.8, false));
    assert_false(agentstate_partition_suspected(10, 7, 3, 0.8, false));
    assert_false(agentstate_partition_suspected(2, 2, 3, 0.8, false));    /* too few to tell */
    assert_false(agentstate_partition_suspected(3, 3, 3, 0.8, true));     /* loopback: really down */
    assert_false(agentstate_partition_suspected(0, 0, 0, 0.0, false));
}

static void test_names_and_rank(void **state)
{
    (void)state;
    static const agentstate_t all[] = { AGENTSTATE_UNKNOWN, AGENTSTATE_UP, AGENTSTATE_DEGRADED, AGENTSTATE_DOWN };
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(agentstate_from_name(agentstate_name(all[i])), all[i]);
    assert_int_equal(agentstate_from_name("unreachable"), AGENTSTATE_UNKNOWN);
    assert_int_equal(agentstate_from_name(NULL), AGENTSTATE_UNKNOWN);
    assert_true(agentstate_rank(AGENTSTATE_DOWN) < agentstate_rank(AGENTSTATE_DEGRADED));
    assert_true(agentstate_rank(AGENTSTATE_DEGRADED) < agentstate_rank(AGENTSTATE_UNKNOWN));
    assert_true(agentstate_rank(AGENTSTATE_UNKNOWN) < agentstate_rank(AGENTSTATE_UP));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_passing_probe_is_up_whatever_the_heartbeat),
        cmocka_unit_test(test_degraded_words_are_degraded),
        cmocka_unit_test(test_failing_probe_is_down_unless_a_heartbeat_came_after),
        cmocka_unit_test(test_heartbeat_alone_up_degraded_down_unknown),
        cmocka_unit_test(test_a_partition_is_unknown_never_down),
        cmocka_unit_test(test_partition_rule),
        cmocka_unit_test(test_names_and_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
