/*
 * orch_int.h - the orchestrator's private state, shared by its own files
 * and by nothing outside src/orch/ (orch.h is the public face).
 *
 * One struct orch, split by noun across three files that all see it:
 * orch.c runs the swap cycle (the phase machine, whose banner numbers the
 * invariants), loads and moves the LLM, and owns the public calls that
 * steer it; images.c admits and dispatches image jobs and takes the
 * runner's callbacks; requests.c grants and answers the LLM requests
 * waiting in the gate. The helpers below are what orch.c lends the other
 * two. Loop thread only, like the rest of the orchestrator.
 */
#ifndef GENAI_ORCH_ORCH_INT_H
#define GENAI_ORCH_ORCH_INT_H

#include "orch/orch.h"
#include "orch/reclaim.h"
#include "plan/demand.h"
#include "plan/diffusion.h"

#include <stdint.h>
#include <uv.h>

enum {
    ORCH_REASON_MAX = GENAI_ERROR_DETAIL_MAX,
};

typedef enum orch_phase {
    ORCH_PH_IDLE = 0,
    ORCH_PH_DRAIN,
    ORCH_PH_STOP,
    ORCH_PH_RECLAIM_LLM,
    ORCH_PH_IMAGES,
    ORCH_PH_RECLAIM_IMG,
    ORCH_PH_RELOAD_WAIT,
} orch_phase;

typedef struct orch_job_rec {
    orch_job pub;
    img_request req; /* deep copy */
    img_plan_mode plan;
    int has_model;
    plan_sd_model model;
    int placed; /* placement and demand below were decided */
    plan_sd_placement placement;
    plan_demand demand;
    int timed_out;
    uint32_t res_id;
} orch_job_rec;

struct orch {
    uv_loop_t *uv;
    orch_opts o; /* scalars and callbacks; pointer fields not used after new */
    plan_footprints *fp;
    int own_fp;
    probe_options_owned probe_opts;
    probe_ctx *probe;
    img_size_fn size_fn;
    void *size_arg;
    img_runner_fn user_on_progress;
    void *user_arg;

    /* the LLM */
    int have_llm;
    llm_rt_config base; /* deep copy of opts->llm */
    llm_rt_config pinned;
    int have_pinned;
    llm_runtime *rt;
    int rt_pinned; /* rt was created from o->pinned */
    orch_llm_state llm;
    char reason[ORCH_REASON_MAX];
    int wanted;     /* load it when possible */
    int reloading;  /* the current load is a reload after an offload */
    int after_swap; /* ENO_FIT may mean memory still coming back: retry */
    int attempt;
    uint32_t llm_res;
    int32_t llm_pid;
    plan_demand llm_demand;
    int have_llm_demand;
    uint64_t load_started_ms, reload_started_ms, cycle_started_ms;
    uint64_t drain_started_ms, drain_deadline_ms, stop_started_ms;
    int backoff_ms;

    /* image jobs */
    img_runner *runner;
    orch_job_rec **jobs;
    size_t n_jobs, cap_jobs;
    uint64_t next_job_id;
    orch_job_rec *running;
    int32_t img_pid;
    size_t max_pending;
    uint32_t burst;
    uint64_t burst_started_ms;
    uint64_t offload_job;

    orch_phase ph;
    uint32_t holds[ORCH_MAX_HOLDS]; /* orch_hold ids (watch.c, reserve.c) */
    size_t n_holds;
    uint32_t next_hold;
    char hold_why[160];
    orch_gate gate;
    orch_reclaim *reclaim;
    orch_residency res;
    orch_stats stats;

    uv_idle_t kick;
    uv_timer_t t_gate, t_phase, t_image;
    int handles;
    int freeing;
};

/* Asks for step() to run from the idle handle o->kick (invariant 1 in
 * orch.c); does nothing once orch_free has begun. */
void orch_kick(orch *o);

/* Delivers one event: a log line, the bus and the metrics (notify.h), then
 * opts.on_event unless orch_free has begun. reason may be NULL (""); it is
 * borrowed for the call. */
void orch_emit(orch *o, orch_event_type type, uint64_t ms, int attempt, int code, uint64_t job_id,
               int32_t pid, const char *reason);

/* An orch_sample_fn with arg the orch: one snapshot of the machine as
 * opts.probe describes it into *out (the caller frees it with
 * probe_snapshot_free), opening the probe on first use. */
int orch_sample(void *arg, probe_snapshot *out, genai_error *err);

#endif
