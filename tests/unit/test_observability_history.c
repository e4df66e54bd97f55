/*  test_observability_history: the dashboard's stored time series.  The
 *  p99 read from histogram buckets as histogram_quantile() reads them, the
 *  Prometheus text of a service summed over its actions, the rates of two
 *  readings of a real HTTP /metrics, and the rings in a real SQLite file:
 *  the resolution chosen by range, coarser points as means (maxima for a
 *  p99) including the open bucket, a fixed number of rows however long it
 *  runs, series kept across a restart, and a series nobody writes to
 *  forgotten after a day. */
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

#include "testutil.h"
#include "clock.h"
#include "config.h"
#include "httpd.h"
#include "observability/history.h"
#include "observability/hubdb.h"
#include "observability/keelstats.h"

static void test_quantile_interpolates_within_its_bucket(void **state)
{
    (void)state;
    const double le[] = { 0.001, 0.01, 0.1, INFINITY };
    const double count[] = { 50, 90, 99, 100 };
    assert_float_equal(keelstats_quantile(le, count, 4, 0.5), 0.001, 1e-12);
    assert_float_equal(keelstats_quantile(le, count, 4, 0.7), 0.001 + 0.009 * 20 / 40, 1e-12);
    assert_float_equal(keelstats_quantile(le, count, 4, 0.99), 0.1, 1e-12);
    /* Past the last finite bound: that bound, never infinity. */
    assert_float_equal(keelstats_quantile(le, count, 4, 0.995), 0.1, 1e-12);
    const double none[] = { 0, 0, 0, 0 };
    assert_true(keelstats_quantile(le, none, 4, 0.99) < 0);
    assert_true(keelstats_quantile(le, count, 0, 0.99) < 0);
}

static const char *METRICS_TEXT =
    "# HELP keel_requests_total Requests answered.\n"
    "# TYPE keel_requests_total counter\n"
    "keel_requests_total{service=\"errorbus\",action=\"ping\",outcome=\"ok\"} 90\n"
    "keel_requests_total{service=\"errorbus\",action=\"get_errors\",outcome=\"error\"} 4\n"
    "keel_requests_total{service=\"errorbus\",action=\"say \\\"hi\\\", outcome=\\\"error\\\"\",outcome=\"ok\"} 6\n"
    "keel_requests_totally_other 1000\n"
    "keel_request_duration_seconds_bucket{service=\"errorbus\",action=\"ping\",le=\"0.001\"} 80\n"
    "keel_request_duration_seconds_bucket{service=\"errorbus\",action=\"ping\",le=\"0.01\"} 90\n"
    "keel_request_duration_seconds_bucket{service=\"errorbus\",action=\"ping\",le=\"+Inf\"} 90\n"
    "keel_request_duration_seconds_bucket{service=\"errorbus\",action=\"get_errors\",le=\"0.001\"} 0\n"
    "keel_request_duration_seconds_bucket{service=\"errorbus\",action=\"get_errors\",le=\"0.01\"} 8\n"
    "keel_request_duration_seconds_bucket{service=\"errorbus\",action=\"get_errors\",le=\"+Inf\"} 10\n"
    "keel_request_duration_seconds_sum{service=\"errorbus\",action=\"ping\"} 0.05\n"
    "keel_request_duration_seconds_count{service=\"errorbus\",action=\"ping\"} 90\n"
    "keel_errorbus_events_total{level=\"error\"} 12\n"
    "keel_errorbus_events_total{level=\"critical\"} 2\n"
    "keel_errorbus_events_total{level=\"bogus\"} 7\n";

static void test_parse_sums_over_actions(void **state)
{
    (void)state;
    keelstats_reading_t r;
    keelstats_parse(METRICS_TEXT, &r);
    assert_true(r.ok);
    assert_float_equal(r.requests, 100, 1e-9);
    assert_float_equal(r.errors, 4, 1e-9);
    assert_int_equal(r.buckets, 3);
    assert_float_equal(r.le[0], 0.001, 1e-12);
    assert_float_equal(r.count[0], 80, 1e-9);
    assert_float_equal(r.count[1], 98, 1e-9);
    assert_true(isinf(r.le[2]));
    assert_float_equal(r.count[2], 100, 1e-9);
    assert_float_equal(r.levels[3], 12, 1e-9);
    assert_float_equal(r.levels[4], 2, 1e-9);
    assert_float_equal(r.levels[0] + r.levels[1] + r.levels[2], 0, 1e-9);
}

/* ---- two readings of a real /metrics ---------------------------------------- */

static int served;

