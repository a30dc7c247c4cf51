/*
 * budget.h - sharing the machine: how much genai may hold (budgets), how much
 * it always leaves free (reserves), and which part of a device's use is
 * genai's own and which is everyone else's.
 *
 * A budget policy is the configured amounts (core/config.h config_amount:
 * bytes, or a fraction of the place's total) for every GPU and for the host.
 * The process has one current policy: the daemon or the library sets it from
 * the configuration at startup (plan_policy_set), and every fit decision
 * picks it up through plan_fit_env_init(), so the LLM runtime's own start
 * plan, the image runner's placement and the orchestrator's admission all
 * plan within the same limits with no second formula. The policy is a plain
 * value copied under a mutex: any thread may read or replace it. Memory
 * promised to other programs by reservations is kept the same way and added
 * to the reserves.
 *
 * Resolution against a snapshot (plan_policy_resolve): a fraction of a GPU is
 * of its total memory; a fraction of the host is of min(MemTotal, the cgroup
 * limit). A fraction of a total that is unknown resolves to 0 for a budget
 * (nothing may be planned there: the user asked for a limit we cannot
 * honour) and to the default for a reserve. The exact rule the fit function
 * applies is in fit.h and docs/planner.md.
 */
#ifndef GENAI_PLAN_BUDGET_H
#define GENAI_PLAN_BUDGET_H

#include "core/config.h"
#include "plan/fit.h"

#include <stddef.h>
#include <stdint.h>

/* The configured amounts. Zeroed: no budgets, default reserves. */
typedef struct plan_policy {
    config_amount budget_gpu[PLAN_MAX_GPUS];
    config_amount budget_host;
    config_amount reserve_gpu[PLAN_MAX_GPUS]; /* NONE: PLAN_DEFAULT_GPU_RESERVE */
    config_amount reserve_host;               /* NONE: PLAN_DEFAULT_HOST_RESERVE */
} plan_policy;

/* Fills p from the configuration's budget.* and reserve.* keys (one entry
 * applies to every GPU; several apply to GPUs 0, 1, ... in order). */
void plan_policy_from_config(const genai_config *c, plan_policy *p);

/* Replaces the process's current policy with a copy of *p (NULL: back to the
 * zeroed policy). Thread-safe. */
void plan_policy_set(const plan_policy *p);

/* Copies the process's current policy into *out. Thread-safe. */
void plan_policy_get(plan_policy *out);

/* Memory promised to other programs right now (reservations, orch/reserve.h):
 * process-wide, added to the reserve of every fit environment
 * plan_fit_env_init builds, so nothing genai plans takes it. NULL clears.
 * Thread-safe. */
void plan_promised_set(const plan_reserve *extra);
void plan_promised_get(plan_reserve *out);

/* Bytes an amount stands for out of total (total_known = 0: the total is
 * unknown). NONE gives none_value; a fraction of an unknown total gives
 * unknown_value. */
uint64_t plan_amount_bytes(const config_amount *a, uint64_t total, int total_known,
                           uint64_t none_value, uint64_t unknown_value);

/* The host total fractions refer to: min(MemTotal, cgroup limit); 0 with
 * *known = 0 when neither is known. */
uint64_t plan_host_total(const probe_snapshot *snap, int *known);

/* Resolves p against snap into bytes: reserves (defaults where unset) and
 * budgets (PLAN_NO_BUDGET where unset). snap may be NULL: fractions then
 * resolve as of an unknown total. */
void plan_policy_resolve(const plan_policy *p, const probe_snapshot *snap, plan_reserve *reserve,
                         plan_budget *budget);

/* genai's use of each device against everyone else's, from the driver's
 * per-process figures. */
typedef struct plan_usage {
    uint32_t n_gpus; /* entries below that are meaningful */
    struct {
        int known;         /* memory figures known */
        int listed;        /* the driver lists processes */
        uint64_t total;    /* device memory */
        uint64_t used;     /* all use the driver reports */
        uint64_t own;      /* listed use of genai's pids */
        uint64_t others;   /* listed use of every other pid */
        uint64_t unlisted; /* used - listed: the driver's own, memory released late,
                              processes it does not list (other users, containers) */
    } gpu[PLAN_MAX_GPUS];
} plan_usage;

/*
 * Splits each device's use in snap between genai (the n pids in own_pids,
 * typically the orchestrator's children) and everyone else. A process listed
 * without a figure (UINT64_MAX) counts 0 and its share stays in unlisted.
 * Everything not listed is counted as others' when deciding whether others
 * took memory (it is not genai's).
 */
void plan_usage_split(const probe_snapshot *snap, const int32_t *own_pids, size_t n,
                      plan_usage *out);

#endif
