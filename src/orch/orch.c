/*
 * orch.c - the orchestrator (see orch.h; docs/orchestrator.md has the
 * diagram).
 *
 * A swap cycle is a phase machine; the LLM's state as requests see it
 * (orch_llm_state) follows from the phase and the runtime's events:
 *
 *   IDLE --image does not fit beside the LLM--> DRAIN --in-flight 0 or
 *   drain deadline--> STOP --runtime STOPPED (reaped)--> RECLAIM_LLM
 *   --LLM pid gone, image fits (or deadline)--> IMAGES --burst over-->
 *   RECLAIM_IMG --sd-cli pid gone, LLM fits (or deadline)--> load attempt
 *   --0--> IDLE (LLM LOADING -> READY)
 *   --GENAI_ENO_FIT, before the reload deadline--> RELOAD_WAIT --backoff--> load attempt
 *   --other error, or the deadline--> IDLE (LLM FAILED: next request retries)
 *
 * IMAGES is also where image jobs run while no LLM is loaded. Image jobs
 * that fit beside the LLM run from IDLE without a phase change.
 *
 * Invariants:
 *  1. Decisions run in step(), from the idle handle o->kick, never inside a
 *     callback of the runtime or the runner (neither may be freed or
 *     resubmitted from its own callback). Callbacks record facts and kick.
 *  2. At most one image job is in the runner at a time (o->running), so
 *     every admission decision sees the GPU as it is.
 *  3. Waiters are granted only in IDLE with the LLM READY; DRAIN closes the
 *     gate to new grants, so the in-flight count can only fall.
 *  4. Every waiter is answered exactly once: granted, timed out at its
 *     deadline, failed with the reason when a load is given up, or
 *     cancelled when the orchestrator is freed.
 *  5. The reload uses o->pinned, a deep copy of the configuration the LLM
 *     had at its first READY with every auto field resolved; the runtime
 *     plans it with the one fit function on a fresh snapshot.
 */
#include "orch/orch.h"

#include "core/alloc.h"
#include "core/log.h"
#include "core/metrics.h"
#include "orch/images.h"
#include "orch/notify.h"
#include "orch/orch_int.h"
#include "orch/reclaim.h"
#include "orch/requests.h"
#include "plan/llm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MOD "orch"

enum {
    DEF_MIN_RESIDENCY_MS = 10000,
    DEF_DRAIN_MS = 30000,
    DEF_RECLAIM_MS = 10000,
    DEF_RECLAIM_FIRST_MS = 50,
    DEF_RECLAIM_MAX_MS = 250,
    DEF_RELOAD_MS = 30000,
    DEF_RELOAD_BACKOFF_MS = 100,
    RELOAD_BACKOFF_MAX_MS = 2000,
    DEF_IMAGE_TIMEOUT_MS = 1800000,
    DEF_MAX_WAITERS = 64,
    DEF_MAX_BURST = 8,
    DEF_RETRY_AFTER_S = 5,
};

uint64_t orch_now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static void step(orch *o);
static void on_kick(uv_idle_t *h);
static void on_phase_timer(uv_timer_t *t);

void orch_kick(orch *o)
{
    if (!o->freeing)
        uv_idle_start(&o->kick, on_kick);
}

/* ---- configuration copies ---------------------------------------------------- */

static void cfg_free(llm_rt_config *c)
{
    mem_free((char *)c->model);
    mem_free((char *)c->model_id);
    mem_free((char *)c->server_path);
    mem_free((char *)c->run_dir);
    mem_free((char *)c->log_dir);
    if (c->extra_args != NULL) {
        for (size_t i = 0; c->extra_args[i] != NULL; i++)
            mem_free((char *)c->extra_args[i]);
        mem_free((void *)c->extra_args);
    }
    memset(c, 0, sizeof(*c));
}

static int dup_field(const char **dst, const char *src)
{
    *dst = NULL;
    if (src == NULL)
        return 0;
    *dst = mem_strdup(src);
    return *dst != NULL ? 0 : -ENOMEM;
}

/* Deep copy of src into *dst (strings and the extra argv). */
static int cfg_copy(llm_rt_config *dst, const llm_rt_config *src)
{
    *dst = *src;
    dst->model = dst->model_id = dst->server_path = dst->run_dir = dst->log_dir = NULL;
    dst->extra_args = NULL;
    int rc = dup_field(&dst->model, src->model);
    if (rc == 0)
        rc = dup_field(&dst->model_id, src->model_id);
    if (rc == 0)
        rc = dup_field(&dst->server_path, src->server_path);
    if (rc == 0)
        rc = dup_field(&dst->run_dir, src->run_dir);
    if (rc == 0)
        rc = dup_field(&dst->log_dir, src->log_dir);
    if (rc == 0 && src->extra_args != NULL) {
        size_t n = 0;
        while (src->extra_args[n] != NULL)
            n++;
        const char **v = mem_calloc(n + 1, sizeof(char *));
        if (v == NULL)
            rc = -ENOMEM;
        for (size_t i = 0; v != NULL && i < n && rc == 0; i++)
            rc = dup_field(&v[i], src->extra_args[i]);
        dst->extra_args = (const char *const *)v;
    }
    if (rc < 0)
        cfg_free(dst);
    return rc;
}

