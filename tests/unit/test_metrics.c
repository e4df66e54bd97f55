/*  test_metrics: the exact exposition text (what Prometheus and promtool
 *  read), label escaping, collectors, and the registry's refusals.  When
 *  promtool is installed, every rendering is also run through
 *  `promtool check metrics`, the same check CI applies to /metrics. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"

#define PROMTOOL "/usr/bin/promtool"

/* Runs promtool over the text when it is installed: 0 means accepted. */
static int promtool_check(const char *text, char *out, size_t outlen)
{
    out[0] = '\0';
    if (access(PROMTOOL, X_OK) != 0)
        return 0;
    char path[] = "/tmp/keel-test-metrics-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, PROMTOOL " check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    unlink(path);
    return rc;
}

static void assert_promtool_accepts(const char *text)
{
    char out[4096];
    int rc = promtool_check(text, out, sizeof out);
    if (rc != 0)
        print_error("promtool refused:\n%s\n--- text ---\n%s\n", out, text);
    assert_int_equal(rc, 0);
}

static char *render(metrics_t *m)
{
    size_t len = 0;
    char *text = metrics_render(m, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    return text;
}

static void test_counter_and_gauge_text(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    assert_int_equal(metrics_declare(m, "keel_things_total", "Things seen.", METRIC_COUNTER, NULL, 0), 0);
    assert_int_equal(metrics_declare(m, "keel_queue_depth", "Items waiting.\nSecond \\ line.",
                                     METRIC_GAUGE, NULL, 0), 0);
    char labels[128];
    metrics_add(m, "keel_things_total", metrics_labels(labels, sizeof labels, "kind", "a", NULL), 2);
    metrics_add(m, "keel_things_total", labels, 1);
    metrics_add(m, "keel_things_total", metrics_labels(labels, sizeof labels, "kind", "b", NULL), 0.5);
    metrics_set(m, "keel_queue_depth", "", 7);
    metrics_set(m, "keel_queue_depth", "", 3);
    metrics_set(m, "keel_queue_depth", metrics_labels(labels, sizeof labels, "q", "big", NULL), 1e20);
    char *text = render(m);
    assert_string_equal(text,
                        "# HELP keel_things_total Things seen.\n"
                        "# TYPE keel_things_total counter\n"
                        "keel_things_total{kind=\"a\"} 3\n"
                        "keel_things_total{kind=\"b\"} 0.5\n"
                        "# HELP keel_queue_depth Items waiting.\\nSecond \\\\ line.\n"
                        "# TYPE keel_queue_depth gauge\n"
                        "keel_queue_depth 3\n"
                        "keel_queue_depth{q=\"big\"} 1e+20\n");
    assert_promtool_accepts(text);
    free(text);
    assert_true(metrics_value(m, "keel_things_total", "kind=\"a\"") == 3);
    assert_true(metrics_value(m, "keel_queue_depth", NULL) == 3);
    assert_true(metrics_value(m, "keel_things_total", "kind=\"zzz\"") == 0);
    assert_true(metrics_sum(m, "keel_things_total", NULL) == 3.5);
    assert_true(metrics_sum(m, "keel_things_total", "kind=\"b\"") == 0.5);
    assert_true(metrics_sum(m, "keel_nothing", NULL) == 0);
    metrics_destroy(&m);
    assert_null(m);
    metrics_destroy(&m);
}

static void test_histogram_text(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    const double bounds[] = { 0.1, 1, 2.5 };
    assert_int_equal(metrics_declare(m, "keel_job_seconds", "Job time.", METRIC_HISTOGRAM, bounds, 3), 0);
    char labels[64];
    metrics_labels(labels, sizeof labels, "job", "x", NULL);
    metrics_observe(m, "keel_job_seconds", labels, 0.0625);
    metrics_observe(m, "keel_job_seconds", labels, 0.5);
    metrics_observe(m, "keel_job_seconds", labels, 1);        /* le is inclusive */
    metrics_observe(m, "keel_job_seconds", labels, 4.25);
    metrics_observe(m, "keel_job_seconds", "", 0.25);
    char *text = render(m);
    assert_string_equal(text,
                        "# HELP keel_job_seconds Job time.\n"
                        "# TYPE keel_job_seconds histogram\n"
                        "keel_job_seconds_bucket{job=\"x\",le=\"0.1\"} 1\n"
                        "keel_job_seconds_bucket{job=\"x\",le=\"1\"} 3\n"
                        "keel_job_seconds_bucket{job=\"x\",le=\"2.5\"} 3\n"
                        "keel_job_seconds_bucket{job=\"x\",le=\"+Inf\"} 4\n"
                        "keel_job_seconds_sum{job=\"x\"} 5.8125\n"
                        "keel_job_seconds_count{job=\"x\"} 4\n"
                        "keel_job_seconds_bucket{le=\"0.1\"} 0\n"
                        "keel_job_seconds_bucket{le=\"1\"} 1\n"
                        "keel_job_seconds_bucket{le=\"2.5\"} 1\n"
                        "keel_job_seconds_bucket{le=\"+Inf\"} 1\n"
                        "keel_job_seconds_sum 0.25\n"
                        "keel_job_seconds_count 1\n");
    assert_promtool_accepts(text);
    free(text);
    assert_true(metrics_value(m, "keel_job_seconds", labels) == 4);     /* the count */
    metrics_destroy(&m);
}

static void test_default_latency_buckets(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    assert_int_equal(metrics_declare(m, "keel_request_duration_seconds", "Latency.",
                                     METRIC_HISTOGRAM, NULL, 0), 0);
    metrics_observe(m, "keel_request_duration_seconds", "", 0.00003);
    metrics_observe(m, "keel_request_duration_seconds", "", 20);
    char *text = render(m);
    assert_non_null(strstr(text, "keel_request_duration_seconds_bucket{le=\"5e-05\"} 1\n"));
    assert_non_null(strstr(text, "keel_request_duration_seconds_bucket{le=\"10\"} 1\n"));
    assert_non_null(strstr(text, "keel_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(text, "keel_request_duration_seconds_count 2\n"));
    assert_promtool_accepts(text);
    free(text);
    metrics_destroy(&m);
}

static void test_label_escaping(void **state)
{
    (void)state;
    char buf[256];
    assert_string_equal(metrics_labels(buf, sizeof buf, NULL), "");
    assert_string_equal(metrics_labels(buf, sizeof buf, "a", "1", "b", "two", NULL),
                        "a=\"1\",b=\"two\"");
    assert_string_equal(metrics_labels(buf, sizeof buf, "v", "q\"b\\s\nn", NULL),
                        "v=\"q\\\"b\\\\s\\nn\"");
    assert_string_equal(metrics_labels(buf, sizeof buf, "v", NULL, NULL), "v=\"\"");
    assert_string_equal(metrics_labels(buf, sizeof buf, "u", "caf\xc3\xa9", NULL),
                        "u=\"caf\xc3\xa9\"");
    /* A short buffer is cut, never overrun. */
    char small[12];
    memset(small, 'x', sizeof small);
    metrics_labels(small, sizeof small, "key", "a long value", "k2", "v2", NULL);
    assert_true(memchr(small, '\0', sizeof small) != NULL);

    metrics_t *m = metrics_new();
    metrics_declare(m, "keel_odd_total", "Odd labels.", METRIC_COUNTER, NULL, 0);
    metrics_add(m, "keel_odd_total", metrics_labels(buf, sizeof buf, "path", "/a\"b\\c\nd", NULL), 1);
    char *text = render(m);
    assert_non_null(strstr(text, "keel_odd_total{path=\"/a\\\"b\\\\c\\nd\"} 1\n"));
    assert_promtool_accepts(text);
    free(text);
    metrics_destroy(&m);
}

static void collect(metrics_t *m, void *arg)
{
    int *calls = arg;
    (*calls)++;
    metrics_reset(m, "keel_items");
    for (int i = 0; i < *calls; i++) {
        char labels[48], name[16];
        snprintf(name, sizeof name, "i%d", i);
        metrics_set(m, "keel_items", metrics_labels(labels, sizeof labels, "item", name, NULL), i);
    }
    metrics_set(m, "keel_collect_calls", "", *calls);
}

static void test_collector_runs_at_render(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_declare(m, "keel_collect_calls", "Collector runs.", METRIC_GAUGE, NULL, 0);
    metrics_declare(m, "keel_items", "Items now.", METRIC_GAUGE, NULL, 0);
    int calls = 0;
    metrics_add_collector(m, collect, &calls);
    assert_int_equal(calls, 0);
    char *text = render(m);
    assert_int_equal(calls, 1);
    assert_non_null(strstr(text, "keel_collect_calls 1\n"));
    free(text);
    text = render(m);
    assert_int_equal(calls, 2);
    assert_non_null(strstr(text, "keel_collect_calls 2\n"));
    assert_non_null(strstr(text, "keel_items{item=\"i1\"} 1\n"));
    free(text);
    /* A reset gauge series the collector does not refill disappears. */
    calls = 0;
    text = render(m);
    assert_non_null(strstr(text, "keel_items{item=\"i0\"} 0\n"));
    assert_null(strstr(text, "item=\"i1\""));
    assert_promtool_accepts(text);
    free(text);
    metrics_destroy(&m);
}

static void test_refusals(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    assert_int_equal(metrics_declare(m, "1bad", "x", METRIC_COUNTER, NULL, 0), -1);
    assert_int_equal(metrics_declare(m, "bad-name", "x", METRIC_COUNTER, NULL, 0), -1);
    assert_int_equal(metrics_declare(m, "", "x", METRIC_COUNTER, NULL, 0), -1);
    assert_int_equal(metrics_declare(m, NULL, "x", METRIC_COUNTER, NULL, 0), -1);
    double many[40] = { 0 };
    assert_int_equal(metrics_declare(m, "keel_h_seconds", "x", METRIC_HISTOGRAM, many, 40), -1);
    assert_int_equal(metrics_declare(m, "keel_a_total", "A.", METRIC_COUNTER, NULL, 0), 0);
    assert_int_equal(metrics_declare(m, "keel_a_total", "A again.", METRIC_COUNTER, NULL, 0), 0);
    assert_int_equal(metrics_declare(m, "keel_a_total", "A.", METRIC_GAUGE, NULL, 0), -1);
    /* Series of an undeclared family are ignored, not rendered. */
    metrics_add(m, "keel_undeclared_total", "", 1);
    metrics_set(m, "keel_undeclared", "", 1);
    metrics_observe(m, "keel_undeclared_seconds", "", 1);
    assert_true(metrics_value(m, "keel_undeclared_total", "") == 0);
    char *text = render(m);
    assert_null(strstr(text, "undeclared"));
    assert_string_equal(text, "# HELP keel_a_total A.\n# TYPE keel_a_total counter\n");
    free(text);
    metrics_destroy(&m);
}

static void test_many_series_rehash(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_declare(m, "keel_n_total", "N.", METRIC_COUNTER, NULL, 0);
    char labels[32], v[16];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 1000; i++) {
            snprintf(v, sizeof v, "%d", i);
            metrics_add(m, "keel_n_total", metrics_labels(labels, sizeof labels, "i", v, NULL), i);
        }
    for (int i = 0; i < 1000; i += 97) {
        snprintf(v, sizeof v, "%d", i);
        assert_true(metrics_value(m, "keel_n_total", metrics_labels(labels, sizeof labels, "i", v, NULL))
                    == 2.0 * i);
    }
    assert_true(metrics_sum(m, "keel_n_total", NULL) == 999.0 * 1000);
    metrics_destroy(&m);
}

/* A held series is the one its name and labels find, through any number
 * of rehashes after it was taken; an undeclared family gives none. */
static void test_held_series(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_declare(m, "keel_h_total", "H.", METRIC_COUNTER, NULL, 0);
    metrics_declare(m, "keel_h_seconds", "H.", METRIC_HISTOGRAM, NULL, 0);
    metrics_series_t *count = metrics_series(m, "keel_h_total", "a=\"1\"");
    metrics_series_t *took = metrics_series(m, "keel_h_seconds", "a=\"1\"");
    assert_non_null(count);
    assert_ptr_equal(metrics_series(m, "keel_h_total", "a=\"1\""), count);
    assert_null(metrics_series(m, "keel_undeclared", ""));
    char labels[32], v[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(v, sizeof v, "%d", i);
        metrics_add(m, "keel_h_total", metrics_labels(labels, sizeof labels, "b", v, NULL), 1);
    }
    metrics_series_add(m, count, 2);
    metrics_series_count(m, count, took, 0.0002);
    metrics_series_count(m, NULL, took, 3);
    metrics_add(m, "keel_h_total", "a=\"1\"", 1);
    assert_true(metrics_value(m, "keel_h_total", "a=\"1\"") == 4);
    assert_true(metrics_value(m, "keel_h_seconds", "a=\"1\"") == 2);
    char *text = metrics_render(m, NULL);
    assert_non_null(strstr(text, "keel_h_seconds_bucket{a=\"1\",le=\"0.00025\"} 1\n"));
    assert_non_null(strstr(text, "keel_h_seconds_sum{a=\"1\"} 3.0002\n"));
    free(text);
    metrics_destroy(&m);
}

static void *adder(void *arg)
{
    metrics_t *m = arg;
    for (int i = 0; i < 10000; i++) {
        metrics_add(m, "keel_c_total", "", 1);
        metrics_observe(m, "keel_c_seconds", "", 0.001);
    }
    return NULL;
}

static void test_threads_do_not_lose_updates(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_declare(m, "keel_c_total", "C.", METRIC_COUNTER, NULL, 0);
    metrics_declare(m, "keel_c_seconds", "C.", METRIC_HISTOGRAM, NULL, 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, adder, m);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_true(metrics_value(m, "keel_c_total", "") == 40000);
    assert_true(metrics_value(m, "keel_c_seconds", "") == 40000);
    metrics_destroy(&m);
}

static void test_special_values(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_declare(m, "keel_temp", "T.", METRIC_GAUGE, NULL, 0);
    char labels[32];
    metrics_set(m, "keel_temp", metrics_labels(labels, sizeof labels, "s", "a", NULL), INFINITY);
    metrics_set(m, "keel_temp", metrics_labels(labels, sizeof labels, "s", "b", NULL), -2.5);
    metrics_set(m, "keel_temp", metrics_labels(labels, sizeof labels, "s", "c", NULL), 0.1);
    char *text = render(m);
    assert_non_null(strstr(text, "keel_temp{s=\"a\"} +Inf\n"));
    assert_non_null(strstr(text, "keel_temp{s=\"b\"} -2.5\n"));
    const char *c = strstr(text, "keel_temp{s=\"c\"} ");
    assert_non_null(c);
    assert_true(strtod(c + strlen("keel_temp{s=\"c\"} "), NULL) == 0.1);   /* exact round trip */
    assert_promtool_accepts(text);
    free(text);
    metrics_destroy(&m);
}

int main(void)
{
    log_set_level(LOG_ERROR + 1);   /* the undeclared-family message is expected */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge_text),
        cmocka_unit_test(test_histogram_text),
        cmocka_unit_test(test_default_latency_buckets),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_collector_runs_at_render),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_many_series_rehash),
        cmocka_unit_test(test_held_series),
        cmocka_unit_test(test_threads_do_not_lose_updates),
        cmocka_unit_test(test_special_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
