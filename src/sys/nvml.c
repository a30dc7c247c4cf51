/*
 * nvml.c - the NVIDIA provider: NVML loaded with dlopen, so genai builds and
 * runs without CUDA and only uses NVML where the driver installed it.
 *
 * The few types and prototypes below are declared from NVML's documented ABI
 * (nvml.h, as shipped with CUDA 11.x-13.x and mirrored in NVIDIA/go-nvml):
 * nvmlReturn_t is an int-sized enum, nvmlDevice_t an opaque pointer, and
 * nvmlProcessInfo_t (used by the *_v3 process queries) is
 * {unsigned pid; unsigned long long usedGpuMemory; unsigned gpuInstanceId;
 * unsigned computeInstanceId}. nvmlMemory_v2_t carries a version word:
 * sizeof(struct) | 2 << 24.
 *
 * The library is loaded and nvmlInit_v2() called once per probe context;
 * each sample then asks for the device count and, per device, name, UUID,
 * PCI bus id, memory and the compute and graphics process lists. Missing
 * optional symbols only blank the fields they feed; a failing call, or
 * absurd figures (free > total), becomes a reason on that field.
 */
#include "sys/provider.h"

#include "core/alloc.h"
#include "core/log.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MOD "nvml"

/* ---- the ABI (nvml.h) -------------------------------------------------- */

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_FUNCTION_NOT_FOUND = 13,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
};
typedef struct nvmlDevice_st *nvmlDevice_t;

typedef struct {
    unsigned long long total, free, used;
} nvml_memory_v1;

typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvml_memory_v2;
#define NVML_MEMORY_V2_VERSION ((unsigned int)(sizeof(nvml_memory_v2) | (2u << 24)))

