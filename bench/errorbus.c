/*  errorbus bench: events per second ingested *and durably stored* by the
 *  ErrorBus, from P publishers at once, beside the same event stream
 *  through nats-server (publisher -> server -> subscriber) as a reference.
 *
 *    errorbus zmq  INGRESS_ENDPOINT QUERY_ENDPOINT PUBLISHERS EVENTS
 *    errorbus nats NATS_URL PUBLISHERS EVENTS
 *
 *  zmq: each publisher is a thread with a PUB connection of its own to the
 *  bus's ingress (common/zmtp.h: the protocol spoken directly and written
 *  64 kB at a time, as a tuned client would, so the publishers take as
 *  little of the shared CPUs as they can), sending F1 frames `ERROR:{json}`
 *  shaped like an agent's report.  A full socket makes a publisher wait,
 *  so no event is lost inside it.  The clock runs from the first send until the
 *  bus's stored counter (events committed to SQLite, from the health
 *  action) has grown by EVENTS, or stops growing for 3 s; lost = EVENTS
 *  minus what was stored.
 *  nats: P connections publish the same payloads to one subscriber; the
 *  clock runs until the subscriber has them all (or stalls for 3 s).
 *  Prints one JSON line per run. */
#include "clock.h"
#include "common/zmtp.h"
#include "wire.h"

#include <jansson.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int id;
    long events;
    const char *target;
    zmtp_t *peer;
    natsConnection *conn;
    bool failed;
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
    const char *frames[1] = { buf };
    size_t queued = 0;
    for (long i = 0; i < p->events && !p->failed; i++) {
        size_t n = (size_t)format_event(buf, sizeof buf, p->id, i, true);
        p->failed = !zmtp_queue(p->peer, frames, &n, 1);
        queued += n;
        if (queued >= 65536) {
            p->failed = p->failed || !zmtp_flush_all(p->peer, 5000);
            queued = 0;
        }
    }
    p->failed = p->failed || !zmtp_flush_all(p->peer, 5000);
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
    bool connected = true;
    for (int i = 0; i < npub; i++) {
        pubs[i].id = i;
        pubs[i].events = share;
        pubs[i].peer = zmtp_new(ingress, "PUB", 5000);
        connected = connected && pubs[i].peer;
    }
    long base = connected ? stored_count(query) : -1;
    if (base < 0) {
        fprintf(stderr, "errorbus bench: no answer from %s\n", connected ? endpoint : ingress);
        for (int i = 0; i < npub; i++)
            zmtp_destroy(&pubs[i].peer);
        wire_client_destroy(&query);
        free(pubs);
        free(threads);
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
    bool failed = false;
    for (int i = 0; i < npub; i++) {
        failed = failed || pubs[i].failed;
        zmtp_destroy(&pubs[i].peer);
    }
    wire_client_destroy(&query);
    free(pubs);
    free(threads);
    if (failed)
        fprintf(stderr, "errorbus bench: a publisher could not write all its events\n");
    return failed ? 1 : 0;
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
