/*
 * budget.c - the process's budget policy, its resolution into bytes, and the
 * own/others split of device use (see budget.h).
 */
#include "plan/budget.h"

#include <pthread.h>
#include <string.h>

static pthread_mutex_t policy_lock = PTHREAD_MUTEX_INITIALIZER;
static plan_policy current;   /* zeroed: no budgets, default reserves */
static plan_reserve promised; /* reservations held or being freed */

static config_amount per_gpu(const config_amounts *l, uint32_t i)
{
    if (l->n == 1)
        return l->v[0];
    if (i < l->n)
        return l->v[i];
    return (config_amount){CONFIG_AMOUNT_NONE, 0, 0};
}

void plan_policy_from_config(const genai_config *c, plan_policy *p)
{
    memset(p, 0, sizeof(*p));
    for (uint32_t i = 0; i < PLAN_MAX_GPUS; i++) {
        p->budget_gpu[i] = per_gpu(&c->budget_gpu, i);
        p->reserve_gpu[i] = per_gpu(&c->reserve_gpu, i);
    }
    p->budget_host = c->budget_host;
    p->reserve_host = c->reserve_host;
}

void plan_policy_set(const plan_policy *p)
{
    pthread_mutex_lock(&policy_lock);
    if (p != NULL)
        current = *p;
    else
        memset(&current, 0, sizeof(current));
    pthread_mutex_unlock(&policy_lock);
}

void plan_policy_get(plan_policy *out)
{
    pthread_mutex_lock(&policy_lock);
    *out = current;
    pthread_mutex_unlock(&policy_lock);
}

void plan_promised_set(const plan_reserve *extra)
{
    pthread_mutex_lock(&policy_lock);
    if (extra != NULL)
        promised = *extra;
    else
        memset(&promised, 0, sizeof(promised));
    pthread_mutex_unlock(&policy_lock);
}

void plan_promised_get(plan_reserve *out)
{
    pthread_mutex_lock(&policy_lock);
    *out = promised;
    pthread_mutex_unlock(&policy_lock);
}

uint64_t plan_amount_bytes(const config_amount *a, uint64_t total, int total_known,
                           uint64_t none_value, uint64_t unknown_value)
{
    switch (a->kind) {
    case CONFIG_AMOUNT_BYTES:
        return a->bytes;
    case CONFIG_AMOUNT_FRACTION:
        if (!total_known)
            return unknown_value;
        /* total < 2^63 and ppm <= 10^6: split to avoid overflowing 64 bits. */
        return total / CONFIG_PPM * a->ppm + total % CONFIG_PPM * a->ppm / CONFIG_PPM;
    case CONFIG_AMOUNT_NONE:
        break;
    }
    return none_value;
}

uint64_t plan_host_total(const probe_snapshot *snap, int *known)
{
    uint64_t total = UINT64_MAX;
    *known = 0;
    if (snap == NULL)
        return 0;
    if (snap->mem.known & PROBE_MEM_TOTAL) {
        total = snap->mem.total;
        *known = 1;
    }
    if (snap->mem.cgroup.ok && snap->mem.cgroup_limit != UINT64_MAX &&
        snap->mem.cgroup_limit < total) {
        total = snap->mem.cgroup_limit;
        *known = 1;
    }
    return *known ? total : 0;
}

void plan_policy_resolve(const plan_policy *p, const probe_snapshot *snap, plan_reserve *reserve,
                         plan_budget *budget)
{
    for (uint32_t i = 0; i < PLAN_MAX_GPUS; i++) {
        int known = snap != NULL && i < snap->n_gpus && snap->gpus[i].memory.ok;
        uint64_t total = known ? snap->gpus[i].total : 0;
        reserve->gpu[i] = plan_amount_bytes(&p->reserve_gpu[i], total, known,
                                            PLAN_DEFAULT_GPU_RESERVE, PLAN_DEFAULT_GPU_RESERVE);
        budget->gpu[i] = plan_amount_bytes(&p->budget_gpu[i], total, known, PLAN_NO_BUDGET, 0);
    }
    int known = 0;
    uint64_t total = plan_host_total(snap, &known);
    reserve->host = plan_amount_bytes(&p->reserve_host, total, known, PLAN_DEFAULT_HOST_RESERVE,
                                      PLAN_DEFAULT_HOST_RESERVE);
    budget->host = plan_amount_bytes(&p->budget_host, total, known, PLAN_NO_BUDGET, 0);
}

static int is_own(int32_t pid, const int32_t *own, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (own[i] > 0 && own[i] == pid)
            return 1;
    return 0;
}

void plan_usage_split(const probe_snapshot *snap, const int32_t *own_pids, size_t n,
                      plan_usage *out)
{
    memset(out, 0, sizeof(*out));
    if (snap == NULL)
        return;
    out->n_gpus = snap->n_gpus < PLAN_MAX_GPUS ? snap->n_gpus : PLAN_MAX_GPUS;
    for (uint32_t g = 0; g < out->n_gpus; g++) {
        const probe_gpu *gpu = &snap->gpus[g];
        out->gpu[g].known = gpu->memory.ok;
        out->gpu[g].listed = gpu->processes_status.ok;
        if (!gpu->memory.ok)
            continue;
        out->gpu[g].total = gpu->total;
        /* NVML's used leaves out the driver's reserve (docs/system.md), so
         * derive it from free: total - free is what nobody else can have. */
        uint64_t used = gpu->total > gpu->free ? gpu->total - gpu->free : 0;
        out->gpu[g].used = used;
        uint64_t listed = 0;
        for (uint32_t k = 0; gpu->processes_status.ok && k < gpu->n_processes; k++) {
            uint64_t b = gpu->processes[k].used_bytes;
            if (b == UINT64_MAX)
                continue;
            if (is_own(gpu->processes[k].pid, own_pids, n))
                out->gpu[g].own += b;
            else
                out->gpu[g].others += b;
            listed += b;
        }
        out->gpu[g].unlisted = used > listed ? used - listed : 0;
    }
}