/* Pins the configuration the LLM runs with now: every field auto-configuration
 * chose becomes fixed, so a reload starts exactly the same server. */
static int pin_config(orch *o)
{
    const llm_rt_plan *pl = llm_runtime_plan(o->rt);
    if (pl == NULL)
        return GENAI_EINTERNAL;
    llm_rt_config c;
    int rc = cfg_copy(&c, llm_runtime_config(o->rt));
    if (rc < 0)
        return rc;
    const plan_llm_config *r = &pl->choice.cfg;
    c.ngl = r->n_gpu_layers;
    c.ctx = r->n_ctx != 0 ? r->n_ctx : pl->choice.shape.n_ctx;
    c.kv = r->type_k;
    c.fa = r->flash_attn;
    c.parallel = r->n_parallel;
    c.threads = r->threads;
    c.no_mmap = !r->use_mmap;
    cfg_free(&o->pinned);
    o->pinned = c;
    o->have_pinned = 1;
    LOG_INFO(MOD, "%s pinned: -ngl %d -c %u, KV %s, fa %d, %u slot(s)",
             c.model_id ? c.model_id : c.model, (int)c.ngl, c.ctx, plan_cache_type_name(c.kv),
             (int)c.fa, c.parallel);
    return 0;
}

/* ---- events ------------------------------------------------------------------- */

void orch_emit(orch *o, orch_event_type type, uint64_t ms, int attempt, int code, uint64_t job_id,
               int32_t pid, const char *reason)
{
    orch_event ev = {type, ms, attempt, code, job_id, pid, reason != NULL ? reason : ""};
    orch_notify(o->o.bus, o->o.metrics, &ev);
    if (o->o.on_event != NULL && !o->freeing)
        o->o.on_event(o->o.arg, o, &ev);
}

/* ---- probe ----------------------------------------------------------------------- */

int orch_sample(void *arg, probe_snapshot *out, genai_error *err)
{
    orch *o = arg;
    if (o->probe == NULL) {
        int rc = probe_ctx_open(&o->probe_opts.opts, &o->probe, err);
        if (rc < 0)
            return rc;
    }
    return probe_ctx_sample(o->probe, out, err);
}

/* ---- the LLM ------------------------------------------------------------------------------ */

static void set_reason(orch *o, const char *detail)
{
    snprintf(o->reason, sizeof(o->reason), "%s", detail);
}

static void on_rt_event(void *arg, llm_runtime *rt, const llm_rt_event *ev);

/* A runtime for the next start: kept across the attempts of one load, new
 * for each load (from the pinned configuration once there is one), so every
 * load starts from a clean supervisor and the environment of that moment. */
static int ensure_runtime(orch *o, genai_error *err)
{
    int want_pinned = o->have_pinned;
    if (o->rt != NULL && o->rt_pinned == want_pinned && o->attempt > 1)
        return 0;
    if (o->rt != NULL) {
        llm_rt_state st = llm_runtime_state(o->rt);
        if (st != LLM_RT_STOPPED && st != LLM_RT_FAILED)
            return err_set(err, GENAI_EBUSY, "the LLM runtime is still %s", llm_rt_state_name(st));
        llm_runtime_free(o->rt);
        o->rt = NULL;
    }
    int rc = llm_runtime_new(o->uv, want_pinned ? &o->pinned : &o->base, o->fp, on_rt_event, o,
                             &o->rt, err);
    if (rc < 0)
        return rc;
    o->rt_pinned = want_pinned;
    return 0;
}

/* The load is given up: keep the pinned configuration, say why, answer the
 * waiters; the next request tries again. */
static void load_failed(orch *o, int code, const char *detail)
{
    set_reason(o, detail);
    o->llm = ORCH_LLM_FAILED;
    o->wanted = 0;
    o->reloading = 0;
    o->after_swap = 0;
    o->ph = ORCH_PH_IDLE;
    if (o->llm_res != 0) {
        orch_res_remove(&o->res, o->llm_res);
        o->llm_res = 0;
    }
    if (o->have_pinned)
        o->stats.reload_failures++;
    orch_emit(o, ORCH_EV_LLM_FAILED, 0, o->attempt, code, 0, 0, o->reason);
    orch_req_fail_waiters(o, GENAI_EUNAVAILABLE, o->reason);
    orch_req_arm_timer(o);
}

