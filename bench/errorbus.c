/*  errorbus bench: events per second ingested *and durably stored* by the
 *  ErrorBus, from P publishers at once, beside the same event stream
 *  through nats-server (publisher -> server -> subscriber) as a reference.
 *
 *    errorbus zmq  INGRESS_ENDPOINT QUERY_ENDPOINT PUBLISHERS EVENTS
 *    errorbus nats NATS_URL PUBLISHERS EVENTS
 *
 *  zmq: each publisher is a PUB socket connected to the bus's ingress,
 *  sending F1 frames `ERROR:{json}` shaped like an agent's report, with a
 *  send high-water mark above its share of the events, so no event is lost
 *  inside the publisher.  The clock runs from the first send until the
 *  bus's stored counter (events committed to SQLite, from the health
 *  action) has grown by EVENTS, or stops growing for 3 s; lost = EVENTS
 *  minus what was stored.
 *  nats: P connections publish the same payloads to one subscriber; the
 *  clock runs until the subscriber has them all (or stalls for 3 s).
 *  Prints one JSON line per run. */
#include "clock.h"
#include "wire.h"
#include "zsocket.h"

#include <jansson.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

typedef struct {
    int id;
    long events;
    const char *target;
    void *socket;
    natsConnection *conn;
} publisher_t;

static int format_event(char *buf, size_t len, int publisher, long seq, bool prefix)
{
    return snprintf(buf, len, "%s{\"timestamp\": %.6f, \"agent\": \"bench-%d\", \"error_type\":"
                    " \"bench_event\", \"message\": \"benchmark event %ld from publisher %d\","
                    " \"severity\": \"ERROR\", \"details\": {\"seq\": %ld}}",
                    prefix ? "ERROR:" : "", clock_wall(), publisher, seq, publisher, seq);
}

static void *zmq_publisher(void *arg)
{
    publisher_t *p = arg;
    char buf[512];
    for (long i = 0; i < p->events; i++) {
        int n = format_event(buf, sizeof buf, p->id, i, true);
        zmq_send(p->socket, buf, (size_t)n, 0);
    }
    return NULL;
}

/* One client for all the polling: a new connection every 5 ms would cost
 * the bus more than the reading itself. */
static long stored_count(wire_client_t *query)
{
    json_t *request = json_pack("{s:s}", "action", "health");
    char err[256];
    json_t *reply = wire_client_call(query, request, err, sizeof err);
    json_decref(request);
    long n = reply ? (long)json_integer_value(json_object_get(json_object_get(reply, "ingress"),
                                                              "stored")) : -1;
    json_decref(reply);
    return n;
}

/* Waits until count() - base >= events or it stalls for 3 s; returns the
 * final count and sets *done_at to the time the last event was seen. */
static long wait_done(long (*count)(void *), void *arg, long base, long events, double *done_at)
{
    long last = count(arg), seen = last;
    double progress = clock_mono();
    *done_at = progress;
    while (last - base < events && clock_mono() - progress < 3.0) {
        usleep(5000);
        long now = count(arg);
        if (now > seen) {
            seen = now;
            progress = clock_mono();
            *done_at = progress;
        }
        last = now;
    }
    return seen;
}

static long count_stored(void *arg)
{
    return stored_count(arg);
}

