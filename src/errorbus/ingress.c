/*  ingress: see ingress.h.
 *
 *  ZMQ drops silently at the high-water mark, so the mark is set high
 *  (errorbus.rcvhwm) and its runner's (actor.h) only work is parse and
 *  enqueue.  When the store's queue is full the runner waits for the writer, and
 *  the burst backs up into this socket's buffer and the TCP connections
 *  behind it; the store drops (and counts) only when its writer is stuck.  The socket
 *  is read without waiting until it is empty and polled (250 ms, or until
 *  the runner's stop descriptor turns readable) only then, which keeps
 *  shutdown prompt (EB-47) without a poll per message.
 *  Counters are kept locally and folded into the metrics registry every
 *  few thousand messages or on a quiet poll, off the per-message path. */
#include "ingress.h"
#include "actor.h"
#include "clock.h"
#include "log.h"
#include "names.h"
#include "wire.h"
#include "zsocket.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define MAX_FRAMES 3
#define POLL_MS 250
#define FLUSH_EVERY 4096
/* Between two beats: a poll, or FLUSH_EVERY messages each of which may
 * wait for room in a full store queue. */
#define WATCH_S 5.0

struct ingress_t {
    void *sub;
    evstore_t *store;
    metrics_t *metrics;
    size_t max_event;
    actor_t *reader;
    atomic_long received;
    long unflushed[FRAMING_NATS + 1];
    double last_warning;        /* quarantine warnings: at most one a second */
    long unwarned;
};

static actor_run_fn read_events;

