/*  resource_bench: the ResourceManager+Scheduler benchmark client.
 *
 *    resource_bench tasks ENDPOINT PRODUCERS TOTAL
 *        PRODUCERS threads each send TOTAL/PRODUCERS schedule_task
 *        requests ("wait": false: the reply comes once the task is in the
 *        journal), then the run ends when the service's task statistics
 *        show every task completed.  Prints tasks per second.
 *    resource_bench beanstalk HOST PORT PRODUCERS TOTAL
 *        The same shape against beanstalkd: PRODUCERS threads `put`, as
 *        many consumers `reserve` and `delete`, over the text protocol.
 *    resource_bench alloc ENDPOINT LIVE SAMPLES
 *        Fills LIVE reservations, then times SAMPLES allocate_resources
 *        calls (each released again, so LIVE stay live): mean, p50, p99.
 *
 *  One line of "key value" pairs per run, for bench/resource.sh to tabulate.
 *  schedule_task and the allocation actions are an administrator's routes:
 *  with KEEL_DATA_DIR set to the keeld's data directory, every request
 *  carries a token signed with its key file. */
#include "clock.h"
#include "token.h"
#include "wire.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    const char *endpoint, *host;
    int port, index, count;
    atomic_int *failures;
    pthread_t thread;
} job_t;

static char *admin_token;       /* NULL without KEEL_DATA_DIR */

static json_t *call(wire_client_t *client, json_t *request)
{
    char err[256];
    if (admin_token)
        json_object_set_new(request, "auth_token", json_string(admin_token));
    json_t *reply = wire_client_call(client, request, err, sizeof err);
    json_decref(request);
    if (!reply)
        fprintf(stderr, "resource_bench: %s\n", err);
    return reply;
}

/* ---- tasks through Keel ------------------------------------------------ */

static void *produce(void *arg)
{
    job_t *job = arg;
    wire_client_t *client = wire_client_new(job->endpoint, 10000, 0);
    for (int i = 0; i < job->count; i++) {
        json_t *reply = call(client, json_pack("{s:s, s:s, s:{s:i, s:i}, s:b}", "action", "schedule_task",
                                               "type", "logging", "data", "producer", job->index,
                                               "n", i, "wait", 0));
        const char *status = json_string_value(json_object_get(reply, "status"));
        if (!status || strcmp(status, "success"))
            atomic_fetch_add(job->failures, 1);
        json_decref(reply);
    }
    wire_client_destroy(&client);
    return NULL;
}

static long completed(wire_client_t *client)
{
    json_t *reply = call(client, json_pack("{s:s}", "action", "health_check"));
    json_t *stats = json_object_get(json_object_get(json_object_get(reply, "queue_stats"),
                                                    "task_stats"), "logging");
    long done = (long)(json_integer_value(json_object_get(stats, "success"))
                       + json_integer_value(json_object_get(stats, "failed")));
    json_decref(reply);
    return done;
}

static int run_tasks(const char *endpoint, int producers, int total)
{
    wire_client_t *probe = wire_client_new(endpoint, 10000, 0);
    long before = completed(probe);
    atomic_int failures = 0;
    job_t *jobs = calloc((size_t)producers, sizeof *jobs);
    double t0 = clock_mono();
    for (int p = 0; p < producers; p++) {
        jobs[p] = (job_t){ .endpoint = endpoint, .index = p, .count = total / producers,
                           .failures = &failures };
        pthread_create(&jobs[p].thread, NULL, produce, &jobs[p]);
    }
    for (int p = 0; p < producers; p++)
        pthread_join(jobs[p].thread, NULL);
    double enqueued = clock_mono() - t0;
    long want = before + (long)(total / producers) * producers - atomic_load(&failures);
    while (completed(probe) < want && clock_mono() - t0 < 300)
        usleep(1000);
    double elapsed = clock_mono() - t0;
    printf("tasks producers %d total %d failures %d enqueue_s %.3f elapsed_s %.3f rate %.0f\n",
           producers, (total / producers) * producers, atomic_load(&failures), enqueued, elapsed,
           (double)want / elapsed - (double)before / elapsed);
    wire_client_destroy(&probe);
    free(jobs);
    return atomic_load(&failures) ? 1 : 0;
}

/* ---- the same through beanstalkd ---------------------------------------- */

