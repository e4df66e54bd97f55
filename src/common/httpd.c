/*  httpd: see httpd.h.
 *
 *  One libmicrohttpd thread reads and writes every connection through
 *  epoll: select() cannot watch a descriptor numbered past 1,023, so a
 *  process holding a thousand idle clients elsewhere used to stop answering
 *  HTTP altogether; and a thread per connection let 512 slow clients take
 *  a port.  That thread never runs service code.  libmicrohttpd calls the
 *  access handler once the headers are in (where every check that needs no
 *  body is made), once per piece of body, then a last time with none; a
 *  request that needs its caller's privilege checked (a token may have to
 *  be asked of SecurityGateway) or its handler is suspended and queued for
 *  the workers, which resume it with the answer, and libmicrohttpd then
 *  calls the handler again in the same phase.  `request_t` carries a
 *  request through those calls.
 *
 *  Every connection is known from its start to its close (`conn_t`, through
 *  libmicrohttpd's connection notifications): its address, for the limit
 *  per address, and since when it has been sending the request now due.
 *  The warden, a ticker (actor.h) ten times a second, shuts down the socket of a
 *  connection past the deadline, whatever it still trickles (libmicrohttpd's
 *  own timeout, which each byte resets, stays as the idle limit), and wakes
 *  the streams that were waiting for data.  A connection is forgotten before
 *  libmicrohttpd closes its descriptor, so the warden never shuts down a
 *  descriptor number that was reused.
 *
 *  Stopping: no request is suspended once `stopping` is set (under the same
 *  lock as every suspension), the workers answer what is queued, parked
 *  streams are woken to end, and only then is the daemon stopped: it
 *  refuses to stop with a connection still suspended. */
#include "httpd.h"
#include "actor.h"
#include "clock.h"
#include "log.h"
#include "wire.h"
#include "wirejson.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define MAX_WORKERS 64
#define PEER_BUCKETS 256
#define WARDEN_TICK_S 0.1
#define IDLE_TIMEOUT_S 30
#define SECURITY_POLICY "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; " \
                        "form-action 'self'; object-src 'none'"

typedef struct {
    const http_route_t *decl;       /* in its module's static table */
    void *ctx;
} attached_t;

/* Open connections from one client address. */
typedef struct peer_t {
    unsigned char addr[16];
    size_t len;
    unsigned count;
    struct peer_t *next;
} peer_t;

typedef struct conn_t {
    struct MHD_Connection *mhd;
    int fd;
    unsigned char addr[16];
    size_t addr_len;
    double receiving_since;         /* monotonic; 0 while a request is answered */
    bool shut;                      /* the warden shut its socket down */
    struct conn_t *prev, *next;
} conn_t;

typedef enum { REQ_AUTHORIZING, REQ_RECEIVING, REQ_HANDLING } phase_t;

typedef struct request_t {
    struct MHD_Connection *mhd;
    conn_t *conn;
    phase_t phase;
    attached_t route;               /* a copy: routes may be added while serving */
    bool routed;
    const char *method, *url;       /* libmicrohttpd's, alive for the request */
    const char *bearer;
    char peer[INET6_ADDRSTRLEN];    /* "" when unknown */
    char *body;
    size_t len;
    bool too_large;
    privilege_verdict_t verdict;    /* set by a worker before it resumes */
    bool replied;                   /* `reply` went into a response */
    http_reply_t reply;             /* set by a worker before it resumes */
    struct request_t *next_job;
} request_t;

/* A streamed reply, and where to park its connection while it waits.  A
 * parked connection is neither read nor written, so a client that left is
 * seen by the warden (a hang-up on the socket) and the stream then ends. */
typedef struct stream_t {
    http_reply_t reply;
    httpd_t *httpd;
    struct MHD_Connection *mhd;
    int fd;
    bool gone;
    struct stream_t *next_parked;
} stream_t;

struct httpd_t {
    pthread_rwlock_t routes_lock;   /* routes may be added while serving */
    char *service;
    metrics_t *metrics;
    attached_t *routes;
    size_t nroutes;
    privilege_t *privilege;         /* borrowed */
    httpd_limits_t limits;
    bool check_host;
    char **hosts;                   /* allowed Host names, when check_host */
    size_t nhosts;
    struct MHD_Daemon *daemon;

