/*  httpd: see httpd.h.
 *
 *  An HTTP/1.1 server of Keel's own.  libmicrohttpd served us before, and
 *  it linked GnuTLS (started by its constructor, with p11-kit, nettle, gmp,
 *  tasn1, idn2 and unistring) into every keeld, some 2.5 MB resident for
 *  TLS, digest authentication and upgrades Keel never used; and what Keel
 *  did need beside it (a deadline that a trickle cannot extend, refusals
 *  before the body, streams that wait) took a warden thread of its own.
 *  What is left is small: the request's syntax is in httpparse.c, where
 *  the fuzzer drives it, and this file moves connections along.
 *
 *  One thread per server, the loop, reads and writes every connection
 *  through epoll, on non-blocking sockets: select() could not watch a
 *  descriptor past 1,023, and a thread per connection let 512 slow clients
 *  take a port.  The loop never runs service code.  A request whose
 *  caller's privilege must be checked (a token may have to be asked of
 *  SecurityGateway), or whose handler is due, goes to the worker threads'
 *  queue; the worker puts it on the done queue and writes the eventfd, and
 *  the loop carries on from there.  While a worker has a connection the
 *  connection is out of the epoll set and nothing of it is touched by the
 *  loop, so neither needs a lock for it, and only the loop ever touches a
 *  socket.
 *
 *  A connection goes through conn_state_t: a head is read and judged
 *  (every refusal that needs no body is made there), the caller checked
 *  on a worker, the body read, the handler run on a worker, the reply
 *  written; then the next request on the same connection, or a lingering
 *  close: the write side is shut and whatever the client still sends is
 *  read and dropped until it closes (LINGER_S at most), so that a reply
 *  sent before its request's body was read (413, 401) is not destroyed by
 *  the reset that closing on unread bytes would send.
 *
 *  Time.  The loop waits at most a tick (100 ms); each tick it goes round
 *  every connection: the total deadline to receive a request (from its
 *  first byte, or from the connection's start for its first request, so
 *  neither a trickle nor silence extends it), the idle limit between
 *  requests and for a reply nobody reads, the end of a lingering close;
 *  and a stream that had nothing to send is asked again.  A parked stream
 *  is watched for its client hanging up only (EPOLLRDHUP), and ends then.
 *
 *  Stopping: `stopping` is set under the lock every hand-over takes, so
 *  nothing is queued for a worker that may have left; the loop stops
 *  accepting, and a stream with nothing to say ends instead of waiting;
 *  the workers answer what is queued with 503 and leave; then the loop
 *  takes their last results, writes what the sockets take at once, ends
 *  the streams left and closes every connection. */
#include "httpd.h"
#include "actor.h"
#include "clock.h"
#include "httpparse.h"
#include "log.h"
#include "wirejson.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 64
#define PEER_BUCKETS 256
#define TICK_S 0.1
#define IDLE_TIMEOUT_S 30
/* How long a closing connection's client may go on sending. */
#define LINGER_S 2
/* What a stream is asked for at a time, and the room for its chunk's framing. */
#define STREAM_BLOCK 4096
#define FRAME_ROOM 8
/* Bytes written to, reads from and accepts on one descriptor before the
 * others get their turn. */
#define WRITE_TURN (256u << 10)
#define READ_TURNS 8
#define ACCEPT_TURNS 64
#define EVENTS 64
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

typedef enum {
    CONN_HEAD,                      /* a request's head is due (none yet: idle) */
    CONN_AUTHORIZING,               /* a worker checks the caller */
    CONN_BODY,                      /* its body is arriving */
    CONN_HANDLING,                  /* a worker runs the handler */
    CONN_SENDING,                   /* the reply is being written */
    CONN_LINGERING,                 /* the last reply is out and the write side shut */
} conn_state_t;

/* The request now due on a connection, from its head to its reply. */
typedef struct {
    char *text;                     /* the head, which `head` points into */
    http_head_t head;
    attached_t route;               /* a copy: routes may be added while serving */
    bool routed;
    const char *bearer;
    size_t max_body;
    uint64_t left;                  /* body bytes still due, by Content-Length */
    http_chunks_t chunks;
    bool body_done;                 /* all of the body is read (or there is none) */
    char *body;
    size_t len, cap;
    bool too_large;                 /* the rest is read and dropped; 413 at the end */
    privilege_verdict_t verdict;    /* set by a worker */
    http_reply_t reply;             /* set by a worker, or by the loop refusing */
} request_t;

