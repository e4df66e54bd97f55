/*  broadcast: see broadcast.h.  The PUB socket is made, used and closed by
 *  the broadcast thread alone. */
#include "broadcast.h"
#include "log.h"
#include "zsocket.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

struct rs_broadcast_t {
    char *endpoint;
    double interval_s;
    rs_broadcast_fn *fn;
    void *arg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool running;
};

static bool pause_for(rs_broadcast_t *self, double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double at = (double)ts.tv_sec + ts.tv_nsec / 1e9 + seconds;
    ts.tv_sec = (time_t)at;
    ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
    pthread_mutex_lock(&self->lock);
    if (self->running)
        pthread_cond_timedwait(&self->wake, &self->lock, &ts);
    bool running = self->running;
    pthread_mutex_unlock(&self->lock);
    return running;
}

static int send_one(rs_broadcast_t *self, void *pub)
{
    json_t *frame = self->fn(self->arg);
    char *text = frame ? json_dumps(frame, JSON_COMPACT) : NULL;
    json_decref(frame);
    int rc = text && zmq_send(pub, text, strlen(text), ZMQ_DONTWAIT) >= 0 ? 0 : -1;
    free(text);
    return rc;
}

static void *broadcast_main(void *arg)
{
    rs_broadcast_t *self = arg;
    void *pub = zsocket_new(ZMQ_PUB, ZSOCKET_AGENT_SERVER, 0);
    if (!pub || zmq_bind(pub, self->endpoint) != 0) {
        log_error("resource", "health broadcast cannot bind %s: %s", self->endpoint,
                  pub ? zmq_strerror(zmq_errno()) : "no server socket");
        if (pub)
            zmq_close(pub);
        return NULL;
    }
    log_info("resource", "health broadcast on %s every %g s", self->endpoint, self->interval_s);
    /* A first frame soon after start, so subscribers need not wait a period. */
    double next = 1.0;
    while (pause_for(self, next))
        next = send_one(self, pub) == 0 ? self->interval_s : 5.0;
    zmq_close(pub);
    return NULL;
}

rs_broadcast_t *rs_broadcast_new(const char *endpoint, double interval_s,
                                 rs_broadcast_fn *fn, void *arg)
{
    rs_broadcast_t *self = calloc(1, sizeof *self);
    self->endpoint = strdup(endpoint);
    self->interval_s = interval_s > 0 ? interval_s : 30.0;
    self->fn = fn;
    self->arg = arg;
    self->running = true;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    pthread_create(&self->thread, NULL, broadcast_main, self);
    return self;
}

void rs_broadcast_destroy(rs_broadcast_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rs_broadcast_t *self = *self_p;
    pthread_mutex_lock(&self->lock);
    self->running = false;
    pthread_cond_broadcast(&self->wake);
    pthread_mutex_unlock(&self->lock);
    pthread_join(self->thread, NULL);
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->lock);
    free(self->endpoint);
    free(self);
    *self_p = NULL;
}