    /* Everything below is guarded by `lock`. */
    pthread_mutex_t lock;
    pthread_cond_t jobs_ready;
    request_t *jobs_head, *jobs_tail;
    actor_t *workers[MAX_WORKERS];  /* runners, from start to stop */
    unsigned nworkers;
    actor_t *warden;
    bool stopping;
    conn_t *conns;
    peer_t *peers[PEER_BUCKETS];
    stream_t *parked;
};

/* ---- set-up ---------------------------------------------------------------- */

static actor_tick_fn warden_pass;

httpd_t *httpd_new(const char *service, metrics_t *metrics)
{
    httpd_t *self = calloc(1, sizeof *self);
    pthread_rwlock_init(&self->routes_lock, NULL);
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->jobs_ready, NULL);
    self->service = strdup(service);
    self->metrics = metrics;
    self->limits = HTTPD_DEFAULT_LIMITS;
    self->warden = actor_new("http warden", WARDEN_TICK_S, warden_pass, self);
    if (metrics) {
        metrics_declare(metrics, "keel_http_requests_total",
                        "HTTP requests answered, by route and status code.", METRIC_COUNTER, NULL, 0);
        metrics_declare(metrics, "keel_http_refused_total",
                        "HTTP connections and requests refused before any handler ran, by reason "
                        "(per_address, deadline, host).", METRIC_COUNTER, NULL, 0);
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
    actor_destroy(&self->warden);
    free(self->routes);
    for (size_t i = 0; i < self->nhosts; i++)
        free(self->hosts[i]);
    free(self->hosts);
    pthread_cond_destroy(&self->jobs_ready);
    pthread_mutex_destroy(&self->lock);
    pthread_rwlock_destroy(&self->routes_lock);
    free(self->service);
    free(self);
    *self_p = NULL;
}

void httpd_attach(httpd_t *self, const http_route_t *table, void *ctx)
{
    size_t n = 0;
    while (table[n].fn)
        n++;
    pthread_rwlock_wrlock(&self->routes_lock);
    self->routes = realloc(self->routes, (self->nroutes + n) * sizeof *self->routes);
    for (size_t i = 0; i < n; i++)
        self->routes[self->nroutes++] = (attached_t){ &table[i], ctx };
    pthread_rwlock_unlock(&self->routes_lock);
}

void httpd_set_privilege(httpd_t *self, privilege_t *privilege)
{
    self->privilege = privilege;
}

void httpd_each_route(httpd_t *self, http_route_visitor_fn *fn, void *arg)
{
    pthread_rwlock_rdlock(&self->routes_lock);
    for (size_t i = 0; i < self->nroutes; i++)
        fn(arg, self->routes[i].decl);
    pthread_rwlock_unlock(&self->routes_lock);
}

void httpd_set_limits(httpd_t *self, const httpd_limits_t *limits)
{
    self->limits = *limits;
    if (self->limits.workers < 1)
        self->limits.workers = 1;
    if (self->limits.workers > MAX_WORKERS)
        self->limits.workers = MAX_WORKERS;
}

static void allow_host(httpd_t *self, const char *host)
{
    self->hosts = realloc(self->hosts, (self->nhosts + 1) * sizeof *self->hosts);
    self->hosts[self->nhosts++] = strdup(host);
}

void httpd_check_host(httpd_t *self, const char *const *extra, size_t n)
{
    self->check_host = true;
    static const char *const local[] = { "localhost", "127.0.0.1", "[::1]" };
    for (size_t i = 0; i < 3; i++)
        allow_host(self, local[i]);
    for (size_t i = 0; i < n; i++)
        allow_host(self, extra[i]);
}