static int dial(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, host, &addr.sin_addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads one "\r\n"-terminated line (and nothing past it). */
static int read_line(int fd, char *buf, size_t len)
{
    size_t n = 0;
    while (n + 1 < len) {
        if (read(fd, buf + n, 1) != 1)
            return -1;
        if (++n >= 2 && buf[n - 2] == '\r' && buf[n - 1] == '\n') {
            buf[n - 2] = '\0';
            return 0;
        }
    }
    return -1;
}

static int read_exact(int fd, char *buf, size_t len)
{
    for (size_t got = 0; got < len;) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static void *bs_produce(void *arg)
{
    job_t *job = arg;
    int fd = dial(job->host, job->port);
    char body[128], line[256], out[256];
    for (int i = 0; fd >= 0 && i < job->count; i++) {
        int blen = snprintf(body, sizeof body, "{\"type\":\"logging\",\"data\":{\"producer\":%d,\"n\":%d}}",
                            job->index, i);
        int olen = snprintf(out, sizeof out, "put 0 0 60 %d\r\n%s\r\n", blen, body);
        if (write(fd, out, (size_t)olen) != olen || read_line(fd, line, sizeof line) < 0
            || strncmp(line, "INSERTED", 8))
            atomic_fetch_add(job->failures, 1);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void *bs_consume(void *arg)
{
    job_t *job = arg;
    int fd = dial(job->host, job->port);
    char line[256], body[512], out[64];
    for (int i = 0; fd >= 0 && i < job->count; i++) {
        unsigned long id;
        unsigned int bytes;
        if (write(fd, "reserve\r\n", 9) != 9 || read_line(fd, line, sizeof line) < 0
            || sscanf(line, "RESERVED %lu %u", &id, &bytes) != 2 || bytes + 2 > sizeof body
            || read_exact(fd, body, bytes + 2) < 0) {
            atomic_fetch_add(job->failures, 1);
            break;
        }
        int olen = snprintf(out, sizeof out, "delete %lu\r\n", id);
        if (write(fd, out, (size_t)olen) != olen || read_line(fd, line, sizeof line) < 0
            || strcmp(line, "DELETED"))
            atomic_fetch_add(job->failures, 1);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static int run_beanstalk(const char *host, int port, int producers, int total)
{
    atomic_int failures = 0;
    int per = total / producers;
    job_t *jobs = calloc((size_t)producers * 2, sizeof *jobs);
    double t0 = clock_mono();
    for (int p = 0; p < producers * 2; p++) {
        jobs[p] = (job_t){ .host = host, .port = port, .index = p, .count = per, .failures = &failures };
        pthread_create(&jobs[p].thread, NULL, p < producers ? bs_produce : bs_consume, &jobs[p]);
    }
    for (int p = 0; p < producers * 2; p++)
        pthread_join(jobs[p].thread, NULL);
    double elapsed = clock_mono() - t0;
    printf("beanstalk producers %d total %d failures %d elapsed_s %.3f rate %.0f\n", producers,
           per * producers, atomic_load(&failures), elapsed, (double)(per * producers) / elapsed);
    free(jobs);
    return atomic_load(&failures) ? 1 : 0;
}

/* ---- allocate_resources latency ---------------------------------------- */

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static bool allocate(wire_client_t *client, const char *id)
{
    json_t *reply = call(client, json_pack("{s:s, s:s, s:s, s:f}", "action", "allocate_resources",
                                           "resource_id", id, "resource_type", "memory",
                                           "amount", 0.001));
    const char *status = json_string_value(json_object_get(reply, "status"));
    bool ok = status && !strcmp(status, "success");
    json_decref(reply);
    return ok;
}

static int run_alloc(const char *endpoint, int live, int samples)
{
    wire_client_t *client = wire_client_new(endpoint, 10000, 0);
    json_decref(call(client, json_pack("{s:s, s:f, s:f, s:f}", "action", "set_thresholds",
                                       "cpu_threshold", 1000.0, "memory_threshold", 1000.0,
                                       "gpu_threshold", 1000.0)));
    char id[64];
    int failures = 0;
    for (int i = 0; i < live; i++) {
        snprintf(id, sizeof id, "live-%d", i);
        failures += !allocate(client, id);
    }
    double *lat = calloc((size_t)samples, sizeof *lat), sum = 0;
    for (int i = 0; i < samples; i++) {
        snprintf(id, sizeof id, "probe-%d", i);
        double t0 = clock_mono();
        failures += !allocate(client, id);
        lat[i] = (clock_mono() - t0) * 1e6;
        sum += lat[i];
        json_decref(call(client, json_pack("{s:s, s:s}", "action", "release_resources",
                                           "resource_id", id)));
    }
    qsort(lat, (size_t)samples, sizeof *lat, by_value);
    printf("alloc live %d samples %d failures %d mean_us %.0f p50_us %.0f p99_us %.0f\n", live,
           samples, failures, sum / samples, lat[samples / 2], lat[(samples * 99) / 100]);
    free(lat);
    wire_client_destroy(&client);
    return failures ? 1 : 0;
}

static void sign_token(void)
{
    const char *dir = getenv("KEEL_DATA_DIR");
    if (!dir || !*dir)
        return;
    config_t *config = config_new();
    char err[256];
    if (config_set(config, "data_dir", dir, err, sizeof err) == 0)
        admin_token = token_issue_service(config, "resource_bench", 3600);
    config_destroy(&config);
}

int main(int argc, char **argv)
{
    sign_token();
    int rc = 2;
    if (argc == 5 && !strcmp(argv[1], "tasks"))
        rc = run_tasks(argv[2], atoi(argv[3]), atoi(argv[4]));
    else if (argc == 6 && !strcmp(argv[1], "beanstalk"))
        rc = run_beanstalk(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
    else if (argc == 5 && !strcmp(argv[1], "alloc"))
        rc = run_alloc(argv[2], atoi(argv[3]), atoi(argv[4]));
    else
        fprintf(stderr, "usage: resource_bench tasks ENDPOINT PRODUCERS TOTAL\n"
                        "       resource_bench beanstalk HOST PORT PRODUCERS TOTAL\n"
                        "       resource_bench alloc ENDPOINT LIVE SAMPLES\n");
    free(admin_token);
    return rc;
}
