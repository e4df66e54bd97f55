/*  zsub: see zsub.h.  Each SUB socket it opens has a monitor endpoint of its
 *  own (zsocket_inproc_endpoint), so a new socket's monitor never meets the
 *  old one's while inproc unbinds it. */
#include "zsub.h"
#include "log.h"
#include "zsocket.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct zsub_t {
    char *endpoint;
    size_t max_frame;
    void *sub, *monitor;
    long drops;
};

static void close_sockets(zsub_t *self)
{
    if (self->sub) {
        zmq_socket_monitor(self->sub, NULL, 0);
        zmq_close(self->sub);
    }
    if (self->monitor)
        zmq_close(self->monitor);
    self->sub = self->monitor = NULL;
}

static int open_sockets(zsub_t *self)
{
    char watch[96];
    zsocket_inproc_endpoint(watch, sizeof watch, "zsub-monitor");
    self->sub = zsocket_new(ZMQ_SUB, ZSOCKET_AGENT_CLIENT, self->max_frame);
    self->monitor = zsocket_new(ZMQ_PAIR, ZSOCKET_INPROC, 0);
    if (!self->sub || !self->monitor
        || zmq_socket_monitor(self->sub, watch, ZMQ_EVENT_DISCONNECTED) != 0
        || zmq_connect(self->monitor, watch) != 0) {
        close_sockets(self);
        return -1;
    }
    zmq_setsockopt(self->sub, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_connect(self->sub, self->endpoint) != 0)
        log_warn("zsub", "cannot connect to %s: %s", self->endpoint, zmq_strerror(zmq_errno()));
    return 0;
}

zsub_t *zsub_new(const char *endpoint, size_t max_frame)
{
    zsub_t *self = calloc(1, sizeof *self);
    self->endpoint = strdup(endpoint);
    self->max_frame = max_frame;
    if (open_sockets(self) < 0) {
        log_warn("zsub", "no subscription to %s: no client socket (SECURE_ZMQ without keys?)", endpoint);
        zsub_destroy(&self);
    }
    return self;
}

void zsub_destroy(zsub_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zsub_t *self = *self_p;
    close_sockets(self);
    free(self->endpoint);
    free(self);
    *self_p = NULL;
}

int zsub_pollitems(zsub_t *self, zmq_pollitem_t *items)
{
    if (!self->sub)         /* it could not be made again after a drop */
        return 0;
    items[0] = (zmq_pollitem_t){ self->sub, 0, ZMQ_POLLIN, 0 };
    items[1] = (zmq_pollitem_t){ self->monitor, 0, ZMQ_POLLIN, 0 };
    return 2;
}

/* True when the monitor reported a dropped connection (reads every event). */
static int dropped(zsub_t *self)
{
    int seen = 0;
    zmq_msg_t event;
    zmq_msg_init(&event);
    while (zmq_msg_recv(&event, self->monitor, ZMQ_DONTWAIT) >= 0) {
        uint16_t id = 0;
        if (zmq_msg_size(&event) >= sizeof id)
            memcpy(&id, zmq_msg_data(&event), sizeof id);
        seen |= id == ZMQ_EVENT_DISCONNECTED;
        while (zmq_msg_more(&event) && zmq_msg_recv(&event, self->monitor, ZMQ_DONTWAIT) >= 0)
            ;       /* the endpoint frame */
    }
    zmq_msg_close(&event);
    return seen;
}

int zsub_recv(zsub_t *self, const zmq_pollitem_t *items, zmq_msg_t *last)
{
    /* What arrived before a drop is still read first. */
    if (items[0].revents & ZMQ_POLLIN) {
        int more = 1, frames = 0;
        while (more) {
            zmq_msg_close(last);
            zmq_msg_init(last);
            if (zmq_msg_recv(last, self->sub, ZMQ_DONTWAIT) < 0)
                break;
            frames++;
            more = zmq_msg_more(last);
        }
        if (frames)
            return 1;
    }
    if ((items[1].revents & ZMQ_POLLIN) && dropped(self)) {
        self->drops++;
        log_info("zsub", "connection to %s dropped (a frame over %zu bytes, or the publisher went away): "
                 "subscribing again", self->endpoint, self->max_frame);
        close_sockets(self);
        if (open_sockets(self) < 0)
            log_error("zsub", "cannot subscribe to %s again", self->endpoint);
    }
    return 0;
}

long zsub_drops(zsub_t *self)
{
    return self->drops;
}