/* The addresses a server bound to 0.0.0.0 answers on: every local one. */
static void allow_local_addresses(httpd_t *self)
{
    struct ifaddrs *list = NULL;
    if (getifaddrs(&list) < 0)
        return;
    for (struct ifaddrs *i = list; i; i = i->ifa_next) {
        char text[INET6_ADDRSTRLEN + 2] = "";
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, text, sizeof text);
        } else if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET6) {
            char bare[INET6_ADDRSTRLEN];
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, bare, sizeof bare);
            snprintf(text, sizeof text, "[%s]", bare);
        }
        if (*text)
            allow_host(self, text);
    }
    freeifaddrs(list);
}

/* ---- routes ---------------------------------------------------------------- */

static bool path_matches(const char *pattern, const char *path)
{
    size_t n = strlen(pattern);
    if (n && pattern[n - 1] == '*')
        return strncmp(pattern, path, n - 1) == 0;
    return strcmp(pattern, path) == 0;
}

/* The matching route, or NULL; *path_known tells 404 from 405.  The
 * caller holds the routes lock. */
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
    reply->body_len = 0;
    reply->body = wirejson_dump(body, &reply->body_len);
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

/* ---- metrics --------------------------------------------------------------- */

static void count_refused(httpd_t *self, const char *reason)
{
    if (!self->metrics)
        return;
    char labels[160];
    metrics_labels(labels, sizeof labels, "service", self->service, "reason", reason, NULL);
    metrics_add(self->metrics, "keel_http_refused_total", labels, 1);
}

/* Labelled by route pattern, not path, so prefix routes cannot grow the
 * number of series without bound. */
static void count_request(httpd_t *self, request_t *r, int status)
{
    if (!self->metrics)
        return;
    char code[8], labels[256];
    snprintf(code, sizeof code, "%d", status);
    metrics_labels(labels, sizeof labels, "service", self->service,
                   "route", r->routed ? r->route.decl->path : "other", "code", code, NULL);
    metrics_add(self->metrics, "keel_http_requests_total", labels, 1);
}

/* ---- connections, addresses, the deadline ------------------------------------------- */

/* The client's address as text into buf ("" when unknown). */
static void peer_text(struct MHD_Connection *mhd, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = info ? info->client_addr : NULL;
    *buf = '\0';
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)len);
}

static size_t address_of(const struct sockaddr *sa, unsigned char *out)
{
    if (sa && sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa && sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 16;
    }
    return 0;
}

static peer_t **bucket_of(httpd_t *self, const unsigned char *addr, size_t len)
{
    unsigned h = 2166136261u;           /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ addr[i]) * 16777619u;
    return &self->peers[h % PEER_BUCKETS];
}

/* The address's entry, made when `create`.  The caller holds the lock. */
static peer_t *peer_of(httpd_t *self, const unsigned char *addr, size_t len, bool create)
{
    peer_t **bucket = bucket_of(self, addr, len);
    for (peer_t *p = *bucket; p; p = p->next)
        if (p->len == len && memcmp(p->addr, addr, len) == 0)
            return p;
    if (!create)
        return NULL;
    peer_t *p = calloc(1, sizeof *p);
    memcpy(p->addr, addr, len);
    p->len = len;
    p->next = *bucket;
    *bucket = p;
    return p;
}

static void peer_release(httpd_t *self, const unsigned char *addr, size_t len)
{
    peer_t *p = peer_of(self, addr, len, false);
    if (!p || --p->count > 0)
        return;
    for (peer_t **at = bucket_of(self, addr, len); *at; at = &(*at)->next)
        if (*at == p) {
            *at = p->next;
            free(p);
            return;
        }
}

