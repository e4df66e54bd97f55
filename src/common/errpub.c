/*  errpub: see errpub.h. */
#include "errpub.h"
#include "clock.h"
#include "log.h"
#include "wire.h"
#include "zcurve.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct errpub_t {
    pthread_mutex_t lock;
    void *socket;
    char *agent;
};

errpub_t *errpub_new(const char *endpoint, const char *agent)
{
    errpub_t *self = calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    self->agent = strdup(agent);
    self->socket = zmq_socket(wire_context(), ZMQ_PUB);
    int zero = 0;
    zmq_setsockopt(self->socket, ZMQ_LINGER, &zero, sizeof zero);
    if (zcurve_client(self->socket) < 0)
        log_warn(agent, "SECURE_ZMQ is on but no client key: errors will not reach the bus");
    else if (zmq_connect(self->socket, endpoint) != 0)
        log_warn(agent, "error bus endpoint %s refused: %s", endpoint, zmq_strerror(zmq_errno()));
    return self;
}

void errpub_destroy(errpub_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    errpub_t *self = *self_p;
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
    char *body = json_dumps(event, JSON_COMPACT);
    json_decref(event);
    if (!body)
        return -1;
    size_t len = strlen(body);
    char *frame = malloc(len + 7);
    memcpy(frame, "ERROR:", 6);
    memcpy(frame + 6, body, len + 1);
    free(body);
    pthread_mutex_lock(&self->lock);
    int rc = zmq_send(self->socket, frame, len + 6, ZMQ_DONTWAIT);
    pthread_mutex_unlock(&self->lock);
    free(frame);
    return rc < 0 ? -1 : 0;
}
