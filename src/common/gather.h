/*  gather: many requests at once, one deadline.  A health sweep over a
 *  thousand agents, a dashboard page that needs four services, a VRAM
 *  check of every model host: each sends all its requests together and
 *  waits for all the replies in one poll loop on the calling thread, so
 *  the whole costs as long as the slowest answer (at most the deadline),
 *  never the sum, and one thread however many peers there are.
 *
 *  Two kinds of call share the loop: a ZMQ request (one JSON frame on a
 *  fresh REQ socket, closed at the end, so a reply that never came leaves
 *  no socket waiting for it; the sockets live in the process's second
 *  context, zsocket.h, so a sweep's thousand handshakes never queue behind
 *  the services' own traffic) and an HTTP request, made by httpcall.h's
 *  small client.  Hand-written rather than libcurl, for memory: libcurl
 *  and the libraries it brings (TLS, krb5, LDAP, ssh2, rtmp, nghttp2, psl,
 *  idn2, brotli, zstd) were measured at about 6 MB resident in every keeld
 *  process and curl_global_init at 2.3 MB more (issue 17: under 15 MB for
 *  an idle `keeld all`); without it a `keeld all` that has made its first
 *  HTTP request is 3.3 MB smaller (26.1 to 22.8 MB).  Keel speaks
 *  only plain HTTP/1.1, to agents' health ports, peer hubs and its own
 *  /health and /metrics, so the client is small: it reads a body by its
 *  Content-Length, chunked, or up to the close, and looks a host name up
 *  without stalling the other calls of the loop. */
#ifndef KEEL_GATHER_H
#define KEEL_GATHER_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The most a reply may hold; a longer one ends its call in error. */
#define GATHER_MAX_REPLY (16u << 20)
/* The most calls in flight at once.  A ZMQ call holds some 30 kB while it
 * waits (libzmq's pipes, the connection's buffers): a sweep sending a
 * thousand at once took 30 MB more at every sweep, and most of it stayed
 * behind, scattered, between sweeps.  128 in flight answer as fast, since
 * one thread reads the replies either way. */
#define GATHER_IN_FLIGHT 128

/* UNSENT: the run's deadline passed before the call could be sent, so it
 * says nothing of its peer. */
typedef enum { GATHER_PENDING, GATHER_OK, GATHER_TIMEOUT, GATHER_ERROR, GATHER_UNSENT } gather_state_t;

typedef struct {
    /* in; borrowed */
    const char *url;        /* "tcp://host:port" (ZMQ) or "http://host[:port][/path]" */
    const char *body;       /* ZMQ: the frame sent; HTTP: a POST body, or NULL for GET */
    size_t body_len;
    json_t *request;        /* with no body: the body is this, written as Keel writes the wire */
    int timeout_ms;         /* this call's own limit, or 0 for the run's deadline */
    bool agent;             /* ZMQ to a kept agent rather than a Keel service (zsocket.h) */
    /* out */
    gather_state_t state;
    char *reply;            /* NUL-terminated; owned, freed by gather_clear */
    size_t reply_len;
    long http_status;       /* HTTP only: the status code; a non-2xx reply is still GATHER_OK */
    double latency_s;
    char error[160];        /* why the call is not GATHER_OK */
} gather_call_t;

/* Sends the calls, at most GATHER_IN_FLIGHT at once, in their order (the
 * next as soon as one ends), and waits until each has its reply or its own
 * limit, counted from its sending, has passed, but never past timeout_ms:
 * a call still unsent then ends GATHER_UNSENT.  So a caller that knows
 * some peers are likely dead puts them last.  Returns how many
 * ended GATHER_OK.  Each call's out fields are reset first. */
size_t gather_run(gather_call_t *calls, size_t n, int timeout_ms);
/* The same, ended at once, every call still pending GATHER_ERROR
 * ("Request cancelled"), when `cancel_fd` (borrowed: an actor's stop
 * descriptor, actor.h) turns readable, so a stop never waits out a run. */
size_t gather_run_until(gather_call_t *calls, size_t n, int timeout_ms, int cancel_fd);
/* Frees the replies of n calls. */
void gather_clear(gather_call_t *calls, size_t n);
/* The reply of a call that ended GATHER_OK, parsed as JSON of any type: a
 * new reference, or NULL when there is none or it is not JSON. */
json_t *gather_reply_json(const gather_call_t *call);
#endif
