/*  security_bench: token validations per second over ZMQ (session tokens
 *  and JWTs, 1 and 8 clients, each a REQ socket as the agents use) and the
 *  cost of one login with the service's Argon2id parameters.  With
 *  KEEL_PID set to the service's process, each row also gives the server
 *  CPU one validation cost (from /proc, so the clients' CPU is left out).
 *
 *  usage: security_bench ENDPOINT USER PASSWORD [SECONDS]
 *  The user must be an administrator (to be issued a JWT). */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "wire.h"
#include "zsocket.h"

typedef struct {
    const char *endpoint;
    const char *frame;
    double seconds;
    long done, failed;
} job_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *client_main(void *arg)
{
    job_t *job = arg;
    void *req = zsocket_new(ZMQ_REQ, ZSOCKET_CLIENT, 0);
    if (!req)
        return NULL;
    zmq_connect(req, job->endpoint);
    size_t len = strlen(job->frame);
    char reply[512];
    double end = now_s() + job->seconds;
    while (now_s() < end) {
        if (zmq_send(req, job->frame, len, 0) < 0)
            break;
        int n = zmq_recv(req, reply, sizeof reply - 1, 0);
        if (n < 0)
            break;
        reply[n < (int)sizeof reply - 1 ? n : (int)sizeof reply - 1] = '\0';
        if (strstr(reply, "\"valid\":true"))
            job->done++;
        else
            job->failed++;
    }
    zmq_close(req);
    return NULL;
}

/* Validations per second with `clients` parallel REQ sockets. */
static double run(const char *endpoint, const char *token, int clients, double seconds, long *failed)
{
    char frame[4096];
    snprintf(frame, sizeof frame, "{\"action\":\"validate_token\",\"token\":\"%s\"}", token);
    job_t jobs[64];
    pthread_t threads[64];
    double start = now_s();
    for (int i = 0; i < clients; i++) {
        jobs[i] = (job_t){ endpoint, frame, seconds, 0, 0 };
        pthread_create(&threads[i], NULL, client_main, &jobs[i]);
    }
    long done = 0;
    *failed = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(threads[i], NULL);
        done += jobs[i].done;
        *failed += jobs[i].failed;
    }
    return (double)done / (now_s() - start);
}

/* CPU seconds the process has used so far, or -1 when unknown. */
static double cpu_of(const char *pid)
{
    if (!pid)
        return -1;
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *p = strrchr(text, ')');
    unsigned long long utime, stime;
    /* after ") ": state, then fields 4..13 before utime (14) and stime (15) */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
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
        double t0 = now_s();
        json_t *r = call(endpoint, json_pack("{s:s, s:s, s:s}", "action", "login", "user_id", argv[2],
                                             "password", argv[3]));
        login_total += now_s() - t0;
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
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < 2; c++) {
            long failed;
            double cpu0 = cpu_of(pid), started = now_s();
            double rate = run(endpoint, tokens[k], counts[c], seconds, &failed);
            double cpu1 = cpu_of(pid), done = rate * (now_s() - started);
            double cpu_us = cpu0 >= 0 && cpu1 >= 0 && done > 0 ? (cpu1 - cpu0) * 1e6 / done : 0;
            printf("%-16s %8d %14.0f %8ld %12.1f\n", kinds[k], counts[c], rate, failed, cpu_us);
        }
    printf("\nlogin (Argon2id, service parameters): %.1f ms mean over %d sequential logins\n",
           login_total / logins * 1000, logins);
    free(jwt);
    return 0;
}
