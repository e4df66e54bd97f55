/*  testutil: the few helpers the runtime's unit tests share.  Header-only
 *  (static inline) because the build links each tests/unit/test_*.c on its
 *  own against libkeel.a.  Ports come from the kernel (bind to port 0), so
 *  tests running in parallel never pick the same one; temp directories are
 *  removed by the test that made them. */
#ifndef KEEL_TESTUTIL_H
#define KEEL_TESTUTIL_H
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* KEEL_TIME_FACTOR, by which a busy or instrumented run stretches the
 * deadlines it waits on; 1 when unset. */
static inline double tu_factor(void)
{
    const char *f = getenv("KEEL_TIME_FACTOR");
    return f && atof(f) > 0 ? atof(f) : 1.0;
}

/* A TCP port on 127.0.0.1 that was free a moment ago. */
static inline int tu_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof addr;
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0
        || getsockname(fd, (struct sockaddr *)&addr, &alen) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(addr.sin_port);
}

static inline int tu_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int ok = bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    close(fd);
    return ok;
}

/* Threads of this process whose name starts with `prefix` (15 characters
 * of a name show). */
static inline int tu_threads_named(const char *prefix)
{
    int n = 0;
    char path[300], name[32];
    DIR *dir = opendir("/proc/self/task");
    for (struct dirent *e; dir && (e = readdir(dir));) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f && fgets(name, sizeof name, f) && !strncmp(name, prefix, strlen(prefix)))
            n++;
        if (f)
            fclose(f);
    }
    if (dir)
        closedir(dir);
    return n;
}

/* `rm -rf` of a test's own temp directory. */
static inline void tu_rmtree(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

typedef struct {
    int status;
    char *head;             /* status line and headers */
    char *body;
    size_t body_len;
} tu_http_t;

static inline void tu_http_free(tu_http_t *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* One HTTP/1.0 exchange on a raw socket: sends `head` (request line and
 * headers, without the blank line) and `body`, reads to EOF.  A small
 * client of our own, so the test sees exactly the bytes the server sends.
 * Returns 0, or -1 when no reply could be read. */
static inline int tu_http(int port, const char *head, const char *body, size_t body_len,
                          tu_http_t *out)
{
    memset(out, 0, sizeof *out);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        close(fd);
        return -1;
    }
    char prefix[1024];
    int n = snprintf(prefix, sizeof prefix, "%s\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n\r\n",
                     head, body_len);
    send(fd, prefix, (size_t)n, MSG_NOSIGNAL);
    for (size_t sent = 0; sent < body_len;) {
        ssize_t k = send(fd, body + sent, body_len - sent, MSG_NOSIGNAL);
        if (k <= 0)
            break;
        sent += (size_t)k;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t k = recv(fd, buf + len, cap - len - 1, 0);
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    close(fd);
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (!sep || sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1) {
        free(buf);
        return -1;
    }
    out->head = strndup(buf, (size_t)(sep - buf));
    out->body_len = len - (size_t)(sep + 4 - buf);
    out->body = malloc(out->body_len + 1);
    memcpy(out->body, sep + 4, out->body_len);
    out->body[out->body_len] = '\0';
    free(buf);
    return 0;
}

static inline int tu_http_get(int port, const char *path, tu_http_t *out)
{
    char head[512];
    snprintf(head, sizeof head, "GET %s HTTP/1.0", path);
    return tu_http(port, head, "", 0, out);
}
#endif