static void load_attempt(orch *o)
{
    genai_error e;
    genai_error_clear(&e);
    uint64_t now = orch_now_ms();
    if (o->attempt == 0)
        o->reload_started_ms = now;
    o->attempt++;
    int rc = ensure_runtime(o, &e);
    if (rc == 0) {
        o->load_started_ms = now;
        rc = llm_runtime_start(o->rt, &e);
    }
    if (o->reloading) {
        o->stats.reload_attempts++;
        orch_emit(o, ORCH_EV_RELOAD_ATTEMPT, now - o->reload_started_ms, o->attempt, rc, 0, 0,
                  rc == 0 ? "started" : e.detail);
    } else {
        orch_emit(o, ORCH_EV_LLM_LOADING, 0, o->attempt, rc, 0, 0, rc == 0 ? "started" : e.detail);
    }
    if (rc == 0) {
        o->llm = ORCH_LLM_LOADING;
        o->ph = ORCH_PH_IDLE;
        const llm_rt_plan *pl = llm_runtime_plan(o->rt);
        uint32_t id;
        if (o->llm_res == 0 &&
            orch_res_add(&o->res, ORCH_KIND_LLM, o->base.model_id ? o->base.model_id : "llm",
                         pl ? &pl->demand : NULL, now, &id) == 0)
            o->llm_res = id;
        orch_res_set_state(&o->res, o->llm_res, ORCH_RES_LOADING, llm_runtime_pid(o->rt), now);
        return;
    }
    if (rc == GENAI_ENO_FIT && o->after_swap &&
        now - o->reload_started_ms < (uint64_t)o->o.reload_timeout_ms) {
        /* Memory may still be coming back: the same check again later. */
        set_reason(o, e.detail);
        o->llm = ORCH_LLM_RELOADING;
        o->ph = ORCH_PH_RELOAD_WAIT;
        uint64_t left = (uint64_t)o->o.reload_timeout_ms - (now - o->reload_started_ms);
        uint64_t d = (uint64_t)o->backoff_ms < left ? (uint64_t)o->backoff_ms : left;
        o->backoff_ms =
            o->backoff_ms * 2 > RELOAD_BACKOFF_MAX_MS ? RELOAD_BACKOFF_MAX_MS : o->backoff_ms * 2;
        uv_timer_start(&o->t_phase, on_phase_timer, d, 0);
        return;
    }
    load_failed(o, rc, e.detail);
}

/* Starts a (re)load now: the reclamation wait is behind us. */
static void begin_load(orch *o, int reload)
{
    o->reloading = reload;
    o->attempt = 0;
    o->backoff_ms = o->o.reload_backoff_ms;
    load_attempt(o);
}

/* Forgets the image side's entries once its memory is accounted for. */
static void drop_images(orch *o)
{
    for (uint32_t i = 0; i < o->res.n;) {
        if (o->res.e[i].kind == ORCH_KIND_IMAGE &&
            (o->running == NULL || o->res.e[i].id != o->running->res_id))
            orch_res_remove(&o->res, o->res.e[i].id);
        else
            i++;
    }
}

static void on_reload_reclaimed(void *arg, const orch_reclaim_result *r)
{
    orch *o = arg;
    o->stats.last_image_reclaim_ms = r->elapsed_ms;
    if (!r->ok)
        o->stats.reclaim_timeouts++;
    orch_emit(o, ORCH_EV_RECLAIMED, r->elapsed_ms, 0, r->ok ? 0 : GENAI_ETIMEOUT, 0, o->img_pid,
              r->ok ? "image memory reclaimed" : r->why);
    drop_images(o);
    o->after_swap = 1;
    begin_load(o, o->have_pinned);
    orch_kick(o);
}

/* The burst is over: wait for the image side's memory, then (re)load. */
static void end_burst(orch *o)
{
    o->ph = ORCH_PH_RECLAIM_IMG;
    o->llm = ORCH_LLM_RELOADING;
    orch_reclaim_target t;
    memset(&t, 0, sizeof(t));
    if (o->img_pid > 0)
        t.pids[t.n_pids++] = o->img_pid;
    if (o->have_llm_demand) {
        t.have_need = 1;
        t.need = o->llm_demand;
    }
    int rc =
        orch_reclaim_start(o->reclaim, &t, orch_sample, o, o->o.reclaim_first_ms,
                           o->o.reclaim_max_ms, o->o.reclaim_timeout_ms, on_reload_reclaimed, o);
    if (rc < 0) { /* cannot happen with the checked options; do not stall */
        o->after_swap = 1;
        begin_load(o, o->have_pinned);
    }
}

static void on_llm_reclaimed(void *arg, const orch_reclaim_result *r)
{
    orch *o = arg;
    o->stats.last_reclaim_ms = r->elapsed_ms;
    if (!r->ok)
        o->stats.reclaim_timeouts++;
    orch_emit(o, ORCH_EV_RECLAIMED, r->elapsed_ms, 0, r->ok ? 0 : GENAI_ETIMEOUT, o->offload_job,
              o->llm_pid, r->ok ? "LLM memory reclaimed" : r->why);
    if (o->llm_res != 0) {
        orch_res_remove(&o->res, o->llm_res);
        o->llm_res = 0;
    }
    o->llm = ORCH_LLM_AWAY;
    o->ph = ORCH_PH_IMAGES;
    o->burst = 0;
    o->burst_started_ms = orch_now_ms();
    orch_kick(o);
}

