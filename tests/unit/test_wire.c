/*  test_wire: the wire server answered by real ZMQ REQ sockets (inproc, and
 *  TCP on loopback where the transport matters), so every reply is what an
 *  agent would read: the BaseAgent error texts, dialect routing, the raw
 *  ping, the worker pool matching 200 concurrent replies to their senders,
 *  the metrics per outcome, route privileges (the peer's address and the
 *  token, directly and through the workers' inproc hop), and the Lazy
 *  Pirate client against servers that are late, drop a request, or answer
 *  garbage. */
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
#include <unistd.h>
#include <zmq.h>

#include "actor.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "testutil.h"
#include "wire.h"
#include "zsocket.h"

typedef struct {
    wire_server_t *server;
    metrics_t *metrics;
    char endpoint[64];
    atomic_int raw_pings;
} fixture_t;

/* ---- handlers ------------------------------------------------------- */

/* Answers with what the server handed over, so tests can check it. */
static json_t *on_echo(void *ctx, wire_request_t *req)
{
    (void)ctx;
    return json_pack("{s:s, s:s, s:s, s:O}", "status", "success", "dialect",
                     wire_dialect_name(req->dialect), "name", req->name, "payload", req->payload);
}

static json_t *on_command(void *ctx, wire_request_t *req)
{
    (void)ctx;
    return json_pack("{s:s, s:s, s:s, s:O}", "status", "SUCCESS", "dialect",
                     wire_dialect_name(req->dialect), "name", req->name, "payload", req->payload);
}

static json_t *on_ping(void *ctx, wire_request_t *req)
{
    fixture_t *f = ctx;
    if (req->dialect == WIRE_RAW)
        atomic_fetch_add(&f->raw_pings, 1);
    return json_pack("{s:s, s:s}", "status", "ok", "dialect", wire_dialect_name(req->dialect));
}

static json_t *on_null(void *ctx, wire_request_t *req)
{
    (void)ctx;
    (void)req;
    return NULL;
}

static json_t *on_fail(void *ctx, wire_request_t *req)
{
    (void)ctx;
    (void)req;
    return wire_error("it failed");
}

static const wire_route_t routes[] = {
    { WIRE_ACTION, "echo", on_echo, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "ping", on_ping, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "null", on_null, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "fail", on_fail, NULL, ROUTE_PUBLIC },
    { WIRE_COMMAND, "GET_X", on_command, NULL, ROUTE_PUBLIC },
    { WIRE_TYPE, NULL, on_echo, NULL, ROUTE_PUBLIC },
    { 0 },
};

static int setup(void **state)
{
    static atomic_int seq;
    fixture_t *f = calloc(1, sizeof *f);
    f->metrics = metrics_new();
    f->server = wire_server_new("t", f->metrics);
    snprintf(f->endpoint, sizeof f->endpoint, "inproc://test-wire-%d", atomic_fetch_add(&seq, 1));
    wire_server_attach(f->server, routes, f);
    if (wire_server_bind(f->server, f->endpoint) < 0 || wire_server_start(f->server) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    wire_server_destroy(&f->server);
    metrics_destroy(&f->metrics);
    free(f);
    return 0;
}

/* ---- a REQ client ------------------------------------------------------ */

static void *req_socket(const char *endpoint)
{
    void *s = zsocket_new(ZMQ_REQ, ZSOCKET_CLIENT, 0);
    int timeout = 5000;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    assert_int_equal(zmq_connect(s, endpoint), 0);
    return s;
}

static char *recv_text(void *s)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    int n = zmq_msg_recv(&msg, s, 0);
    assert_true(n >= 0);
    assert_false(zmq_msg_more(&msg));
    char *text = strndup(zmq_msg_data(&msg), zmq_msg_size(&msg));
    zmq_msg_close(&msg);
    return text;
}

static json_t *ask_raw(const char *endpoint, const void *data, size_t len)
{
    void *s = req_socket(endpoint);
    assert_int_equal(zmq_send(s, data, len, 0), (int)len);
    char *text = recv_text(s);
    zmq_close(s);
    json_error_t jerr;
    json_t *reply = json_loads(text, 0, &jerr);
    if (!reply)
        print_error("reply is not JSON: %s\n", text);
    free(text);
    assert_non_null(reply);
    return reply;
}

static json_t *ask(const char *endpoint, const char *text)
{
    return ask_raw(endpoint, text, strlen(text));
}

/* Asserts the reply's canonical text and frees it. */
static void expect(json_t *reply, const char *want)
{
    char *text = json_dumps(reply, JSON_COMPACT | JSON_SORT_KEYS);
    if (strcmp(text, want) != 0)
        print_error("got  %s\nwant %s\n", text, want);
    assert_string_equal(text, want);
    free(text);
    json_decref(reply);
}

/* ---- tests ---------------------------------------------------------- */

