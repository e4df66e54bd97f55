/*  httpd: the HTTP side of a service (libmicrohttpd, a thread per
 *  connection so a slow or streaming client never holds up another).
 *  Routes are an exact path or a prefix ending in '*'.  Routes that change
 *  state are registered as protected: they need `Authorization: Bearer`
 *  accepted by the service's authorizer, and without one they are refused,
 *  so a service can never expose a mutating route by forgetting auth.
 *  Request bodies are capped at 1 MiB (413 past that). */
#ifndef KEEL_HTTPD_H
#define KEEL_HTTPD_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"

typedef struct {
    const char *method;
    const char *path;
    const char *body;               /* NUL-terminated; "" when none */
    size_t body_len;
    const char *bearer;             /* token after "Bearer ", or NULL */
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
/* Returns true when the bearer token may change state. */
typedef bool (http_authorizer_fn)(void *ctx, const char *bearer);

typedef struct httpd_t httpd_t;

httpd_t *httpd_new(const char *service, metrics_t *metrics);
void httpd_destroy(httpd_t **self_p);
void httpd_route(httpd_t *self, const char *method, const char *path,
                 http_handler_fn *fn, void *ctx);
void httpd_route_protected(httpd_t *self, const char *method, const char *path,
                           http_handler_fn *fn, void *ctx);
void httpd_set_authorizer(httpd_t *self, http_authorizer_fn *fn, void *ctx);
int httpd_start(httpd_t *self, const char *bind, int port);
void httpd_stop(httpd_t *self);

const char *http_query(const http_request_t *req, const char *key);
/* Sets a JSON reply, taking the reference. */
void http_reply_json(http_reply_t *reply, int status, json_t *body);
void http_reply_text(http_reply_t *reply, int status, const char *content_type, const char *text);
#endif