/* The LLM is stopped and reaped: watch its memory come back for the job. */
static void llm_stopped(orch *o)
{
    uint64_t now = orch_now_ms();
    o->stats.last_stop_ms = now - o->stop_started_ms;
    orch_emit(o, ORCH_EV_LLM_STOPPED, o->stats.last_stop_ms, 0, 0, o->offload_job, o->llm_pid, "");
    orch_res_set_state(&o->res, o->llm_res, ORCH_RES_LEAVING, 0, now);
    o->ph = ORCH_PH_RECLAIM_LLM;
    orch_reclaim_target t;
    memset(&t, 0, sizeof(t));
    if (o->llm_pid > 0)
        t.pids[t.n_pids++] = o->llm_pid;
    orch_job_rec *j = orch_job_find(o, o->offload_job);
    if (j != NULL && j->placed) {
        t.have_need = 1;
        t.need = j->demand;
    }
    if (orch_reclaim_start(o->reclaim, &t, orch_sample, o, o->o.reclaim_first_ms,
                           o->o.reclaim_max_ms, o->o.reclaim_timeout_ms, on_llm_reclaimed, o) < 0) {
        orch_reclaim_result r = {0, 0, 0, "watcher refused"};
        on_llm_reclaimed(o, &r);
    }
}

static void on_rt_event(void *arg, llm_runtime *rt, const llm_rt_event *ev)
{
    orch *o = arg;
    uint64_t now = orch_now_ms();
    (void)rt;
    switch (ev->state) {
    case LLM_RT_STARTING:
        if (ev->pid > 0) {
            o->llm_pid = ev->pid;
            orch_res_set_state(&o->res, o->llm_res, ORCH_RES_LOADING, ev->pid, now);
        }
        break;
    case LLM_RT_READY: {
        if (!o->have_pinned && pin_config(o) < 0)
            LOG_WARN(MOD, "could not pin the LLM configuration; a reload plans it again");
        /* What it holds: the footprint measured at READY, else the plan's. */
        const llm_rt_plan *pl = llm_runtime_plan(o->rt);
        if (llm_runtime_measured(o->rt, &o->llm_demand) == 1) {
            o->have_llm_demand = 1;
        } else if (pl != NULL) {
            o->llm_demand = pl->demand;
            o->have_llm_demand = 1;
        }
        if (o->have_llm_demand)
            orch_res_set_demand(&o->res, o->llm_res, &o->llm_demand);
        o->llm_pid = ev->pid;
        orch_res_set_state(&o->res, o->llm_res, ORCH_RES_RESIDENT, ev->pid, now);
        int was_loading = o->llm == ORCH_LLM_LOADING && o->load_started_ms != 0;
        uint64_t took = was_loading ? now - o->load_started_ms : 0;
        int attempts = o->reloading ? o->attempt : 0;
        o->llm = ORCH_LLM_READY;
        o->reason[0] = '\0';
        o->wanted = 1;
        if (was_loading) {
            o->stats.last_load_ms = took;
            o->load_started_ms = 0;
        }
        if (o->reloading) {
            o->stats.reloads++;
            o->stats.last_reload_ms = now - o->reload_started_ms;
            if (o->cycle_started_ms != 0)
                o->stats.last_cycle_ms = now - o->cycle_started_ms;
        }
        o->reloading = 0;
        o->after_swap = 0;
        o->cycle_started_ms = 0;
        orch_emit(o, ORCH_EV_LLM_READY, took, attempts, 0, 0, ev->pid,
                  attempts > 0 ? "reloaded" : "loaded");
        break;
    }
    case LLM_RT_CRASHED:
    case LLM_RT_RESTARTING:
        if (ev->state == LLM_RT_RESTARTING) {
            /* One per restart the supervisor schedules after a death. */
            o->stats.llm_restarts++;
            if (o->o.metrics != NULL)
                metrics_counter_add(o->o.metrics, "genai_llm_restarts_total",
                                    "Restarts of the LLM runtime after its process died", NULL, 1);
        }
        if (o->llm == ORCH_LLM_READY) {
            o->llm = ORCH_LLM_LOADING;
            o->load_started_ms = now;
            set_reason(o, ev->reason ? ev->reason : "crashed");
            orch_res_set_state(&o->res, o->llm_res, ORCH_RES_LOADING, 0, now);
        }
        break;
    case LLM_RT_STOPPED:
    case LLM_RT_FAILED:
        if (o->ph == ORCH_PH_STOP || o->ph == ORCH_PH_DRAIN) {
            if (o->ph == ORCH_PH_STOP)
                llm_stopped(o);
            /* In DRAIN the runtime died on its own; step() stops (a no-op)
             * and continues with the reclamation. */
            break;
        }
        if (ev->state == LLM_RT_FAILED) {
            const genai_error *le = llm_runtime_error(o->rt);
            load_failed(o, le->code ? le->code : GENAI_ECHILD_EXITED,
                        le->detail[0] ? le->detail : (ev->reason ? ev->reason : "failed"));
        } else if (o->llm != ORCH_LLM_FAILED) {
            o->llm = ORCH_LLM_ABSENT;
        }
        break;
    case LLM_RT_LOADING:
    case LLM_RT_STOPPING:
        break;
    }
    orch_kick(o);
}