static void test_error_replies(void **state)
{
    fixture_t *f = *state;
    const char *e = f->endpoint;
    expect(ask(e, "not json{"), "{\"error\":\"Invalid JSON request\",\"status\":\"error\"}");
    expect(ask(e, ""), "{\"error\":\"Invalid JSON request\",\"status\":\"error\"}");
    expect(ask(e, "{\"action\":\"ping\"} trailing"),
           "{\"error\":\"Invalid JSON request\",\"status\":\"error\"}");
    expect(ask(e, "{\"action\":\"\xff\xfe\"}"), "{\"error\":\"Invalid UTF-8 request\",\"status\":\"error\"}");
    expect(ask(e, "\xc0\xaf"), "{\"error\":\"Invalid UTF-8 request\",\"status\":\"error\"}");   /* overlong */
    expect(ask(e, "\xed\xa0\x80"), "{\"error\":\"Invalid UTF-8 request\",\"status\":\"error\"}"); /* surrogate */
    expect(ask(e, "[1, 2]"), "{\"error\":\"Invalid request format\",\"status\":\"error\"}");
    expect(ask(e, "5"), "{\"error\":\"Invalid request format\",\"status\":\"error\"}");
    expect(ask(e, "\"ping\""), "{\"error\":\"Invalid request format\",\"status\":\"error\"}");
    expect(ask(e, "{\"action\":\"foo\"}"), "{\"error\":\"Unknown action: foo\",\"status\":\"error\"}");
    expect(ask(e, "{}"), "{\"error\":\"Unknown action: None\",\"status\":\"error\"}");
    expect(ask(e, "{\"action\":null}"), "{\"error\":\"Unknown action: None\",\"status\":\"error\"}");
    expect(ask(e, "{\"action\":5}"), "{\"error\":\"Unknown action: 5\",\"status\":\"error\"}");
    /* Python's str() of a bool, as the BaseAgent's f-string printed it. */
    expect(ask(e, "{\"action\":true}"), "{\"error\":\"Unknown action: True\",\"status\":\"error\"}");
    expect(ask(e, "{\"action\":false}"), "{\"error\":\"Unknown action: False\",\"status\":\"error\"}");
    expect(ask(e, "{\"command\":\"NOPE\"}"), "{\"error\":\"Unknown action: NOPE\",\"status\":\"error\"}");
    expect(ask(e, "{\"action\":\"null\"}"), "{\"error\":\"Internal error\",\"status\":\"error\"}");

    size_t big = 2 << 20;
    char *frame = malloc(big);
    memset(frame, 'a', big);
    memcpy(frame, "{\"action\":\"echo\",\"x\":\"", 22);
    memcpy(frame + big - 2, "\"}", 2);
    expect(ask_raw(e, frame, big), "{\"error\":\"Request too large\",\"status\":\"error\"}");
    free(frame);

    /* Still serving after all of that. */
    expect(ask(e, "{\"action\":\"ping\"}"), "{\"dialect\":\"action\",\"status\":\"ok\"}");
}

static void test_max_request_is_settable(void **state)
{
    fixture_t *f = *state;
    char *reply = NULL;
    wire_server_set_max_request(f->server, 20);
    reply = wire_server_handle(f->server, "{\"action\":\"ping\"}", 17);
    assert_string_equal(reply, "{\"status\":\"ok\",\"dialect\":\"action\"}");
    free(reply);
    reply = wire_server_handle(f->server, "{\"action\":\"ping\",\"x\":1}", 23);
    assert_string_equal(reply, "{\"status\":\"error\",\"error\":\"Request too large\"}");
    free(reply);
}

static void test_dialect_routing(void **state)
{
    fixture_t *f = *state;
    const char *e = f->endpoint;
    expect(ask(e, "{\"action\":\"echo\",\"x\":1}"),
           "{\"dialect\":\"action\",\"name\":\"echo\",\"payload\":{\"action\":\"echo\",\"x\":1},"
           "\"status\":\"success\"}");
    /* Legacy command: the payload object is what the handler gets. */
    expect(ask(e, "{\"command\":\"GET_X\",\"payload\":{\"a\":1}}"),
           "{\"dialect\":\"command\",\"name\":\"GET_X\",\"payload\":{\"a\":1},\"status\":\"SUCCESS\"}");
    expect(ask(e, "{\"command\":\"GET_X\"}"),
           "{\"dialect\":\"command\",\"name\":\"GET_X\",\"payload\":{},\"status\":\"SUCCESS\"}");
    expect(ask(e, "{\"command\":\"GET_X\",\"payload\":[1]}"),
           "{\"dialect\":\"command\",\"name\":\"GET_X\",\"payload\":{},\"status\":\"SUCCESS\"}");
    /* Coordinator type. */
    expect(ask(e, "{\"type\":\"text\",\"data\":\"hi\"}"),
           "{\"dialect\":\"type\",\"name\":\"text\",\"payload\":{\"data\":\"hi\",\"type\":\"text\"},"
           "\"status\":\"success\"}");
    /* action wins over command and type. */
    expect(ask(e, "{\"action\":\"echo\",\"command\":\"GET_X\",\"type\":\"t\"}"),
           "{\"dialect\":\"action\",\"name\":\"echo\",\"payload\":{\"action\":\"echo\",\"command\":"
           "\"GET_X\",\"type\":\"t\"},\"status\":\"success\"}");
    /* Envelope keys around the request change nothing. */
    expect(ask(e, "{\"request_id\":\"r-1\",\"timestamp\":1.5,\"source\":\"agent\",\"sender\":\"x\","
                  "\"action\":\"ping\"}"),
           "{\"dialect\":\"action\",\"status\":\"ok\"}");
    /* A handler's own error reply passes through. */
    expect(ask(e, "{\"action\":\"fail\"}"), "{\"error\":\"it failed\",\"status\":\"error\"}");
}

