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
    int ok;                        /* 1 when the value is known */
    char reason[PROBE_REASON_MAX]; /* why not, when ok == 0 */
} probe_field;

typedef struct probe_cpu {
    probe_field status;
    char model[PROBE_NAME_MAX];
    uint32_t logical;  /* online logical CPUs */
    uint32_t physical; /* distinct (package, core) pairs; 0 when unknown */
    uint32_t usable;   /* CPUs this process may run on (affinity, cgroup cpu.max) */
    int avx, avx2, avx512f, fma, f16c, neon;
} probe_cpu;

/* Bits of probe_host_memory.known: which meminfo values were read. */
#define PROBE_MEM_TOTAL 1u
#define PROBE_MEM_AVAILABLE 2u
#define PROBE_MEM_SWAP_TOTAL 4u
#define PROBE_MEM_SWAP_FREE 8u

typedef struct probe_host_memory {
    probe_field status; /* /proc/meminfo */
    unsigned known;     /* PROBE_MEM_* bits of the values below that are valid */
    uint64_t total;     /* MemTotal */
    uint64_t available; /* MemAvailable (never MemFree) */
    uint64_t swap_total;
    uint64_t swap_free;
    probe_field cgroup;    /* cgroup v2 or v1 memory controller */
    int cgroup_version;    /* 0 none/unknown, 1, 2 */
    uint64_t cgroup_limit; /* UINT64_MAX when unlimited ("max") */
    uint64_t cgroup_usage;
    uint64_t effective_available; /* min(available, cgroup_limit - cgroup_usage) */
} probe_host_memory;

enum probe_gpu_vendor { PROBE_GPU_NVIDIA = 1, PROBE_GPU_AMD = 2, PROBE_GPU_FAKE = 3 };

typedef struct probe_gpu_process {
    int32_t pid;
    uint64_t used_bytes; /* UINT64_MAX when the driver does not say */
} probe_gpu_process;

typedef struct probe_gpu {
    enum probe_gpu_vendor vendor;
    uint32_t index; /* index within its provider */
    char name[PROBE_NAME_MAX];
    char uuid[PROBE_NAME_MAX];
    char pci_bus_id[32];
    uint64_t total;
    uint64_t free;
    uint64_t used;
    probe_field memory; /* total/free/used known? */
    probe_field processes_status;
    probe_gpu_process *processes; /* n_processes entries; owned by the snapshot */
    uint32_t n_processes;
} probe_gpu;

typedef struct probe_provider_status {
    const char *name;   /* "nvml", "amd-sysfs", "fake": static string */
    probe_field status; /* available, or why not */
    char driver_version[64];
    char runtime_version[64]; /* CUDA version for NVML */
} probe_provider_status;

#define PROBE_MAX_PROVIDERS 3

typedef struct probe_snapshot {
    uint64_t taken_at_ms; /* CLOCK_MONOTONIC milliseconds */
    probe_cpu cpu;
    probe_host_memory mem;
    probe_provider_status providers[PROBE_MAX_PROVIDERS];
    uint32_t n_providers;
    probe_gpu *gpus; /* n_gpus entries; owned by the snapshot */
    uint32_t n_gpus;
} probe_snapshot;

/* Releases the arrays of snap and zeroes it. Accepts NULL. */
void probe_snapshot_free(probe_snapshot *snap);

/* Which GPU providers to consult (probe_options.providers). */
#define PROBE_PROVIDER_NVML 1u
#define PROBE_PROVIDER_AMD 2u
#define PROBE_PROVIDER_ALL (PROBE_PROVIDER_NVML | PROBE_PROVIDER_AMD)

/*
 * How to probe. A zeroed struct probes the real machine with every provider.
 * When fake_gpu_path (or env GENAI_FAKE_GPU) is set, the fake provider is
 * used INSTEAD of the real GPU providers. The strings are borrowed: they
 * must outlive the call (probe_take) or the context (probe_ctx_open).
 */
typedef struct probe_options {
    const char *root;          /* prefix for /proc and /sys ("" or NULL: the real ones) */
    const char *nvml_path;     /* NULL: env GENAI_NVML_LIBRARY, else "libnvidia-ml.so.1" */
    const char *fake_gpu_path; /* NULL: env GENAI_FAKE_GPU; "" disables the fake provider */
    unsigned providers;        /* PROBE_PROVIDER_* bits; 0 means PROBE_PROVIDER_ALL */
    int ignore_env;            /* 1: do not read GENAI_NVML_LIBRARY / GENAI_FAKE_GPU */
} probe_options;

/*
 * An owned copy of probe options, for objects that keep options past the
 * call that gave them (the orchestrator, the watcher, the reservation book):
 * opts points into the copied strings.
 */
typedef struct probe_options_owned {
    probe_options opts;
    char *root, *nvml_path, *fake_gpu_path;
} probe_options_owned;

/* Copies src (NULL: the defaults) into *dst, strings included. 0, or -ENOMEM
 * with *dst zeroed. Release with probe_options_owned_free. */
int probe_options_own(probe_options_owned *dst, const probe_options *src);
/* Releases the strings and zeroes *o. Accepts NULL. */
void probe_options_owned_free(probe_options_owned *o);

/*
 * A probe context keeps what is expensive to set up (the NVML library loaded
 * and initialized) so that sampling is cheap enough to run several times a
 * second. Not thread-safe: one thread (the loop) samples it.
 */
typedef struct probe_ctx probe_ctx;

/* Opens a context: reads the CPU part and loads the GPU providers once. A provider that cannot be
 * used is not an error (its status says why). Fails only with -ENOMEM or
 * GENAI_EBAD_ARG. The caller closes *out with probe_ctx_close(). */
int probe_ctx_open(const probe_options *opts, probe_ctx **out, genai_error *err);

/* Takes one snapshot into *out (caller frees with probe_snapshot_free()).
 * Missing or garbled sources give a partial snapshot with reasons, not an
 * error; fails only with -ENOMEM. */
int probe_ctx_sample(probe_ctx *ctx, probe_snapshot *out, genai_error *err);

/* Shuts the providers down and frees ctx. Accepts NULL. */
void probe_ctx_close(probe_ctx *ctx);

/* One-shot: probe_ctx_open + probe_ctx_sample + probe_ctx_close. opts may be
 * NULL (the real machine). */
int probe_take(const probe_options *opts, probe_snapshot *out, genai_error *err);

/*
 * The llama.cpp / stable-diffusion.cpp build that fits this machine: "cuda"
 * (an NVIDIA GPU through NVML), "rocm" (an AMD GPU), then by CPU features
 * "cpu-avx512", "cpu-avx2", "cpu-avx", "arm-neon", else "cpu". A fake GPU
 * counts as "cuda" (it plays an NVIDIA card). *why (optional) gets a static
 * sentence saying what decided. Returns a static string.
 */
const char *probe_runtime_variant(const probe_snapshot *snap, const char **why);

/* The snapshot as JSON (schema in docs/system.md): byte units, null for an
 * unknown value with a "reason" next to it. New reference (caller
 * json_decref()s), NULL when out of memory. */
struct json_t;
struct json_t *probe_snapshot_json(const probe_snapshot *snap);

#endif
