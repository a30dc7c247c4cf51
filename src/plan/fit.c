/*
 * fit.c - the fit function (see fit.h for the accounting rules).
 */
#include "plan/fit.h"

#include "plan/budget.h"

#include <string.h>

void plan_reserve_defaults(plan_reserve *r)
{
    for (int i = 0; i < PLAN_MAX_GPUS; i++)
        r->gpu[i] = PLAN_DEFAULT_GPU_RESERVE;
    r->host = PLAN_DEFAULT_HOST_RESERVE;
}

static uint64_t sat_sub(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

void plan_budget_none(plan_budget *b)
{
    for (int i = 0; i < PLAN_MAX_GPUS; i++)
        b->gpu[i] = PLAN_NO_BUDGET;
    b->host = PLAN_NO_BUDGET;
}

void plan_fit_env_init(plan_fit_env *env, const probe_snapshot *snap)
{
    memset(env, 0, sizeof(*env));
    env->snap = snap;
    plan_policy p;
    plan_policy_get(&p);
    plan_policy_resolve(&p, snap, &env->reserve, &env->budget);
    plan_reserve promised;
    plan_promised_get(&promised);
    for (int i = 0; i < PLAN_MAX_GPUS; i++)
        env->reserve.gpu[i] = sat_add(env->reserve.gpu[i], promised.gpu[i]);
    env->reserve.host = sat_add(env->reserve.host, promised.host);
}

/* The driver's figure for pid on g, 0 when not listed or not said. */
static uint64_t listed_use(const probe_gpu *g, int32_t pid)
{
    if (pid <= 0 || !g->processes_status.ok)
        return 0;
    uint64_t sum = 0;
    for (uint32_t k = 0; k < g->n_processes; k++)
        if (g->processes[k].pid == pid && g->processes[k].used_bytes != UINT64_MAX)
            sum = sat_add(sum, g->processes[k].used_bytes);
    return sum;
}

uint64_t plan_gpu_own(const plan_fit_env *env, uint32_t gpu)
{
    const probe_snapshot *snap = env->snap;
    uint64_t own = 0;
    for (uint32_t i = 0; i < env->n_residents; i++) {
        const plan_demand *d = env->residents[i].demand;
        uint64_t pred = d != NULL && gpu < d->n_gpus && gpu < PLAN_MAX_GPUS ? d->gpu[gpu] : 0;
        uint64_t seen = snap != NULL && gpu < snap->n_gpus
                            ? listed_use(&snap->gpus[gpu], env->residents[i].pid)
                            : 0;
        own = sat_add(own, pred > seen ? pred : seen);
    }
    return own;
}

uint64_t plan_host_own(const plan_fit_env *env)
{
    uint64_t own = 0;
    for (uint32_t i = 0; i < env->n_residents; i++) {
        const plan_demand *d = env->residents[i].demand;
        if (d != NULL)
            own = sat_add(own, sat_add(d->host_anon, d->host_file));
    }
    return own;
}

/* The budget's side of usable: budget - own use, or UINT64_MAX without one. */
static uint64_t gpu_budget_room(const plan_fit_env *env, uint32_t gpu)
{
    if (gpu >= PLAN_MAX_GPUS || env->budget.gpu[gpu] == PLAN_NO_BUDGET)
        return UINT64_MAX;
    return sat_sub(env->budget.gpu[gpu], plan_gpu_own(env, gpu));
}

static uint64_t host_budget_room(const plan_fit_env *env)
{
    if (env->budget.host == PLAN_NO_BUDGET)
        return UINT64_MAX;
    return sat_sub(env->budget.host, plan_host_own(env));
}

static int is_resident_pid(const plan_fit_env *env, int32_t pid)
{
    for (uint32_t i = 0; i < env->n_residents; i++) {
        if (env->residents[i].pid != 0 && env->residents[i].pid == pid)
            return 1;
    }
    return 0;
}

uint64_t plan_gpu_usable(const plan_fit_env *env, uint32_t gpu)
{
    const probe_snapshot *snap = env->snap;
    if (snap == NULL || gpu >= snap->n_gpus || gpu >= PLAN_MAX_GPUS)
        return 0;
    const probe_gpu *g = &snap->gpus[gpu];
    if (!g->memory.ok)
        return 0;

    uint64_t predicted = g->total;
    for (uint32_t i = 0; i < env->n_residents; i++) {
        const plan_demand *d = env->residents[i].demand;
        if (d != NULL && gpu < d->n_gpus)
            predicted = sat_sub(predicted, d->gpu[gpu]);
    }
    if (g->processes_status.ok) {
        for (uint32_t i = 0; i < g->n_processes; i++) {
            if (!is_resident_pid(env, g->processes[i].pid))
                predicted = sat_sub(predicted, g->processes[i].used_bytes);
        }
    }
    uint64_t usable = g->free < predicted ? g->free : predicted;
    usable = sat_sub(usable, env->reserve.gpu[gpu]);
    uint64_t room = gpu_budget_room(env, gpu);
    return room < usable ? room : usable;
}

uint64_t plan_host_usable(const plan_fit_env *env)
{
    const probe_snapshot *snap = env->snap;
    if (snap == NULL || !snap->mem.status.ok)
        return 0;
    uint64_t avail = snap->mem.effective_available;
    for (uint32_t i = 0; i < env->n_residents; i++) {
        const plan_resident *r = &env->residents[i];
        if (r->demand == NULL)
            continue;
        if (r->in_snapshot)
            avail = sat_sub(avail, r->demand->host_growth + r->demand->host_file);
        else
            avail = sat_sub(avail, r->demand->host_anon + r->demand->host_file);
    }
    avail = sat_sub(avail, env->reserve.host);
    uint64_t room = host_budget_room(env);
    return room < avail ? room : avail;
}

static int64_t margin(uint64_t usable, uint64_t need)
{
    /* Byte counts stay far below 2^63. */
    return (int64_t)usable - (int64_t)need;
}

int plan_fit(const plan_fit_env *env, const plan_demand *d, plan_fit_result *out, genai_error *err)
{
    if (env == NULL || env->snap == NULL || d == NULL || out == NULL)
        return err_set(err, GENAI_EBAD_ARG, "plan_fit needs a snapshot and a demand");

    plan_fit_result r;
    memset(&r, 0, sizeof(r));
    r.fits = 1;
    uint32_t n = d->n_gpus > env->snap->n_gpus ? d->n_gpus : env->snap->n_gpus;
    r.n_gpus = n < PLAN_MAX_GPUS ? n : PLAN_MAX_GPUS;
    int first_short = -2; /* -2 none, -1 host, >= 0 a GPU */
    for (uint32_t i = 0; i < r.n_gpus; i++) {
        uint64_t need = i < d->n_gpus ? d->gpu[i] : 0;
        r.gpu_usable[i] = plan_gpu_usable(env, i);
        r.gpu_margin[i] = margin(r.gpu_usable[i], need);
        r.gpu_budget_bound[i] = gpu_budget_room(env, i) == r.gpu_usable[i];
        if (need > r.gpu_usable[i]) {
            r.gpu_deficit[i] = need - r.gpu_usable[i];
            r.fits = 0;
            if (first_short == -2)
                first_short = (int)i;
        }
    }
    uint64_t host_need = d->host_anon + d->host_file;
    r.host_usable = plan_host_usable(env);
    r.host_margin = margin(r.host_usable, host_need);
    r.host_budget_bound = host_budget_room(env) == r.host_usable;
    if (host_need > r.host_usable) {
        r.host_deficit = host_need - r.host_usable;
        r.fits = 0;
        if (first_short == -2)
            first_short = -1;
    }
    *out = r;
    if (r.fits)
        return 0;
    if (first_short == -1)
        return err_set(err, GENAI_ENO_FIT,
                       "host memory: need %llu MiB, %llu MiB usable%s (short by %llu MiB)",
                       (unsigned long long)(host_need / PLAN_MIB),
                       (unsigned long long)(r.host_usable / PLAN_MIB),
                       r.host_budget_bound ? " within genai's budget" : "",
                       (unsigned long long)((r.host_deficit + PLAN_MIB - 1) / PLAN_MIB));
    return err_set(err, GENAI_ENO_FIT,
                   "GPU %d: need %llu MiB, %llu MiB usable%s (short by %llu MiB)", first_short,
                   (unsigned long long)(d->gpu[first_short] / PLAN_MIB),
                   (unsigned long long)(r.gpu_usable[first_short] / PLAN_MIB),
                   r.gpu_budget_bound[first_short] ? " within genai's budget" : "",
                   (unsigned long long)((r.gpu_deficit[first_short] + PLAN_MIB - 1) / PLAN_MIB));
}
