/*
 * images.c - the orchestrator's image jobs (see images.h).
 *
 * A orch_job_rec is the orchestrator's record of one orch_image_submit: the deep
 * copy of the request with the model's settings applied, the sized model,
 * and once admitted the placement and demand the decision used. Admission
 * checks the job with plan_fit() next to the residents (the planner's
 * ladder from the requested placement), then on the same snapshot without
 * the LLM; orch.c's phase machine acts on the answer. Dispatch hands the
 * chosen placement to the runner as the floor of its own plan, records the
 * job in the residency table and starts the image timeout. The runner's
 * callbacks record what happened (pid, start, the result with the runner's
 * paragraph) and kick the machine: nothing is decided inside them
 * (invariant 1 in orch.c). Finished jobs are kept, JOBS_KEEP_FINISHED at
 * most, for orch_image_job.
 */
#include "orch/images.h"

#include "core/alloc.h"
#include "core/log.h"
#include "orch/reclaim.h"
#include "plan/autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define MOD "orch"

enum {
    JOBS_KEEP_FINISHED = 64,
};

static void on_image_timer(uv_timer_t *t);

/* ---- jobs -------------------------------------------------------------------------- */

orch_job_rec *orch_job_find(const orch *o, uint64_t id)
{
    for (size_t i = 0; i < o->n_jobs; i++)
        if (o->jobs[i]->pub.id == id)
            return o->jobs[i];
    return NULL;
}

static orch_job_rec *job_by_runner_id(const orch *o, uint64_t rid)
{
    for (size_t i = 0; i < o->n_jobs; i++)
        if (o->jobs[i]->pub.state == ORCH_JOB_SUBMITTED && o->jobs[i]->pub.runner_id == rid)
            return o->jobs[i];
    return NULL;
}

orch_job_rec *orch_job_first_waiting(const orch *o)
{
    for (size_t i = 0; i < o->n_jobs; i++)
        if (o->jobs[i]->pub.state == ORCH_JOB_WAITING)
            return o->jobs[i];
    return NULL;
}

void orch_job_free(orch_job_rec *j)
{
    if (j == NULL)
        return;
    img_request_free(&j->req);
    mem_free(j->pub.message);
    mem_free((img_resolution *)j->pub.resolution);
    mem_free(j);
}

/* Drops the oldest finished jobs beyond JOBS_KEEP_FINISHED. */
void orch_job_prune(orch *o)
{
    size_t done = 0;
    for (size_t i = 0; i < o->n_jobs; i++)
        done += o->jobs[i]->pub.state == ORCH_JOB_DONE;
    for (size_t i = 0; i < o->n_jobs && done > JOBS_KEEP_FINISHED;) {
        if (o->jobs[i]->pub.state != ORCH_JOB_DONE) {
            i++;
            continue;
        }
        orch_job_free(o->jobs[i]);
        memmove(&o->jobs[i], &o->jobs[i + 1], (o->n_jobs - i - 1) * sizeof(o->jobs[0]));
        o->n_jobs--;
        done--;
    }
}

void orch_job_finish(orch *o, orch_job_rec *j, int code, const char *message)
{
    uint64_t now = orch_now_ms();
    j->pub.state = ORCH_JOB_DONE;
    j->pub.code = code;
    j->pub.finished_ms = now;
    mem_free(j->pub.message);
    j->pub.message = code != 0 && message != NULL ? mem_strdup(message) : NULL;
    uint64_t ran = j->pub.started_ms ? now - j->pub.started_ms : 0;
    if (j->pub.started_ms)
        o->stats.last_image_ms = ran;
    orch_emit(o, ORCH_EV_IMAGE_DONE, ran, 0, code, j->pub.id, o->running == j ? o->img_pid : 0,
              message);
}

/* ---- admission ------------------------------------------------------------------------ */

