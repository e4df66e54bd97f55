/*  wire: see wire.h.
 *
 *  A request travels as ZMQ frames [envelope..., body]: the envelope is the
 *  routing identity and, from REQ clients, the empty delimiter.  The server
 *  thread keeps the envelope and sends it back in front of the reply.  With
 *  workers, the whole message goes over inproc to a worker and the reply
 *  comes back the same way, so the ROUTER socket stays owned by one thread
 *  as ZMQ requires.  The server thread hands a job only to a worker that
 *  said it is free, and queues the rest: a job never waits behind a slow
 *  one while another worker idles (a PUSH deals them round and round,
 *  whoever is busy).  Workers start as the load needs them, up to the
 *  number set: a service that is never asked two things at once runs one
 *  (each idle thread and its socket hold some 25 kB).  The server thread
 *  and the workers are runners (actor.h) that poll with a timeout of
 *  WAIT_MS, the interval their liveness stamps are watched at, and with
 *  their stop descriptor, so a stop never waits for the timeout. */
#include "wire.h"
#include "actor.h"
#include "breaker.h"
#include "clock.h"
#include "log.h"
#include "pycompat.h"
#include "utf8.h"
#include "wirejson.h"
#include "zsocket.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zmq.h>

#define MAX_FRAMES 16
/* A client's: a job gains a prefix frame on its way to a worker, and its
 * reply the worker's id on the way back. */
#define CLIENT_FRAMES (MAX_FRAMES - 2)
#define MAX_WORKERS 16
#define MAX_ATTACHED 16
#define DRAIN_BATCH 64
#define WAIT_MS 100

/* A label's series of keel_requests_total (by outcome) and of
 * keel_request_duration_seconds, found once and then held: formatting the
 * label text and looking it up on every request cost more than the
 * lookups many requests ask for. */
typedef struct {
    _Atomic(metrics_series_t *) requests[2];    /* outcome "ok", "error" */
    _Atomic(metrics_series_t *) duration;
} meters_t;

typedef struct {
    char *name;             /* NULL for the type and raw routes */
    wire_handler_fn *fn;
    void *ctx;
    char *module;           /* the absorbed agent this route belongs to, or NULL */
    route_privilege_t privilege;
    meters_t *meters;       /* its own, made with it */
    bool inline_ok;         /* wire_server_answer_inline */
} route_t;

/* A module whose requests go to its legacy agent instead (delegation).
 * The lock guards only the table: a forward takes a reference and calls
 * with the lock released, on a client of its own, so forwards run in
 * parallel on the workers and a reload never waits on a slow agent. */
typedef struct {
    char *module;
    char *endpoint;
    int timeout_ms;
    breaker_t *breaker;     /* thread-safe itself */
    bool fallback;          /* on failure, answer with the C implementation */
    int refs;               /* the table's, plus one per forward in flight */
} delegate_t;

typedef struct {
    route_t *items;
    size_t count;
} routes_t;

struct wire_server_t {
    char *service;
    metrics_t *metrics;
    void *router;
    routes_t actions, commands, request_types;
    route_t on_type, on_raw, on_unknown;
    routes_t module_unknowns;   /* a module's own unknown-action answer, by module */
    routes_t shares;            /* {action, module}: module's legacy port serves the action too */
    privilege_t *privilege;     /* borrowed */
    size_t max_request;
    int nworkers;
    actor_t *thread;                    /* from start to stop */
    actor_t *workers[MAX_WORKERS];      /* made at start; started and stopped by the thread */
    liveness_t *liveness;               /* borrowed: the service's */
    char pool_endpoint[64];     /* the server thread's ROUTER; each worker a DEALER */
    bool started;
    meters_t invalid;       /* requests no route took: label "invalid" */
    wire_batch_begin_fn *batch_begin;   /* group commit (wire_server_set_batch), or NULL */
    wire_batch_end_fn *batch_end;
    void *batch_ctx;
    char **inline_names;    /* the names of its inline actions, found at start */
    size_t ninline;
    bool inline_raw;        /* raw pings are answered inline */
    atomic_long answered;   /* requests answered here and by the attached listeners */
    atomic_long changes;    /* of those, the ones not declared read only */
    wire_server_t *parent;  /* a legacy listener delegates through its parent */
    wire_server_t *attached[MAX_ATTACHED];  /* legacy listeners served by this thread */
    int nattached;
    pthread_mutex_t delegate_lock;
    delegate_t **delegates;
    /* Changed under the lock; read without it only to see that no module
     * is delegated, as on nearly every request, and take no lock then. */
    atomic_size_t ndelegates;
};

const char *wire_dialect_name(wire_dialect_t dialect)
{
    static const char *const names[] = { "action", "command", "type", "raw", "request_type" };
    return dialect <= WIRE_REQUEST_TYPE ? names[dialect] : "?";
}

/* ---- replies ----------------------------------------------------------- */

static json_t *error_reply(const char *key, const char *fmt, va_list ap)
{
    char text[1024];
    vsnprintf(text, sizeof text, fmt, ap);
    return json_pack("{s:s, s:s}", "status", "error", key, text);
}

json_t *wire_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *reply = error_reply("error", fmt, ap);
    va_end(ap);
    return reply;
}

json_t *wire_error_key(const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *reply = error_reply(key, fmt, ap);
    va_end(ap);
    return reply;
}

json_t *wire_success(void)
{
    return json_pack("{s:s}", "status", "success");
}

/* ---- routing ------------------------------------------------------------ */

static void route_free(route_t *route)
{
    free(route->name);
    free(route->module);
    free(route->meters);
    *route = (route_t){ 0 };
}

/* Fills `route` with a copy of the declaration's fields. */
static void route_set(route_t *route, const char *name, wire_handler_fn *fn, void *ctx,
                      const char *module, route_privilege_t privilege)
{
    route_free(route);
    *route = (route_t){ name ? strdup(name) : NULL, fn, ctx, module ? strdup(module) : NULL,
                        privilege, calloc(1, sizeof(meters_t)), false };
}

static void routes_add(routes_t *routes, const char *name, wire_handler_fn *fn, void *ctx,
                       const char *module, route_privilege_t privilege)
{
    size_t i = 0;
    while (i < routes->count && strcmp(routes->items[i].name, name) != 0)
        i++;
    if (i == routes->count) {
        routes->items = realloc(routes->items, (routes->count + 1) * sizeof *routes->items);
        routes->items[routes->count++] = (route_t){ 0 };
    }
    route_set(&routes->items[i], name, fn, ctx, module, privilege);
}

static route_t *routes_find(routes_t *routes, const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < routes->count; i++)
        if (strcmp(routes->items[i].name, name) == 0)
            return &routes->items[i];
    return NULL;
}

static void routes_free(routes_t *routes)
{
    for (size_t i = 0; i < routes->count; i++)
        route_free(&routes->items[i]);
    free(routes->items);
}

/* Drops one reference; the lock is held. */
static void delegate_unref(delegate_t *d)
{
    if (--d->refs > 0)
        return;
    free(d->module);
    free(d->endpoint);
    breaker_destroy(&d->breaker);
    free(d);
}

