/*  ping: N concurrent REQ clients, each its own thread and socket, sending
 *  {"action":"ping"} back to back for D seconds, as many agents polling one
 *  service would.  Prints requests/s and p50/p99 latency on one line of
 *  key=value pairs, for bench/ping.sh to put beside redis-benchmark.
 *
 *  Each thread records every latency in its own array (no sharing on the
 *  hot path); the arrays are merged and sorted once at the end, so the
 *  percentiles are exact rather than bucketed.  The clients use their own
 *  ZMQ context, as separate processes would, rather than keel's.
 *
 *  usage: ping ENDPOINT [CLIENTS [SECONDS [IO_THREADS]]] */
#include "clock.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

typedef struct {
    void *ctx;
    const char *endpoint;
    double start, stop;         /* the measured window, monotonic seconds */
    double *lat;                /* seconds per request */
    size_t n, cap;
    long errors;
} client_t;

static const char request[] = "{\"action\":\"ping\"}";

static void record(client_t *c, double seconds)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4096;
        c->lat = realloc(c->lat, c->cap * sizeof *c->lat);
    }
    c->lat[c->n++] = seconds;
}

static void *client_main(void *arg)
{
    client_t *c = arg;
    void *s = zmq_socket(c->ctx, ZMQ_REQ);
    int zero = 0, timeout = 5000;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    if (zmq_connect(s, c->endpoint) != 0) {
        c->errors++;
        zmq_close(s);
        return NULL;
    }
    char reply[4096];
    /* A first exchange outside the window: connection set-up is not latency. */
    zmq_send(s, request, sizeof request - 1, 0);
    if (zmq_recv(s, reply, sizeof reply, 0) < 0)
        c->errors++;
    for (;;) {
        double t0 = clock_mono();
        if (t0 >= c->stop)
            break;
        if (zmq_send(s, request, sizeof request - 1, 0) < 0
            || zmq_recv(s, reply, sizeof reply, 0) < 0) {
            c->errors++;
            break;              /* a REQ socket that missed a reply cannot go on */
        }
        double t1 = clock_mono();
        if (t0 >= c->start)
            record(c, t1 - t0);
    }
    zmq_close(s);
    return NULL;
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
    client_t *clients = calloc((size_t)nclients, sizeof *clients);
    pthread_t *threads = calloc((size_t)nclients, sizeof *threads);
    /* Half a second of warm-up before the window opens. */
    double start = clock_mono() + 0.5, stop = start + seconds;
    for (int i = 0; i < nclients; i++) {
        clients[i] = (client_t){ .ctx = ctx, .endpoint = argv[1], .start = start, .stop = stop };
        pthread_create(&threads[i], NULL, client_main, &clients[i]);
    }
    size_t total = 0;
    long errors = 0;
    for (int i = 0; i < nclients; i++) {
        pthread_join(threads[i], NULL);
        total += clients[i].n;
        errors += clients[i].errors;
    }
    double *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < nclients; i++) {
        memcpy(all + k, clients[i].lat, clients[i].n * sizeof *all);
        k += clients[i].n;
        free(clients[i].lat);
    }
    qsort(all, total, sizeof *all, by_value);
    double p50 = total ? all[total / 2] : 0;
    double p99 = total ? all[(size_t)((double)total * 0.99)] : 0;
    printf("clients=%d requests=%zu seconds=%.2f rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%ld\n",
           nclients, total, seconds, (double)total / seconds, p50 * 1e3, p99 * 1e3, errors);
    free(all);
    free(clients);
    free(threads);
    zmq_ctx_term(ctx);
    return errors ? 1 : 0;
}
