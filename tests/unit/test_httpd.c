/*  test_httpd: the HTTP server on 127.0.0.1, spoken to with a raw-socket
 *  client (tests/unit/testutil.h) so the status line and body are exactly
 *  what went over the wire: routing, 404/405, bodies and their limits, the
 *  route privileges (401 without a token, 403 with a wrong one, agent
 *  routes open to trusted sources only), and what holds under hostile
 *  clients: refusals decided from the headers before
 *  any body, the Host allow-list, the security headers, the limit per
 *  address, the total deadline, slow handlers off the connections' thread,
 *  streams that wait, and a stop while requests are in flight; and HTTP/1.1
 *  as clients speak it: keep-alive and pipelining, chunked bodies both
 *  ways, 100-continue, HEAD, decoding, malformed requests, and a server
 *  started again after a stop. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
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

/* Holds its worker until released, or for 1.5 s (scaled): what a stop
 * has to wait out. */
static atomic_int slow_entered, slow_release;

static void on_slow(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)ctx;
    (void)req;
    atomic_fetch_add(&slow_entered, 1);
    double until = clock_mono() + 1.5 * tu_factor();
    while (!atomic_load(&slow_release) && clock_mono() < until)
        usleep(1000);
    http_reply_text(reply, 200, "text/plain", "slow");
}

/* Three chunks, each after two "nothing yet" answers (a stream that waits). */
typedef struct {
    int chunks, waits;
} stream_t;

static long stream_fill(void *arg, char *buf, size_t max)
{
    stream_t *s = arg;
    if (s->chunks >= 3 || max < 8)
        return -1;
    if (s->waits++ % 3 < 2)
        return 0;
    s->chunks++;
    return snprintf(buf, max, "chunk%d\n", s->chunks);
}

/* A stream that never has anything to say: ended by a stop, or by its
 * client leaving.  `idle_streams_ended` counts the ends, `idle_streams_asked`
 * the times one was asked for something. */
static atomic_int idle_streams_ended, idle_streams_asked;

static long stream_idle(void *arg, char *buf, size_t max)
{
    (void)arg;
    (void)buf;
    (void)max;
    atomic_fetch_add(&idle_streams_asked, 1);
    return 0;
}

static void idle_stream_end(void *arg)
{
    (void)arg;
    atomic_fetch_add(&idle_streams_ended, 1);
}

static void on_idle_stream(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)ctx;
    (void)req;
    reply->status = 200;
    reply->content_type = "text/event-stream";
    reply->stream = stream_idle;
    reply->stream_free = idle_stream_end;
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
    { "GET", "/hello", on_hello, ROUTE_PUBLIC, 0 },
    { "GET", "/echo", on_echo, ROUTE_PUBLIC, 0 },
    { "POST", "/echo", on_echo, ROUTE_PUBLIC, 1 << 20 },
    { "POST", "/small", on_echo, ROUTE_PUBLIC, 0 },
    { "GET", "/items/*", on_echo, ROUTE_PUBLIC, 0 },
    { "GET", "/nothing", on_nothing, ROUTE_PUBLIC, 0 },
    { "GET", "/stream", on_stream, ROUTE_PUBLIC, 0 },
    { "GET", "/idle", on_idle_stream, ROUTE_PUBLIC, 0 },
    { "GET", "/slow", on_slow, ROUTE_PUBLIC, 0 },
    { "POST", "/secret", on_secret, ROUTE_ADMIN, 0 },
    { "POST", "/agent", on_hello, ROUTE_AGENT, 0 },
    { 0 },
};

static int start_on_free_port(httpd_t *httpd)
{
    for (int tries = 0; tries < 5; tries++) {
        int port = tu_free_port();
        if (httpd_start(httpd, "127.0.0.1", port) == 0)
            return port;
    }
    return -1;
}

static fixture_t *fixture_new(const httpd_limits_t *limits, bool check_host)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->metrics = metrics_new();
    f->httpd = httpd_new("web", f->metrics);
    f->privilege = privilege_new();
    httpd_attach(f->httpd, routes, NULL);
    if (limits)
        httpd_set_limits(f->httpd, limits);
    if (check_host) {
        static const char *const extra[] = { "dash.lan" };
        httpd_check_host(f->httpd, extra, 1);
    }
    f->port = start_on_free_port(f->httpd);
    return f;
}

