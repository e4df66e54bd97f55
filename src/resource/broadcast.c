/*  broadcast: see broadcast.h.  The PUB socket is bound by _start and
 *  then used by the ticker (actor.h) alone, whose interval becomes the
 *  retry delay after a failed frame. */
#include "broadcast.h"
#include "actor.h"
#include "log.h"
#include "zsocket.h"

#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define FIRST_S 1.0             /* subscribers need not wait a whole period */
#define RETRY_S 5.0

struct broadcast_t {
    char *endpoint;
    double interval_s;
    broadcast_fn *fn;
    void *arg;
    void *pub;
    actor_t *ticker;
};

static int send_one(broadcast_t *self, void *pub)
{
    json_t *frame = self->fn(self->arg);
    char *text = frame ? json_dumps(frame, JSON_COMPACT) : NULL;
    json_decref(frame);
    int rc = text && zmq_send(pub, text, strlen(text), ZMQ_DONTWAIT) >= 0 ? 0 : -1;
    free(text);
    return rc;
}

static void send_frame(void *arg)
{
    broadcast_t *self = arg;
    actor_set_interval(self->ticker, send_one(self, self->pub) == 0 ? self->interval_s : RETRY_S);
}

broadcast_t *broadcast_new(const char *endpoint, double interval_s,
                           broadcast_fn *fn, void *arg)
{
    broadcast_t *self = calloc(1, sizeof *self);
    self->endpoint = strdup(endpoint);
    self->interval_s = interval_s > 0 ? interval_s : 30.0;
    self->fn = fn;
    self->arg = arg;
    self->ticker = actor_new("rs broadcast", FIRST_S, send_frame, self);
    actor_delay_first(self->ticker);
    return self;
}

int broadcast_start(broadcast_t *self)
{
    self->pub = zsocket_new(ZMQ_PUB, ZSOCKET_AGENT_SERVER, 0);
    if (!self->pub || zmq_bind(self->pub, self->endpoint) != 0) {
        log_error("resource", "health broadcast cannot bind %s: %s", self->endpoint,
                  self->pub ? zmq_strerror(zmq_errno()) : "no server socket");
        return -1;
    }
    log_info("resource", "health broadcast on %s every %g s", self->endpoint, self->interval_s);
    return actor_start(self->ticker);
}

void broadcast_destroy(broadcast_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broadcast_t *self = *self_p;
    actor_destroy(&self->ticker);
    if (self->pub)
        zmq_close(self->pub);
    free(self->endpoint);
    free(self);
    *self_p = NULL;
}
