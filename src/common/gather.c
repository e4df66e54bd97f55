/*  gather: see gather.h.
 *
 *  One zmq_poll waits on everything: the REQ sockets of the ZMQ calls and
 *  the sockets of the HTTP calls (httpcall.h), each for what its call
 *  waits on.  An HTTP call still resolving a host name has no socket yet:
 *  while there is one, the poll wakes every HTTPCALL_RESOLVE_POLL_MS to ask.
 *  Calls are sent in order, GATHER_IN_FLIGHT at most at once, the next
 *  whenever one ends.  Every call sent has its own deadline, the earliest
 *  of its own limit (from its sending) and the run's; whatever is still
 *  pending at the run's deadline ends in GATHER_TIMEOUT (GATHER_UNSENT if
 *  never sent), so gather_run never returns late by more than one poll
 *  wake. */
#include "gather.h"
#include "clock.h"
#include "httpcall.h"
#include "wire.h"
#include "wirejson.h"
#include "zsocket.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

typedef struct {
    gather_call_t *call;    /* NULL until the call is sent */
    void *zsock;            /* a ZMQ call in flight */
    httpcall_t *http;       /* an HTTP call in flight */
    char *text;             /* the call's request written out, sent as its body */
    double started, deadline;
} flight_t;

typedef struct {
    gather_call_t *calls;
    flight_t *flights;
    size_t n;
    size_t sent;            /* calls[0..sent) have been started */
    size_t in_flight;       /* of those, still pending */
    double deadline;        /* the run's */
    int timeout_ms;         /* the run's limit */
    int cancel_fd;          /* readable: end the run now; -1 for none */
    bool cancelled;
} run_t;

static void finish(run_t *run, size_t i, gather_state_t state, const char *error)
{
    gather_call_t *call = &run->calls[i];
    flight_t *f = &run->flights[i];
    call->state = state;
    call->latency_s = f->call ? clock_mono() - f->started : 0;
    run->in_flight -= f->call != NULL;
    if (error)
        snprintf(call->error, sizeof call->error, "%s", error);
    if (f->zsock) {
        zmq_close(f->zsock);
        f->zsock = NULL;
    }
    httpcall_destroy(&f->http);
    free(f->text);
    f->text = NULL;
}

/* The call's body and its length: its own, or its request written out. */
static const char *body_of(flight_t *f, size_t *len)
{
    if (!f->call->body && f->call->request)
        f->text = wirejson_dump(f->call->request, NULL);
    *len = f->text ? strlen(f->text) : f->call->body_len;
    return f->text ? f->text : f->call->body;
}

/* ---- ZMQ calls --------------------------------------------------------- */

static void start_zmq(run_t *run, size_t i)
{
    gather_call_t *call = &run->calls[i];
    void *sock = zsocket_new_in(zsocket_apart_context(), ZMQ_REQ,
                                call->agent ? ZSOCKET_AGENT_CLIENT : ZSOCKET_CLIENT, GATHER_MAX_REPLY);
    if (!sock) {
        finish(run, i, GATHER_ERROR, "cannot make a ZMQ socket");
        return;
    }
    run->flights[i].zsock = sock;
    size_t len;
    const char *body = body_of(&run->flights[i], &len);
    if (zmq_connect(sock, call->url) != 0 || zmq_send(sock, body ? body : "", len, ZMQ_DONTWAIT) < 0) {
        char error[160];
        snprintf(error, sizeof error, "ZMQ error: %s", zmq_strerror(zmq_errno()));
        finish(run, i, GATHER_ERROR, error);
    }
}

