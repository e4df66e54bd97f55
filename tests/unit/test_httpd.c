/*  test_httpd: the HTTP server on 127.0.0.1, spoken to with a raw-socket
 *  client (tests/unit/testutil.h) so the status line and body are exactly
 *  what went over the wire: routing, 404/405, bodies and the 1 MiB cap,
 *  and the route privileges: 401 without a token, 403 with a wrong one,
 *  agent routes open to trusted sources only. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "testutil.h"

typedef struct {
    httpd_t *httpd;
    metrics_t *metrics;
    privilege_t *privilege;
    int port;
} fixture_t;

static void on_hello(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)ctx;
    (void)req;
    http_reply_text(reply, 200, "text/plain", "hello");
}

/* Echoes the method, path, body length, body and a query value. */
static void on_echo(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)ctx;
    const char *q = http_query(req, "q");
    http_reply_json(reply, 200, json_pack("{s:s, s:s, s:i, s:s%, s:s?}", "method", req->method,
                                          "path", req->path, "len", (int)req->body_len,
                                          "body", req->body, req->body_len, "q", q));
}

static void on_secret(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)ctx;
    http_reply_json(reply, 200, json_pack("{s:s}", "token", req->bearer));
}

static void on_nothing(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)ctx;
    (void)req;
    (void)reply;
}

typedef struct {
    int chunks;
} stream_t;

static long stream_fill(void *arg, char *buf, size_t max)
{
    stream_t *s = arg;
    if (s->chunks >= 3 || max < 8)
        return -1;
    s->chunks++;
    return snprintf(buf, max, "chunk%d\n", s->chunks);
}

static void on_stream(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)ctx;
    (void)req;
    reply->status = 200;
    reply->content_type = "text/event-stream";
    reply->stream = stream_fill;
    reply->stream_arg = calloc(1, sizeof(stream_t));
    reply->stream_free = free;
}

static bool is_admin(void *ctx, const char *token)
{
    (void)ctx;
    return strcmp(token, "good") == 0;
}

static const http_route_t routes[] = {
    { "GET", "/hello", on_hello, ROUTE_PUBLIC },
    { "GET", "/echo", on_echo, ROUTE_PUBLIC },
    { "POST", "/echo", on_echo, ROUTE_PUBLIC },
    { "GET", "/items/*", on_echo, ROUTE_PUBLIC },
    { "GET", "/nothing", on_nothing, ROUTE_PUBLIC },
    { "GET", "/stream", on_stream, ROUTE_PUBLIC },
    { "POST", "/secret", on_secret, ROUTE_ADMIN },
    { "POST", "/agent", on_hello, ROUTE_AGENT },
    { 0 },
};

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->metrics = metrics_new();
    f->httpd = httpd_new("web", f->metrics);
    f->privilege = privilege_new();
    httpd_attach(f->httpd, routes, NULL);
    for (int tries = 0; tries < 5; tries++) {
        f->port = tu_free_port();
        if (httpd_start(f->httpd, "127.0.0.1", f->port) == 0) {
            *state = f;
            return 0;
        }
    }
    return -1;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    httpd_destroy(&f->httpd);
    privilege_destroy(&f->privilege);
    metrics_destroy(&f->metrics);
    free(f);
    return 0;
}

static json_t *body_json(tu_http_t *r)
{
    json_t *j = json_loads(r->body, 0, NULL);
    if (!j)
        print_error("body is not JSON: %s\n", r->body);
    assert_non_null(j);
    return j;
}

static void test_get_route(void **state)
{
    fixture_t *f = *state;
    tu_http_t r;
    assert_int_equal(tu_http_get(f->port, "/hello", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    assert_non_null(strcasestr(r.head, "Content-Type: text/plain"));
    assert_non_null(strcasestr(r.head, "Cache-Control: no-store"));
    tu_http_free(&r);

    assert_int_equal(tu_http_get(f->port, "/items/42?q=x%20y", &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/items/42");
    assert_string_equal(json_string_value(json_object_get(j, "q")), "x y");
    json_decref(j);
    tu_http_free(&r);
}

static void test_not_found_and_method_not_allowed(void **state)
{
    fixture_t *f = *state;
    tu_http_t r;
    assert_int_equal(tu_http_get(f->port, "/nope", &r), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"status\":\"error\",\"error\":\"Not found\"}");
    tu_http_free(&r);
    assert_int_equal(tu_http(f->port, "DELETE /hello HTTP/1.0", "", 0, &r), 0);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.body, "{\"status\":\"error\",\"error\":\"Method not allowed\"}");
    tu_http_free(&r);
    /* /items itself is not under the /items/ prefix. */
    assert_int_equal(tu_http_get(f->port, "/items", &r), 0);
    assert_int_equal(r.status, 404);
    tu_http_free(&r);
}

static void test_post_body_delivered(void **state)
{
    fixture_t *f = *state;
    const char *body = "{\"name\":\"keel\",\"n\":[1,2,3]}";
    tu_http_t r;
    assert_int_equal(tu_http(f->port, "POST /echo HTTP/1.0\r\nContent-Type: application/json",
                             body, strlen(body), &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(j, "body")), body);
    assert_int_equal(json_integer_value(json_object_get(j, "len")), strlen(body));
    json_decref(j);
    tu_http_free(&r);

    /* A body just under the cap arrives whole, in however many pieces. */
    size_t n = (1 << 20) - 16;
    char *big = malloc(n);
    memset(big, 'b', n);
    assert_int_equal(tu_http(f->port, "POST /echo HTTP/1.0", big, n, &r), 0);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "len")), n);
    json_decref(j);
    tu_http_free(&r);
    free(big);
}