typedef struct conn_t {
    int fd;
    conn_state_t state;
    unsigned char addr[16];
    size_t addr_len;
    char peer[INET6_ADDRSTRLEN];    /* "" when unknown */
    char *in;                       /* what arrived and is not taken yet */
    size_t in_len, in_cap;
    size_t scanned;                 /* of `in`, for the head's end (httpparse.h) */
    bool eof;                       /* the client sends no more */
    double since;                   /* monotonic: the request now due began; 0 when none has */
    double active;                  /* the last byte read or written */
    uint32_t events;                /* asked of epoll; 0: out of its set */
    bool closing;                   /* the connection ends with this reply */
    bool blocked;                   /* the socket took no more: waiting for EPOLLOUT */
    bool parked;                    /* the stream had nothing: asked again next tick */
    request_t req;
    /* The reply being written: its head, then its body or its stream's
     * pieces.  out_body is the reply's body or the stream's buffer. */
    char *out_head;
    size_t head_len, head_sent;
    char *out_body;
    size_t body_at, body_len;       /* [body_at, body_len) is still to send */
    long (*stream)(void *arg, char *buf, size_t max);
    void *stream_arg;
    void (*stream_free)(void *arg);
    bool chunked;                   /* the stream goes in chunks (HTTP/1.1) */
    bool stream_over;
    struct conn_t *prev, *next;     /* every connection */
    struct conn_t *next_job;        /* in the jobs or the done queue */
} conn_t;

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

    /* From start to stop; after start, the loop's alone. */
    actor_t *loop;
    int epoll_fd, listen_fd, wake_fd;
    bool listen_paused;             /* out of descriptors: no accepting until the next tick */
    conn_t *conns;
    unsigned nconns;
    peer_t *peers[PEER_BUCKETS];
    time_t date_second;
    char date[32];

    /* Guarded by `lock`. */
    pthread_mutex_t lock;
    pthread_cond_t jobs_ready;
    conn_t *jobs_head, *jobs_tail;
    unsigned queued, idle;          /* jobs waiting; workers waiting for one */
    conn_t *done_head, *done_tail;
    actor_t *workers[MAX_WORKERS];  /* runners, started as jobs need them, up to limits.workers */
    unsigned nworkers;
    atomic_bool stopping;           /* written under `lock`; read by the loop without */
};

/* ---- set-up ---------------------------------------------------------------- */

httpd_t *httpd_new(const char *service, metrics_t *metrics)
{
    httpd_t *self = calloc(1, sizeof *self);
    pthread_rwlock_init(&self->routes_lock, NULL);
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->jobs_ready, NULL);
    self->service = strdup(service);
    self->metrics = metrics;
    self->limits = HTTPD_DEFAULT_LIMITS;
    self->epoll_fd = self->listen_fd = self->wake_fd = -1;
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
    return http_head_arg(req->connection, key);
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

/* ---- client addresses ------------------------------------------------------- */

static size_t address_of(const struct sockaddr *sa, unsigned char *out)
{
    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa->sa_family == AF_INET6) {
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

/* The address's entry, made when `create`. */
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

/* ---- connections -------------------------------------------------------------- */

/* Tells epoll what the connection waits for now: nothing while a worker
 * has it, so that the loop is never woken for it meanwhile. */
static void watch(httpd_t *self, conn_t *c)
{
    uint32_t want = 0;
    if (c->state == CONN_HEAD || c->state == CONN_BODY || c->state == CONN_LINGERING)
        want = EPOLLIN;
    else if (c->state == CONN_SENDING)
        want = (c->blocked ? EPOLLOUT : 0) | (c->stream ? EPOLLRDHUP : 0);
    if (want == c->events)
        return;
    struct epoll_event ev = { .events = want, .data.ptr = c };
    int op = !want ? EPOLL_CTL_DEL : !c->events ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(self->epoll_fd, op, c->fd, &ev) == 0)
        c->events = want;
    else
        log_warn(self->service, "cannot watch an HTTP connection: %s", strerror(errno));
}

/* Removes the first n bytes of the connection's buffer. */
static void consume(conn_t *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
    c->scanned = 0;
}

/* Ends a stream, whether it ran out or its client left: its free function
 * runs exactly once. */
static void end_stream(conn_t *c)
{
    if (c->stream_free)
        c->stream_free(c->stream_arg);
    c->stream = NULL;
    c->stream_arg = NULL;
    c->stream_free = NULL;
}

static void clear_request(request_t *r)
{
    free(r->text);
    http_head_clear(&r->head);
    free(r->body);
    free(r->reply.body);
    if (r->reply.stream_free)
        r->reply.stream_free(r->reply.stream_arg);
    memset(r, 0, sizeof *r);
}

static void clear_reply(conn_t *c)
{
    end_stream(c);
    free(c->out_head);
    free(c->out_body);
    c->out_head = c->out_body = NULL;
    c->head_len = c->head_sent = c->body_at = c->body_len = 0;
    c->blocked = c->parked = c->chunked = c->stream_over = false;
}

