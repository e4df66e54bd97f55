/*  test_observability_logic: the hub's formulas and decisions, checked
 *  against values worked out by hand: the anomaly baseline (OH-53..55),
 *  failure probability bounds, N-of-M damping, alert conditions (OH-51),
 *  resource thresholds (OH-19), the optimiser's choices (OH-70), the tier
 *  table (OH-60), probe verdicts (OH-33), and the logger's retention by
 *  real instants (OH-30) on a real SQLite file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "observability/alerting.h"
#include "observability/fleet.h"
#include "observability/hubdb.h"
#include "observability/optimiser.h"
#include "observability/perflog.h"
#include "observability/perfmon.h"
#include "observability/predictor.h"
#include "observability/prober.h"
#include "observability/tiers.h"

/* Proves OH-55 (docs/logic-preservation.md). */
static void test_oh55_baseline_example(void **state)
{
    (void)state;
    static const double base[] = { 45, 48, 52, 49, 51, 47, 53, 50, 46, 54, 49, 52 };
    anomaly_t d;
    anomaly_init(&d);
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        assert_false(anomaly_check(&d, base[i], NULL));
    double z;
    assert_false(anomaly_check(&d, 48.0, &z));
    assert_true(z < 2.0);
    assert_true(anomaly_check(&d, 150.0, &z));
    assert_true(z > 2.0);
}

/* Proves OH-54 (docs/logic-preservation.md). */
static void test_oh53_oh54_baseline_rules(void **state)
{
    (void)state;
    anomaly_t d;
    anomaly_init(&d);
    for (int i = 0; i < 9; i++)
        assert_false(anomaly_check(&d, i == 8 ? 1e9 : 1.0, NULL));    /* < 10: never flagged */
    anomaly_init(&d);
    for (int i = 0; i < 20; i++)
        assert_false(anomaly_check(&d, 5.0, NULL));
    assert_false(anomaly_check(&d, 500.0, NULL));                     /* stdev 0: not anomalous */
    assert_int_equal(d.count, 10);                                    /* values stop being added */
    anomaly_init(&d);
    for (int i = 0; i < 150; i++)
        anomaly_check(&d, (double)(i % 7), NULL);
    assert_int_equal(d.count, ANOMALY_BASELINE);
    size_t before = d.count;
    assert_true(anomaly_check(&d, 1000.0, NULL));
    assert_int_equal(d.count, before);                                /* anomalies stay out */
}

static void test_failure_probability_bounds(void **state)
{
    (void)state;
    ring_t *r = ring_new(100);
    assert_true(predictor_failure(r, 0, 3, 2.0) == 0.0);
    assert_true(predictor_failure(r, 3, 3, 2.0) == 1.0);
    for (int i = 0; i < 30; i++)
        ring_push(r, i, 0.010 + (i % 3) * 0.001);
    double calm = predictor_failure(r, 0, 3, 2.0);
    assert_true(calm >= 0.0 && calm < 0.1);
    for (int i = 0; i < 5; i++)
        ring_push(r, 30 + i, 0.2 + i * 0.3);                          /* rising latency */
    double rising = predictor_failure(r, 0, 3, 2.0);
    assert_true(rising > 0.5 && rising <= 1.0);
    assert_true(predictor_failure(r, 1, 3, 2.0) >= 1.0 / 3.0);
    ring_destroy(&r);
}

static void test_n_of_m_damping(void **state)
{
    (void)state;
    /* bit 0 = newest probe, 1 = failed; N = 2 of M = 3 */
    assert_int_equal(fleet_next_state(AGENT_UNKNOWN, 0x0, 1, 2, 3), AGENT_UP);
    assert_int_equal(fleet_next_state(AGENT_UP, 0x1, 4, 2, 3), AGENT_UP);
    assert_int_equal(fleet_next_state(AGENT_UP, 0x3, 4, 2, 3), AGENT_DOWN);
    assert_int_equal(fleet_next_state(AGENT_UP, 0x5, 4, 2, 3), AGENT_DOWN);
    assert_int_equal(fleet_next_state(AGENT_UP, 0x9, 4, 2, 3), AGENT_UP);     /* old failure left the window */
    assert_int_equal(fleet_next_state(AGENT_DOWN, 0x6, 4, 2, 3), AGENT_DOWN); /* one success is not enough */
    assert_int_equal(fleet_next_state(AGENT_DOWN, 0x4, 4, 2, 3), AGENT_UP);
    assert_int_equal(fleet_next_state(AGENT_UNKNOWN, 0x1, 1, 2, 3), AGENT_UNKNOWN);
}