static int setup(void **state)
{
    fixture_t *f = fixture_new(NULL, false);
    *state = f;
    return f->port > 0 ? 0 : -1;
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

/* ---- a raw client, for requests tu_http cannot make -------------------- */

/* Connects to the port from `source` (an address of 127.0.0.0/8). */
static int connect_from(const char *source, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in from = { .sin_family = AF_INET };
    inet_pton(AF_INET, source, &from.sin_addr);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(fd, (struct sockaddr *)&from, sizeof from) < 0
        || connect(fd, (struct sockaddr *)&to, sizeof to) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends `text` as it is and reads the reply's status (0 when the server
 * closed without one); the head goes to `head` when given. */
static int raw_status(int fd, const char *text, char *head, size_t head_len)
{
    send(fd, text, strlen(text), MSG_NOSIGNAL);
    char buf[4096];
    size_t len = 0;
    ssize_t k;
    while (len < sizeof buf - 1 && (k = recv(fd, buf + len, sizeof buf - 1 - len, 0)) > 0)
        len += (size_t)k;
    buf[len] = '\0';
    if (head)
        snprintf(head, head_len, "%s", buf);
    int status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    return status;
}

static int raw_request(int port, const char *source, const char *text, char *head, size_t head_len)
{
    int fd = connect_from(source, port);
    assert_true(fd >= 0);
    int status = raw_status(fd, text, head, head_len);
    close(fd);
    return status;
}

/* The attack: any path, without a token, buffered up to 1 MiB of body
 * before anything was checked.  Now the headers decide: the announced
 * length over the route's limit, a protected route without a token and an
 * unknown path are all answered without one byte of the body being sent. */
static void test_refused_from_the_headers(void **state)
{
    fixture_t *f = *state;
    char head[4096];
    double started = clock_mono();
    assert_int_equal(raw_request(f->port, "127.0.0.1", "POST /small HTTP/1.1\r\nHost: x\r\n"
                                 "Content-Length: 100000000\r\n\r\n", head, sizeof head), 413);
    assert_int_equal(raw_request(f->port, "127.0.0.1", "POST /secret HTTP/1.1\r\nHost: x\r\n"
                                 "Content-Length: 100000000\r\n\r\n", head, sizeof head), 401);
    assert_int_equal(raw_request(f->port, "127.0.0.1", "POST /nowhere HTTP/1.1\r\nHost: x\r\n"
                                 "Content-Length: 100000000\r\n\r\n", head, sizeof head), 404);
    assert_true(clock_mono() - started < 3.0);
    /* The default limit applies to a route that declares none... */
    size_t n = (64 << 10) + 1;
    char *big = malloc(n);
    memset(big, 'x', n);
    tu_http_t r;
    assert_int_equal(tu_http(f->port, "POST /small HTTP/1.0", big, n, &r), 0);
    assert_int_equal(r.status, 413);
    tu_http_free(&r);
    assert_int_equal(tu_http(f->port, "POST /small HTTP/1.0", big, n - 1, &r), 0);
    assert_int_equal(r.status, 200);
    tu_http_free(&r);
    free(big);
    /* ...and to a body sent in chunks, which announces no length. */
    char chunked[256];
    snprintf(chunked, sizeof chunked, "POST /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
             "Transfer-Encoding: chunked\r\n\r\n");
    int fd = connect_from("127.0.0.1", f->port);
    send(fd, chunked, strlen(chunked), MSG_NOSIGNAL);
    char piece[8200];
    memset(piece, 'y', sizeof piece);
    memcpy(piece, "2000\r\n", 6);
    memcpy(piece + 6 + 0x2000, "\r\n", 2);
    for (int i = 0; i < 9; i++)         /* 72 KiB */
        send(fd, piece, 6 + 0x2000 + 2, MSG_NOSIGNAL);
    assert_int_equal(raw_status(fd, "0\r\n\r\n", NULL, 0), 413);
    close(fd);
}

static void test_security_headers_on_every_reply(void **state)
{
    fixture_t *f = *state;
    const char *paths[] = { "/hello", "/nope", "/items/1" };
    for (size_t i = 0; i < 3; i++) {
        tu_http_t r;
        assert_int_equal(tu_http_get(f->port, paths[i], &r), 0);
        assert_non_null(strcasestr(r.head, "Content-Security-Policy: default-src 'self'"));
        assert_non_null(strcasestr(r.head, "X-Frame-Options: DENY"));
        assert_non_null(strcasestr(r.head, "X-Content-Type-Options: nosniff"));
        tu_http_free(&r);
    }
    char head[4096];
    assert_int_equal(raw_request(f->port, "127.0.0.1", "POST /secret HTTP/1.0\r\n\r\n", head, sizeof head),
                     401);
    assert_non_null(strcasestr(head, "X-Content-Type-Options: nosniff"));
}

/* DNS rebinding: a page served to browsers answers only the names it is
 * reached by, never one an attacker's DNS points at 127.0.0.1. */
static void test_host_allow_list(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(NULL, true);
    assert_true(f->port > 0);
    char req[256], head[4096];
    const char *allowed[] = { "127.0.0.1:%d", "localhost:%d", "LOCALHOST", "[::1]:%d", "dash.lan:%d" };
    for (size_t i = 0; i < 5; i++) {
        char host[64];
        snprintf(host, sizeof host, allowed[i], f->port);
        snprintf(req, sizeof req, "GET /hello HTTP/1.0\r\nHost: %s\r\n\r\n", host);
        assert_int_equal(raw_request(f->port, "127.0.0.1", req, head, sizeof head), 200);
    }
    const char *foreign[] = { "evil.example:%d", "127.0.0.1.evil.example", "dash.lan.evil:%d" };
    for (size_t i = 0; i < 3; i++) {
        char host[64];
        snprintf(host, sizeof host, foreign[i], f->port);
        snprintf(req, sizeof req, "GET /hello HTTP/1.0\r\nHost: %s\r\n\r\n", host);
        assert_int_equal(raw_request(f->port, "127.0.0.1", req, head, sizeof head), 421);
        assert_non_null(strcasestr(head, "X-Frame-Options: DENY"));
    }
    assert_int_equal(raw_request(f->port, "127.0.0.1", "GET /hello HTTP/1.0\r\n\r\n", head, sizeof head),
                     200);
    char labels[128];
    metrics_labels(labels, sizeof labels, "service", "web", "reason", "host", NULL);
    assert_true(metrics_value(f->metrics, "keel_http_refused_total", labels) == 3);
    teardown((void **)&f);
}

static void test_limit_per_address(void **state)
{
    (void)state;
    httpd_limits_t limits = HTTPD_DEFAULT_LIMITS;
    limits.max_per_address = 3;
    fixture_t *f = fixture_new(&limits, false);
    int held[3];
    for (int i = 0; i < 3; i++)
        assert_true((held[i] = connect_from("127.0.0.2", f->port)) >= 0);
    usleep(200 * 1000);
    /* The fourth from that address is closed at once, without a reply... */
    assert_int_equal(raw_request(f->port, "127.0.0.2", "GET /hello HTTP/1.0\r\n\r\n", NULL, 0), 0);
    /* ...while another address is served. */
    assert_int_equal(raw_request(f->port, "127.0.0.3", "GET /hello HTTP/1.0\r\n\r\n", NULL, 0), 200);
    close(held[0]);
    double end = clock_mono() + 3.0;
    int status = 0;
    while (status != 200 && clock_mono() < end)
        status = raw_request(f->port, "127.0.0.2", "GET /hello HTTP/1.0\r\n\r\n", NULL, 0);
    assert_int_equal(status, 200);
    close(held[1]);
    close(held[2]);
    char labels[128];
    metrics_labels(labels, sizeof labels, "service", "web", "reason", "per_address", NULL);
    assert_true(metrics_value(f->metrics, "keel_http_refused_total", labels) >= 1);
    teardown((void **)&f);
}

/* A client that sends a header line every 200 ms is active the whole time,
 * so an idle timeout never fires: the total deadline closes it. */
static void test_deadline_closes_a_trickle(void **state)
{
    (void)state;
    httpd_limits_t limits = HTTPD_DEFAULT_LIMITS;
    limits.deadline_s = 1;
    fixture_t *f = fixture_new(&limits, false);
    int fd = connect_from("127.0.0.4", f->port);
    struct timeval tv = { 0, 200 * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    send(fd, "GET /hello HTTP/1.1\r\n", 21, MSG_NOSIGNAL);
    double started = clock_mono();
    bool closed = false;
    while (!closed && clock_mono() - started < 5.0) {
        send(fd, "X-Drip: 1\r\n", 11, MSG_NOSIGNAL);
        char c;
        ssize_t k = recv(fd, &c, 1, 0);
        closed = k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
        /* Others are served meanwhile. */
        tu_http_t r;
        assert_int_equal(tu_http_get(f->port, "/hello", &r), 0);
        assert_int_equal(r.status, 200);
        tu_http_free(&r);
    }
    double took = clock_mono() - started;
    close(fd);
    assert_true(closed);
    assert_true(took >= 0.9 && took < 2.5);
    char labels[128];
    metrics_labels(labels, sizeof labels, "service", "web", "reason", "deadline", NULL);
    assert_true(metrics_value(f->metrics, "keel_http_refused_total", labels) == 1);
    teardown((void **)&f);
}

static void *get_slow(void *arg)
{
    fixture_t *f = arg;
    tu_http_t r;
    if (tu_http_get(f->port, "/slow", &r) == 0) {
        f->port = -f->port;         /* tells the test the slow one was answered */
        tu_http_free(&r);
    }
    return NULL;
}

static void test_slow_handler_holds_no_one_up(void **state)
{
    fixture_t *f = *state;
    fixture_t copy = *f;
    atomic_store(&slow_entered, 0);
    atomic_store(&slow_release, 0);
    /* Workers start as requests need them: one until then (named by
     * itself, once it runs). */
    double named = clock_mono() + 5 * tu_factor();
    while (tu_threads_named("http worker") < 1 && clock_mono() < named)
        usleep(1000);
    assert_int_equal(tu_threads_named("http worker"), 1);
    pthread_t t;
    pthread_create(&t, NULL, get_slow, &copy);
    double until = clock_mono() + 5 * tu_factor();
    while (!atomic_load(&slow_entered) && clock_mono() < until)
        usleep(1000);
    assert_int_equal(atomic_load(&slow_entered), 1);
    tu_http_t r;
    assert_int_equal(tu_http_get(f->port, "/hello", &r), 0);
    assert_int_equal(r.status, 200);
    tu_http_free(&r);
    assert_true(copy.port > 0);         /* answered while the slow one is held */
    assert_int_equal(tu_threads_named("http worker"), 2);
    atomic_store(&slow_release, 1);
    pthread_join(t, NULL);
    assert_true(copy.port < 0);
}

static void *get_idle(void *arg)
{
    fixture_t *f = arg;
    tu_http_t r;
    int rc = tu_http_get(f->port, "/idle", &r);
    if (rc == 0)
        tu_http_free(&r);
    return NULL;
}

/* A stop with a slow handler running and a stream parked: both end, and
 * the stop does not hang on either. */
static void test_stop_with_requests_in_flight(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(NULL, false);
    fixture_t copy = *f;
    atomic_store(&slow_entered, 0);
    atomic_store(&slow_release, 0);
    pthread_t slow, idle;
    pthread_create(&slow, NULL, get_slow, &copy);
    pthread_create(&idle, NULL, get_idle, &copy);
    int asked = atomic_load(&idle_streams_asked);
    double until = clock_mono() + 5 * tu_factor();
    while ((!atomic_load(&slow_entered) || atomic_load(&idle_streams_asked) == asked)
           && clock_mono() < until)
        usleep(1000);
    assert_int_equal(atomic_load(&slow_entered), 1);
    assert_true(atomic_load(&idle_streams_asked) > asked);     /* the stream is parked */
    double started = clock_mono();
    httpd_stop(f->httpd);
    assert_true(clock_mono() - started < 3.0 * tu_factor());
    pthread_join(slow, NULL);
    pthread_join(idle, NULL);
    teardown((void **)&f);
}

static void test_stream_ends_when_its_client_leaves(void **state)
{
    fixture_t *f = *state;
    int before = atomic_load(&idle_streams_ended);
    int fd = connect_from("127.0.0.1", f->port);
    const char *req = "GET /idle HTTP/1.1\r\nHost: x\r\n\r\n";
    send(fd, req, strlen(req), MSG_NOSIGNAL);
    char head[256];
    assert_true(recv(fd, head, sizeof head, 0) > 0);     /* the headers of the stream */
    close(fd);
    double end = clock_mono() + 3.0;
    while (atomic_load(&idle_streams_ended) == before && clock_mono() < end)
        usleep(20 * 1000);
    assert_int_equal(atomic_load(&idle_streams_ended), before + 1);
}

static void test_port_in_use(void **state)
{
    fixture_t *f = *state;
    httpd_t *other = httpd_new("other", NULL);
    assert_int_equal(httpd_start(other, "127.0.0.1", f->port), -1);
    httpd_destroy(&other);
    assert_null(other);
}

/* ---- HTTP/1.1 as clients speak it -------------------------------------- */

/* Sends `text` on a connection from 127.0.0.1 and reads until the server
 * closes (or 5 s pass) into buf. */
static size_t raw_exchange(int port, const char *text, size_t len, char *buf, size_t cap)
{
    int fd = connect_from("127.0.0.1", port);
    assert_true(fd >= 0);
    send(fd, text, len, MSG_NOSIGNAL);
    size_t got = 0;
    ssize_t k;
    while (got < cap - 1 && (k = recv(fd, buf + got, cap - 1 - got, 0)) > 0)
        got += (size_t)k;
    buf[got] = '\0';
    close(fd);
    return got;
}

static int count_of(const char *text, const char *what)
{
    int n = 0;
    for (const char *at = text; (at = strstr(at, what)); at++)
        n++;
    return n;
}

/* Requests sent back to back on one connection are answered in order;
 * HTTP/1.1 keeps the connection until one says Connection: close, 1.0
 * only when asked. */
static void test_keep_alive_and_pipelining(void **state)
{
    fixture_t *f = *state;
    static char buf[16384];
    const char *three = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /echo?q=last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    raw_exchange(f->port, three, strlen(three), buf, sizeof buf);
    const char *first = strstr(buf, "HTTP/1.1 200");
    const char *second = strstr(buf, "HTTP/1.1 404");
    const char *third = second ? strstr(second, "HTTP/1.1 200") : NULL;
    assert_true(first && second && third && first < second);
    assert_int_equal(count_of(buf, "Connection: close"), 1);
    assert_non_null(strstr(third, "Connection: close"));
    assert_non_null(strstr(third, "\"q\":\"last\""));

    const char *old = "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /hello HTTP/1.0\r\n\r\n";
    raw_exchange(f->port, old, strlen(old), buf, sizeof buf);
    assert_int_equal(count_of(buf, "HTTP/1.1 200"), 2);
    assert_int_equal(count_of(buf, "Connection: keep-alive"), 1);
    assert_int_equal(count_of(buf, "Connection: close"), 1);
}

static void test_chunked_body_and_continue(void **state)
{
    fixture_t *f = *state;
    static char buf[8192];
    const char *chunked = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                          "Connection: close\r\n\r\n4\r\nkeel\r\n1;x=y\r\n!\r\n0\r\n\r\n";
    raw_exchange(f->port, chunked, strlen(chunked), buf, sizeof buf);
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strstr(buf, "\"body\":\"keel!\""));

    /* Expect: 100-continue is answered once the headers pass, not before. */
    int fd = connect_from("127.0.0.1", f->port);
    const char *head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                       "Expect: 100-continue\r\nConnection: close\r\n\r\n";
    send(fd, head, strlen(head), MSG_NOSIGNAL);
    ssize_t k = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(k > 0);
    buf[k] = '\0';
    assert_string_equal(buf, "HTTP/1.1 100 Continue\r\n\r\n");
    assert_int_equal(raw_status(fd, "body", buf, sizeof buf), 200);
    assert_non_null(strstr(buf, "\"body\":\"body\""));
    close(fd);
    const char *refused = "POST /secret HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                          "Expect: 100-continue\r\n\r\n";
    raw_exchange(f->port, refused, strlen(refused), buf, sizeof buf);
    assert_null(strstr(buf, "100 Continue"));
    assert_non_null(strstr(buf, "HTTP/1.1 401"));
}

static void test_head_and_decoding(void **state)
{
    fixture_t *f = *state;
    static char buf[8192];
    const char *head = "HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    size_t n = raw_exchange(f->port, head, strlen(head), buf, sizeof buf);
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strcasestr(buf, "Content-Length: 5\r\n"));
    assert_true(n > 4 && strcmp(buf + n - 4, "\r\n\r\n") == 0);     /* no body */

    /* The path is percent-decoded ('+' stays), the query as a form ('+' is a space). */
    tu_http_t r;
    assert_int_equal(tu_http_get(f->port, "/items/a+b%20c?Q=1+2%2B3", &r), 0);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/items/a+b c");
    assert_string_equal(json_string_value(json_object_get(j, "q")), "1 2+3");
    json_decref(j);
    tu_http_free(&r);
}