typedef struct {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvml_pci_info;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvml_process_info;
#define NVML_VALUE_NOT_AVAILABLE_ULL (~0ULL)

/* Buffer sizes from nvml.h (the _V2 sizes are the larger ones). */
#define NVML_NAME_BUF 96
#define NVML_UUID_BUF 96
#define NVML_DRIVER_BUF 80

typedef struct nvml_api {
    nvmlReturn_t (*init_v2)(void);
    nvmlReturn_t (*shutdown)(void);
    const char *(*error_string)(nvmlReturn_t);
    nvmlReturn_t (*driver_version)(char *, unsigned int);
    nvmlReturn_t (*cuda_version)(int *);
    nvmlReturn_t (*count)(unsigned int *);
    nvmlReturn_t (*handle)(unsigned int, nvmlDevice_t *);
    nvmlReturn_t (*name)(nvmlDevice_t, char *, unsigned int);
    nvmlReturn_t (*uuid)(nvmlDevice_t, char *, unsigned int);
    nvmlReturn_t (*pci)(nvmlDevice_t, nvml_pci_info *);
    nvmlReturn_t (*memory)(nvmlDevice_t, nvml_memory_v1 *);
    nvmlReturn_t (*memory_v2)(nvmlDevice_t, nvml_memory_v2 *);
    nvmlReturn_t (*compute_procs)(nvmlDevice_t, unsigned int *, nvml_process_info *);
    nvmlReturn_t (*graphics_procs)(nvmlDevice_t, unsigned int *, nvml_process_info *);
} nvml_api;

typedef struct nvml_state {
    void *dl;
    nvml_api api;
    nvml_process_info *procs; /* reused between samples */
    unsigned int procs_cap;
} nvml_state;

/* More processes than any GPU runs; a count above it is treated as absurd. */
#define NVML_MAX_PROCS 4096u
#define NVML_MAX_DEVICES 64u
#define NVML_PROC_RETRIES 4

static const char *errstr(const nvml_state *s, nvmlReturn_t rc)
{
    const char *m = s->api.error_string ? s->api.error_string(rc) : NULL;
    return m ? m : "unknown NVML error";
}

/* dlsym into a function pointer without the object/function cast warning. */
static int load_sym(void *dl, const char *name, void *fnptr_addr, size_t fnptr_size)
{
    void *sym = dlsym(dl, name);
    if (sym == NULL)
        return -1;
    memcpy(fnptr_addr, &sym, fnptr_size);
    return 0;
}

#define LOAD(dl, name, field) load_sym(dl, name, &(field), sizeof(field))

/* Copies an NVML string result, keeping it printable and terminated. */
static void copy_text(char *dst, size_t dstsz, const char *src, size_t srcsz)
{
    size_t n = strnlen(src, srcsz);
    if (n >= dstsz)
        n = dstsz - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    dst[n] = '\0';
}

/* One process query with the INSUFFICIENT_SIZE retry: the list can grow
 * between the size answer and the next call, so retry a few times with
 * headroom. Returns NVML's code; *n_out entries are in s->procs. */
static nvmlReturn_t
query_procs(nvml_state *s, nvmlReturn_t (*fn)(nvmlDevice_t, unsigned int *, nvml_process_info *),
            nvmlDevice_t dev, unsigned int *n_out)
{
    nvmlReturn_t rc = NVML_ERROR_INSUFFICIENT_SIZE;
    for (int attempt = 0; attempt < NVML_PROC_RETRIES; attempt++) {
        unsigned int n = s->procs_cap;
        rc = fn(dev, &n, s->procs);
        if (rc == NVML_SUCCESS) {
            if (n > s->procs_cap)
                return NVML_ERROR_INSUFFICIENT_SIZE; /* a library that lies */
            *n_out = n;
            return rc;
        }
        if (rc != NVML_ERROR_INSUFFICIENT_SIZE)
            return rc;
        if (n <= s->procs_cap)
            n = s->procs_cap ? s->procs_cap * 2 : 16;
        if (n > NVML_MAX_PROCS)
            return rc;
        unsigned int want = n + 8 > NVML_MAX_PROCS ? NVML_MAX_PROCS : n + 8;
        nvml_process_info *v = mem_reallocarray(s->procs, want, sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        s->procs = v;
        s->procs_cap = want;
    }
    return rc;
}

static int sample_processes(nvml_state *s, nvmlDevice_t dev, probe_gpu *g)
{
    struct {
        const char *what;
        nvmlReturn_t (*fn)(nvmlDevice_t, unsigned int *, nvml_process_info *);
    } lists[2] = {{"nvmlDeviceGetComputeRunningProcesses_v3", s->api.compute_procs},
                  {"nvmlDeviceGetGraphicsRunningProcesses_v3", s->api.graphics_procs}};
    char reason[PROBE_REASON_MAX] = "";
    int compute_ok = 0;
    for (int l = 0; l < 2; l++) {
        if (lists[l].fn == NULL) {
            probe_reason_add(reason, sizeof(reason), "%s missing", lists[l].what);
            continue;
        }
        unsigned int n = 0;
        nvmlReturn_t rc = query_procs(s, lists[l].fn, dev, &n);
        if (rc == -ENOMEM)
            return rc;
        if (rc != NVML_SUCCESS) {
            probe_reason_add(reason, sizeof(reason), "%s: %s", lists[l].what, errstr(s, rc));
            continue;
        }
        if (l == 0)
            compute_ok = 1;
        for (unsigned int i = 0; i < n; i++) {
            const nvml_process_info *p = &s->procs[i];
            if (p->pid == 0 || p->pid > INT32_MAX)
                continue;
            uint64_t used = p->usedGpuMemory == NVML_VALUE_NOT_AVAILABLE_ULL ||
                                    (g->memory.ok && p->usedGpuMemory > g->total)
                                ? UINT64_MAX
                                : p->usedGpuMemory;
            int arc = probe_gpu_add_process(g, (int32_t)p->pid, used);
            if (arc == -ENOMEM)
                return arc;
        }
    }
    /* Compute contexts are what llama.cpp and sd.cpp hold; a graphics list
     * the driver refuses (NOT_SUPPORTED on some boards) does not make the
     * compute list less complete. */
    if (compute_ok)
        probe_field_ok(&g->processes_status);
    else
        probe_field_fail(&g->processes_status, "%s", reason);
    if (compute_ok && reason[0] != '\0')
        LOG_DEBUG(MOD, "GPU %u: %s", g->index, reason);
    return 0;
}

static void sample_memory(nvml_state *s, nvmlDevice_t dev, probe_gpu *g)
{
    nvmlReturn_t rc = NVML_ERROR_FUNCTION_NOT_FOUND;
    uint64_t total = 0, free_b = 0, used = 0;
    if (s->api.memory_v2 != NULL) {
        nvml_memory_v2 m;
        memset(&m, 0, sizeof(m));
        m.version = NVML_MEMORY_V2_VERSION;
        rc = s->api.memory_v2(dev, &m);
        if (rc == NVML_SUCCESS) {
            total = m.total;
            free_b = m.free;
            used = m.used;
        }
    }
    /* Older drivers lack _v2 or reject its version word: use v1. */
    if (rc != NVML_SUCCESS && s->api.memory != NULL) {
        nvml_memory_v1 m;
        memset(&m, 0, sizeof(m));
        rc = s->api.memory(dev, &m);
        if (rc == NVML_SUCCESS) {
            total = m.total;
            free_b = m.free;
            used = m.used;
        }
    }
    if (rc != NVML_SUCCESS) {
        probe_field_fail(&g->memory, "nvmlDeviceGetMemoryInfo: %s", errstr(s, rc));
        return;
    }
    if (total == 0 || free_b > total || used > total) {
        probe_field_fail(
            &g->memory, "NVML reported absurd memory figures: total %llu, free %llu, used %llu",
            (unsigned long long)total, (unsigned long long)free_b, (unsigned long long)used);
        return;
    }
    g->total = total;
    g->free = free_b;
    g->used = used;
    probe_field_ok(&g->memory);
}

static int nvml_sample(void *state, probe_provider_status *st, probe_gpu_list *out)
{
    nvml_state *s = state;
    unsigned int count = 0;
    nvmlReturn_t rc = s->api.count(&count);
    if (rc != NVML_SUCCESS) {
        probe_field_fail(&st->status, "nvmlDeviceGetCount_v2: %s", errstr(s, rc));
        return 0;
    }
    if (count > NVML_MAX_DEVICES) {
        probe_field_fail(&st->status, "NVML reported %u devices (more than %u)", count,
                         NVML_MAX_DEVICES);
        return 0;
    }
    probe_field_ok(&st->status);
    for (unsigned int i = 0; i < count; i++) {
        nvmlDevice_t dev = NULL;
        probe_gpu *g;
        int prc = probe_gpus_push(out, &g);
        if (prc == -ENOMEM)
            return prc;
        if (prc < 0)
            break;
        g->vendor = PROBE_GPU_NVIDIA;
        g->index = i;
        rc = s->api.handle(i, &dev);
        if (rc != NVML_SUCCESS) {
            probe_field_fail(&g->memory, "nvmlDeviceGetHandleByIndex_v2: %s", errstr(s, rc));
            probe_field_fail(&g->processes_status, "no device handle");
            continue;
        }
        char buf[NVML_NAME_BUF > NVML_UUID_BUF ? NVML_NAME_BUF : NVML_UUID_BUF];
        memset(buf, 0, sizeof(buf));
        if (s->api.name != NULL && s->api.name(dev, buf, NVML_NAME_BUF) == NVML_SUCCESS)
            copy_text(g->name, sizeof(g->name), buf, sizeof(buf));
        memset(buf, 0, sizeof(buf));
        if (s->api.uuid != NULL && s->api.uuid(dev, buf, NVML_UUID_BUF) == NVML_SUCCESS)
            copy_text(g->uuid, sizeof(g->uuid), buf, sizeof(buf));
        nvml_pci_info pci;
        memset(&pci, 0, sizeof(pci));
        if (s->api.pci != NULL && s->api.pci(dev, &pci) == NVML_SUCCESS)
            copy_text(g->pci_bus_id, sizeof(g->pci_bus_id), pci.busId, sizeof(pci.busId));
        sample_memory(s, dev, g);
        if ((prc = sample_processes(s, dev, g)) < 0)
            return prc;
    }
    return 0;
}

static void nvml_close(void *state)
{
    nvml_state *s = state;
    if (s == NULL)
        return;
    if (s->api.shutdown != NULL)
        s->api.shutdown();
    if (s->dl != NULL)
        dlclose(s->dl);
    mem_free(s->procs);
    mem_free(s);
}

int probe_nvml_open(const char *lib_path, probe_provider *p, probe_provider_status *st)
{
    memset(p, 0, sizeof(*p));
    memset(st, 0, sizeof(*st));
    p->name = st->name = "nvml";
    nvml_state *s = mem_calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->dl = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
    if (s->dl == NULL) {
        const char *why = dlerror();
        probe_field_fail(&st->status, "cannot load NVML: %s", why ? why : lib_path);
        goto unusable;
    }
    static const char *const required[] = {"nvmlInit_v2", "nvmlShutdown", "nvmlErrorString",
                                           "nvmlDeviceGetCount_v2",
                                           "nvmlDeviceGetHandleByIndex_v2"};
    nvml_api *a = &s->api;
    void *addrs[] = {&a->init_v2, &a->shutdown, &a->error_string, &a->count, &a->handle};
    size_t sizes[] = {sizeof(a->init_v2), sizeof(a->shutdown), sizeof(a->error_string),
                      sizeof(a->count), sizeof(a->handle)};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (load_sym(s->dl, required[i], addrs[i], sizes[i]) != 0) {
            probe_field_fail(&st->status, "%s lacks %s", lib_path, required[i]);
            a->shutdown = NULL; /* never initialized */
            goto unusable;
        }
    }
    /* Optional: each only blanks the fields it feeds. */
    LOAD(s->dl, "nvmlSystemGetDriverVersion", a->driver_version);
    LOAD(s->dl, "nvmlSystemGetCudaDriverVersion_v2", a->cuda_version);
    LOAD(s->dl, "nvmlDeviceGetName", a->name);
    LOAD(s->dl, "nvmlDeviceGetUUID", a->uuid);
    LOAD(s->dl, "nvmlDeviceGetPciInfo_v3", a->pci);
    LOAD(s->dl, "nvmlDeviceGetMemoryInfo", a->memory);
    LOAD(s->dl, "nvmlDeviceGetMemoryInfo_v2", a->memory_v2);
    LOAD(s->dl, "nvmlDeviceGetComputeRunningProcesses_v3", a->compute_procs);
    LOAD(s->dl, "nvmlDeviceGetGraphicsRunningProcesses_v3", a->graphics_procs);
    if (a->memory == NULL && a->memory_v2 == NULL) {
        probe_field_fail(&st->status, "%s lacks nvmlDeviceGetMemoryInfo", lib_path);
        a->shutdown = NULL;
        goto unusable;
    }
    nvmlReturn_t rc = a->init_v2();
    if (rc != NVML_SUCCESS) {
        probe_field_fail(&st->status, "nvmlInit_v2: %s (%d)", errstr(s, rc), rc);
        a->shutdown = NULL;
        goto unusable;
    }
    char ver[NVML_DRIVER_BUF];
    memset(ver, 0, sizeof(ver));
    if (a->driver_version != NULL && a->driver_version(ver, sizeof(ver)) == NVML_SUCCESS)
        copy_text(st->driver_version, sizeof(st->driver_version), ver, sizeof(ver));
    int cuda = 0;
    if (a->cuda_version != NULL && a->cuda_version(&cuda) == NVML_SUCCESS && cuda > 0)
        snprintf(st->runtime_version, sizeof(st->runtime_version), "%d.%d", cuda / 1000,
                 (cuda % 1000) / 10);
    probe_field_ok(&st->status);
    LOG_DEBUG(MOD, "loaded %s, driver %s, CUDA %s", lib_path, st->driver_version,
              st->runtime_version);
    p->state = s;
    p->sample = nvml_sample;
    p->close = nvml_close;
    return 0;
unusable:
    LOG_DEBUG(MOD, "%s", st->status.reason);
    nvml_close(s);
    return 1;
}