/* libmicrohttpd accepts, asks this, then announces the connection: all on
 * its one thread, so the count cannot move between the check and the
 * connection's start. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addrlen;
    httpd_t *self = cls;
    unsigned char key[16];
    size_t len = address_of(addr, key);
    pthread_mutex_lock(&self->lock);
    peer_t *p = len ? peer_of(self, key, len, false) : NULL;
    bool full = p && p->count >= self->limits.max_per_address;
    pthread_mutex_unlock(&self->lock);
    if (full)
        count_refused(self, "per_address");
    return full ? MHD_NO : MHD_YES;
}

static void on_connection(void *cls, struct MHD_Connection *mhd, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    httpd_t *self = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_t *c = calloc(1, sizeof *c);
        c->mhd = mhd;
        const union MHD_ConnectionInfo *fd = MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr = MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        c->fd = fd ? fd->connect_fd : -1;
        c->addr_len = address_of(addr ? addr->client_addr : NULL, c->addr);
        c->receiving_since = clock_mono();
        pthread_mutex_lock(&self->lock);
        if (c->addr_len)
            peer_of(self, c->addr, c->addr_len, true)->count++;
        c->next = self->conns;
        if (self->conns)
            self->conns->prev = c;
        self->conns = c;
        pthread_mutex_unlock(&self->lock);
        *socket_context = c;
        return;
    }
    conn_t *c = *socket_context;
    if (!c)
        return;
    pthread_mutex_lock(&self->lock);
    if (c->addr_len)
        peer_release(self, c->addr, c->addr_len);
    if (c->prev)
        c->prev->next = c->next;
    else
        self->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&self->lock);
    free(c);
    *socket_context = NULL;
}

static conn_t *conn_of(struct MHD_Connection *mhd)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* Whether the request now due on `c` is past its deadline. */
static bool overdue(httpd_t *self, conn_t *c)
{
    pthread_mutex_lock(&self->lock);
    bool late = c && c->receiving_since > 0
                && clock_mono() - c->receiving_since > self->limits.deadline_s;
    pthread_mutex_unlock(&self->lock);
    return late;
}

static void set_receiving(httpd_t *self, conn_t *c, bool receiving)
{
    if (!c)
        return;
    pthread_mutex_lock(&self->lock);
    c->receiving_since = receiving ? clock_mono() : 0;
    pthread_mutex_unlock(&self->lock);
}

/* Shuts down the sockets of connections past the deadline and wakes the
 * parked streams; the caller holds the lock. */
static void patrol(httpd_t *self)
{
    double now = clock_mono();
    for (conn_t *c = self->conns; c; c = c->next) {
        if (c->shut || c->receiving_since <= 0 || now - c->receiving_since <= self->limits.deadline_s)
            continue;
        c->shut = true;
        if (c->fd >= 0)
            shutdown(c->fd, SHUT_RDWR);
        count_refused(self, "deadline");
    }
    for (stream_t *s = self->parked, *next; s; s = next) {
        next = s->next_parked;
        struct pollfd hangup = { s->fd, POLLRDHUP, 0 };
        s->gone = s->fd >= 0 && poll(&hangup, 1, 0) > 0;
        MHD_resume_connection(s->mhd);
    }
    self->parked = NULL;
}

static void warden_pass(void *arg)
{
    httpd_t *self = arg;
    pthread_mutex_lock(&self->lock);
    patrol(self);
    pthread_mutex_unlock(&self->lock);
}

/* ---- Host ------------------------------------------------------------------- */

static bool host_allowed(httpd_t *self, const char *host)
{
    if (!self->check_host || !host)
        return true;
    /* The name without the port: "[v6]:port", "name:port" or "name". */
    size_t n = strlen(host);
    const char *colon = host[0] == '[' ? strstr(host, "]:") : strrchr(host, ':');
    if (colon)
        n = (size_t)(colon - host) + (host[0] == '[' ? 1 : 0);
    for (size_t i = 0; i < self->nhosts; i++)
        if (strlen(self->hosts[i]) == n && strncasecmp(self->hosts[i], host, n) == 0)
            return true;
    return false;
}

/* ---- replies ----------------------------------------------------------------- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max);
static void stream_done(void *cls);

/* The response takes the reply's body or stream: nothing of it is the
 * request's any more. */
static struct MHD_Response *make_response(httpd_t *self, request_t *r)
{
    http_reply_t *reply = &r->reply;
    r->replied = true;
    struct MHD_Response *response;
    if (reply->stream) {
        stream_t *s = calloc(1, sizeof *s);
        *s = (stream_t){ *reply, self, r->mhd, r->conn ? r->conn->fd : -1, false, NULL };
        response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, s, stream_done);
    } else {
        response = MHD_create_response_from_buffer(reply->body_len, reply->body, MHD_RESPMEM_MUST_FREE);
    }
    reply->body = NULL;
    reply->stream = NULL;
    reply->stream_free = NULL;
    return response;
}

