/*  prober: see prober.h.
 *
 *  The sockets live in a ZMQ context of the prober's own, with a socket
 *  limit sized for the fleet and an I/O thread apart from the services'
 *  sockets, so a sweep over a thousand agents never slows a reply.  Each
 *  ZMQ probe gets a fresh REQ socket that is closed at the end of the
 *  sweep (LINGER 0), so a probe that timed out never leaves a REQ socket
 *  stuck waiting for its reply.  HTTP probes speak HTTP/1.0 with
 *  Connection: close and only read the status line. */
#include "prober.h"
#include "clock.h"
#include "zsocket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#define HTTP_BUF 512

struct prober_t {
    void *ctx;
};

typedef struct {
    void *zsock;
    int fd;
    bool connected, sent;
    double started, deadline;
    char buf[HTTP_BUF];
    size_t got;
} hprobe_io_t;

prober_t *prober_new(int max_sockets)
{
    prober_t *self = calloc(1, sizeof *self);
    self->ctx = zmq_ctx_new();
    zmq_ctx_set(self->ctx, ZMQ_MAX_SOCKETS, max_sockets + 16);
    zmq_ctx_set(self->ctx, ZMQ_IO_THREADS, 1);
    return self;
}

void prober_destroy(prober_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zmq_ctx_term((*self_p)->ctx);
    free(*self_p);
    *self_p = NULL;
}

const char *hprobe_result_name(hprobe_result_t r)
{
    switch (r) {
    case HPROBE_HEALTHY: return "healthy";
    case HPROBE_DEGRADED: return "degraded";
    case HPROBE_UNHEALTHY: return "unhealthy";
    case HPROBE_TIMEOUT: return "timeout";
    case HPROBE_ERROR: return "error";
    default: return "unknown";
    }
}

static bool word_in(const char *word, const char *const *words)
{
    for (size_t i = 0; words[i]; i++)
        if (!strcasecmp(word, words[i]))
            return true;
    return false;
}

hprobe_result_t hprobe_reply_verdict(json_t *reply, hprobe_expect_t expect)
{
    /* The words the kept agents' health replies use when well, in every
     * case they are written: BaseAgent's "ok", KnowledgeBase's, MemoryClient's
     * and GoalManager's "HEALTHY", Executor's "OK", the speech services'
     * "online", the broadcasters' "running", and "success" from handlers
     * that answer health_check on the main port.  An agent alive but not
     * yet (or no longer fully) well says one of the degraded words. */
    static const char *const healthy[] = { "ok", "healthy", "success", "online", "running", NULL };
    static const char *const degraded[] = { "degraded", "warning", "initializing", "starting", NULL };
    const char *status = json_string_value(json_object_get(reply, "status"));
    if (!json_is_object(reply) || !status || json_is_false(json_object_get(reply, "healthy")))
        return HPROBE_UNHEALTHY;
    if (expect == HPROBE_EXPECT_SUCCESS)
        return !strcmp(status, "success") ? HPROBE_HEALTHY : HPROBE_UNHEALTHY;
    return word_in(status, healthy) ? HPROBE_HEALTHY : word_in(status, degraded) ? HPROBE_DEGRADED
                                                                              : HPROBE_UNHEALTHY;
}

char *hprobe_reply_words(json_t *reply, char *buf, size_t len)
{
    static const char *const keys[] = { "message", "error", "status_reason", "reason" };
    const char *status = json_string_value(json_object_get(reply, "status"));
    const char *said = NULL;
    for (size_t i = 0; !said && i < sizeof keys / sizeof keys[0]; i++)
        said = json_string_value(json_object_get(reply, keys[i]));
    if (!json_is_object(reply))
        snprintf(buf, len, "reply is not a JSON object");
    else if (!status)
        snprintf(buf, len, "reply has no status%s%s", said ? ": " : "", said ? said : "");
    else
        snprintf(buf, len, "status '%s'%s%s", status, said ? ": " : "", said ? said : "");
    return buf;
}

static void finish(hprobe_t *p, hprobe_io_t *io, hprobe_result_t r, const char *fmt, const char *arg)
{
    p->result = r;
    p->latency_s = clock_mono() - io->started;
    if (fmt)
        snprintf(p->error, sizeof p->error, fmt, arg ? arg : "");
    if (io->zsock) {
        zmq_close(io->zsock);
        io->zsock = NULL;
    }
    if (io->fd >= 0) {
        close(io->fd);
        io->fd = -1;
    }
}

static void start_zmq(prober_t *self, hprobe_t *p, hprobe_io_t *io)
{
    /* A client of the agent's socket: CURVE only when the agents speak it
     * (agent_curve). */
    io->zsock = zsocket_new_in(self->ctx, ZMQ_REQ, ZSOCKET_AGENT_CLIENT, 0);
    if (!io->zsock) {
        finish(p, io, HPROBE_ERROR, "ZMQ error: %s", "cannot make a client socket");
        return;
    }
    char endpoint[NAMES_BUF + 32];
    snprintf(endpoint, sizeof endpoint, "tcp://%s:%d", p->host, p->port);
    if (zmq_connect(io->zsock, endpoint) != 0
        || zmq_send(io->zsock, p->request, strlen(p->request), ZMQ_DONTWAIT) < 0)
        finish(p, io, HPROBE_ERROR, "ZMQ error: %s", zmq_strerror(zmq_errno()));
}

static int resolve(const char *host, int port, struct sockaddr_storage *addr, socklen_t *len)
{
    struct sockaddr_in *in = (struct sockaddr_in *)addr;
    memset(addr, 0, sizeof *addr);
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        *len = sizeof *in;
        return 0;
    }
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return -1;
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    ((struct sockaddr_in *)addr)->sin_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
}

