/*  gpu: see gpu.h.
 *
 *  NVML is declared here rather than taken from nvml.h so that Keel builds
 *  where no CUDA toolkit is installed; only the few types the calls below
 *  need are reproduced, with their ABI (enums are ints, handles opaque
 *  pointers).  Symbols are split in two: without the required ones
 *  (init, count, handles, name, memory) NVML is treated as absent; the
 *  optional ones (uuid, utilization, temperature) are missing from some
 *  old or stripped drivers and unsupported on some boards, and their
 *  figures then read -1 or "" while the rest keeps working.
 *
 *  Handles are fetched once in gpu_new.  A device whose handle cannot be
 *  had (a GPU fallen off the bus) keeps its index, so indexes still match
 *  nvidia-smi; gpu_device() answers -1 for it alone.  NVML is initialised
 *  for the life of the gpu_t and shut down in gpu_destroy. */
#include "gpu.h"
#include "log.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
typedef struct nvml_device *nvmlDevice_t;
typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct {
    unsigned int gpu, memory;
} nvmlUtilization_t;

#define NVML_SUCCESS 0
#define NVML_TEMPERATURE_GPU 0
#define DEFAULT_LIB "libnvidia-ml.so.1"

typedef nvmlReturn_t (*nvml_void_fn)(void);
typedef nvmlReturn_t (*nvml_count_fn)(unsigned int *);
typedef nvmlReturn_t (*nvml_handle_fn)(unsigned int, nvmlDevice_t *);
typedef nvmlReturn_t (*nvml_text_fn)(nvmlDevice_t, char *, unsigned int);
typedef nvmlReturn_t (*nvml_memory_fn)(nvmlDevice_t, nvmlMemory_t *);
typedef nvmlReturn_t (*nvml_util_fn)(nvmlDevice_t, nvmlUtilization_t *);
typedef nvmlReturn_t (*nvml_temp_fn)(nvmlDevice_t, int, unsigned int *);
typedef const char *(*nvml_error_fn)(nvmlReturn_t);

struct gpu_t {
    void *lib;                  /* NULL unless NVML is initialised */
    nvml_void_fn init, shutdown;
    nvml_count_fn get_count;
    nvml_handle_fn get_handle;
    nvml_text_fn get_name, get_uuid;
    nvml_memory_fn get_memory;
    nvml_util_fn get_util;
    nvml_temp_fn get_temp;
    nvml_error_fn error_string;
    nvmlDevice_t *handles;
    int count;
    char error[256];
};

/* Resolves every symbol; 0, or -1 naming the first required one missing. */
static int resolve(gpu_t *self)
{
    void *lib = self->lib;
    self->init = (nvml_void_fn) dlsym(lib, "nvmlInit_v2");
    self->shutdown = (nvml_void_fn) dlsym(lib, "nvmlShutdown");
    self->get_count = (nvml_count_fn) dlsym(lib, "nvmlDeviceGetCount_v2");
    self->get_handle = (nvml_handle_fn) dlsym(lib, "nvmlDeviceGetHandleByIndex_v2");
    self->get_name = (nvml_text_fn) dlsym(lib, "nvmlDeviceGetName");
    self->get_memory = (nvml_memory_fn) dlsym(lib, "nvmlDeviceGetMemoryInfo");
    self->error_string = (nvml_error_fn) dlsym(lib, "nvmlErrorString");
    self->get_uuid = (nvml_text_fn) dlsym(lib, "nvmlDeviceGetUUID");
    self->get_util = (nvml_util_fn) dlsym(lib, "nvmlDeviceGetUtilizationRates");
    self->get_temp = (nvml_temp_fn) dlsym(lib, "nvmlDeviceGetTemperature");
    const char *missing = !self->init ? "nvmlInit_v2"
                        : !self->shutdown ? "nvmlShutdown"
                        : !self->get_count ? "nvmlDeviceGetCount_v2"
                        : !self->get_handle ? "nvmlDeviceGetHandleByIndex_v2"
                        : !self->get_name ? "nvmlDeviceGetName"
                        : !self->get_memory ? "nvmlDeviceGetMemoryInfo"
                        : !self->error_string ? "nvmlErrorString" : NULL;
    if (missing)
        snprintf(self->error, sizeof self->error, "NVML symbol %s not found", missing);
    return missing ? -1 : 0;
}

