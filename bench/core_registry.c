/*  core_registry: requests per second of CoreOrchestrator's register_agent
 *  and get_agent_endpoint with N concurrent clients, each a REQ socket of
 *  its own (as BaseAgent clients are), for a fixed time.
 *
 *    core_registry ENDPOINT register|lookup CLIENTS SECONDS
 *
 *  Prints one line: "<op> <clients> <requests> <seconds> <req/s> <errors>
 *  <p50_ms> <p99_ms>", the latencies exact (every one kept, sorted once).
 *  Lookups ask for agents the run registers first, so every reply is a hit. */
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "clock.h"

typedef struct {
    const char *endpoint;
    bool lookup;
    int id;
    double until;
    long done, errors;
    double *lat;                /* seconds per request */
    size_t nlat, cap;
} worker_t;

static void *ctx;

static void *work(void *arg)
{
    worker_t *w = arg;
    void *s = zmq_socket(ctx, ZMQ_REQ);
    int zero = 0, timeout = 5000;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_connect(s, w->endpoint);
    char req[256], rep[4096];
    long i = 0;
    while (clock_mono() < w->until) {
        int n;
        if (w->lookup)
            n = snprintf(req, sizeof req, "{\"action\":\"get_agent_endpoint\",\"agent_name\":\"bench-%d-%ld\"}",
                         w->id, i % 16);
        else
            n = snprintf(req, sizeof req, "{\"action\":\"register_agent\",\"agent_id\":\"bench-%d-%ld\","
                         "\"agent_type\":\"bench\",\"host\":\"127.0.0.1\",\"port\":%ld}", w->id, i % 16, 20000 + i % 16);
        double sent = clock_mono();
        if (zmq_send(s, req, (size_t)n, 0) < 0)
            break;
        int got = zmq_recv(s, rep, sizeof rep - 1, 0);
        if (w->nlat == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 4096;
            w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
        }
        w->lat[w->nlat++] = clock_mono() - sent;
        if (got < 0) {
            w->errors++;
            break;
        }
        rep[got < (int)sizeof rep - 1 ? got : (int)sizeof rep - 1] = '\0';
        if (!strstr(rep, "\"success\""))
            w->errors++;
        w->done++;
        i++;
    }
    zmq_close(s);
    return NULL;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Runs the clients; their latencies, sorted, go to *lat (caller frees). */
static long run(const char *endpoint, bool lookup, int clients, double seconds, long *errors,
                double **lat, size_t *nlat)
{
    worker_t *w = calloc((size_t)clients, sizeof *w);
    pthread_t *t = calloc((size_t)clients, sizeof *t);
    double until = clock_mono() + seconds;
    for (int i = 0; i < clients; i++) {
        w[i] = (worker_t){ .endpoint = endpoint, .lookup = lookup, .id = i, .until = until };
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    long done = 0;
    *errors = 0;
    *lat = NULL;
    *nlat = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(t[i], NULL);
        done += w[i].done;
        *errors += w[i].errors;
        *lat = realloc(*lat, (*nlat + w[i].nlat + 1) * sizeof **lat);
        memcpy(*lat + *nlat, w[i].lat, w[i].nlat * sizeof **lat);
        *nlat += w[i].nlat;
        free(w[i].lat);
    }
    qsort(*lat, *nlat, sizeof **lat, by_value);
    free(w);
    free(t);
    return done;
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[2], "register") && strcmp(argv[2], "lookup"))) {
        fprintf(stderr, "usage: core_registry ENDPOINT register|lookup CLIENTS SECONDS\n");
        return 2;
    }
    ctx = zmq_ctx_new();
    int clients = atoi(argv[3]);
    double seconds = atof(argv[4]);
    bool lookup = !strcmp(argv[2], "lookup");
    long errors;
    double *lat;
    size_t nlat;
    if (lookup) {
        run(argv[1], false, clients, 0.3, &errors, &lat, &nlat);     /* the agents looked up */
        free(lat);
    }
    double t0 = clock_mono();
    long done = run(argv[1], lookup, clients, seconds, &errors, &lat, &nlat);
    double took = clock_mono() - t0;
    double p50 = nlat ? lat[nlat / 2] : 0, p99 = nlat ? lat[(size_t)((double)nlat * 0.99)] : 0;
    printf("%s %d %ld %.2f %.0f %ld %.3f %.3f\n", argv[2], clients, done, took, done / took, errors,
           p50 * 1e3, p99 * 1e3);
    free(lat);
    zmq_ctx_term(ctx);
    return errors ? 1 : 0;
}
