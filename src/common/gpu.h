/*  gpu: GPU statistics through NVML, loaded at run time with dlopen of
 *  libnvidia-ml.so.1 (or $KEEL_NVML_LIB, which tests point at a fake), so
 *  Keel builds and runs on machines with no NVIDIA driver.  With no library
 *  or no device, gpu_available() is false and gpu_count() is 0: callers use
 *  the fallbacks their spec names.  Thread-safe (NVML is; the handle table
 *  is read-only after gpu_new). */
#ifndef KEEL_GPU_H
#define KEEL_GPU_H
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int index;
    char name[96];
    char uuid[96];
    uint64_t mem_total_bytes, mem_used_bytes, mem_free_bytes;
    double mem_percent;          /* used / total * 100, device level */
    int util_gpu_percent;        /* -1 when not reported */
    int util_mem_percent;        /* -1 when not reported */
    int temperature_c;           /* -1 when not reported */
} gpu_device_t;

typedef struct gpu_t gpu_t;

gpu_t *gpu_new(void);
void gpu_destroy(gpu_t **self_p);
bool gpu_available(gpu_t *self);
int gpu_count(gpu_t *self);
/* Why NVML is not available ("libnvidia-ml.so.1 not found", ...), or "". */
const char *gpu_error(gpu_t *self);
/* 0, or -1 when the index is out of range or NVML fails. */
int gpu_device(gpu_t *self, int index, gpu_device_t *out);
#endif
