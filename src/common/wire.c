/*  wire: see wire.h.
 *
 *  A request travels as ZMQ frames [envelope..., body]: the envelope is the
 *  routing identity and, from REQ clients, the empty delimiter.  The server
 *  thread keeps the envelope and sends it back in front of the reply.  With
 *  workers, the whole message goes over an inproc PUSH to the pool and the
 *  reply comes back over an inproc PULL, so the ROUTER socket stays owned by
 *  one thread as ZMQ requires. */
#include "wire.h"
#include "clock.h"
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zmq.h>

#define MAX_FRAMES 16
#define MAX_WORKERS 16

typedef struct {
    char *name;
    wire_handler_fn *fn;
    void *ctx;
} route_t;

typedef struct {
    route_t *items;
    size_t count;
} routes_t;

struct wire_server_t {
    char *service;
    metrics_t *metrics;
    void *router;
    routes_t actions, commands;
    route_t on_type, on_raw, on_unknown;
    size_t max_request;
    int nworkers;
    pthread_t thread;
    pthread_t workers[MAX_WORKERS];
    char jobs_endpoint[64], results_endpoint[64];
    atomic_bool running;
    bool started;
};

static pthread_once_t context_once = PTHREAD_ONCE_INIT;
static void *context;

static void context_init(void)
{
    context = zmq_ctx_new();
    zmq_ctx_set(context, ZMQ_MAX_SOCKETS, 65536);
}

void *wire_context(void)
{
    pthread_once(&context_once, context_init);
    return context;
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

static void routes_add(routes_t *routes, const char *name, wire_handler_fn *fn, void *ctx)
{
    for (size_t i = 0; i < routes->count; i++)
        if (strcmp(routes->items[i].name, name) == 0) {
            routes->items[i].fn = fn;
            routes->items[i].ctx = ctx;
            return;
        }
    routes->items = realloc(routes->items, (routes->count + 1) * sizeof *routes->items);
    routes->items[routes->count++] = (route_t){ strdup(name), fn, ctx };
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
        free(routes->items[i].name);
    free(routes->items);
}

/* The default for requests no route takes, in the BaseAgent's words:
 * Python formats a missing action as None and other values as themselves. */
static json_t *unknown_action(void *ctx, wire_request_t *req)
{
    (void)ctx;
    if (req->dialect == WIRE_ACTION || req->dialect == WIRE_COMMAND) {
        json_t *value = json_object_get(req->body, req->dialect == WIRE_ACTION ? "action" : "command");
        if (json_is_string(value))
            return wire_error("Unknown action: %s", json_string_value(value));
        char *text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
        json_t *reply = wire_error("Unknown action: %s", !value || json_is_null(value) ? "None" : text);
        free(text);
        return reply;
    }
    return wire_error("Unknown action: None");
}

wire_server_t *wire_server_new(const char *service, metrics_t *metrics)
{
    wire_server_t *self = calloc(1, sizeof *self);
    self->service = strdup(service);
    self->metrics = metrics;
    self->max_request = 1 << 20;
    self->on_unknown = (route_t){ NULL, unknown_action, NULL };
    self->router = zmq_socket(wire_context(), ZMQ_ROUTER);
    int zero = 0, hwm = 10000;
    int64_t hard_cap = 64 << 20;    /* libzmq drops the connection past this: a far higher net */
    zmq_setsockopt(self->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(self->router, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->router, ZMQ_MAXMSGSIZE, &hard_cap, sizeof hard_cap);
    snprintf(self->jobs_endpoint, sizeof self->jobs_endpoint, "inproc://wire-jobs-%p", (void *)self);
    snprintf(self->results_endpoint, sizeof self->results_endpoint, "inproc://wire-results-%p", (void *)self);
    if (metrics) {
        metrics_declare(metrics, "keel_requests_total",
                        "Requests answered on a service's ZMQ ports, by action and outcome.",
                        METRIC_COUNTER, NULL, 0);
        metrics_declare(metrics, "keel_request_duration_seconds",
                        "Time from a request's arrival to its reply being built.",
                        METRIC_HISTOGRAM, NULL, 0);
        metrics_declare(metrics, "keel_bad_requests_total",
                        "Requests refused before dispatch, by reason.", METRIC_COUNTER, NULL, 0);
    }
    return self;
}

void wire_server_destroy(wire_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    wire_server_t *self = *self_p;
    wire_server_stop(self);
    zmq_close(self->router);
    routes_free(&self->actions);
    routes_free(&self->commands);
    free(self->service);
    free(self);
    *self_p = NULL;
}

int wire_server_bind(wire_server_t *self, const char *endpoint)
{
    if (zmq_bind(self->router, endpoint) != 0) {
        log_error(self->service, "cannot bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        return -1;
    }
    log_info(self->service, "listening on %s", endpoint);
    return 0;
}

void wire_server_on_action(wire_server_t *self, const char *action, wire_handler_fn *fn, void *ctx)
{
    routes_add(&self->actions, action, fn, ctx);
}

void wire_server_on_command(wire_server_t *self, const char *command, wire_handler_fn *fn, void *ctx)
{
    routes_add(&self->commands, command, fn, ctx);
}

void wire_server_on_type(wire_server_t *self, wire_handler_fn *fn, void *ctx)
{
    self->on_type = (route_t){ NULL, fn, ctx };
}

void wire_server_on_raw(wire_server_t *self, wire_handler_fn *fn, void *ctx)
{
    self->on_raw = (route_t){ NULL, fn, ctx };
}

void wire_server_on_unknown(wire_server_t *self, wire_handler_fn *fn, void *ctx)
{
    self->on_unknown = (route_t){ NULL, fn, ctx };
}

void wire_server_set_workers(wire_server_t *self, int workers)
{
    self->nworkers = workers < 0 ? 0 : workers > MAX_WORKERS ? MAX_WORKERS : workers;
}

void wire_server_set_max_request(wire_server_t *self, size_t bytes)
{
    self->max_request = bytes;
}

/* ---- one request ------------------------------------------------------- */

static bool utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        unsigned int cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)
            || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

static bool is_raw_ping(const char *frame, size_t len)
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
    } else {
        req->dialect = WIRE_ACTION;
    }
    return route;
}

