/*  dashpeers: see dashpeers.h.
 *
 *  Not wire_call in a loop: its calls are sequential, so four services
 *  down would cost four timeouts on every refresh.  Here the REQ sockets
 *  are made as wire.c makes them (zsocket.h: linger 0, CURVE when
 *  SECURE_ZMQ is on) and polled together.  A socket that got no reply is closed with
 *  linger 0, which drops its request: nothing waits on a dead service.
 *
 *  The failed-login figures exist only as SecurityGateway's Prometheus
 *  counters, so they are read from its /metrics with a plain HTTP/1.0
 *  GET on a socket with send and receive timeouts. */
#include "dashpeers.h"
#include "clock.h"
#include "zsocket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zmq.h>

#define MAX_CALLS 32
#define METRICS_MAX (4 << 20)

static void *open_call(config_t *config, dashpeer_call_t *call)
{
    char endpoint[256];
    config_local_endpoint(config, call->port, endpoint, sizeof endpoint);
    void *socket = zsocket_new(ZMQ_REQ, ZSOCKET_CLIENT, 0);
    char *text = json_dumps(call->request, JSON_COMPACT);
    if (!socket || !text || zmq_connect(socket, endpoint) != 0
        || zmq_send(socket, text, strlen(text), ZMQ_DONTWAIT) < 0) {
        snprintf(call->error, sizeof call->error, "cannot send to %.70s", endpoint);
        if (socket)
            zmq_close(socket);
        socket = NULL;
    }
    free(text);
    return socket;
}

static void take_reply(dashpeer_call_t *call, void *socket)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, socket, ZMQ_DONTWAIT) >= 0) {
        call->reply = json_loadb(zmq_msg_data(&msg), zmq_msg_size(&msg), 0, NULL);
        if (!call->reply)
            snprintf(call->error, sizeof call->error, "reply is not JSON");
    }
    zmq_msg_close(&msg);
}

void dashpeers_call(config_t *config, dashpeer_call_t *calls, size_t n, int timeout_ms)
{
    zmq_pollitem_t items[MAX_CALLS];
    size_t index[MAX_CALLS];
    size_t open = 0;
    for (size_t i = 0; i < n; i++) {
        calls[i].reply = NULL;
        snprintf(calls[i].error, sizeof calls[i].error, "no reply within %d ms", timeout_ms);
        if (open == MAX_CALLS) {
            snprintf(calls[i].error, sizeof calls[i].error, "more than %d calls at once", MAX_CALLS);
            continue;
        }
        void *socket = open_call(config, &calls[i]);
        if (socket) {
            items[open] = (zmq_pollitem_t){ socket, 0, ZMQ_POLLIN, 0 };
            index[open++] = i;
        }
    }
    double deadline = clock_mono() + timeout_ms / 1000.0;
    size_t waiting = open;
    while (waiting > 0) {
        long left = (long)((deadline - clock_mono()) * 1000.0);
        if (left <= 0 || zmq_poll(items, (int)open, left) <= 0)
            break;
        for (size_t k = 0; k < open; k++) {
            if (!(items[k].revents & ZMQ_POLLIN) || !items[k].events)
                continue;
            take_reply(&calls[index[k]], items[k].socket);
            items[k].events = 0;
            waiting--;
        }
    }
    for (size_t k = 0; k < open; k++)
        zmq_close(items[k].socket);
    for (size_t i = 0; i < n; i++) {
        json_decref(calls[i].request);
        calls[i].request = NULL;
    }
}

/* ---- Prometheus counters over HTTP ---------------------------------------- */

static int connect_to(config_t *config, int http_port, int timeout_ms)
{
    char endpoint[256], host[200] = "127.0.0.1";
    config_local_endpoint(config, http_port, endpoint, sizeof endpoint);
    sscanf(endpoint, "tcp://%199[^:]", host);
    struct sockaddr_in addr = { .sin_family = AF_INET,
                                .sin_port = htons((uint16_t)config_port(config, http_port)) };
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0
        || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0
        || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* The whole response, NUL-terminated (caller frees), or NULL. */
static char *http_get(int fd, const char *path, double deadline)
{
    char request[256];
    int len = snprintf(request, sizeof request, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    if (send(fd, request, (size_t)len, MSG_NOSIGNAL) != len)
        return NULL;
    size_t used = 0, cap = 65536;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (used == cap) {
            if (cap >= METRICS_MAX)
                break;
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t got = recv(fd, buf + used, cap - used, 0);
        if (got == 0)
            break;
        if (got < 0 || clock_mono() > deadline) {
            free(buf);
            return NULL;
        }
        used += (size_t)got;
    }
    buf[used] = '\0';
    return buf;
}

/* One sample line `family{key="value"} 12` into out[family][value]. */
static void take_sample(json_t *out, const char *family, const char *line)
{
    const char *open = strchr(line, '{');
    const char *close = open ? strchr(open, '}') : NULL;
    const char *quote = open ? strchr(open, '"') : NULL;
    char label[128] = "total";
    if (quote && close && quote < close) {
        const char *end = strchr(quote + 1, '"');
        if (end && end < close)
            snprintf(label, sizeof label, "%.*s", (int)(end - quote - 1), quote + 1);
    }
    const char *value = close ? close + 1 : line + strlen(family);
    json_t *by_label = json_object_get(out, family);
    json_object_set_new(by_label, label, json_real(strtod(value, NULL)));
}

char *dashpeers_get(config_t *config, int http_port, const char *path, int timeout_ms)
{
    int fd = connect_to(config, http_port, timeout_ms);
    if (fd < 0)
        return NULL;
    char *text = http_get(fd, path, clock_mono() + timeout_ms / 1000.0);
    close(fd);
    char *body = text ? strstr(text, "\r\n\r\n") : NULL;
    if (!body || strncmp(text, "HTTP/1.", 7) || strncmp(text + 9, "200", 3)) {
        free(text);
        return NULL;
    }
    body += 4;
    memmove(text, body, strlen(body) + 1);
    return text;
}

json_t *dashpeers_counters(config_t *config, int http_port, const char *const *families,
                           int timeout_ms)
{
    char *text = dashpeers_get(config, http_port, "/metrics", timeout_ms);
    if (!text)
        return NULL;
    json_t *out = json_object();
    for (size_t f = 0; families[f]; f++)
        json_object_set_new(out, families[f], json_object());
    char *save = NULL;
    for (char *line = strtok_r(text, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        for (size_t f = 0; families[f]; f++) {
            size_t len = strlen(families[f]);
            if (!strncmp(line, families[f], len) && (line[len] == '{' || line[len] == ' '))
                take_sample(out, families[f], line);
        }
    }
    free(text);
    return out;
}