static void test_oh51_conditions_are_strict(void **state)
{
    (void)state;
    assert_false(alerting_condition("gt", 90, 90));
    assert_true(alerting_condition("gt", 90.01, 90));
    assert_false(alerting_condition("lt", 5, 5));
    assert_true(alerting_condition("lt", 4, 5));
    assert_true(alerting_condition("eq", 5, 5));
    assert_true(alerting_condition("ne", 5, 6));
    assert_false(alerting_condition("ge", 9, 5));
}

static void test_oh19_resources_inclusive(void **state)
{
    (void)state;
    perf_thresholds_t t = { 80, 85, 2.0, 0.05, 100 };
    assert_true(perfmon_resources_ok(&t, 80, 85));
    assert_false(perfmon_resources_ok(&t, 80.1, 10));
    assert_false(perfmon_resources_ok(&t, 10, 85.1));
}

static void test_oh70_optimiser_choices(void **state)
{
    (void)state;
    optimiser_limits_t l = { 80, 80, 90, 5.0, 3 };
    assert_false(optimiser_needed(&l, 80, 80, 90));
    assert_true(optimiser_needed(&l, 80.5, 10, 10));
    assert_true(optimiser_needed(&l, 10, 10, 90.5));
    uint64_t total = 1000;
    optimiser_proc_t procs[] = { { 1, 40 }, { 2, 200 }, { 3, 60 }, { 4, 51 }, { 5, 300 }, { 6, 50 } };
    size_t n = optimiser_pick(&l, procs, 6, total);
    assert_int_equal(n, 3);
    assert_int_equal(procs[0].pid, 5);
    assert_int_equal(procs[1].pid, 2);
    assert_int_equal(procs[2].pid, 3);
}

static void test_oh60_tier_table(void **state)
{
    (void)state;
    static const char *expect[] = {
        "[\"restart_agent\"]", "[\"restart_agent\"]",
        "[\"clear_agent_state\",\"restart_agent\"]",
        "[\"restart_dependencies\",\"clear_agent_state\",\"restart_agent\"]",
        "[\"restart_all_agents\"]", "[\"restart_agent\"]",
    };
    for (int tier = 0; tier <= 5; tier++) {
        json_t *a = tiers_tier_actions(tier);
        char *text = json_dumps(a, JSON_COMPACT);
        assert_string_equal(text, expect[tier]);
        free(text);
        json_decref(a);
    }
}

static void test_oh33_probe_verdicts(void **state)
{
    (void)state;
    /* Every healthy word the kept agents write, in every case they write it. */
    static const char *const healthy[] = { "ok", "OK", "healthy", "HEALTHY", "success", "online", "running" };
    for (size_t i = 0; i < sizeof healthy / sizeof healthy[0]; i++) {
        json_t *r = json_pack("{s:s}", "status", healthy[i]);
        assert_int_equal(hprobe_reply_verdict(r, HPROBE_EXPECT_OK), HPROBE_HEALTHY);
        json_decref(r);
    }
    static const char *const degraded[] = { "degraded", "initializing", "warning" };
    for (size_t i = 0; i < sizeof degraded / sizeof degraded[0]; i++) {
        json_t *r = json_pack("{s:s}", "status", degraded[i]);
        assert_int_equal(hprobe_reply_verdict(r, HPROBE_EXPECT_OK), HPROBE_DEGRADED);
        json_decref(r);
    }
    json_t *ok = json_pack("{s:s}", "status", "ok"), *success = json_pack("{s:s}", "status", "success");
    json_t *list = json_pack("[s]", "ok"), *error = json_pack("{s:s, s:s}", "status", "error", "message", "disk");
    json_t *denied = json_pack("{s:s, s:b}", "status", "success", "healthy", 0);
    assert_int_equal(hprobe_reply_verdict(success, HPROBE_EXPECT_SUCCESS), HPROBE_HEALTHY);
    assert_int_equal(hprobe_reply_verdict(ok, HPROBE_EXPECT_SUCCESS), HPROBE_UNHEALTHY);
    assert_int_equal(hprobe_reply_verdict(list, HPROBE_EXPECT_OK), HPROBE_UNHEALTHY);
    assert_int_equal(hprobe_reply_verdict(error, HPROBE_EXPECT_OK), HPROBE_UNHEALTHY);
    assert_int_equal(hprobe_reply_verdict(denied, HPROBE_EXPECT_OK), HPROBE_UNHEALTHY);
    char words[128];
    assert_string_equal(hprobe_reply_words(error, words, sizeof words), "status 'error': disk");
    assert_string_equal(hprobe_reply_words(list, words, sizeof words), "reply is not a JSON object");
    json_decref(ok);
    json_decref(success);
    json_decref(list);
    json_decref(error);
    json_decref(denied);
}

