/*  gather: see gather.h.
 *
 *  One zmq_poll waits on everything: the REQ sockets of the ZMQ calls and
 *  the file descriptors libcurl asks to watch (its socket callback keeps
 *  that list; its timer callback says when it wants to be called without
 *  any event).  Every call has its own deadline, the earliest of its own
 *  limit and the run's; whatever is still pending at the run's deadline
 *  ends in GATHER_TIMEOUT, so gather_run never returns late by more than
 *  one poll wake. */
#include "gather.h"
#include "clock.h"
#include "wire.h"
#include "wirejson.h"
#include "zsocket.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

typedef struct {
    gather_call_t *call;
    size_t index;
    void *zsock;            /* a ZMQ call in flight */
    CURL *easy;             /* an HTTP call in flight */
    char *text;             /* the call's request written out, sent as its body */
    double started, deadline;
    bool too_large;
} flight_t;

typedef struct {
    curl_socket_t fd;
    int what;               /* CURL_POLL_IN / _OUT / _INOUT */
} watched_t;

typedef struct {
    gather_call_t *calls;
    flight_t *flights;
    size_t n;
    CURLM *multi;
    watched_t *watched;
    size_t nwatched, watched_cap;
    double curl_due;        /* when libcurl wants a timeout call; 0: never */
    int cancel_fd;          /* readable: end the run now; -1 for none */
    bool cancelled;
} run_t;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void finish(run_t *run, size_t i, gather_state_t state, const char *error)
{
    gather_call_t *call = &run->calls[i];
    flight_t *f = &run->flights[i];
    call->state = state;
    call->latency_s = clock_mono() - f->started;
    if (error)
        snprintf(call->error, sizeof call->error, "%s", error);
    if (f->zsock) {
        zmq_close(f->zsock);
        f->zsock = NULL;
    }
    if (f->easy) {
        curl_multi_remove_handle(run->multi, f->easy);
        curl_easy_cleanup(f->easy);
        f->easy = NULL;
    }
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

static size_t keep_body(char *data, size_t size, size_t nmemb, void *arg)
{
    flight_t *f = arg;
    gather_call_t *call = f->call;
    size_t len = size * nmemb;
    if (call->reply_len + len > GATHER_MAX_REPLY) {
        f->too_large = true;
        return 0;           /* libcurl ends the transfer with a write error */
    }
    char *grown = realloc(call->reply, call->reply_len + len + 1);
    if (!grown)
        return 0;
    call->reply = grown;
    memcpy(call->reply + call->reply_len, data, len);
    call->reply_len += len;
    call->reply[call->reply_len] = '\0';
    return len;
}

static int watch_socket(CURL *easy, curl_socket_t fd, int what, void *arg, void *socketp)
{
    (void)easy;
    (void)socketp;
    run_t *run = arg;
    size_t k = 0;
    while (k < run->nwatched && run->watched[k].fd != fd)
        k++;
    if (what == CURL_POLL_REMOVE) {
        if (k < run->nwatched)
            run->watched[k] = run->watched[--run->nwatched];
        return 0;
    }
    if (k == run->nwatched) {
        if (run->nwatched == run->watched_cap) {
            run->watched_cap = run->watched_cap ? 2 * run->watched_cap : 8;
            run->watched = realloc(run->watched, run->watched_cap * sizeof *run->watched);
        }
        run->nwatched++;
    }
    run->watched[k] = (watched_t){ fd, what };
    return 0;
}

static int set_curl_timer(CURLM *multi, long timeout_ms, void *arg)
{
    (void)multi;
    run_t *run = arg;
    run->curl_due = timeout_ms < 0 ? 0 : clock_mono() + timeout_ms / 1000.0;
    return 0;
}

/* libcurl is started by the first run with an HTTP call, so a sweep of
 * ZMQ probes never pays for it. */
static CURLM *http_multi(run_t *run)
{
    if (!run->multi) {
        pthread_once(&curl_once, curl_init);
        run->multi = curl_multi_init();
        curl_multi_setopt(run->multi, CURLMOPT_SOCKETFUNCTION, watch_socket);
        curl_multi_setopt(run->multi, CURLMOPT_SOCKETDATA, run);
        curl_multi_setopt(run->multi, CURLMOPT_TIMERFUNCTION, set_curl_timer);
        curl_multi_setopt(run->multi, CURLMOPT_TIMERDATA, run);
    }
    return run->multi;
}

static void start_http(run_t *run, size_t i, long limit_ms)
{
    gather_call_t *call = &run->calls[i];
    CURLM *multi = http_multi(run);
    CURL *easy = multi ? curl_easy_init() : NULL;
    if (!easy) {
        finish(run, i, GATHER_ERROR, "cannot make an HTTP request");
        return;
    }
    run->flights[i].easy = easy;
    curl_easy_setopt(easy, CURLOPT_URL, call->url);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)&run->flights[i]);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, keep_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &run->flights[i]);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, limit_ms > 0 ? limit_ms : 1L);
    /* Peers are Keel services and agents: never through a proxy the
     * environment names, and never any scheme but plain HTTP. */
    curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http");
    size_t len;
    const char *body = body_of(&run->flights[i], &len);
    if (body) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    if (curl_multi_add_handle(multi, easy) != CURLM_OK) {
        finish(run, i, GATHER_ERROR, "cannot start an HTTP request");
        return;
    }
}

static void collect_http(run_t *run)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(run->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        flight_t *f = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
        size_t i = f->index;
        CURLcode rc = msg->data.result;
        if (rc == CURLE_OK) {
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &run->calls[i].http_status);
            finish(run, i, GATHER_OK, NULL);
        } else if (run->flights[i].too_large) {
            finish(run, i, GATHER_ERROR, "reply too large");
        } else if (rc == CURLE_OPERATION_TIMEDOUT) {
            finish(run, i, GATHER_TIMEOUT, "Request timed out");     /* as a ZMQ call says it */
        } else {
            char error[160];
            snprintf(error, sizeof error, "HTTP error: %s", curl_easy_strerror(rc));
            finish(run, i, GATHER_ERROR, error);
        }
    }
}