static void on_metrics(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)ctx;
    (void)req;
    char text[1024];
    /* Between the readings: 50 requests (5 errors), 10 of them slow, 30 errors stored. */
    int n = served++ ? 1 : 0;
    snprintf(text, sizeof text,
             "keel_requests_total{service=\"errorbus\",action=\"a\",outcome=\"ok\"} %d\n"
             "keel_requests_total{service=\"errorbus\",action=\"a\",outcome=\"error\"} %d\n"
             "keel_request_duration_seconds_bucket{service=\"errorbus\",action=\"a\",le=\"0.001\"} %d\n"
             "keel_request_duration_seconds_bucket{service=\"errorbus\",action=\"a\",le=\"0.1\"} %d\n"
             "keel_request_duration_seconds_bucket{service=\"errorbus\",action=\"a\",le=\"+Inf\"} %d\n"
             "keel_errorbus_events_total{level=\"warning\"} %d\n",
             100 + 45 * n, 10 + 5 * n, 110 + 40 * n, 110 + 50 * n, 110 + 50 * n, 7 + 30 * n);
    http_reply_text(reply, 200, "text/plain; version=0.0.4", text);
}

static const http_route_t metrics_route[] = {
    { "GET", "/metrics", on_metrics, ROUTE_PUBLIC, 0 },
    { 0 },
};

static void test_step_gives_the_interval_rates(void **state)
{
    (void)state;
    httpd_t *http = httpd_new("historytest", NULL);
    httpd_attach(http, metrics_route, NULL);
    int port = 0;
    for (int tries = 0; tries < 50 && !port; tries++) {
        int p = tu_free_port();     /* a port_offset stays within 0..38533 */
        if (p > 8003 && p - 8003 <= 38533 && httpd_start(http, "127.0.0.1", p) == 0)
            port = p;
    }
    assert_true(port > 0);
    /* This server is ErrorBus's HTTP port (8003) moved by the offset. */
    config_t *cfg = config_new();
    char offset[16], err[128];
    snprintf(offset, sizeof offset, "%d", port - 8003);
    assert_int_equal(config_set(cfg, "port_offset", offset, err, sizeof err), 0);
    keelstats_t *stats = keelstats_new(cfg);
    json_t *points = json_object();
    keelstats_step(stats, 1000.0, points, -1);
    assert_int_equal(json_object_size(points), 0);      /* one reading: no interval yet */
    keelstats_step(stats, 1010.0, points, -1);
    assert_float_equal(json_number_value(json_object_get(points, "service/errorbus/requests_per_s")), 5.0, 1e-9);
    assert_float_equal(json_number_value(json_object_get(points, "service/errorbus/errors_per_s")), 0.5, 1e-9);
    /* 40 of 50 under 1 ms, the 10 others in (1 ms, 100 ms]: p99 interpolates. */
    assert_float_equal(json_number_value(json_object_get(points, "service/errorbus/p99_ms")),
                       1.0 + 99.0 * (49.5 - 40) / 10, 1e-6);
    assert_float_equal(json_number_value(json_object_get(points, "errorbus/warning/per_min")), 180.0, 1e-9);
    assert_float_equal(json_number_value(json_object_get(points, "errorbus/error/per_min")), 0.0, 1e-9);
    /* Nobody else answers: no figure for them. */
    assert_null(json_object_get(points, "service/core/requests_per_s"));
    json_decref(points);
    keelstats_destroy(&stats);
    httpd_stop(http);
    httpd_destroy(&http);
    config_destroy(&cfg);
}

/* ---- the rings ---------------------------------------------------------------- */

typedef struct {
    char dir[64];
    char path[128];
    hubdb_t *db;
    config_t *cfg;
    history_t *history;
} rig_t;

static void rig_open(rig_t *rig, const char *step)
{
    snprintf(rig->dir, sizeof rig->dir, "/tmp/keel-history-XXXXXX");
    assert_non_null(mkdtemp(rig->dir));
    snprintf(rig->path, sizeof rig->path, "%s/observability.db", rig->dir);
    rig->db = hubdb_new(rig->path);
    assert_non_null(rig->db);
    rig->cfg = config_new();
    char text[64], err[128];
    snprintf(text, sizeof text, "observability: {history: {step_s: %s}}\n", step);
    assert_int_equal(config_load_text(rig->cfg, text, "test", err, sizeof err), 0);
    rig->history = history_new(rig->cfg, rig->db, NULL, NULL, NULL);
}

static void rig_close(rig_t *rig)
{
    history_destroy(&rig->history);
    hubdb_destroy(&rig->db);
    config_destroy(&rig->cfg);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", rig->dir);
    assert_int_equal(system(cmd), 0);
}

static void record(history_t *h, double t, double latency, double p99)
{
    json_t *points = json_pack("{s:f, s:f}", "agent/a/latency_ms", latency, "service/core/p99_ms", p99);
    history_record(h, t, points);
    json_decref(points);
}

