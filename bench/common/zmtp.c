/*  zmtp: see zmtp.h.  The wire format is ZMTP 3.0 (rfc.zeromq.org/spec/23):
 *  a 64-byte greeting each way, a READY command each way carrying the
 *  socket type, then frames of a flags byte (MORE 1, LONG 2, COMMAND 4), a
 *  size of one byte or, when LONG, eight in network order, and the body. */
#include "zmtp.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define GREETING 64

typedef struct {
    char *data;
    size_t start, end, cap;
} buffer_t;

struct zmtp_t {
    int fd;
    buffer_t in, out;
};

static bool make_room(buffer_t *b, size_t more)
{
    if (b->start > 0 && b->start == b->end)
        b->start = b->end = 0;
    if (b->end + more <= b->cap)
        return true;
    if (b->start > 0) {
        memmove(b->data, b->data + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
        if (b->end + more <= b->cap)
            return true;
    }
    size_t cap = b->cap ? b->cap : 16384;
    while (cap < b->end + more)
        cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data)
        return false;
    b->data = data;
    b->cap = cap;
    return true;
}

static bool append(buffer_t *b, const void *bytes, size_t n)
{
    if (!make_room(b, n))
        return false;
    memcpy(b->data + b->end, bytes, n);
    b->end += n;
    return true;
}

static bool append_frame_header(buffer_t *b, unsigned flags, size_t size)
{
    if (size <= 255) {
        unsigned char h[2] = { (unsigned char)flags, (unsigned char)size };
        return append(b, h, sizeof h);
    }
    unsigned char h[9] = { (unsigned char)(flags | 2) };
    for (int i = 0; i < 8; i++)
        h[1 + i] = (unsigned char)((uint64_t)size >> (56 - 8 * i));
    return append(b, h, sizeof h);
}

/* The READY command: its name, then each property as a one-byte name
 * length, the name, a four-byte value length and the value. */
static bool append_ready(buffer_t *b, const char *type)
{
    unsigned char body[128];
    size_t n = 0, tlen = strlen(type);
    body[n++] = 5;
    memcpy(body + n, "READY", 5);
    n += 5;
    body[n++] = 11;
    memcpy(body + n, "Socket-Type", 11);
    n += 11;
    body[n++] = 0, body[n++] = 0, body[n++] = 0, body[n++] = (unsigned char)tlen;
    memcpy(body + n, type, tlen);
    n += tlen;
    if (!strcmp(type, "REQ") || !strcmp(type, "DEALER")) {
        /* as libzmq's REQ and DEALER do: an empty identity, the ROUTER picks one */
        body[n++] = 8;
        memcpy(body + n, "Identity", 8);
        n += 8;
        body[n++] = 0, body[n++] = 0, body[n++] = 0, body[n++] = 0;
    }
    return append_frame_header(b, 4, n) && append(b, body, n);
}

/* The next frame at `at` in b: its flags, body and the offset past it.
 * Returns false while it has not wholly arrived. */
static bool next_frame(const buffer_t *b, size_t at, unsigned *flags, const char **body,
                       size_t *size, size_t *past)
{
    size_t have = b->end - at;
    if (have < 2)
        return false;
    const unsigned char *p = (const unsigned char *)b->data + at;
    size_t head = 2, n = p[1];
    if (p[0] & 2) {
        head = 9;
        if (have < head)
            return false;
        n = 0;
        for (int i = 0; i < 8; i++)
            n = (n << 8) | p[1 + i];
    }
    if (have - head < n)
        return false;
    *flags = p[0];
    *body = (const char *)p + head;
    *size = n;
    *past = at + head + n;
    return true;
}

static bool wait_for(int fd, short events, int timeout_ms)
{
    struct pollfd p = { fd, events, 0 };
    return poll(&p, 1, timeout_ms) == 1;
}

/* Reads the server's greeting and its READY, blocking up to timeout_ms. */
static bool read_handshake(zmtp_t *self, int timeout_ms)
{
    bool ready = false;
    while (!ready) {
        if (!wait_for(self->fd, POLLIN, timeout_ms) || zmtp_fill(self) <= 0)
            return false;
        buffer_t *in = &self->in;
        if (in->end - in->start < GREETING)
            continue;
        const unsigned char *g = (const unsigned char *)in->data + in->start;
        if (g[0] != 0xFF || g[9] != 0x7F || g[10] < 3 || memcmp(g + 12, "NULL", 5)) {
            fprintf(stderr, "zmtp: the peer's greeting is not ZMTP 3 with the NULL mechanism\n");
            return false;
        }
        unsigned flags;
        const char *body;
        size_t size, past;
        if (next_frame(in, in->start + GREETING, &flags, &body, &size, &past)) {
            if (!(flags & 4) || size < 6 || memcmp(body, "\5READY", 6)) {
                fprintf(stderr, "zmtp: the peer did not send READY\n");
                return false;
            }
            in->start = past;
            ready = true;
        }
    }
    return true;
}

