/*  perffeeds: see perffeeds.h.  Sends never block (ZMQ_DONTWAIT): a PUB with no
 *  subscriber drops the message, which is the semantics of the original. */
#include "perffeeds.h"
#include "actor.h"
#include "clock.h"
#include "log.h"
#include "zsocket.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct perffeeds_t {
    perfmon_t *perf;
    errpub_t *errors;
    void *metrics_pub, *health_pub;
    double started;
    actor_t *ticker;
};

static void *open_pub(const char *endpoint)
{
    void *pub = zsocket_new(ZMQ_PUB, ZSOCKET_AGENT_SERVER, 0);
    if (pub && zmq_bind(pub, endpoint) == 0)
        return pub;
    log_warn("observability", "cannot bind %s: %s", endpoint,
             pub ? zmq_strerror(zmq_errno()) : "no server socket");
    if (pub)
        zmq_close(pub);
    return NULL;
}

static int send_json(void *pub, json_t *value)
{
    char *text = value ? json_dumps(value, JSON_COMPACT) : NULL;
    int rc = text && zmq_send(pub, text, strlen(text), ZMQ_DONTWAIT) >= 0 ? 0 : -1;
    free(text);
    json_decref(value);
    return rc;
}

static void broadcast(void *arg)
{
    perffeeds_t *self = arg;
    if (self->metrics_pub && send_json(self->metrics_pub, perfmon_metrics(self->perf)) < 0
        && zmq_errno() != EAGAIN)
        errpub_report(self->errors, "metrics_broadcast_error", "ERROR", NULL,
                      "metrics broadcast failed: %s", zmq_strerror(zmq_errno()));
    if (self->health_pub
        && send_json(self->health_pub, perfmon_health(self->perf, clock_mono() - self->started)) < 0
        && zmq_errno() != EAGAIN)
        errpub_report(self->errors, "health_monitoring_error", "ERROR", NULL,
                      "health broadcast failed: %s", zmq_strerror(zmq_errno()));
}

perffeeds_t *perffeeds_new(perfmon_t *perf, errpub_t *errors, const char *metrics_endpoint,
                   const char *health_endpoint, double interval_s, double started_mono)
{
    void *m = open_pub(metrics_endpoint), *h = open_pub(health_endpoint);
    if (!m && !h)
        return NULL;
    perffeeds_t *self = calloc(1, sizeof *self);
    self->perf = perf;
    self->errors = errors;
    self->metrics_pub = m;
    self->health_pub = h;
    self->started = started_mono;
    self->ticker = actor_new("obs perffeeds", interval_s > 0.01 ? interval_s : 0.01, broadcast, self);
    return self;
}

int perffeeds_start(perffeeds_t *self)
{
    return actor_start(self->ticker);
}

void perffeeds_destroy(perffeeds_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    perffeeds_t *self = *self_p;
    actor_destroy(&self->ticker);
    if (self->metrics_pub)
        zmq_close(self->metrics_pub);
    if (self->health_pub)
        zmq_close(self->health_pub);
    free(self);
    *self_p = NULL;
}
