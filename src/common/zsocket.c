/*  zsocket: see zsocket.h.  The only zmq_socket call in src/ is here;
 *  tests/check-blocks.sh (run by `make unit`) fails the build's tests when
 *  another appears. */
#include "zsocket.h"
#include "log.h"
#include "zcurve.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <zmq.h>

static pthread_once_t context_once = PTHREAD_ONCE_INIT, apart_once = PTHREAD_ONCE_INIT;
static void *context, *apart;
static pthread_mutex_t zap_lock = PTHREAD_MUTEX_INITIALIZER;
static bool zap_serving;

static void context_init(void)
{
    context = zmq_ctx_new();
    zmq_ctx_set(context, ZMQ_MAX_SOCKETS, 65536);
}

static void *process_context(void)
{
    pthread_once(&context_once, context_init);
    return context;
}

static void apart_init(void)
{
    apart = zmq_ctx_new();
    zmq_ctx_set(apart, ZMQ_MAX_SOCKETS, 65536);
}

void zsocket_inproc_endpoint(char *buf, size_t len, const char *what)
{
    static atomic_uint next;
    snprintf(buf, len, "inproc://%s-%u", what, atomic_fetch_add(&next, 1));
}

void *zsocket_apart_context(void)
{
    pthread_once(&apart_once, apart_init);
    return apart;
}

static void *plain_socket(void *ctx, int type, size_t max_frame)
{
    void *socket = zmq_socket(ctx, type);
    if (!socket) {
        log_error("zsocket", "cannot make a ZMQ socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    int zero = 0;
    int64_t cap = (int64_t)(max_frame ? max_frame : ZSOCKET_FAR_CAP);
    zmq_setsockopt(socket, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(socket, ZMQ_MAXMSGSIZE, &cap, sizeof cap);
    return socket;
}

/* The ZAP handler's REP socket is made here, like every other, and handed
 * to zcurve, which binds and serves it. */
static int zap_ensure(void)
{
    pthread_mutex_lock(&zap_lock);
    int rc = 0;
    if (!zap_serving) {
        void *rep = plain_socket(process_context(), ZMQ_REP, 0);
        rc = rep ? zcurve_serve_zap(rep) : -1;
        zap_serving = rc == 0;
    }
    pthread_mutex_unlock(&zap_lock);
    return rc;
}

/* Whether a socket of this role uses CURVE now. */
static bool curve_for(zsocket_role_t role)
{
    switch (role) {
    case ZSOCKET_SERVER:
    case ZSOCKET_CLIENT: return zcurve_enabled();
    case ZSOCKET_AGENT_SERVER:
    case ZSOCKET_AGENT_CLIENT: return zcurve_enabled() && zcurve_agents_enabled();
    case ZSOCKET_INPROC: return false;
    }
    return false;
}

void *zsocket_new_in(void *ctx, int type, zsocket_role_t role, size_t max_frame)
{
    bool server = role == ZSOCKET_SERVER || role == ZSOCKET_AGENT_SERVER;
    if (server && ctx != process_context()) {
        log_error("zsocket", "a server socket outside the process's context would have no ZAP handler");
        return NULL;
    }
    void *socket = plain_socket(ctx, type, max_frame);
    if (!socket)
        return NULL;
    int rc = 0;
    if (curve_for(role) && server)
        rc = zap_ensure() < 0 ? -1 : zcurve_server(socket);
    else if (curve_for(role))
        rc = zcurve_client(socket);
    if (rc < 0) {
        zmq_close(socket);
        return NULL;
    }
    return socket;
}

void *zsocket_new(int type, zsocket_role_t role, size_t max_frame)
{
    return zsocket_new_in(process_context(), type, role, max_frame);
}

void zsocket_shutdown(void)
{
    pthread_mutex_lock(&zap_lock);
    if (zap_serving)
        zcurve_shutdown();
    zap_serving = false;
    pthread_mutex_unlock(&zap_lock);
    if (apart)
        zmq_ctx_term(apart);
    zmq_ctx_term(process_context());
}
