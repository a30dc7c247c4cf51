/*
 * fit.h - the one fit function: does a new demand fit next to what is
 * already running, on this machine as the probe saw it?
 *
 * Every decision (first start, restart, reload after an image, choosing a
 * placement) calls plan_fit(); there is no second formula (DESIGN.md,
 * principle 1).
 *
 * Usable memory per GPU follows Ollama's lesson (memory.md §10, §11.2):
 *
 *   usable(i) = min(reported free(i),
 *                   total(i) - sum of residents' predicted gpu[i]
 *                            - per-process use of processes that are not
 *                              residents, when the driver lists them)
 *               - reserve(i)
 *
 * The min() makes the answer right whether or not the snapshot already
 * includes a resident: a process that is still loading, or whose memory the
 * driver reports late, is covered by its prediction; a process that uses more
 * than predicted is covered by the reported free memory. So for GPUs the
 * caller need not say which residents the snapshot includes.
 *
 * Host memory has no such lag but two blind spots, so each resident says
 * whether it was running when the snapshot was taken (in_snapshot):
 *   - in_snapshot: MemAvailable already excludes its resident anonymous
 *     memory, but not the part that grows with use (host_growth: compute
 *     pages not yet touched, the prompt cache), and it *includes* its
 *     mmap-ed weights, because page cache counts as reclaimable
 *     (memory.md §3 "Accounting consequences"). Both are charged again.
 *   - not in_snapshot (started, or about to be, after the snapshot): its
 *     whole host_anon + host_file is charged.
 * The new demand is charged host_anon + host_file in full: its weights must
 * stay in page cache, so counting them as available would let the kernel
 * evict them under pressure. Two processes mapping the same file share pages;
 * the planner does not credit that (conservative).
 *
 *   usable(host) = effective_available - residents' charges - reserve(host)
 *
 * Budgets (plan/budget.h) cap what genai as a whole may hold on a device or
 * of host memory. genai's own use of a place is what its residents hold
 * there: per GPU the larger of a resident's prediction and the driver's
 * figure for its pid, on the host its host_anon + host_file. Then
 *
 *   usable(place) = min(the rule above, budget(place) - own use(place))
 *
 * with saturation at 0. Without a budget the second term is absent. The
 * reserve stays on the physical side: it is what must always be left free
 * for others, whatever the budget says.
 */
#ifndef GENAI_PLAN_FIT_H
#define GENAI_PLAN_FIT_H

#include "core/error.h"
#include "plan/demand.h"
#include "sys/probe.h"

#include <stdint.h>

/* Default margins kept free (docs/planner.md explains the choice). The driver
 * context is already part of each demand, so the GPU reserve only absorbs
 * fragmentation and estimate error. */
#define PLAN_DEFAULT_GPU_RESERVE (256 * PLAN_MIB)
#define PLAN_DEFAULT_HOST_RESERVE (512 * PLAN_MIB)

/* A demand that is already running (or being started). */
typedef struct plan_resident {
    const plan_demand *demand; /* borrowed */
    int32_t pid;               /* its process id (0 when unknown): excluded from
                                  "others' per-process use" */
    int in_snapshot;           /* 1 when it was running when the snapshot was taken */
} plan_resident;

typedef struct plan_reserve {
    uint64_t gpu[PLAN_MAX_GPUS]; /* bytes kept free per device */
    uint64_t host;               /* bytes kept free on the host */
} plan_reserve;

/* The most genai may hold per device and of host memory, in bytes
 * (PLAN_NO_BUDGET: no cap). Resolved from the configured amounts (absolute
 * or a fraction of the total) by plan_fit_env_init. */
#define PLAN_NO_BUDGET UINT64_MAX
typedef struct plan_budget {
    uint64_t gpu[PLAN_MAX_GPUS];
    uint64_t host;
} plan_budget;

/* Everything a fit decision is made against. All pointers are borrowed. */
typedef struct plan_fit_env {
    const probe_snapshot *snap;
    const plan_resident *residents;
    uint32_t n_residents;
    plan_reserve reserve;
    plan_budget budget;
} plan_fit_env;

typedef struct plan_fit_result {
    int fits;                            /* 1 when every device and the host fit */
    uint32_t n_gpus;                     /* entries below that are meaningful */
    uint64_t gpu_usable[PLAN_MAX_GPUS];  /* usable bytes per device (after reserve) */
    int64_t gpu_margin[PLAN_MAX_GPUS];   /* usable - demand; negative when short */
    uint64_t gpu_deficit[PLAN_MAX_GPUS]; /* bytes missing, 0 when it fits */
    uint64_t host_usable;
    int64_t host_margin;
    uint64_t host_deficit;
    /* 1 where the budget, not free memory, set the usable figure */
    uint8_t gpu_budget_bound[PLAN_MAX_GPUS];
    uint8_t host_budget_bound;
} plan_fit_result;

/* Fills r with the default reserves for every device. */
void plan_reserve_defaults(plan_reserve *r);

/* Fills b with "no budget" everywhere. */
void plan_budget_none(plan_budget *b);

/* Initialises env for snap with no residents, and the process's budget
 * policy (plan/budget.h: plan_policy_set) resolved against snap: its reserves
 * (the defaults when none is set) plus the memory promised by reservations
 * (plan_promised_set), and its budgets (none when none is set). snap may be
 * NULL (then only the defaults apply). */
void plan_fit_env_init(plan_fit_env *env, const probe_snapshot *snap);

/* Usable bytes on GPU index gpu (see the formula above); 0 for a device the
 * snapshot lacks or whose memory is unknown. */
uint64_t plan_gpu_usable(const plan_fit_env *env, uint32_t gpu);

/* Usable host bytes (see the formula above). */
uint64_t plan_host_usable(const plan_fit_env *env);

/* genai's own use as the budget counts it (see above): on GPU gpu, and of
 * host memory. */
uint64_t plan_gpu_own(const plan_fit_env *env, uint32_t gpu);
uint64_t plan_host_own(const plan_fit_env *env);

/*
 * Checks demand d against env and writes the margins and deficits to *out.
 * Returns 0 when it fits, GENAI_ENO_FIT (with *out filled and a detail naming
 * the first short place) when not, GENAI_EBAD_ARG for a NULL snapshot. A
 * demand on a GPU the snapshot lacks counts as not fitting on that device.
 */
int plan_fit(const plan_fit_env *env, const plan_demand *d, plan_fit_result *out, genai_error *err);

#endif
