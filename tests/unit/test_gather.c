/*  test_gather: many calls, one deadline, against real peers on loopback:
 *  a ZMQ REP that echoes, a ZMQ ROUTER that never answers, and a small
 *  HTTP server (one thread, one connection at a time) that answers by path
 *  and holds /slow without a reply.  Deadlines are scaled by
 *  KEEL_TIME_FACTOR; the bound checked is that the run ends near its
 *  deadline however many calls never answer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "clock.h"
#include "gather.h"
#include "zsocket.h"

static double factor(void)
{
    const char *f = getenv("KEEL_TIME_FACTOR");
    return f && atof(f) > 0 ? atof(f) : 1.0;
}

/* ---- peers ------------------------------------------------------------- */

typedef struct {
    void *echo, *silent;
    int http_fd;
    char echo_url[64], silent_url[64], http_base[64];
    atomic_bool stop;
    pthread_t zmq_thread, http_thread;
    int held[64];           /* /slow connections, closed at the end */
    int nheld;
} peers_t;

static void *serve_echo(void *arg)
{
    peers_t *p = arg;
    while (!atomic_load(&p->stop)) {
        zmq_pollitem_t item = { p->echo, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&item, 1, 20) <= 0)
            continue;
        char buf[256] = "echo:";
        int n = zmq_recv(p->echo, buf + 5, sizeof buf - 6, 0);
        if (n >= 0)
            zmq_send(p->echo, buf, (size_t)n + 5, 0);
    }
    return NULL;
}

