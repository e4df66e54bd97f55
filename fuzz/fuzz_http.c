/*  fuzz_http: HTTP requests as httpd reads them.  The first byte steers,
 *  the rest is what a client sent on one connection.
 *
 *  Every input goes through httpparse.c as httpd uses it: the head's end
 *  is looked for in pieces (the first byte's high bits choose their size,
 *  so scans that resume where the last one stopped are fuzzed too) and
 *  must be where one look at the whole finds it, or the target aborts;
 *  the head is parsed, its query arguments read, and what follows it
 *  decoded as a chunked body in pieces of the same size.
 *
 *  One input in eight (the first byte's low three bits 0) is also sent to
 *  a real server on the loopback, started once, with routes of every kind
 *  (a body echoed, a prefix, a token needed, a stream): after the bytes
 *  the client shuts its side, and the server must close the connection
 *  within seconds whatever it was sent, or the target aborts (a hang);
 *  AddressSanitizer watches the server's threads meanwhile. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "httpd.h"
#include "httpparse.h"
#include "log.h"

#define CLOSE_WITHIN_S 5

static httpd_t *server;
static int port;

static void on_echo(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)ctx;
    const char *q = http_query(req, "q");
    http_reply_json(reply, 200, json_pack("{s:s, s:s, s:s%, s:s?}", "method", req->method, "path",
                                          req->path, "body", req->body, req->body_len, "q", q));
}

static long stream_fill(void *arg, char *buf, size_t max)
{
    int *left = arg;
    if ((*left)-- <= 0)
        return -1;
    return snprintf(buf, max, "data: %d\n\n", *left);
}

static void on_stream(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)ctx;
    (void)req;
    int *left = malloc(sizeof *left);
    *left = 3;
    reply->status = 200;
    reply->content_type = "text/event-stream";
    reply->stream = stream_fill;
    reply->stream_arg = left;
    reply->stream_free = free;
}

static const http_route_t routes[] = {
    { "GET", "/echo", on_echo, ROUTE_PUBLIC, 0 },
    { "POST", "/echo", on_echo, ROUTE_PUBLIC, 4096 },
    { "GET", "/items/*", on_echo, ROUTE_PUBLIC, 0 },
    { "POST", "/secret", on_echo, ROUTE_ADMIN, 0 },
    { "GET", "/stream", on_stream, ROUTE_PUBLIC, 0 },
    { 0 },
};

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof addr;
    int found = fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0
                && getsockname(fd, (struct sockaddr *)&addr, &len) == 0 ? ntohs(addr.sin_port) : -1;
    if (fd >= 0)
        close(fd);
    return found;
}

static void start_server(void)
{
    log_set_level(LOG_ERROR + 1);
    server = httpd_new("fuzz", NULL);
    httpd_attach(server, routes, NULL);
    httpd_limits_t limits = HTTPD_DEFAULT_LIMITS;
    limits.deadline_s = 2;
    limits.workers = 1;
    httpd_set_limits(server, &limits);
    for (int tries = 0; tries < 5; tries++)
        if ((port = free_port()) > 0 && httpd_start(server, "127.0.0.1", port) == 0)
            return;
    abort();
}

/* Sends the bytes, shuts the client's side and reads until the server
 * closes; a server still holding on after CLOSE_WITHIN_S has hung.  The
 * client shuts first, so each connection leaves a TIME_WAIT behind for a
 * minute: connections come from addresses of 127.1.0.0/16 in turn, or the
 * loopback's ports would run out within one.  Only a refused connection
 * is the server's fault. */
static void send_to_server(const uint8_t *data, size_t size)
{
    static uint16_t source;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = { CLOSE_WITHIN_S, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in from = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f010000u | source++) };
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(fd, (struct sockaddr *)&from, sizeof from) < 0
        || connect(fd, (struct sockaddr *)&to, sizeof to) < 0) {
        if (errno == ECONNREFUSED)
            abort();
        close(fd);
        return;
    }
    for (size_t sent = 0; sent < size;) {
        ssize_t k = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
        if (k <= 0)
            break;                  /* refused and closed on the way: fine */
        sent += (size_t)k;
    }
    shutdown(fd, SHUT_WR);
    char buf[65536];
    ssize_t k;
    while ((k = recv(fd, buf, sizeof buf, 0)) > 0)
        ;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        fprintf(stderr, "fuzz_http: the server kept the connection open %d s after its client's end\n",
                CLOSE_WITHIN_S);
        abort();
    }
    close(fd);
}

static size_t smaller(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* The head's end as httpd finds it, pieces of `step` bytes at a time, and
 * what a single look at all of it finds: they must agree. */
static size_t head_length(const char *text, size_t size, size_t step)
{
    size_t scanned = 0, found = 0;
    for (size_t len = smaller(step, size); !found; len = smaller(len + step, size)) {
        found = http_head_length(text, len, &scanned);
        if (len == size)
            break;
    }
    size_t whole = 0;
    if (found != http_head_length(text, size, &whole))
        abort();
    return found;
}

static void parse_request(const char *text, size_t size, size_t step)
{
    /* httpd drops the line ends before a request. */
    size_t blank = 0;
    while (blank < size && (text[blank] == '\r' || text[blank] == '\n'))
        blank++;
    text += blank;
    size -= blank;
    size_t n = head_length(text, smaller(size, HTTP_HEAD_MAX), step);
    if (!n)
        return;
    char *head_text = malloc(n + 1);
    memcpy(head_text, text, n);
    http_head_t head;
    if (http_head_parse(head_text, n, &head) == 0) {
        for (size_t i = 0; i < head.nargs; i++)
            if (strlen(head.args[i].key) > n || (head.args[i].value && strlen(head.args[i].value) > n))
                abort();
        http_head_arg(&head, "q");
        http_chunks_t chunks = { 0 };
        size_t taken = n;
        while (head.chunked && taken < size && !http_chunks_done(&chunks)) {
            const char *data;
            size_t got;
            long k = http_chunks_read(&chunks, text + taken, smaller(step, size - taken), &data, &got);
            if (k < 0)
                break;
            if (k == 0 || (got && (data < text + taken || data + got > text + taken + (size_t)k)))
                abort();            /* no progress, or a piece outside what it took */
            taken += (size_t)k;
        }
    }
    http_head_clear(&head);
    free(head_text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!server)
        start_server();
    if (size == 0)
        return 0;
    unsigned steer = data[0];
    const char *text = (const char *)data + 1;
    size--;
    parse_request(text, size, 1 + (steer >> 3));
    char *copy = malloc(size + 1);
    memcpy(copy, text, size);
    copy[size] = '\0';
    http_unescape(copy, steer & 1);
    free(copy);
    if ((steer & 7) == 0)
        send_to_server(data + 1, size);
    return 0;
}
