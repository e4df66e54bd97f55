/*  test_gather: many calls, one deadline, against real peers on loopback:
 *  a ZMQ REP that echoes, a ZMQ ROUTER that never answers, and a small
 *  HTTP server (one thread, one connection at a time) that answers by path
 *  with canned replies, some written a byte or two at a time, some cut
 *  short, some too long or not HTTP, and holds /slow without a reply.
 *  Deadlines are scaled by KEEL_TIME_FACTOR; the bound checked is that the
 *  run ends near its deadline however many calls never answer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
#include "testutil.h"
#include "zsocket.h"

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

/* Sends `text` `step` bytes at a time, each its own segment and a moment
 * apart, so that the client reads the reply in as many pieces. */
static void send_in_pieces(int fd, const char *text, size_t len, size_t step)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (size_t at = 0; at < len; at += step) {
        send(fd, text + at, len - at < step ? len - at : step, MSG_NOSIGNAL);
        usleep(300);
    }
}

static uint64_t fnv1a(uint64_t hash, const char *data, size_t len)
{
    for (size_t k = 0; k < len; k++)
        hash = (hash ^ (unsigned char)data[k]) * 0x100000001b3ull;
    return hash;
}

/* POST /sum: reads the body by its Content-Length, however long, and
 * answers its length and hash, or 400 when the request was not JSON. */
static void answer_sum(int fd, const char *head, const char *body, size_t have)
{
    const char *cl = strcasestr(head, "\r\nContent-Length: ");
    size_t want = cl ? strtoul(cl + 18, NULL, 10) : 0, got = have;
    uint64_t hash = fnv1a(0xcbf29ce484222325ull, body, have);
    char buf[65536];
    while (got < want) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        hash = fnv1a(hash, buf, (size_t)n);
        got += (size_t)n;
    }
    char reply[256];
    int n = strcasestr(head, "\r\nContent-Type: application/json\r\n") && cl
        ? snprintf(reply, sizeof reply, "HTTP/1.1 200 OK\r\nContent-Length: 37\r\n\r\n%020zu %016llx",
                   got, (unsigned long long)hash)
        : snprintf(reply, sizeof reply, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    send(fd, reply, (size_t)n, MSG_NOSIGNAL);
}

/* A close-delimited body one byte longer than a reply may be. */
static void answer_too_long(int fd)
{
    const char *head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
    send(fd, head, strlen(head), MSG_NOSIGNAL);
    char *block = malloc(1 << 20);
    memset(block, 'x', 1 << 20);
    size_t left = GATHER_MAX_REPLY + 1;
    while (left > 0) {
        ssize_t n = send(fd, block, left < (1u << 20) ? left : (1u << 20), MSG_NOSIGNAL);
        if (n <= 0)
            break;
        left -= (size_t)n;
    }
    free(block);
}

