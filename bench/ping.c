/*  ping: N concurrent REQ clients sending {"action":"ping"} back to back
 *  for D seconds, as many agents polling one service would.  Prints
 *  requests/s and p50/p99 latency on one line of key=value pairs, for
 *  bench/ping.sh to put beside redis-benchmark.
 *
 *  Like redis-benchmark, one thread drives every client: N REQ sockets, each
 *  with one request in flight, served from a single zmq_poll loop.  A thread
 *  per client would spend the shared CPUs on context switches that the
 *  server under test then lacks.  Every latency is kept and sorted once at
 *  the end, so the percentiles are exact.  The clients use their own ZMQ
 *  context, as separate processes would.
 *
 *  usage: ping ENDPOINT [CLIENTS [SECONDS [IO_THREADS]]] */
#include "clock.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static const char request[] = "{\"action\":\"ping\"}";

typedef struct {
    double *lat;                /* seconds per request */
    size_t n, cap;
} latencies_t;

static void record(latencies_t *l, double seconds)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 65536;
        l->lat = realloc(l->lat, l->cap * sizeof *l->lat);
    }
    l->lat[l->n++] = seconds;
}

static void *open_client(void *ctx, const char *endpoint)
{
    void *s = zmq_socket(ctx, ZMQ_REQ);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(s, endpoint) != 0) {
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* Runs the clients until `stop`; latencies from `start` on are recorded.
 * Returns the number of clients that failed. */
static long run_clients(void *ctx, const char *endpoint, int n, double start, double stop,
                        latencies_t *lat)
{
    zmq_pollitem_t *items = calloc((size_t)n, sizeof *items);
    double *sent = calloc((size_t)n, sizeof *sent);
    long errors = 0;
    for (int i = 0; i < n; i++) {
        items[i] = (zmq_pollitem_t){ open_client(ctx, endpoint), 0, ZMQ_POLLIN, 0 };
        sent[i] = clock_mono();
        if (!items[i].socket || zmq_send(items[i].socket, request, sizeof request - 1, 0) < 0)
            errors++;
    }
    char reply[4096];
    int busy = n;
    while (busy > 0 && !errors) {
        int ready = zmq_poll(items, n, 5000);
        if (ready <= 0) {
            errors++;           /* five seconds without a reply */
            break;
        }
        double now = clock_mono();
        for (int i = 0; i < n; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            if (zmq_recv(items[i].socket, reply, sizeof reply, 0) < 0) {
                errors++;
                continue;
            }
            if (sent[i] >= start)
                record(lat, now - sent[i]);
            if (now >= stop) {
                items[i].events = 0;    /* this client is done */
                busy--;
                continue;
            }
            sent[i] = now;
            if (zmq_send(items[i].socket, request, sizeof request - 1, 0) < 0)
                errors++;
        }
    }
    for (int i = 0; i < n; i++)
        if (items[i].socket)
            zmq_close(items[i].socket);
    free(items);
    free(sent);
    return errors;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: ping ENDPOINT [CLIENTS [SECONDS [IO_THREADS]]]\n");
        return 2;
    }
    int nclients = argc > 2 ? atoi(argv[2]) : 1;
    double seconds = argc > 3 ? atof(argv[3]) : 3;
    int io_threads = argc > 4 ? atoi(argv[4]) : 1;
    if (nclients < 1 || seconds <= 0 || io_threads < 1) {
        fprintf(stderr, "ping: CLIENTS, SECONDS and IO_THREADS must be positive\n");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_IO_THREADS, io_threads);
    /* Half a second of warm-up before the window opens. */
    double start = clock_mono() + 0.5, stop = start + seconds;
    latencies_t lat = { 0 };
    long errors = run_clients(ctx, argv[1], nclients, start, stop, &lat);
    size_t total = lat.n;
    double *all = lat.lat ? lat.lat : calloc(1, sizeof *all);
    qsort(all, total, sizeof *all, by_value);
    double p50 = total ? all[total / 2] : 0;
    double p99 = total ? all[(size_t)((double)total * 0.99)] : 0;
    printf("clients=%d requests=%zu seconds=%.2f rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%ld\n",
           nclients, total, seconds, (double)total / seconds, p50 * 1e3, p99 * 1e3, errors);
    free(all);
    zmq_ctx_term(ctx);
    return errors ? 1 : 0;
}
