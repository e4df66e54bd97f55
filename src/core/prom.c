/*  prom: see prom.h.  The whole exchange (connect, send, read to close)
 *  runs under one deadline, so a Prometheus that accepts and then stalls
 *  costs the sampler at most timeout_s per query. */
#include "prom.h"
#include "clock.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_REPLY (256 * 1024)

/* Waits for `events` on fd until the deadline; 0 when ready. */
static int wait_for(int fd, short events, double deadline)
{
    double left = deadline - clock_mono();
    if (left <= 0)
        return -1;
    struct pollfd p = { fd, events, 0 };
    return poll(&p, 1, (int)(left * 1000) + 1) == 1 ? 0 : -1;
}

static int connect_to(const char *host, const char *port, double deadline)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (errno != EINPROGRESS || wait_for(fd, POLLOUT, deadline) < 0
            || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

static void url_encode(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (; *in && o + 4 < len; in++) {
        if (isalnum((unsigned char)*in) || strchr("-_.~", *in))
            out[o++] = *in;
        else
            o += (size_t)snprintf(out + o, len - o, "%%%02X", (unsigned char)*in);
    }
    out[o] = '\0';
}

/* Reads the whole reply; the caller frees it. */
static char *exchange(int fd, const char *request, double deadline, size_t *len_out)
{
    size_t sent = 0, total = strlen(request);
    while (sent < total) {
        if (wait_for(fd, POLLOUT, deadline) < 0)
            return NULL;
        ssize_t n = send(fd, request + sent, total - sent, MSG_NOSIGNAL);
        if (n <= 0)
            return NULL;
        sent += (size_t)n;
    }
    char *buf = malloc(MAX_REPLY + 1);
    size_t len = 0;
    for (;;) {
        if (len == MAX_REPLY || wait_for(fd, POLLIN, deadline) < 0) {
            free(buf);
            return NULL;
        }
        ssize_t n = recv(fd, buf + len, MAX_REPLY - len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0) {
            free(buf);
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *len_out = len;
    return buf;
}

static int parse_value(const char *reply, double *out)
{
    if (strncmp(reply, "HTTP/1.", 7) != 0 || atoi(reply + 9) != 200)
        return -1;
    const char *body = strstr(reply, "\r\n\r\n");
    if (!body)
        return -1;
    json_t *doc = json_loads(body + 4, 0, NULL);
    json_t *result = json_object_get(json_object_get(doc, "data"), "result");
    json_t *value = json_array_get(json_object_get(json_array_get(result, 0), "value"), 1);
    const char *text = json_string_value(value);
    int rc = -1;
    if (text) {
        char *end;
        *out = strtod(text, &end);
        rc = end != text ? 0 : -1;
    }
    json_decref(doc);
    return rc;
}

int core_prom_query(const char *base_url, const char *query, double timeout_s, double *out)
{
    if (strncmp(base_url, "http://", 7) != 0)
        return -1;
    const char *hostp = base_url + 7;
    size_t hostlen = strcspn(hostp, ":/");
    char host[256], port[16] = "80", prefix[256] = "";
    snprintf(host, sizeof host, "%.*s", (int)hostlen, hostp);
    const char *rest = hostp + hostlen;
    if (*rest == ':') {
        size_t plen = strcspn(rest + 1, "/");
        snprintf(port, sizeof port, "%.*s", (int)plen, rest + 1);
        rest += 1 + plen;
    }
    snprintf(prefix, sizeof prefix, "%s", rest);
    size_t pl = strlen(prefix);
    if (pl && prefix[pl - 1] == '/')
        prefix[pl - 1] = '\0';
    double deadline = clock_mono() + timeout_s;
    int fd = connect_to(host, port, deadline);
    if (fd < 0)
        return -1;
    char encoded[512], request[1024];
    url_encode(query, encoded, sizeof encoded);
    snprintf(request, sizeof request,
             "GET %s/api/v1/query?query=%s HTTP/1.0\r\nHost: %s\r\nAccept: application/json\r\n\r\n",
             prefix, encoded, host);
    size_t len;
    char *reply = exchange(fd, request, deadline, &len);
    close(fd);
    int rc = reply ? parse_value(reply, out) : -1;
    free(reply);
    return rc;
}