static void test_type_without_route_is_unknown(void **state)
{
    (void)state;
    wire_server_t *s = wire_server_new("t2", NULL);
    char *reply = wire_server_handle(s, "{\"type\":\"x\"}", 12);
    assert_string_equal(reply, "{\"status\":\"error\",\"error\":\"Unknown action: None\"}");
    free(reply);
    wire_server_destroy(&s);
    assert_null(s);
    wire_server_destroy(&s);
}

static void test_raw_ping_frame(void **state)
{
    fixture_t *f = *state;
    expect(ask(f->endpoint, "ping"), "{\"dialect\":\"raw\",\"status\":\"ok\"}");
    expect(ask(f->endpoint, "ping\r\n"), "{\"dialect\":\"raw\",\"status\":\"ok\"}");
    assert_int_equal(atomic_load(&f->raw_pings), 2);
    expect(ask(f->endpoint, "pong"), "{\"error\":\"Invalid JSON request\",\"status\":\"error\"}");
    expect(ask(f->endpoint, "pingping"), "{\"error\":\"Invalid JSON request\",\"status\":\"error\"}");
}

static json_t *on_raw(void *ctx, wire_request_t *req)
{
    (void)ctx;
    return json_pack("{s:s, s:s%}", "dialect", wire_dialect_name(req->dialect), "raw", req->raw, req->raw_len);
}

static void test_raw_handler(void **state)
{
    (void)state;
    static const wire_route_t raw_routes[] = { { WIRE_RAW, NULL, on_raw, NULL, ROUTE_PUBLIC }, { 0 } };
    wire_server_t *s = wire_server_new("t3", NULL);
    wire_server_attach(s, raw_routes, NULL);
    char *reply = wire_server_handle(s, "hello there", 11);
    assert_string_equal(reply, "{\"dialect\":\"raw\",\"raw\":\"hello there\"}");
    free(reply);
    /* JSON still routes as JSON. */
    reply = wire_server_handle(s, "{\"action\":\"x\"}", 14);
    assert_string_equal(reply, "{\"status\":\"error\",\"error\":\"Unknown action: x\"}");
    free(reply);
    wire_server_destroy(&s);
}

static json_t *custom_unknown(void *ctx, wire_request_t *req)
{
    (void)ctx;
    return wire_error_key("message", "no such thing: %s", req->name ? req->name : "?");
}

static void test_custom_unknown_and_helpers(void **state)
{
    (void)state;
    wire_server_t *s = wire_server_new("t4", NULL);
    wire_server_on_unknown(s, custom_unknown, NULL);
    char *reply = wire_server_handle(s, "{\"action\":\"zap\"}", 16);
    assert_string_equal(reply, "{\"status\":\"error\",\"message\":\"no such thing: zap\"}");
    free(reply);
    wire_server_destroy(&s);
    expect(wire_success(), "{\"status\":\"success\"}");
    expect(wire_error("n=%d", 3), "{\"error\":\"n=3\",\"status\":\"error\"}");
}

static void test_handle_direct(void **state)
{
    fixture_t *f = *state;
    char *reply = wire_server_handle(f->server, "{\"action\":\"ping\"}", 17);
    assert_string_equal(reply, "{\"status\":\"ok\",\"dialect\":\"action\"}");
    free(reply);
    /* The length is honoured: the frame is not NUL-terminated on the wire. */
    reply = wire_server_handle(f->server, "{\"action\":\"ping\"}GARBAGE", 17);
    assert_string_equal(reply, "{\"status\":\"ok\",\"dialect\":\"action\"}");
    free(reply);
    reply = wire_server_handle(f->server, "{", 1);
    assert_string_equal(reply, "{\"status\":\"error\",\"error\":\"Invalid JSON request\"}");
    free(reply);
}

static double requests(fixture_t *f, const char *action, const char *outcome)
{
    char labels[128];
    metrics_labels(labels, sizeof labels, "service", "t", "action", action, "outcome", outcome, NULL);
    return metrics_value(f->metrics, "keel_requests_total", labels);
}

static double bad(fixture_t *f, const char *reason)
{
    char labels[128];
    metrics_labels(labels, sizeof labels, "service", "t", "reason", reason, NULL);
    return metrics_value(f->metrics, "keel_bad_requests_total", labels);
}

static void test_metrics_per_outcome(void **state)
{
    fixture_t *f = *state;
    const char *e = f->endpoint;
    for (int i = 0; i < 3; i++)
        json_decref(ask(e, "{\"action\":\"echo\"}"));
    json_decref(ask(e, "{\"action\":\"fail\"}"));
    json_decref(ask(e, "junk"));
    json_decref(ask(e, "\xff"));
    json_decref(ask(e, "[]"));
    json_decref(ask(e, "{\"action\":\"nope\"}"));
    json_decref(ask(e, "ping"));
    assert_true(requests(f, "echo", "ok") == 3);
    assert_true(requests(f, "fail", "error") == 1);
    assert_true(requests(f, "invalid", "error") == 3);
    assert_true(requests(f, "unknown", "error") == 1);
    assert_true(requests(f, "ping", "ok") == 1);
    assert_true(bad(f, "invalid_json") == 1);
    assert_true(bad(f, "invalid_utf8") == 1);
    assert_true(bad(f, "not_an_object") == 1);
    assert_true(bad(f, "unknown_action") == 1);
    assert_true(metrics_sum(f->metrics, "keel_requests_total", NULL) == 9);
    assert_true(metrics_sum(f->metrics, "keel_request_duration_seconds", "action=\"echo\"") == 3);
    size_t len;
    char *text = metrics_render(f->metrics, &len);
    assert_non_null(strstr(text, "keel_requests_total{service=\"t\",action=\"echo\",outcome=\"ok\"} 3\n"));
    free(text);
}

