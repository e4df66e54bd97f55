/*  httpd: the HTTP side of a service (libmicrohttpd, a thread per
 *  connection so a slow or streaming client never holds up another).
 *  Routes are declared once, in a table, each with its privilege
 *  (privilege.h), checked before the handler runs exactly as the wire
 *  checks it: 401 without a token, 403 with one that is not enough, so a
 *  service can never expose a mutating route by forgetting auth.  A path is
 *  exact or a prefix ending in '*'.  Request bodies are capped at 1 MiB
 *  (413 past that). */
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
    void *connection;               /* for http_query */
} http_request_t;

typedef struct {
    int status;
    char *body;                     /* malloc'd; httpd frees it */
    size_t body_len;
    const char *content_type;       /* static text */
    /* When set, the body is streamed: fn fills buf and returns bytes
     * written, 0 to wait, or -1 at the end (server-sent events). */
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
} http_route_t;

typedef struct httpd_t httpd_t;

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
int httpd_start(httpd_t *self, const char *bind, int port);
void httpd_stop(httpd_t *self);

const char *http_query(const http_request_t *req, const char *key);
/* Sets a JSON reply, taking the reference. */
void http_reply_json(http_reply_t *reply, int status, json_t *body);
void http_reply_text(http_reply_t *reply, int status, const char *content_type, const char *text);
#endif
