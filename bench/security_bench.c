/*  security_bench: token validations per second over ZMQ (session tokens
 *  and JWTs, 1 and 8 REQ clients, common/reqload.h's: one thread, ZMTP
 *  spoken directly, as redis-benchmark drives its clients) and the
 *  cost of one login with the service's Argon2id parameters.  With
 *  KEEL_PID set to the service's process, each row also gives the server
 *  CPU one validation cost (from /proc, so the clients' CPU is left out).
 *
 *  usage: security_bench ENDPOINT USER PASSWORD [SECONDS]
 *  The user must be an administrator (to be issued a JWT). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "common/reqload.h"
#include "wire.h"

static size_t make_validation(void *arg, int client, long seq, char *buf, size_t cap)
{
    (void)client, (void)seq;
    int n = snprintf(buf, cap, "{\"action\":\"validate_token\",\"token\":\"%s\"}", (const char *)arg);
    return (size_t)n;
}

static bool valid(void *arg, const char *reply, size_t size)
{
    (void)arg;
    return memmem(reply, size, "\"valid\":true", 12) != NULL;
}

static json_t *call(const char *endpoint, json_t *request)
{
    char err[256];
    json_t *reply = wire_call(endpoint, request, 30000, 0, err, sizeof err);
    json_decref(request);
    if (!reply)
        fprintf(stderr, "security_bench: %s\n", err);
    return reply;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: security_bench ENDPOINT USER PASSWORD [SECONDS]\n");
        return 2;
    }
    const char *endpoint = argv[1];
    double seconds = argc > 4 ? atof(argv[4]) : 3.0;
    double login_total = 0;
    int logins = 10;
    char session[65] = "";
    for (int i = 0; i < logins; i++) {
        double t0 = clock_mono();
        json_t *r = call(endpoint, json_pack("{s:s, s:s, s:s}", "action", "login", "user_id", argv[2],
                                             "password", argv[3]));
        login_total += clock_mono() - t0;
        const char *t = json_string_value(json_object_get(json_object_get(r, "session"), "token"));
        if (!t) {
            fprintf(stderr, "security_bench: login failed\n");
            json_decref(r);
            return 1;
        }
        snprintf(session, sizeof session, "%s", t);
        json_decref(r);
    }
    json_t *r = call(endpoint, json_pack("{s:s, s:s, s:s, s:[s], s:i}", "action", "issue_token", "auth_token",
                                         session, "subject", "bench", "scopes", "admin", "ttl_s", 3600));
    const char *jwt_text = json_string_value(json_object_get(r, "token"));
    if (!jwt_text) {
        fprintf(stderr, "security_bench: issue_token failed\n");
        json_decref(r);
        return 1;
    }
    char *jwt = strdup(jwt_text);
    json_decref(r);
    const char *pid = getenv("KEEL_PID");
    printf("%-16s %8s %14s %8s %12s\n", "token", "clients", "validations/s", "failed", "cpu_us");
    const char *kinds[2] = { "session", "jwt" };
    const char *tokens[2] = { session, jwt };
    int counts[2] = { 1, 8 };
    int failures = 0;
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < 2; c++) {
            reqload_t load = { .endpoint = endpoint, .clients = counts[c], .warmup = 0.3,
                               .seconds = seconds, .server_pid = pid ? atoi(pid) : 0,
                               .make = make_validation, .check = valid, .arg = (void *)tokens[k] };
            reqload_result_t r;
            failures += !reqload_run(&load, &r);
            double cpu_us = reqload_cpu_us(&r);
            printf("%-16s %8d %14.0f %8ld %12.1f\n", kinds[k], counts[c], (double)r.answered / r.seconds,
                   r.refused + r.failures, cpu_us > 0 ? cpu_us : 0);
        }
    printf("\nlogin (Argon2id, service parameters): %.1f ms mean over %d sequential logins\n",
           login_total / logins * 1000, logins);
    free(jwt);
    return failures ? 1 : 0;
}
