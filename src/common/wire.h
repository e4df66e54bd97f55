/*  wire: the request/reply protocol every Keel service speaks on ZMQ, and
 *  the client every service uses to call another agent.
 *
 *  Server.  A ROUTER socket (so one slow client never blocks another, and
 *  plain REQ clients still work) takes one frame of UTF-8 JSON and answers
 *  exactly one frame of JSON, always, even for garbage.  The request is
 *  routed by dialect: `action` (Keel and the modern agents), legacy
 *  `command`+`payload` (UPPERCASE replies), coordinator `type`, and a raw
 *  non-JSON frame.  Transport faults get the BaseAgent error replies
 *  (spec/core_orchestrator.md §1.2) and a counter; a frame over the size
 *  limit gets "Request too large" without being parsed.  Handlers run on
 *  the server thread, or on a pool of worker threads when the service has
 *  slow handlers (password hashing, forwarding): the ROUTER socket itself
 *  is only ever touched by the server thread.
 *
 *  Client.  A REQ socket with a receive timeout; on a timeout the socket is
 *  closed and made anew before the retry (the Lazy Pirate pattern), since a
 *  REQ socket that missed a reply can never send again. */
#ifndef KEEL_WIRE_H
#define KEEL_WIRE_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"

/* How Keel writes JSON on the wire.  Reals keep jansson's 17 significant
 * digits: the text may read 0.84999999999999998 where Python writes 0.85,
 * but it parses back to the identical double, which fewer digits do not
 * guarantee. */
#define WIRE_JSON_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)

typedef enum { WIRE_ACTION, WIRE_COMMAND, WIRE_TYPE, WIRE_RAW } wire_dialect_t;

typedef struct {
    wire_dialect_t dialect;
    const char *name;       /* action, command or type value; "" for raw */
    json_t *body;           /* the whole request object (NULL for raw) */
    json_t *payload;        /* `payload` of a command (an empty object when absent), else body */
    const char *raw;        /* the frame as received */
    size_t raw_len;
    const char *peer;       /* the client's IP address (TCP), or NULL */
} wire_request_t;

/* Returns the reply (a new reference), or NULL for a generic error reply. */
typedef json_t *(wire_handler_fn)(void *ctx, wire_request_t *req);

typedef struct wire_server_t wire_server_t;

/* `service` labels the metrics; `metrics` may be NULL. */
wire_server_t *wire_server_new(const char *service, metrics_t *metrics);
void wire_server_destroy(wire_server_t **self_p);
/* Any number of endpoints ("tcp://127.0.0.1:7000"); 0 or -1 (logged). */
int wire_server_bind(wire_server_t *self, const char *endpoint);
void wire_server_on_action(wire_server_t *self, const char *action, wire_handler_fn *fn, void *ctx);
void wire_server_on_command(wire_server_t *self, const char *command, wire_handler_fn *fn, void *ctx);
/* Every request carrying `type` (and no `action`) goes to fn. */
void wire_server_on_type(wire_server_t *self, wire_handler_fn *fn, void *ctx);
/* Frames that are not JSON go to fn instead of the "Invalid JSON" reply. */
void wire_server_on_raw(wire_server_t *self, wire_handler_fn *fn, void *ctx);
/* Requests no route takes (unknown action/command, no dialect key).  The
 * default answers {"status":"error","error":"Unknown action: <a>"}. */
void wire_server_on_unknown(wire_server_t *self, wire_handler_fn *fn, void *ctx);
/* The unknown-action answer on a module's legacy port, where the old agent
 * worded it differently from the service's main port. */
void wire_server_on_module_unknown(wire_server_t *self, const char *module, wire_handler_fn *fn,
                                   void *ctx);
/* Modules.  Each route may be tagged with the absorbed agent it came from
 * ("ServiceRegistry"), so that a module can be delegated to its still-running
 * legacy agent (each request forwarded as is, behind a circuit breaker of 3
 * failures / 30 s; with `fallback` a failed forward is answered here
 * instead), and so that a legacy port can serve exactly its module's routes.
 * WIRE_TYPE tags the `type` route and WIRE_RAW the raw route (name unused).
 * Delegation may change while serving; an empty endpoint ends it. */
void wire_server_tag(wire_server_t *self, const char *module, wire_dialect_t dialect,
                     const char *name);
int wire_server_delegate(wire_server_t *self, const char *module, const char *endpoint,
                         int timeout_ms, bool fallback);
/* For a handler that serves two modules' forms of one request and so has
 * no single tag: the delegate's reply when `module` is delegated now, or
 * NULL when the request is to be answered here (not delegated, or the
 * forward failed and the module falls back). */
json_t *wire_server_forward(wire_server_t *self, const char *module, const wire_request_t *req);
/* {module: {endpoint, breaker, fallback}} of the modules delegated now. */
json_t *wire_server_delegation(wire_server_t *self);
/* Also listens on `endpoint` with only the module's routes and the health
 * actions (a legacy port), served by this server's thread.  Call after the
 * routes are registered and tagged, before wire_server_start.  0 or -1. */
int wire_server_listen_module(wire_server_t *self, const char *module, const char *endpoint);
/* Also listens on `endpoint`, answering every frame, JSON or not, with fn
 * (an old agent's health port, which answered anything with its health). */
int wire_server_listen_any(wire_server_t *self, const char *endpoint, wire_handler_fn *fn, void *ctx);

/* 0 runs handlers on the server thread (the default). */
void wire_server_set_workers(wire_server_t *self, int workers);
void wire_server_set_max_request(wire_server_t *self, size_t bytes);
int wire_server_start(wire_server_t *self);
/* Stops taking requests, answers those in flight, joins the threads. */
void wire_server_stop(wire_server_t *self);
/* Handles one request in the calling thread (tests, fuzzing, delegation):
 * returns the reply text, which the caller frees. */
char *wire_server_handle(wire_server_t *self, const char *frame, size_t len);

/* Reply helpers. */
json_t *wire_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
json_t *wire_error_key(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
json_t *wire_success(void);     /* {"status":"success"} */

typedef struct wire_client_t wire_client_t;

wire_client_t *wire_client_new(const char *endpoint, int timeout_ms, int retries);
void wire_client_destroy(wire_client_t **self_p);
/* Sends `request` (borrowed) and returns the reply object, or NULL with the
 * reason in err ("timeout after 3 tries", "reply is not JSON"). */
json_t *wire_client_call(wire_client_t *self, json_t *request, char *err, size_t errlen);
/* Sends a raw frame and returns the raw reply (caller frees), or NULL. */
char *wire_client_call_raw(wire_client_t *self, const void *data, size_t len,
                           size_t *reply_len, char *err, size_t errlen);
/* One request on a fresh client: the common case of calling an agent once. */
json_t *wire_call(const char *endpoint, json_t *request, int timeout_ms, int retries,
                  char *err, size_t errlen);
#endif