static void read_zmq(run_t *run, size_t i)
{
    gather_call_t *call = &run->calls[i];
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, run->flights[i].zsock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        if (zmq_errno() != EAGAIN) {
            char error[160];
            snprintf(error, sizeof error, "ZMQ error: %s", zmq_strerror(zmq_errno()));
            finish(run, i, GATHER_ERROR, error);
        }
        return;
    }
    call->reply_len = zmq_msg_size(&msg);
    call->reply = malloc(call->reply_len + 1);
    memcpy(call->reply, zmq_msg_data(&msg), call->reply_len);
    call->reply[call->reply_len] = '\0';
    zmq_msg_close(&msg);
    finish(run, i, GATHER_OK, NULL);
}

/* ---- HTTP calls ---------------------------------------------------------- */

/* Ends the call once its request has been answered or has failed. */
static void settle_http(run_t *run, size_t i)
{
    httpcall_t *http = run->flights[i].http;
    gather_call_t *call = &run->calls[i];
    httpcall_state_t state = httpcall_state(http);
    if (state == HTTPCALL_ANSWERED) {
        call->http_status = httpcall_status(http);
        call->reply = httpcall_take_body(http, &call->reply_len);
        finish(run, i, GATHER_OK, NULL);
    } else if (state == HTTPCALL_FAILED) {
        finish(run, i, GATHER_ERROR, httpcall_error(http));
    }
}

static void start_http(run_t *run, size_t i)
{
    size_t len;
    const char *body = body_of(&run->flights[i], &len);
    run->flights[i].http = httpcall_new(run->calls[i].url, body, len, GATHER_MAX_REPLY);
    settle_http(run, i);            /* a URL it refuses fails at once */
}

/* ---- the loop -------------------------------------------------------------- */

/* Sends the next calls while fewer than GATHER_IN_FLIGHT are pending. */
static void start_more(run_t *run, double now)
{
    while (run->in_flight < GATHER_IN_FLIGHT && run->sent < run->n) {
        size_t i = run->sent++;
        gather_call_t *call = &run->calls[i];
        int limit = call->timeout_ms > 0 && call->timeout_ms < run->timeout_ms ? call->timeout_ms
                                                                                : run->timeout_ms;
        double deadline = now + limit / 1000.0;
        run->flights[i] = (flight_t){ .call = call, .started = now,
                                      .deadline = deadline < run->deadline ? deadline : run->deadline };
        run->in_flight++;
        if (!call->url)
            finish(run, i, GATHER_ERROR, "no address to call");
        else if (strncmp(call->url, "tcp://", 6) == 0)
            start_zmq(run, i);
        else
            start_http(run, i);     /* which refuses any scheme but http:// */
    }
}

/* Ends the calls past their own deadline; returns the earliest deadline
 * still pending, or `limit` when it is earlier. */
static double expire(run_t *run, double now, double limit)
{
    double next = limit;
    for (size_t i = 0; i < run->sent; i++) {
        if (run->calls[i].state != GATHER_PENDING)
            continue;
        if (now >= run->flights[i].deadline)
            finish(run, i, GATHER_TIMEOUT, "Request timed out");
        else if (run->flights[i].deadline < next)
            next = run->flights[i].deadline;
    }
    return next;
}

static bool pending(const run_t *run)
{
    return run->in_flight > 0 || run->sent < run->n;
}

/* One poll over every pending call's socket (items and index hold
 * GATHER_IN_FLIGHT + 1); returns -1 when polling fails. */
