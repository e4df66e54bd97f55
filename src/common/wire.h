/*  wire: the request/reply protocol every Keel service speaks on ZMQ, and
 *  the client every service uses to call another agent.
 *
 *  Server.  A ROUTER socket (so one slow client never blocks another, and
 *  plain REQ clients still work) takes one frame of UTF-8 JSON and answers
 *  exactly one frame of JSON, always, even for garbage.  The request is
 *  routed by dialect: `action` (Keel and the modern agents), legacy
 *  `command`+`payload` (UPPERCASE replies), coordinator `type`, the
 *  cross-machine registry's `request_type`, and a raw non-JSON frame, each
 *  route declared once in a table with its privilege, which is checked
 *  before the handler runs.  Transport faults get the BaseAgent error
 *  replies (CO-2..CO-5, docs/wire-protocol.md) and a counter; a frame over the size
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

#include "breaker.h"
#include "liveness.h"
#include "metrics.h"
#include "privilege.h"

/* WIRE_REQUEST_TYPE is PredictiveHealthMonitor's cross-machine registry:
 * `request_type` names the request, as `action` does. */
typedef enum { WIRE_ACTION, WIRE_COMMAND, WIRE_TYPE, WIRE_RAW, WIRE_REQUEST_TYPE } wire_dialect_t;

/* "action", "command", "type", "raw" or "request_type". */
const char *wire_dialect_name(wire_dialect_t dialect);

typedef struct {
    wire_dialect_t dialect;
    const char *name;       /* action, command or type value; "" for raw */
    json_t *body;           /* the whole request object (NULL for raw) */
    json_t *payload;        /* `payload` of a command (an empty object when absent), else body */
    const char *raw;        /* the frame as received */
    size_t raw_len;
    const char *peer;       /* the client's IP address (TCP), or NULL */
    bool curve;             /* the client is a CURVE key the ZAP handler admitted */
    char *text;             /* set by wire_reply_text */
    size_t text_len;
    bool read_only;         /* set by wire_request_reads_only */
} wire_request_t;

/* Returns the reply (a new reference), or NULL for a generic error reply. */
typedef json_t *(wire_handler_fn)(void *ctx, wire_request_t *req);

/* One route, declared once in a module's `static const` table that ends
 * with an all-zero entry.  `module` names the absorbed agent the route came
 * from ("ServiceRegistry"), or NULL for the service's own: it decides
 * delegation and which legacy port serves the route.  WIRE_TYPE declares
 * the route of every request carrying `type` (and no `action`), WIRE_RAW
 * that of frames which are not JSON (name NULL for both).  A later route of
 * the same dialect and name replaces an earlier one. */
typedef struct {
    wire_dialect_t dialect;
    const char *name;
    wire_handler_fn *fn;
    const char *module;
    route_privilege_t privilege;
} wire_route_t;

typedef struct wire_server_t wire_server_t;

/* `service` labels the metrics; `metrics` may be NULL. */
wire_server_t *wire_server_new(const char *service, metrics_t *metrics);
void wire_server_destroy(wire_server_t **self_p);
/* Any number of endpoints ("tcp://127.0.0.1:7000"); 0 or -1 (logged). */
int wire_server_bind(wire_server_t *self, const char *endpoint);
/* Registers every route of `table` (borrowed: static) with `ctx`.  Each
 * request's privilege is checked before its handler or delegate runs; a
 * refusal is one error reply in the route's dialect and counts
 * keel_bad_requests_total{reason="forbidden"}. */
void wire_server_attach(wire_server_t *self, const wire_route_t *table, void *ctx);
/* Who may call what (borrowed; NULL grants only public routes).  Legacy
 * listeners share their server's. */
void wire_server_set_privilege(wire_server_t *self, privilege_t *privilege);
/* Calls fn once per route registered now (the entry is built for the call). */
typedef void (wire_route_visitor_fn)(void *arg, const wire_route_t *route);
void wire_server_each_route(wire_server_t *self, wire_route_visitor_fn *fn, void *arg);
/* Requests no route takes (unknown action/command, no dialect key).  The
 * default answers {"status":"error","error":"Unknown action: <a>"}. */
