/*  httpd: the HTTP side of a service, built to hold under hostile
 *  clients: an HTTP/1.0 and 1.1 server of Keel's own (httpd.c says why),
 *  with keep-alive (30 s idle), pipelining, chunked bodies both ways and
 *  100-continue, and no TLS.  Routes are declared once, in a table, each
 *  with its privilege (privilege.h), checked before the handler runs
 *  exactly as the wire checks it: 401 without a token, 403 with one that
 *  is not enough, so a service can never expose a mutating route by
 *  forgetting auth.  A path is exact or a prefix ending in '*'; it is
 *  matched percent-decoded, without its query.
 *
 *  What a request is allowed (httpd_limits_t): connections overall and per
 *  client address; a total deadline to receive a request, headers and body,
 *  that a client trickling bytes cannot extend (the first request on a
 *  connection is due from the connection's start); a head of at most
 *  32 KiB; and a body of at most max_body bytes unless its route declares
 *  more.  A request is judged on its headers before one byte of its body
 *  is read: Host (on a port that serves browsers), route (404/405), the
 *  announced length (413) and the caller's privilege (401/403).  Handlers
 *  run on a few worker threads, never on the thread that reads and writes
 *  the connections, so a slow handler or token check holds up no other
 *  client.  Every reply carries a Content-Security-Policy, X-Frame-Options:
 *  DENY, X-Content-Type-Options: nosniff and Cache-Control: no-store. */
#ifndef KEEL_HTTPD_H
#define KEEL_HTTPD_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"
#include "privilege.h"

typedef struct {
    const char *method;
    const char *path;
    const char *body;               /* NUL-terminated; "" when none */
    size_t body_len;
    const char *bearer;             /* token after "Bearer ", or NULL */
    const char *peer;               /* the client's IP address, or NULL */
    void *connection;               /* the request's parsed head, for http_query */
} http_request_t;

typedef struct {
    int status;
    char *body;                     /* malloc'd; httpd frees it */
    size_t body_len;
    const char *content_type;       /* static text */
    /* When set, the body is streamed: fn fills buf and returns bytes
     * written, 0 to wait (it is asked again within 100 ms), or -1 at the
     * end (server-sent events).  It runs on the connections' thread, so it
     * never blocks. */
    long (*stream)(void *arg, char *buf, size_t max);
    void *stream_arg;
    void (*stream_free)(void *arg);
} http_reply_t;

typedef void (http_handler_fn)(void *ctx, const http_request_t *req, http_reply_t *reply);

/* One route of a `static const` table ending with an all-zero entry. */
typedef struct {
    const char *method;
    const char *path;
    http_handler_fn *fn;
    route_privilege_t privilege;
    size_t max_body;                /* bytes; 0: the server's limit */
} http_route_t;

typedef struct httpd_t httpd_t;

typedef struct {
    unsigned max_connections;       /* open at once, all addresses together */
    unsigned max_per_address;       /* open at once from one client address */
    unsigned deadline_s;            /* to receive one request, from its first byte */
    size_t max_body;                /* bytes, for a route that declares no limit */
    unsigned workers;               /* threads that run handlers and token checks */
} httpd_limits_t;

/* The limits a server has until httpd_set_limits. */
#define HTTPD_DEFAULT_LIMITS ((httpd_limits_t){ 1000, 64, 10, 64 << 10, 4 })

httpd_t *httpd_new(const char *service, metrics_t *metrics);
void httpd_destroy(httpd_t **self_p);
/* Registers every route of `table` (borrowed: static) with `ctx`; also
 * while serving. */
void httpd_attach(httpd_t *self, const http_route_t *table, void *ctx);
/* Who may call what (borrowed; NULL grants only public routes). */
void httpd_set_privilege(httpd_t *self, privilege_t *privilege);
/* Calls fn once per route registered now. */
typedef void (http_route_visitor_fn)(void *arg, const http_route_t *route);
void httpd_each_route(httpd_t *self, http_route_visitor_fn *fn, void *arg);
/* Before httpd_start. */
void httpd_set_limits(httpd_t *self, const httpd_limits_t *limits);
/* Refuses (421) a request whose Host names neither this server's address
 * (every local address when bound to 0.0.0.0), localhost, 127.0.0.1 and
 * [::1], nor one of `extra` (n names, copied): a page served to browsers
 * must not answer a name an attacker's DNS points here (DNS rebinding).
 * A request without Host (HTTP/1.0 tools) is served.  Before httpd_start. */
void httpd_check_host(httpd_t *self, const char *const *extra, size_t n);
int httpd_start(httpd_t *self, const char *bind, int port);
void httpd_stop(httpd_t *self);

/* The decoded value of the query argument `key` (its name compared
 * regardless of case; '+' is a space), NULL when absent or given without
 * '='; alive as long as the request. */
const char *http_query(const http_request_t *req, const char *key);
/* Sets a JSON reply, taking the reference. */
void http_reply_json(http_reply_t *reply, int status, json_t *body);
void http_reply_text(http_reply_t *reply, int status, const char *content_type, const char *text);
#endif