static void test_body_over_1mib_is_413(void **state)
{
    fixture_t *f = *state;
    size_t n = (1 << 20) + 1;
    char *big = malloc(n);
    memset(big, 'x', n);
    tu_http_t r;
    assert_int_equal(tu_http(f->port, "POST /echo HTTP/1.0", big, n, &r), 0);
    assert_int_equal(r.status, 413);
    assert_string_equal(r.body, "{\"status\":\"error\",\"error\":\"Request too large\"}");
    tu_http_free(&r);
    free(big);
    /* The server is fine afterwards. */
    assert_int_equal(tu_http_get(f->port, "/hello", &r), 0);
    assert_int_equal(r.status, 200);
    tu_http_free(&r);
}

static int post_status(fixture_t *f, const char *head)
{
    tu_http_t r;
    assert_int_equal(tu_http(f->port, head, "", 0, &r), 0);
    int status = r.status;
    tu_http_free(&r);
    return status;
}

static void test_admin_route(void **state)
{
    fixture_t *f = *state;
    tu_http_t r;
    /* No privilege set: only public routes, even with a token. */
    assert_int_equal(tu_http(f->port, "POST /secret HTTP/1.0\r\nAuthorization: Bearer good", "", 0, &r), 0);
    assert_int_equal(r.status, 403);
    assert_string_equal(r.body, "{\"status\":\"error\",\"error\":"
                                "\"Forbidden: POST /secret needs an administrator's token\"}");
    tu_http_free(&r);
    assert_int_equal(post_status(f, "POST /agent HTTP/1.0"), 401);

    httpd_set_privilege(f->httpd, f->privilege);
    privilege_set_admin_check(f->privilege, is_admin, NULL);
    assert_int_equal(tu_http(f->port, "POST /secret HTTP/1.0\r\nAuthorization: Bearer good", "", 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"token\":\"good\"}");
    tu_http_free(&r);
    assert_int_equal(tu_http(f->port, "POST /secret HTTP/1.0\r\nAuthorization: bearer good", "", 0, &r), 0);
    assert_int_equal(r.status, 200);
    tu_http_free(&r);
    assert_int_equal(post_status(f, "POST /secret HTTP/1.0\r\nAuthorization: Bearer bad"), 403);
    assert_int_equal(post_status(f, "POST /secret HTTP/1.0\r\nAuthorization: Basic Zm9vOmJhcg=="), 401);
    assert_int_equal(post_status(f, "POST /secret HTTP/1.0"), 401);
    assert_true(metrics_value(f->metrics, "keel_bad_requests_total",
                              "service=\"web\",reason=\"forbidden\"") == 5);
}

/* An agent route: the loopback is trusted by default; once it is not,
 * only an administrator's token opens the route. */
static void test_agent_route_needs_a_trusted_source(void **state)
{
    fixture_t *f = *state;
    httpd_set_privilege(f->httpd, f->privilege);
    privilege_set_admin_check(f->privilege, is_admin, NULL);
    assert_int_equal(post_status(f, "POST /agent HTTP/1.0"), 200);
    config_t *config = config_new();
    char err[256];
    assert_int_equal(config_load_text(config, "trusted_sources: [10.0.0.0/8, 'fd00::/8']", "test",
                                      err, sizeof err), 0);
    assert_int_equal(privilege_configure(f->privilege, config, err, sizeof err), 0);
    assert_int_equal(post_status(f, "POST /agent HTTP/1.0"), 401);
    assert_int_equal(post_status(f, "POST /agent HTTP/1.0\r\nAuthorization: Bearer bad"), 403);
    assert_int_equal(post_status(f, "POST /agent HTTP/1.0\r\nAuthorization: Bearer good"), 200);
    assert_int_equal(post_status(f, "POST /hello HTTP/1.0"), 405);     /* public routes are untouched */
    config_destroy(&config);
}

static void test_handler_without_reply_is_500(void **state)
{
    fixture_t *f = *state;
    tu_http_t r;
    assert_int_equal(tu_http_get(f->port, "/nothing", &r), 0);
    assert_int_equal(r.status, 500);
    assert_string_equal(r.body, "{\"status\":\"error\",\"error\":\"Internal error\"}");
    tu_http_free(&r);
}

static void test_streamed_reply(void **state)
{
    fixture_t *f = *state;
    tu_http_t r;
    assert_int_equal(tu_http_get(f->port, "/stream", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "chunk1\nchunk2\nchunk3\n");
    assert_non_null(strcasestr(r.head, "Content-Type: text/event-stream"));
    tu_http_free(&r);
}

static void test_requests_counted_by_route(void **state)
{
    fixture_t *f = *state;
    tu_http_t r;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(tu_http_get(f->port, "/items/1", &r), 0);
        tu_http_free(&r);
    }
    assert_int_equal(tu_http_get(f->port, "/items/2", &r), 0);
    tu_http_free(&r);
    assert_int_equal(tu_http_get(f->port, "/zzz", &r), 0);
    tu_http_free(&r);
    char labels[128];
    metrics_labels(labels, sizeof labels, "service", "web", "route", "/items/*", "code", "200", NULL);
    assert_true(metrics_value(f->metrics, "keel_http_requests_total", labels) == 3);
    metrics_labels(labels, sizeof labels, "service", "web", "route", "other", "code", "404", NULL);
    assert_true(metrics_value(f->metrics, "keel_http_requests_total", labels) == 1);
}

static void test_port_in_use(void **state)
{
    fixture_t *f = *state;
    httpd_t *other = httpd_new("other", NULL);
    assert_int_equal(httpd_start(other, "127.0.0.1", f->port), -1);
    httpd_destroy(&other);
    assert_null(other);
}

int main(void)
{
    log_set_level(LOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_method_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_body_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_over_1mib_is_413, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_route_needs_a_trusted_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_without_reply_is_500, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streamed_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_counted_by_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_in_use, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