static json_t *query(history_t *h, const char *name, double range, double now, double *step)
{
    const char *names[] = { name };
    json_t *out = history_query(h, names, 1, range, now, step);
    json_t *points = json_incref(json_object_get(out, name));
    json_decref(out);
    return points;
}

static void test_resolution_follows_the_range(void **state)
{
    (void)state;
    rig_t rig;
    rig_open(&rig, "10");
    const double t0 = 1800000000.0;         /* a multiple of 900 */
    /* 30 minutes of 10 s steps: latency = minute index, p99 alternates 1 and 9. */
    for (int i = 0; i < 180; i++)
        record(rig.history, t0 + 10 * i, (double)(i / 6), i % 2 ? 9 : 1);
    double now = t0 + 10 * 179, step;
    json_t *fine = query(rig.history, "agent/a/latency_ms", 900, now, &step);
    assert_float_equal(step, 10, 1e-9);
    assert_int_equal(json_array_size(fine), 90);
    assert_float_equal(json_number_value(json_array_get(json_array_get(fine, 89), 0)), now, 1e-6);
    assert_float_equal(json_number_value(json_array_get(json_array_get(fine, 89), 1)), 29, 1e-9);
    json_decref(fine);
    json_t *minutes = query(rig.history, "agent/a/latency_ms", 3600, now, &step);
    assert_float_equal(step, 60, 1e-9);
    assert_int_equal(json_array_size(minutes), 30);         /* 29 closed, the open one from memory */
    for (size_t i = 0; i < 30; i++) {
        json_t *p = json_array_get(minutes, i);
        assert_float_equal(json_number_value(json_array_get(p, 0)), t0 + 60.0 * (double)i, 1e-6);
        assert_float_equal(json_number_value(json_array_get(p, 1)), (double)i, 1e-9);
    }
    json_decref(minutes);
    json_t *p99 = query(rig.history, "service/core/p99_ms", 3600, now, &step);
    assert_float_equal(json_number_value(json_array_get(json_array_get(p99, 3), 1)), 9, 1e-9);
    json_decref(p99);
    json_t *quarters = query(rig.history, "agent/a/latency_ms", 86400, now, &step);
    assert_float_equal(step, 900, 1e-9);
    assert_int_equal(json_array_size(quarters), 2);
    assert_float_equal(json_number_value(json_array_get(json_array_get(quarters, 0), 1)), 7, 1e-9);
    assert_float_equal(json_number_value(json_array_get(json_array_get(quarters, 1), 1)), 22, 1e-9);
    json_decref(quarters);
    json_t *nothing = query(rig.history, "agent/nobody/latency_ms", 900, now, &step);
    assert_int_equal(json_array_size(nothing), 0);
    json_decref(nothing);
    /* A restarted hub answers from the file at once. */
    history_destroy(&rig.history);
    rig.history = history_new(rig.cfg, rig.db, NULL, NULL, NULL);
    fine = query(rig.history, "agent/a/latency_ms", 900, now, &step);
    assert_int_equal(json_array_size(fine), 90);
    json_decref(fine);
    minutes = query(rig.history, "agent/a/latency_ms", 3600, now, &step);
    assert_int_equal(json_array_size(minutes), 29);         /* the open minute was memory */
    json_decref(minutes);
    rig_close(&rig);
}

static void test_rows_stay_bounded_and_stale_series_go(void **state)
{
    (void)state;
    rig_t rig;
    rig_open(&rig, "60");
    const double t0 = 1800000000.0;
    json_t *gone = json_pack("{s:f}", "agent/gone/latency_ms", 1.0);
    history_record(rig.history, t0, gone);
    json_decref(gone);
    /* 26 hours of 60 s steps: every ring wraps. */
    long most = 0;
    for (int i = 1; i <= 26 * 60; i++) {
        record(rig.history, t0 + 60.0 * i, 1, 1);
        if (i % 120 == 0) {
            long rows = history_rows(rig.history);
            most = rows > most ? rows : most;
        }
    }
    /* One row per slot of the three rings, however many series. */
    assert_true(most <= 16 + 64 + 100);
    assert_true(history_rows(rig.history) >= 16 + 64 + 99);
    double step;
    json_t *points = query(rig.history, "agent/gone/latency_ms", 86400, t0 + 26 * 3600, &step);
    assert_int_equal(json_array_size(points), 0);
    json_decref(points);
    points = query(rig.history, "agent/a/latency_ms", 86400, t0 + 26 * 3600, &step);
    assert_true(json_array_size(points) >= 96);
    json_decref(points);
    rig_close(&rig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantile_interpolates_within_its_bucket),
        cmocka_unit_test(test_parse_sums_over_actions),
        cmocka_unit_test(test_step_gives_the_interval_rates),
        cmocka_unit_test(test_resolution_follows_the_range),
        cmocka_unit_test(test_rows_stay_bounded_and_stale_series_go),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