static plan_sd_placement requested(const orch_job_rec *j, int gpu)
{
    plan_sd_placement p = {.diffusion_fa = j->req.diffusion_fa,
                           .vae_tiling = j->req.vae_tiling,
                           .te_on_cpu = j->req.te_on_cpu,
                           .vae_on_cpu = j->req.vae_on_cpu,
                           .offload_to_cpu = j->req.offload_to_cpu,
                           .gpu = gpu};
    return p;
}

/* The placement for j in env: the planner's ladder from the requested
 * placement (AUTO), or exactly the requested one (FIXED); recorded in j
 * when it fits. */
static int place(orch_job_rec *j, const plan_sd_placement *base, const plan_fit_env *env,
                 genai_error *err)
{
    plan_sd_request pr = {img_request_width(&j->req), img_request_height(&j->req),
                          img_request_batch(&j->req)};
    plan_sd_choice c;
    int rc;
    if (j->plan == IMG_PLAN_AUTO) {
        rc = plan_sd_autoconfig(&j->model, &pr, base, env, &c, err);
    } else {
        memset(&c, 0, sizeof(c));
        c.placement = *base;
        rc = plan_sd_estimate(&j->model, &pr, base, &c.demand, err);
        if (rc == 0)
            rc = plan_fit(env, &c.demand, &c.fit, err);
    }
    if (rc == 0) {
        j->placed = 1;
        j->placement = c.placement;
        j->demand = c.demand;
    }
    return rc;
}

orch_admit orch_job_admit(orch *o, orch_job_rec *j, genai_error *err)
{
    int rc;
    if (!j->has_model) {
        img_size_fn fn = o->size_fn != NULL ? o->size_fn : img_runner_size_from_files;
        rc = fn(o->size_arg, &j->req, &j->model, err);
        if (rc < 0) {
            err_prefix(err, "sizing the model");
            return ORCH_ADMIT_ERROR;
        }
        j->has_model = 1;
    }
    probe_snapshot snap;
    rc = orch_sample(o, &snap, err);
    if (rc < 0)
        return ORCH_ADMIT_ERROR;
    plan_sd_placement base = requested(j, snap.n_gpus > 0 ? 0 : -1);
    plan_resident res[ORCH_RES_MAX];
    uint32_t n = orch_res_residents(&o->res, 0, snap.taken_at_ms, res, ORCH_RES_MAX);
    plan_fit_env env;
    plan_fit_env_init(&env, &snap);
    env.residents = res;
    env.n_residents = n;
    orch_admit out = ORCH_ADMIT_ERROR;
    rc = place(j, &base, &env, err);
    if (rc == 0) {
        out = ORCH_ADMIT_BESIDE;
        goto done;
    }
    if (rc != GENAI_ENO_FIT)
        goto done;
    /* Would it fit with the LLM aside? The same snapshot without the LLM's
     * memory, and no LLM resident. */
    orch_resident *llm = orch_res_find(&o->res, ORCH_KIND_LLM);
    if (llm == NULL) {
        out = ORCH_ADMIT_NO_FIT;
        goto done;
    }
    orch_snapshot_without(&snap, llm->pid, &llm->demand);
    n = orch_res_residents(&o->res, llm->id, snap.taken_at_ms, res, ORCH_RES_MAX);
    env.n_residents = n;
    genai_error_clear(err);
    rc = place(j, &base, &env, err);
    if (rc == 0) {
        out = ORCH_ADMIT_OFFLOAD;
    } else if (rc == GENAI_ENO_FIT) {
        err_prefix(err, "the image job does not fit even with the LLM moved aside");
        out = ORCH_ADMIT_NO_FIT;
    }
done:
    probe_snapshot_free(&snap);
    return out;
}

