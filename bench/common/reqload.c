/*  reqload: see reqload.h.  The server's CPU is read from /proc at the
 *  window's two ends, so neither the clients (which share the machine) nor
 *  the warm-up count. */
#include "reqload.h"
#include "clock.h"
#include "procstat.h"
#include "zmtp.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_REQUEST 4096

typedef struct {
    double *at;
    size_t n, cap;
} latencies_t;

static void record(latencies_t *l, double seconds)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 65536;
        l->at = realloc(l->at, l->cap * sizeof *l->at);
    }
    l->at[l->n++] = seconds;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sends client i's next request: an empty delimiter, then the request. */
static bool send_request(zmtp_t *client, const reqload_t *load, int i, long seq)
{
    char request[MAX_REQUEST];
    const char *frames[2] = { "", request };
    size_t sizes[2] = { 0, load->make(load->arg, i, seq, request, sizeof request) };
    return zmtp_queue(client, frames, sizes, 2) && zmtp_flush(client) >= 0;
}

bool reqload_run(const reqload_t *load, reqload_result_t *out)
{
    int clients = load->clients;
    *out = (reqload_result_t){ .server_cpu_s = -1 };
    zmtp_t **client = calloc((size_t)clients, sizeof *client);
    double *sent = calloc((size_t)clients, sizeof *sent);
    long *seq = calloc((size_t)clients, sizeof *seq);
    latencies_t lat = { 0 };
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < clients && !out->failures; i++) {
        client[i] = zmtp_new(load->endpoint, "REQ", 5000);
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        if (!client[i] || epoll_ctl(ep, EPOLL_CTL_ADD, zmtp_fd(client[i]), &ev) != 0)
            out->failures++;
    }
    double start = clock_mono() + load->warmup, stop = start + load->seconds, opened = 0;
    double cpu0 = -1;
    for (int i = 0; i < clients && !out->failures; i++) {
        sent[i] = clock_mono();
        if (!send_request(client[i], load, i, seq[i]++))
            out->failures++;
    }
    int busy = out->failures ? 0 : clients;
    struct epoll_event events[64];
    while (busy > 0 && !out->failures) {
        int ready = epoll_wait(ep, events, 64, 5000);
        if (ready <= 0) {
            out->failures++;            /* five seconds without a reply */
            break;
        }
        double now = clock_mono();
        if (!opened && now >= start) {
            opened = now;
            cpu0 = procstat_cpu_seconds(load->server_pid);
        }
        for (int k = 0; k < ready; k++) {
            int i = (int)events[k].data.u32;
            const char *reply;
            size_t size;
            if (zmtp_fill(client[i]) < 0) {
                out->failures++;
                continue;
            }
            if (!zmtp_take(client[i], &reply, &size))
                continue;
            if (sent[i] >= start) {
                record(&lat, now - sent[i]);
                if (!load->check || load->check(load->arg, reply, size))
                    out->answered++;
                else
                    out->refused++;
            }
            if (now >= stop) {
                epoll_ctl(ep, EPOLL_CTL_DEL, zmtp_fd(client[i]), NULL);
                busy--;                 /* this client is done */
                continue;
            }
            sent[i] = now;
            if (!send_request(client[i], load, i, seq[i]++))
                out->failures++;
        }
        if (busy == 0) {
            double cpu1 = procstat_cpu_seconds(load->server_pid);
            out->seconds = now - opened;
            out->server_cpu_s = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
        }
    }
    if (lat.n) {
        qsort(lat.at, lat.n, sizeof *lat.at, by_value);
        out->p50_s = lat.at[lat.n / 2];
        out->p99_s = lat.at[(size_t)((double)lat.n * 0.99)];
    }
    for (int i = 0; i < clients; i++)
        zmtp_destroy(&client[i]);
    close(ep);
    free(lat.at);
    free(client);
    free(sent);
    free(seq);
    return out->failures == 0;
}

double reqload_cpu_us(const reqload_result_t *r)
{
    long replies = r->answered + r->refused;
    return r->server_cpu_s >= 0 && replies > 0 ? r->server_cpu_s * 1e6 / (double)replies : -1;
}