static void answer_http(peers_t *p, int fd)
{
    char req[4096];
    size_t got = 0;
    char *end = NULL;
    while (!end && got < sizeof req - 1) {
        ssize_t n = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        req[got] = '\0';
        end = strstr(req, "\r\n\r\n");
    }
    if (!end) {
        close(fd);
        return;
    }
    const char *cl = strcasestr(req, "Content-Length:");
    size_t body_len = cl ? strtoul(cl + 15, NULL, 10) : 0;
    while (got - (size_t)(end + 4 - req) < body_len && got < sizeof req - 1) {
        ssize_t n = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        req[got] = '\0';
    }
    char reply[4400];
    int n;
    if (!strncmp(req, "GET /slow ", 10) && p->nheld < 64) {
        p->held[p->nheld++] = fd;
        return;
    } else if (!strncmp(req, "GET /ok ", 8)) {
        n = snprintf(reply, sizeof reply, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    } else if (!strncmp(req, "GET /chunked ", 13)) {
        n = snprintf(reply, sizeof reply, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                     "Connection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    } else if (!strncmp(req, "POST /echo ", 11)) {
        n = snprintf(reply, sizeof reply, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     body_len, end + 4);
    } else {
        n = snprintf(reply, sizeof reply, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    send(fd, reply, (size_t)n, MSG_NOSIGNAL);
    close(fd);
}

static void *serve_http(void *arg)
{
    peers_t *p = arg;
    while (!atomic_load(&p->stop)) {
        struct pollfd pfd = { p->http_fd, POLLIN, 0 };
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        int fd = accept(p->http_fd, NULL, NULL);
        if (fd >= 0)
            answer_http(p, fd);
    }
    return NULL;
}

static void bind_zmq(void *sock, char *url, size_t len)
{
    assert_int_equal(zmq_bind(sock, "tcp://127.0.0.1:*"), 0);
    size_t n = len;
    zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, url, &n);
}

static int peers_up(void **state)
{
    peers_t *p = calloc(1, sizeof *p);
    p->echo = zsocket_new(ZMQ_REP, ZSOCKET_SERVER, 0);
    p->silent = zsocket_new(ZMQ_ROUTER, ZSOCKET_SERVER, 0);
    bind_zmq(p->echo, p->echo_url, sizeof p->echo_url);
    bind_zmq(p->silent, p->silent_url, sizeof p->silent_url);
    p->http_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof addr;
    assert_int_equal(bind(p->http_fd, (struct sockaddr *)&addr, alen), 0);
    assert_int_equal(listen(p->http_fd, 128), 0);
    getsockname(p->http_fd, (struct sockaddr *)&addr, &alen);
    snprintf(p->http_base, sizeof p->http_base, "http://127.0.0.1:%d", ntohs(addr.sin_port));
    pthread_create(&p->zmq_thread, NULL, serve_echo, p);
    pthread_create(&p->http_thread, NULL, serve_http, p);
    *state = p;
    return 0;
}

static int peers_down(void **state)
{
    peers_t *p = *state;
    atomic_store(&p->stop, true);
    pthread_join(p->zmq_thread, NULL);
    pthread_join(p->http_thread, NULL);
    for (int i = 0; i < p->nheld; i++)
        close(p->held[i]);
    zmq_close(p->echo);
    zmq_close(p->silent);
    close(p->http_fd);
    free(p);
    return 0;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_many_zmq_calls_all_answer(void **state)
{
    peers_t *p = *state;
    enum { N = 200 };
    gather_call_t calls[N];
    char bodies[N][16];
    memset(calls, 0, sizeof calls);
    for (int i = 0; i < N; i++) {
        snprintf(bodies[i], sizeof bodies[i], "req%d", i);
        calls[i] = (gather_call_t){ .url = p->echo_url, .body = bodies[i], .body_len = strlen(bodies[i]) };
    }
    assert_int_equal(gather_run(calls, N, (int)(5000 * factor())), N);
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof want, "echo:req%d", i);
        assert_int_equal(calls[i].state, GATHER_OK);
        assert_string_equal(calls[i].reply, want);
        assert_int_equal(calls[i].reply_len, strlen(want));
    }
    gather_clear(calls, N);
    assert_null(calls[0].reply);
}

static void test_http_bodies_status_and_post(void **state)
{
    peers_t *p = *state;
    char ok[96], chunked[96], echo[96], missing[96];
    snprintf(ok, sizeof ok, "%s/ok", p->http_base);
    snprintf(chunked, sizeof chunked, "%s/chunked", p->http_base);
    snprintf(echo, sizeof echo, "%s/echo", p->http_base);
    snprintf(missing, sizeof missing, "%s/missing", p->http_base);
    gather_call_t calls[] = {
        { .url = ok }, { .url = chunked }, { .url = echo, .body = "{\"a\":1}", .body_len = 7 },
        { .url = missing },
    };
    assert_int_equal(gather_run(calls, 4, (int)(5000 * factor())), 4);
    assert_string_equal(calls[0].reply, "hello");
    assert_int_equal(calls[0].http_status, 200);
    assert_string_equal(calls[1].reply, "abcde");
    assert_string_equal(calls[2].reply, "{\"a\":1}");
    assert_int_equal(calls[3].http_status, 404);      /* answered: OK, with its status */
    assert_int_equal(calls[3].state, GATHER_OK);
    gather_clear(calls, 4);
}

static void test_silent_peers_end_at_the_deadline(void **state)
{
    peers_t *p = *state;
    char ok[96], slow[96];
    snprintf(ok, sizeof ok, "%s/ok", p->http_base);
    snprintf(slow, sizeof slow, "%s/slow", p->http_base);
    gather_call_t calls[] = {
        { .url = p->silent_url, .body = "{}", .body_len = 2 },
        { .url = slow },
        { .url = p->echo_url, .body = "x", .body_len = 1 },
        { .url = ok },
    };
    int deadline_ms = (int)(400 * factor());
    double started = clock_mono();
    assert_int_equal(gather_run(calls, 4, deadline_ms), 2);
    double took = clock_mono() - started;
    assert_true(took >= deadline_ms / 1000.0 - 0.01);
    assert_true(took < deadline_ms / 1000.0 + 0.5 * factor());
    assert_int_equal(calls[0].state, GATHER_TIMEOUT);
    assert_int_equal(calls[1].state, GATHER_TIMEOUT);
    assert_non_null(strstr(calls[1].error, "imed out"));
    assert_int_equal(calls[2].state, GATHER_OK);
    assert_int_equal(calls[3].state, GATHER_OK);
    assert_true(calls[2].latency_s < took);
    gather_clear(calls, 4);
}

static void test_a_call_limit_shorter_than_the_run(void **state)
{
    peers_t *p = *state;
    gather_call_t calls[] = {
        { .url = p->silent_url, .body = "{}", .body_len = 2, .timeout_ms = 50 },
        { .url = p->echo_url, .body = "y", .body_len = 1 },
    };
    double started = clock_mono();
    assert_int_equal(gather_run(calls, 2, (int)(30000 * factor())), 1);
    /* The run ends when its last pending call does, not at its deadline. */
    assert_true(clock_mono() - started < 5.0 * factor());
    assert_int_equal(calls[0].state, GATHER_TIMEOUT);
    assert_true(calls[0].latency_s >= 0.049);
    gather_clear(calls, 2);
}

static void test_unreachable_and_bad_addresses_fail_fast(void **state)
{
    (void)state;
    gather_call_t calls[] = {
        { .url = "http://127.0.0.1:1/health" },         /* nothing listens: refused */
        { .url = "file:///etc/passwd" },                /* never another scheme */
        { .url = NULL },
        /* ZMQ keeps reconnecting to a closed port: the call's own limit ends it */
        { .url = "tcp://127.0.0.1:1", .body = "{}", .body_len = 2, .timeout_ms = 100 },
    };
    double started = clock_mono();
    assert_int_equal(gather_run(calls, 4, (int)(2000 * factor())), 0);
    assert_int_equal(calls[0].state, GATHER_ERROR);
    assert_non_null(strstr(calls[0].error, "HTTP error"));
    assert_int_equal(calls[1].state, GATHER_ERROR);
    assert_int_equal(calls[2].state, GATHER_ERROR);
    assert_int_equal(calls[3].state, GATHER_TIMEOUT);
    assert_true(clock_mono() - started < 2.5 * factor());
    gather_clear(calls, 4);
}

/* A request given as JSON goes as Keel writes it, on ZMQ and as an HTTP
 * POST body alike; a reply is read back as JSON only when it is JSON. */
static void test_json_requests_and_replies(void **state)
{
    peers_t *p = *state;
    char echo[96];
    snprintf(echo, sizeof echo, "%s/echo", p->http_base);
    json_t *request = json_pack("{s:s, s:i}", "action", "ping", "n", 1);
    gather_call_t calls[] = { { .url = p->echo_url, .request = request }, { .url = echo, .request = request } };
    assert_int_equal(gather_run(calls, 2, (int)(5000 * factor())), 2);
    assert_string_equal(calls[0].reply, "echo:{\"action\":\"ping\",\"n\":1}");
    assert_null(gather_reply_json(&calls[0]));
    json_t *back = gather_reply_json(&calls[1]);
    assert_true(json_equal(back, request));
    json_decref(back);
    gather_clear(calls, 2);
    assert_null(gather_reply_json(&(gather_call_t){ .state = GATHER_TIMEOUT }));
    json_decref(request);
}

static void *cancel_soon(void *arg)
{
    int *fd = arg;
    usleep(100 * 1000);
    uint64_t one = 1;
    assert_int_equal(write(*fd, &one, sizeof one), sizeof one);
    return NULL;
}

/* A run that a stop must not wait out: once the cancel descriptor turns
 * readable the run ends, what answered kept, what did not cancelled. */
static void test_a_readable_cancel_fd_ends_the_run(void **state)
{
    peers_t *p = *state;
    char slow[96];
    snprintf(slow, sizeof slow, "%s/slow", p->http_base);
    gather_call_t calls[] = {
        { .url = p->echo_url, .body = "z", .body_len = 1 },
        { .url = p->silent_url, .body = "{}", .body_len = 2 },
        { .url = slow },
    };
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_t canceller;
    pthread_create(&canceller, NULL, cancel_soon, &fd);
    double started = clock_mono();
    assert_int_equal(gather_run_until(calls, 3, (int)(30000 * factor()), fd), 1);
    assert_true(clock_mono() - started < 5.0 * factor());
    pthread_join(canceller, NULL);
    assert_int_equal(calls[0].state, GATHER_OK);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(calls[i].state, GATHER_ERROR);
        assert_string_equal(calls[i].error, "Request cancelled");
    }
    gather_clear(calls, 3);
    close(fd);
}

static void test_nothing_to_do(void **state)
{
    (void)state;
    assert_int_equal(gather_run(NULL, 0, 1000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_zmq_calls_all_answer),
        cmocka_unit_test(test_http_bodies_status_and_post),
        cmocka_unit_test(test_silent_peers_end_at_the_deadline),
        cmocka_unit_test(test_a_call_limit_shorter_than_the_run),
        cmocka_unit_test(test_unreachable_and_bad_addresses_fail_fast),
        cmocka_unit_test(test_json_requests_and_replies),
        cmocka_unit_test(test_a_readable_cancel_fd_ends_the_run),
        cmocka_unit_test(test_nothing_to_do),
    };
    return cmocka_run_group_tests(tests, peers_up, peers_down);
}