/* Replies sent as they are, by path. */
static const struct {
    const char *path;
    const char *reply;
    size_t step;            /* bytes a write; 0: all at once */
} canned[] = {
    { "/ok", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello", 0 },
    { "/chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                  "Connection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 0 },
    { "/pieces", "HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n4;note=first\r\nWiki\r\n5\r\npedia\r\n"
                 "E\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: yes\r\n\r\n", 2 },
    { "/dribble", "HTTP/1.1 200 OK\r\nX-Padding: some header\r\nCONTENT-LENGTH: 8\r\n\r\ndribbled", 1 },
    { "/close", "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close", 0 },
    { "/continue", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal", 0 },
    { "/short", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", 0 },
    { "/short-chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 0 },
    { "/bad-chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 0 },
    { "/declared-too-long", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", 0 },
    { "/garbled", "HTTP/1.1 two hundred OK\r\nContent-Length: 2\r\n\r\nok", 0 },
    { "/not-http", "SSH-2.0-OpenSSH_9.2\r\n\r\n", 0 },
};

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
    if (!strncmp(req, "POST /sum ", 10)) {
        end[2] = '\0';
        answer_sum(fd, req, end + 4, got - (size_t)(end + 4 - req));
        close(fd);
        return;
    }
    if (!strncmp(req, "GET /too-long ", 14)) {
        answer_too_long(fd);
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
    for (size_t k = 0; k < sizeof canned / sizeof canned[0]; k++) {
        size_t len = strlen(canned[k].path);
        if (!strncmp(req, "GET ", 4) && !strncmp(req + 4, canned[k].path, len) && req[4 + len] == ' ') {
            size_t reply_len = strlen(canned[k].reply);
            send_in_pieces(fd, canned[k].reply, reply_len, canned[k].step ? canned[k].step : reply_len);
            close(fd);
            return;
        }
    }
    char reply[4400];
    int n;
    if (!strncmp(req, "GET /slow ", 10) && p->nheld < 64) {
        p->held[p->nheld++] = fd;
        return;
    } else if (!strncmp(req, "GET /head", 9)) {
        n = snprintf(reply, sizeof reply, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                     (size_t)(end + 4 - req), req);
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
    assert_int_equal(listen(p->http_fd, 512), 0);
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
    assert_int_equal(gather_run(calls, N, (int)(5000 * tu_factor())), N);
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
    assert_int_equal(gather_run(calls, 4, (int)(5000 * tu_factor())), 4);
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
    int deadline_ms = (int)(400 * tu_factor());
    double started = clock_mono();
    assert_int_equal(gather_run(calls, 4, deadline_ms), 2);
    double took = clock_mono() - started;
    assert_true(took >= deadline_ms / 1000.0 - 0.01);
    assert_true(took < deadline_ms / 1000.0 + 0.5 * tu_factor());
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
    assert_int_equal(gather_run(calls, 2, (int)(30000 * tu_factor())), 1);
    /* The run ends when its last pending call does, not at its deadline. */
    assert_true(clock_mono() - started < 5.0 * tu_factor());
    assert_int_equal(calls[0].state, GATHER_TIMEOUT);
    assert_true(calls[0].latency_s >= 0.049);
    gather_clear(calls, 2);
}

/* GATHER_IN_FLIGHT silent calls hold every slot for their own limit: the
 * calls after them are sent only as those end, and their own limit counts
 * from then. */
static void test_at_most_gather_in_flight_at_once(void **state)
{
    peers_t *p = *state;
    enum { N = 2 * GATHER_IN_FLIGHT + 1 };
    static gather_call_t calls[N];
    int limit_ms = (int)(200 * tu_factor());
    for (int i = 0; i < N - 1; i++)
        calls[i] = (gather_call_t){ .url = p->silent_url, .body = "{}", .body_len = 2, .timeout_ms = limit_ms };
    calls[N - 1] = (gather_call_t){ .url = p->echo_url, .body = "z", .body_len = 1 };
    double started = clock_mono();
    size_t ok = gather_run(calls, N, (int)(30000 * tu_factor()));
    assert_int_equal(ok, 1);
    double took = clock_mono() - started;
    /* two rounds of silent calls, one after the other, then the echo */
    assert_true(took >= 2 * limit_ms / 1000.0 - 0.01);
    assert_int_equal(calls[N - 1].state, GATHER_OK);
    assert_string_equal(calls[N - 1].reply, "echo:z");
    assert_true(calls[N - 1].latency_s < took - 2 * limit_ms / 1000.0 + 0.01);
    for (int i = 0; i < N - 1; i++)
        assert_int_equal(calls[i].state, GATHER_TIMEOUT);
    gather_clear(calls, N);
}

/* A call still waiting for a slot at the run's deadline was never sent:
 * GATHER_UNSENT, which says nothing of its peer. */
static void test_a_call_unsent_at_the_deadline_is_unsent(void **state)
{
    peers_t *p = *state;
    enum { N = GATHER_IN_FLIGHT + 1 };
    static gather_call_t calls[N];
    for (int i = 0; i < N - 1; i++)
        calls[i] = (gather_call_t){ .url = p->silent_url, .body = "{}", .body_len = 2 };
    calls[N - 1] = (gather_call_t){ .url = p->echo_url, .body = "w", .body_len = 1 };
    assert_int_equal(gather_run(calls, N, (int)(150 * tu_factor())), 0);
    assert_int_equal(calls[N - 1].state, GATHER_UNSENT);
    assert_string_equal(calls[N - 1].error, "Not sent: the run's time ran out first");
    assert_true(calls[N - 1].latency_s == 0);
    assert_string_equal(calls[0].error, "Request timed out");
    gather_clear(calls, N);
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
    assert_int_equal(gather_run(calls, 4, (int)(2000 * tu_factor())), 0);
    assert_int_equal(calls[0].state, GATHER_ERROR);
    assert_non_null(strstr(calls[0].error, "onnection refused"));
    assert_true(calls[0].latency_s < 1.0 * tu_factor());
    assert_int_equal(calls[1].state, GATHER_ERROR);
    assert_string_equal(calls[1].error, "unsupported URL scheme: file");
    assert_int_equal(calls[2].state, GATHER_ERROR);
    assert_int_equal(calls[3].state, GATHER_TIMEOUT);
    assert_true(clock_mono() - started < 2.5 * tu_factor());
    gather_clear(calls, 4);
}

static void url_of(const peers_t *p, const char *path, char *url, size_t len)
{
    snprintf(url, len, "%s%s", p->http_base, path);
}

/* The three framings of a body, a reply dribbled a byte at a time, an
 * interim 100 Continue, and a status that is not 200: all answers. */
static void test_http_framings(void **state)
{
    peers_t *p = *state;
    static const struct {
        const char *path, *body;
        long status;
    } want[] = {
        { "/ok", "hello", 200 },
        { "/pieces", "Wikipedia in\r\n\r\nchunks.", 200 },
        { "/close", "until the close", 200 },
        { "/dribble", "dribbled", 200 },
        { "/continue", "final", 200 },
        { "/missing", "", 404 },
    };
    enum { N = sizeof want / sizeof want[0] };
    char urls[N][96];
    gather_call_t calls[N];
    memset(calls, 0, sizeof calls);
    for (int i = 0; i < N; i++) {
        url_of(p, want[i].path, urls[i], sizeof urls[i]);
        calls[i].url = urls[i];
    }
    assert_int_equal(gather_run(calls, N, (int)(5000 * tu_factor())), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(calls[i].state, GATHER_OK);
        assert_int_equal(calls[i].http_status, want[i].status);
        assert_string_equal(calls[i].reply, want[i].body);
        assert_int_equal(calls[i].reply_len, strlen(want[i].body));
        assert_true(calls[i].latency_s > 0);
    }
    gather_clear(calls, N);
}

/* The request as it goes: its target without the fragment, a Host header
 * with the port, and nothing kept open. */
static void test_the_request_head(void **state)
{
    peers_t *p = *state;
    char url[128], host[96];
    url_of(p, "/head?a=1&b=two#fragment", url, sizeof url);
    snprintf(host, sizeof host, "\r\nHost: %s\r\n", p->http_base + 7);
    gather_call_t call = { .url = url };
    assert_int_equal(gather_run(&call, 1, (int)(5000 * tu_factor())), 1);
    assert_true(!strncmp(call.reply, "GET /head?a=1&b=two HTTP/1.1\r\n", 30));
    assert_non_null(strstr(call.reply, host));
    assert_non_null(strstr(call.reply, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(call.reply, "\r\nUser-Agent: keel\r\n"));
    assert_non_null(strstr(call.reply, "\r\nAccept: */*\r\n"));
    assert_null(strstr(call.reply, "Content-Length"));
    gather_clear(&call, 1);
}

/* A body far larger than a socket buffer, written in many pieces, arrives
 * whole with its length and type (the server hashes what it read). */
static void test_a_long_post_arrives_whole(void **state)
{
    peers_t *p = *state;
    size_t len = 4u << 20;
    char *body = malloc(len), url[96], want[64];
    for (size_t k = 0; k < len; k++)
        body[k] = (char)('a' + k % 26);
    snprintf(want, sizeof want, "%020zu %016llx", len,
             (unsigned long long)fnv1a(0xcbf29ce484222325ull, body, len));
    url_of(p, "/sum", url, sizeof url);
    gather_call_t call = { .url = url, .body = body, .body_len = len };
    assert_int_equal(gather_run(&call, 1, (int)(10000 * tu_factor())), 1);
    assert_int_equal(call.http_status, 200);
    assert_string_equal(call.reply, want);
    gather_clear(&call, 1);
    free(body);
}

/* A reply cut short, too long, or not HTTP is an error, never a
 * truncated answer. */
static void test_broken_replies_fail(void **state)
{
    peers_t *p = *state;
    static const struct {
        const char *path, *error;
    } want[] = {
        { "/short", "connection closed 5 bytes before the end of the body" },
        { "/short-chunk", "connection closed inside a chunked body" },
        { "/bad-chunk", "malformed chunked body" },
        { "/too-long", "reply larger than 16777216 bytes" },
        { "/declared-too-long", "reply larger than 16777216 bytes" },
        { "/garbled", "malformed status line" },
        { "/not-http", "malformed status line" },
    };
    enum { N = sizeof want / sizeof want[0] };
    char urls[N][96];
    gather_call_t calls[N];
    memset(calls, 0, sizeof calls);
    for (int i = 0; i < N; i++) {
        url_of(p, want[i].path, urls[i], sizeof urls[i]);
        calls[i].url = urls[i];
    }
    assert_int_equal(gather_run(calls, N, (int)(10000 * tu_factor())), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(calls[i].state, GATHER_ERROR);
        assert_non_null(strstr(calls[i].error, want[i].error));
        assert_null(calls[i].reply);
    }
    gather_clear(calls, N);
}

/* A server that accepts and never answers costs its call its own limit;
 * the others of the run answer meanwhile, and the run ends with it. */
static void test_a_silent_server_times_out_alone(void **state)
{
    peers_t *p = *state;
    char slow[96], ok[96], chunked[96];
    url_of(p, "/slow", slow, sizeof slow);
    url_of(p, "/ok", ok, sizeof ok);
    url_of(p, "/chunked", chunked, sizeof chunked);
    int limit_ms = (int)(200 * tu_factor());
    gather_call_t calls[] = {
        { .url = slow, .timeout_ms = limit_ms }, { .url = ok },
        { .url = p->echo_url, .body = "w", .body_len = 1 }, { .url = chunked },
    };
    double started = clock_mono();
    assert_int_equal(gather_run(calls, 4, (int)(30000 * tu_factor())), 3);
    assert_true(clock_mono() - started < 5.0 * tu_factor());
    assert_int_equal(calls[0].state, GATHER_TIMEOUT);
    assert_string_equal(calls[0].error, "Request timed out");
    assert_true(calls[0].latency_s >= limit_ms / 1000.0 - 0.001);
    for (int i = 1; i < 4; i++)
        assert_true(calls[i].latency_s < calls[0].latency_s);
    assert_string_equal(calls[3].reply, "abcde");
    gather_clear(calls, 4);
}

/* A name is resolved without holding up the loop; only http:// is spoken;
 * an address that cannot be read is refused before anything is sent. */
static void test_names_schemes_and_malformed_urls(void **state)
{
    peers_t *p = *state;
    char by_name[96], https[96];
    snprintf(by_name, sizeof by_name, "http://localhost:%s/ok", strrchr(p->http_base, ':') + 1);
    snprintf(https, sizeof https, "https://%s/ok", p->http_base + 7);
    gather_call_t calls[] = {
        { .url = by_name },
        { .url = https },
        { .url = "ftp://127.0.0.1/file" },
        { .url = "http://[::1]:1/health" },
        { .url = "http://127.0.0.1:99999/" },
        { .url = "http://[::1/health" },
        { .url = "http:///health" },
        { .url = "http://127.0.0.1:80/a b" },
        { .url = "127.0.0.1:80/health" },
        { .url = "http://127.0.0.1/health", .timeout_ms = (int)(300 * tu_factor()) },
    };
    enum { N = sizeof calls / sizeof calls[0] };
    assert_true(gather_run(calls, N, (int)(5000 * tu_factor())) >= 1);
    assert_int_equal(calls[0].state, GATHER_OK);
    assert_string_equal(calls[0].reply, "hello");
    assert_string_equal(calls[1].error, "unsupported URL scheme: https");
    assert_string_equal(calls[2].error, "unsupported URL scheme: ftp");
    assert_non_null(strstr(calls[3].error, "cannot connect to ::1 port 1"));
    for (int i = 4; i < 9; i++) {
        assert_int_equal(calls[i].state, GATHER_ERROR);
        assert_non_null(strstr(calls[i].error, "malformed URL"));
    }
    /* port 80 when none is named: refused, unless this machine serves it */
    assert_true(calls[9].state != GATHER_ERROR || strstr(calls[9].error, "127.0.0.1 port 80"));
    gather_clear(calls, N);
}

/* Calls that end while their name is still being looked up (a run with
 * no time at all) leave the lookup to run out, and the next lookup frees
 * it: nothing is written after it is freed and nothing leaks.  However
 * many calls ask for a name, it is looked up once for them all. */
static void test_lookups_abandoned_midway(void **state)
{
    peers_t *p = *state;
    enum { N = 100 };
    gather_call_t calls[N];
    memset(calls, 0, sizeof calls);
    for (int i = 0; i < N; i++)
        calls[i].url = "http://localhost:1/health";
    assert_int_equal(gather_run(calls, N, 0), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(calls[i].state, GATHER_TIMEOUT);
    char by_name[96];
    snprintf(by_name, sizeof by_name, "http://localhost:%s/ok", strrchr(p->http_base, ':') + 1);
    for (int i = 0; i < N; i++)
        calls[i] = (gather_call_t){ .url = i % 2 ? by_name : "http://localhost:1/health" };
    assert_int_equal(gather_run(calls, N, (int)(10000 * tu_factor())), N / 2);
    for (int i = 0; i < N; i++)
        assert_string_equal(i % 2 ? calls[i].reply : calls[i].error, i % 2 ? "hello"
                            : "cannot connect to localhost port 1: Connection refused");
    gather_clear(calls, N);
}

static void test_many_http_calls_all_answer(void **state)
{
    peers_t *p = *state;
    enum { N = 200 };
    char ok[96];
    url_of(p, "/ok", ok, sizeof ok);
    gather_call_t calls[N];
    memset(calls, 0, sizeof calls);
    for (int i = 0; i < N; i++)
        calls[i].url = ok;
    assert_int_equal(gather_run(calls, N, (int)(10000 * tu_factor())), N);
    for (int i = 0; i < N; i++)
        assert_string_equal(calls[i].reply, "hello");
    gather_clear(calls, N);
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
    assert_int_equal(gather_run(calls, 2, (int)(5000 * tu_factor())), 2);
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
    assert_int_equal(gather_run_until(calls, 3, (int)(30000 * tu_factor()), fd), 1);
    assert_true(clock_mono() - started < 5.0 * tu_factor());
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
        cmocka_unit_test(test_at_most_gather_in_flight_at_once),
        cmocka_unit_test(test_a_call_unsent_at_the_deadline_is_unsent),
        cmocka_unit_test(test_unreachable_and_bad_addresses_fail_fast),
        cmocka_unit_test(test_http_framings),
        cmocka_unit_test(test_the_request_head),
        cmocka_unit_test(test_a_long_post_arrives_whole),
        cmocka_unit_test(test_broken_replies_fail),
        cmocka_unit_test(test_a_silent_server_times_out_alone),
        cmocka_unit_test(test_names_schemes_and_malformed_urls),
        cmocka_unit_test(test_lookups_abandoned_midway),
        cmocka_unit_test(test_many_http_calls_all_answer),
        cmocka_unit_test(test_json_requests_and_replies),
        cmocka_unit_test(test_a_readable_cancel_fd_ends_the_run),
        cmocka_unit_test(test_nothing_to_do),
    };
    return cmocka_run_group_tests(tests, peers_up, peers_down);
}
