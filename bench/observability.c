/*  observability bench: the pieces bench/observability.sh puts together to
 *  measure ObservabilityHub against a fleet of 1,000 agents.
 *
 *    sim PORT COUNT        COUNT simulated agents in this one process: a
 *                          ROUTER socket each on 127.0.0.1:PORT.., all served
 *                          by one zmq_poll loop answering {"status":"ok"}
 *    scrape URL COUNT      GETs URL COUNT times; prints size and timings (ms)
 *    proc PID SECONDS      the process's CPU percent over SECONDS and its RSS
 *
 *  A private ZMQ context is sized for thousands of sockets (libzmq's default
 *  limit is 1023), and the descriptor limit is raised to its hard limit. */
#include "common/procstat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int sim(int base, int count)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, count + 16);
    zmq_pollitem_t *items = calloc((size_t)count, sizeof *items);
    for (int i = 0; i < count; i++) {
        char ep[64];
        snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", base + i);
        void *s = zmq_socket(ctx, ZMQ_ROUTER);
        int zero = 0;
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
        if (!s || zmq_bind(s, ep) != 0) {
            fprintf(stderr, "sim: cannot bind %s: %s\n", ep, zmq_strerror(zmq_errno()));
            return 1;
        }
        items[i] = (zmq_pollitem_t){ s, 0, ZMQ_POLLIN, 0 };
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("ready %d agents on %d..%d\n", count, base, base + count - 1);
    fflush(stdout);
    static const char reply[] = "{\"status\":\"ok\",\"agent\":\"sim\"}";
    long answered = 0;
    while (!stopping) {
        if (zmq_poll(items, count, 200) <= 0)
            continue;
        for (int i = 0; i < count; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            /* ROUTER in: identity, empty delimiter, body; answer identity, empty, reply */
            zmq_msg_t part;
            zmq_msg_t id;
            zmq_msg_init(&id);
            if (zmq_msg_recv(&id, items[i].socket, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&id);
                continue;
            }
            int more = 1;
            while (more) {
                zmq_msg_init(&part);
                zmq_msg_recv(&part, items[i].socket, 0);
                more = zmq_msg_more(&part);
                zmq_msg_close(&part);
            }
            zmq_msg_send(&id, items[i].socket, ZMQ_SNDMORE);
            zmq_send(items[i].socket, "", 0, ZMQ_SNDMORE);
            zmq_send(items[i].socket, reply, sizeof reply - 1, 0);
            answered++;
        }
    }
    for (int i = 0; i < count; i++)
        zmq_close(items[i].socket);
    free(items);
    zmq_ctx_term(ctx);
    fprintf(stderr, "sim: answered %ld probes\n", answered);
    return 0;
}

/* One GET; returns the body size, or -1. */
static long http_get(const char *host, int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, host, &addr.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    static char buf[1 << 16];
    long total = 0, header = -1;
    char window[4] = { 0 };
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < got && header < 0; i++) {
            memmove(window, window + 1, 3);
            window[3] = buf[i];
            if (!memcmp(window, "\r\n\r\n", 4))
                header = total + i + 1;
        }
        total += got;
    }
    close(fd);
    return header < 0 ? -1 : total - header;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int scrape(const char *url, int count)
{
    char host[64], path[256];
    int port;
    if (sscanf(url, "http://%63[^:]:%d%255s", host, &port, path) != 3) {
        fprintf(stderr, "scrape: URL must be http://HOST:PORT/PATH\n");
        return 2;
    }
    double *ms = calloc((size_t)count, sizeof *ms);
    long size = 0;
    for (int i = 0; i < count; i++) {
        double t = now_s();
        size = http_get(host, port, path);
        ms[i] = (now_s() - t) * 1000.0;
        if (size < 0) {
            fprintf(stderr, "scrape: GET %s failed\n", url);
            free(ms);
            return 1;
        }
    }
    qsort(ms, (size_t)count, sizeof *ms, cmp_double);
    printf("bytes=%ld min_ms=%.3f median_ms=%.3f p95_ms=%.3f max_ms=%.3f\n", size, ms[0],
           ms[count / 2], ms[(int)(count * 0.95)], ms[count - 1]);
    free(ms);
    return 0;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

static int read_cpu(int pid, double *cpu_s, long *rss_kb, long *hwm_kb)
{
    char path[64], buf[2048];
    if ((*cpu_s = procstat_cpu_seconds(pid)) < 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(buf, sizeof buf, f)) {
        sscanf(buf, "VmRSS: %ld", rss_kb);
        sscanf(buf, "VmHWM: %ld", hwm_kb);
    }
    fclose(f);
    return 0;
}

static int proc(int pid, double seconds)
{
    double t0, t1 = 0;
    long rss = 0, hwm = 0, max_rss = 0;
    double start = now_s();
    if (read_cpu(pid, &t0, &rss, &hwm) < 0) {
        fprintf(stderr, "proc: no process %d\n", pid);
        return 1;
    }
    /* RSS sampled every 100 ms: between sweeps (the median) and at worst */
    long samples[4096];
    size_t n = 0;
    while (now_s() - start < seconds && n < sizeof samples / sizeof samples[0]) {
        usleep(100000);
        if (read_cpu(pid, &t1, &rss, &hwm) < 0)
            return 1;
        samples[n++] = rss;
        max_rss = rss > max_rss ? rss : max_rss;
    }
    double cpu = (t1 - t0) / (now_s() - start) * 100.0;
    qsort(samples, n, sizeof *samples, cmp_long);
    printf("cpu_percent=%.2f rss_mb=%.1f rss_max_mb=%.1f hwm_mb=%.1f\n", cpu,
           (double)samples[n / 2] / 1024.0, (double)max_rss / 1024.0, (double)hwm / 1024.0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "sim"))
        return sim(atoi(argv[2]), atoi(argv[3]));
    if (argc == 4 && !strcmp(argv[1], "scrape"))
        return scrape(argv[2], atoi(argv[3]));
    if (argc == 4 && !strcmp(argv[1], "proc"))
        return proc(atoi(argv[2]), atof(argv[3]));
    fprintf(stderr, "usage: observability sim PORT COUNT | scrape URL COUNT | proc PID SECONDS\n");
    return 2;
}
