/*  hostsampler: the host's CPU, memory, disk and network figures, read from
 *  /proc by a ticker once a second, so that no request ever
 *  waits a second for a CPU sample as the originals' psutil calls did. */
#ifndef OBS_HOSTSAMPLER_H
#define OBS_HOSTSAMPLER_H
#include <jansson.h>
#include <stdbool.h>

#include "sysstat.h"

typedef struct hostsampler_t hostsampler_t;

/* Takes the first reading at once. */
hostsampler_t *hostsampler_new(const char *proc_root, const char *disk_path, double interval_s);
void hostsampler_destroy(hostsampler_t **self_p);
/* Keeps the reading fresh every interval.  0 or -1. */
int hostsampler_start(hostsampler_t *self);
/* The latest sample; false (and the reason) when /proc could not be read. */
bool hostsampler_latest(hostsampler_t *self, sysstat_sample_t *out, char *err, size_t errlen);
/* PredictiveHealthMonitor's system_metrics dict (OH-57): a field whose
 * source failed becomes {"error": msg}. */
json_t *hostsampler_system_metrics(hostsampler_t *self);
#endif