void wire_server_on_unknown(wire_server_t *self, wire_handler_fn *fn, void *ctx);
/* The unknown-action answer on a module's legacy port, where the old agent
 * worded it differently from the service's main port. */
void wire_server_on_module_unknown(wire_server_t *self, const char *module, wire_handler_fn *fn,
                                   void *ctx);
/* Modules.  A module (the `module` of its routes) can be delegated to its
 * still-running legacy agent: each request forwarded as is, behind a
 * circuit breaker with `limits` (borrowed); with `fallback` a failed
 * forward is answered here instead.  Delegation may change while serving;
 * an empty endpoint ends it. */
int wire_server_delegate(wire_server_t *self, const char *module, const char *endpoint,
                         int timeout_ms, bool fallback, const breaker_limits_t *limits);
/* For a handler that serves two modules' forms of one request and so has
 * no single module: the delegate's reply when `module` is delegated now, or
 * NULL when the request is to be answered here (not delegated, or the
 * forward failed and the module falls back).  The frame goes as it came,
 * less its `auth_token`: a legacy agent never sees an administrator's token. */
json_t *wire_server_forward(wire_server_t *self, const char *module, const wire_request_t *req);
/* {module: {endpoint, breaker, fallback}} of the modules delegated now. */
json_t *wire_server_delegation(wire_server_t *self);
/* Serves an action route on `module`'s legacy port too, though it belongs
 * to another module or to none (a request two agents answered by its
 * form, whose handler calls wire_server_forward): a kept agent dials that
 * port for it.  Delegation still follows the route's own tag.  0, or -1
 * when the action has no route or is shared too often. */
int wire_server_share(wire_server_t *self, const char *module, const char *action);
/* Also listens on `endpoint` with only the module's routes and the health
 * actions (a legacy port), served by this server's thread.  Call after the
 * routes are attached, before wire_server_start.  A port the kept agents
 * dial: plaintext under SECURE_ZMQ unless agent_curve (zsocket.h).  0 or -1. */
int wire_server_listen_module(wire_server_t *self, const char *module, const char *endpoint);
/* Also listens on `endpoint` with every route of this server (an absorbed
 * agent's old main port that served what the whole service serves now).
 * A port the kept agents dial, like the one above.  0 or -1. */
int wire_server_listen_all(wire_server_t *self, const char *endpoint);
/* Also listens on `endpoint`, answering every frame, JSON or not, with fn
 * (an old agent's health port, which answered anything with its health). */
int wire_server_listen_any(wire_server_t *self, const char *endpoint, wire_handler_fn *fn, void *ctx);

/* Group commit, for a service whose handlers write a database.  The
 * server thread calls begin(ctx) before it handles a batch of queued
 * requests and end(ctx, err, errlen) after, and only then sends the
 * batch's replies: as they are when end returns 0, or each replaced by
 * the error end wrote in err when it returns -1 (end has undone the
 * batch's writes then).  Requests that arrive together share one commit,
 * and no reply leaves before everything the batch wrote is on disk, so
 * none can tell of a write that a crash could still lose.  Only without
 * workers: on workers, handlers commit what they write themselves.  Call
 * before wire_server_start. */
typedef void (wire_batch_begin_fn)(void *ctx);
typedef int (wire_batch_end_fn)(void *ctx, char *err, size_t errlen);
void wire_server_set_batch(wire_server_t *self, wire_batch_begin_fn *begin, wire_batch_end_fn *end,
                           void *ctx);
/* Runs handlers on up to `workers` threads (16 at most; configuration
 * keys for it are limited to that), each given a request only when
 * it is free; they start as requests find every running one busy.  0 runs
 * handlers on the server thread (the default). */