/* Whatever is not a plain request is refused and closed, never hangs. */
static void test_malformed_requests(void **state)
{
    fixture_t *f = *state;
    static char buf[8192];
    const char *bad[] = { "\x01\x02\r\n\r\n", "GET /hello\r\n\r\n", "GET /hello HTTP/1.1\r\nHost x\r\n\r\n",
                          "POST /echo HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab",
                          "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        double started = clock_mono();
        raw_exchange(f->port, bad[i], strlen(bad[i]), buf, sizeof buf);
        assert_non_null(strstr(buf, "HTTP/1.1 400"));
        assert_non_null(strstr(buf, "Connection: close"));
        assert_true(clock_mono() - started < 1.0);
    }
    assert_non_null(strstr(buf, "{\"status\":\"error\",\"error\":\"Bad request"));
    const char *version = "GET /hello HTTP/3.0\r\n\r\n";
    raw_exchange(f->port, version, strlen(version), buf, sizeof buf);
    assert_non_null(strstr(buf, "HTTP/1.1 505"));
    /* A head past its limit: 431, or 414 when the request line alone is. */
    size_t n = 40 << 10;
    char *huge = malloc(n + 64);
    memset(huge, 'a', n + 64);
    memcpy(huge, "GET /hello HTTP/1.1\r\nX-Big: ", 28);
    raw_exchange(f->port, huge, n, buf, sizeof buf);
    assert_non_null(strstr(buf, "HTTP/1.1 431"));
    memset(huge, 'a', n);
    memcpy(huge, "GET /", 5);
    raw_exchange(f->port, huge, n, buf, sizeof buf);
    assert_non_null(strstr(buf, "HTTP/1.1 414"));
    free(huge);
    assert_int_equal(post_status(f, "POST /echo HTTP/1.0"), 200);
}