ingress_t *ingress_new(const char *endpoint, evstore_t *store, metrics_t *metrics, liveness_t *liveness,
                       int rcvhwm, size_t max_event)
{
    ingress_t *self = calloc(1, sizeof *self);
    self->store = store;
    self->metrics = metrics;
    self->max_event = max_event;
    /* The kept agents publish here, and Keel's own services with them
     * (errpub): CURVE only when the agents speak it (agent_curve). */
    self->sub = zsocket_new(ZMQ_SUB, ZSOCKET_AGENT_SERVER, max_event * 4 + (64 << 10));
    if (self->sub) {
        zmq_setsockopt(self->sub, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
        zmq_setsockopt(self->sub, ZMQ_SUBSCRIBE, "ERROR", 5);
    }
    if (!self->sub || zmq_bind(self->sub, endpoint) != 0) {
        log_error("errorbus", "cannot bind the ingress on %s: %s", endpoint,
                  self->sub ? zmq_strerror(zmq_errno()) : "no server socket");
        if (self->sub)
            zmq_close(self->sub);
        free(self);
        return NULL;
    }
    self->reader = actor_new_runner("errorbus ingress", read_events, NULL, self);
    actor_watch(self->reader, liveness, WATCH_S);
    if (metrics)
        metrics_declare(metrics, "keel_errorbus_received_total",
                        "Ingress messages received, by framing.", METRIC_COUNTER, NULL, 0);
    log_info("errorbus", "ingress bound on %s (rcvhwm %d)", endpoint, rcvhwm);
    return self;
}

void ingress_destroy(ingress_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ingress_t *self = *self_p;
    actor_destroy(&self->reader);
    zmq_close(self->sub);
    free(self);
    *self_p = NULL;
}

long ingress_received(ingress_t *self)
{
    return atomic_load(&self->received);
}

static void flush_counts(ingress_t *self)
{
    for (int f = 0; f <= FRAMING_NATS; f++) {
        if (!self->unflushed[f])
            continue;
        if (self->metrics) {
            char labels[64];
            metrics_labels(labels, sizeof labels, "framing", framing_name((framing_t)f), NULL);
            metrics_add(self->metrics, "keel_errorbus_received_total", labels,
                        (double)self->unflushed[f]);
        }
        self->unflushed[f] = 0;
    }
}

/* A flood of garbage must not become a flood of log lines: the table and
 * the counter keep every one, the log gets one line a second. */
static void warn_quarantined(ingress_t *self, const char *framing, const char *why)
{
    double now = clock_mono();
    if (now - self->last_warning < 1.0) {
        self->unwarned++;
        return;
    }
    log_warn("errorbus", "%s ingress message quarantined: %s (%ld more since the last warning)",
             framing, why, self->unwarned);
    self->last_warning = now;
    self->unwarned = 0;
}

static void handle(ingress_t *self, zmq_msg_t *frames, size_t nframes, size_t total)
{
    atomic_fetch_add(&self->received, 1);
    const void *data[MAX_FRAMES];
    size_t lens[MAX_FRAMES];
    for (size_t i = 0; i < nframes && i < MAX_FRAMES; i++) {
        data[i] = zmq_msg_data(&frames[i]);
        lens[i] = zmq_msg_size(&frames[i]);
    }
    const void *first = data[0];
    size_t first_len = lens[0];
    const void *sample = nframes > 1 ? data[1] : first;
    size_t sample_len = nframes > 1 ? lens[1] : first_len;
    char reason[192];
    if (total > self->max_event) {
        snprintf(reason, sizeof reason, "too_large: %zu bytes (limit %zu)", total, self->max_event);
        warn_quarantined(self, "unknown", reason);
        evstore_quarantine(self->store, "unknown", reason, sample, sample_len);
        return;
    }
    const char *body;
    size_t body_len;
    framing_t framing;
    if (normalise_frames(data, lens, nframes, &body, &body_len, &framing, reason + 8,
                         sizeof reason - 8) < 0) {
        memcpy(reason, "framing:", 8);
        warn_quarantined(self, "unknown", reason);
        evstore_quarantine(self->store, "unknown", reason, sample, sample_len);
        return;
    }
    self->unflushed[framing]++;
    char why[160];
    event_t *e = normalise_text(body, body_len, framing, clock_wall(), why, sizeof why);
    if (!e) {
        snprintf(reason, sizeof reason, "payload: %s", why);
        warn_quarantined(self, framing_name(framing), why);
        evstore_quarantine(self->store, framing_name(framing), reason, body, body_len);
        return;
    }
    /* A publisher gets no reply: the event is kept whole in quarantine. */
    if (names_refuse(self->metrics, "errorbus", "agent", e->agent, why, sizeof why)) {
        snprintf(reason, sizeof reason, "name_too_long: %s", why);
        warn_quarantined(self, framing_name(framing), why);
        evstore_quarantine(self->store, framing_name(framing), reason, body, body_len);
        event_destroy(&e);
        return;
    }
    evstore_submit(self->store, e);
}

/* Reads one whole message (all its frames); 0, or -1 when none waits. */
static int receive(ingress_t *self, int flags)
{
    zmq_msg_t frames[MAX_FRAMES];
    size_t n = 0, total = 0;
    int more = 1;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, self->sub, n == 0 ? flags : 0) < 0) {
            zmq_msg_close(&part);
            if (n == 0)
                return -1;
            break;
        }
        total += zmq_msg_size(&part);
        more = zmq_msg_more(&part);
        if (n < MAX_FRAMES)
            frames[n++] = part;
        else {
            zmq_msg_close(&part);
            n++;
        }
    }
    size_t kept = n < MAX_FRAMES ? n : MAX_FRAMES;
    handle(self, frames, n, total);
    for (size_t i = 0; i < kept; i++)
        zmq_msg_close(&frames[i]);
    return 0;
}

static void read_events(actor_t *actor, void *arg)
{
    ingress_t *self = arg;
    long since_flush = 0;
    while (actor_running(actor)) {
        actor_alive(actor);
        zmq_pollitem_t items[2] = { { self->sub, 0, ZMQ_POLLIN, 0 },
                                    { NULL, actor_stop_fd(actor), ZMQ_POLLIN, 0 } };
        int rc = zmq_poll(items, 2, POLL_MS);
        if (rc < 0 && zmq_errno() != EINTR)
            break;
        if (rc <= 0 || !(items[0].revents & ZMQ_POLLIN)) {
            flush_counts(self);
            continue;
        }
        while (actor_running(actor) && receive(self, ZMQ_DONTWAIT) == 0)
            if (++since_flush >= FLUSH_EVERY) {
                flush_counts(self);
                actor_alive(actor);
                since_flush = 0;
            }
    }
    flush_counts(self);
}

int ingress_start(ingress_t *self)
{
    return actor_start(self->reader);
}

void ingress_stop(ingress_t *self)
{
    actor_stop(self->reader);
}
