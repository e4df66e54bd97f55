/*  reqload: N REQ clients driven by one thread, each with one request in
 *  flight, for a fixed time: the load every ZMQ request bench applies
 *  (bench/ping, bench/core_registry, bench/security_bench).
 *
 *  Like redis-benchmark, one thread serves every client from one epoll
 *  loop, and each client speaks ZMTP itself (zmtp.h): a thread per client,
 *  or libzmq's I/O thread beside each, would spend the shared CPUs on
 *  context switches and hand-offs that the server under test then lacks.
 *  Every latency is kept and sorted once at the end, so the percentiles
 *  are exact. */
#ifndef KEEL_BENCH_REQLOAD_H
#define KEEL_BENCH_REQLOAD_H
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *endpoint;
    int clients;
    double warmup;          /* seconds of requests before the window, not measured */
    double seconds;         /* the window */
    int server_pid;         /* > 0: the server's CPU over the window is measured */
    /* Writes client `client`'s request number `seq` into buf (cap bytes);
     * returns its length. */
    size_t (*make)(void *arg, int client, long seq, char *buf, size_t cap);
    /* Whether a reply is what the bench counts as answered; NULL: any reply. */
    bool (*check)(void *arg, const char *reply, size_t size);
    void *arg;
} reqload_t;

typedef struct {
    long answered;          /* replies in the window that `check` accepted */
    long refused;           /* replies in the window that it did not */
    long failures;          /* clients that could not connect, or lost their connection */
    double seconds;         /* the window as it was: to the last reply */
    double p50_s, p99_s;    /* latencies of every reply in the window */
    double server_cpu_s;    /* the server's user and system CPU over the window, or -1 */
} reqload_result_t;

/* Connects the clients, sends requests for `warmup` seconds unmeasured,
 * then for `seconds` measured.  Returns false when a client failed
 * (out->failures says how many). */
bool reqload_run(const reqload_t *load, reqload_result_t *out);
/* The server CPU one reply of the window cost, in microseconds, or -1. */
double reqload_cpu_us(const reqload_result_t *r);
#endif