static void curl_act(run_t *run, curl_socket_t fd, int flags)
{
    int running;
    curl_multi_socket_action(run->multi, fd, flags, &running);
    collect_http(run);
}

/* ---- the loop -------------------------------------------------------------- */

static bool is_http(const char *url)
{
    return url && strncmp(url, "http://", 7) == 0;
}

static void start_calls(run_t *run, double started, int timeout_ms)
{
    for (size_t i = 0; i < run->n; i++) {
        gather_call_t *call = &run->calls[i];
        int limit = call->timeout_ms > 0 && call->timeout_ms < timeout_ms ? call->timeout_ms : timeout_ms;
        run->flights[i] = (flight_t){ .call = call, .index = i, .started = started,
                                      .deadline = started + limit / 1000.0 };
        if (is_http(call->url))
            start_http(run, i, limit);
        else if (call->url && strncmp(call->url, "tcp://", 6) == 0)
            start_zmq(run, i);
        else
            finish(run, i, GATHER_ERROR, "not a tcp:// or http:// address");
    }
}

/* Ends the ZMQ calls past their own deadline; returns the earliest
 * deadline still pending, or `limit` when it is earlier. */
static double expire_zmq(run_t *run, double now, double limit)
{
    double next = limit;
    for (size_t i = 0; i < run->n; i++) {
        if (run->calls[i].state != GATHER_PENDING || !run->flights[i].zsock)
            continue;
        if (now >= run->flights[i].deadline)
            finish(run, i, GATHER_TIMEOUT, "Request timed out");
        else if (run->flights[i].deadline < next)
            next = run->flights[i].deadline;
    }
    return next;
}

static size_t pending(run_t *run)
{
    size_t count = 0;
    for (size_t i = 0; i < run->n; i++)
        count += run->calls[i].state == GATHER_PENDING;
    return count;
}

/* One poll over every pending socket; returns -1 when polling fails. */
static int poll_once(run_t *run, zmq_pollitem_t *items, size_t *index, double next, double now)
{
    size_t nitems = 0;
    for (size_t i = 0; i < run->n; i++)
        if (run->calls[i].state == GATHER_PENDING && run->flights[i].zsock) {
            items[nitems] = (zmq_pollitem_t){ run->flights[i].zsock, 0, ZMQ_POLLIN, 0 };
            index[nitems++] = i;
        }
    size_t nzmq = nitems;
    for (size_t k = 0; k < run->nwatched; k++) {
        short events = (short)(((run->watched[k].what & CURL_POLL_IN) ? ZMQ_POLLIN : 0)
                               | ((run->watched[k].what & CURL_POLL_OUT) ? ZMQ_POLLOUT : 0));
        items[nitems++] = (zmq_pollitem_t){ NULL, run->watched[k].fd, events, 0 };
    }
    size_t ncurl = nitems;
    if (run->cancel_fd >= 0)
        items[nitems++] = (zmq_pollitem_t){ NULL, run->cancel_fd, ZMQ_POLLIN, 0 };
    if (run->curl_due && run->curl_due < next)
        next = run->curl_due;
    long wait_ms = next > now ? (long)((next - now) * 1000.0) + 1 : 0;
    if (zmq_poll(items, (int)nitems, wait_ms) < 0 && zmq_errno() != EINTR)
        return -1;
    for (size_t k = 0; k < nzmq; k++)
        if (items[k].revents && run->calls[index[k]].state == GATHER_PENDING)
            read_zmq(run, index[k]);
    run->cancelled = nitems > ncurl && items[ncurl].revents;
    for (size_t k = nzmq; k < ncurl; k++)
        if (items[k].revents)
            curl_act(run, items[k].fd, ((items[k].revents & ZMQ_POLLIN) ? CURL_CSELECT_IN : 0)
                                       | ((items[k].revents & ZMQ_POLLOUT) ? CURL_CSELECT_OUT : 0)
                                       | ((items[k].revents & ZMQ_POLLERR) ? CURL_CSELECT_ERR : 0));
    if (run->curl_due && clock_mono() >= run->curl_due) {
        run->curl_due = 0;
        curl_act(run, CURL_SOCKET_TIMEOUT, 0);
    }
    return 0;
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
    run_t run = { .calls = calls, .n = n, .flights = calloc(n ? n : 1, sizeof(flight_t)),
                  .cancel_fd = cancel_fd };
    double started = clock_mono(), deadline = started + timeout_ms / 1000.0;
    start_calls(&run, started, timeout_ms);
    zmq_pollitem_t *items = NULL;
    size_t *index = calloc(n ? n : 1, sizeof *index), items_cap = 0;
    for (;;) {
        double now = clock_mono();
        double next = expire_zmq(&run, now, deadline);
        if (now >= deadline || !pending(&run) || run.cancelled)
            break;
        if (items_cap < n + run.nwatched + 1) {
            items_cap = n + run.nwatched + 1;
            items = realloc(items, items_cap * sizeof *items);
        }
        if (poll_once(&run, items, index, next, now) < 0)
            break;
    }
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        if (calls[i].state == GATHER_PENDING)
            finish(&run, i, run.cancelled ? GATHER_ERROR : GATHER_TIMEOUT,
                   run.cancelled ? "Request cancelled" : "Request timed out");
        ok += calls[i].state == GATHER_OK;
    }
    if (run.multi)
        curl_multi_cleanup(run.multi);
    free(run.watched);
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