/* Proves OH-36 (docs/logic-preservation.md). */
static void test_oh36_unreachable_probes_run_in_parallel(void **state)
{
    (void)state;
    hprobe_t probes[20];
    memset(probes, 0, sizeof probes);
    for (int i = 0; i < 20; i++) {
        probes[i].kind = i % 2 ? HPROBE_HTTP : HPROBE_ZMQ;
        snprintf(probes[i].host, sizeof probes[i].host, "127.0.0.1");
        probes[i].port = 1;       /* nothing listens: ZMQ waits, HTTP is refused */
        probes[i].request = "{\"action\":\"health_check\"}";
        probes[i].timeout_ms = 1000;
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    prober_run(probes, 20, -1);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double elapsed = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    assert_true(elapsed < 2.5);     /* 20 timeouts of 1 s one after another would be 10 s */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(probes[i].result, i % 2 ? HPROBE_ERROR : HPROBE_TIMEOUT);
        json_decref(probes[i].details);
    }
    assert_string_equal(probes[0].error, "Request timed out");
    assert_non_null(strstr(probes[1].error, "Connection refused"));
}

static void test_oh30_retention_by_instant(void **state)
{
    (void)state;
    char dir[] = "/tmp/keel-obs-unit-XXXXXX", path[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/obs.db", dir);
    hubdb_t *db = hubdb_new(path);
    assert_non_null(db);
    double now = 1750000000.0;      /* 2025-06-15T15:06:40Z */
    static const char *stamps[] = {
        "2025-05-15T14:00:00Z",       /* 31 days + 1 h before: deleted */
        "2025-05-16T16:00:00Z",       /* 29 days + 23 h before: kept */
        "2025-05-16T20:00:00+05:00",  /* 15:00Z, 30 days before now - 6 min: deleted */
        "not a time",                 /* unreadable: kept, never guessed at */
    };
    for (size_t i = 0; i < 4; i++) {
        json_t *m = json_pack("{s:s, s:s, s:f, s:s, s:n}", "agent", "A", "action", stamps[i],
                              "duration", 1.0, "timestamp", stamps[i], "metadata");
        json_t *r = perflog_log_metric(db, m);
        assert_string_equal(json_string_value(json_object_get(r, "status")), "success");
        json_decref(r);
        json_decref(m);
    }
    assert_int_equal(perflog_retention(db, now, 30, 7), 2);
    json_t *q = json_pack("{s:s, s:s, s:s}", "agent", "A", "start_time", "0", "end_time", "z");
    json_t *r = perflog_get_agent_metrics(db, q);
    json_t *rows = json_object_get(r, "metrics");
    assert_int_equal(json_array_size(rows), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "action")),
                        "2025-05-16T16:00:00Z");
    json_decref(r);
    json_decref(q);
    hubdb_destroy(&db);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oh55_baseline_example),
        cmocka_unit_test(test_oh53_oh54_baseline_rules),
        cmocka_unit_test(test_failure_probability_bounds),
        cmocka_unit_test(test_n_of_m_damping),
        cmocka_unit_test(test_oh51_conditions_are_strict),
        cmocka_unit_test(test_oh19_resources_inclusive),
        cmocka_unit_test(test_oh70_optimiser_choices),
        cmocka_unit_test(test_oh60_tier_table),
        cmocka_unit_test(test_oh33_probe_verdicts),
        cmocka_unit_test(test_oh36_unreachable_probes_run_in_parallel),
        cmocka_unit_test(test_oh30_retention_by_instant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