/* Initialises NVML and fetches the handles; 0, or -1 with NVML shut down. */
static int start(gpu_t *self)
{
    nvmlReturn_t rc = self->init();
    if (rc != NVML_SUCCESS) {
        snprintf(self->error, sizeof self->error, "nvmlInit_v2 failed: %s",
                 self->error_string(rc));
        return -1;
    }
    unsigned int count = 0;
    rc = self->get_count(&count);
    if (rc != NVML_SUCCESS || count == 0) {
        snprintf(self->error, sizeof self->error, "%s",
                 rc != NVML_SUCCESS ? self->error_string(rc) : "no NVIDIA GPU found");
        self->shutdown();
        return -1;
    }
    self->handles = calloc(count, sizeof *self->handles);
    if (!self->handles) {
        snprintf(self->error, sizeof self->error, "out of memory");
        self->shutdown();
        return -1;
    }
    for (unsigned int i = 0; i < count; i++) {
        rc = self->get_handle(i, &self->handles[i]);
        if (rc != NVML_SUCCESS) {
            log_warn("gpu", "GPU %u: %s", i, self->error_string(rc));
            self->handles[i] = NULL;
        }
    }
    self->count = (int) count;
    return 0;
}

gpu_t *gpu_new(void)
{
    gpu_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    const char *path = getenv("KEEL_NVML_LIB");
    if (!path || !*path)
        path = DEFAULT_LIB;
    self->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!self->lib) {
        const char *why = dlerror();
        if (!why || strstr(why, "No such file"))
            snprintf(self->error, sizeof self->error, "%s not found", path);
        else
            snprintf(self->error, sizeof self->error, "cannot load %s", why);
        log_info("gpu", "no GPU statistics: %s", self->error);
        return self;
    }
    if (resolve(self) != 0 || start(self) != 0) {
        log_info("gpu", "no GPU statistics: %s", self->error);
        dlclose(self->lib);
        self->lib = NULL;
    }
    return self;
}

void gpu_destroy(gpu_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gpu_t *self = *self_p;
    if (self->lib) {
        self->shutdown();
        dlclose(self->lib);
    }
    free(self->handles);
    free(self);
    *self_p = NULL;
}

bool gpu_available(gpu_t *self)
{
    return self->lib != NULL;
}

int gpu_count(gpu_t *self)
{
    return self->count;
}

const char *gpu_error(gpu_t *self)
{
    return self->error;
}

/* The optional figures: -1 or "" when the driver lacks or refuses them. */
static void read_optional(gpu_t *self, nvmlDevice_t dev, gpu_device_t *out)
{
    nvmlUtilization_t util;
    unsigned int temp;
    if (!self->get_uuid || self->get_uuid(dev, out->uuid, sizeof out->uuid) != NVML_SUCCESS)
        out->uuid[0] = '\0';
    out->uuid[sizeof out->uuid - 1] = '\0';
    out->util_gpu_percent = -1;
    out->util_mem_percent = -1;
    if (self->get_util && self->get_util(dev, &util) == NVML_SUCCESS) {
        out->util_gpu_percent = (int) util.gpu;
        out->util_mem_percent = (int) util.memory;
    }
    out->temperature_c = -1;
    if (self->get_temp && self->get_temp(dev, NVML_TEMPERATURE_GPU, &temp) == NVML_SUCCESS)
        out->temperature_c = (int) temp;
}

int gpu_device(gpu_t *self, int index, gpu_device_t *out)
{
    memset(out, 0, sizeof *out);
    if (index < 0 || index >= self->count || !self->handles[index])
        return -1;
    nvmlDevice_t dev = self->handles[index];
    nvmlMemory_t mem;
    nvmlReturn_t rc = self->get_name(dev, out->name, sizeof out->name);
    if (rc == NVML_SUCCESS)
        rc = self->get_memory(dev, &mem);
    if (rc != NVML_SUCCESS) {
        log_warn("gpu", "GPU %d: %s", index, self->error_string(rc));
        return -1;
    }
    out->name[sizeof out->name - 1] = '\0';
    out->index = index;
    out->mem_total_bytes = mem.total;
    out->mem_used_bytes = mem.used;
    out->mem_free_bytes = mem.free;
    out->mem_percent = mem.total ? 100.0 * (double) mem.used / (double) mem.total : 0;
    read_optional(self, dev, out);
    return 0;
}
