/*
 * fake_nvml.c - a test double for NVIDIA's libnvidia-ml.so.1.
 *
 * Exports the NVML functions genai's probe uses, with NVML's documented ABI
 * (nvml.h: int return codes, opaque device handles, nvmlProcessInfo_t of
 * {pid, usedGpuMemory, gpuInstanceId, computeInstanceId}, nvmlMemory_v2_t with
 * a version word), and answers from a JSON script named by env
 * FAKE_NVML_SCRIPT, re-read by nvmlInit_v2 and by every nvmlDeviceGetCount_v2:
 *
 *   {"init_rc": 0, "count_rc": 0, "driver_version": "550.54.14",
 *    "cuda_version": 12040,
 *    "devices": [{"name": "...", "uuid": "...", "pci_bus_id": "...",
 *                 "total": N, "free": N, "used": N,
 *                 "handle_rc": 0, "memory_rc": 0, "memory_v2_rc": 0,
 *                 "compute": [{"pid": 1, "used": N}], "compute_rc": 0,
 *                 "compute_sizes": [1, 5],
 *                 "graphics": [...], "graphics_rc": 0, "graphics_sizes": [...]}]}
 *
 * "*_rc" fields force an NVML return code. "*_sizes" makes the process list
 * grow between calls: the k-th call sees the first sizes[k] entries (the last
 * size repeats), which exercises the caller's NVML_ERROR_INSUFFICIENT_SIZE
 * retry. A "used" of -1 is NVML_VALUE_NOT_AVAILABLE.
 *
 * Built twice: libfake-nvml.so, and libfake-nvml-noinit.so without
 * nvmlInit_v2 (FAKE_NVML_NO_INIT) for the missing-symbol path. The test reads
 * call counters through fake_nvml_counters() (same handle via dlopen).
 */
#include "fake_nvml.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEV 16
#define MAX_SIZES 8

enum { SUCCESS = 0, ERR_UNINIT = 1, ERR_INVALID = 2, ERR_INSUFFICIENT = 7, ERR_VERSION = 25 };

struct fake_dev {
    int in_use;
};

static json_t *script;
static int initialized;
static fake_nvml_counts counts;
static unsigned proc_calls[MAX_DEV][2];
static struct fake_dev devs[MAX_DEV];

static void load_script(void)
{
    const char *path = getenv("FAKE_NVML_SCRIPT");
    json_decref(script);
    script = path ? json_load_file(path, 0, NULL) : NULL;
}

static json_int_t num(const json_t *obj, const char *key, json_int_t def)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

static const char *str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

static json_t *device_json(nvmlDevice_t d)
{
    uintptr_t i = (uintptr_t)d - 1;
    if (d == NULL || i >= MAX_DEV || !devs[i].in_use)
        return NULL;
    return json_array_get(json_object_get(script, "devices"), i);
}

static int copy_out(char *dst, unsigned int len, const char *src)
{
    if (dst == NULL)
        return ERR_INVALID;
    if (strlen(src) + 1 > len)
        return ERR_INSUFFICIENT;
    memcpy(dst, src, strlen(src) + 1);
    return SUCCESS;
}

#ifndef FAKE_NVML_NO_INIT
nvmlReturn_t nvmlInit_v2(void)
{
    counts.init++;
    memset(proc_calls, 0, sizeof(proc_calls));
    load_script();
    int rc = (int)num(script, "init_rc", script ? 0 : 999);
    initialized = rc == SUCCESS;
    return rc;
}
#endif

