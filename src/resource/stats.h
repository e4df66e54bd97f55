/*  stats: the system figures the ResourceManager and AsyncProcessor
 *  reported (psutil and torch in the originals), read from /proc and NVML.
 *  One sample is taken per request, as the originals did, but two requests
 *  closer than the cache interval share a sample: CPU percent over a few
 *  microseconds is noise, and under load it would flip admission at random.
 *  The last 100 samples are kept, as the original deque did.  GPU memory
 *  percent is device level (NVML used/total), the largest over the devices,
 *  so a card under pressure is seen even when the other one is idle.
 *  Thread-safe. */
#ifndef KEEL_RS_STATS_H
#define KEEL_RS_STATS_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "gpu.h"

#define STATS_MAX_GPUS 8
#define STATS_MIB (1024.0 * 1024.0)

typedef struct {
    double cpu_percent, memory_percent, disk_usage;
    uint64_t memory_available, memory_total;
    int cpu_count;
    double wall;                    /* unix seconds of the sample */
    int ngpu;
    gpu_device_t gpus[STATS_MAX_GPUS];
} stats_sample_t;

typedef struct stats_t stats_t;

/* proc_root: "/proc" (tests use a fake tree); gpu is borrowed and may be NULL. */
stats_t *stats_new(const char *proc_root, gpu_t *gpu, double cache_s);
void stats_destroy(stats_t **self_p);
/* 0, or -1 when /proc cannot be read (out then holds zeros). */
int stats_sample(stats_t *self, stats_sample_t *out);
/* Samples taken so far, and how many the history keeps (at most 100). */
uint64_t stats_taken(stats_t *self);
size_t stats_history(stats_t *self);
/* Largest device memory percent; 0.0 with no GPU. */
double stats_sample_gpu_percent(const stats_sample_t *sample);
/* Rounds to one decimal, as Python's round(x, 1). */
double stats_round1(double value);
/* The ResourceManager <Stats> object (RS-8..RS-13).  reserved_mb[i] is what
 * reservations hold on device i (NULL: none). */
json_t *stats_sample_json(const stats_sample_t *sample, const double *reserved_mb);
#endif
