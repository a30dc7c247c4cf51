/*
 * probe.h - what genai knows about the machine: CPUs, host memory (with the
 * cgroup's view), and GPUs with their per-process memory.
 *
 * A probe_snapshot is a plain value: filled by probe_take(), read by the
 * planner's fit function and printed by `genai system`. Every field that can
 * be missing has a status and, when missing, a reason, so a partial result is
 * still useful (garbage in /proc, NVML absent, a cgroup limit of "max").
 *
 * Ownership: probe_snapshot_free() releases the device and process arrays.
 */
#ifndef GENAI_SYS_PROBE_H
#define GENAI_SYS_PROBE_H

#include "core/error.h"

#include <stdint.h>

#define PROBE_REASON_MAX 160
#define PROBE_NAME_MAX 128

/* One field's origin: known, or unknown with a reason. */
typedef struct probe_field {
    int ok;                         /* 1 when the value is known */
    char reason[PROBE_REASON_MAX];  /* why not, when ok == 0 */
} probe_field;

typedef struct probe_cpu {
    probe_field status;
    char model[PROBE_NAME_MAX];
    uint32_t logical;   /* online logical CPUs */
    uint32_t physical;  /* distinct (package, core) pairs; 0 when unknown */
    uint32_t usable;    /* CPUs this process may run on (affinity, cgroup cpu.max) */
    int avx, avx2, avx512f, fma, f16c, neon;
} probe_cpu;

typedef struct probe_host_memory {
    probe_field status;      /* /proc/meminfo */
    uint64_t total;          /* MemTotal */
    uint64_t available;      /* MemAvailable (never MemFree) */
    uint64_t swap_total;
    uint64_t swap_free;
    probe_field cgroup;      /* cgroup v2 or v1 memory controller */
    int cgroup_version;      /* 0 none/unknown, 1, 2 */
    uint64_t cgroup_limit;   /* UINT64_MAX when unlimited ("max") */
    uint64_t cgroup_usage;
    uint64_t effective_available; /* min(available, cgroup_limit - cgroup_usage) */
} probe_host_memory;

enum probe_gpu_vendor { PROBE_GPU_NVIDIA = 1, PROBE_GPU_AMD = 2, PROBE_GPU_FAKE = 3 };

typedef struct probe_gpu_process {
    int32_t pid;
    uint64_t used_bytes;
} probe_gpu_process;

typedef struct probe_gpu {
    enum probe_gpu_vendor vendor;
    uint32_t index;              /* index within its provider */
    char name[PROBE_NAME_MAX];
    char uuid[PROBE_NAME_MAX];
    char pci_bus_id[32];
    uint64_t total;
    uint64_t free;
    uint64_t used;
    probe_field memory;          /* total/free/used known? */
    probe_field processes_status;
    probe_gpu_process *processes; /* n_processes entries; owned by the snapshot */
    uint32_t n_processes;
} probe_gpu;

typedef struct probe_provider_status {
    const char *name;            /* "nvml", "amd-sysfs", "fake": static string */
    probe_field status;          /* available, or why not */
    char driver_version[64];
    char runtime_version[64];    /* CUDA version for NVML */
} probe_provider_status;

#define PROBE_MAX_PROVIDERS 3

typedef struct probe_snapshot {
    uint64_t taken_at_ms;        /* CLOCK_MONOTONIC milliseconds */
    probe_cpu cpu;
    probe_host_memory mem;
    probe_provider_status providers[PROBE_MAX_PROVIDERS];
    uint32_t n_providers;
    probe_gpu *gpus;             /* n_gpus entries; owned by the snapshot */
    uint32_t n_gpus;
} probe_snapshot;

void probe_snapshot_free(probe_snapshot *snap);

#endif