static void test_stream_in_chunks(void **state)
{
    fixture_t *f = *state;
    static char buf[8192];
    const char *req = "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = connect_from("127.0.0.1", f->port);
    send(fd, req, strlen(req), MSG_NOSIGNAL);
    size_t got = 0;
    ssize_t k;
    buf[0] = '\0';
    while (!strstr(buf, "0\r\n\r\n") && got < sizeof buf - 1
           && (k = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0) {
        got += (size_t)k;
        buf[got] = '\0';
    }
    assert_non_null(strcasestr(buf, "Transfer-Encoding: chunked"));
    assert_non_null(strstr(buf, "\r\n\r\n7\r\nchunk1\n\r\n7\r\nchunk2\n\r\n7\r\nchunk3\n\r\n0\r\n\r\n"));
    /* The connection is kept for the next request. */
    assert_int_equal(raw_status(fd, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0),
                     200);
    close(fd);
}

static void test_restart_after_stop(void **state)
{
    fixture_t *f = *state;
    httpd_stop(f->httpd);
    tu_http_t r;
    assert_int_equal(tu_http_get(f->port, "/hello", &r), -1);
    f->port = start_on_free_port(f->httpd);
    assert_true(f->port > 0);
    assert_int_equal(tu_http_get(f->port, "/hello", &r), 0);
    assert_int_equal(r.status, 200);
    tu_http_free(&r);
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
        cmocka_unit_test_setup_teardown(test_refused_from_the_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_security_headers_on_every_reply, setup, teardown),
        cmocka_unit_test(test_host_allow_list),
        cmocka_unit_test(test_limit_per_address),
        cmocka_unit_test(test_deadline_closes_a_trickle),
        cmocka_unit_test_setup_teardown(test_slow_handler_holds_no_one_up, setup, teardown),
        cmocka_unit_test(test_stop_with_requests_in_flight),
        cmocka_unit_test_setup_teardown(test_stream_ends_when_its_client_leaves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive_and_pipelining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_body_and_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_and_decoding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_in_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_after_stop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