static void close_conn(httpd_t *self, conn_t *c)
{
    clear_reply(c);
    clear_request(&c->req);
    free(c->in);
    if (c->addr_len)
        peer_release(self, c->addr, c->addr_len);
    if (c->prev)
        c->prev->next = c->next;
    else
        self->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    self->nconns--;
    /* Out of the epoll set before the close: a close alone leaves it there
     * while a child forked meanwhile (the supervisor's, before its exec)
     * still holds the descriptor, and epoll would then hand out this freed
     * connection (seen under ASan). */
    if (c->events)
        epoll_ctl(self->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* A connection just accepted, unless its address or the server is full:
 * then it is closed at once, as libmicrohttpd closed it (only the limit per
 * address is counted, as before). */
static void admit(httpd_t *self, int fd, const struct sockaddr *sa)
{
    unsigned char key[16];
    size_t len = address_of(sa, key);
    peer_t *p = len ? peer_of(self, key, len, false) : NULL;
    if (self->nconns >= self->limits.max_connections) {
        close(fd);
        return;
    }
    if (p && p->count >= self->limits.max_per_address) {
        count_refused(self, "per_address");
        close(fd);
        return;
    }
    conn_t *c = calloc(1, sizeof *c);
    c->fd = fd;
    c->state = CONN_HEAD;
    memcpy(c->addr, key, len);
    c->addr_len = len;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->peer, sizeof c->peer);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->peer, sizeof c->peer);
    /* Each reply goes out in whole writes: nothing gains by waiting for
     * an acknowledgement before the tail of one is sent. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->since = c->active = clock_mono();
    if (len)
        peer_of(self, key, len, true)->count++;
    c->next = self->conns;
    if (self->conns)
        self->conns->prev = c;
    self->conns = c;
    self->nconns++;
    watch(self, c);
}

static void accept_clients(httpd_t *self)
{
    for (int turn = 0; turn < ACCEPT_TURNS; turn++) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        int fd = accept4(self->listen_fd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            admit(self, fd, (struct sockaddr *)&sa);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        /* Out of descriptors the listener stays readable: it rests until
         * the next tick rather than spin the loop. */
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            epoll_ctl(self->epoll_fd, EPOLL_CTL_DEL, self->listen_fd, NULL);
            self->listen_paused = true;
        }
        return;
    }
}

static void stop_listening(httpd_t *self)
{
    if (self->listen_fd < 0)
        return;
    close(self->listen_fd);
    self->listen_fd = -1;
}

/* ---- replies ------------------------------------------------------------------ */

/* The reason phrases (RFC 9110 15) of the statuses Keel sends; any other
 * gets its class's, which clients ignore as they may any phrase. */
static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 421: return "Misdirected Request";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";       /* RFC 9110's phrase: a transfer coding Keel lacks */
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    }
    static const char *const classes[] = { "Informational", "Success", "Redirection",
                                           "Client Error", "Server Error" };
    return classes[status / 100 - 1];
}

/* The Date header's value (RFC 9110 5.6.7), made once a second; by hand,
 * because strftime's names follow the locale. */