/* The default for requests no route takes, in the BaseAgent's words. */
static json_t *unknown_action(void *ctx, wire_request_t *req)
{
    (void)ctx;
    json_t *value = NULL;
    if (req->dialect == WIRE_ACTION || req->dialect == WIRE_COMMAND)
        value = json_object_get(req->body, req->dialect == WIRE_ACTION ? "action" : "command");
    return pycompat_unknown_action(value, "error", "None");
}

/* `role` is the ROUTER's (zsocket.h): Keel's own port, or a port the kept
 * agents dial. */
static wire_server_t *server_new(const char *service, metrics_t *metrics, zsocket_role_t role)
{
    wire_server_t *self = calloc(1, sizeof *self);
    self->service = strdup(service);
    self->metrics = metrics;
    self->max_request = 1 << 20;
    route_set(&self->on_unknown, NULL, unknown_action, NULL, NULL, ROUTE_PUBLIC);
    pthread_mutex_init(&self->delegate_lock, NULL);
    /* NULL under SECURE_ZMQ without server keys: wire_server_bind refuses then. */
    self->router = zsocket_new(ZMQ_ROUTER, role, 0);
    int hwm = 10000;
    if (self->router) {
        zmq_setsockopt(self->router, ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_setsockopt(self->router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    }
    zsocket_inproc_endpoint(self->pool_endpoint, sizeof self->pool_endpoint, "wire-pool");
    if (metrics) {
        metrics_declare(metrics, "keel_requests_total",
                        "Requests answered on a service's ZMQ ports, by action and outcome.",
                        METRIC_COUNTER, NULL, 0);
        metrics_declare(metrics, "keel_request_duration_seconds",
                        "Time from a request's arrival to its reply being built.",
                        METRIC_HISTOGRAM, NULL, 0);
        metrics_declare(metrics, "keel_bad_requests_total",
                        "Requests refused before their handler ran, by reason.", METRIC_COUNTER, NULL, 0);
        metrics_declare(metrics, "keel_delegated_requests_total",
                        "Requests of delegated modules, by outcome (forwarded, fallback, failed).",
                        METRIC_COUNTER, NULL, 0);
    }
    return self;
}

wire_server_t *wire_server_new(const char *service, metrics_t *metrics)
{
    return server_new(service, metrics, ZSOCKET_SERVER);
}

static void forget_inline_routes(wire_server_t *self)
{
    for (size_t i = 0; i < self->ninline; i++)
        free(self->inline_names[i]);
    free(self->inline_names);
    self->inline_names = NULL;
    self->ninline = 0;
    self->inline_raw = false;
}

void wire_server_destroy(wire_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    wire_server_t *self = *self_p;
    wire_server_stop(self);
    for (int i = 0; i < self->nattached; i++)
        wire_server_destroy(&self->attached[i]);
    if (self->router)
        zmq_close(self->router);
    routes_free(&self->actions);
    routes_free(&self->commands);
    routes_free(&self->request_types);
    routes_free(&self->module_unknowns);
    routes_free(&self->shares);
    route_free(&self->on_type);
    route_free(&self->on_raw);
    route_free(&self->on_unknown);
    forget_inline_routes(self);
    for (size_t i = 0; i < self->ndelegates; i++)
        delegate_unref(self->delegates[i]);
    free(self->delegates);
    pthread_mutex_destroy(&self->delegate_lock);
    free(self->service);
    free(self);
    *self_p = NULL;
}

int wire_server_bind(wire_server_t *self, const char *endpoint)
{
    if (!self->router) {
        log_error(self->service, "cannot bind %s: no server socket (SECURE_ZMQ without keys?)",
                  endpoint);
        return -1;
    }
    if (zmq_bind(self->router, endpoint) != 0) {
        log_error(self->service, "cannot bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        return -1;
    }
    log_info(self->service, "listening on %s", endpoint);
    return 0;
}

void wire_server_attach(wire_server_t *self, const wire_route_t *table, void *ctx)
{
    for (const wire_route_t *r = table; r->fn; r++) {
        if (r->dialect == WIRE_ACTION)
            routes_add(&self->actions, r->name, r->fn, ctx, r->module, r->privilege);
        else if (r->dialect == WIRE_COMMAND)
            routes_add(&self->commands, r->name, r->fn, ctx, r->module, r->privilege);
        else if (r->dialect == WIRE_REQUEST_TYPE)
            routes_add(&self->request_types, r->name, r->fn, ctx, r->module, r->privilege);
        else
            route_set(r->dialect == WIRE_TYPE ? &self->on_type : &self->on_raw, NULL, r->fn, ctx,
                      r->module, r->privilege);
    }
}

void wire_server_set_privilege(wire_server_t *self, privilege_t *privilege)
{
    self->privilege = privilege;
}

static void visit(const route_t *route, wire_dialect_t dialect, wire_route_visitor_fn *fn, void *arg)
{
    if (!route->fn)
        return;
    wire_route_t entry = { dialect, route->name, route->fn, route->module, route->privilege };
    fn(arg, &entry);
}

void wire_server_each_route(wire_server_t *self, wire_route_visitor_fn *fn, void *arg)
{
    for (size_t i = 0; i < self->actions.count; i++)
        visit(&self->actions.items[i], WIRE_ACTION, fn, arg);
    for (size_t i = 0; i < self->commands.count; i++)
        visit(&self->commands.items[i], WIRE_COMMAND, fn, arg);
    for (size_t i = 0; i < self->request_types.count; i++)
        visit(&self->request_types.items[i], WIRE_REQUEST_TYPE, fn, arg);
    visit(&self->on_type, WIRE_TYPE, fn, arg);
    visit(&self->on_raw, WIRE_RAW, fn, arg);
}

void wire_server_on_unknown(wire_server_t *self, wire_handler_fn *fn, void *ctx)
{
    route_set(&self->on_unknown, NULL, fn, ctx, NULL, ROUTE_PUBLIC);
}

void wire_server_on_module_unknown(wire_server_t *self, const char *module, wire_handler_fn *fn,
                                   void *ctx)
{
    routes_add(&self->module_unknowns, module, fn, ctx, NULL, ROUTE_PUBLIC);
}

void wire_server_set_workers(wire_server_t *self, int workers)
{
    self->nworkers = workers < 0 ? 0 : workers > MAX_WORKERS ? MAX_WORKERS : workers;
}

void wire_server_set_batch(wire_server_t *self, wire_batch_begin_fn *begin, wire_batch_end_fn *end,
                           void *ctx)
{
    self->batch_begin = begin;
    self->batch_end = end;
    self->batch_ctx = ctx;
}

int wire_server_answer_inline(wire_server_t *self, wire_dialect_t dialect, const char *name)
{
    route_t *route = dialect == WIRE_ACTION ? routes_find(&self->actions, name)
                     : dialect == WIRE_RAW && self->on_raw.fn ? &self->on_raw : NULL;
    if (!route)
        return -1;
    route->inline_ok = true;
    return 0;
}

void wire_server_set_max_request(wire_server_t *self, size_t bytes)
{
    self->max_request = bytes;
}

/* ---- modules: delegation, legacy subsets ------------------------------- */

int wire_server_share(wire_server_t *self, const char *module, const char *action)
{
    if (!routes_find(&self->actions, action)) {
        log_error(self->service, "cannot share %s with %s: no such route", action, module);
        return -1;
    }
    routes_t *shares = &self->shares;
    shares->items = realloc(shares->items, (shares->count + 1) * sizeof *shares->items);
    shares->items[shares->count++] = (route_t){ strdup(action), NULL, NULL, strdup(module), 0, NULL, false };
    return 0;
}

static bool shared_with(routes_t *shares, const char *action, const char *module)
{
    for (size_t i = 0; shares && i < shares->count; i++)
        if (!strcmp(shares->items[i].name, action) && !strcmp(shares->items[i].module, module))
            return true;
    return false;
}

int wire_server_delegate(wire_server_t *self, const char *module, const char *endpoint,
                         int timeout_ms, bool fallback, const breaker_limits_t *limits)
{
    pthread_mutex_lock(&self->delegate_lock);
    size_t i = 0;
    while (i < self->ndelegates && strcmp(self->delegates[i]->module, module) != 0)
        i++;
    if (i < self->ndelegates) {
        delegate_unref(self->delegates[i]);
        self->delegates[i] = self->delegates[--self->ndelegates];
    }
    if (endpoint && *endpoint) {
        delegate_t *d = calloc(1, sizeof *d);
        *d = (delegate_t){ strdup(module), strdup(endpoint), timeout_ms,
                           breaker_new(module, limits), fallback, 1 };
        self->delegates = realloc(self->delegates, (self->ndelegates + 1) * sizeof *self->delegates);
        self->delegates[self->ndelegates++] = d;
        log_info(self->service, "module %s delegated to %s%s", module, endpoint,
                 fallback ? " (falling back to Keel)" : "");
    }
    pthread_mutex_unlock(&self->delegate_lock);
    return 0;
}

static void copy_route(routes_t *into, route_t *route)
{
    routes_add(into, route->name, route->fn, route->ctx, route->module, route->privilege);
    routes_find(into, route->name)->inline_ok = route->inline_ok;
}

static void copy_routes(routes_t *into, routes_t *from, routes_t *shares, const char *module)
{
    static const char *health[] = { "ping", "health", "health_check" };
    for (size_t i = 0; i < from->count; i++) {
        route_t *route = &from->items[i];
        bool is_health = false;
        for (size_t k = 0; k < 3; k++)
            is_health |= !route->module && strcmp(route->name, health[k]) == 0;
        if (is_health || (route->module && strcmp(route->module, module) == 0)
            || shared_with(shares, route->name, module))
            copy_route(into, route);
    }
}

/* A legacy listener of this server, served by its thread: NULL when no
 * more can be attached or the server runs already. */
static wire_server_t *listener_new(wire_server_t *self)
{
    if (self->nattached >= MAX_ATTACHED || self->started)
        return NULL;
    wire_server_t *listener = server_new(self->service, self->metrics, ZSOCKET_AGENT_SERVER);
    listener->parent = self;
    listener->max_request = self->max_request;
    return listener;
}

/* Binds the listener and attaches it; on failure it is destroyed. */
static int listener_attach(wire_server_t *self, wire_server_t *listener, const char *endpoint)
{
    if (wire_server_bind(listener, endpoint) < 0) {
        wire_server_destroy(&listener);
        return -1;
    }
    self->attached[self->nattached++] = listener;
    return 0;
}

/* A single route (type, raw, unknown) as it is, answered inline or not. */
static void route_copy(route_t *into, const route_t *from)
{
    route_set(into, NULL, from->fn, from->ctx, from->module, from->privilege);
    into->inline_ok = from->inline_ok;
}

int wire_server_listen_module(wire_server_t *self, const char *module, const char *endpoint)
{
    wire_server_t *subset = listener_new(self);
    if (!subset)
        return -1;
    copy_routes(&subset->actions, &self->actions, &self->shares, module);
    copy_routes(&subset->commands, &self->commands, NULL, module);
    copy_routes(&subset->request_types, &self->request_types, NULL, module);
    /* The `type` route goes with its module; a raw route of no module is
     * the service's answer to non-JSON frames, on every port. */
    route_t *type = &self->on_type, *raw = &self->on_raw;
    if (type->module && strcmp(type->module, module) == 0)
        route_copy(&subset->on_type, type);
    if (raw->fn && (!raw->module || strcmp(raw->module, module) == 0))
        route_copy(&subset->on_raw, raw);
    route_t *unknown = routes_find(&self->module_unknowns, module);
    if (!unknown)
        unknown = &self->on_unknown;
    route_set(&subset->on_unknown, NULL, unknown->fn, unknown->ctx, NULL, ROUTE_PUBLIC);
    return listener_attach(self, subset, endpoint);
}

int wire_server_listen_all(wire_server_t *self, const char *endpoint)
{
    wire_server_t *all = listener_new(self);
    if (!all)
        return -1;
    routes_t *from[] = { &self->actions, &self->commands, &self->request_types };
    routes_t *into[] = { &all->actions, &all->commands, &all->request_types };
    for (size_t k = 0; k < 3; k++)
        for (size_t i = 0; i < from[k]->count; i++)
            copy_route(into[k], &from[k]->items[i]);
    route_t *same[][2] = { { &all->on_type, &self->on_type }, { &all->on_raw, &self->on_raw },
                           { &all->on_unknown, &self->on_unknown } };
    for (size_t k = 0; k < 3; k++)
        if (same[k][1]->fn)
            route_copy(same[k][0], same[k][1]);
    return listener_attach(self, all, endpoint);
}

int wire_server_listen_any(wire_server_t *self, const char *endpoint, wire_handler_fn *fn, void *ctx)
{
    wire_server_t *listener = listener_new(self);
    if (!listener)
        return -1;
    route_set(&listener->on_raw, NULL, fn, ctx, NULL, ROUTE_PUBLIC);
    route_set(&listener->on_unknown, NULL, fn, ctx, NULL, ROUTE_PUBLIC);
    return listener_attach(self, listener, endpoint);
}

static void count_delegated(wire_server_t *self, const char *module, const char *outcome)
{
    if (!self->metrics)
        return;
    char labels[192];
    metrics_labels(labels, sizeof labels, "service", self->service, "module", module,
                   "outcome", outcome, NULL);
    metrics_add(self->metrics, "keel_delegated_requests_total", labels, 1);
}

/* Forwards the frame to the module's legacy agent when the module is
 * delegated.  Returns NULL when the request should be handled here (not
 * delegated, or the delegate failed and fallback is on). */
static json_t *forward(wire_server_t *self, const char *module, const char *frame, size_t len)
{
    wire_server_t *owner = self->parent ? self->parent : self;
    if (!atomic_load(&owner->ndelegates))
        return NULL;
    pthread_mutex_lock(&owner->delegate_lock);
    delegate_t *d = NULL;
    for (size_t i = 0; i < owner->ndelegates; i++)
        if (strcmp(owner->delegates[i]->module, module) == 0)
            d = owner->delegates[i];
    if (d)
        d->refs++;
    pthread_mutex_unlock(&owner->delegate_lock);
    if (!d)
        return NULL;
    json_t *reply = NULL;
    char err[256] = "circuit open";
    if (breaker_allow(d->breaker, clock_mono())) {
        size_t reply_len;
        wire_client_t *client = wire_client_new_agent(d->endpoint, d->timeout_ms, 0);
        char *text = wire_client_call_raw(client, frame, len, &reply_len, err, sizeof err);
        wire_client_destroy(&client);
        reply = text ? wirejson_load(text, reply_len) : NULL;
        if (text && !reply)
            snprintf(err, sizeof err, "reply is not JSON");
        free(text);
        if (reply)
            breaker_record_success(d->breaker, clock_mono());
        else
            breaker_record_failure(d->breaker, clock_mono());
    }
    bool fallback = d->fallback;
    pthread_mutex_lock(&owner->delegate_lock);
    delegate_unref(d);
    pthread_mutex_unlock(&owner->delegate_lock);
    count_delegated(self, module, reply ? "forwarded" : fallback ? "fallback" : "failed");
    if (!reply && !fallback)
        reply = wire_error("Delegate for %s unavailable: %s", module, err);
    return reply;
}

/* The frame goes as it came, unless it carries a token: then without it. */
json_t *wire_server_forward(wire_server_t *self, const char *module, const wire_request_t *req)
{
    if (!json_object_get(req->body, "auth_token"))
        return forward(self, module, req->raw, req->raw_len);
    json_t *copy = json_copy(req->body);
    json_object_del(copy, "auth_token");
    size_t len;
    char *text = wirejson_dump(copy, &len);
    json_decref(copy);
    json_t *reply = text ? forward(self, module, text, len) : NULL;
    free(text);
    return reply;
}

json_t *wire_server_delegation(wire_server_t *self)
{
    json_t *status = json_object();
    pthread_mutex_lock(&self->delegate_lock);
    for (size_t i = 0; i < self->ndelegates; i++) {
        delegate_t *d = self->delegates[i];
        const char *state = breaker_state_name(breaker_state(d->breaker, clock_mono()));
        json_object_set_new(status, d->module, json_pack("{s:s, s:s, s:b}", "endpoint", d->endpoint,
                                                         "breaker", state, "fallback", d->fallback));
    }
    pthread_mutex_unlock(&self->delegate_lock);
    return status;
}

/* ---- one request ------------------------------------------------------- */

bool wire_is_raw_ping(const char *frame, size_t len)
{
    while (len && (frame[len - 1] == '\n' || frame[len - 1] == ' ' || frame[len - 1] == '\r'))
        len--;
    return len == 4 && memcmp(frame, "ping", 4) == 0;
}

static void count_bad(wire_server_t *self, const char *reason)
{
    if (!self->metrics)
        return;
    char labels[128];
    metrics_labels(labels, sizeof labels, "service", self->service, "reason", reason, NULL);
    metrics_add(self->metrics, "keel_bad_requests_total", labels, 1);
}

/* Picks the dialect and route for a parsed object. */
static route_t *route_for(wire_server_t *self, wire_request_t *req)
{
    json_t *body = req->body;
    json_t *action = json_object_get(body, "action");
    json_t *command = json_object_get(body, "command");
    route_t *route = NULL;
    if (action) {
        req->dialect = WIRE_ACTION;
        req->name = json_is_string(action) ? json_string_value(action) : NULL;
        route = routes_find(&self->actions, req->name);
    } else if (command) {
        req->dialect = WIRE_COMMAND;
        req->name = json_is_string(command) ? json_string_value(command) : NULL;
        json_t *payload = json_object_get(body, "payload");
        req->payload = json_is_object(payload) ? payload : NULL;
        route = routes_find(&self->commands, req->name);
    } else if (json_object_get(body, "type") && self->on_type.fn) {
        req->dialect = WIRE_TYPE;
        json_t *type = json_object_get(body, "type");
        req->name = json_is_string(type) ? json_string_value(type) : "";
        route = &self->on_type;
    } else if (json_object_get(body, "request_type") && self->request_types.count) {
        req->dialect = WIRE_REQUEST_TYPE;
        req->name = json_string_value(json_object_get(body, "request_type"));
        route = routes_find(&self->request_types, req->name);
    } else {
        req->dialect = WIRE_ACTION;
    }
    return route;
}

/* The refusal in the route's dialect when the caller may not use it, else
 * NULL.  Legacy listeners check with their server's privilege. */
static json_t *refusal(wire_server_t *self, const route_t *route, const wire_request_t *req)
{
    wire_server_t *owner = self->parent ? self->parent : self;
    json_t *token = req->body ? json_object_get(req->body, "auth_token") : NULL;
    privilege_caller_t caller = { req->peer, req->curve, json_string_value(token) };
    if (privilege_check(owner->privilege, route->privilege, &caller) == PRIVILEGE_GRANTED)
        return NULL;
    count_bad(self, "forbidden");
    char name[160], text[400];
    if (req->dialect == WIRE_TYPE)
        snprintf(name, sizeof name, "a `type` request");
    else if (req->dialect == WIRE_RAW)
        snprintf(name, sizeof name, "a non-JSON request");
    else
        snprintf(name, sizeof name, "%s%.100s", req->dialect == WIRE_REQUEST_TYPE ? "request_type " : "",
                 req->name);
    privilege_refusal(route->privilege, name, text, sizeof text);
    if (req->dialect == WIRE_COMMAND)
        return json_pack("{s:s, s:s}", "status", "ERROR", "message", text);
    return wire_error("%s", text);
}

/* The caller's privilege first, then the module's delegate or the
 * handler.  Neither sees the token: a handler that stores or passes on its
 * request, or a legacy agent, cannot leak an administrator's token. */
static json_t *run_route(wire_server_t *self, const route_t *route, wire_request_t *req)
{
    json_t *reply = refusal(self, route, req);
    if (!reply && route->module)
        reply = wire_server_forward(self, route->module, req);
    if (reply)
        return reply;
    if (req->body)
        json_object_del(req->body, "auth_token");
    return route->fn(route->ctx, req);
}

/* Who answers a request, for its metrics: the label and its series. */
typedef struct {
    const char *label;
    meters_t *meters;
} answerer_t;

static answerer_t answered_by(const route_t *route, const char *label)
{
    return (answerer_t){ label, route->meters };
}

json_t *wire_reply_text(wire_request_t *req, char *text, size_t len)
{
    free(req->text);
    req->text = text;
    req->text_len = len;
    return NULL;
}

void wire_request_reads_only(wire_request_t *req)
{
    req->read_only = true;
}

/* Builds the reply object for one frame, or NULL with the handler's own
 * text in req->text; *by names the route for metrics.  `parsed` is the
 * frame already read (the server thread's, for an inline route), or NULL;
 * dispatch takes it. */
static json_t *dispatch(wire_server_t *self, wire_request_t *req, json_t *parsed, answerer_t *by)
{
    const char *frame = req->raw;
    size_t len = req->raw_len;
    *by = (answerer_t){ "invalid", &self->invalid };
    if (len > self->max_request) {
        json_decref(parsed);
        count_bad(self, "too_large");
        return wire_error("Request too large");
    }
    if (!utf8_valid((const unsigned char *)frame, len)) {
        json_decref(parsed);
        count_bad(self, "invalid_utf8");
        return wire_error("Invalid UTF-8 request");
    }
    json_t *body = parsed ? parsed : wirejson_load(frame, len);
    if (!body) {
        if (self->on_raw.fn) {
            *by = answered_by(&self->on_raw, "raw");
            return run_route(self, &self->on_raw, req);
        }
        route_t *ping = wire_is_raw_ping(frame, len) ? routes_find(&self->actions, "ping") : NULL;
        if (ping) {
            *by = answered_by(ping, "ping");
            return run_route(self, ping, req);
        }
        count_bad(self, "invalid_json");
        return wire_error("Invalid JSON request");
    }
    json_t *reply;
    if (!json_is_object(body)) {
        count_bad(self, "not_an_object");
        reply = wire_error("Invalid request format");
    } else {
        req->body = body;
        req->payload = body;
        route_t *route = route_for(self, req);
        if (req->dialect == WIRE_COMMAND && !req->payload)
            req->payload = json_object();
        else if (req->dialect == WIRE_COMMAND)
            json_incref(req->payload);
        if (route) {
            *by = answered_by(route, route->name ? route->name : "type");
            reply = run_route(self, route, req);
        } else {
            *by = answered_by(&self->on_unknown, "unknown");
            count_bad(self, "unknown_action");
            reply = self->on_unknown.fn(self->on_unknown.ctx, req);
        }
        if (req->dialect == WIRE_COMMAND)
            json_decref(req->payload);
    }
    json_decref(body);
    return reply;
}

static bool failed(json_t *reply)
{
    const char *status = json_string_value(json_object_get(reply, "status"));
    return status && (!strcasecmp(status, "error") || !strcasecmp(status, "not_found"));
}

/* The series in *slot, found the first time (threads racing there find
 * the same one). */
static metrics_series_t *series_at(wire_server_t *self, _Atomic(metrics_series_t *) *slot,
                                   const char *family, const char *label, const char *outcome)
{
    metrics_series_t *series = atomic_load_explicit(slot, memory_order_acquire);
    if (series)
        return series;
    char labels[192];
    metrics_labels(labels, sizeof labels, "service", self->service, "action", label,
                   outcome ? "outcome" : NULL, outcome, NULL);
    series = metrics_series(self->metrics, family, labels);
    atomic_store_explicit(slot, series, memory_order_release);
    return series;
}

static void count_request(wire_server_t *self, const answerer_t *by, bool read_only, bool error,
                          double seconds)
{
    wire_server_t *owner = self->parent ? self->parent : self;
    atomic_fetch_add_explicit(&owner->answered, 1, memory_order_relaxed);
    if (!read_only)
        atomic_fetch_add_explicit(&owner->changes, 1, memory_order_release);
    if (!self->metrics)
        return;
    metrics_series_count(self->metrics,
                         series_at(self, &by->meters->requests[error], "keel_requests_total", by->label,
                                   error ? "error" : "ok"),
                         series_at(self, &by->meters->duration, "keel_request_duration_seconds", by->label,
                                   NULL),
                         seconds);
}

/* A reply made and not yet counted (held, under group commit, until its
 * batch's writes are on disk). */
typedef struct {
    char *text;             /* malloc'd */
    size_t len;
    answerer_t by;
    wire_dialect_t dialect;
    bool read_only, error;
    double started;
} reply_t;

static void make_reply(wire_server_t *self, const char *frame, size_t len, json_t *parsed,
                       const char *peer, bool curve, reply_t *out)
{
    out->started = clock_mono();
    wire_request_t req = { .dialect = WIRE_RAW, .name = "", .raw = frame, .raw_len = len,
                           .peer = peer, .curve = curve };
    json_t *reply = dispatch(self, &req, parsed, &out->by);
    out->dialect = req.dialect;
    out->read_only = req.read_only;
    if (!reply && req.text) {
        out->text = req.text;
        out->len = req.text_len;
        out->error = false;
        return;
    }
    free(req.text);
    if (!reply)
        reply = wire_error("Internal error");
    out->text = wirejson_dump(reply, &out->len);
    if (!out->text) {
        json_decref(reply);
        reply = wire_error("Internal error: reply is not serialisable");
        out->text = wirejson_dump(reply, &out->len);
    }
    out->error = failed(reply);
    json_decref(reply);
}

static void count_reply(wire_server_t *self, const reply_t *reply)
{
    count_request(self, &reply->by, reply->read_only, reply->error, clock_mono() - reply->started);
}

/* What a held reply becomes when its batch's writes could not be made
 * durable, in its dialect's form. */
static void fail_reply(reply_t *reply, const char *why)
{
    json_t *error = reply->dialect == WIRE_COMMAND
                    ? json_pack("{s:s, s:s}", "status", "ERROR", "message", why)
                    : wire_error("%s", why);
    free(reply->text);
    reply->text = wirejson_dump(error, &reply->len);
    reply->error = true;
    json_decref(error);
}

/* The reply text (the caller frees it) and its length. */
static char *handle_frame(wire_server_t *self, const char *frame, size_t len, json_t *parsed,
                          const char *peer, bool curve, size_t *reply_len)
{
    reply_t reply;
    make_reply(self, frame, len, parsed, peer, curve, &reply);
    count_reply(self, &reply);
    *reply_len = reply.len;
    return reply.text;
}

char *wire_server_handle(wire_server_t *self, const char *frame, size_t len)
{
    size_t reply_len;
    return handle_frame(self, frame, len, NULL, NULL, false, &reply_len);
}

long wire_server_requests(wire_server_t *self)
{
    return atomic_load_explicit(&self->answered, memory_order_relaxed);
}

long wire_server_changes(wire_server_t *self)
{
    return atomic_load_explicit(&self->changes, memory_order_acquire);
}

/* ---- the server thread ---------------------------------------------- */

typedef struct {
    zmq_msg_t frames[MAX_FRAMES];
    int count;
} message_t;

/* Reads one multipart message; frames past `max` are dropped. */
static int message_recv(message_t *m, void *socket, int flags, int max)
{
    m->count = 0;
    int more = 1;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, socket, m->count ? 0 : flags) < 0) {
            zmq_msg_close(&part);
            for (int i = 0; i < m->count; i++)
                zmq_msg_close(&m->frames[i]);
            m->count = 0;
            return -1;
        }
        more = zmq_msg_more(&part);
        if (m->count < max)
            m->frames[m->count++] = part;
        else
            zmq_msg_close(&part);
    }
    return 0;
}