static void test_dealer_without_delimiter(void **state)
{
    fixture_t *f = *state;
    void *s = zsocket_new(ZMQ_DEALER, ZSOCKET_CLIENT, 0);
    int timeout = 5000;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    assert_int_equal(zmq_connect(s, f->endpoint), 0);
    zmq_send(s, "{\"action\":\"ping\"}", 17, 0);
    char *text = recv_text(s);
    assert_string_equal(text, "{\"status\":\"ok\",\"dialect\":\"action\"}");
    free(text);
    /* An empty delimiter alone has no body: no reply, and still serving. */
    zmq_send(s, "", 0, 0);
    zmq_close(s);
    expect(ask(f->endpoint, "{\"action\":\"ping\"}"), "{\"dialect\":\"action\",\"status\":\"ok\"}");
}

/* ---- workers ---------------------------------------------------------- */

#define NCLIENTS 20
#define ROUNDS 10

typedef struct {
    atomic_int seen[NCLIENTS * ROUNDS];
    atomic_int inflight, max_inflight;
    atomic_int calls;
} pool_stats_t;

static json_t *on_slow(void *ctx, wire_request_t *req)
{
    pool_stats_t *st = ctx;
    int now = atomic_fetch_add(&st->inflight, 1) + 1;
    int max = atomic_load(&st->max_inflight);
    while (now > max && !atomic_compare_exchange_weak(&st->max_inflight, &max, now))
        ;
    usleep(2000);
    int id = (int)json_integer_value(json_object_get(req->body, "id"));
    if (id >= 0 && id < NCLIENTS * ROUNDS)
        atomic_fetch_add(&st->seen[id], 1);
    atomic_fetch_add(&st->calls, 1);
    atomic_fetch_sub(&st->inflight, 1);
    return json_pack("{s:s, s:i}", "status", "success", "id", id);
}

static void test_workers_match_replies(void **state)
{
    (void)state;
    pool_stats_t *st = calloc(1, sizeof *st);
    metrics_t *m = metrics_new();
    static const wire_route_t slow_routes[] = {
        { WIRE_ACTION, "slow", on_slow, NULL, ROUTE_PUBLIC }, { 0 },
    };
    wire_server_t *s = wire_server_new("pool", m);
    wire_server_attach(s, slow_routes, st);
    wire_server_set_workers(s, 3);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", tu_free_port());
    assert_int_equal(wire_server_bind(s, endpoint), 0);
    assert_int_equal(wire_server_start(s), 0);

    void *clients[NCLIENTS];
    for (int c = 0; c < NCLIENTS; c++)
        clients[c] = req_socket(endpoint);
    for (int r = 0; r < ROUNDS; r++) {
        for (int c = 0; c < NCLIENTS; c++) {
            char req[64];
            int n = snprintf(req, sizeof req, "{\"action\":\"slow\",\"id\":%d}", r * NCLIENTS + c);
            assert_int_equal(zmq_send(clients[c], req, (size_t)n, 0), n);
        }
        for (int c = 0; c < NCLIENTS; c++) {
            char *text = recv_text(clients[c]);
            json_t *reply = json_loads(text, 0, NULL);
            free(text);
            assert_int_equal(json_integer_value(json_object_get(reply, "id")), r * NCLIENTS + c);
            json_decref(reply);
        }
    }
    for (int c = 0; c < NCLIENTS; c++)
        zmq_close(clients[c]);
    wire_server_destroy(&s);
    assert_int_equal(atomic_load(&st->calls), NCLIENTS * ROUNDS);
    for (int i = 0; i < NCLIENTS * ROUNDS; i++)
        assert_int_equal(atomic_load(&st->seen[i]), 1);
    assert_true(atomic_load(&st->max_inflight) > 1);        /* handlers really ran in parallel */
    assert_true(atomic_load(&st->max_inflight) <= 3);
    char labels[128];
    metrics_labels(labels, sizeof labels, "service", "pool", "action", "slow", "outcome", "ok", NULL);
    assert_true(metrics_value(m, "keel_requests_total", labels) == NCLIENTS * ROUNDS);
    metrics_destroy(&m);
    free(st);
}

/* An inline route is answered by the server thread while every worker is
 * busy; a frame that only mentions its name still goes to a worker, and
 * so does a raw ping unless the raw route is inline. */
typedef struct {
    atomic_int entered, release;
} gate_t;

static json_t *on_block(void *ctx, wire_request_t *req)
{
    gate_t *g = ctx;
    atomic_fetch_add(&g->entered, 1);
    double until = clock_mono() + 10;
    while (!atomic_load(&g->release) && clock_mono() < until)
        usleep(1000);
    return json_pack("{s:s, s:s}", "status", "ok", "by", req->name);
}

static json_t *on_quick(void *ctx, wire_request_t *req)
{
    (void)ctx;
    return json_pack("{s:s, s:s}", "status", "ok", "by", req->dialect == WIRE_RAW ? "raw" : req->name);
}

/* Waits, within a deadline, until n requests are held by the gate. */
static void wait_entered(gate_t *h, int n)
{
    double until = clock_mono() + 5 * tu_factor();
    while (atomic_load(&h->entered) < n && clock_mono() < until)
        usleep(1000);
    assert_int_equal(atomic_load(&h->entered), n);
}