static enum MHD_Result send_reply(httpd_t *self, request_t *r)
{
    if (!r->reply.body && !r->reply.stream)
        error_json(&r->reply, 500, "Internal error");
    count_request(self, r, r->reply.status);
    const char *content_type = r->reply.content_type;
    struct MHD_Response *response = make_response(self, r);
    MHD_add_response_header(response, "Content-Type", content_type);
    MHD_add_response_header(response, "Cache-Control", "no-store");
    MHD_add_response_header(response, "Content-Security-Policy", SECURITY_POLICY);
    MHD_add_response_header(response, "X-Frame-Options", "DENY");
    MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(response, "Referrer-Policy", "no-referrer");
    enum MHD_Result rc = MHD_queue_response(r->mhd, (unsigned)r->reply.status, response);
    MHD_destroy_response(response);
    return rc;
}

static enum MHD_Result refuse(httpd_t *self, request_t *r, int status, const char *message)
{
    error_json(&r->reply, status, message);
    return send_reply(self, r);
}

/* 401 without a token, 403 with one that is not enough, as the wire
 * refuses, counted in keel_bad_requests_total{reason="forbidden"}. */
static enum MHD_Result refuse_caller(httpd_t *self, request_t *r, privilege_verdict_t verdict)
{
    if (self->metrics) {
        char labels[128];
        metrics_labels(labels, sizeof labels, "service", self->service, "reason", "forbidden", NULL);
        metrics_add(self->metrics, "keel_bad_requests_total", labels, 1);
    }
    const http_route_t *decl = r->route.decl;
    char name[160], text[400];
    snprintf(name, sizeof name, "%s %s", decl->method, decl->path);
    privilege_refusal(decl->privilege, name, text, sizeof text);
    return refuse(self, r, verdict == PRIVILEGE_NO_TOKEN ? 401 : 403, text);
}

/* A stream with nothing to send parks its connection until the warden's
 * next round; while stopping it ends instead. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_t *s = cls;
    if (s->gone)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    long n = s->reply.stream(s->reply.stream_arg, buf, max);
    if (n > 0)
        return (ssize_t)n;
    if (n < 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    httpd_t *self = s->httpd;
    pthread_mutex_lock(&self->lock);
    bool park = !self->stopping;
    if (park) {
        MHD_suspend_connection(s->mhd);
        s->next_parked = self->parked;
        self->parked = s;
    }
    pthread_mutex_unlock(&self->lock);
    return park ? 0 : MHD_CONTENT_READER_END_OF_STREAM;
}

static void stream_done(void *cls)
{
    stream_t *s = cls;
    if (s->reply.stream_free)
        s->reply.stream_free(s->reply.stream_arg);
    free(s);
}

/* ---- the workers ------------------------------------------------------------- */

/* Suspends the request and queues it for a worker, or answers 503 when
 * stopping.  Suspending first: a worker resumes only what is suspended. */
static enum MHD_Result hand_over(httpd_t *self, request_t *r)
{
    pthread_mutex_lock(&self->lock);
    bool stopping = self->stopping;
    if (!stopping) {
        MHD_suspend_connection(r->mhd);
        r->next_job = NULL;
        if (self->jobs_tail)
            self->jobs_tail->next_job = r;
        else
            self->jobs_head = r;
        self->jobs_tail = r;
        pthread_cond_signal(&self->jobs_ready);
    }
    pthread_mutex_unlock(&self->lock);
    return stopping ? refuse(self, r, 503, "Service stopping") : MHD_YES;
}

static void run_handler(request_t *r, bool stopping)
{
    if (stopping) {
        error_json(&r->reply, 503, "Service stopping");
        return;
    }
    http_request_t req = { r->method, r->url, r->body ? r->body : "", r->len, r->bearer,
                           *r->peer ? r->peer : NULL, r->mhd };
    r->route.decl->fn(r->route.ctx, &req, &r->reply);
}

/* A worker's results are published by libmicrohttpd's resume, which takes
 * the daemon's lock that the connections' thread takes before it looks at
 * a resumed connection again.  A worker ends once `stopping` is set and
 * the queue is empty: stop sets it before it stops the workers. */
