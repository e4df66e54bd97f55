/*  zmtp: a bench client connection that speaks ZMTP 3.0 itself (the NULL
 *  mechanism), as redis-benchmark speaks RESP itself.
 *
 *  Why not libzmq: a libzmq client hands every message from its
 *  application thread to its I/O thread and back, which on a machine whose
 *  cores the client shares with the server under test takes the server's
 *  CPU: the bench would measure the client's costs as much as the
 *  server's.  Here one thread writes each request and reads each reply
 *  straight from its TCP socket, one write and one read a request, as
 *  redis-benchmark does.  The server under test is unchanged: a libzmq
 *  ROUTER (or SUB) sees a REQ (or PUB) peer like any other.
 *
 *  Only what the benches send: short and long frames, no security
 *  mechanism, no heartbeats.  Not for Keel itself. */
#ifndef KEEL_BENCH_ZMTP_H
#define KEEL_BENCH_ZMTP_H
#include <stdbool.h>
#include <stddef.h>

typedef struct zmtp_t zmtp_t;

/* Connects to "tcp://HOST:PORT" and completes the handshake as a peer of
 * socket type `type` ("REQ", "PUB", "DEALER"), within timeout_ms.  Returns
 * NULL, with the reason on stderr, when it cannot. */
zmtp_t *zmtp_new(const char *endpoint, const char *type, int timeout_ms);
void zmtp_destroy(zmtp_t **self_p);
/* The connection's descriptor, non-blocking, for poll or epoll; borrowed. */
int zmtp_fd(const zmtp_t *self);

/* Queues a message of `count` frames for sending; a REQ peer's empty
 * delimiter is the caller's first frame.  Returns false when the output
 * buffer cannot grow. */
bool zmtp_queue(zmtp_t *self, const char *const *frames, const size_t *sizes, size_t count);
/* Writes what is queued, as much as the socket takes.  Returns -1 on a
 * write error, else the bytes still queued. */
long zmtp_flush(zmtp_t *self);
/* Writes everything queued, waiting up to timeout_ms at a time while the
 * socket is full.  Returns false on a write error or such a wait. */
bool zmtp_flush_all(zmtp_t *self, int timeout_ms);

/* Reads what the socket has.  Returns -1 when the peer closed or a read
 * failed, else the bytes read (0: nothing yet). */
long zmtp_fill(zmtp_t *self);
/* Takes the next whole message read: its last frame's body in *body (valid
 * until the next zmtp_fill; borrowed).  Returns false when no whole
 * message has arrived yet.  Commands (a SUB's subscription, in ZMTP 3.1)
 * are skipped. */
bool zmtp_take(zmtp_t *self, const char **body, size_t *size);
#endif