static void test_inline_routes_skip_busy_workers(void **state)
{
    (void)state;
    gate_t *g = calloc(1, sizeof *g);
    static const wire_route_t gate_routes[] = {
        { WIRE_ACTION, "block", on_block, NULL, ROUTE_PUBLIC },
        { WIRE_ACTION, "quick", on_quick, NULL, ROUTE_PUBLIC },
        { WIRE_ACTION, "ping", on_quick, NULL, ROUTE_PUBLIC },
        { WIRE_ACTION, "other", on_block, NULL, ROUTE_PUBLIC },
        { 0 },
    };
    wire_server_t *s = wire_server_new("gate", NULL);
    wire_server_attach(s, gate_routes, g);
    wire_server_set_workers(s, 1);
    assert_int_equal(wire_server_answer_inline(s, WIRE_ACTION, "quick"), 0);
    assert_int_equal(wire_server_answer_inline(s, WIRE_ACTION, "nope"), -1);
    assert_int_equal(wire_server_answer_inline(s, WIRE_RAW, NULL), -1);     /* no raw route */
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://test-wire-gate");
    assert_int_equal(wire_server_bind(s, endpoint), 0);
    assert_int_equal(wire_server_start(s), 0);

    void *a = req_socket(endpoint), *c = req_socket(endpoint), *d = req_socket(endpoint);
    const char *block = "{\"action\":\"block\"}";
    assert_int_equal(zmq_send(a, block, strlen(block), 0), (int)strlen(block));
    wait_entered(g, 1);
    /* The one worker is held: only the server thread can answer now. */
    const char *mention = "{\"action\":\"other\",\"note\":\"quick\"}";
    assert_int_equal(zmq_send(c, mention, strlen(mention), 0), (int)strlen(mention));
    assert_int_equal(zmq_send(d, "ping", 4, 0), 4);
    expect(ask(endpoint, "{\"action\":\"quick\"}"), "{\"by\":\"quick\",\"status\":\"ok\"}");
    zmq_pollitem_t items[] = { { c, 0, ZMQ_POLLIN, 0 }, { d, 0, ZMQ_POLLIN, 0 } };
    assert_int_equal(zmq_poll(items, 2, 200), 0);       /* both wait for the worker */
    atomic_store(&g->release, 1);
    char *text = recv_text(a);
    assert_string_equal(text, "{\"status\":\"ok\",\"by\":\"block\"}");
    free(text);
    text = recv_text(c);
    assert_string_equal(text, "{\"status\":\"ok\",\"by\":\"other\"}");
    free(text);
    text = recv_text(d);
    assert_string_equal(text, "{\"status\":\"ok\",\"by\":\"raw\"}");
    free(text);
    zmq_close(a);
    zmq_close(c);
    zmq_close(d);
    wire_server_destroy(&s);
    free(g);
}

/* A worker is given a request only when it is free: quick requests are
 * answered while two slow ones hold two workers (a PUSH dealing requests
 * round the pool would put some behind a held one, to wait out its
 * hold), and workers start only as the load needs them: none before the
 * first request, three of eight for two held and the quick ones. */
static void test_free_workers_take_the_requests(void **state)
{
    (void)state;
    gate_t *h = calloc(1, sizeof *h);
    static const wire_route_t hold_routes[] = {
        { WIRE_ACTION, "hold", on_block, NULL, ROUTE_PUBLIC },
        { WIRE_ACTION, "quick", on_quick, NULL, ROUTE_PUBLIC },
        { 0 },
    };
    wire_server_t *s = wire_server_new("lazy", NULL);
    wire_server_attach(s, hold_routes, h);
    wire_server_set_workers(s, 8);
    const char *endpoint = "inproc://test-wire-lazy";
    assert_int_equal(wire_server_bind(s, endpoint), 0);
    assert_int_equal(wire_server_start(s), 0);
    assert_int_equal(tu_threads_named("lazy wire worke"), 0);

    void *a = req_socket(endpoint), *b = req_socket(endpoint);
    const char *hold = "{\"action\":\"hold\"}";
    assert_int_equal(zmq_send(a, hold, strlen(hold), 0), (int)strlen(hold));
    wait_entered(h, 1);
    assert_int_equal(zmq_send(b, hold, strlen(hold), 0), (int)strlen(hold));
    wait_entered(h, 2);
    for (int i = 0; i < 20; i++)
        expect(ask(endpoint, "{\"action\":\"quick\"}"), "{\"by\":\"quick\",\"status\":\"ok\"}");
    assert_int_equal(tu_threads_named("lazy wire worke"), 3);
    atomic_store(&h->release, 1);
    for (int i = 0; i < 2; i++) {
        char *text = recv_text(i ? b : a);
        assert_string_equal(text, "{\"status\":\"ok\",\"by\":\"hold\"}");
        free(text);
    }
    zmq_close(a);
    zmq_close(b);
    wire_server_destroy(&s);
    assert_int_equal(tu_threads_named("lazy wire worke"), 0);
    free(h);
}

/* ---- privileges --------------------------------------------------------- */

static bool is_admin(void *ctx, const char *token)
{
    (void)ctx;
    return strcmp(token, "root") == 0;
}

/* The body as its handler saw it. */
static json_t *on_body(void *ctx, wire_request_t *req)
{
    (void)ctx;
    return json_pack("{s:s, s:O}", "status", "success", "body", req->body);
}

