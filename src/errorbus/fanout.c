/*  fanout: see fanout.h.
 *
 *  The socket is an XPUB so the runner (actor.h) knows whether anyone
 *  subscribes:
 *  with no subscriber and no NATS bridge, events are not rendered at all,
 *  which leaves the CPU to the ingress and the writer.
 *  The queue between the writer and the runner is bounded like the
 *  ingress queue: past the bound an event is stored but not re-published,
 *  and the miss is counted (keel_errorbus_fanout_dropped_total).  The PUB
 *  socket drops for a subscriber that does not keep up, which is what PUB
 *  means; the bus's own record is the database, not the fan-out. */
#include "fanout.h"
#include "actor.h"
#include "log.h"
#include "zsocket.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define IDLE_S 3600             /* a push wakes it */

typedef struct {
    event_t *event;
    char *alert;                /* or an alert's JSON text */
    char alert_topic[32];
} out_t;

typedef struct {
    out_t *items;
    size_t n, cap;
} outq_t;

struct fanout_t {
    void *pub;                  /* XPUB: a PUB that also reports subscriptions */
    long topics;                /* subscriptions held by connected subscribers */
    metrics_t *metrics;
    fanout_bridge_fn *bridge;
    void *bridge_ctx;
    actor_t *sender;
    pthread_mutex_t lock;
    outq_t pending;
    size_t queue_max;
};

static actor_run_fn send_queue;

