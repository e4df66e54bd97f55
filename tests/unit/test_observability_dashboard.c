/*  test_observability_dashboard: the dashboard's parts that need no
 *  browser: the page compiled in by scripts/embed-assets.py (with Chart.js
 *  and the favicon), the parallel
 *  questions to the other services (every answer that comes, and one
 *  deadline for all, however many are silent), and where their HTTP ports
 *  are asked. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "wire.h"
#include "observability/dashpeers.h"
#include "observability/web_assets.h"
#include "testutil.h"

static void test_assets_are_compiled_in(void **state)
{
    (void)state;
    static const struct { const char *path, *type, *text; } want[] = {
        { "/index.html", "text/html", "<title>Keel dashboard</title>" },
        { "/app.js", "text/javascript", "/api/dashboard" },
        { "/app.css", "text/css", "tr.down" },
        { "/chart.min.js", "text/javascript", "Chart.js v" },
        { "/favicon.svg", "image/svg+xml", "<svg" },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const web_asset_t *found = NULL;
        for (const web_asset_t *a = web_assets; a->path; a++)
            if (!strcmp(a->path, want[i].path))
                found = a;
        assert_non_null(found);
        assert_true(!strncmp(found->content_type, want[i].type, strlen(want[i].type)));
        assert_int_equal(found->data[found->len], 0);
        assert_int_equal(strlen((const char *)found->data), found->len);
        assert_non_null(strstr((const char *)found->data, want[i].text));
    }
}

static json_t *on_echo(void *ctx, wire_request_t *req)
{
    (void)ctx;
    return json_pack("{s:s, s:O}", "status", "success", "asked", json_object_get(req->body, "n"));
}

/* A loopback port the kernel just said is free; nobody listens on it. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof addr;
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd);
    return ntohs(addr.sin_port);
}

static const wire_route_t echo_routes[] = {
    { WIRE_ACTION, "echo", on_echo, NULL, ROUTE_PUBLIC },
    { 0 },
};

static wire_server_t *echo_server(int *port)
{
    wire_server_t *server = wire_server_new("dashtest", NULL);
    wire_server_attach(server, echo_routes, NULL);
    for (int tries = 0; tries < 50; tries++) {
        *port = free_port();
        char endpoint[64];
        snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", *port);
        if (wire_server_bind(server, endpoint) == 0) {
            wire_server_start(server);
            return server;
        }
    }
    wire_server_destroy(&server);
    return NULL;
}

static void test_parallel_calls_share_one_deadline(void **state)
{
    (void)state;
    config_t *cfg = config_new();
    int port;
    wire_server_t *server = echo_server(&port);
    assert_non_null(server);
    dashpeer_call_t calls[4] = {
        { .port = port, .request = json_pack("{s:s, s:i}", "action", "echo", "n", 1) },
        { .port = free_port(), .request = json_pack("{s:s}", "action", "health") },
        { .port = free_port(), .request = json_pack("{s:s}", "action", "health") },
        { .port = port, .request = json_pack("{s:s, s:i}", "action", "echo", "n", 2) },
    };
    /* One deadline for all four, stretched for valgrind or a busy machine. */
    double f = tu_factor();
    int deadline_ms = (int)(300 * f);
    double started = clock_mono();
    dashpeers_call(cfg, calls, 4, deadline_ms);
    double took = clock_mono() - started;
    assert_true(took >= 0.25 * f && took < 0.6 * f);
    assert_int_equal(json_integer_value(json_object_get(calls[0].reply, "asked")), 1);
    assert_int_equal(json_integer_value(json_object_get(calls[3].reply, "asked")), 2);
    assert_null(calls[1].reply);
    assert_null(calls[2].reply);
    char expected[64];
    snprintf(expected, sizeof expected, "no reply within %d ms", deadline_ms);
    assert_string_equal(calls[1].error, expected);
    for (int i = 0; i < 4; i++) {
        assert_null(calls[i].request);
        json_decref(calls[i].reply);
    }
    /* All answered: no waiting for the deadline. */
    dashpeer_call_t fast = { .port = port, .request = json_pack("{s:s, s:i}", "action", "echo", "n", 3) };
    started = clock_mono();
    dashpeers_call(cfg, &fast, 1, 2000);
    assert_true(clock_mono() - started < 1.0);
    assert_non_null(fast.reply);
    json_decref(fast.reply);
    wire_server_stop(server);
    wire_server_destroy(&server);
    config_destroy(&cfg);
}

static void test_url_of_a_service_http_port(void **state)
{
    (void)state;
    config_t *cfg = config_new();
    char url[128];
    dashpeers_url(cfg, 8005, "/metrics", url, sizeof url);
    assert_string_equal(url, "http://127.0.0.1:8005/metrics");
    config_destroy(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_assets_are_compiled_in),
        cmocka_unit_test(test_parallel_calls_share_one_deadline),
        cmocka_unit_test(test_url_of_a_service_http_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