static void worker_run(actor_t *actor, void *arg)
{
    (void)actor;
    httpd_t *self = arg;
    pthread_mutex_lock(&self->lock);
    for (;;) {
        while (!self->jobs_head && !self->stopping)
            pthread_cond_wait(&self->jobs_ready, &self->lock);
        request_t *r = self->jobs_head;
        if (!r)
            break;
        self->jobs_head = r->next_job;
        if (!self->jobs_head)
            self->jobs_tail = NULL;
        bool stopping = self->stopping;
        pthread_mutex_unlock(&self->lock);
        if (r->phase == REQ_AUTHORIZING) {
            privilege_caller_t caller = { *r->peer ? r->peer : NULL, false, r->bearer };
            r->verdict = stopping ? PRIVILEGE_BAD_TOKEN
                                  : privilege_check(self->privilege, r->route.decl->privilege, &caller);
        } else {
            run_handler(r, stopping);
        }
        MHD_resume_connection(r->mhd);
        pthread_mutex_lock(&self->lock);
    }
    pthread_mutex_unlock(&self->lock);
}

static void wake_workers(void *arg)
{
    httpd_t *self = arg;
    pthread_mutex_lock(&self->lock);
    pthread_cond_broadcast(&self->jobs_ready);
    pthread_mutex_unlock(&self->lock);
}

/* ---- one request ------------------------------------------------------------ */

/* The headers are in: everything that needs no body is decided here. */
static enum MHD_Result begin(httpd_t *self, struct MHD_Connection *mhd, const char *url,
                             const char *method, void **con_cls)
{
    request_t *r = calloc(1, sizeof *r);
    *con_cls = r;
    r->mhd = mhd;
    r->conn = conn_of(mhd);
    r->method = method;
    r->url = url;
    if (overdue(self, r->conn)) {
        count_refused(self, "deadline");
        return refuse(self, r, 408, "Request took too long to arrive");
    }
    if (!host_allowed(self, MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, "Host"))) {
        count_refused(self, "host");
        return refuse(self, r, 421, "Misdirected request: this server does not answer that host name");
    }
    bool path_known;
    pthread_rwlock_rdlock(&self->routes_lock);
    attached_t *found = find_route(self, method, url, &path_known);
    if (found)
        r->route = *found;
    pthread_rwlock_unlock(&self->routes_lock);
    if (!found)
        return refuse(self, r, path_known ? 405 : 404, path_known ? "Method not allowed" : "Not found");
    r->routed = true;
    peer_text(mhd, r->peer, sizeof r->peer);
    const char *auth = MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, "Authorization");
    r->bearer = auth && strncasecmp(auth, "Bearer ", 7) == 0 ? auth + 7 : NULL;
    route_privilege_t need = r->route.decl->privilege;
    if (need == ROUTE_ADMIN && !r->bearer)
        return refuse_caller(self, r, PRIVILEGE_NO_TOKEN);
    if (!privilege_declared(need))
        return refuse_caller(self, r, PRIVILEGE_BAD_TOKEN);
    size_t max_body = r->route.decl->max_body ? r->route.decl->max_body : self->limits.max_body;
    const char *length = MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, "Content-Length");
    if (length && strtoull(length, NULL, 10) > max_body)
        return refuse(self, r, 413, "Request too large");
    /* A token may need SecurityGateway: a worker checks the caller. */
    r->phase = need == ROUTE_PUBLIC ? REQ_RECEIVING : REQ_AUTHORIZING;
    return r->phase == REQ_AUTHORIZING ? hand_over(self, r) : MHD_YES;
}