/* ---- the phases ---------------------------------------------------------------- */

/* j: the image job that needs the GPU, or NULL for a hold. */
static void start_offload(orch *o, orch_job_rec *j)
{
    uint64_t now = orch_now_ms();
    o->offload_job = j != NULL ? j->pub.id : 0;
    o->cycle_started_ms = now;
    o->stats.offloads++;
    orch_emit(o, ORCH_EV_OFFLOAD_STARTED, 0, 0, 0, o->offload_job, o->llm_pid,
              j != NULL ? "the image job does not fit beside the LLM" : o->hold_why);
    o->llm = ORCH_LLM_DRAINING;
    o->ph = ORCH_PH_DRAIN;
    o->drain_started_ms = now;
    o->drain_deadline_ms = now + (uint64_t)o->o.drain_timeout_ms;
    uv_timer_start(&o->t_phase, on_phase_timer, (uint64_t)o->o.drain_timeout_ms, 0);
}

static void do_stop(orch *o)
{
    uint64_t now = orch_now_ms();
    size_t left = orch_gate_inflight(&o->gate);
    o->stats.last_drain_ms = now - o->drain_started_ms;
    if (left > 0) {
        char why[160];
        snprintf(why, sizeof(why),
                 "%zu request(s) still in flight after %d ms; their streams end with the stop",
                 left, o->o.drain_timeout_ms);
        o->stats.drain_timeouts++;
        orch_emit(o, ORCH_EV_DRAINED, o->stats.last_drain_ms, 0, GENAI_ETIMEOUT, o->offload_job, 0,
                  why);
    } else {
        orch_emit(o, ORCH_EV_DRAINED, o->stats.last_drain_ms, 0, 0, o->offload_job, 0, "");
    }
    uv_timer_stop(&o->t_phase);
    o->llm = ORCH_LLM_STOPPING;
    o->ph = ORCH_PH_STOP;
    o->stop_started_ms = now;
    pid_t pid = llm_runtime_pid(o->rt);
    if (pid > 0)
        o->llm_pid = pid;
    llm_rt_state st = llm_runtime_state(o->rt);
    if (st == LLM_RT_STOPPED || st == LLM_RT_FAILED) {
        llm_stopped(o); /* it died on its own meanwhile */
        return;
    }
    llm_runtime_stop(o->rt); /* STOPPED arrives as an event (maybe at once) */
}

static int min_residency_left(const orch *o, uint64_t since, uint64_t now, uint64_t *left)
{
    if (o->o.min_residency_ms <= 0 || since == 0)
        return 0;
    uint64_t until = since + (uint64_t)o->o.min_residency_ms;
    if (now >= until)
        return 0;
    *left = until - now;
    return 1;
}

static void step_idle(orch *o)
{
    orch_req_grant_waiters(o);
    if (o->n_holds > 0) {
        /* Held: the LLM goes aside once READY; nothing new starts. */
        if (o->llm == ORCH_LLM_READY) {
            start_offload(o, NULL);
            orch_kick(o);
        }
        return;
    }
    if (o->running != NULL)
        return; /* one job at a time (invariant 2) */
    orch_job_rec *j = orch_job_first_waiting(o);
    int loaded = o->llm == ORCH_LLM_READY || o->llm == ORCH_LLM_LOADING;
    if (!loaded) {
        if (j != NULL) {
            /* No LLM on the GPU: the images go first, then the LLM if wanted. */
            o->ph = ORCH_PH_IMAGES;
            o->burst = 0;
            o->burst_started_ms = orch_now_ms();
            o->llm = o->llm == ORCH_LLM_FAILED ? ORCH_LLM_FAILED : ORCH_LLM_AWAY;
            step(o);
            return;
        }
        if (o->have_llm && (o->wanted || orch_gate_waiting(&o->gate) > 0)) {
            o->wanted = 1;
            begin_load(o, o->have_pinned);
        }
        return;
    }
    if (j == NULL || o->llm != ORCH_LLM_READY)
        return; /* a loading LLM's footprint is not known yet: the job waits */
    genai_error e;
    genai_error_clear(&e);
    switch (orch_job_admit(o, j, &e)) {
    case ORCH_ADMIT_BESIDE: {
        char pl[96];
        plan_sd_placement_str(&j->placement, pl, sizeof(pl));
        orch_emit(o, ORCH_EV_IMAGE_PLACED, 0, 0, 0, j->pub.id, 0, pl);
        orch_job_dispatch(o, j, 1);
        break;
    }
    case ORCH_ADMIT_OFFLOAD: {
        uint64_t left;
        orch_resident *r = orch_res_find(&o->res, ORCH_KIND_LLM);
        if (r != NULL && min_residency_left(o, r->resident_ms, orch_now_ms(), &left)) {
            uv_timer_start(&o->t_phase, on_phase_timer, left, 0);
            return;
        }
        start_offload(o, j);
        break;
    }
    case ORCH_ADMIT_NO_FIT:
    case ORCH_ADMIT_ERROR:
        orch_job_finish(o, j, e.code ? e.code : GENAI_ENO_FIT, e.detail);
        orch_job_prune(o);
        break;
    }
    orch_kick(o);
}