static int run_zmq(const char *ingress, const char *endpoint, int npub, long events)
{
    wire_client_t *query = wire_client_new(endpoint, 5000, 2);
    publisher_t *pubs = calloc((size_t)npub, sizeof *pubs);
    pthread_t *threads = calloc((size_t)npub, sizeof *threads);
    long share = events / npub;
    events = share * npub;
    for (int i = 0; i < npub; i++) {
        pubs[i].id = i;
        pubs[i].events = share;
        pubs[i].socket = zsocket_new(ZMQ_PUB, ZSOCKET_CLIENT, 0);
        int hwm = (int)share + 1000, linger = 5000;
        zmq_setsockopt(pubs[i].socket, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(pubs[i].socket, ZMQ_LINGER, &linger, sizeof linger);
        zmq_connect(pubs[i].socket, ingress);
    }
    usleep(500000);                 /* subscriptions reach the publishers */
    long base = stored_count(query);
    if (base < 0) {
        fprintf(stderr, "errorbus bench: no answer from %s\n", endpoint);
        wire_client_destroy(&query);
        return 1;
    }
    double t0 = clock_mono();
    for (int i = 0; i < npub; i++)
        pthread_create(&threads[i], NULL, zmq_publisher, &pubs[i]);
    for (int i = 0; i < npub; i++)
        pthread_join(threads[i], NULL);
    double sent = clock_mono();
    double done_at;
    long final = wait_done(count_stored, query, base, events, &done_at);
    long stored = final - base;
    double elapsed = done_at - t0;
    printf("{\"mode\":\"zmq\",\"publishers\":%d,\"events\":%ld,\"stored\":%ld,\"lost\":%ld,"
           "\"send_s\":%.3f,\"elapsed_s\":%.3f,\"rate\":%.0f}\n", npub, events, stored,
           events - stored, sent - t0, elapsed, stored / elapsed);
    for (int i = 0; i < npub; i++)
        zmq_close(pubs[i].socket);
    wire_client_destroy(&query);
    free(pubs);
    free(threads);
    return 0;
}

static atomic_long nats_received;

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    (void)closure;
    atomic_fetch_add(&nats_received, 1);
    natsMsg_Destroy(msg);
}

static void *nats_publisher(void *arg)
{
    publisher_t *p = arg;
    char buf[512], subject[64];
    snprintf(subject, sizeof subject, "bench.errors.error.bench-%d", p->id);
    for (long i = 0; i < p->events; i++) {
        int n = format_event(buf, sizeof buf, p->id, i, false);
        natsConnection_Publish(p->conn, subject, buf, n);
    }
    natsConnection_FlushTimeout(p->conn, 10000);
    return NULL;
}

static long count_nats(void *arg)
{
    (void)arg;
    return atomic_load(&nats_received);
}

static int run_nats(const char *url, int npub, long events)
{
    natsConnection *sub_conn = NULL;
    natsSubscription *sub = NULL;
    if (natsConnection_ConnectTo(&sub_conn, url) != NATS_OK
        || natsConnection_Subscribe(&sub, sub_conn, "bench.errors.>", on_msg, NULL) != NATS_OK) {
        fprintf(stderr, "errorbus bench: cannot subscribe at %s\n", url);
        return 1;
    }
    natsSubscription_SetPendingLimits(sub, 100000000, 2000000000);
    natsConnection_Flush(sub_conn);
    publisher_t *pubs = calloc((size_t)npub, sizeof *pubs);
    pthread_t *threads = calloc((size_t)npub, sizeof *threads);
    long share = events / npub;
    events = share * npub;
    for (int i = 0; i < npub; i++) {
        pubs[i].id = i;
        pubs[i].events = share;
        natsConnection_ConnectTo(&pubs[i].conn, url);
    }
    atomic_store(&nats_received, 0);
    double t0 = clock_mono();
    for (int i = 0; i < npub; i++)
        pthread_create(&threads[i], NULL, nats_publisher, &pubs[i]);
    for (int i = 0; i < npub; i++)
        pthread_join(threads[i], NULL);
    double sent = clock_mono();
    double done_at;
    long got = wait_done(count_nats, NULL, 0, events, &done_at);
    double elapsed = done_at - t0;
    printf("{\"mode\":\"nats\",\"publishers\":%d,\"events\":%ld,\"stored\":%ld,\"lost\":%ld,"
           "\"send_s\":%.3f,\"elapsed_s\":%.3f,\"rate\":%.0f}\n", npub, events, got,
           events - got, sent - t0, elapsed, got / elapsed);
    for (int i = 0; i < npub; i++)
        natsConnection_Destroy(pubs[i].conn);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(sub_conn);
    free(pubs);
    free(threads);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 6 && !strcmp(argv[1], "zmq"))
        return run_zmq(argv[2], argv[3], atoi(argv[4]), atol(argv[5]));
    if (argc == 5 && !strcmp(argv[1], "nats"))
        return run_nats(argv[2], atoi(argv[3]), atol(argv[4]));
    fprintf(stderr, "usage: errorbus zmq INGRESS QUERY PUBLISHERS EVENTS\n"
                    "       errorbus nats NATS_URL PUBLISHERS EVENTS\n");
    return 2;
}