fanout_t *fanout_new(const char *endpoint, metrics_t *metrics, size_t queue_max)
{
    fanout_t *self = calloc(1, sizeof *self);
    self->metrics = metrics;
    self->queue_max = queue_max ? queue_max : 1;
    pthread_mutex_init(&self->lock, NULL);
    self->sender = actor_new_runner("errorbus fanout", send_queue, NULL, self);
    self->pub = zsocket_new(ZMQ_XPUB, ZSOCKET_SERVER, 0);
    int hwm = 100000;
    if (self->pub)
        zmq_setsockopt(self->pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (!self->pub || zmq_bind(self->pub, endpoint) != 0) {
        log_error("errorbus", "cannot bind the fan-out on %s: %s", endpoint,
                  self->pub ? zmq_strerror(zmq_errno()) : "no server socket");
        fanout_destroy(&self);
        return NULL;
    }
    if (metrics) {
        metrics_declare(metrics, "keel_errorbus_published_total",
                        "Stored events re-published on the fan-out.", METRIC_COUNTER, NULL, 0);
        metrics_declare(metrics, "keel_errorbus_fanout_dropped_total",
                        "Stored events not re-published because the fan-out queue was full.",
                        METRIC_COUNTER, NULL, 0);
        metrics_declare(metrics, "keel_errorbus_alerts_total", "Alerts raised, by kind.",
                        METRIC_COUNTER, NULL, 0);
    }
    return self;
}

static void out_free(out_t *o)
{
    event_destroy(&o->event);
    free(o->alert);
}

void fanout_destroy(fanout_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fanout_t *self = *self_p;
    actor_destroy(&self->sender);
    for (size_t i = 0; i < self->pending.n; i++)
        out_free(&self->pending.items[i]);
    free(self->pending.items);
    if (self->pub)
        zmq_close(self->pub);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

void fanout_set_bridge(fanout_t *self, fanout_bridge_fn *fn, void *ctx)
{
    self->bridge = fn;
    self->bridge_ctx = ctx;
}

/* Appends under the lock; false (and nothing kept) when full. */
static bool push(fanout_t *self, out_t *o)
{
    if (self->pending.n >= self->queue_max)
        return false;
    if (self->pending.n == self->pending.cap) {
        size_t cap = self->pending.cap ? self->pending.cap * 2 : 1024;
        out_t *grown = realloc(self->pending.items, cap * sizeof *grown);
        if (!grown)
            return false;
        self->pending.items = grown;
        self->pending.cap = cap;
    }
    self->pending.items[self->pending.n++] = *o;
    return true;
}

void fanout_events(void *arg, event_t **events, size_t n)
{
    fanout_t *self = arg;
    long dropped = 0;
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < n; i++) {
        out_t o = { .event = events[i] };
        if (!push(self, &o)) {
            event_destroy(&events[i]);
            dropped++;
        }
    }
    pthread_mutex_unlock(&self->lock);
    actor_wake(self->sender);
    if (dropped && self->metrics)
        metrics_add(self->metrics, "keel_errorbus_fanout_dropped_total", "", (double)dropped);
}

void fanout_alert(fanout_t *self, json_t *alert)
{
    out_t o = { .alert = json_dumps(alert, JSON_COMPACT) };
    snprintf(o.alert_topic, sizeof o.alert_topic, "ALERT:%s",
             json_string_value(json_object_get(alert, "severity")) ?: "warning");
    if (self->metrics) {
        char labels[96];
        metrics_labels(labels, sizeof labels, "kind",
                       json_string_value(json_object_get(alert, "kind")) ?: "unknown", NULL);
        metrics_add(self->metrics, "keel_errorbus_alerts_total", labels, 1);
    }
    pthread_mutex_lock(&self->lock);
    bool kept = o.alert && push(self, &o);
    pthread_mutex_unlock(&self->lock);
    actor_wake(self->sender);
    if (!kept)
        free(o.alert);
}

static void send_two(void *pub, const char *topic, const char *body, size_t len)
{
    if (zmq_send(pub, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(pub, body, len, ZMQ_DONTWAIT);
}

/* Reads the subscription messages XPUB queued (1 = subscribe, 0 =
 * unsubscribe, also sent when a subscriber goes away). */
static void read_subscriptions(fanout_t *self)
{
    char buf[512];
    int n;
    while ((n = zmq_recv(self->pub, buf, sizeof buf, ZMQ_DONTWAIT)) > 0)
        self->topics += buf[0] == 1 ? 1 : buf[0] == 0 ? -1 : 0;
}

static void send_one(fanout_t *self, out_t *o)
{
    /* Nobody listening and no bridge: rendering the record would be waste. */
    if (self->topics <= 0 && !(o->event && self->bridge))
        return;
    if (o->alert) {
        send_two(self->pub, o->alert_topic, o->alert, strlen(o->alert));
        return;
    }
    size_t len;
    char *text = event_to_text(o->event, &len);
    if (!text)
        return;
    char topic[320];
    snprintf(topic, sizeof topic, "ERROR:%s:%.256s", o->event->level, o->event->agent);
    send_two(self->pub, topic, text, len);
    if (self->bridge && o->event->framing != FRAMING_NATS)
        self->bridge(self->bridge_ctx, o->event, text, len);
    free(text);
}

/* Once stopped, sends what is queued and ends when a swap finds the queue
 * empty: the store, its only producer, stops first. */
static void send_queue(actor_t *actor, void *arg)
{
    fanout_t *self = arg;
    outq_t mine = { 0 };
    for (;;) {
        bool running = actor_running(actor);
        pthread_mutex_lock(&self->lock);
        outq_t swap = self->pending;
        self->pending = mine;
        mine = swap;
        pthread_mutex_unlock(&self->lock);
        if (mine.n == 0) {
            if (!running)
                break;
            actor_wait(actor, IDLE_S);
            continue;
        }
        read_subscriptions(self);
        for (size_t i = 0; i < mine.n; i++) {
            send_one(self, &mine.items[i]);
            out_free(&mine.items[i]);
        }
        if (self->metrics)
            metrics_add(self->metrics, "keel_errorbus_published_total", "", (double)mine.n);
        mine.n = 0;
    }
    free(mine.items);
}

int fanout_start(fanout_t *self)
{
    return actor_start(self->sender);
}