nvmlReturn_t nvmlShutdown(void)
{
    counts.shutdown++;
    if (!initialized)
        return ERR_UNINIT;
    initialized = 0;
    json_decref(script);
    script = NULL;
    return SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t rc)
{
    switch (rc) {
    case 0:
        return "Success";
    case 1:
        return "Uninitialized";
    case 2:
        return "Invalid Argument";
    case 3:
        return "Not Supported";
    case 4:
        return "Insufficient Permissions";
    case 7:
        return "Insufficient Size";
    case 9:
        return "Driver Not Loaded";
    case 15:
        return "GPU is lost";
    case 25:
        return "Argument Version Mismatch";
    default:
        return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    return initialized ? copy_out(version, length, str(script, "driver_version")) : ERR_UNINIT;
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v)
{
    if (!initialized)
        return ERR_UNINIT;
    *v = (int)num(script, "cuda_version", 0);
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
    counts.count++;
    if (!initialized)
        return ERR_UNINIT;
    load_script(); /* tests change the script between samples */
    int rc = (int)num(script, "count_rc", 0);
    if (rc != SUCCESS)
        return rc;
    const json_t *d = json_object_get(script, "devices");
    json_int_t forced = num(script, "count", -1);
    *count = forced >= 0 ? (unsigned int)forced : (unsigned int)json_array_size(d);
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    if (!initialized)
        return ERR_UNINIT;
    const json_t *d = json_array_get(json_object_get(script, "devices"), index);
    if (d == NULL || index >= MAX_DEV)
        return ERR_INVALID;
    int rc = (int)num(d, "handle_rc", 0);
    if (rc != SUCCESS)
        return rc;
    devs[index].in_use = 1;
    *device = (nvmlDevice_t)(uintptr_t)(index + 1);
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    const json_t *d = device_json(device);
    return d ? copy_out(name, length, str(d, "name")) : ERR_INVALID;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    const json_t *d = device_json(device);
    return d ? copy_out(uuid, length, str(d, "uuid")) : ERR_INVALID;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
    const json_t *d = device_json(device);
    if (d == NULL || pci == NULL)
        return ERR_INVALID;
    memset(pci, 0, sizeof(*pci));
    return copy_out(pci->busId, sizeof(pci->busId), str(d, "pci_bus_id"));
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *m)
{
    counts.memory_v1++;
    const json_t *d = device_json(device);
    if (d == NULL || m == NULL)
        return ERR_INVALID;
    int rc = (int)num(d, "memory_rc", 0);
    if (rc != SUCCESS)
        return rc;
    m->total = (unsigned long long)num(d, "total", 0);
    m->free = (unsigned long long)num(d, "free", 0);
    m->used = (unsigned long long)num(d, "used", 0);
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *m)
{
    counts.memory_v2++;
    const json_t *d = device_json(device);
    if (d == NULL || m == NULL)
        return ERR_INVALID;
    if (m->version != FAKE_NVML_MEMORY_V2)
        return ERR_VERSION;
    int rc = (int)num(d, "memory_v2_rc", 0);
    if (rc != SUCCESS)
        return rc;
    m->total = (unsigned long long)num(d, "total", 0);
    m->reserved = (unsigned long long)num(d, "reserved", 0);
    m->free = (unsigned long long)num(d, "free", 0);
    m->used = (unsigned long long)num(d, "used", 0);
    return SUCCESS;
}

static nvmlReturn_t processes(nvmlDevice_t device, int which, unsigned int *count,
                              nvmlProcessInfo_t *infos)
{
    static const char *const keys[2][3] = {{"compute", "compute_rc", "compute_sizes"},
                                           {"graphics", "graphics_rc", "graphics_sizes"}};
    counts.processes++;
    const json_t *d = device_json(device);
    if (d == NULL || count == NULL)
        return ERR_INVALID;
    uintptr_t di = (uintptr_t)device - 1;
    unsigned call = proc_calls[di][which]++;
    int rc = (int)num(d, keys[which][1], 0);
    if (rc != SUCCESS)
        return rc;
    const json_t *list = json_object_get(d, keys[which][0]);
    size_t n = json_array_size(list);
    const json_t *sizes = json_object_get(d, keys[which][2]);
    if (json_array_size(sizes) > 0) {
        size_t k = call < json_array_size(sizes) ? call : json_array_size(sizes) - 1;
        size_t s = (size_t)json_integer_value(json_array_get(sizes, k));
        if (s < n)
            n = s;
    }
    if (*count < n) {
        *count = (unsigned int)n;
        return ERR_INSUFFICIENT;
    }
    if (n > 0 && infos == NULL)
        return ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        const json_t *p = json_array_get(list, i);
        infos[i].pid = (unsigned int)num(p, "pid", 0);
        infos[i].usedGpuMemory = (unsigned long long)num(p, "used", 0);
        infos[i].gpuInstanceId = 0xFFFFFFFFu;
        infos[i].computeInstanceId = 0xFFFFFFFFu;
    }
    *count = (unsigned int)n;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                     nvmlProcessInfo_t *infos)
{
    return processes(device, 0, count, infos);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                      nvmlProcessInfo_t *infos)
{
    return processes(device, 1, count, infos);
}

const fake_nvml_counts *fake_nvml_counters(void)
{
    return &counts;
}