static void message_close(message_t *m)
{
    for (int i = 0; i < m->count; i++)
        zmq_msg_close(&m->frames[i]);
    m->count = 0;
}

/* Index of the body frame at or after `first`: the frame after the empty
 * delimiter, or the frame after the identity when there is no delimiter;
 * -1 if none. */
static int body_index(message_t *m, int first)
{
    for (int i = first; i < m->count; i++)
        if (zmq_msg_size(&m->frames[i]) == 0)
            return i + 1 < m->count ? i + 1 : -1;
    return m->count >= first + 2 ? first + 1 : -1;
}

static void free_text(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* Sends frames [0, body) followed by the reply text; consumes the message. */
static void message_reply(message_t *m, int body, void *socket, char *text, size_t len)
{
    for (int i = 0; i < body; i++)
        zmq_msg_send(&m->frames[i], socket, ZMQ_SNDMORE);
    zmq_msg_t out;
    zmq_msg_init_data(&out, text, len, free_text, NULL);
    if (zmq_msg_send(&out, socket, 0) < 0)
        zmq_msg_close(&out);        /* an unsent message still owns the text */
    message_close(m);
}

/* Whether the body frame came from a client the ZAP handler admitted
 * (it names every admitted CURVE key as the connection's User-Id). */
static bool curve_of(zmq_msg_t *body)
{
    const char *user = zmq_msg_gets(body, "User-Id");
    return user && *user;
}

/* The client's address and CURVE admission: the body frame's metadata from
 * a TCP peer, or, in worker mode, the flag and text after the listener
 * index in the first frame (ZMQ metadata does not survive the inproc hop). */
static const char *origin_of(message_t *m, int first, int body, char *buf, size_t len, bool *curve)
{
    if (first == 0) {
        *curve = curve_of(&m->frames[body]);
        return zmq_msg_gets(&m->frames[body], "Peer-Address");
    }
    size_t n = zmq_msg_size(&m->frames[0]);
    const char *prefix = zmq_msg_data(&m->frames[0]);
    *curve = n >= 2 && prefix[1] == 1;
    if (n <= 2 || n - 1 > len)
        return NULL;
    memcpy(buf, prefix + 2, n - 2);
    buf[n - 2] = '\0';
    return buf;
}

/* Makes the reply to a message's body frame (the index in *body); false,
 * with the message closed, when it has none.  Frames before `first` (the
 * listener index, in worker mode) travel back with the reply; `parsed` is
 * the body already read, or NULL. */
static bool answer_message(wire_server_t *self, message_t *m, int first, json_t *parsed, int *body,
                           reply_t *reply)
{
    *body = body_index(m, first);
    if (*body < 0) {    /* no body: nothing a REQ client would send */
        json_decref(parsed);
        count_bad(self, "no_body");
        message_close(m);
        return false;
    }
    char buf[64];
    bool curve;
    const char *peer = origin_of(m, first, *body, buf, sizeof buf, &curve);
    zmq_msg_t *frame = &m->frames[*body];
    make_reply(self, zmq_msg_data(frame), zmq_msg_size(frame), parsed, peer, curve, reply);
    return true;
}

/* Answers a message on `socket` at once; false when it had no body, so no
 * reply went. */
static bool serve_message(wire_server_t *self, message_t *m, int first, void *socket, json_t *parsed)
{
    int body;
    reply_t reply;
    if (!answer_message(self, m, first, parsed, &body, &reply))
        return false;
    count_reply(self, &reply);
    message_reply(m, body, socket, reply.text, reply.len);
    return true;
}

/* A message answered and its reply held until the batch is committed. */
typedef struct {
    message_t m;
    int body;
    reply_t reply;
} held_t;

/* Group commit (wire_server_set_batch): a listener's queued requests are
 * answered, their writes committed together, then their replies sent. */
static void serve_batch(wire_server_t *self, wire_server_t *listener, void *socket, held_t *held)
{
    self->batch_begin(self->batch_ctx);
    int n = 0;
    while (n < DRAIN_BATCH && message_recv(&held[n].m, socket, ZMQ_DONTWAIT, CLIENT_FRAMES) == 0)
        if (answer_message(listener, &held[n].m, 0, NULL, &held[n].body, &held[n].reply))
            n++;
    char err[512] = "";
    int rc = self->batch_end(self->batch_ctx, err, sizeof err);
    for (int i = 0; i < n; i++) {
        if (rc < 0)
            fail_reply(&held[i].reply, err);
        count_reply(listener, &held[i].reply);
        message_reply(&held[i].m, held[i].body, socket, held[i].reply.text, held[i].reply.len);
    }
}

/* Forwards frames [from, count) unchanged (consumes the message). */
static void message_forward(message_t *m, int from, void *socket)
{
    for (int i = from; i < m->count; i++)
        zmq_msg_send(&m->frames[i], socket, i + 1 < m->count ? ZMQ_SNDMORE : 0);
    message_close(m);
}

/* ---- the workers ------------------------------------------------------ */

/* A worker's routing id: 'w' and its index.  Workers say they are free
 * with one empty frame; a reply's first frame is never empty (the listener
 * index and CURVE flag). */
#define WORKER_ID_LEN 2
#define POOL_QUEUE_MAX 4096     /* jobs held for a worker; past it, listeners wait */

typedef struct {
    message_t m;
    unsigned char index;        /* of the listener it came in on */
} job_t;

/* The server thread's side of the workers; only that thread touches it. */
typedef struct {
    void *socket;               /* ROUTER at pool_endpoint */
    int started;                /* workers[0, started) run */
    int idle[MAX_WORKERS];      /* workers that said they are free */
    int nidle;
    job_t *queue;               /* a ring of jobs no worker was free for */
    size_t head, count, cap;
} pool_t;

/* Hands a message to worker `w` behind a frame of the listener index, the
 * CURVE admission (1 or 0) and the client's address. */
static void send_job(pool_t *pool, int w, message_t *m, unsigned char index)
{
    unsigned char id[WORKER_ID_LEN] = { 'w', (unsigned char)w };
    zmq_send(pool->socket, id, sizeof id, ZMQ_SNDMORE);
    char prefix[64];
    prefix[0] = (char)index;
    int body = body_index(m, 0);
    prefix[1] = body >= 0 && curve_of(&m->frames[body]) ? 1 : 0;
    const char *peer = body >= 0 ? zmq_msg_gets(&m->frames[body], "Peer-Address") : NULL;
    size_t n = peer ? strlen(peer) : 0;
    if (n > sizeof prefix - 2)
        n = 0;
    if (n)
        memcpy(prefix + 2, peer, n);
    zmq_send(pool->socket, prefix, n + 2, ZMQ_SNDMORE);
    message_forward(m, 0, pool->socket);
}

/* Gives the job to a free worker, or queues it and, when every worker
 * that runs is busy, starts one more (it takes the queue's head when it
 * says it is free). */
static void pool_dispatch(wire_server_t *self, pool_t *pool, message_t *m, unsigned char index)
{
    if (pool->nidle > 0) {
        send_job(pool, pool->idle[--pool->nidle], m, index);
        return;
    }
    if (pool->started < self->nworkers && actor_start(self->workers[pool->started]) == 0)
        pool->started++;
    if (pool->count == pool->cap) {
        size_t cap = pool->cap ? pool->cap * 2 : 64;
        job_t *queue = malloc(cap * sizeof *queue);
        for (size_t i = 0; i < pool->count; i++)
            queue[i] = pool->queue[(pool->head + i) % pool->cap];
        free(pool->queue);
        pool->queue = queue;
        pool->head = 0;
        pool->cap = cap;
    }
    job_t *job = &pool->queue[(pool->head + pool->count++) % pool->cap];
    job->m = *m;
    job->index = index;
}

/* The listener a job or reply belongs to, from the prefix frame at `at`:
 * index 0 is the server itself. */
static wire_server_t *listener_of(wire_server_t *self, message_t *m, int at)
{
    unsigned char index = zmq_msg_size(&m->frames[at]) >= 1
                          ? *(unsigned char *)zmq_msg_data(&m->frames[at]) : 0;
    return index > 0 && index <= self->nattached ? self->attached[index - 1] : self;
}

/* Reads what workers sent (how many messages): a reply goes out of the
 * listener it came in on; the worker then takes the next queued job or
 * waits for one. */
static int pool_collect(wire_server_t *self, pool_t *pool)
{
    message_t m;
    int n = 0;
    for (; n < DRAIN_BATCH && message_recv(&m, pool->socket, ZMQ_DONTWAIT, MAX_FRAMES) == 0; n++) {
        if (m.count < 2 || zmq_msg_size(&m.frames[0]) != WORKER_ID_LEN) {
            message_close(&m);
            continue;
        }
        int w = ((unsigned char *)zmq_msg_data(&m.frames[0]))[1];
        if (zmq_msg_size(&m.frames[1]) > 0)
            message_forward(&m, 2, listener_of(self, &m, 1)->router);
        else
            message_close(&m);
        if (pool->count > 0) {
            job_t *job = &pool->queue[pool->head];
            pool->head = (pool->head + 1) % pool->cap;
            pool->count--;
            send_job(pool, w, &job->m, job->index);
        } else if (w < self->nworkers && pool->nidle < MAX_WORKERS) {
            pool->idle[pool->nidle++] = w;
        }
    }
    return n;
}

static void pool_drop_queue(pool_t *pool)
{
    for (size_t i = 0; i < pool->count; i++)
        message_close(&pool->queue[(pool->head + i) % pool->cap].m);
    free(pool->queue);
    pool->queue = NULL;
    pool->head = pool->count = pool->cap = 0;
}

static void worker_run(actor_t *actor, void *arg)
{
    wire_server_t *self = arg;
    int w = 0;
    while (w + 1 < self->nworkers && self->workers[w] != actor)
        w++;
    void *pool = zsocket_new(ZMQ_DEALER, ZSOCKET_INPROC, 0);
    unsigned char id[WORKER_ID_LEN] = { 'w', (unsigned char)w };
    zmq_setsockopt(pool, ZMQ_ROUTING_ID, id, sizeof id);
    zmq_connect(pool, self->pool_endpoint);
    zmq_send(pool, "", 0, 0);
    zmq_pollitem_t items[2] = { { pool, 0, ZMQ_POLLIN, 0 }, { NULL, actor_stop_fd(actor), ZMQ_POLLIN, 0 } };
    message_t m;
    while (actor_running(actor)) {
        actor_alive(actor);
        if (message_recv(&m, pool, ZMQ_DONTWAIT, MAX_FRAMES) < 0) {
            zmq_poll(items, 2, WAIT_MS);
            continue;
        }
        if (!serve_message(listener_of(self, &m, 0), &m, 1, pool, NULL))
            zmq_send(pool, "", 0, 0);
    }
    zmq_close(pool);
}

static bool delegated(wire_server_t *self, const char *module)
{
    wire_server_t *owner = self->parent ? self->parent : self;
    bool found = false;
    if (!atomic_load(&owner->ndelegates))
        return false;
    pthread_mutex_lock(&owner->delegate_lock);
    for (size_t i = 0; i < owner->ndelegates && !found; i++)
        found = strcmp(owner->delegates[i]->module, module) == 0;
    pthread_mutex_unlock(&owner->delegate_lock);
    return found;
}

/* Whether `name` appears in the frame between quotes. */
static bool names_quoted(const char *frame, size_t len, const char *name)
{
    size_t n = strlen(name);
    const char *end = frame + len;
    for (const char *q = memchr(frame, '"', len); q && (size_t)(end - q) >= n + 2;
         q = memchr(q + 1, '"', (size_t)(end - q - 1)))
        if (q[n + 1] == '"' && memcmp(q + 1, name, n) == 0)
            return true;
    return false;
}

/* Whether the server thread answers this message itself (an inline route,
 * wire_server_answer_inline), with the body it read for that in *parsed.
 * Only a frame that names one of the inline actions, quoted, is read here
 * at all: every other request goes to the workers as it came. */
static bool answers_inline(wire_server_t *self, message_t *m, json_t **parsed)
{
    if (!self->ninline && !self->inline_raw)
        return false;
    int body = body_index(m, 0);
    if (body < 0)
        return false;
    const char *frame = zmq_msg_data(&m->frames[body]);
    size_t len = zmq_msg_size(&m->frames[body]);
    if (len > self->max_request)
        return false;
    if (wire_is_raw_ping(frame, len))
        return self->inline_raw && !(self->on_raw.module && delegated(self, self->on_raw.module));
    bool named = false;
    for (size_t i = 0; i < self->ninline && !named; i++)
        named = names_quoted(frame, len, self->inline_names[i]);
    if (!named)
        return false;
    json_t *value = wirejson_load(frame, len);
    wire_request_t req = { .dialect = WIRE_RAW, .name = "", .body = value, .payload = value };
    route_t *route = json_is_object(value) ? route_for(self, &req) : NULL;
    if (!route || !route->inline_ok || (route->module && delegated(self, route->module))) {
        json_decref(value);
        return false;
    }
    *parsed = value;
    return true;
}

/* The quoted names answers_inline looks for, from the routes marked. */
static void find_inline_routes(wire_server_t *self)
{
    forget_inline_routes(self);
    for (size_t i = 0; i < self->actions.count; i++) {
        route_t *route = &self->actions.items[i];
        if (!route->inline_ok)
            continue;
        self->inline_names = realloc(self->inline_names, (self->ninline + 1) * sizeof *self->inline_names);
        self->inline_names[self->ninline++] = strdup(route->name);
    }
    route_t *ping = routes_find(&self->actions, "ping");
    self->inline_raw = self->on_raw.fn ? self->on_raw.inline_ok : ping && ping->inline_ok;
}

/* One thread serves the main socket and every attached listener, so a
 * service's handlers never run concurrently unless it asked for workers. */
static void server_run(actor_t *actor, void *arg)
{
    wire_server_t *self = arg;
    pool_t pool = { 0 };
    if (self->nworkers > 0) {
        pool.socket = zsocket_new(ZMQ_ROUTER, ZSOCKET_INPROC, 0);
        zmq_bind(pool.socket, self->pool_endpoint);
    }
    zmq_pollitem_t items[MAX_ATTACHED + 3];
    int nlisteners = 1 + self->nattached;
    items[0] = (zmq_pollitem_t){ self->router, 0, ZMQ_POLLIN, 0 };
    for (int i = 0; i < self->nattached; i++)
        items[i + 1] = (zmq_pollitem_t){ self->attached[i]->router, 0, ZMQ_POLLIN, 0 };
    items[nlisteners] = (zmq_pollitem_t){ pool.socket, 0, ZMQ_POLLIN, 0 };
    int nitems = nlisteners + (pool.socket ? 1 : 0);
    items[nitems++] = (zmq_pollitem_t){ NULL, actor_stop_fd(actor), ZMQ_POLLIN, 0 };
    message_t m;
    held_t *held = !pool.socket && self->batch_end ? calloc(DRAIN_BATCH, sizeof *held) : NULL;
    while (actor_running(actor)) {
        actor_alive(actor);
        /* A full queue leaves new requests in the listeners' own queues
         * (and, past their high-water mark, in the clients') until
         * workers catch up. */
        short listen = pool.count < POOL_QUEUE_MAX ? ZMQ_POLLIN : 0;
        for (int i = 0; i < nlisteners; i++)
            items[i].events = listen;
        if (zmq_poll(items, nitems, WAIT_MS) <= 0)
            continue;
        for (int i = 0; i < nlisteners; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            unsigned char index = (unsigned char)i;
            wire_server_t *listener = i == 0 ? self : self->attached[i - 1];
            if (held) {
                serve_batch(self, listener, items[i].socket, held);
                continue;
            }
            /* Drain what is queued before polling again: under load one poll
             * serves a batch. */
            for (int n = 0; n < DRAIN_BATCH && pool.count < POOL_QUEUE_MAX; n++) {
                if (message_recv(&m, items[i].socket, ZMQ_DONTWAIT, CLIENT_FRAMES) < 0)
                    break;
                json_t *parsed = NULL;
                if (pool.socket && !answers_inline(listener, &m, &parsed))
                    pool_dispatch(self, &pool, &m, index);
                else
                    serve_message(listener, &m, 0, listener->router, parsed);
            }
        }
        if (pool.socket && (items[nlisteners].revents & ZMQ_POLLIN))
            pool_collect(self, &pool);
    }
    actor_stop_all(self->workers, (size_t)pool.started);
    /* Replies the workers finished while stopping still go out; what no
     * worker took is dropped, as a stopping server drops what it has not read. */
    pool_drop_queue(&pool);
    while (pool.socket && pool_collect(self, &pool) > 0)
        ;
    if (pool.socket)
        zmq_close(pool.socket);
    free(held);
}

void wire_server_set_liveness(wire_server_t *self, liveness_t *liveness)
{
    self->liveness = liveness;
}

int wire_server_start(wire_server_t *self)
{
    if (self->started)
        return 0;
    find_inline_routes(self);
    for (int i = 0; i < self->nattached; i++)
        find_inline_routes(self->attached[i]);
    char name[64];
    snprintf(name, sizeof name, "%s wire thread", self->service);
    self->thread = actor_new_runner(name, server_run, NULL, self);
    actor_watch(self->thread, self->liveness, WAIT_MS / 1000.0);
    for (int i = 0; i < self->nworkers; i++) {
        snprintf(name, sizeof name, "%s wire worker %d", self->service, i + 1);
        self->workers[i] = actor_new_runner(name, worker_run, NULL, self);
        actor_watch(self->workers[i], self->liveness, WAIT_MS / 1000.0);
    }
    self->started = true;
    if (actor_start(self->thread) < 0) {
        wire_server_stop(self);
        return -1;
    }
    return 0;
}

void wire_server_stop(wire_server_t *self)
{
    if (!self->started)
        return;
    actor_destroy(&self->thread);
    for (int i = 0; i < self->nworkers; i++)
        actor_destroy(&self->workers[i]);
    self->started = false;
}

/* ---- client ------------------------------------------------------------ */

struct wire_client_t {
    char *endpoint;
    int timeout_ms, retries;
    zsocket_role_t role;
    int cancel_fd;          /* readable: give up at once; -1 for none */
    void *socket;
};

static wire_client_t *client_new(const char *endpoint, int timeout_ms, int retries, zsocket_role_t role)
{
    wire_client_t *self = calloc(1, sizeof *self);
    self->endpoint = strdup(endpoint);
    self->timeout_ms = timeout_ms;
    self->retries = retries < 0 ? 0 : retries;
    self->role = role;
    self->cancel_fd = -1;
    return self;
}

wire_client_t *wire_client_new(const char *endpoint, int timeout_ms, int retries)
{
    return client_new(endpoint, timeout_ms, retries, ZSOCKET_CLIENT);
}

wire_client_t *wire_client_new_agent(const char *endpoint, int timeout_ms, int retries)
{
    return client_new(endpoint, timeout_ms, retries, ZSOCKET_AGENT_CLIENT);
}

void wire_client_cancel_on(wire_client_t *self, int fd)
{
    self->cancel_fd = fd;
}

static void client_close(wire_client_t *self)
{
    if (self->socket)
        zmq_close(self->socket);
    self->socket = NULL;
}

void wire_client_destroy(wire_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    client_close(*self_p);
    free((*self_p)->endpoint);
    free(*self_p);
    *self_p = NULL;
}

static int client_open(wire_client_t *self)
{
    if (self->socket)
        return 0;
    self->socket = zsocket_new(ZMQ_REQ, self->role, 0);
    if (!self->socket || zmq_connect(self->socket, self->endpoint) != 0) {
        client_close(self);
        return -1;
    }
    return 0;
}

char *wire_client_call_raw(wire_client_t *self, const void *data, size_t len,
                           size_t *reply_len, char *err, size_t errlen)
{
    for (int attempt = 0; attempt <= self->retries; attempt++) {
        if (client_open(self) < 0) {
            snprintf(err, errlen, "cannot connect to %s", self->endpoint);
            return NULL;
        }
        if (zmq_send(self->socket, data, len, 0) < 0) {
            client_close(self);
            continue;
        }
        zmq_pollitem_t items[2] = { { self->socket, 0, ZMQ_POLLIN, 0 },
                                    { NULL, self->cancel_fd, ZMQ_POLLIN, 0 } };
        zmq_poll(items, self->cancel_fd >= 0 ? 2 : 1, self->timeout_ms);
        if (items[1].revents & ZMQ_POLLIN) {
            client_close(self);
            snprintf(err, errlen, "call to %s cancelled", self->endpoint);
            return NULL;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            zmq_msg_t msg;
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, self->socket, 0) >= 0) {
                size_t n = zmq_msg_size(&msg);
                char *text = malloc(n + 1);
                memcpy(text, zmq_msg_data(&msg), n);
                text[n] = '\0';
                zmq_msg_close(&msg);
                if (reply_len)
                    *reply_len = n;
                return text;
            }
            zmq_msg_close(&msg);
        }
        client_close(self);     /* a REQ socket that missed its reply is stuck: make a new one */
    }
    snprintf(err, errlen, "no reply from %s after %d tries", self->endpoint, self->retries + 1);
    return NULL;
}