static void step_images(orch *o)
{
    if (o->running != NULL || o->n_holds > 0)
        return;
    orch_job_rec *j = orch_job_first_waiting(o);
    int llm_wanted = o->have_llm && (o->wanted || orch_gate_waiting(&o->gate) > 0);
    uint64_t left;
    /* The job that caused the offload always runs; later ones while the
     * burst is short, and while no LLM request waits or the image side
     * has not had its minimum residency yet. */
    int over =
        o->burst > 0 && (o->burst >= (uint32_t)o->o.max_burst ||
                         (llm_wanted && orch_gate_waiting(&o->gate) > 0 &&
                          !min_residency_left(o, o->burst_started_ms, orch_now_ms(), &left)));
    if (j != NULL && !over) {
        o->burst++;
        orch_job_dispatch(o, j, o->llm == ORCH_LLM_READY);
        return;
    }
    if (llm_wanted) {
        end_burst(o);
        return;
    }
    drop_images(o);
    o->ph = ORCH_PH_IDLE;
    if (o->llm == ORCH_LLM_AWAY)
        o->llm = ORCH_LLM_ABSENT;
}

static void step(orch *o)
{
    if (o->freeing)
        return;
    switch (o->ph) {
    case ORCH_PH_IDLE:
        step_idle(o);
        break;
    case ORCH_PH_DRAIN:
        if (orch_gate_inflight(&o->gate) == 0 || orch_now_ms() >= o->drain_deadline_ms)
            do_stop(o);
        break;
    case ORCH_PH_IMAGES:
        step_images(o);
        break;
    case ORCH_PH_STOP:
    case ORCH_PH_RECLAIM_LLM:
    case ORCH_PH_RECLAIM_IMG:
    case ORCH_PH_RELOAD_WAIT:
        break; /* an event or a timer moves on */
    }
}

static void on_kick(uv_idle_t *h)
{
    orch *o = h->data;
    uv_idle_stop(h);
    step(o);
}

static void on_phase_timer(uv_timer_t *t)
{
    orch *o = t->data;
    if (o->ph == ORCH_PH_RELOAD_WAIT) {
        load_attempt(o);
        orch_kick(o);
        return;
    }
    step(o); /* drain deadline, minimum residency */
}