void wire_server_set_workers(wire_server_t *self, int workers);
/* Answers a route on the server thread even when the service has
 * workers, so its requests skip the hop to a worker and back: only for
 * handlers that never wait (health from a cache, a token checked in
 * memory).  A route whose module is delegated at the time still goes to
 * the workers, since forwarding waits.  WIRE_RAW takes NULL for name and
 * answers raw pings only.  Call after the route is attached and before
 * wire_server_start (attaching the route again undoes it).  0, or -1
 * when there is no such route. */
int wire_server_answer_inline(wire_server_t *self, wire_dialect_t dialect, const char *name);
/* The server thread and each worker beat a stamp of `liveness` (borrowed)
 * every time round their loop; call before wire_server_start. */
void wire_server_set_liveness(wire_server_t *self, liveness_t *liveness);
void wire_server_set_max_request(wire_server_t *self, size_t bytes);
int wire_server_start(wire_server_t *self);
/* Stops taking requests, answers those in flight, joins the threads. */
void wire_server_stop(wire_server_t *self);
/* Handles one request in the calling thread (tests, fuzzing, delegation):
 * returns the reply text, which the caller frees. */
char *wire_server_handle(wire_server_t *self, const char *frame, size_t len);
/* Requests answered so far on the server's ports (its legacy listeners
 * included): what keel_requests_total counts for the service, without
 * summing its series. */
long wire_server_requests(wire_server_t *self);

/* True for the raw frame "ping" (trailing blanks and newlines allowed),
 * which BaseAgent's clients send without any JSON around it. */
bool wire_is_raw_ping(const char *frame, size_t len);

/* For a handler whose reply is text it wrote itself (one served from a
 * cache): hands `text` (malloc'd JSON; the wire frees it) to the wire and
 * returns NULL, as in `return wire_reply_text(req, text, len);`.  Counted
 * with outcome "ok". */
json_t *wire_reply_text(wire_request_t *req, char *text, size_t len);
/* Declares that the request changed nothing a cached reply reports (a
 * health request, a lookup): wire_server_changes leaves it out. */
void wire_request_reads_only(wire_request_t *req);
/* Requests answered so far, on the server's ports and its legacy
 * listeners', less those declared wire_request_reads_only: any of them
 * may have changed state, so a reply cached because it reports state is
 * rebuilt when this has moved.  Counted after each handler returns, so a
 * change is in the state before it is in the count. */
long wire_server_changes(wire_server_t *self);

/* Reply helpers. */
json_t *wire_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
json_t *wire_error_key(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
json_t *wire_success(void);     /* {"status":"success"} */

typedef struct wire_client_t wire_client_t;

/* A client of a Keel service (CURVE under SECURE_ZMQ) or of a kept agent
 * (CURVE only with agent_curve too: zsocket.h). */
wire_client_t *wire_client_new(const char *endpoint, int timeout_ms, int retries);
wire_client_t *wire_client_new_agent(const char *endpoint, int timeout_ms, int retries);
void wire_client_destroy(wire_client_t **self_p);
/* A call ends at once, as failed ("cancelled"), when `fd` (borrowed: an
 * actor's stop descriptor, actor.h) is readable, so a stop never waits out
 * a call's timeout. */
void wire_client_cancel_on(wire_client_t *self, int fd);
/* Sends `request` (borrowed) and returns the reply object, or NULL with the
 * reason in err ("timeout after 3 tries", "reply is not JSON"). */
json_t *wire_client_call(wire_client_t *self, json_t *request, char *err, size_t errlen);
/* Sends a raw frame and returns the raw reply (caller frees), or NULL. */
char *wire_client_call_raw(wire_client_t *self, const void *data, size_t len,
                           size_t *reply_len, char *err, size_t errlen);
/* One request on a fresh client: the common case of calling a service, or
 * an agent, once. */
json_t *wire_call(const char *endpoint, json_t *request, int timeout_ms, int retries,
                  char *err, size_t errlen);
json_t *wire_call_agent(const char *endpoint, json_t *request, int timeout_ms, int retries,
                        char *err, size_t errlen);
#endif