/* Hands j to the runner. beside: the LLM stays. */
void orch_job_dispatch(orch *o, orch_job_rec *j, int beside)
{
    img_request req = j->req; /* shallow: the runner deep-copies */
    if (j->placed) {
        req.diffusion_fa = j->placement.diffusion_fa;
        req.vae_tiling = j->placement.vae_tiling;
        req.te_on_cpu = j->placement.te_on_cpu;
        req.vae_on_cpu = j->placement.vae_on_cpu;
        req.offload_to_cpu = j->placement.offload_to_cpu;
    }
    img_job_opts jo = {.plan = j->plan, .model = j->has_model ? &j->model : NULL};
    uint64_t rid = 0;
    genai_error e;
    genai_error_clear(&e);
    int rc = img_runner_submit(o->runner, &req, &jo, &rid, &e);
    if (rc < 0) {
        orch_job_finish(o, j, rc, e.detail);
        orch_kick(o);
        return;
    }
    j->pub.state = ORCH_JOB_SUBMITTED;
    j->pub.runner_id = rid;
    j->pub.offloaded = !beside;
    o->running = j;
    o->img_pid = 0;
    if (beside)
        o->stats.images_beside++;
    else
        o->stats.images_offloaded++;
    uint32_t id;
    if (orch_res_add(&o->res, ORCH_KIND_IMAGE, "sd-cli", j->placed ? &j->demand : NULL,
                     orch_now_ms(), &id) == 0)
        j->res_id = id;
    uv_timer_start(&o->t_image, on_image_timer, (uint64_t)o->o.image_timeout_ms, 0);
}

static void on_image_timer(uv_timer_t *t)
{
    orch *o = t->data;
    if (o->running == NULL)
        return;
    o->running->timed_out = 1;
    LOG_WARN(MOD, "image job %" PRIu64 " ran past %d ms; stopping it", o->running->pub.id,
             o->o.image_timeout_ms);
    img_runner_cancel(o->runner, o->running->pub.runner_id);
}

/* ---- runner callbacks ---------------------------------------------------------- */

void orch_job_on_progress(void *arg, img_runner *r, const img_job *job)
{
    orch *o = arg;
    const img_run_info *info = img_runner_info(r, job->id);
    if (o->running != NULL && o->running->pub.runner_id == job->id && info != NULL &&
        info->pid > 0 && o->img_pid != info->pid) {
        o->img_pid = info->pid;
        orch_res_set_state(&o->res, o->running->res_id, ORCH_RES_RESIDENT, info->pid,
                           orch_now_ms());
    }
    if (o->user_on_progress != NULL)
        o->user_on_progress(o->user_arg, r, job);
}

void orch_job_on_state(void *arg, img_runner *r, const img_job *job)
{
    orch *o = arg;
    orch_job_rec *j = job_by_runner_id(o, job->id);
    if (j == NULL)
        return;
    const img_run_info *info = img_runner_info(r, job->id);
    if (info != NULL && info->pid > 0)
        o->img_pid = info->pid;
    uint64_t now = orch_now_ms();
    if (job->state == IMG_JOB_RUNNING) {
        j->pub.started_ms = now;
        if (info != NULL && info->planned)
            orch_res_set_demand(&o->res, j->res_id, &info->demand);
        orch_res_set_state(&o->res, j->res_id, ORCH_RES_LOADING, o->img_pid, now);
        orch_emit(o, ORCH_EV_IMAGE_STARTED, 0, 0, 0, j->pub.id, 0, "");
        return;
    }
    if (job->state == IMG_JOB_QUEUED)
        return;
    uv_timer_stop(&o->t_image);
    int code = job->state == IMG_JOB_SUCCEEDED ? 0 : job->error_code;
    char msg[ORCH_REASON_MAX];
    const char *text = info != NULL && info->message != NULL ? info->message : job->error;
    if (j->timed_out) {
        code = GENAI_ETIMEOUT;
        snprintf(msg, sizeof(msg), "the image job ran past %d ms and was stopped",
                 o->o.image_timeout_ms);
        text = msg;
    }
    if (code == 0 && job->state != IMG_JOB_SUCCEEDED)
        code = GENAI_ECHILD_EXITED;
    orch_job_finish(o, j, code, text);
    o->running = NULL;
    /* Beside the LLM its memory needs no watching before the next decision
     * (the planner reads the driver's figures); after an offload it is
     * watched before the reload (end_burst). */
    if (o->ph == ORCH_PH_IMAGES)
        orch_res_set_state(&o->res, j->res_id, ORCH_RES_LEAVING, 0, now);
    else
        orch_res_remove(&o->res, j->res_id);
    orch_job_prune(o);
    orch_kick(o);
}

