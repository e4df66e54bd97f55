/*  httpcall: see httpcall.h.
 *
 *  A call goes through its phases in order: resolving (names only),
 *  connecting, sending, the reply's head, then its body in one of three
 *  framings.  Every phase takes what the socket has and stops at EAGAIN, so
 *  a reply may arrive a byte at a time.  Where a head ends and how a
 *  chunked body is framed are read as the server reads them (httpparse.h),
 *  so both sides of Keel's HTTP agree on them.  Every failure goes through
 *  fail(), which says why and closes the socket. */
#include "httpcall.h"
#include "httpparse.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* The status line and headers together; more is not a Keel peer. */
#define HEAD_MAX (64u << 10)

typedef enum {
    RESOLVING, CONNECTING, SENDING, HEAD, BODY_BY_LENGTH, BODY_TO_CLOSE, BODY_CHUNKED,
    ANSWERED, FAILED
} phase_t;

/* A host name being looked up by glibc's getaddrinfo_a, shared by every
 * call that asks for it while it runs, so that a sweep of a thousand agents
 * on two hosts asks twice.  glibc's resolver thread writes into it until
 * gai_error says it is done.  A lookup is never cancelled (gai_cancel leaks
 * glibc's own record of the request): one nobody waits for any more runs
 * out, and the next call to start a lookup frees it. */
typedef struct lookup {
    struct gaicb cb;
    struct addrinfo hints;
    char host[256];
    int waiting;            /* calls that hold it */
    struct lookup *next;
} lookup_t;

struct httpcall_t {
    phase_t phase;
    char host[256];         /* as the URL names it, without brackets */
    char port[8];
    lookup_t *lookup;       /* a name's, held until the call ends */
    struct addrinfo *numeric;   /* a numeric host's own */
    struct addrinfo *untried;   /* the next address to try, in either */
    int connect_errno;      /* why the last address refused */
    int fd;
    char *request;
    size_t request_len, sent;
    char *head;             /* the reply's status line and headers so far */
    size_t head_len, head_cap;
    size_t scanned;         /* of `head`, for its end (http_head_length) */
    size_t remaining;       /* of the body (BODY_BY_LENGTH) */
    http_chunks_t chunks;   /* where a chunked body is up to (BODY_CHUNKED) */
    char *body;
    size_t body_len, body_cap, max_body;
    int status;
    char error[160];
};

static pthread_mutex_t lookups_lock = PTHREAD_MUTEX_INITIALIZER;
static lookup_t *lookups;   /* every lookup still running or still held */

static void free_lookup(lookup_t *l)
{
    if (l->cb.ar_result)
        freeaddrinfo(l->cb.ar_result);
    free(l);
}

/* A lookup of `host` to wait on, joined or started; NULL, with *rc set,
 * when glibc cannot start one. */
