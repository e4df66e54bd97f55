/*  test_errpub: a real SUB socket bound where ErrorBus binds receives the
 *  exact frame the Python agents send: `ERROR:` then a JSON object with
 *  timestamp, agent, error_type, message, severity and details, nothing
 *  more; and that reports made before the bus has subscribed (start-up, a
 *  bus that starts late) are held and delivered, not dropped. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "clock.h"
#include "errpub.h"
#include "log.h"
#include "wire.h"
#include "zsocket.h"

typedef struct {
    void *sub;
    char endpoint[64];
    errpub_t *pub;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->sub = zsocket_new(ZMQ_SUB, ZSOCKET_SERVER, 0);
    zmq_setsockopt(f->sub, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_bind(f->sub, "tcp://127.0.0.1:*") != 0)
        return -1;
    size_t len = sizeof f->endpoint;
    zmq_getsockopt(f->sub, ZMQ_LAST_ENDPOINT, f->endpoint, &len);
    f->pub = errpub_new(f->endpoint, "TestAgent");
    errpub_start(f->pub);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    errpub_destroy(&f->pub);
    zmq_close(f->sub);
    free(f);
    return 0;
}

/* Reports until the SUB has a frame (at most 5 s); returns the frame. */
static char *report_until_received(fixture_t *f, json_t *details)
{
    zmq_pollitem_t item = { f->sub, 0, ZMQ_POLLIN, 0 };
    for (int i = 0; i < 100; i++) {
        assert_int_equal(errpub_report(f->pub, "database_error", "high", details,
                                       "lost %d rows", 3), 0);
        if (zmq_poll(&item, 1, 50) == 1) {
            zmq_msg_t msg;
            zmq_msg_init(&msg);
            assert_true(zmq_msg_recv(&msg, f->sub, 0) >= 0);
            assert_false(zmq_msg_more(&msg));       /* one frame, not a topic + body pair */
            char *text = strndup(zmq_msg_data(&msg), zmq_msg_size(&msg));
            zmq_msg_close(&msg);
            return text;
        }
    }
    fail_msg("no frame reached the SUB socket");
    return NULL;
}

static void test_frame_is_error_prefix_and_json(void **state)
{
    fixture_t *f = *state;
    json_t *details = json_pack("{s:s, s:i}", "table", "runs", "code", 11);
    double before = clock_wall();
    char *frame = report_until_received(f, details);
    json_decref(details);
    assert_true(strncmp(frame, "ERROR:", 6) == 0);
    json_error_t jerr;
    json_t *event = json_loads(frame + 6, 0, &jerr);
    assert_non_null(event);
    assert_int_equal(json_object_size(event), 6);
    assert_true(json_is_real(json_object_get(event, "timestamp")));
    double ts = json_real_value(json_object_get(event, "timestamp"));
    assert_true(ts >= before - 1 && ts <= clock_wall() + 1);
    assert_string_equal(json_string_value(json_object_get(event, "agent")), "TestAgent");
    assert_string_equal(json_string_value(json_object_get(event, "error_type")), "database_error");
    assert_string_equal(json_string_value(json_object_get(event, "message")), "lost 3 rows");
    assert_string_equal(json_string_value(json_object_get(event, "severity")), "high");
    char *d = json_dumps(json_object_get(event, "details"), JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(d, "{\"code\":11,\"table\":\"runs\"}");
    free(d);
    json_decref(event);
    free(frame);
}

static void test_null_details_is_empty_object(void **state)
{
    fixture_t *f = *state;
    char *frame = report_until_received(f, NULL);
    json_t *event = json_loads(frame + 6, 0, NULL);
    assert_non_null(event);
    assert_true(json_is_object(json_object_get(event, "details")));
    assert_int_equal(json_object_size(json_object_get(event, "details")), 0);
    json_decref(event);
    free(frame);
}

/* Receives `n` frames within `ms`; returns how many arrived. */
static int receive_frames(void *sub, int n, int ms)
{
    zmq_pollitem_t item = { sub, 0, ZMQ_POLLIN, 0 };
    int got = 0;
    double deadline = clock_mono() + ms / 1000.0;
    while (got < n && clock_mono() < deadline) {
        if (zmq_poll(&item, 1, 50) != 1)
            continue;
        char buf[2048];
        if (zmq_recv(sub, buf, sizeof buf, 0) > 0)
            got++;
    }
    return got;
}

static void test_reports_at_start_are_not_lost(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 20; i++)    /* at once: the subscription has not arrived yet */
        assert_int_equal(errpub_report(f->pub, "startup", "ERROR", NULL, "early %d", i), 0);
    assert_int_equal(receive_frames(f->sub, 20, 3000), 20);
}

static void test_reports_wait_for_a_late_bus(void **state)
{
    (void)state;
    void *probe = zsocket_new(ZMQ_SUB, ZSOCKET_SERVER, 0);
    assert_int_equal(zmq_bind(probe, "tcp://127.0.0.1:*"), 0);
    char endpoint[64];
    size_t len = sizeof endpoint;
    zmq_getsockopt(probe, ZMQ_LAST_ENDPOINT, endpoint, &len);
    zmq_close(probe);               /* the port is free again: the bus is "down" */
    errpub_t *p = errpub_new(endpoint, "Early");
    assert_int_equal(errpub_start(p), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(errpub_report(p, "x", "ERROR", NULL, "before the bus %d", i), 0);
    usleep(200 * 1000);
    void *bus = zsocket_new(ZMQ_SUB, ZSOCKET_SERVER, 0);
    zmq_setsockopt(bus, ZMQ_SUBSCRIBE, "ERROR", 5);
    assert_int_equal(zmq_bind(bus, endpoint), 0);
    assert_int_equal(receive_frames(bus, 5, 5000), 5);
    errpub_destroy(&p);
    zmq_close(bus);
}

static void test_bus_down_costs_nothing(void **state)
{
    (void)state;
    errpub_t *p = errpub_new("tcp://127.0.0.1:1", "Lonely");
    errpub_start(p);
    double started = clock_mono();
    for (int i = 0; i < 100; i++)
        assert_int_equal(errpub_report(p, "x", "low", NULL, "m%d", i), 0);
    assert_true(clock_mono() - started < 1.0);
    errpub_destroy(&p);
    assert_null(p);
    errpub_destroy(&p);
    /* A malformed endpoint is logged, and reports still return. */
    p = errpub_new("nonsense", "Lonely");
    errpub_report(p, "x", "low", NULL, "m");
    /* Text that cannot be JSON is refused, not sent half-formed. */
    assert_int_equal(errpub_report(p, "x", "low", NULL, "bad \xff byte"), -1);
    errpub_destroy(&p);
}

int main(void)
{
    log_set_level(LOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_frame_is_error_prefix_and_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_details_is_empty_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reports_at_start_are_not_lost, setup, teardown),
        cmocka_unit_test(test_reports_wait_for_a_late_bus),
        cmocka_unit_test(test_bus_down_costs_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