/* ---- public API ---------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    orch *o = h->data;
    if (--o->handles == 0)
        mem_free(o);
}

int orch_new(uv_loop_t *uv, const orch_opts *opts, orch **out, genai_error *err)
{
    orch *o = mem_calloc(1, sizeof(*o));
    if (o == NULL)
        return err_set(err, -ENOMEM, "orchestrator");
    o->uv = uv;
    o->o = *opts;
    o->o.llm = NULL;
    o->o.probe = NULL;
#define DEF(f, v)                                                                                  \
    if (o->o.f == 0)                                                                               \
    o->o.f = (v)
    DEF(min_residency_ms, DEF_MIN_RESIDENCY_MS);
    DEF(drain_timeout_ms, DEF_DRAIN_MS);
    DEF(reclaim_timeout_ms, DEF_RECLAIM_MS);
    DEF(reclaim_first_ms, DEF_RECLAIM_FIRST_MS);
    DEF(reclaim_max_ms, DEF_RECLAIM_MAX_MS);
    DEF(reload_timeout_ms, DEF_RELOAD_MS);
    DEF(reload_backoff_ms, DEF_RELOAD_BACKOFF_MS);
    DEF(image_timeout_ms, DEF_IMAGE_TIMEOUT_MS);
    DEF(max_waiters, DEF_MAX_WAITERS);
    DEF(max_burst, DEF_MAX_BURST);
    DEF(retry_after_default_s, DEF_RETRY_AFTER_S);
#undef DEF
    if (o->o.reclaim_max_ms < o->o.reclaim_first_ms)
        o->o.reclaim_max_ms = o->o.reclaim_first_ms;
    int rc = 0;
    if (probe_options_own(&o->probe_opts, opts->probe) < 0) {
        rc = err_set(err, -ENOMEM, "orchestrator options");
        goto fail_alloc;
    }
    o->fp = opts->fp;
    if (o->fp == NULL) {
        o->fp = plan_footprints_new();
        o->own_fp = 1;
        if (o->fp == NULL) {
            rc = err_set(err, -ENOMEM, "footprint table");
            goto fail_alloc;
        }
    }
    if (opts->llm != NULL) {
        if (opts->llm->model == NULL) {
            rc = err_set(err, GENAI_EBAD_ARG, "the LLM configuration names no model");
            goto fail_alloc;
        }
        if (cfg_copy(&o->base, opts->llm) < 0) {
            rc = err_set(err, -ENOMEM, "LLM configuration");
            goto fail_alloc;
        }
        o->have_llm = 1;
    }
    orch_gate_init(&o->gate, (size_t)o->o.max_waiters);
    orch_res_init(&o->res);
    o->next_job_id = 1;
    rc = orch_reclaim_new(uv, &o->reclaim, err);
    if (rc < 0)
        goto fail_alloc;

    o->max_pending = opts->image.max_pending ? opts->image.max_pending : 16;
    o->size_fn = opts->image.size_model;
    o->size_arg = opts->image.size_arg;
    o->user_on_progress = opts->image.on_progress;
    o->user_arg = opts->image.arg;
    img_runner_opts ro = opts->image;
    if (ro.probe == NULL && opts->probe != NULL)
        ro.probe = opts->probe;
    ro.on_state = orch_job_on_state;
    ro.on_progress = orch_job_on_progress;
    ro.arg = o;
    rc = img_runner_new(uv, &ro, &o->runner, err);
    if (rc < 0)
        goto fail_reclaim;

    uv_idle_init(uv, &o->kick);
    uv_timer_init(uv, &o->t_gate);
    uv_timer_init(uv, &o->t_phase);
    uv_timer_init(uv, &o->t_image);
    o->kick.data = o->t_gate.data = o->t_phase.data = o->t_image.data = o;
    o->handles = 4;
    *out = o;
    return 0;

fail_reclaim:
    orch_reclaim_free(o->reclaim);
fail_alloc:
    cfg_free(&o->base);
    orch_gate_free(&o->gate);
    if (o->own_fp)
        plan_footprints_free(o->fp);
    probe_options_owned_free(&o->probe_opts);
    mem_free(o);
    return rc;
}

void orch_free(orch *o)
{
    if (o == NULL)
        return;
    orch_req_fail_waiters(o, GENAI_ECANCELLED, "genai is shutting down");
    o->freeing = 1;
    orch_reclaim_free(o->reclaim);
    img_runner_free(o->runner);
    llm_runtime_free(o->rt);
    for (size_t i = 0; i < o->n_jobs; i++)
        orch_job_free(o->jobs[i]);
    mem_free(o->jobs);
    orch_gate_free(&o->gate);
    cfg_free(&o->base);
    cfg_free(&o->pinned);
    if (o->own_fp)
        plan_footprints_free(o->fp);
    probe_ctx_close(o->probe);
    probe_options_owned_free(&o->probe_opts);
    uv_close((uv_handle_t *)&o->kick, on_handle_closed);
    uv_close((uv_handle_t *)&o->t_gate, on_handle_closed);
    uv_close((uv_handle_t *)&o->t_phase, on_handle_closed);
    uv_close((uv_handle_t *)&o->t_image, on_handle_closed);
}

int orch_llm_load(orch *o, genai_error *err)
{
    if (!o->have_llm)
        return err_set(err, GENAI_ENOT_FOUND, "no LLM is configured");
    o->wanted = 1;
    orch_kick(o);
    return 0;
}

int orch_llm_configure(orch *o, const llm_rt_config *cfg, genai_error *err)
{
    if (cfg != NULL && cfg->model == NULL)
        return err_set(err, GENAI_EBAD_ARG, "the LLM configuration names no model");
    if (o->have_llm) {
        int idle_llm = o->llm == ORCH_LLM_ABSENT || o->llm == ORCH_LLM_FAILED ||
                       (o->llm == ORCH_LLM_AWAY && o->ph == ORCH_PH_IMAGES);
        llm_rt_state st = o->rt != NULL ? llm_runtime_state(o->rt) : LLM_RT_STOPPED;
        if (!idle_llm || (o->ph != ORCH_PH_IDLE && o->ph != ORCH_PH_IMAGES) ||
            orch_gate_waiting(&o->gate) > 0 || orch_gate_inflight(&o->gate) > 0 ||
            (st != LLM_RT_STOPPED && st != LLM_RT_FAILED))
            return err_set(err, GENAI_EBUSY, "the LLM %s is %s; unload it first",
                           o->base.model_id ? o->base.model_id : o->base.model,
                           orch_llm_state_name(o->llm));
    }
    llm_rt_config copy;
    memset(&copy, 0, sizeof(copy));
    if (cfg != NULL && cfg_copy(&copy, cfg) < 0)
        return err_set(err, -ENOMEM, "LLM configuration");
    llm_runtime_free(o->rt);
    o->rt = NULL;
    o->rt_pinned = 0;
    cfg_free(&o->base);
    cfg_free(&o->pinned);
    o->have_pinned = 0;
    o->have_llm_demand = 0;
    o->base = copy;
    o->have_llm = cfg != NULL;
    o->wanted = 0;
    o->attempt = 0;
    o->llm_pid = 0;
    o->reason[0] = '\0';
    if (o->ph == ORCH_PH_IDLE)
        o->llm = ORCH_LLM_ABSENT;
    return 0;
}

int orch_llm_unload(orch *o, genai_error *err)
{
    if (!o->have_llm)
        return err_set(err, GENAI_ENOT_FOUND, "no LLM is configured");
    switch (o->ph) {
    case ORCH_PH_IDLE:
        o->wanted = 0;
        orch_req_fail_waiters(o, GENAI_EUNAVAILABLE, "the LLM was unloaded");
        orch_req_arm_timer(o);
        if (o->llm == ORCH_LLM_READY || o->llm == ORCH_LLM_LOADING) {
            snprintf(o->hold_why, sizeof(o->hold_why), "unload");
            start_offload(o, NULL);
            orch_kick(o);
            return 0;
        }
        o->llm = ORCH_LLM_ABSENT;
        o->reason[0] = '\0';
        return 1;
    case ORCH_PH_DRAIN:
    case ORCH_PH_STOP:
    case ORCH_PH_RECLAIM_LLM:
        /* An offload is under way: it ends with the reclaimed event, and
         * without a wanted LLM the burst does not reload it. */
        o->wanted = 0;
        orch_req_fail_waiters(o, GENAI_EUNAVAILABLE, "the LLM was unloaded");
        orch_req_arm_timer(o);
        return 0;
    case ORCH_PH_IMAGES:
        o->wanted = 0;
        orch_req_fail_waiters(o, GENAI_EUNAVAILABLE, "the LLM was unloaded");
        orch_req_arm_timer(o);
        return 1;
    case ORCH_PH_RECLAIM_IMG:
    case ORCH_PH_RELOAD_WAIT:
        break;
    }
    return err_set(err, GENAI_EBUSY, "the LLM is being reloaded after an image burst; retry");
}

