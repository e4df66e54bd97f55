/*  httpd: see httpd.h.  libmicrohttpd calls the access handler several
 *  times per request: once with the headers, then once per piece of body,
 *  then a last time with no data, when the route runs.  The per-connection
 *  state between calls lives in `pending_t`. */
#include "httpd.h"
#include "clock.h"
#include "log.h"
#include "wire.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY (1 << 20)

typedef struct {
    const http_route_t *decl;       /* in its module's static table */
    void *ctx;
} attached_t;

struct httpd_t {
    pthread_rwlock_t lock;          /* routes may be added while serving */
    char *service;
    metrics_t *metrics;
    attached_t *routes;
    size_t nroutes;
    privilege_t *privilege;         /* borrowed */
    struct MHD_Daemon *daemon;
};

typedef struct {
    char *body;
    size_t len;
    bool too_large;
} pending_t;

httpd_t *httpd_new(const char *service, metrics_t *metrics)
{
    httpd_t *self = calloc(1, sizeof *self);
    pthread_rwlock_init(&self->lock, NULL);
    self->service = strdup(service);
    self->metrics = metrics;
    if (metrics) {
        metrics_declare(metrics, "keel_http_requests_total",
                        "HTTP requests answered, by route and status code.", METRIC_COUNTER, NULL, 0);
        metrics_declare(metrics, "keel_bad_requests_total",
                        "Requests refused before their handler ran, by reason.", METRIC_COUNTER, NULL, 0);
    }
    return self;
}

void httpd_destroy(httpd_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    httpd_t *self = *self_p;
    httpd_stop(self);
    free(self->routes);
    pthread_rwlock_destroy(&self->lock);
    free(self->service);
    free(self);
    *self_p = NULL;
}

void httpd_attach(httpd_t *self, const http_route_t *table, void *ctx)
{
    size_t n = 0;
    while (table[n].fn)
        n++;
    pthread_rwlock_wrlock(&self->lock);
    self->routes = realloc(self->routes, (self->nroutes + n) * sizeof *self->routes);
    for (size_t i = 0; i < n; i++)
        self->routes[self->nroutes++] = (attached_t){ &table[i], ctx };
    pthread_rwlock_unlock(&self->lock);
}

void httpd_set_privilege(httpd_t *self, privilege_t *privilege)
{
    self->privilege = privilege;
}

void httpd_each_route(httpd_t *self, http_route_visitor_fn *fn, void *arg)
{
    pthread_rwlock_rdlock(&self->lock);
    for (size_t i = 0; i < self->nroutes; i++)
        fn(arg, self->routes[i].decl);
    pthread_rwlock_unlock(&self->lock);
}

static bool path_matches(const char *pattern, const char *path)
{
    size_t n = strlen(pattern);
    if (n && pattern[n - 1] == '*')
        return strncmp(pattern, path, n - 1) == 0;
    return strcmp(pattern, path) == 0;
}

/* The matching route, or NULL; *path_known tells 404 from 405. */
static attached_t *find_route(httpd_t *self, const char *method, const char *path, bool *path_known)
{
    *path_known = false;
    for (size_t i = 0; i < self->nroutes; i++) {
        const http_route_t *decl = self->routes[i].decl;
        if (!path_matches(decl->path, path))
            continue;
        *path_known = true;
        if (strcmp(decl->method, method) == 0
            || (strcmp(method, "HEAD") == 0 && strcmp(decl->method, "GET") == 0))
            return &self->routes[i];
    }
    return NULL;
}

const char *http_query(const http_request_t *req, const char *key)
{
    return MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, key);
}

void http_reply_json(http_reply_t *reply, int status, json_t *body)
{
    reply->status = status;
    free(reply->body);
    reply->body = json_dumps(body, WIRE_JSON_FLAGS);
    reply->body_len = reply->body ? strlen(reply->body) : 0;
    reply->content_type = "application/json";
    json_decref(body);
}

void http_reply_text(http_reply_t *reply, int status, const char *content_type, const char *text)
{
    reply->status = status;
    free(reply->body);
    reply->body = strdup(text);
    reply->body_len = strlen(text);
    reply->content_type = content_type;
}

static void error_json(http_reply_t *reply, int status, const char *message)
{
    http_reply_json(reply, status, json_pack("{s:s, s:s}", "status", "error", "error", message));
}

/* 401 without a token, 403 with one that is not enough, as the wire
 * refuses: true when the caller may go on. */
static bool privilege_allows(httpd_t *self, const http_route_t *route, const http_request_t *req,
                             http_reply_t *reply)
{
    privilege_caller_t caller = { req->peer, false, req->bearer };
    privilege_verdict_t verdict = privilege_check(self->privilege, route->privilege, &caller);
    if (verdict == PRIVILEGE_GRANTED)
        return true;
    if (self->metrics) {
        char labels[128];
        metrics_labels(labels, sizeof labels, "service", self->service, "reason", "forbidden", NULL);
        metrics_add(self->metrics, "keel_bad_requests_total", labels, 1);
    }
    char name[160], text[400];
    snprintf(name, sizeof name, "%s %s", route->method, route->path);
    privilege_refusal(route->privilege, name, text, sizeof text);
    error_json(reply, verdict == PRIVILEGE_NO_TOKEN ? 401 : 403, text);
    return false;
}