/* Builds the reply object for one frame; *label names the route for metrics. */
static json_t *dispatch(wire_server_t *self, const char *frame, size_t len, const char **label)
{
    wire_request_t req = { WIRE_RAW, "", NULL, NULL, frame, len };
    if (len > self->max_request) {
        *label = "invalid";
        count_bad(self, "too_large");
        return wire_error("Request too large");
    }
    if (!utf8_valid((const unsigned char *)frame, len)) {
        *label = "invalid";
        count_bad(self, "invalid_utf8");
        return wire_error("Invalid UTF-8 request");
    }
    json_error_t jerr;
    json_t *body = json_loadb(frame, len, JSON_DECODE_ANY, &jerr);
    if (!body) {
        if (self->on_raw.fn) {
            *label = "raw";
            return self->on_raw.fn(self->on_raw.ctx, &req);
        }
        route_t *ping = is_raw_ping(frame, len) ? routes_find(&self->actions, "ping") : NULL;
        if (ping) {
            *label = "ping";
            return ping->fn(ping->ctx, &req);
        }
        *label = "invalid";
        count_bad(self, "invalid_json");
        return wire_error("Invalid JSON request");
    }
    json_t *reply;
    if (!json_is_object(body)) {
        *label = "invalid";
        count_bad(self, "not_an_object");
        reply = wire_error("Invalid request format");
    } else {
        req.body = body;
        req.payload = body;
        route_t *route = route_for(self, &req);
        if (req.dialect == WIRE_COMMAND && !req.payload)
            req.payload = json_object();
        else if (req.dialect == WIRE_COMMAND)
            json_incref(req.payload);
        if (route) {
            *label = route->name ? route->name : "type";
            reply = route->fn(route->ctx, &req);
        } else {
            *label = "unknown";
            count_bad(self, "unknown_action");
            reply = self->on_unknown.fn(self->on_unknown.ctx, &req);
        }
        if (req.dialect == WIRE_COMMAND)
            json_decref(req.payload);
    }
    json_decref(body);
    return reply;
}