const char *orch_llm_model_id(const orch *o)
{
    return o->have_llm ? o->base.model_id : NULL;
}

const llm_rt_config *orch_llm_config(const orch *o)
{
    return o->have_llm ? &o->base : NULL;
}

orch_llm_state orch_llm_status(const orch *o, const char **reason)
{
    if (reason != NULL)
        *reason = o->reason;
    return o->llm;
}

pid_t orch_llm_pid(const orch *o)
{
    return o->rt != NULL ? llm_runtime_pid(o->rt) : 0;
}

llm_runtime *orch_llm_runtime(orch *o)
{
    return o->rt;
}

int orch_hold(orch *o, const char *why, uint32_t *id, genai_error *err)
{
    if (o->n_holds == ORCH_MAX_HOLDS)
        return err_set(err, GENAI_EBUSY, "%d holds already", ORCH_MAX_HOLDS);
    if (++o->next_hold == 0)
        o->next_hold = 1;
    o->holds[o->n_holds++] = o->next_hold;
    snprintf(o->hold_why, sizeof(o->hold_why), "%s", why != NULL ? why : "held");
    *id = o->next_hold;
    orch_kick(o);
    return 0;
}

int orch_unhold(orch *o, uint32_t id)
{
    for (size_t i = 0; i < o->n_holds; i++) {
        if (o->holds[i] == id) {
            o->holds[i] = o->holds[--o->n_holds];
            orch_kick(o);
            return 0;
        }
    }
    return GENAI_ENOT_FOUND;
}

size_t orch_holds(const orch *o)
{
    return o->n_holds;
}

size_t orch_child_pids(const orch *o, int32_t *out, size_t cap)
{
    size_t n = 0;
    pid_t llm = orch_llm_pid(o);
    if (llm > 0 && n < cap)
        out[n++] = llm;
    else if (o->llm_pid > 0 && n < cap && o->llm != ORCH_LLM_AWAY && o->llm != ORCH_LLM_ABSENT)
        out[n++] = o->llm_pid;
    if (o->running != NULL && o->img_pid > 0 && n < cap)
        out[n++] = o->img_pid;
    return n;
}

const orch_stats *orch_get_stats(const orch *o)
{
    return &o->stats;
}

const orch_residency *orch_get_residency(const orch *o)
{
    return &o->res;
}

const char *orch_llm_state_name(orch_llm_state st)
{
    static const char *const names[] = {"absent",   "loading", "ready",     "draining",
                                        "stopping", "away",    "reloading", "failed"};
    return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "unknown";
}

const char *orch_event_name(orch_event_type t)
{
    static const char *const names[] = {
        "llm_loading",   "llm_ready",   "llm_failed",     "offload_started",
        "drained",       "llm_stopped", "reclaimed",      "image_placed",
        "image_started", "image_done",  "reload_attempt", "request_timeout",
    };
    return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}
