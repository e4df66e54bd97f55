/*  fake_nvml: a stand-in for libnvidia-ml.so.1, loaded through
 *  KEEL_NVML_LIB, so GPU code is tested on machines with no GPU.  It
 *  exports the NVML calls Keel uses, with the real signatures and codes.
 *
 *  The devices are read at nvmlInit_v2 from FAKE_NVML_DEVICES,
 *  "name:total_MiB:used_MiB:util%" entries separated by commas (a name may
 *  hold ':' since the numbers are taken from the right).  Unset or empty
 *  means no device.  Every device reports UUID GPU-00000000-0000-0000-0000-
 *  0000000000<index>, memory-controller utilisation of half its GPU
 *  utilisation, and a temperature of 40 + index degrees.
 *
 *  FAKE_NVML_FAIL_INIT=1 makes nvmlInit_v2 fail (driver not loaded).
 *  FAKE_NVML_UNSUPPORTED=1 makes the optional calls (UUID, utilisation,
 *  temperature) answer "not supported", as some boards do.
 *  FAKE_NVML_STATE_FILE names a file holding one used_MiB per line per
 *  device; it is re-read on every nvmlDeviceGetMemoryInfo, so a test can
 *  change VRAM pressure while the process under test runs.  A missing
 *  file or line leaves that device at its FAKE_NVML_DEVICES figure.
 *
 *  All state is static: the library allocates nothing, and is re-parsed
 *  on every init, so loads and unloads within one process start fresh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
typedef struct fake_device *nvmlDevice_t;
typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct {
    unsigned int gpu, memory;
} nvmlUtilization_t;

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
};

#define MAX_DEVICES 16
#define MIB (1024ULL * 1024ULL)

struct fake_device {
    char name[96];
    unsigned long long total_mib, used_mib;
    unsigned int util;
};

static struct fake_device devices[MAX_DEVICES];
static unsigned int device_count;
static int initialised;

static int env_on(const char *name)
{
    const char *value = getenv(name);
    return value && strcmp(value, "1") == 0;
}

/* One "name:total:used:util" entry; 0 or -1. */
static int parse_device(char *entry, struct fake_device *dev)
{
    char *fields[3];
    for (int i = 2; i >= 0; i--) {
        char *colon = strrchr(entry, ':');
        if (!colon)
            return -1;
        *colon = '\0';
        fields[i] = colon + 1;
    }
    snprintf(dev->name, sizeof dev->name, "%s", entry);
    dev->total_mib = strtoull(fields[0], NULL, 10);
    dev->used_mib = strtoull(fields[1], NULL, 10);
    dev->util = (unsigned int) strtoul(fields[2], NULL, 10);
    return 0;
}

static void parse_devices(void)
{
    device_count = 0;
    const char *spec = getenv("FAKE_NVML_DEVICES");
    if (!spec)
        return;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *entry = strtok_r(buf, ",", &save); entry && device_count < MAX_DEVICES;
         entry = strtok_r(NULL, ",", &save))
        if (parse_device(entry, &devices[device_count]) == 0)
            device_count++;
}

nvmlReturn_t nvmlInit_v2(void)
{
    if (env_on("FAKE_NVML_FAIL_INIT"))
        return NVML_ERROR_DRIVER_NOT_LOADED;
    parse_devices();
    initialised = 1;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void)
{
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    initialised = 0;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result)
{
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    if (!count)
        return NVML_ERROR_INVALID_ARGUMENT;
    *count = device_count;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    if (index >= device_count || !device)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = &devices[index];
    return NVML_SUCCESS;
}

/* The device's index, or -1 for a handle this library did not give out. */
static int check(nvmlDevice_t device)
{
    if (!initialised || device < devices || device >= devices + device_count)
        return -1;
    return (int) (device - devices);
}

static nvmlReturn_t copy_text(const char *text, char *buf, unsigned int length)
{
    if (!buf)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(text) >= length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(buf, text, strlen(text) + 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    if (check(device) < 0)
        return initialised ? NVML_ERROR_INVALID_ARGUMENT : NVML_ERROR_UNINITIALIZED;
    return copy_text(device->name, name, length);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    int index = check(device);
    if (index < 0)
        return initialised ? NVML_ERROR_INVALID_ARGUMENT : NVML_ERROR_UNINITIALIZED;
    if (env_on("FAKE_NVML_UNSUPPORTED"))
        return NVML_ERROR_NOT_SUPPORTED;
    char text[64];
    snprintf(text, sizeof text, "GPU-00000000-0000-0000-0000-%012d", index);
    return copy_text(text, uuid, length);
}

/* Line `index` of FAKE_NVML_STATE_FILE into *used_mib, when there is one. */
static void read_state(int index, unsigned long long *used_mib)
{
    const char *path = getenv("FAKE_NVML_STATE_FILE");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return;
    char line[64];
    for (int i = 0; fgets(line, sizeof line, f); i++) {
        if (i == index) {
            char *end;
            unsigned long long value = strtoull(line, &end, 10);
            if (end != line)
                *used_mib = value;
            break;
        }
    }
    fclose(f);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    int index = check(device);
    if (index < 0)
        return initialised ? NVML_ERROR_INVALID_ARGUMENT : NVML_ERROR_UNINITIALIZED;
    if (!memory)
        return NVML_ERROR_INVALID_ARGUMENT;
    unsigned long long used = device->used_mib;
    read_state(index, &used);
    if (used > device->total_mib)
        used = device->total_mib;
    memory->total = device->total_mib * MIB;
    memory->used = used * MIB;
    memory->free = memory->total - memory->used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *util)
{
    if (check(device) < 0)
        return initialised ? NVML_ERROR_INVALID_ARGUMENT : NVML_ERROR_UNINITIALIZED;
    if (env_on("FAKE_NVML_UNSUPPORTED"))
        return NVML_ERROR_NOT_SUPPORTED;
    if (!util)
        return NVML_ERROR_INVALID_ARGUMENT;
    util->gpu = device->util;
    util->memory = device->util / 2;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *temp)
{
    int index = check(device);
    if (index < 0)
        return initialised ? NVML_ERROR_INVALID_ARGUMENT : NVML_ERROR_UNINITIALIZED;
    if (env_on("FAKE_NVML_UNSUPPORTED"))
        return NVML_ERROR_NOT_SUPPORTED;
    if (sensor != 0 || !temp)
        return NVML_ERROR_INVALID_ARGUMENT;
    *temp = 40u + (unsigned int) index;
    return NVML_SUCCESS;
}
