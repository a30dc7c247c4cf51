/*
 * residency.c - the residency table (see residency.h): a fixed array of
 * entries in admission order, handles counted from 1.
 */
#include "orch/residency.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "genai.h"

void orch_res_init(orch_residency *t)
{
    memset(t, 0, sizeof(*t));
    t->next_id = 1;
}

int orch_res_add(orch_residency *t, orch_kind kind, const char *name, const plan_demand *d,
                 uint64_t now_ms, uint32_t *id)
{
    if (t->n >= ORCH_RES_MAX)
        return GENAI_EBUSY;
    orch_resident *e = &t->e[t->n];
    memset(e, 0, sizeof(*e));
    e->id = t->next_id++;
    if (t->next_id == 0) /* 2^32 admissions: skip 0, which means "none" */
        t->next_id = 1;
    e->kind = kind;
    e->state = ORCH_RES_PLANNED;
    snprintf(e->name, sizeof(e->name), "%s", name != NULL ? name : "");
    if (d != NULL)
        e->demand = *d;
    e->since_ms = now_ms;
    t->n++;
    *id = e->id;
    return 0;
}

orch_resident *orch_res_get(orch_residency *t, uint32_t id)
{
    for (uint32_t i = 0; id != 0 && i < t->n; i++)
        if (t->e[i].id == id)
            return &t->e[i];
    return NULL;
}

orch_resident *orch_res_find(orch_residency *t, orch_kind kind)
{
    for (uint32_t i = 0; i < t->n; i++)
        if (t->e[i].kind == kind)
            return &t->e[i];
    return NULL;
}

int orch_res_set_state(orch_residency *t, uint32_t id, orch_res_state st, int32_t pid,
                       uint64_t now_ms)
{
    orch_resident *e = orch_res_get(t, id);
    if (e == NULL)
        return GENAI_ENOT_FOUND;
    if (pid > 0)
        e->pid = pid;
    if (e->state != st) {
        e->state = st;
        e->since_ms = now_ms;
        if (st == ORCH_RES_RESIDENT)
            e->resident_ms = now_ms;
    }
    return 0;
}

int orch_res_set_demand(orch_residency *t, uint32_t id, const plan_demand *d)
{
    orch_resident *e = orch_res_get(t, id);
    if (e == NULL)
        return GENAI_ENOT_FOUND;
    e->demand = *d;
    return 0;
}

void orch_res_remove(orch_residency *t, uint32_t id)
{
    for (uint32_t i = 0; id != 0 && i < t->n; i++) {
        if (t->e[i].id != id)
            continue;
        memmove(&t->e[i], &t->e[i + 1], (t->n - i - 1) * sizeof(t->e[0]));
        t->n--;
        return;
    }
}

uint32_t orch_res_residents(const orch_residency *t, uint32_t except_id, uint64_t snap_ms,
                            plan_resident *out, uint32_t cap)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->n && n < cap; i++) {
        const orch_resident *e = &t->e[i];
        if (e->id == except_id)
            continue;
        int running = e->state == ORCH_RES_LOADING || e->state == ORCH_RES_RESIDENT;
        out[n].demand = &e->demand;
        out[n].pid = e->pid;
        out[n].in_snapshot = e->pid > 0 && running && e->since_ms <= snap_ms;
        n++;
    }
    return n;
}

uint64_t orch_res_gpu_bytes(const orch_residency *t, uint32_t gpu)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < t->n; i++)
        if (gpu < t->e[i].demand.n_gpus && gpu < PLAN_MAX_GPUS)
            sum += t->e[i].demand.gpu[gpu];
    return sum;
}

const char *orch_kind_name(orch_kind k)
{
    switch (k) {
    case ORCH_KIND_LLM:
        return "llm";
    case ORCH_KIND_IMAGE:
        return "image";
    }
    return "unknown";
}

const char *orch_res_state_name(orch_res_state st)
{
    switch (st) {
    case ORCH_RES_PLANNED:
        return "planned";
    case ORCH_RES_LOADING:
        return "loading";
    case ORCH_RES_RESIDENT:
        return "resident";
    case ORCH_RES_LEAVING:
        return "leaving";
    }
    return "unknown";
}
