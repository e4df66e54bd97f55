/*  core_registry: requests per second of CoreOrchestrator's register_agent
 *  and get_agent_endpoint with N concurrent REQ clients (common/reqload.h:
 *  one thread, ZMTP spoken directly, as redis-benchmark drives its
 *  clients), for a fixed time.
 *
 *    core_registry ENDPOINT register|lookup CLIENTS SECONDS [SERVER_PID]
 *
 *  Prints one line: "<op> <clients> <requests> <seconds> <req/s> <errors>
 *  <p50_ms> <p99_ms> <server CPU us per request, or -1>", the latencies
 *  exact.  Each client registers, or
 *  looks up, 16 agents of its own in turn; lookups ask for agents the run
 *  registers first, so every reply is a hit. */
#include "common/reqload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t make_registration(void *arg, int client, long seq, char *buf, size_t cap)
{
    (void)arg;
    int n = snprintf(buf, cap, "{\"action\":\"register_agent\",\"agent_id\":\"bench-%d-%ld\","
                     "\"agent_type\":\"bench\",\"host\":\"127.0.0.1\",\"port\":%ld}",
                     client, seq % 16, 20000 + seq % 16);
    return (size_t)n;
}

static size_t make_lookup(void *arg, int client, long seq, char *buf, size_t cap)
{
    (void)arg;
    int n = snprintf(buf, cap, "{\"action\":\"get_agent_endpoint\",\"agent_name\":\"bench-%d-%ld\"}",
                     client, seq % 16);
    return (size_t)n;
}

static bool succeeded(void *arg, const char *reply, size_t size)
{
    (void)arg;
    return memmem(reply, size, "\"success\"", 9) != NULL;
}

int main(int argc, char **argv)
{
    if ((argc != 5 && argc != 6) || (strcmp(argv[2], "register") && strcmp(argv[2], "lookup"))) {
        fprintf(stderr, "usage: core_registry ENDPOINT register|lookup CLIENTS SECONDS [SERVER_PID]\n");
        return 2;
    }
    bool lookup = !strcmp(argv[2], "lookup");
    reqload_t load = { .endpoint = argv[1], .clients = atoi(argv[3]), .seconds = 0.3,
                       .make = make_registration, .check = succeeded };
    reqload_result_t r;
    /* the agents looked up: 0.3 s of registrations is 16 each many times over */
    if (lookup && !reqload_run(&load, &r)) {
        fprintf(stderr, "core_registry: the registrations before the lookups failed\n");
        return 1;
    }
    load.warmup = 0.3;
    load.seconds = atof(argv[4]);
    load.server_pid = argc > 5 ? atoi(argv[5]) : 0;
    if (lookup)
        load.make = make_lookup;
    bool ok = reqload_run(&load, &r);
    long errors = r.refused + r.failures;
    printf("%s %d %ld %.2f %.0f %ld %.3f %.3f %.1f\n", argv[2], load.clients, r.answered, r.seconds,
           (double)r.answered / r.seconds, errors, r.p50_s * 1e3, r.p99_s * 1e3, reqload_cpu_us(&r));
    return ok && !errors ? 0 : 1;
}