zmtp_t *zmtp_new(const char *endpoint, const char *type, int timeout_ms)
{
    char host[256];
    const char *colon = strrchr(endpoint, ':');
    if (strncmp(endpoint, "tcp://", 6) || !colon || (size_t)(colon - endpoint - 6) >= sizeof host) {
        fprintf(stderr, "zmtp: %s is not tcp://HOST:PORT\n", endpoint);
        return NULL;
    }
    memcpy(host, endpoint + 6, (size_t)(colon - endpoint - 6));
    host[colon - endpoint - 6] = '\0';
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) {
        fprintf(stderr, "zmtp: cannot resolve %s\n", endpoint);
        return NULL;
    }
    zmtp_t *self = calloc(1, sizeof *self);
    self->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(self->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bool ok = self->fd >= 0 && connect(self->fd, ai->ai_addr, ai->ai_addrlen) == 0;
    freeaddrinfo(ai);
    if (!ok)
        fprintf(stderr, "zmtp: cannot connect to %s: %s\n", endpoint, strerror(errno));
    fcntl(self->fd, F_SETFL, fcntl(self->fd, F_GETFL) | O_NONBLOCK);

    unsigned char greeting[GREETING] = { 0xFF, [9] = 0x7F, [10] = 3, [11] = 0 };
    memcpy(greeting + 12, "NULL", 4);
    ok = ok && append(&self->out, greeting, sizeof greeting) && append_ready(&self->out, type)
         && zmtp_flush_all(self, timeout_ms);
    if (ok && !read_handshake(self, timeout_ms)) {
        fprintf(stderr, "zmtp: no handshake from %s within %d ms\n", endpoint, timeout_ms);
        ok = false;
    }
    if (!ok)
        zmtp_destroy(&self);
    return self;
}

void zmtp_destroy(zmtp_t **self_p)
{
    zmtp_t *self = *self_p;
    if (!self)
        return;
    if (self->fd >= 0)
        close(self->fd);
    free(self->in.data);
    free(self->out.data);
    free(self);
    *self_p = NULL;
}

int zmtp_fd(const zmtp_t *self)
{
    return self->fd;
}

bool zmtp_queue(zmtp_t *self, const char *const *frames, const size_t *sizes, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!append_frame_header(&self->out, i + 1 < count ? 1 : 0, sizes[i])
            || !append(&self->out, frames[i], sizes[i]))
            return false;
    return true;
}

long zmtp_flush(zmtp_t *self)
{
    buffer_t *out = &self->out;
    while (out->end > out->start) {
        ssize_t n = send(self->fd, out->data + out->start, out->end - out->start, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? (long)(out->end - out->start) : -1;
        out->start += (size_t)n;
    }
    return 0;
}

bool zmtp_flush_all(zmtp_t *self, int timeout_ms)
{
    long left;
    while ((left = zmtp_flush(self)) > 0)
        if (!wait_for(self->fd, POLLOUT, timeout_ms))
            return false;
    return left == 0;
}

long zmtp_fill(zmtp_t *self)
{
    buffer_t *in = &self->in;
    if (!make_room(in, 16384))
        return -1;
    ssize_t n = recv(self->fd, in->data + in->end, in->cap - in->end, 0);
    if (n == 0)
        return -1;
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    in->end += (size_t)n;
    return n;
}

bool zmtp_take(zmtp_t *self, const char **body, size_t *size)
{
    buffer_t *in = &self->in;
    size_t at = in->start;
    bool inside = false;        /* past a message's first frame */
    unsigned flags;
    const char *b;
    size_t n, past;
    while (next_frame(in, at, &flags, &b, &n, &past)) {
        at = past;
        if (flags & 4) {            /* a command between messages */
            if (!inside)
                in->start = at;
            continue;
        }
        inside = true;
        if (!(flags & 1)) {
            *body = b;
            *size = n;
            in->start = at;
            return true;
        }
    }
    return false;
}