static const char *http_date(httpd_t *self)
{
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t now = time(NULL);
    if (now != self->date_second) {
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(self->date, sizeof self->date, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                 days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        self->date_second = now;
    }
    return self->date;
}

/* Makes the request's reply the connection's to write: its head now, its
 * body or stream taken from the reply.  A reply sent before its request's
 * body was all read ends the connection: the rest of that body is not a
 * request. */
static void send_reply(httpd_t *self, conn_t *c)
{
    request_t *r = &c->req;
    http_reply_t *reply = &r->reply;
    if ((!reply->body && !reply->stream) || reply->status < 100 || reply->status > 599) {
        if (reply->stream_free)
            reply->stream_free(reply->stream_arg);
        reply->stream = NULL;
        reply->stream_free = NULL;
        error_json(reply, 500, "Internal error");
    }
    count_request(self, r, reply->status);
    bool head_only = r->head.method && strcmp(r->head.method, "HEAD") == 0;
    bool streamed = reply->stream && !head_only;
    c->closing = c->closing || r->head.close || !r->body_done || atomic_load(&self->stopping)
                 || (streamed && r->head.minor == 0);
    char length[48] = "", type[160] = "";
    if (!reply->stream)
        snprintf(length, sizeof length, "Content-Length: %zu\r\n", reply->body_len);
    if (reply->content_type)
        snprintf(type, sizeof type, "Content-Type: %s\r\n", reply->content_type);
    int n = asprintf(&c->out_head,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\n%s%s%s"
                     "Cache-Control: no-store\r\nContent-Security-Policy: " SECURITY_POLICY "\r\n"
                     "X-Frame-Options: DENY\r\nX-Content-Type-Options: nosniff\r\n"
                     "Referrer-Policy: no-referrer\r\n%s\r\n",
                     reply->status, reason_of(reply->status), http_date(self), type, length,
                     streamed && r->head.minor >= 1 ? "Transfer-Encoding: chunked\r\n" : "",
                     c->closing ? "Connection: close\r\n"
                                : r->head.minor == 0 ? "Connection: keep-alive\r\n" : "");
    c->head_len = n > 0 ? (size_t)n : 0;
    if (n < 0)
        c->out_head = NULL;
    if (streamed) {
        c->stream = reply->stream;
        c->stream_arg = reply->stream_arg;
        c->stream_free = reply->stream_free;
        c->chunked = r->head.minor >= 1;
        c->out_body = malloc(FRAME_ROOM + STREAM_BLOCK + 2);
        free(reply->body);
    } else if (head_only) {
        free(reply->body);
        if (reply->stream_free)
            reply->stream_free(reply->stream_arg);
    } else {
        c->out_body = reply->body;
        c->body_len = reply->body_len;
    }
    reply->body = NULL;
    reply->stream = NULL;
    reply->stream_free = NULL;
    c->state = CONN_SENDING;
}

static void refuse(httpd_t *self, conn_t *c, int status, const char *message)
{
    error_json(&c->req.reply, status, message);
    send_reply(self, c);
}

/* 401 without a token, 403 with one that is not enough, as the wire
 * refuses, counted in keel_bad_requests_total{reason="forbidden"}. */
static void refuse_caller(httpd_t *self, conn_t *c, privilege_verdict_t verdict)
{
    if (self->metrics) {
        char labels[128];
        metrics_labels(labels, sizeof labels, "service", self->service, "reason", "forbidden", NULL);
        metrics_add(self->metrics, "keel_bad_requests_total", labels, 1);
    }
    const http_route_t *decl = c->req.route.decl;
    char name[160], text[400];
    snprintf(name, sizeof name, "%s %s", decl->method, decl->path);
    privilege_refusal(decl->privilege, name, text, sizeof text);
    refuse(self, c, verdict == PRIVILEGE_NO_TOKEN ? 401 : 403, text);
}

/* Asks the stream for its next piece and frames it (a chunk for HTTP/1.1;
 * for 1.0 the close ends the body): false when it has nothing now.  While
 * stopping, a stream with nothing to say ends rather than waits. */
static bool fill_stream(httpd_t *self, conn_t *c)
{
    char *buf = c->out_body;
    long n = c->stream(c->stream_arg, buf + FRAME_ROOM, STREAM_BLOCK);
    if (n == 0 && !atomic_load(&self->stopping))
        return false;
    if (n <= 0 || n > STREAM_BLOCK) {
        c->stream_over = true;
        c->body_at = 0;
        c->body_len = c->chunked ? 5 : 0;
        memcpy(buf, "0\r\n\r\n", 5);
        return true;
    }
    c->body_at = FRAME_ROOM;
    c->body_len = FRAME_ROOM + (size_t)n;
    if (c->chunked) {
        char size[FRAME_ROOM + 1];
        int k = snprintf(size, sizeof size, "%lx\r\n", n);
        c->body_at -= (size_t)k;
        memcpy(buf + c->body_at, size, (size_t)k);
        memcpy(buf + c->body_len, "\r\n", 2);
        c->body_len += 2;
    }
    return true;
}

typedef enum { WRITE_DONE, WRITE_WAIT, WRITE_FAILED } write_result_t;

/* Writes what the reply has ready: DONE once all of it is out, WAIT when
 * the socket is full, the turn is over or the stream is parked, FAILED
 * when the client is gone. */
static write_result_t write_out(httpd_t *self, conn_t *c)
{
    for (size_t turn = 0;;) {
        struct iovec v[2];
        int nv = 0;
        if (c->head_sent < c->head_len)
            v[nv++] = (struct iovec){ c->out_head + c->head_sent, c->head_len - c->head_sent };
        if (c->body_at < c->body_len)
            v[nv++] = (struct iovec){ c->out_body + c->body_at, c->body_len - c->body_at };
        if (nv == 0) {
            if (!c->stream || c->stream_over)
                return WRITE_DONE;
            if (!fill_stream(self, c)) {
                c->parked = true;
                return WRITE_WAIT;
            }
            continue;
        }
        if (turn >= WRITE_TURN) {
            c->blocked = true;      /* back as soon as the socket is writable */
            return WRITE_WAIT;
        }
        struct msghdr msg = { .msg_iov = v, .msg_iovlen = (size_t)nv };
        ssize_t k = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->blocked = true;
            return WRITE_WAIT;
        }
        if (k < 0)
            return WRITE_FAILED;
        c->active = clock_mono();
        turn += (size_t)k;
        size_t to_head = c->head_len - c->head_sent < (size_t)k ? c->head_len - c->head_sent : (size_t)k;
        c->head_sent += to_head;
        c->body_at += (size_t)k - to_head;
    }
}

/* The reply is out: the next request is due on the connection, or it ends
 * with a lingering close. */