static void take_body(httpd_t *self, request_t *r, const char *data, size_t n)
{
    size_t max_body = r->route.decl->max_body ? r->route.decl->max_body : self->limits.max_body;
    if (r->too_large || r->len + n > max_body) {
        r->too_large = true;        /* the rest is read and dropped; 413 at the end */
        return;
    }
    r->body = realloc(r->body, r->len + n + 1);
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mhd, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    httpd_t *self = cls;
    request_t *r = *con_cls;
    if (!r)
        return begin(self, mhd, url, method, con_cls);
    /* Answered, yet asked again: libmicrohttpd was stopping and dropped
     * the response.  Close. */
    if (r->replied)
        return MHD_NO;
    switch (r->phase) {
    case REQ_AUTHORIZING:       /* resumed: the headers' call again */
        if (overdue(self, r->conn)) {
            count_refused(self, "deadline");
            return refuse(self, r, 408, "Request took too long to arrive");
        }
        if (r->verdict != PRIVILEGE_GRANTED)
            return refuse_caller(self, r, r->verdict);
        r->phase = REQ_RECEIVING;
        return MHD_YES;
    case REQ_RECEIVING:
        if (*upload_size) {
            take_body(self, r, upload_data, *upload_size);
            *upload_size = 0;
            return MHD_YES;
        }
        set_receiving(self, r->conn, false);
        if (r->too_large)
            return refuse(self, r, 413, "Request too large");
        r->phase = REQ_HANDLING;
        return hand_over(self, r);
    case REQ_HANDLING:          /* resumed with the reply */
        break;
    }
    return send_reply(self, r);
}

/* The request is over (answered, or its connection gone): the next one on
 * this connection is due from now. */
static void on_completed(void *cls, struct MHD_Connection *mhd, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)code;
    httpd_t *self = cls;
    request_t *r = *con_cls;
    if (r) {
        free(r->reply.body);
        if (r->reply.stream_free)
            r->reply.stream_free(r->reply.stream_arg);
        free(r->body);
        free(r);
    }
    *con_cls = NULL;
    set_receiving(self, conn_of(mhd), true);
}

static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    httpd_t *self = cls;
    char text[512];
    vsnprintf(text, sizeof text, fmt, ap);
    text[strcspn(text, "\n")] = '\0';
    log_debug(self->service, "libmicrohttpd: %s", text);
}

/* ---- start and stop ------------------------------------------------------------- */

int httpd_start(httpd_t *self, const char *bind, int port)
{
    struct sockaddr_in addr = { 0 };
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    bool any = !strcmp(bind, "*") || inet_pton(AF_INET, bind, &addr.sin_addr) != 1
               || addr.sin_addr.s_addr == htonl(INADDR_ANY);
    if (any)
        addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (self->check_host) {
        if (any)
            allow_local_addresses(self);
        else
            allow_host(self, bind);
    }
    self->stopping = false;
    for (self->nworkers = 0; self->nworkers < self->limits.workers; self->nworkers++) {
        self->workers[self->nworkers] = actor_new_runner("http worker", worker_run, wake_workers, self);
        if (actor_start(self->workers[self->nworkers]) < 0) {
            actor_destroy(&self->workers[self->nworkers]);
            break;
        }
    }
    bool warden_started = actor_start(self->warden) == 0;
    self->daemon = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
        (uint16_t)port, on_accept, self, on_request, self,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_EXTERNAL_LOGGER, log_mhd, self,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, self,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, self,
        MHD_OPTION_CONNECTION_LIMIT, self->limits.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)IDLE_TIMEOUT_S,
        MHD_OPTION_END);
    if (!self->daemon || self->nworkers == 0 || !warden_started) {
        log_error(self->service, "cannot listen for HTTP on %s:%d", bind, port);
        httpd_stop(self);
        return -1;
    }
    log_info(self->service, "HTTP on %s:%d", bind, port);
    return 0;
}

void httpd_stop(httpd_t *self)
{
    pthread_mutex_lock(&self->lock);
    self->stopping = true;
    pthread_mutex_unlock(&self->lock);
    actor_stop_all(self->workers, self->nworkers);
    for (unsigned i = 0; i < self->nworkers; i++)
        actor_destroy(&self->workers[i]);
    self->nworkers = 0;
    actor_stop(self->warden);
    /* Streams parked after the warden's last round end when resumed. */
    pthread_mutex_lock(&self->lock);
    patrol(self);
    pthread_mutex_unlock(&self->lock);
    if (self->daemon)
        MHD_stop_daemon(self->daemon);
    self->daemon = NULL;
}