static const wire_route_t guarded[] = {
    { WIRE_ACTION, "read", on_body, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "report", on_body, NULL, ROUTE_AGENT },
    { WIRE_ACTION, "stop", on_body, NULL, ROUTE_ADMIN },
    { WIRE_COMMAND, "SET_X", on_body, NULL, ROUTE_ADMIN },
    { WIRE_TYPE, NULL, on_body, NULL, ROUTE_ADMIN },
    { WIRE_RAW, NULL, on_body, NULL, ROUTE_ADMIN },
    { 0 },
};

static const char *status_of(json_t *reply)
{
    return json_string_value(json_object_get(reply, "status"));
}

/* Every dialect over TCP (so the peer is 127.0.0.1), with `workers`
 * handler threads: refusals in the dialect's words, the token checked,
 * then removed before the handler. */
static void check_privileges(int workers)
{
    metrics_t *m = metrics_new();
    privilege_t *p = privilege_new();
    privilege_set_admin_check(p, is_admin, NULL);
    wire_server_t *s = wire_server_new("guard", m);
    wire_server_attach(s, guarded, NULL);
    wire_server_set_privilege(s, p);
    wire_server_set_workers(s, workers);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", tu_free_port());
    assert_int_equal(wire_server_bind(s, endpoint), 0);
    assert_int_equal(wire_server_start(s), 0);

    expect(ask(endpoint, "{\"action\":\"stop\"}"),
           "{\"error\":\"Forbidden: stop needs an administrator's token\",\"status\":\"error\"}");
    expect(ask(endpoint, "{\"action\":\"stop\",\"auth_token\":\"user\"}"),
           "{\"error\":\"Forbidden: stop needs an administrator's token\",\"status\":\"error\"}");
    expect(ask(endpoint, "{\"action\":\"stop\",\"auth_token\":7}"),
           "{\"error\":\"Forbidden: stop needs an administrator's token\",\"status\":\"error\"}");
    expect(ask(endpoint, "{\"action\":\"stop\",\"auth_token\":\"root\",\"x\":1}"),
           "{\"body\":{\"action\":\"stop\",\"x\":1},\"status\":\"success\"}");
    expect(ask(endpoint, "{\"command\":\"SET_X\",\"payload\":{}}"),
           "{\"message\":\"Forbidden: SET_X needs an administrator's token\",\"status\":\"ERROR\"}");
    expect(ask(endpoint, "{\"type\":\"text\"}"),
           "{\"error\":\"Forbidden: a `type` request needs an administrator's token\",\"status\":\"error\"}");
    expect(ask(endpoint, "not json"),
           "{\"error\":\"Forbidden: a non-JSON request needs an administrator's token\",\"status\":\"error\"}");
    json_t *r = ask(endpoint, "{\"action\":\"read\"}");
    assert_string_equal(status_of(r), "success");
    json_decref(r);
    /* The agent route: the loopback is trusted by default... */
    r = ask(endpoint, "{\"action\":\"report\"}");
    assert_string_equal(status_of(r), "success");
    json_decref(r);
    /* ...and not once trusted_sources leaves it out, even through the workers. */
    config_t *config = config_new();
    char err[256];
    assert_int_equal(config_load_text(config, "trusted_sources: [10.0.0.0/8]", "test", err, sizeof err), 0);
    assert_int_equal(privilege_configure(p, config, err, sizeof err), 0);
    config_destroy(&config);
    expect(ask(endpoint, "{\"action\":\"report\"}"),
           "{\"error\":\"Forbidden: report needs a CURVE client key, a trusted source address or an "
           "administrator's token\",\"status\":\"error\"}");
    r = ask(endpoint, "{\"action\":\"report\",\"auth_token\":\"root\"}");
    assert_string_equal(status_of(r), "success");
    json_decref(r);
    wire_server_destroy(&s);
    assert_true(metrics_value(m, "keel_bad_requests_total", "service=\"guard\",reason=\"forbidden\"") == 7);
    privilege_destroy(&p);
    metrics_destroy(&m);
}

static void test_privileges_on_the_server_thread(void **state)
{
    (void)state;
    check_privileges(0);
}

static void test_privileges_through_the_workers(void **state)
{
    (void)state;
    check_privileges(2);
}

/* Without a privilege set, only public routes answer; a route a table
 * forgot to give a privilege is refused to everyone, and listed as such. */
static void test_undeclared_and_unset_fail_closed(void **state)
{
    (void)state;
    static const wire_route_t forgot[] = {
        { WIRE_ACTION, "oops", on_body, "Nobody", ROUTE_UNDECLARED },
        { WIRE_ACTION, "read", on_body, NULL, ROUTE_PUBLIC },
        { 0 },
    };
    wire_server_t *s = wire_server_new("closed", NULL);
    wire_server_attach(s, guarded, NULL);
    wire_server_attach(s, forgot, NULL);
    char *reply = wire_server_handle(s, "{\"action\":\"oops\"}", 17);
    assert_string_equal(reply, "{\"status\":\"error\",\"error\":\"Forbidden: oops declares no privilege\"}");
    free(reply);
    reply = wire_server_handle(s, "{\"action\":\"report\"}", 19);
    assert_non_null(strstr(reply, "Forbidden"));
    free(reply);
    reply = wire_server_handle(s, "{\"action\":\"read\"}", 17);
    assert_non_null(strstr(reply, "success"));
    free(reply);
    wire_server_destroy(&s);
}