static int poll_once(run_t *run, zmq_pollitem_t *items, size_t *index, double next, double now)
{
    size_t nitems = 0;
    bool resolving = false;
    for (size_t i = 0; i < run->sent; i++) {
        flight_t *f = &run->flights[i];
        bool writing;
        int fd;
        if (run->calls[i].state != GATHER_PENDING)
            continue;
        if (f->zsock)
            items[nitems] = (zmq_pollitem_t){ f->zsock, 0, ZMQ_POLLIN, 0 };
        else if ((fd = httpcall_socket(f->http, &writing)) >= 0)
            items[nitems] = (zmq_pollitem_t){ NULL, fd, writing ? ZMQ_POLLOUT : ZMQ_POLLIN, 0 };
        else {
            resolving = true;
            continue;
        }
        index[nitems++] = i;
    }
    size_t ncalls = nitems;
    if (run->cancel_fd >= 0)
        items[nitems++] = (zmq_pollitem_t){ NULL, run->cancel_fd, ZMQ_POLLIN, 0 };
    long wait_ms = next > now ? (long)((next - now) * 1000.0) + 1 : 0;
    if (resolving && wait_ms > HTTPCALL_RESOLVE_POLL_MS)
        wait_ms = HTTPCALL_RESOLVE_POLL_MS;
    if (zmq_poll(items, (int)nitems, wait_ms) < 0 && zmq_errno() != EINTR)
        return -1;
    run->cancelled = nitems > ncalls && items[ncalls].revents;
    for (size_t k = 0; k < ncalls; k++) {
        size_t i = index[k];
        if (!items[k].revents)
            continue;
        if (run->flights[i].zsock) {
            read_zmq(run, i);
        } else {
            httpcall_advance(run->flights[i].http);
            settle_http(run, i);
        }
    }
    bool writing;
    for (size_t i = 0; resolving && i < run->sent; i++)
        if (run->calls[i].state == GATHER_PENDING && run->flights[i].http
            && httpcall_socket(run->flights[i].http, &writing) < 0) {
            httpcall_advance(run->flights[i].http);
            settle_http(run, i);
        }
    return 0;
}

/* Ends a call the run left pending: cancelled, timed out, or never sent. */
static void end_unfinished(run_t *run, size_t i)
{
    if (run->cancelled)
        finish(run, i, GATHER_ERROR, "Request cancelled");
    else if (run->flights[i].call)
        finish(run, i, GATHER_TIMEOUT, "Request timed out");
    else
        finish(run, i, GATHER_UNSENT, "Not sent: the run's time ran out first");
}

size_t gather_run(gather_call_t *calls, size_t n, int timeout_ms)
{
    return gather_run_until(calls, n, timeout_ms, -1);
}

size_t gather_run_until(gather_call_t *calls, size_t n, int timeout_ms, int cancel_fd)
{
    for (size_t i = 0; i < n; i++) {
        calls[i].state = GATHER_PENDING;
        calls[i].reply = NULL;
        calls[i].reply_len = 0;
        calls[i].http_status = 0;
        calls[i].error[0] = '\0';
    }
    double deadline = clock_mono() + timeout_ms / 1000.0;
    run_t run = { .calls = calls, .n = n, .flights = calloc(n ? n : 1, sizeof(flight_t)),
                  .deadline = deadline, .timeout_ms = timeout_ms, .cancel_fd = cancel_fd };
    zmq_pollitem_t *items = calloc(GATHER_IN_FLIGHT + 1, sizeof *items);
    size_t *index = calloc(GATHER_IN_FLIGHT + 1, sizeof *index);
    start_more(&run, clock_mono());     /* even with no time: the first are always sent */
    for (;;) {
        double now = clock_mono();
        double next = expire(&run, now, deadline);
        if (now >= deadline || !pending(&run) || run.cancelled)
            break;
        if (run.in_flight < GATHER_IN_FLIGHT && run.sent < n) {
            start_more(&run, now);
            continue;               /* the new calls' deadlines count too */
        }
        if (poll_once(&run, items, index, next, now) < 0)
            break;
    }
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        if (calls[i].state == GATHER_PENDING)
            end_unfinished(&run, i);
        ok += calls[i].state == GATHER_OK;
    }
    free(run.flights);
    free(items);
    free(index);
    return ok;
}

void gather_clear(gather_call_t *calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(calls[i].reply);
        calls[i].reply = NULL;
        calls[i].reply_len = 0;
    }
}

json_t *gather_reply_json(const gather_call_t *call)
{
    if (call->state != GATHER_OK)
        return NULL;
    return wirejson_load(call->reply, call->reply_len);
}