static void finish_reply(conn_t *c)
{
    clear_reply(c);
    clear_request(&c->req);
    c->active = clock_mono();
    if (c->closing) {
        shutdown(c->fd, SHUT_WR);
        c->state = CONN_LINGERING;
        c->since = c->active;
        c->in_len = 0;
        return;
    }
    c->state = CONN_HEAD;
    c->since = 0;
    c->scanned = 0;
    if (c->in_len == 0) {           /* an idle connection holds no buffer */
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
}

/* ---- one request --------------------------------------------------------------- */

/* Whether the request now due on `c` is past its deadline. */
static bool overdue(httpd_t *self, conn_t *c)
{
    return c->since > 0 && clock_mono() - c->since > self->limits.deadline_s;
}

static void keep_body(request_t *r, const char *data, size_t n)
{
    if (!n || r->too_large)
        return;
    if (r->len + n > r->max_body) {
        r->too_large = true;
        return;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 1024;
        if (cap < r->len + n + 1)
            cap = r->len + n + 1;
        if (cap > r->max_body + 1)
            cap = r->max_body + 1;
        r->body = realloc(r->body, cap);
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
}

static void hand_over(httpd_t *self, conn_t *c);

/* Reads the body, and hands the request to a worker once it is all in.
 * True when the request moved on. */
static bool take_body(httpd_t *self, conn_t *c)
{
    request_t *r = &c->req;
    size_t taken = 0;
    while (!r->body_done && taken < c->in_len) {
        const char *data = c->in + taken;
        size_t n = c->in_len - taken;
        if (r->head.chunked) {
            long k = http_chunks_read(&r->chunks, c->in + taken, c->in_len - taken, &data, &n);
            if (k < 0) {
                consume(c, taken);
                c->closing = true;
                refuse(self, c, 400, "Bad request: malformed chunked body");
                return true;
            }
            taken += (size_t)k;
            r->body_done = http_chunks_done(&r->chunks);
        } else {
            n = n < r->left ? n : (size_t)r->left;
            taken += n;
            r->left -= n;
            r->body_done = r->left == 0;
        }
        keep_body(r, data, n);
    }
    consume(c, taken);
    if (!r->body_done)
        return false;
    c->since = 0;                   /* received: the deadline is met */
    if (r->too_large) {
        refuse(self, c, 413, "Request too large");
        return true;
    }
    c->state = CONN_HANDLING;
    hand_over(self, c);
    return true;
}

/* The caller may send the body: a client that announced it would wait
 * (Expect: 100-continue) is told to go on.  One that is not told waits a
 * second and sends it anyway (RFC 9110 10.1.1), so a socket that cannot
 * take these few bytes at once costs it no more than that. */
static void start_body(conn_t *c)
{
    request_t *r = &c->req;
    r->left = r->head.has_length ? r->head.length : 0;
    if (!r->body_done && r->head.expect_continue && c->in_len == 0) {
        static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (send(c->fd, go_on, sizeof go_on - 1, MSG_NOSIGNAL) == (ssize_t)sizeof go_on - 1)
            c->active = clock_mono();
    }
    c->state = CONN_BODY;
}

/* The head is in: everything that needs no body is decided here. */
static void begin(httpd_t *self, conn_t *c)
{
    request_t *r = &c->req;
    http_head_t *head = &r->head;
    r->body_done = !head->chunked && head->length == 0;
    if (overdue(self, c)) {
        count_refused(self, "deadline");
        c->closing = true;
        refuse(self, c, 408, "Request took too long to arrive");
        return;
    }
    if (!host_allowed(self, head->host)) {
        count_refused(self, "host");
        refuse(self, c, 421, "Misdirected request: this server does not answer that host name");
        return;
    }
    bool path_known;
    pthread_rwlock_rdlock(&self->routes_lock);
    attached_t *found = find_route(self, head->method, head->path, &path_known);
    if (found)
        r->route = *found;
    pthread_rwlock_unlock(&self->routes_lock);
    if (!found) {
        refuse(self, c, path_known ? 405 : 404, path_known ? "Method not allowed" : "Not found");
        return;
    }
    r->routed = true;
    const char *auth = head->authorization;
    r->bearer = auth && strncasecmp(auth, "Bearer ", 7) == 0 ? auth + 7 : NULL;
    route_privilege_t need = r->route.decl->privilege;
    if (need == ROUTE_ADMIN && !r->bearer) {
        refuse_caller(self, c, PRIVILEGE_NO_TOKEN);
        return;
    }
    if (!privilege_declared(need)) {
        refuse_caller(self, c, PRIVILEGE_BAD_TOKEN);
        return;
    }
    r->max_body = r->route.decl->max_body ? r->route.decl->max_body : self->limits.max_body;
    if (head->has_length && head->length > r->max_body) {
        refuse(self, c, 413, "Request too large");
        return;
    }
    if (need == ROUTE_PUBLIC) {
        start_body(c);
        return;
    }
    /* A token may need SecurityGateway: a worker checks the caller. */
    c->state = CONN_AUTHORIZING;
    hand_over(self, c);
}

/* Takes a request's head from the buffer once all of it is there.  True
 * when the request moved on. */
static bool take_head(httpd_t *self, conn_t *c)
{
    request_t *r = &c->req;
    /* Line ends before a request (some clients follow a body with one)
     * start none. */
    size_t blank = 0;
    while (blank < c->in_len && (c->in[blank] == '\r' || c->in[blank] == '\n'))
        blank++;
    if (blank)
        consume(c, blank);
    if (c->in_len == 0)
        return false;
    if (c->since == 0)
        c->since = clock_mono();
    size_t n = http_head_length(c->in, c->in_len, &c->scanned);
    if (n == 0) {
        if (c->in_len < HTTP_HEAD_MAX)
            return false;
        bool line_ended = memchr(c->in, '\n', c->in_len) != NULL;
        c->closing = true;
        refuse(self, c, line_ended ? 431 : 414,
               line_ended ? "Request header fields too large" : "URI too long");
        return true;
    }
    r->text = malloc(n + 1);
    memcpy(r->text, c->in, n);
    consume(c, n);
    int status = http_head_parse(r->text, n, &r->head);
    if (status) {
        c->closing = true;
        refuse(self, c, status, status == 505 ? "HTTP version not supported"
                                : status == 501 ? "Transfer encoding not supported" : "Bad request");
        return true;
    }
    begin(self, c);
    return true;
}

/* ---- the workers ------------------------------------------------------------- */

static actor_run_fn worker_run;
static actor_interrupt_fn wake_workers;

/* Puts c at the end of the jobs or the done queue; the caller holds the lock. */
static void append(conn_t **head, conn_t **tail, conn_t *c)
{
    c->next_job = NULL;
    if (*tail)
        (*tail)->next_job = c;
    else
        *head = c;
    *tail = c;
}

/* One more worker, while there is room for one: 0, or -1.  Under the lock,
 * so that stop, which sets `stopping` under it first, sees every worker
 * there will be. */
static int add_worker(httpd_t *self)
{
    if (self->nworkers >= self->limits.workers)
        return -1;
    actor_t *worker = actor_new_runner("http worker", worker_run, wake_workers, self);
    if (actor_start(worker) < 0) {
        actor_destroy(&worker);
        return -1;
    }
    self->workers[self->nworkers++] = worker;
    return 0;
}

/* Queues the request for a worker, or answers 503 when stopping.  Out of
 * the epoll set first: from the queue on, the worker has it.  Workers
 * start as jobs find none waiting: a server that is never asked two things
 * at once keeps one (each idle thread holds some 20 kB). */
static void hand_over(httpd_t *self, conn_t *c)
{
    watch(self, c);
    pthread_mutex_lock(&self->lock);
    bool stopping = atomic_load(&self->stopping);
    if (!stopping) {
        append(&self->jobs_head, &self->jobs_tail, c);
        if (++self->queued > self->idle)
            add_worker(self);
        pthread_cond_signal(&self->jobs_ready);
    }
    pthread_mutex_unlock(&self->lock);
    if (stopping)
        refuse(self, c, 503, "Service stopping");
}

/* On a worker: the caller's check or the handler.  While stopping it
 * answers 503 instead, whichever was due. */
static void run_job(httpd_t *self, conn_t *c, bool stopping)
{
    request_t *r = &c->req;
    if (stopping) {
        error_json(&r->reply, 503, "Service stopping");
    } else if (c->state == CONN_AUTHORIZING) {
        privilege_caller_t caller = { *c->peer ? c->peer : NULL, false, r->bearer };
        r->verdict = privilege_check(self->privilege, r->route.decl->privilege, &caller);
    } else {
        http_request_t req = { r->head.method, r->head.path, r->body ? r->body : "", r->len,
                               r->bearer, *c->peer ? c->peer : NULL, &r->head };
        r->route.decl->fn(r->route.ctx, &req, &r->reply);
    }
}

static void wake_loop(void *arg)
{
    httpd_t *self = arg;
    uint64_t one = 1;
    if (write(self->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_error(self->service, "cannot wake the HTTP loop: %s", strerror(errno));
}

/* A worker's results reach the loop through the done queue, under the
 * lock, which orders them before the loop reads them.  A worker ends once
 * `stopping` is set and the queue is empty: stop sets it before it stops
 * the workers. */
static void worker_run(actor_t *actor, void *arg)
{
    (void)actor;
    httpd_t *self = arg;
    pthread_mutex_lock(&self->lock);
    for (;;) {
        while (!self->jobs_head && !atomic_load(&self->stopping)) {
            self->idle++;
            pthread_cond_wait(&self->jobs_ready, &self->lock);
            self->idle--;
        }
        conn_t *c = self->jobs_head;
        if (!c)
            break;
        self->jobs_head = c->next_job;
        if (!self->jobs_head)
            self->jobs_tail = NULL;
        self->queued--;
        bool stopping = atomic_load(&self->stopping);
        pthread_mutex_unlock(&self->lock);
        run_job(self, c, stopping);
        pthread_mutex_lock(&self->lock);
        append(&self->done_head, &self->done_tail, c);
        wake_loop(self);
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

/* ---- the loop ----------------------------------------------------------------- */

/* Moves the connection on as far as it can without waiting: takes the
 * requests its buffer holds, writes what the socket takes.  False when it
 * was closed. */
static bool advance(httpd_t *self, conn_t *c)
{
    for (bool moved = true; moved;) {
        switch (c->state) {
        case CONN_HEAD:
            moved = take_head(self, c);
            break;
        case CONN_BODY:
            moved = take_body(self, c);
            break;
        case CONN_SENDING:
            switch (write_out(self, c)) {
            case WRITE_FAILED:
                close_conn(self, c);
                return false;
            case WRITE_DONE:
                finish_reply(c);
                break;
            case WRITE_WAIT:
                moved = false;
                break;
            }
            break;
        default:
            moved = false;
            break;
        }
    }
    /* Still waiting to read from a client that has stopped sending. */
    if (c->eof && (c->state == CONN_HEAD || c->state == CONN_BODY || c->state == CONN_LINGERING)) {
        close_conn(self, c);
        return false;
    }
    watch(self, c);
    return true;
}

/* Room for what arrives next.  The buffer grows as a head needs it, up
 * to HTTP_HEAD_MAX, and is that large at once for a body, which only
 * passes through it. */
static size_t room_in(conn_t *c)
{
    bool body = c->state == CONN_BODY;
    if ((body || c->in_cap - c->in_len < 1024) && c->in_cap < HTTP_HEAD_MAX) {
        size_t cap = body ? HTTP_HEAD_MAX : c->in_cap ? 2 * c->in_cap : 2048;
        c->in_cap = cap < HTTP_HEAD_MAX ? cap : HTTP_HEAD_MAX;
        c->in = realloc(c->in, c->in_cap);
    }
    return c->in_cap - c->in_len;
}

/* Reads what the client sent, taking it as it comes.  False when the
 * connection was closed. */
static bool read_input(httpd_t *self, conn_t *c)
{
    for (int turn = 0; turn < READ_TURNS; turn++) {
        if (c->state == CONN_LINGERING)
            c->in_len = 0;          /* dropped: its request was answered */
        size_t room = room_in(c);
        if (room == 0)
            return true;
        ssize_t k = recv(c->fd, c->in + c->in_len, room, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (k < 0) {
            close_conn(self, c);
            return false;
        }
        if (k == 0)
            c->eof = true;
        c->in_len += (size_t)k;
        c->active = clock_mono();
        if (!advance(self, c))
            return false;
        if (c->eof || (size_t)k < room
            || !(c->state == CONN_HEAD || c->state == CONN_BODY || c->state == CONN_LINGERING))
            return true;
    }
    return true;
}

static void on_event(httpd_t *self, conn_t *c, uint32_t events)
{
    /* An error, or a client that hung up on its stream: the stream ends. */
    if ((events & (EPOLLERR | EPOLLHUP)) || ((events & EPOLLRDHUP) && c->stream)) {
        close_conn(self, c);
        return;
    }
    if (events & EPOLLOUT)
        c->blocked = false;
    if (events & EPOLLIN)
        read_input(self, c);        /* which moves it on with what it read */
    else
        advance(self, c);
}

/* What the workers finished: the loop carries each on. */
static void take_done(httpd_t *self)
{
    pthread_mutex_lock(&self->lock);
    conn_t *c = self->done_head;
    self->done_head = self->done_tail = NULL;
    pthread_mutex_unlock(&self->lock);
    for (conn_t *next; c; c = next) {
        next = c->next_job;
        request_t *r = &c->req;
        if (c->state == CONN_HANDLING || r->reply.status) {   /* answered, or refused while stopping */
            send_reply(self, c);
        } else if (r->verdict != PRIVILEGE_GRANTED) {
            refuse_caller(self, c, r->verdict);
        } else if (overdue(self, c)) {
            count_refused(self, "deadline");
            c->closing = true;
            refuse(self, c, 408, "Request took too long to arrive");
        } else {
            start_body(c);
        }
        advance(self, c);
    }
}

/* Once a tick: deadlines, idle limits, lingering closes, parked streams. */
static void patrol(httpd_t *self)
{
    if (self->listen_paused && self->listen_fd >= 0) {
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &self->listen_fd };
        self->listen_paused = epoll_ctl(self->epoll_fd, EPOLL_CTL_ADD, self->listen_fd, &ev) < 0;
    }
    double now = clock_mono();
    for (conn_t *c = self->conns, *next; c; c = next) {
        next = c->next;
        bool receiving = c->state == CONN_HEAD || c->state == CONN_BODY;
        if (receiving && c->since > 0 && now - c->since > self->limits.deadline_s) {
            count_refused(self, "deadline");
            close_conn(self, c);
        } else if ((c->state == CONN_HEAD && c->since == 0 && now - c->active > IDLE_TIMEOUT_S)
                   || (c->blocked && now - c->active > IDLE_TIMEOUT_S)
                   || (c->state == CONN_LINGERING && now - c->since > LINGER_S)) {
            close_conn(self, c);
        } else if (c->parked) {
            c->parked = false;
            advance(self, c);
        }
    }
}

static void loop_run(actor_t *actor, void *arg)
{
    httpd_t *self = arg;
    struct epoll_event events[EVENTS];
    double next_tick = clock_mono() + TICK_S;
    while (actor_running(actor)) {
        double wait_s = next_tick - clock_mono();
        int n = epoll_wait(self->epoll_fd, events, EVENTS, wait_s > 0 ? (int)(wait_s * 1000) + 1 : 0);
        bool woken = false;
        /* Only the connection an event is for may close while these are
         * handled, so none of the rest can name a freed one. */
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == &self->listen_fd)
                accept_clients(self);
            else if (events[i].data.ptr == &self->wake_fd)
                woken = true;
            else
                on_event(self, events[i].data.ptr, events[i].events);
        }
        if (woken) {
            uint64_t count;
            while (read(self->wake_fd, &count, sizeof count) > 0)
                ;
            take_done(self);
        }
        if (atomic_load(&self->stopping))
            stop_listening(self);
        if (clock_mono() >= next_tick) {
            patrol(self);
            next_tick = clock_mono() + TICK_S;
        }
    }
    /* The workers have left: their last results go out as far as the
     * sockets take them at once, then every connection closes. */
    take_done(self);
    while (self->conns)
        close_conn(self, self->conns);
    stop_listening(self);
}

/* ---- start and stop ------------------------------------------------------------- */

static int open_listener(const struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0
        || bind(fd, (const struct sockaddr *)addr, sizeof *addr) < 0 || listen(fd, SOMAXCONN) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* The loop's descriptors: epoll, with the listener and the workers'
 * eventfd in it.  -1 when the system has none to give. */
static int open_loop(httpd_t *self)
{
    self->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    self->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event listen = { .events = EPOLLIN, .data.ptr = &self->listen_fd };
    struct epoll_event wake = { .events = EPOLLIN, .data.ptr = &self->wake_fd };
    if (self->epoll_fd < 0 || self->wake_fd < 0
        || epoll_ctl(self->epoll_fd, EPOLL_CTL_ADD, self->listen_fd, &listen) < 0
        || epoll_ctl(self->epoll_fd, EPOLL_CTL_ADD, self->wake_fd, &wake) < 0)
        return -1;
    return 0;
}

int httpd_start(httpd_t *self, const char *address, int port)
{
    struct sockaddr_in addr = { 0 };
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    bool any = !strcmp(address, "*") || inet_pton(AF_INET, address, &addr.sin_addr) != 1
               || addr.sin_addr.s_addr == htonl(INADDR_ANY);
    if (any)
        addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (self->check_host) {
        if (any)
            allow_local_addresses(self);
        else
            allow_host(self, address);
    }
    self->listen_fd = open_listener(&addr);
    if (self->listen_fd < 0) {
        log_error(self->service, "cannot listen for HTTP on %s:%d: %s", address, port, strerror(errno));
        return -1;
    }
    atomic_store(&self->stopping, false);
    self->listen_paused = false;
    /* One worker now, so that a system out of threads fails the start;
     * the others as requests need them. */
    pthread_mutex_lock(&self->lock);
    int worker = add_worker(self);
    pthread_mutex_unlock(&self->lock);
    self->loop = actor_new_runner("http", loop_run, wake_loop, self);
    if (open_loop(self) < 0 || worker < 0 || actor_start(self->loop) < 0) {
        log_error(self->service, "cannot serve HTTP on %s:%d", address, port);
        httpd_stop(self);
        return -1;
    }
    log_info(self->service, "HTTP on %s:%d", address, port);
    return 0;
}

void httpd_stop(httpd_t *self)
{
    if (!self->loop && self->listen_fd < 0)
        return;
    pthread_mutex_lock(&self->lock);
    atomic_store(&self->stopping, true);
    pthread_mutex_unlock(&self->lock);
    if (self->wake_fd >= 0)
        wake_loop(self);            /* no more accepting from now */
    actor_stop_all(self->workers, self->nworkers);
    for (unsigned i = 0; i < self->nworkers; i++)
        actor_destroy(&self->workers[i]);
    self->nworkers = 0;
    actor_destroy(&self->loop);
    stop_listening(self);           /* when the loop never ran */
    if (self->epoll_fd >= 0)
        close(self->epoll_fd);
    if (self->wake_fd >= 0)
        close(self->wake_fd);
    self->epoll_fd = self->wake_fd = -1;
}