/* `request_type` names a route as `action` does, after `type`; a name no
 * route has is the unknown handler's. */
static void test_request_type_dialect(void **state)
{
    (void)state;
    static const wire_route_t registry[] = {
        { WIRE_REQUEST_TYPE, "get_status", on_body, NULL, ROUTE_PUBLIC },
        { WIRE_REQUEST_TYPE, "register", on_body, NULL, ROUTE_ADMIN },
        { 0 },
    };
    wire_server_t *s = wire_server_new("rt", NULL);
    wire_server_attach(s, registry, NULL);
    char *reply = wire_server_handle(s, "{\"request_type\":\"get_status\"}", 29);
    assert_string_equal(reply, "{\"status\":\"success\",\"body\":{\"request_type\":\"get_status\"}}");
    free(reply);
    reply = wire_server_handle(s, "{\"request_type\":\"register\"}", 27);
    assert_string_equal(reply, "{\"status\":\"error\",\"error\":"
                               "\"Forbidden: request_type register needs an administrator's token\"}");
    free(reply);
    reply = wire_server_handle(s, "{\"request_type\":7}", 18);
    assert_string_equal(reply, "{\"status\":\"error\",\"error\":\"Unknown action: None\"}");
    free(reply);
    wire_server_destroy(&s);
}

static void collect_route(void *arg, const wire_route_t *route)
{
    char line[160];
    snprintf(line, sizeof line, "%s %s %s %s", wire_dialect_name(route->dialect),
             route->name ? route->name : "-", route->module ? route->module : "-",
             privilege_name(route->privilege));
    json_array_append_new(arg, json_string(line));
}

/* Every route once, with what its table declared; a later entry of the
 * same name replaces the earlier one. */
static void test_each_route_lists_the_tables(void **state)
{
    (void)state;
    static const wire_route_t first[] = {
        { WIRE_ACTION, "ping", on_body, NULL, ROUTE_PUBLIC },
        { WIRE_COMMAND, "GO", on_body, "Old", ROUTE_AGENT },
        { 0 },
    };
    static const wire_route_t second[] = {
        { WIRE_ACTION, "ping", on_body, "Old", ROUTE_PUBLIC },
        { WIRE_TYPE, NULL, on_body, "Old", ROUTE_ADMIN },
        { 0 },
    };
    wire_server_t *s = wire_server_new("list", NULL);
    wire_server_attach(s, first, NULL);
    wire_server_attach(s, second, NULL);
    json_t *lines = json_array();
    wire_server_each_route(s, collect_route, lines);
    char *text = json_dumps(lines, JSON_COMPACT);
    assert_string_equal(text, "[\"action ping Old public\",\"command GO Old agent\",\"type - Old admin\"]");
    free(text);
    json_decref(lines);
    wire_server_destroy(&s);
}

/* ---- client ------------------------------------------------------------ */

typedef struct {
    char endpoint[64];
    int delay_ms;
    wire_server_t *server;
} late_t;

static void *late_server(void *arg)
{
    late_t *late = arg;
    usleep((useconds_t)late->delay_ms * 1000);
    late->server = wire_server_new("late", NULL);
    wire_server_bind(late->server, late->endpoint);
    wire_server_start(late->server);
    return NULL;
}

static void test_client_retries_until_server_appears(void **state)
{
    (void)state;
    late_t late = { .delay_ms = 500 };
    snprintf(late.endpoint, sizeof late.endpoint, "tcp://127.0.0.1:%d", tu_free_port());
    pthread_t t;
    pthread_create(&t, NULL, late_server, &late);
    wire_client_t *c = wire_client_new(late.endpoint, 200, 10);
    json_t *req = json_pack("{s:s}", "action", "ping");
    char err[256] = "";
    double started = clock_mono();
    json_t *reply = wire_client_call(c, req, err, sizeof err);
    double took = clock_mono() - started;
    pthread_join(t, NULL);
    assert_non_null(reply);
    assert_true(took >= 0.4);
    expect(reply, "{\"error\":\"Unknown action: ping\",\"status\":\"error\"}");
    /* The same client keeps working. */
    expect(wire_client_call(c, req, err, sizeof err), "{\"error\":\"Unknown action: ping\",\"status\":\"error\"}");
    json_decref(req);
    wire_client_destroy(&c);
    assert_null(c);
    wire_client_destroy(&c);
    wire_server_destroy(&late.server);
}

typedef struct {
    void *router;
    int seen;
    const char *reply;
} dropper_t;

/* A ROUTER that ignores the first request and answers the second, as a
 * peer that lost a reply would look to the client. */
static void *dropper(void *arg)
{
    dropper_t *d = arg;
    for (int i = 0; i < 2; i++) {
        zmq_msg_t frames[3];
        int n = 0, more = 1;
        while (more && n < 3) {
            zmq_msg_init(&frames[n]);
            if (zmq_msg_recv(&frames[n], d->router, 0) < 0)
                return NULL;
            more = zmq_msg_more(&frames[n++]);
        }
        d->seen++;
        if (i == 1) {
            zmq_msg_send(&frames[0], d->router, ZMQ_SNDMORE);
            zmq_msg_send(&frames[1], d->router, ZMQ_SNDMORE);
            zmq_send(d->router, d->reply, strlen(d->reply), 0);
        }
        for (int k = 0; k < n; k++)
            zmq_msg_close(&frames[k]);
    }
    return NULL;
}