static lookup_t *lookup_hold(const char *host, int *rc)
{
    pthread_mutex_lock(&lookups_lock);
    for (lookup_t **at = &lookups; *at;) {      /* first the lookups that ran out unheld */
        lookup_t *done = *at;
        if (done->waiting || gai_error(&done->cb) == EAI_INPROGRESS) {
            at = &done->next;
        } else {
            *at = done->next;
            free_lookup(done);
        }
    }
    lookup_t *l = lookups;          /* one still running: a finished one may be stale */
    while (l && (strcmp(l->host, host) != 0 || gai_error(&l->cb) != EAI_INPROGRESS))
        l = l->next;
    if (l) {
        l->waiting++;
    } else {
        l = calloc(1, sizeof *l);
        l->hints = (struct addrinfo){ .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
        snprintf(l->host, sizeof l->host, "%s", host);
        l->cb = (struct gaicb){ .ar_name = l->host, .ar_request = &l->hints };
        struct gaicb *list[1] = { &l->cb };
        *rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
        if (*rc == 0) {
            l->waiting = 1;
            l->next = lookups;
            lookups = l;
        } else {
            free(l);
            l = NULL;
        }
    }
    pthread_mutex_unlock(&lookups_lock);
    return l;
}

static void lookup_release(lookup_t *l)
{
    pthread_mutex_lock(&lookups_lock);
    l->waiting--;
    pthread_mutex_unlock(&lookups_lock);
}

static void close_socket(httpcall_t *self)
{
    if (self->fd >= 0)
        close(self->fd);
    self->fd = -1;
}

/* Ends the call with why; the socket is closed. */
static void fail(httpcall_t *self, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void fail(httpcall_t *self, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(self->error, sizeof self->error, format, args);
    va_end(args);
    self->phase = FAILED;
    close_socket(self);
}

/* ---- the request ------------------------------------------------------- */

/* What a request needs of its URL: both point into it. */
typedef struct {
    const char *authority;  /* host[:port], as the Host header says it */
    const char *target;     /* [/path][?query], without a #fragment */
    int authority_len, target_len;
} url_t;

/* Reads http://host[:port][/path[?query]] into the call's host and port
 * and `parts`; false, the call failed, for anything else. */
static bool read_url(httpcall_t *self, const char *url, url_t *parts)
{
    const char *scheme_end = strstr(url, "://");
    int scheme_len = scheme_end ? (int)(scheme_end - url) : 0;
    if (!scheme_len) {
        fail(self, "malformed URL: %.120s", url);
        return false;
    }
    if (scheme_len != 4 || strncasecmp(url, "http", 4) != 0) {
        fail(self, "unsupported URL scheme: %.*s", scheme_len < 40 ? scheme_len : 40, url);
        return false;
    }
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            fail(self, "malformed URL (a space or control character): %.100s", url);
            return false;
        }
    const char *authority = scheme_end + 3;
    size_t authority_len = strcspn(authority, "/?#");
    const char *end = authority + authority_len, *host = authority, *host_end, *after;
    if (*host == '[') {             /* an IPv6 literal */
        host_end = memchr(host, ']', authority_len);
        host++;
        after = host_end ? host_end + 1 : NULL;
    } else {
        host_end = memchr(host, ':', authority_len);
        host_end = host_end ? host_end : end;
        after = host_end;
    }
    const char *port = after && after < end && *after == ':' ? after + 1 : end;
    size_t port_len = (size_t)(end - port);
    if (!host_end || host_end == host || (size_t)(host_end - host) >= sizeof self->host
        || memchr(authority, '@', authority_len) || (after < end && *after != ':')
        || port_len > 5 || strspn(port, "0123456789") < port_len) {
        fail(self, "malformed URL: %.120s", url);
        return false;
    }
    snprintf(self->host, sizeof self->host, "%.*s", (int)(host_end - host), host);
    if (port_len)
        snprintf(self->port, sizeof self->port, "%.*s", (int)port_len, port);
    else
        snprintf(self->port, sizeof self->port, "80");
    if (atoi(self->port) < 1 || atoi(self->port) > 65535) {
        fail(self, "malformed URL (port out of range): %.100s", url);
        return false;
    }
    *parts = (url_t){ .authority = authority, .authority_len = (int)authority_len,
                      .target = end, .target_len = (int)strcspn(end, "#") };
    return true;
}

static void write_request(httpcall_t *self, const url_t *url, const char *body, size_t body_len)
{
    char length[96] = "";
    if (body)
        snprintf(length, sizeof length, "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    const char *format = "%s %s%.*s HTTP/1.1\r\nHost: %.*s\r\nUser-Agent: keel\r\nAccept: */*\r\n"
                         "Connection: close\r\n%s\r\n";
    const char *method = body ? "POST" : "GET";
    const char *slash = url->target_len == 0 || *url->target == '?' ? "/" : "";
    int head_len = snprintf(NULL, 0, format, method, slash, url->target_len, url->target,
                            url->authority_len, url->authority, length);
    self->request_len = (size_t)head_len + (body ? body_len : 0);
    self->request = malloc(self->request_len + 1);
    snprintf(self->request, (size_t)head_len + 1, format, method, slash, url->target_len, url->target,
             url->authority_len, url->authority, length);
    if (body)
        memcpy(self->request + head_len, body, body_len);
}

/* ---- resolving and connecting ------------------------------------------ */

/* Tries the host's addresses from the next untried one; fails the call
 * when none is left. */
static void connect_next(httpcall_t *self)
{
    close_socket(self);
    while (self->untried) {
        struct addrinfo *ai = self->untried;
        self->untried = ai->ai_next;
        struct sockaddr_storage addr;
        memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
        in_port_t port = htons((in_port_t)atoi(self->port));
        if (ai->ai_family == AF_INET)
            ((struct sockaddr_in *)&addr)->sin_port = port;
        else if (ai->ai_family == AF_INET6)
            ((struct sockaddr_in6 *)&addr)->sin6_port = port;
        self->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (self->fd >= 0 && (connect(self->fd, (struct sockaddr *)&addr, ai->ai_addrlen) == 0
                              || errno == EINPROGRESS)) {
            self->phase = CONNECTING;       /* writable once connected, refused or not */
            return;
        }
        self->connect_errno = errno;
        close_socket(self);
    }
    fail(self, "cannot connect to %s port %s: %s", self->host, self->port, strerror(self->connect_errno));
}

/* A numeric host is read at once; a name is looked up by glibc's threads,
 * since a slow DNS server must not stall every other call of the loop.
 * Lookups ask for no port: the call's own goes in as it connects. */
static void resolve(httpcall_t *self)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST };
    int rc = getaddrinfo(self->host, NULL, &hints, &self->numeric);
    if (rc == 0) {
        self->untried = self->numeric;
        connect_next(self);
        return;
    }
    if (rc == EAI_NONAME)
        self->lookup = lookup_hold(self->host, &rc);
    if (self->lookup)
        self->phase = RESOLVING;
    else
        fail(self, "cannot resolve host %s: %s", self->host, gai_strerror(rc));
}

static void check_resolved(httpcall_t *self)
{
    int rc = gai_error(&self->lookup->cb);
    if (rc == EAI_INPROGRESS)
        return;
    if (rc != 0) {
        fail(self, "cannot resolve host %s: %s", self->host, gai_strerror(rc));
        return;
    }
    self->untried = self->lookup->cb.ar_result;
    connect_next(self);
}

static void send_request(httpcall_t *self)
{
    while (self->sent < self->request_len) {
        ssize_t n = send(self->fd, self->request + self->sent, self->request_len - self->sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            fail(self, "cannot send the request to %s port %s: %s", self->host, self->port, strerror(errno));
            return;
        }
        self->sent += (size_t)n;
    }
    self->phase = HEAD;
}

static void check_connected(httpcall_t *self)
{
    int error = 0;
    socklen_t len = sizeof error;
    if (getsockopt(self->fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
        error = errno;
    if (error) {
        self->connect_errno = error;
        connect_next(self);
        return;
    }
    self->phase = SENDING;
    send_request(self);
}

/* ---- the reply ---------------------------------------------------------- */

static void keep_body(httpcall_t *self, const char *data, size_t len)
{
    if (len > self->max_body - self->body_len) {
        fail(self, "reply larger than %zu bytes", self->max_body);
        return;
    }
    if (self->body_len + len + 1 > self->body_cap) {
        size_t cap = self->body_cap ? self->body_cap : 1024;
        while (cap < self->body_len + len + 1)
            cap *= 2;
        self->body = realloc(self->body, cap);
        self->body_cap = cap;
    }
    memcpy(self->body + self->body_len, data, len);
    self->body_len += len;
    self->body[self->body_len] = '\0';
}

static void answer(httpcall_t *self)
{
    keep_body(self, "", 0);         /* an empty body is still a string */
    if (self->phase != FAILED)
        self->phase = ANSWERED;
    close_socket(self);
}

/* The value of header `name` in a head of NUL-terminated lines (their
 * CR and LF cut), or NULL; the status line is skipped. */
static const char *header(const char *head, size_t head_len, const char *name)
{
    size_t name_len = strlen(name);
    for (const char *line = head + strlen(head) + 1; line < head + head_len; line += strlen(line) + 1)
        if (strncasecmp(line, name, name_len) == 0 && line[name_len] == ':')
            return line + name_len + 1 + strspn(line + name_len + 1, " \t");
    return NULL;
}

/* Reads the status line and the framing of the body from a complete head. */
static void read_head(httpcall_t *self)
{
    for (size_t k = 0; k < self->head_len; k++)
        if (self->head[k] == '\r' || self->head[k] == '\n')
            self->head[k] = '\0';
    const char *h = self->head;
    if (strncmp(h, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)h[7]) || h[8] != ' '
        || !isdigit((unsigned char)h[9]) || !isdigit((unsigned char)h[10]) || !isdigit((unsigned char)h[11])
        || (h[12] != ' ' && h[12] != '\0') || h[9] == '0') {
        fail(self, "malformed status line: %.60s", h);
        return;
    }
    self->status = atoi(h + 9);
    const char *length = header(h, self->head_len, "Content-Length");
    const char *coding = header(h, self->head_len, "Transfer-Encoding");
    char *length_end = NULL;
    unsigned long long declared = length ? strtoull(length, &length_end, 10) : 0;
    if (self->status < 200) {
        self->head_len = 0;         /* an interim reply: the final one follows */
    } else if (self->status == 204 || self->status == 304) {
        answer(self);
    } else if (coding && strcasestr(coding, "chunked")) {
        self->phase = BODY_CHUNKED;
    } else if (!length) {
        self->phase = BODY_TO_CLOSE;
    } else if (!isdigit((unsigned char)*length) || length_end[strspn(length_end, " \t")] != '\0') {
        fail(self, "malformed Content-Length: %.40s", length);
    } else if (declared > self->max_body) {
        fail(self, "reply larger than %zu bytes (Content-Length %llu)", self->max_body, declared);
    } else if (declared == 0) {
        answer(self);
    } else {
        self->phase = BODY_BY_LENGTH;
        self->remaining = (size_t)declared;
    }
}

/* Takes bytes of the head up to the blank line that ends it; returns how
 * many it took. */
static size_t take_head(httpcall_t *self, const char *data, size_t len)
{
    size_t before = self->head_len, room = HEAD_MAX - before, take = len < room ? len : room;
    if (before + take + 1 > self->head_cap) {
        self->head_cap = self->head_cap ? self->head_cap : 1024;
        while (self->head_cap < before + take + 1)
            self->head_cap *= 2;
        self->head = realloc(self->head, self->head_cap);
    }
    memcpy(self->head + before, data, take);
    self->head_len += take;
    size_t end = http_head_length(self->head, self->head_len, &self->scanned);
    if (end) {
        self->head_len = end;
        self->head[end] = '\0';
        self->scanned = 0;
        read_head(self);
        return end - before;
    }
    if (self->head_len == HEAD_MAX)
        fail(self, "reply headers larger than %u bytes", HEAD_MAX);
    return take;
}

static size_t take_body(httpcall_t *self, const char *data, size_t len)
{
    size_t take = self->phase == BODY_TO_CLOSE || len < self->remaining ? len : self->remaining;
    keep_body(self, data, take);
    if (self->phase == BODY_TO_CLOSE || self->phase == FAILED)
        return take;
    self->remaining -= take;
    if (!self->remaining)
        answer(self);
    return take;
}

static size_t take_chunks(httpcall_t *self, const char *data, size_t len)
{
    const char *piece;
    size_t n;
    long used = http_chunks_read(&self->chunks, data, len, &piece, &n);
    if (used < 0) {
        fail(self, "malformed chunked body");
        return len;
    }
    if (n)
        keep_body(self, piece, n);
    if (self->phase != FAILED && http_chunks_done(&self->chunks))
        answer(self);
    return (size_t)used;
}

static void take_reply(httpcall_t *self, const char *data, size_t len)
{
    while (len && self->phase < ANSWERED) {
        size_t used;
        if (self->phase == HEAD)
            used = take_head(self, data, len);
        else if (self->phase == BODY_CHUNKED)
            used = take_chunks(self, data, len);
        else
            used = take_body(self, data, len);
        data += used;
        len -= used;
    }
}

/* The peer closed: the end of a close-delimited body, otherwise a reply
 * cut short. */
static void read_close(httpcall_t *self)
{
    if (self->phase == BODY_TO_CLOSE)
        answer(self);
    else if (self->phase == HEAD)
        fail(self, self->head_len ? "connection closed inside the reply headers"
                                  : "connection closed before any reply");
    else if (self->phase == BODY_BY_LENGTH)
        fail(self, "connection closed %zu bytes before the end of the body", self->remaining);
    else
        fail(self, "connection closed inside a chunked body");
}

static void read_reply(httpcall_t *self)
{
    char buf[16384];
    while (self->phase < ANSWERED) {
        ssize_t n = recv(self->fd, buf, sizeof buf, 0);
        if (n > 0)
            take_reply(self, buf, (size_t)n);
        else if (n == 0)
            read_close(self);
        else if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        else if (errno != EINTR)
            fail(self, "cannot read the reply from %s port %s: %s", self->host, self->port, strerror(errno));
    }
}

/* ---- the class ------------------------------------------------------------ */

httpcall_t *httpcall_new(const char *url, const char *body, size_t body_len, size_t max_body)
{
    httpcall_t *self = calloc(1, sizeof *self);
    self->fd = -1;
    self->max_body = max_body;
    url_t parts;
    if (read_url(self, url, &parts)) {
        write_request(self, &parts, body, body_len);
        resolve(self);
    }
    return self;
}

void httpcall_destroy(httpcall_t **self_p)
{
    httpcall_t *self = *self_p;
    if (!self)
        return;
    if (self->lookup)
        lookup_release(self->lookup);
    close_socket(self);
    if (self->numeric)
        freeaddrinfo(self->numeric);
    free(self->request);
    free(self->head);
    free(self->body);
    free(self);
    *self_p = NULL;
}

int httpcall_socket(const httpcall_t *self, bool *writing)
{
    *writing = self->phase == CONNECTING || self->phase == SENDING;
    return self->phase == RESOLVING ? -1 : self->fd;
}

httpcall_state_t httpcall_advance(httpcall_t *self)
{
    if (self->phase == RESOLVING)
        check_resolved(self);
    else if (self->phase == CONNECTING)
        check_connected(self);
    else if (self->phase == SENDING)
        send_request(self);
    else if (self->phase < ANSWERED)
        read_reply(self);
    return httpcall_state(self);
}

httpcall_state_t httpcall_state(const httpcall_t *self)
{
    return self->phase == ANSWERED ? HTTPCALL_ANSWERED : self->phase == FAILED ? HTTPCALL_FAILED : HTTPCALL_RUNNING;
}

int httpcall_status(const httpcall_t *self)
{
    return self->status;
}

char *httpcall_take_body(httpcall_t *self, size_t *len)
{
    char *body = self->body;
    *len = body ? self->body_len : 0;
    self->body = NULL;
    self->body_len = self->body_cap = 0;
    return body;
}

const char *httpcall_error(const httpcall_t *self)
{
    return self->error;
}
