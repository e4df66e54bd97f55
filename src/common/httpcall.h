/*  httpcall: one plain HTTP/1.1 request, moved on by its caller's poll
 *  loop.  A call never blocks and owns no thread: it says which descriptor
 *  it waits on and for what (httpcall_socket), and goes as far as it can
 *  each time it is told that descriptor is ready (httpcall_advance), so
 *  gather.c waits on a thousand of them and its ZMQ sockets in one
 *  zmq_poll.
 *
 *  A numeric host is used as it is; a name is resolved by glibc's
 *  getaddrinfo_a, and while it is the call has no descriptor and wants to
 *  be advanced again within HTTPCALL_RESOLVE_POLL_MS.  Every address the
 *  name has is tried in turn, so "localhost" reaches a peer that listens on
 *  127.0.0.1 only.  Time is the caller's: a call has no deadline of its
 *  own, and destroying it at any point, in the middle of a resolution
 *  included, is always safe.
 *
 *  Only http://, never through a proxy; a GET, or a POST of a JSON body;
 *  the reply's body read by its Content-Length, chunked, or up to the
 *  close.  Interim 1xx replies are skipped; any final status, 404 or 503
 *  included, is an answer. */
#ifndef KEEL_HTTPCALL_H
#define KEEL_HTTPCALL_H
#include <stdbool.h>
#include <stddef.h>

/* How long a call whose host name is being resolved may be left before it
 * is advanced again. */
#define HTTPCALL_RESOLVE_POLL_MS 5

typedef struct httpcall_t httpcall_t;

typedef enum { HTTPCALL_RUNNING, HTTPCALL_ANSWERED, HTTPCALL_FAILED } httpcall_state_t;

/* Starts a request to `url` (not NULL; borrowed, read here only): a POST of `body`
 * (copied), or a GET when body is NULL.  A reply whose body would pass
 * max_body bytes fails the call.  Never NULL: a call that cannot start (a
 * malformed URL, another scheme) is HTTPCALL_FAILED at once.  Owned by the
 * caller, who ends it with httpcall_destroy. */
httpcall_t *httpcall_new(const char *url, const char *body, size_t body_len, size_t max_body);
/* Closes its socket, abandons its resolution, frees it; *self_p is NULLed. */
void httpcall_destroy(httpcall_t **self_p);
/* The descriptor a running call waits on, with *writing true when it waits
 * to write; -1 while it resolves its host name, or once it has ended. */
int httpcall_socket(const httpcall_t *self, bool *writing);
/* Moves a running call on as far as it goes without blocking: after its
 * socket turned ready, or, while it resolves, every so often. */
httpcall_state_t httpcall_advance(httpcall_t *self);
httpcall_state_t httpcall_state(const httpcall_t *self);
/* An answered call's status code. */
int httpcall_status(const httpcall_t *self);
/* An answered call's body, NUL-terminated (empty when the reply had none),
 * its length in *len.  Ownership passes to the caller: a second take gives
 * NULL. */
char *httpcall_take_body(httpcall_t *self, size_t *len);
/* Why a failed call failed; borrowed, valid as long as the call. */
const char *httpcall_error(const httpcall_t *self);
#endif