json_t *wire_client_call(wire_client_t *self, json_t *request, char *err, size_t errlen)
{
    size_t len;
    char *text = wirejson_dump(request, &len);
    if (!text) {
        snprintf(err, errlen, "request is not serialisable");
        return NULL;
    }
    char *reply_text = wire_client_call_raw(self, text, len, &len, err, errlen);
    free(text);
    if (!reply_text)
        return NULL;
    json_t *reply = wirejson_load(reply_text, len);
    free(reply_text);
    if (!reply)
        snprintf(err, errlen, "reply from %s is not JSON", self->endpoint);
    return reply;
}

static json_t *call_once(wire_client_t *client, json_t *request, char *err, size_t errlen)
{
    json_t *reply = wire_client_call(client, request, err, errlen);
    wire_client_destroy(&client);
    return reply;
}

json_t *wire_call(const char *endpoint, json_t *request, int timeout_ms, int retries,
                  char *err, size_t errlen)
{
    return call_once(wire_client_new(endpoint, timeout_ms, retries), request, err, errlen);
}

json_t *wire_call_agent(const char *endpoint, json_t *request, int timeout_ms, int retries,
                        char *err, size_t errlen)
{
    return call_once(wire_client_new_agent(endpoint, timeout_ms, retries), request, err, errlen);
}