static const char *outcome_of(json_t *reply)
{
    const char *status = json_string_value(json_object_get(reply, "status"));
    if (status && (!strcasecmp(status, "error") || !strcasecmp(status, "not_found")))
        return "error";
    return "ok";
}

char *wire_server_handle(wire_server_t *self, const char *frame, size_t len)
{
    double started = clock_mono();
    const char *label = "invalid";
    json_t *reply = dispatch(self, frame, len, &label);
    if (!reply)
        reply = wire_error("Internal error");
    char *text = json_dumps(reply, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) {
        json_decref(reply);
        reply = wire_error("Internal error: reply is not serialisable");
        text = json_dumps(reply, JSON_COMPACT);
    }
    if (self->metrics) {
        char labels[192];
        metrics_labels(labels, sizeof labels, "service", self->service, "action", label,
                       "outcome", outcome_of(reply), NULL);
        metrics_add(self->metrics, "keel_requests_total", labels, 1);
        metrics_labels(labels, sizeof labels, "service", self->service, "action", label, NULL);
        metrics_observe(self->metrics, "keel_request_duration_seconds", labels,
                        clock_mono() - started);
    }
    json_decref(reply);
    return text;
}

/* ---- the server thread ---------------------------------------------- */

typedef struct {
    zmq_msg_t frames[MAX_FRAMES];
    int count;
} message_t;

/* Reads one multipart message; frames past MAX_FRAMES are dropped. */
static int message_recv(message_t *m, void *socket)
{
    m->count = 0;
    int more = 1;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, socket, 0) < 0) {
            zmq_msg_close(&part);
            for (int i = 0; i < m->count; i++)
                zmq_msg_close(&m->frames[i]);
            m->count = 0;
            return -1;
        }
        more = zmq_msg_more(&part);
        if (m->count < MAX_FRAMES)
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

/* Index of the body frame: the first after the empty delimiter, or the
 * frame after the identity when there is no delimiter; -1 if none. */
static int body_index(message_t *m)
{
    for (int i = 0; i < m->count; i++)
        if (zmq_msg_size(&m->frames[i]) == 0)
            return i + 1 < m->count ? i + 1 : -1;
    return m->count >= 2 ? 1 : -1;
}

