/*
 * demand.c - helpers around plan_demand (see demand.h).
 */
#include "plan/demand.h"

#include <stdarg.h>
#include <stdio.h>

const char *plan_tier_name(enum plan_tier tier)
{
    switch (tier) {
    case PLAN_TIER_ESTIMATE:
        return "estimate";
    case PLAN_TIER_DRY_RUN:
        return "dry-run";
    case PLAN_TIER_MEASURED:
        return "measured";
    }
    return "unknown";
}

uint64_t plan_breakdown_total(const plan_breakdown *b)
{
    return b->weights + b->kv + b->compute + b->output + b->prompt_cache + b->runtime + b->driver;
}

uint64_t plan_demand_gpu_total(const plan_demand *d)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < d->n_gpus && i < PLAN_MAX_GPUS; i++)
        sum += d->gpu[i];
    return sum;
}

void plan_demand_resident(const plan_demand *d, uint64_t *anon, uint64_t *file)
{
    if (anon != NULL)
        *anon = d->host_anon > d->host_growth ? d->host_anon - d->host_growth : 0;
    if (file != NULL)
        *file = d->host_file;
}

void plan_demand_set_note(plan_demand *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->note, sizeof(d->note), fmt, ap);
    va_end(ap);
}
