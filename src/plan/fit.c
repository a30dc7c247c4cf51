/*
 * fit.c - the fit function (see fit.h for the accounting rules).
 */
#include "plan/fit.h"

#include <string.h>

void plan_reserve_defaults(plan_reserve *r)
{
    for (int i = 0; i < PLAN_MAX_GPUS; i++)
        r->gpu[i] = PLAN_DEFAULT_GPU_RESERVE;
    r->host = PLAN_DEFAULT_HOST_RESERVE;
}

void plan_fit_env_init(plan_fit_env *env, const probe_snapshot *snap)
{
    memset(env, 0, sizeof(*env));
    env->snap = snap;
    plan_reserve_defaults(&env->reserve);
}

static uint64_t sat_sub(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
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
    return sat_sub(usable, env->reserve.gpu[gpu]);
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
    return sat_sub(avail, env->reserve.host);
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
                       "host memory: need %llu MiB, %llu MiB usable (short by %llu MiB)",
                       (unsigned long long)(host_need / PLAN_MIB),
                       (unsigned long long)(r.host_usable / PLAN_MIB),
                       (unsigned long long)((r.host_deficit + PLAN_MIB - 1) / PLAN_MIB));
    return err_set(err, GENAI_ENO_FIT, "GPU %d: need %llu MiB, %llu MiB usable (short by %llu MiB)",
                   first_short, (unsigned long long)(d->gpu[first_short] / PLAN_MIB),
                   (unsigned long long)(r.gpu_usable[first_short] / PLAN_MIB),
                   (unsigned long long)((r.gpu_deficit[first_short] + PLAN_MIB - 1) / PLAN_MIB));
}
