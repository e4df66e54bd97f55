/*  ping: N concurrent REQ clients sending {"action":"ping"} back to back
 *  for D seconds, as many agents polling one service would.  Prints
 *  requests/s, p50/p99 latency and, given the server's PID, the server CPU
 *  each ping cost, on one line of key=value pairs, for bench/ping.sh to put
 *  beside redis-benchmark.  The clients are
 *  common/reqload.h's: one thread, ZMTP spoken directly, as
 *  redis-benchmark drives its clients.
 *
 *  usage: ping ENDPOINT [CLIENTS [SECONDS [SERVER_PID]]] */
#include "common/reqload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char request[] = "{\"action\":\"ping\"}";

static size_t make_ping(void *arg, int client, long seq, char *buf, size_t cap)
{
    (void)arg, (void)client, (void)seq, (void)cap;
    memcpy(buf, request, sizeof request - 1);
    return sizeof request - 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: ping ENDPOINT [CLIENTS [SECONDS [SERVER_PID]]]\n");
        return 2;
    }
    int clients = argc > 2 ? atoi(argv[2]) : 1;
    double seconds = argc > 3 ? atof(argv[3]) : 3;
    if (clients < 1 || seconds <= 0) {
        fprintf(stderr, "ping: CLIENTS and SECONDS must be positive\n");
        return 2;
    }
    reqload_t pings = { .endpoint = argv[1], .clients = clients, .warmup = 0.5, .seconds = seconds,
                        .server_pid = argc > 4 ? atoi(argv[4]) : 0, .make = make_ping };
    reqload_result_t r;
    bool ok = reqload_run(&pings, &r);
    printf("clients=%d requests=%ld seconds=%.2f rps=%.0f p50_ms=%.3f p99_ms=%.3f cpu_us=%.1f errors=%ld\n",
           clients, r.answered, r.seconds, (double)r.answered / r.seconds, r.p50_s * 1e3,
           r.p99_s * 1e3, reqload_cpu_us(&r), r.failures);
    return ok ? 0 : 1;
}
