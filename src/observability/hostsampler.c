/*  hostsampler: see hostsampler.h.  The first reading primes the CPU counters, so
 *  it is taken in hostsampler_new and a ticker (actor.h) keeps the rest
 *  fresh from one interval later. */
#include "hostsampler.h"
#include "actor.h"
#include "clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hostsampler_t {
    sysstat_t *stat;
    char *disk_path;
    actor_t *ticker;
    pthread_mutex_t lock;
    bool ok;
    sysstat_sample_t latest;
};

static void take(void *arg)
{
    hostsampler_t *self = arg;
    sysstat_sample_t sample;
    int rc = sysstat_sample(self->stat, self->disk_path, &sample);
    pthread_mutex_lock(&self->lock);
    self->ok = rc == 0;
    if (rc == 0)
        self->latest = sample;
    pthread_mutex_unlock(&self->lock);
}

hostsampler_t *hostsampler_new(const char *proc_root, const char *disk_path, double interval_s)
{
    hostsampler_t *self = calloc(1, sizeof *self);
    self->stat = sysstat_new(proc_root);
    self->disk_path = strdup(disk_path);
    pthread_mutex_init(&self->lock, NULL);
    take(self);
    self->ticker = actor_new("obs hostsampler", interval_s > 0.05 ? interval_s : 0.05, take, self);
    actor_delay_first(self->ticker);
    return self;
}

int hostsampler_start(hostsampler_t *self)
{
    return actor_start(self->ticker);
}

void hostsampler_destroy(hostsampler_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hostsampler_t *self = *self_p;
    actor_destroy(&self->ticker);
    sysstat_destroy(&self->stat);
    pthread_mutex_destroy(&self->lock);
    free(self->disk_path);
    free(self);
    *self_p = NULL;
}

bool hostsampler_latest(hostsampler_t *self, sysstat_sample_t *out, char *err, size_t errlen)
{
    pthread_mutex_lock(&self->lock);
    bool ok = self->ok;
    if (ok)
        *out = self->latest;
    pthread_mutex_unlock(&self->lock);
    if (!ok) {
        memset(out, 0, sizeof *out);
        if (err)
            snprintf(err, errlen, "cannot read system statistics");
    }
    return ok;
}

json_t *hostsampler_system_metrics(hostsampler_t *self)
{
    sysstat_sample_t s;
    char err[128];
    json_t *dict = json_pack("{s:f}", "timestamp", clock_wall());
    if (!hostsampler_latest(self, &s, err, sizeof err)) {
        json_object_set_new(dict, "cpu_percent", json_integer(0));
        json_object_set_new(dict, "memory", json_pack("{s:s}", "error", err));
        json_object_set_new(dict, "disk", json_pack("{s:s}", "error", err));
        json_object_set_new(dict, "network", json_pack("{s:s}", "error", err));
        return dict;
    }
    json_object_set_new(dict, "cpu_percent", json_real(s.cpu_percent));
    json_object_set_new(dict, "memory", json_pack("{s:I, s:I, s:I, s:I, s:f}",
        "total", (json_int_t)s.mem_total_bytes, "available", (json_int_t)s.mem_available_bytes,
        "used", (json_int_t)s.mem_used_bytes,
        "free", (json_int_t)(s.mem_total_bytes - s.mem_used_bytes), "percent", s.mem_percent));
    json_t *disk = json_object();
    json_object_set_new(disk, self->disk_path, json_pack("{s:I, s:I, s:I, s:f}",
        "total", (json_int_t)s.disk_total_bytes,
        "used", (json_int_t)(s.disk_total_bytes - s.disk_free_bytes),
        "free", (json_int_t)s.disk_free_bytes, "percent", s.disk_percent));
    json_object_set_new(dict, "disk", disk);
    json_object_set_new(dict, "network", json_pack("{s:I, s:I}",
        "bytes_sent", (json_int_t)s.net_tx_bytes, "bytes_recv", (json_int_t)s.net_rx_bytes));
    return dict;
}