static void run_dropper(const char *reply_text, json_t **reply, char *err, size_t errlen, int *seen)
{
    dropper_t d = { zsocket_new(ZMQ_ROUTER, ZSOCKET_SERVER, 0), 0, reply_text };
    int timeout = 5000;
    zmq_setsockopt(d.router, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    assert_int_equal(zmq_bind(d.router, "tcp://127.0.0.1:*"), 0);
    char endpoint[64];
    size_t elen = sizeof endpoint;
    zmq_getsockopt(d.router, ZMQ_LAST_ENDPOINT, endpoint, &elen);
    pthread_t t;
    pthread_create(&t, NULL, dropper, &d);
    json_t *req = json_pack("{s:s}", "action", "ping");
    *reply = wire_call(endpoint, req, 300, 2, err, errlen);
    json_decref(req);
    pthread_join(t, NULL);
    zmq_close(d.router);
    *seen = d.seen;
}

static void test_client_recreates_socket_after_lost_reply(void **state)
{
    (void)state;
    json_t *reply;
    char err[256] = "";
    int seen;
    run_dropper("{\"status\":\"ok\"}", &reply, err, sizeof err, &seen);
    assert_int_equal(seen, 2);
    expect(reply, "{\"status\":\"ok\"}");
}

static void test_client_non_json_reply(void **state)
{
    (void)state;
    json_t *reply;
    char err[256] = "";
    int seen;
    run_dropper("<html>", &reply, err, sizeof err, &seen);
    assert_null(reply);
    assert_non_null(strstr(err, "is not JSON"));
}

static void test_client_gives_up(void **state)
{
    (void)state;
    char endpoint[64], err[256] = "", want[160];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", tu_free_port());
    wire_client_t *c = wire_client_new(endpoint, 100, 1);
    double started = clock_mono();
    size_t len = 99;
    char *reply = wire_client_call_raw(c, "x", 1, &len, err, sizeof err);
    double took = clock_mono() - started;
    assert_null(reply);
    assert_true(took >= 0.19 && took < 2.0);
    snprintf(want, sizeof want, "no reply from %s after 2 tries", endpoint);
    assert_string_equal(err, want);
    wire_client_destroy(&c);

    c = wire_client_new("bogus://nowhere", 100, 0);
    assert_null(wire_client_call_raw(c, "x", 1, NULL, err, sizeof err));
    assert_string_equal(err, "cannot connect to bogus://nowhere");
    wire_client_destroy(&c);
}

typedef struct {
    wire_client_t *client;
    atomic_bool calling;
    char err[256];
} pending_call_t;

static void call_once(void *arg)
{
    pending_call_t *p = arg;
    atomic_store(&p->calling, true);
    assert_null(wire_client_call_raw(p->client, "x", 1, NULL, p->err, sizeof p->err));
}

/* A ticker's call to a peer that never answers, with a 30 s timeout and
 * retries: stopping the actor ends it at once. */
static void test_client_call_is_cancelled_by_a_stop(void **state)
{
    (void)state;
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", tu_free_port());
    pending_call_t p = { .client = wire_client_new(endpoint, 30000, 3) };
    actor_t *a = actor_new("t-call", 3600, call_once, &p);
    wire_client_cancel_on(p.client, actor_stop_fd(a));
    assert_int_equal(actor_start(a), 0);
    double until = clock_mono() + 5 * tu_factor();
    while (!atomic_load(&p.calling) && clock_mono() < until)
        usleep(1000);
    assert_true(atomic_load(&p.calling));
    double started = clock_mono();
    actor_stop(a);
    assert_true(clock_mono() - started < 1.0 * tu_factor());
    char want[160];
    snprintf(want, sizeof want, "call to %s cancelled", endpoint);
    assert_string_equal(p.err, want);
    actor_destroy(&a);
    wire_client_destroy(&p.client);
}

static void test_bind_failure(void **state)
{
    (void)state;
    wire_server_t *s = wire_server_new("t5", NULL);
    assert_int_equal(wire_server_bind(s, "tcp://256.1.1.1:1"), -1);
    wire_server_destroy(&s);
}

int main(void)
{
    log_set_level(LOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_error_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_request_is_settable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dialect_routing, setup, teardown),
        cmocka_unit_test(test_type_without_route_is_unknown),
        cmocka_unit_test_setup_teardown(test_raw_ping_frame, setup, teardown),
        cmocka_unit_test(test_raw_handler),
        cmocka_unit_test(test_custom_unknown_and_helpers),
        cmocka_unit_test_setup_teardown(test_handle_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_per_outcome, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dealer_without_delimiter, setup, teardown),
        cmocka_unit_test(test_workers_match_replies),
        cmocka_unit_test(test_inline_routes_skip_busy_workers),
        cmocka_unit_test(test_free_workers_take_the_requests),
        cmocka_unit_test(test_privileges_on_the_server_thread),
        cmocka_unit_test(test_privileges_through_the_workers),
        cmocka_unit_test(test_undeclared_and_unset_fail_closed),
        cmocka_unit_test(test_each_route_lists_the_tables),
        cmocka_unit_test(test_request_type_dialect),
        cmocka_unit_test(test_client_retries_until_server_appears),
        cmocka_unit_test(test_client_recreates_socket_after_lost_reply),
        cmocka_unit_test(test_client_non_json_reply),
        cmocka_unit_test(test_client_gives_up),
        cmocka_unit_test(test_client_call_is_cancelled_by_a_stop),
        cmocka_unit_test(test_bind_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