static void start_http(hprobe_t *p, hprobe_io_t *io)
{
    struct sockaddr_storage addr;
    socklen_t len;
    if (resolve(p->host, p->port, &addr, &len) < 0) {
        finish(p, io, HPROBE_ERROR, "Unexpected error: cannot resolve %s", p->host);
        return;
    }
    io->fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (io->fd < 0) {
        finish(p, io, HPROBE_ERROR, "Unexpected error: %s", strerror(errno));
        return;
    }
    if (connect(io->fd, (struct sockaddr *)&addr, len) == 0)
        io->connected = true;
    else if (errno != EINPROGRESS)
        finish(p, io, HPROBE_ERROR, "Unexpected error: %s", strerror(errno));
}

/* The socket is writable: the connect finished, so send the request. */
static void http_send(hprobe_t *p, hprobe_io_t *io)
{
    int err = 0;
    socklen_t elen = sizeof err;
    getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err) {
        finish(p, io, HPROBE_ERROR, "Unexpected error: %s", strerror(err));
        return;
    }
    char req[NAMES_BUF + 1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s:%d\r\nConnection: close\r\n\r\n",
                     p->path ? p->path : "/health", p->host, p->port);
    if (n < 0 || (size_t)n >= sizeof req) {
        finish(p, io, HPROBE_ERROR, "Unexpected error: %s", "the request line is too long");
        return;
    }
    if (send(io->fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        finish(p, io, HPROBE_ERROR, "Unexpected error: %s", strerror(errno));
        return;
    }
    io->connected = io->sent = true;
}

static void http_read(hprobe_t *p, hprobe_io_t *io)
{
    ssize_t n = recv(io->fd, io->buf + io->got, sizeof io->buf - 1 - io->got, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0)
        io->got += (size_t)n;
    io->buf[io->got] = '\0';
    int code = 0;
    if (strstr(io->buf, "\r\n") || n <= 0 || io->got >= sizeof io->buf - 1) {
        if (sscanf(io->buf, "HTTP/%*d.%*d %d", &code) != 1) {
            finish(p, io, HPROBE_ERROR, "Unexpected error: %s", "not an HTTP reply");
            return;
        }
        p->details = json_pack("{s:i}", "http_status", code);
        char text[16];
        snprintf(text, sizeof text, "%d", code);
        finish(p, io, code == 200 ? HPROBE_HEALTHY : HPROBE_UNHEALTHY, code == 200 ? NULL : "HTTP status %s",
               text);
    }
}

static void zmq_read(hprobe_t *p, hprobe_io_t *io)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, io->zsock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        if (zmq_errno() != EAGAIN)
            finish(p, io, HPROBE_ERROR, "ZMQ error: %s", zmq_strerror(zmq_errno()));
        return;
    }
    json_t *reply = json_loadb(zmq_msg_data(&msg), zmq_msg_size(&msg), JSON_DECODE_ANY, NULL);
    zmq_msg_close(&msg);
    if (!reply) {
        finish(p, io, HPROBE_ERROR, "Unexpected error: %s", "reply is not JSON");
        return;
    }
    p->details = reply;
    hprobe_result_t verdict = hprobe_reply_verdict(reply, p->expect);
    char words[160];
    finish(p, io, verdict, verdict == HPROBE_HEALTHY ? NULL : "%s",
           verdict == HPROBE_HEALTHY ? NULL : hprobe_reply_words(reply, words, sizeof words));
}

void prober_run(prober_t *self, hprobe_t *probes, size_t n)
{
    hprobe_io_t *io = calloc(n ? n : 1, sizeof *io);
    zmq_pollitem_t *items = calloc(n ? n : 1, sizeof *items);
    size_t *index = calloc(n ? n : 1, sizeof *index);
    double now = clock_mono();
    for (size_t i = 0; i < n; i++) {
        probes[i].result = HPROBE_PENDING;
        probes[i].error[0] = '\0';
        io[i].fd = -1;
        io[i].started = now;
        io[i].deadline = now + probes[i].timeout_ms / 1000.0;
        if (probes[i].kind == HPROBE_ZMQ)
            start_zmq(self, &probes[i], &io[i]);
        else
            start_http(&probes[i], &io[i]);
    }
    for (;;) {
        size_t npoll = 0;
        double next = 0;
        now = clock_mono();
        for (size_t i = 0; i < n; i++) {
            hprobe_t *p = &probes[i];
            if (p->result != HPROBE_PENDING)
                continue;
            if (now >= io[i].deadline) {
                finish(p, &io[i], HPROBE_TIMEOUT, "Request timed out", NULL);
                continue;
            }
            if (!npoll || io[i].deadline < next)
                next = io[i].deadline;
            items[npoll] = io[i].zsock
                ? (zmq_pollitem_t){ io[i].zsock, 0, ZMQ_POLLIN, 0 }
                : (zmq_pollitem_t){ NULL, io[i].fd, io[i].sent ? ZMQ_POLLIN : ZMQ_POLLOUT, 0 };
            index[npoll++] = i;
        }
        if (!npoll)
            break;
        long wait_ms = (long)((next - now) * 1000.0) + 1;
        if (zmq_poll(items, (int)npoll, wait_ms) < 0 && zmq_errno() != EINTR)
            break;
        for (size_t k = 0; k < npoll; k++) {
            if (!items[k].revents)
                continue;
            size_t i = index[k];
            if (io[i].zsock)
                zmq_read(&probes[i], &io[i]);
            else if (!io[i].sent)
                http_send(&probes[i], &io[i]);
            else
                http_read(&probes[i], &io[i]);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (probes[i].result == HPROBE_PENDING)
            finish(&probes[i], &io[i], HPROBE_ERROR, "ZMQ error: %s", "poll failed");
    free(io);
    free(items);
    free(index);
}