static void run_route(httpd_t *self, const http_request_t *req, http_reply_t *reply)
{
    bool path_known;
    pthread_rwlock_rdlock(&self->lock);
    attached_t *found = find_route(self, req->method, req->path, &path_known);
    attached_t route = found ? *found : (attached_t){ 0 };
    pthread_rwlock_unlock(&self->lock);
    if (!found) {
        error_json(reply, path_known ? 405 : 404, path_known ? "Method not allowed" : "Not found");
        return;
    }
    if (!privilege_allows(self, route.decl, req, reply))
        return;
    route.decl->fn(route.ctx, req, reply);
    if (!reply->body && !reply->stream)
        error_json(reply, 500, "Internal error");
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    http_reply_t *reply = cls;
    long n = reply->stream(reply->stream_arg, buf, max);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

static void stream_done(void *cls)
{
    http_reply_t *reply = cls;
    if (reply->stream_free)
        reply->stream_free(reply->stream_arg);
    free(reply);
}

static struct MHD_Response *make_response(http_reply_t *reply)
{
    if (reply->stream) {
        http_reply_t *copy = malloc(sizeof *copy);
        *copy = *reply;
        return MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader,
                                                 copy, stream_done);
    }
    return MHD_create_response_from_buffer(reply->body_len, reply->body, MHD_RESPMEM_MUST_FREE);
}

/* Labelled by route pattern, not path, so prefix routes cannot grow the
 * number of series without bound. */
static void count_request(httpd_t *self, const char *method, const char *path, int status)
{
    if (!self->metrics)
        return;
    char code[8], labels[256], route[128] = "other";
    snprintf(code, sizeof code, "%d", status);
    bool path_known;
    pthread_rwlock_rdlock(&self->lock);
    attached_t *found = find_route(self, method, path, &path_known);
    if (found)
        snprintf(route, sizeof route, "%s", found->decl->path);
    pthread_rwlock_unlock(&self->lock);
    metrics_labels(labels, sizeof labels, "service", self->service, "route", route, "code", code, NULL);
    metrics_add(self->metrics, "keel_http_requests_total", labels, 1);
}

static const char *peer_address(struct MHD_Connection *conn, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = info ? info->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET
        && inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len))
        return buf;
    if (sa && sa->sa_family == AF_INET6
        && inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)len))
        return buf;
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    httpd_t *self = cls;
    pending_t *pending = *con_cls;
    if (!pending) {
        *con_cls = calloc(1, sizeof(pending_t));
        return MHD_YES;
    }
    if (*upload_size) {
        if (pending->len + *upload_size > MAX_BODY) {
            pending->too_large = true;
        } else {
            pending->body = realloc(pending->body, pending->len + *upload_size + 1);
            memcpy(pending->body + pending->len, upload_data, *upload_size);
            pending->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    const char *bearer = auth && strncasecmp(auth, "Bearer ", 7) == 0 ? auth + 7 : NULL;
    char peer[INET6_ADDRSTRLEN];
    http_request_t req = { method, url, pending->body ? pending->body : "", pending->len, bearer,
                           peer_address(conn, peer, sizeof peer), conn };
    if (pending->body)
        pending->body[pending->len] = '\0';
    http_reply_t reply = { 0 };
    if (pending->too_large)
        error_json(&reply, 413, "Request too large");
    else
        run_route(self, &req, &reply);
    count_request(self, method, url, reply.status);
    struct MHD_Response *response = make_response(&reply);
    MHD_add_response_header(response, "Content-Type", reply.content_type);
    MHD_add_response_header(response, "Cache-Control", "no-store");
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)reply.status, response);
    MHD_destroy_response(response);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)conn;
    (void)code;
    pending_t *pending = *con_cls;
    if (pending) {
        free(pending->body);
        free(pending);
    }
    *con_cls = NULL;
}

int httpd_start(httpd_t *self, const char *bind, int port)
{
    struct sockaddr_in addr = { 0 };
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (!strcmp(bind, "*") || inet_pton(AF_INET, bind, &addr.sin_addr) != 1)
        addr.sin_addr.s_addr = htonl(INADDR_ANY);
    self->daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
        (uint16_t)port, NULL, NULL, on_request, self,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, self,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)512,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
        MHD_OPTION_END);
    if (!self->daemon) {
        log_error(self->service, "cannot listen for HTTP on %s:%d", bind, port);
        return -1;
    }
    log_info(self->service, "HTTP on %s:%d", bind, port);
    return 0;
}

void httpd_stop(httpd_t *self)
{
    if (self->daemon)
        MHD_stop_daemon(self->daemon);
    self->daemon = NULL;
}
