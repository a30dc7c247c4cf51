/*
 * residency.h - the residency table: which runtimes hold (or are about to
 * hold) memory, what each holds per device, and since when.
 *
 * The orchestrator keeps one entry per runtime it has admitted: the LLM
 * (llama-server) and the image job running (sd-cli; later a resident
 * sd-server). An entry carries the demand the planner charged it (the
 * MEASURED footprint once there is one), its pid once spawned, and its
 * state:
 *
 *   PLANNED --spawn--> LOADING --ready--> RESIDENT --stop--> LEAVING --reclaimed--> (removed)
 *
 * A LEAVING entry keeps its demand until reclamation has been observed
 * (the child reaped, its pid gone from the GPU's process list, free memory
 * back), so a decision taken meanwhile still counts it. orch_res_residents()
 * turns the table into the plan_resident array the one fit function takes.
 *
 * The table is a plain value with a fixed capacity: no allocation, no I/O.
 * Time is passed in (monotonic milliseconds), so tests drive it directly.
 * Not thread-safe: the loop thread owns it.
 */
#ifndef GENAI_ORCH_RESIDENCY_H
#define GENAI_ORCH_RESIDENCY_H

#include "plan/demand.h"
#include "plan/fit.h"

#include <stddef.h>
#include <stdint.h>

#define ORCH_RES_MAX 8
#define ORCH_RES_NAME_MAX 128

typedef enum orch_kind {
    ORCH_KIND_LLM = 1,   /* llama-server */
    ORCH_KIND_IMAGE = 2, /* an sd-cli job (or an sd-server) */
} orch_kind;

typedef enum orch_res_state {
    ORCH_RES_PLANNED = 0, /* admitted; its demand is reserved, nothing spawned yet */
    ORCH_RES_LOADING,     /* spawned, loading */
    ORCH_RES_RESIDENT,    /* loaded and serving */
    ORCH_RES_LEAVING,     /* stopping, or stopped and not yet reclaimed */
} orch_res_state;

typedef struct orch_resident {
    uint32_t id; /* handle, never 0, never reused by one table */
    orch_kind kind;
    orch_res_state state;
    char name[ORCH_RES_NAME_MAX];
    int32_t pid;          /* 0 until spawned */
    plan_demand demand;   /* what it holds or will hold, per device and host */
    uint64_t since_ms;    /* entered the current state */
    uint64_t resident_ms; /* became RESIDENT (for the minimum residency); 0 before */
} orch_resident;

typedef struct orch_residency {
    orch_resident e[ORCH_RES_MAX];
    uint32_t n;
    uint32_t next_id;
} orch_residency;

/* Empties the table. */
void orch_res_init(orch_residency *t);

/* Adds an entry in state PLANNED with a copy of d (may be NULL: nothing
 * known yet) and writes its handle to *id. GENAI_EBUSY when full. */
int orch_res_add(orch_residency *t, orch_kind kind, const char *name, const plan_demand *d,
                 uint64_t now_ms, uint32_t *id);

/* The entry with handle id, or NULL. Valid until the next add or remove. */
orch_resident *orch_res_get(orch_residency *t, uint32_t id);

/* The first entry of that kind, or NULL. */
orch_resident *orch_res_find(orch_residency *t, orch_kind kind);

/* Moves an entry to state st at now_ms (pid > 0 replaces the pid). Entering
 * RESIDENT stamps resident_ms. GENAI_ENOT_FOUND for an unknown id. */
int orch_res_set_state(orch_residency *t, uint32_t id, orch_res_state st, int32_t pid,
                       uint64_t now_ms);

/* Replaces the demand of an entry (the measured footprint arrived). */
int orch_res_set_demand(orch_residency *t, uint32_t id, const plan_demand *d);

/* Removes an entry; unknown ids are ignored. */
void orch_res_remove(orch_residency *t, uint32_t id);

/*
 * Fills out (cap entries) with the residents to check a new demand against:
 * every entry except except_id (0: none). An entry counts as in the
 * snapshot (fit.h) when it has a pid and was LOADING or RESIDENT since
 * before snap_ms. The demands are borrowed from the table. Returns the
 * number written.
 */
uint32_t orch_res_residents(const orch_residency *t, uint32_t except_id, uint64_t snap_ms,
                            plan_resident *out, uint32_t cap);

/* Bytes the table charges GPU gpu (sum over entries). */
uint64_t orch_res_gpu_bytes(const orch_residency *t, uint32_t gpu);

/* "llm" / "image"; "planned", "loading", "resident", "leaving". Static. */
const char *orch_kind_name(orch_kind k);
const char *orch_res_state_name(orch_res_state st);

#endif
