/*
 * demand.h - what a process will take from the machine: bytes per GPU, host
 * anonymous bytes and host file-backed (mmap) bytes, with the breakdown that
 * explains them and the tier the figures come from.
 *
 * A plan_demand is a plain value (no pointers), so it can be copied, stored
 * as a learned footprint and compared. Device i of a demand is device i of
 * the probe snapshot it is checked against (see fit.h). The tiers follow
 * contracts/memory.md §13: a footprint MEASURED last time beats a DRY_RUN of
 * llama-fit-params, which beats the metadata ESTIMATE.
 *
 * The constants below are the fixed costs the estimators add; docs/planner.md
 * says where each one comes from.
 */
#ifndef GENAI_PLAN_DEMAND_H
#define GENAI_PLAN_DEMAND_H

#include <stddef.h>
#include <stdint.h>

#define PLAN_MAX_GPUS 8
#define PLAN_NOTE_MAX 160
#define PLAN_BUILD_MAX 64

#define PLAN_MIB ((uint64_t)1 << 20)
#define PLAN_GIB ((uint64_t)1 << 30)

/* llama-server's own process on the host (memory.md §1, §8 OBS): ~5 MB of
 * anonymous memory and ~14.5 MB of file-backed shared libraries. */
#define PLAN_LLM_RUNTIME_ANON (5 * PLAN_MIB)
#define PLAN_LLM_RUNTIME_FILE (14 * PLAN_MIB)
/* sd-cli / sd-server beyond params and compute buffers (memory.md §9.2 OBS). */
#define PLAN_SD_RUNTIME_ANON (44 * PLAN_MIB)
/* Per GPU a process uses: the CUDA context, kernels and library handles.
 * gguf-parser assumes 250 MiB, GPUStack 500 MiB (EXT); see docs/planner.md. */
#define PLAN_DRIVER_GPU_BYTES (384 * PLAN_MIB)
/* Host side of the driver (pinned staging, driver threads), charged once per
 * process that uses a GPU: gguf-parser's 150 MiB (EXT). */
#define PLAN_DRIVER_HOST_BYTES (150 * PLAN_MIB)

enum plan_tier {
    PLAN_TIER_ESTIMATE = 0, /* from GGUF metadata and the formulas of memory.md */
    PLAN_TIER_DRY_RUN = 1,  /* llama-fit-params --fit-print plus the extras of §13.2 */
    PLAN_TIER_MEASURED = 2, /* what the process used last time (learned footprint) */
};

/* What one place (a GPU, or the host) holds, by consumer. */
typedef struct plan_breakdown {
    uint64_t weights;      /* model parameters */
    uint64_t kv;           /* KV cache (or recurrent state) */
    uint64_t compute;      /* compute buffers (worst case, reserved up front) */
    uint64_t output;       /* logits buffer */
    uint64_t prompt_cache; /* llama-server --cache-ram budget */
    uint64_t runtime;      /* the process itself */
    uint64_t driver;       /* GPU driver context */
} plan_breakdown;

typedef struct plan_demand {
    uint32_t n_gpus;             /* gpu[] entries that are meaningful */
    uint64_t gpu[PLAN_MAX_GPUS]; /* bytes per device, index = snapshot GPU index */
    uint64_t host_anon;          /* host anonymous bytes (including host_growth) */
    uint64_t host_file;          /* host file-backed bytes (mmap-ed weights, libraries) */
    /* Part of host_anon that becomes resident only with use (host compute
     * buffer pages, the prompt cache): a running process's MemAvailable does
     * not reflect it yet. See fit.h. */
    uint64_t host_growth;
    plan_breakdown gpu_parts[PLAN_MAX_GPUS];
    plan_breakdown host_parts; /* host anon and file together; host_file says which is file */
    enum plan_tier tier;
    char note[PLAN_NOTE_MAX]; /* where the figures came from, for humans */
    /* MEASURED: the build of the program that was measured (llama-server's
     * /props build_info, "b11669-Debian"); "" when unknown or not measured.
     * Buffer sizes change between llama.cpp builds. */
    char build[PLAN_BUILD_MAX];
} plan_demand;

/* Name of a tier: "estimate", "dry-run", "measured". Static string. */
const char *plan_tier_name(enum plan_tier tier);

/* Sum of a breakdown's fields. */
uint64_t plan_breakdown_total(const plan_breakdown *b);

/* Sum of d->gpu[0 .. n_gpus). */
uint64_t plan_demand_gpu_total(const plan_demand *d);

/* Host bytes the demand expects to be resident right after the process has
 * loaded and before it serves work: host_anon - host_growth (the KV cache is
 * zero-filled and so resident at once) and host_file. Used to check against
 * RSS readings (memory.md §8). Either out pointer may be NULL. */
void plan_demand_resident(const plan_demand *d, uint64_t *anon, uint64_t *file);

/* Writes a printf-formatted note into d->note (truncated to fit). */
void plan_demand_set_note(plan_demand *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
