/*  stats: see stats.h.  The first sample after start reports 0.0 CPU, as
 *  psutil's first non-blocking cpu_percent() did: there is no previous
 *  reading to measure against. */
#include "stats.h"
#include "clock.h"
#include "ring.h"
#include "sysstat.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY 100

struct stats_t {
    pthread_mutex_t lock;
    sysstat_t *sys;
    gpu_t *gpu;
    double cache_s;
    double last_mono;
    stats_sample_t last;
    bool have_last;
    uint64_t taken;
    ring_t *cpu_history, *memory_history;
};

stats_t *stats_new(const char *proc_root, gpu_t *gpu, double cache_s)
{
    stats_t *self = calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    self->sys = sysstat_new(proc_root);
    self->gpu = gpu;
    self->cache_s = cache_s;
    self->cpu_history = ring_new(HISTORY);
    self->memory_history = ring_new(HISTORY);
    sysstat_sample_t prime;
    sysstat_sample(self->sys, NULL, &prime);
    return self;
}

void stats_destroy(stats_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    stats_t *self = *self_p;
    sysstat_destroy(&self->sys);
    ring_destroy(&self->cpu_history);
    ring_destroy(&self->memory_history);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

double stats_round1(double value)
{
    return round(value * 10.0) / 10.0;
}

static void read_gpus(gpu_t *gpu, stats_sample_t *out)
{
    int n = gpu && gpu_available(gpu) ? gpu_count(gpu) : 0;
    if (n > STATS_MAX_GPUS)
        n = STATS_MAX_GPUS;
    out->ngpu = 0;
    for (int i = 0; i < n; i++)
        if (gpu_device(gpu, i, &out->gpus[out->ngpu]) == 0)
            out->ngpu++;
}

int stats_sample(stats_t *self, stats_sample_t *out)
{
    double now = clock_mono();
    pthread_mutex_lock(&self->lock);
    if (self->have_last && now - self->last_mono < self->cache_s) {
        *out = self->last;
        pthread_mutex_unlock(&self->lock);
        return 0;
    }
    sysstat_sample_t s;
    int rc = sysstat_sample(self->sys, "/", &s);
    memset(out, 0, sizeof *out);
    if (rc == 0) {
        out->cpu_percent = self->taken == 0 ? 0.0 : stats_round1(s.cpu_percent);
        out->memory_total = s.mem_total_bytes;
        out->memory_available = s.mem_available_bytes;
        out->memory_percent = s.mem_total_bytes
            ? stats_round1(100.0 * (double)(s.mem_total_bytes - s.mem_available_bytes)
                           / (double)s.mem_total_bytes)
            : 0.0;
        out->disk_usage = stats_round1(s.disk_percent);
        out->cpu_count = s.cpu_count > 0 ? s.cpu_count : 1;
    }
    out->wall = clock_wall();
    read_gpus(self->gpu, out);
    self->taken++;
    ring_push(self->cpu_history, out->wall, out->cpu_percent);
    ring_push(self->memory_history, out->wall, out->memory_percent);
    self->last = *out;
    self->last_mono = now;
    self->have_last = true;
    pthread_mutex_unlock(&self->lock);
    return rc == 0 ? 0 : -1;
}

uint64_t stats_taken(stats_t *self)
{
    pthread_mutex_lock(&self->lock);
    uint64_t taken = self->taken;
    pthread_mutex_unlock(&self->lock);
    return taken;
}

size_t stats_history(stats_t *self)
{
    pthread_mutex_lock(&self->lock);
    size_t n = ring_size(self->cpu_history);
    pthread_mutex_unlock(&self->lock);
    return n;
}

double stats_sample_gpu_percent(const stats_sample_t *sample)
{
    double worst = 0.0;
    for (int i = 0; i < sample->ngpu; i++)
        if (sample->gpus[i].mem_percent > worst)
            worst = sample->gpus[i].mem_percent;
    return stats_round1(worst);
}

json_t *stats_sample_json(const stats_sample_t *sample, const double *reserved_mb)
{
    char ts[40];
    clock_iso_local(sample->wall, ts, sizeof ts);
    json_t *stats = json_pack("{s:f, s:f, s:I, s:I, s:f, s:s, s:f}",
                              "cpu_percent", sample->cpu_percent,
                              "memory_percent", sample->memory_percent,
                              "memory_available", (json_int_t)sample->memory_available,
                              "memory_total", (json_int_t)sample->memory_total,
                              "disk_usage", sample->disk_usage,
                              "timestamp", ts,
                              "gpu_memory_percent", stats_sample_gpu_percent(sample));
    if (sample->ngpu == 0)
        return stats;
    uint64_t used = 0, reserved = 0;
    json_t *gpus = json_array();
    for (int i = 0; i < sample->ngpu; i++) {
        const gpu_device_t *d = &sample->gpus[i];
        double total_mb = (double)d->mem_total_bytes / STATS_MIB;
        double used_mb = (double)d->mem_used_bytes / STATS_MIB;
        double held = reserved_mb ? reserved_mb[i] : 0.0;
        double free_mb = total_mb - used_mb - held;
        used += d->mem_used_bytes;
        reserved += (uint64_t)(held * STATS_MIB);
        json_array_append_new(gpus, json_pack("{s:i, s:s, s:f, s:f, s:f, s:f, s:f, s:i}",
                                              "index", d->index, "name", d->name,
                                              "total_mb", total_mb, "used_mb", used_mb,
                                              "reserved_mb", held,
                                              "free_mb", free_mb > 0 ? free_mb : 0.0,
                                              "memory_percent", stats_round1(d->mem_percent),
                                              "utilization", d->util_gpu_percent));
    }
    json_object_set_new(stats, "gpu_memory_allocated", json_integer((json_int_t)used));
    json_object_set_new(stats, "gpu_memory_reserved", json_integer((json_int_t)reserved));
    json_object_set_new(stats, "gpus", gpus);
    return stats;
}