static void free_text(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* Sends frames [0, body) followed by the reply text; consumes the message. */
static void message_reply(message_t *m, int body, void *socket, char *text)
{
    for (int i = 0; i < body; i++)
        zmq_msg_send(&m->frames[i], socket, ZMQ_SNDMORE);
    size_t len = strlen(text);
    zmq_msg_t out;
    zmq_msg_init_data(&out, text, len, free_text, NULL);
    zmq_msg_send(&out, socket, 0);
    message_close(m);
}

/* Handles a message in place: the body frame is answered on `socket`. */
static void serve_message(wire_server_t *self, message_t *m, void *socket)
{
    int body = body_index(m);
    if (body < 0) {     /* no body: nothing a REQ client would send */
        count_bad(self, "no_body");
        message_close(m);
        return;
    }
    char *text = wire_server_handle(self, zmq_msg_data(&m->frames[body]),
                                    zmq_msg_size(&m->frames[body]));
    message_reply(m, body, socket, text);
}

/* Forwards a message unchanged (frames consumed). */
static void message_forward(message_t *m, void *socket)
{
    for (int i = 0; i < m->count; i++)
        zmq_msg_send(&m->frames[i], socket, i + 1 < m->count ? ZMQ_SNDMORE : 0);
    message_close(m);
}

static void *worker_main(void *arg)
{
    wire_server_t *self = arg;
    void *jobs = zmq_socket(wire_context(), ZMQ_PULL);
    void *results = zmq_socket(wire_context(), ZMQ_PUSH);
    int zero = 0, timeout = 100;
    zmq_setsockopt(jobs, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(jobs, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(results, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(jobs, self->jobs_endpoint);
    zmq_connect(results, self->results_endpoint);
    message_t m;
    while (atomic_load(&self->running)) {
        if (message_recv(&m, jobs) < 0)
            continue;
        serve_message(self, &m, results);
    }
    zmq_close(jobs);
    zmq_close(results);
    return NULL;
}

static void *server_main(void *arg)
{
    wire_server_t *self = arg;
    void *jobs = NULL, *results = NULL;
    if (self->nworkers > 0) {
        jobs = zmq_socket(wire_context(), ZMQ_PUSH);
        results = zmq_socket(wire_context(), ZMQ_PULL);
        int zero = 0;
        zmq_setsockopt(jobs, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(results, ZMQ_LINGER, &zero, sizeof zero);
        zmq_bind(jobs, self->jobs_endpoint);
        zmq_bind(results, self->results_endpoint);
        for (int i = 0; i < self->nworkers; i++)
            pthread_create(&self->workers[i], NULL, worker_main, self);
    }
    zmq_pollitem_t items[2] = {
        { self->router, 0, ZMQ_POLLIN, 0 },
        { results, 0, ZMQ_POLLIN, 0 },
    };
    int nitems = results ? 2 : 1;
    message_t m;
    while (atomic_load(&self->running)) {
        if (zmq_poll(items, nitems, 100) <= 0)
            continue;
        if ((items[0].revents & ZMQ_POLLIN) && message_recv(&m, self->router) == 0) {
            if (jobs)
                message_forward(&m, jobs);
            else
                serve_message(self, &m, self->router);
        }
        if (nitems > 1 && (items[1].revents & ZMQ_POLLIN) && message_recv(&m, results) == 0)
            message_forward(&m, self->router);
    }
    for (int i = 0; i < self->nworkers; i++)
        pthread_join(self->workers[i], NULL);
    /* Replies the workers finished while stopping still go out. */
    while (results && zmq_poll(&items[1], 1, 0) > 0 && message_recv(&m, results) == 0)
        message_forward(&m, self->router);
    if (jobs)
        zmq_close(jobs);
    if (results)
        zmq_close(results);
    return NULL;
}

int wire_server_start(wire_server_t *self)
{
    atomic_store(&self->running, true);
    if (pthread_create(&self->thread, NULL, server_main, self) != 0) {
        log_error(self->service, "cannot start the wire thread");
        return -1;
    }
    self->started = true;
    return 0;
}

void wire_server_stop(wire_server_t *self)
{
    if (!self->started)
        return;
    atomic_store(&self->running, false);
    pthread_join(self->thread, NULL);
    self->started = false;
}

/* ---- client ------------------------------------------------------------ */

struct wire_client_t {
    char *endpoint;
    int timeout_ms, retries;
    void *socket;
};

wire_client_t *wire_client_new(const char *endpoint, int timeout_ms, int retries)
{
    wire_client_t *self = calloc(1, sizeof *self);
    self->endpoint = strdup(endpoint);
    self->timeout_ms = timeout_ms;
    self->retries = retries < 0 ? 0 : retries;
    return self;
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
    self->socket = zmq_socket(wire_context(), ZMQ_REQ);
    int zero = 0;
    zmq_setsockopt(self->socket, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(self->socket, self->endpoint) != 0) {
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
        zmq_pollitem_t item = { self->socket, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&item, 1, self->timeout_ms) == 1) {
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
    char *text = json_dumps(request, JSON_COMPACT);
    if (!text) {
        snprintf(err, errlen, "request is not serialisable");
        return NULL;
    }
    size_t len;
    char *reply_text = wire_client_call_raw(self, text, strlen(text), &len, err, errlen);
    free(text);
    if (!reply_text)
        return NULL;
    json_error_t jerr;
    json_t *reply = json_loadb(reply_text, len, JSON_DECODE_ANY, &jerr);
    free(reply_text);
    if (!reply)
        snprintf(err, errlen, "reply from %s is not JSON", self->endpoint);
    return reply;
}

json_t *wire_call(const char *endpoint, json_t *request, int timeout_ms, int retries,
                  char *err, size_t errlen)
{
    wire_client_t *client = wire_client_new(endpoint, timeout_ms, retries);
    json_t *reply = wire_client_call(client, request, err, errlen);
    wire_client_destroy(&client);
    return reply;
}
