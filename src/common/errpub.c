/*  errpub: see errpub.h.
 *
 *  A plain PUB drops what it sends before the bus's subscription has
 *  arrived (about the first second after a connect, and while the bus is
 *  restarting), so reports made at start-up were lost.  An XPUB sees the
 *  subscription come and go: until the bus is subscribed, reports are held
 *  (at most HOLD_MAX, the oldest dropped and counted first), and a ticker
 *  (actor.h) sends them as soon as it is.  It comes round every FLUSH_S
 *  only while something is held, so an idle service is not woken for it. */
#include "errpub.h"
#include "actor.h"
#include "clock.h"
#include "log.h"
#include "wire.h"
#include "wirejson.h"
#include "zsocket.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define HOLD_MAX 1000
#define FLUSH_S 0.05
#define IDLE_S 3600

struct errpub_t {
    pthread_mutex_t lock;
    void *socket;
    char *agent;
    bool subscribed;
    char *held[HOLD_MAX];       /* frames waiting for the bus, oldest first */
    size_t held_len[HOLD_MAX];
    int nheld;
    unsigned long dropped;
    actor_t *flusher;
};

/* Reads subscribe (1) and unsubscribe (0) notices from the bus. */
static void read_subscriptions(errpub_t *self)
{
    unsigned char notice[64];
    while (self->socket && zmq_recv(self->socket, notice, sizeof notice, ZMQ_DONTWAIT) > 0)
        self->subscribed = notice[0] == 1;
}

static void send_held(errpub_t *self)
{
    int sent = 0;
    while (self->subscribed && sent < self->nheld) {
        if (zmq_send(self->socket, self->held[sent], self->held_len[sent], ZMQ_DONTWAIT) < 0)
            break;
        free(self->held[sent++]);
    }
    memmove(self->held, self->held + sent, (size_t)(self->nheld - sent) * sizeof self->held[0]);
    memmove(self->held_len, self->held_len + sent,
            (size_t)(self->nheld - sent) * sizeof self->held_len[0]);
    self->nheld -= sent;
}

static void hold(errpub_t *self, char *frame, size_t len)
{
    if (self->nheld == 0) {
        actor_set_interval(self->flusher, FLUSH_S);
        actor_wake(self->flusher);
    }
    if (self->nheld == HOLD_MAX) {
        free(self->held[0]);
        memmove(self->held, self->held + 1, (HOLD_MAX - 1) * sizeof self->held[0]);
        memmove(self->held_len, self->held_len + 1, (HOLD_MAX - 1) * sizeof self->held_len[0]);
        self->nheld--;
        if (self->dropped++ % 100 == 0)
            log_warn(self->agent, "error bus unreachable: %lu reports dropped", self->dropped);
    }
    self->held[self->nheld] = frame;
    self->held_len[self->nheld++] = len;
}

/* The flusher's pass, with the lock it shares with the reporters. */
static void flush(void *arg)
{
    errpub_t *self = arg;
    pthread_mutex_lock(&self->lock);
    read_subscriptions(self);
    send_held(self);
    actor_set_interval(self->flusher, self->nheld ? FLUSH_S : IDLE_S);
    pthread_mutex_unlock(&self->lock);
}

errpub_t *errpub_new(const char *endpoint, const char *agent)
{
    errpub_t *self = calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    self->agent = strdup(agent);
    /* An XPUB that connects: a client of the bus's SUB, which binds. */
    self->socket = zsocket_new(ZMQ_XPUB, ZSOCKET_AGENT_CLIENT, 0);
    if (!self->socket)
        log_warn(agent, "SECURE_ZMQ is on but no client key: errors will not reach the bus");
    else if (zmq_connect(self->socket, endpoint) != 0)
        log_warn(agent, "error bus endpoint %s refused: %s", endpoint, zmq_strerror(zmq_errno()));
    self->flusher = actor_new("errpub flusher", FLUSH_S, flush, self);
    return self;
}

int errpub_start(errpub_t *self)
{
    return actor_start(self->flusher);
}

void errpub_destroy(errpub_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    errpub_t *self = *self_p;
    actor_destroy(&self->flusher);
    pthread_mutex_lock(&self->lock);
    read_subscriptions(self);
    send_held(self);        /* a last chance for reports made while stopping */
    for (int i = 0; i < self->nheld; i++)
        free(self->held[i]);
    pthread_mutex_unlock(&self->lock);
    if (self->socket)
        zmq_close(self->socket);
    pthread_mutex_destroy(&self->lock);
    free(self->agent);
    free(self);
    *self_p = NULL;
}

int errpub_report(errpub_t *self, const char *error_type, const char *severity,
                  json_t *details, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    json_t *event = json_pack("{s:f, s:s, s:s, s:s, s:s, s:o}", "timestamp", clock_wall(),
                              "agent", self->agent, "error_type", error_type,
                              "message", message, "severity", severity,
                              "details", details ? json_incref(details) : json_object());
    size_t len;
    char *body = wirejson_dump(event, &len);
    json_decref(event);
    if (!body)
        return -1;
    char *frame = malloc(len + 7);
    memcpy(frame, "ERROR:", 6);
    memcpy(frame + 6, body, len + 1);
    free(body);
    pthread_mutex_lock(&self->lock);
    read_subscriptions(self);
    send_held(self);
    int rc = 0;
    if (self->subscribed && self->nheld == 0) {
        rc = zmq_send(self->socket, frame, len + 6, ZMQ_DONTWAIT) < 0 ? -1 : 0;
        free(frame);
    } else {
        hold(self, frame, len + 6);
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}