/* ---- public API ---------------------------------------------------------------- */

int orch_image_submit(orch *o, const img_request *req, const img_job_opts *jo, uint64_t *id,
                      genai_error *err)
{
    int rc = img_request_validate(req, err);
    if (rc < 0)
        return rc;
    size_t pending = 0;
    for (size_t i = 0; i < o->n_jobs; i++)
        pending += o->jobs[i]->pub.state != ORCH_JOB_DONE;
    if (pending >= o->max_pending)
        return err_set(err, GENAI_EBUSY, "%zu image jobs are pending; retry later", pending);
    if (o->n_jobs == o->cap_jobs) {
        size_t cap = o->cap_jobs ? o->cap_jobs * 2 : 16;
        orch_job_rec **v = mem_reallocarray(o->jobs, cap, sizeof(*v));
        if (v == NULL)
            return err_set(err, -ENOMEM, "image job");
        o->jobs = v;
        o->cap_jobs = cap;
    }
    orch_job_rec *j = mem_calloc(1, sizeof(*j));
    if (j == NULL)
        return err_set(err, -ENOMEM, "image job");
    if (img_request_copy(&j->req, req) < 0) {
        mem_free(j);
        return err_set(err, -ENOMEM, "image job");
    }
    /* The model's settings before admission: the plan must see the size,
     * steps and structure that will run (SDXL's 1024x1024 when the request
     * left the size out), and the runner must not resolve a second time. */
    if (!j->req.settings_applied) {
        img_resolution *res = mem_calloc(1, sizeof(*res));
        if (res == NULL) {
            orch_job_free(j);
            return err_set(err, -ENOMEM, "image job");
        }
        rc = img_resolve(&j->req, res, err);
        if (rc < 0) {
            mem_free(res);
            orch_job_free(j);
            return rc;
        }
        for (size_t i = 0; i < res->resolved.n_warnings; i++)
            LOG_INFO(MOD, "%s", res->resolved.warnings[i].message);
        j->pub.resolution = res;
    }
    rc = img_request_resolve_seed(&j->req, err);
    if (rc < 0) {
        orch_job_free(j);
        return rc;
    }
    j->plan = jo != NULL ? jo->plan : IMG_PLAN_AUTO;
    if (jo != NULL && jo->model != NULL) {
        j->model = *jo->model;
        j->has_model = 1;
    } else if (o->size_fn == NULL && j->pub.resolution != NULL && j->pub.resolution->known) {
        j->model = j->pub.resolution->plan; /* the family's structure, as the runner does */
        j->has_model = 1;
    }
    j->pub.id = o->next_job_id++;
    j->pub.state = ORCH_JOB_WAITING;
    j->pub.created_ms = orch_now_ms();
    o->jobs[o->n_jobs++] = j;
    *id = j->pub.id;
    orch_kick(o);
    return 0;
}

int orch_image_cancel(orch *o, uint64_t id)
{
    orch_job_rec *j = orch_job_find(o, id);
    if (j == NULL || j->pub.state == ORCH_JOB_DONE)
        return GENAI_ENOT_FOUND;
    if (j->pub.state == ORCH_JOB_WAITING) {
        orch_job_finish(o, j, GENAI_ECANCELLED, "job cancelled by client");
        orch_kick(o);
        return 0;
    }
    int rc = img_runner_cancel(o->runner, j->pub.runner_id);
    return rc < 0 ? rc : 0;
}

const orch_job *orch_image_job(const orch *o, uint64_t id)
{
    orch_job_rec *j = orch_job_find(o, id);
    return j != NULL ? &j->pub : NULL;
}

img_runner *orch_runner(orch *o)
{
    return o->runner;
}

size_t orch_images_pending(const orch *o)
{
    size_t n = 0;
    for (size_t i = 0; i < o->n_jobs; i++)
        n += o->jobs[i]->pub.state != ORCH_JOB_DONE;
    return n;
}
