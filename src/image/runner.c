/*
 * runner.c - the image job runner (see runner.h).
 *
 * One job at a time. Its life on the loop thread:
 *
 *   submit -> kick (uv_idle) -> start_next: plan, find sd-cli, argv, workdir,
 *             sup_start  ..... on_line: progress, tails
 *                        ..... on_sup_event (STOPPED or FAILED, reaped):
 *                              record the status, kick
 *          -> kick -> finish_run: sup_free, PNGs or failure report, remove
 *             the workdir, job finished -> start_next
 *
 * The supervisor may not be freed from its own event callback (its
 * invariant 7), which is why the end of a run is handled from the idle
 * handle, like every other "run again now" (a 0 ms timer re-armed from its
 * callback livelocks libuv before 1.48, DESIGN.md).
 *
 * Invariants:
 *  1. r->sup != NULL exactly while a job is running with a spawned sd-cli
 *     (r->cur_id names it); r->workdir[0] != '\0' while its output
 *     directory exists.
 *  2. A job is finished (img_jobs_succeed / img_jobs_fail) only after
 *     sd-cli is reaped and its pipes are closed, and its output directory
 *     is removed before the job's end is announced.
 *  3. Each job in the registry has one img_run_info; infos of jobs the
 *     registry dropped are freed (prune_infos) after every call that can
 *     drop jobs.
 */
#include "image/runner.h"

#include "core/alloc.h"
#include "core/log.h"
#include "core/paths.h"
#include "core/sbuf.h"
#include "diffusion/family.h"
#include "image/binary.h"
#include "image/png.h"
#include "image/progress.h"
#include "plan/autoconf.h"
#include "plan/fit.h"
#include "proc/classify.h"
#include "proc/lines.h"
#include "proc/run.h"
#include "proc/spawn.h"
#include "proc/supervisor.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MOD "image"

enum {
    RUN_DEFAULT_PENDING = 16,
    RUN_DEFAULT_FINISHED = 32,
    RUN_DEFAULT_KEEP_MS = 600000, /* sd-server keeps finished jobs 600 s (contract §8.4) */
    /* sd-cli has no signal handler: the first SIGTERM kills it (contract §6,
     * status 143). The grace only matters for a process stuck in the driver. */
    RUN_DEFAULT_GRACE_MS = 2000,
    RUN_DEFAULT_TERM2_MS = 1000,
    RUN_DEFAULT_VERSION_MS = 10000,
    RUN_TAIL_ALL = 48, /* log lines of both streams kept for classification */
    RUN_TAIL_ERR = 12, /* stderr lines kept for the report */
    RUN_REPORT_LINES = 8,
    RUN_VERSION_MAX = 64 * 1024,
    RUN_EXPIRE_MAX_MS = 1000,
};

struct img_runner {
    uv_loop_t *uv;
    img_runner_opts o; /* pointers refer to the copies below */
    char *sd_cli_cfg;
    char *work_parent;
    char *log_dir;
    char **envp;
    probe_options probe_opts;
    char *probe_root, *probe_nvml, *probe_fake;
    probe_ctx *probe;

    img_jobs jobs;
    img_run_info **infos;
    size_t n_infos, cap_infos;
    /* per-job options that outlive submit: plan mode and model sizes */
    struct job_extra {
        uint64_t id;
        int has_model;
        plan_sd_model model;
    } * extras;
    size_t n_extras, cap_extras;

    /* sd-cli, found and asked for its version once */
    int bin_known;
    char bin[PATHS_MAX];
    img_sd_version version;

    /* the running job (invariant 1) */
    uint64_t cur_id;
    sup *sup;
    int run_done;
    char workdir[PATHS_MAX];
    img_progress prog;
    proc_ring tail_all, tail_err;

    uv_idle_t kick;
    uv_timer_t expire_timer;
    int handles;
    int freeing;
};

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

/* ---- strings ------------------------------------------------------------- */

static char *dup_or_null(const char *s, int *failed)
{
    if (s == NULL)
        return NULL;
    char *c = mem_strdup(s);
    if (c == NULL)
        *failed = 1;
    return c;
}

static char **copy_strv(const char *const *v, int *failed)
{
    if (v == NULL)
        return NULL;
    size_t n = 0;
    while (v[n] != NULL)
        n++;
    char **c = mem_calloc(n + 1, sizeof(char *));
    if (c == NULL) {
        *failed = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        c[i] = mem_strdup(v[i]);
        if (c[i] == NULL) {
            *failed = 1;
            break;
        }
    }
    return c;
}

static void free_strv(char **v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; v[i] != NULL; i++)
        mem_free(v[i]);
    mem_free(v);
}

/* argv joined by spaces, arguments with spaces or quotes in single quotes. */
static char *join_argv(char **argv)
{
    sbuf b = SBUF_INIT;
    for (size_t i = 0; argv[i] != NULL; i++) {
        const char *a = argv[i];
        if (i > 0)
            sbuf_puts(&b, " ");
        if (a[0] != '\0' && strpbrk(a, " \t\n'\"\\$`") == NULL) {
            sbuf_puts(&b, a);
            continue;
        }
        sbuf_puts(&b, "'");
        for (const char *p = a; *p; p++) {
            if (*p == '\'')
                sbuf_puts(&b, "'\\''");
            else
                sbuf_append(&b, p, 1);
        }
        sbuf_puts(&b, "'");
    }
    if (sbuf_error(&b)) {
        sbuf_free(&b);
        return NULL;
    }
    return sbuf_take(&b);
}

/* ---- per-job records ------------------------------------------------------ */

static void info_free(img_run_info *in)
{
    if (in == NULL)
        return;
    mem_free(in->cmdline);
    mem_free(in->tail);
    mem_free(in->message);
    mem_free(in->resolution);
    mem_free(in);
}

static img_run_info *find_info(const img_runner *r, uint64_t id)
{
    for (size_t i = 0; i < r->n_infos; i++)
        if (r->infos[i]->job_id == id)
            return r->infos[i];
    return NULL;
}

static struct job_extra *find_extra(const img_runner *r, uint64_t id)
{
    for (size_t i = 0; i < r->n_extras; i++)
        if (r->extras[i].id == id)
            return &r->extras[i];
    return NULL;
}

/* Invariant 3: forget the records of jobs the registry dropped. */
static void prune_infos(img_runner *r)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n_infos; i++) {
        if (img_jobs_get(&r->jobs, r->infos[i]->job_id) != NULL)
            r->infos[k++] = r->infos[i];
        else
            info_free(r->infos[i]);
    }
    r->n_infos = k;
    k = 0;
    for (size_t i = 0; i < r->n_extras; i++) {
        const img_job *j = img_jobs_get(&r->jobs, r->extras[i].id);
        /* A finished job no longer needs its options. */
        if (j != NULL && (j->state == IMG_JOB_QUEUED || j->state == IMG_JOB_RUNNING))
            r->extras[k++] = r->extras[i];
    }
    r->n_extras = k;
}

/* ---- callbacks to the owner --------------------------------------------- */

static void announce_state(img_runner *r, uint64_t id)
{
    const img_job *j = img_jobs_get(&r->jobs, id);
    if (j != NULL && r->o.on_state != NULL && !r->freeing)
        r->o.on_state(r->o.arg, r, j);
}

static void on_kick(uv_idle_t *h);

static void kick(img_runner *r)
{
    if (!r->freeing)
        uv_idle_start(&r->kick, on_kick);
}

/* ---- model sizes ---------------------------------------------------------- */

static int file_size(const char *path, uint64_t *out, genai_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return err_errno(err, errno, "model file '%s'", path);
    *out = (uint64_t)st.st_size;
    return 0;
}

/* Module sizes and structure from the files' tensor tables (src/diffusion).
 * 0, or a negative code when the files are not a model genai can read. */
static int size_from_tensors(const img_request *req, plan_sd_model *out, genai_error *err)
{
    dm_component comps[5];
    size_t n = 0;
    comps[n++] = (dm_component){DM_ROLE_MODEL, req->model ? req->model : req->diffusion_model};
    if (req->clip_l != NULL)
        comps[n++] = (dm_component){DM_ROLE_CLIP_L, req->clip_l};
    if (req->clip_g != NULL)
        comps[n++] = (dm_component){DM_ROLE_CLIP_G, req->clip_g};
    if (req->t5xxl != NULL)
        comps[n++] = (dm_component){DM_ROLE_T5XXL, req->t5xxl};
    if (req->vae != NULL)
        comps[n++] = (dm_component){DM_ROLE_VAE, req->vae};
    dm_detection d;
    int rc = dm_detect_paths(comps, n, &d, err);
    if (rc < 0)
        return rc;
    return dm_plan_model(&d, out, err);
}

int img_runner_size_from_files(void *arg, const img_request *req, plan_sd_model *out,
                               genai_error *err)
{
    (void)arg;
    genai_error de;
    if (size_from_tensors(req, out, &de) == 0)
        return 0;
    LOG_INFO(MOD, "model sizes from file sizes (%s)", de.detail);
    plan_sd_model m;
    memset(&m, 0, sizeof(m));
    uint64_t sz = 0;
    int rc;
    if (req->model != NULL) {
        rc = file_size(req->model, &sz, err);
        if (rc < 0)
            return rc;
        /* Typical shares of a full checkpoint (SD 1.5 F16: CLIP 12 %, VAE 8 %,
         * UNet 80 %; SDXL: CLIP-L + CLIP-G 24 %, VAE 2 %, UNet 74 %). A
         * model reader that knows the tensor table replaces this. */
        m.text_encoder_bytes = sz / 5;
        m.vae_bytes = sz / 20;
        m.diffusion_bytes = sz - m.text_encoder_bytes - m.vae_bytes;
    } else if (req->diffusion_model != NULL) {
        rc = file_size(req->diffusion_model, &m.diffusion_bytes, err);
        if (rc < 0)
            return rc;
    }
    const char *te[] = {req->clip_l, req->clip_g, req->t5xxl};
    for (size_t i = 0; i < 3; i++) {
        if (te[i] == NULL)
            continue;
        rc = file_size(te[i], &sz, err);
        if (rc < 0)
            return rc;
        m.text_encoder_bytes += sz;
    }
    if (req->vae != NULL) {
        rc = file_size(req->vae, &sz, err);
        if (rc < 0)
            return rc;
        m.vae_bytes = sz;
    }
    *out = m;
    return 0;
}

/* ---- planning ------------------------------------------------------------- */

static uint64_t total_deficit(const plan_fit_result *f)
{
    uint64_t d = f->host_deficit;
    for (uint32_t i = 0; i < f->n_gpus && i < PLAN_MAX_GPUS; i++)
        d += f->gpu_deficit[i];
    return d;
}

static int plan_job(img_runner *r, img_job *j, img_run_info *info, genai_error *err)
{
    plan_sd_model m;
    const struct job_extra *x = find_extra(r, j->id);
    int rc;
    if (x != NULL && x->has_model) {
        m = x->model;
    } else {
        img_size_fn fn = r->o.size_model != NULL ? r->o.size_model : img_runner_size_from_files;
        rc = fn(r->o.size_arg, &j->req, &m, err);
        if (rc < 0)
            return err_prefix(err, "sizing the model");
    }
    if (r->probe == NULL) {
        rc = probe_ctx_open(&r->probe_opts, &r->probe, err);
        if (rc < 0)
            return rc;
    }
    probe_snapshot snap;
    rc = probe_ctx_sample(r->probe, &snap, err);
    if (rc < 0)
        return rc;

    plan_sd_request pr = {img_request_width(&j->req), img_request_height(&j->req),
                          img_request_batch(&j->req)};
    /* sd.cpp computes on its first device unless told otherwise. */
    plan_sd_placement base = {.diffusion_fa = j->req.diffusion_fa,
                              .vae_tiling = j->req.vae_tiling,
                              .te_on_cpu = j->req.te_on_cpu,
                              .vae_on_cpu = j->req.vae_on_cpu,
                              .offload_to_cpu = j->req.offload_to_cpu,
                              .gpu = snap.n_gpus > 0 ? 0 : -1};
    plan_fit_env env;
    plan_fit_env_init(&env, &snap);
    if (info->plan == IMG_PLAN_AUTO) {
        plan_sd_choice c;
        rc = plan_sd_autoconfig(&m, &pr, &base, &env, &c, err);
        if (rc == 0 || rc == GENAI_ENO_FIT) {
            info->placement = c.placement;
            info->demand = c.demand;
            info->fits = rc == 0;
            info->deficit = total_deficit(&c.fit);
        }
    } else {
        rc = plan_sd_estimate(&m, &pr, &base, &info->demand, err);
        if (rc == 0) {
            plan_fit_result f;
            genai_error fe;
            info->placement = base;
            info->fits = plan_fit(&env, &info->demand, &f, &fe) == 0;
            info->deficit = info->fits ? 0 : total_deficit(&f);
            if (!info->fits)
                LOG_WARN(MOD,
                         "job %llu: the fixed placement does not fit (%s); running it "
                         "as asked",
                         (unsigned long long)j->id, fe.detail);
        }
    }
    probe_snapshot_free(&snap);
    if (rc < 0 && rc != GENAI_ENO_FIT)
        return rc;
    info->planned = 1;
    plan_sd_placement_str(&info->placement, info->placement_str, sizeof(info->placement_str));
    if (rc == GENAI_ENO_FIT)
        return rc;
    j->req.diffusion_fa = info->placement.diffusion_fa;
    j->req.vae_tiling = info->placement.vae_tiling;
    j->req.te_on_cpu = info->placement.te_on_cpu;
    j->req.vae_on_cpu = info->placement.vae_on_cpu;
    j->req.offload_to_cpu = info->placement.offload_to_cpu;
    LOG_INFO(MOD, "job %llu: placement %s (%s plan, GPU %llu MiB, host %llu MiB%s)",
             (unsigned long long)j->id, info->placement_str, img_plan_mode_name(info->plan),
             (unsigned long long)(plan_demand_gpu_total(&info->demand) / PLAN_MIB),
             (unsigned long long)(info->demand.host_anon / PLAN_MIB),
             info->fits ? "" : ", does not fit");
    return 0;
}

/* ---- finding sd-cli -------------------------------------------------------- */

static int discover(img_runner *r, genai_error *err)
{
    if (r->bin_known)
        return 0;
    char bin[PATHS_MAX];
    int rc = img_bin_find(r->sd_cli_cfg, "GENAI_SD_CLI", "sd-cli", bin, sizeof(bin), err);
    if (rc < 0)
        return rc;
    const char *argv[] = {bin, "--version", NULL};
    proc_capture cap;
    rc = proc_run_capture(argv, r->o.version_timeout_ms, RUN_VERSION_MAX, &cap, err);
    if (rc < 0)
        return err_prefix(err, "running '%s --version'", bin);
    img_sd_version v;
    genai_error ve;
    if (!cap.exited || cap.exit_code != 0) {
        rc = err_set(err, GENAI_ECHILD_EXITED, "'%s --version' %s %d: %.200s", bin,
                     cap.exited ? "exited with code" : "was killed by signal",
                     cap.exited ? cap.exit_code : cap.term_signal, cap.err);
        proc_capture_free(&cap);
        return rc;
    }
    if (img_version_parse(cap.out, cap.out_len, &v, &ve) < 0) {
        /* An unknown build is driven as the current one (docs/image-driver.md). */
        LOG_WARN(MOD, "%s: unrecognised --version output (%s); assuming a current build", bin,
                 ve.detail);
        memset(&v, 0, sizeof(v));
    }
    proc_capture_free(&cap);
    memcpy(r->bin, bin, sizeof(bin));
    r->version = v;
    r->bin_known = 1;
    LOG_INFO(MOD, "sd-cli: %s, version %s-%u-%s", r->bin, v.branch[0] ? v.branch : "unknown",
             v.count, v.sha7);
    return 0;
}

/* ---- running ---------------------------------------------------------------- */

static void on_sup_line(void *arg, sup *s, int stream, const char *line, size_t len)
{
    (void)s;
    img_runner *r = arg;
    img_job *j = img_jobs_get(&r->jobs, r->cur_id);
    if (j == NULL)
        return;
    enum img_line_kind k = img_progress_feed(&r->prog, line, len);
    if (k == IMG_LINE_LOG || k == IMG_LINE_OTHER) {
        char clean[1024];
        size_t n = proc_strip_ansi(clean, sizeof(clean), line, len);
        proc_ring_push(&r->tail_all, clean, n);
        if (stream == 2)
            proc_ring_push(&r->tail_err, clean, n);
    }
    const img_progress *a = &r->prog, *b = &j->progress;
    if (a->stage == b->stage && a->image == b->image && a->images == b->images &&
        a->step == b->step && a->steps == b->steps && a->percent == b->percent &&
        a->loading == b->loading && a->load_done == b->load_done &&
        a->load_total == b->load_total && a->tiles_done == b->tiles_done &&
        a->latents_decoded == b->latents_decoded && a->width == b->width && a->seed == b->seed)
        return;
    img_jobs_set_progress(&r->jobs, r->cur_id, &r->prog);
    if (r->o.on_progress != NULL && !r->freeing)
        r->o.on_progress(r->o.arg, r, j);
}

static void on_sup_event(void *arg, sup *s, const sup_event *ev)
{
    (void)s;
    img_runner *r = arg;
    img_run_info *info = find_info(r, r->cur_id);
    if (ev->state == SUP_STARTED && info != NULL) {
        info->pid = ev->pid;
        return;
    }
    if (!ev->reaped || (ev->state != SUP_STOPPED && ev->state != SUP_FAILED))
        return;
    if (info != NULL) {
        info->ended = 1;
        info->exited = ev->exited;
        info->exit_code = ev->exit_code;
        info->term_signal = ev->term_signal;
        info->pid = 0;
    }
    r->run_done = 1;
    kick(r);
}

static int launch(img_runner *r, img_job *j, img_run_info *info, genai_error *err)
{
    int rc = plan_job(r, j, info, err);
    if (rc < 0)
        return rc;
    rc = discover(r, err);
    if (rc < 0)
        return rc;
    const char *parent = r->work_parent;
    if (parent == NULL) {
        parent = getenv("TMPDIR");
        if (parent == NULL || parent[0] != '/')
            parent = "/tmp";
    }
    rc = img_workdir_create(parent, r->workdir, sizeof(r->workdir), err);
    if (rc < 0) {
        r->workdir[0] = '\0';
        return rc;
    }
    img_argv a;
    rc = img_argv_build(&j->req, &r->version, r->bin, r->workdir, &a, err);
    if (rc < 0)
        return rc;
    info->cmdline = join_argv(a.argv);
    LOG_DEBUG(MOD, "job %llu: %s", (unsigned long long)j->id,
              info->cmdline ? info->cmdline : "(out of memory)");
    img_progress_init(&r->prog, img_request_batch(&j->req), img_request_steps(&j->req));
    proc_ring_clear(&r->tail_all);
    proc_ring_clear(&r->tail_err);
    r->run_done = 0;
    sup_opts so = {.name = "sd-cli",
                   .argv = (const char *const *)a.argv,
                   .envp = (const char *const *)r->envp,
                   .log_dir = r->log_dir,
                   .oneshot = 1,
                   .eager_erase_line = 1, /* bars end in ESC[K, not a newline */
                   .stop_grace_ms = r->o.stop_grace_ms,
                   .stop_term2_ms = r->o.stop_term2_ms,
                   .patterns = proc_patterns_sd,
                   .on_event = on_sup_event,
                   .on_line = on_sup_line,
                   .arg = r};
    rc = sup_new(r->uv, &so, &r->sup, err);
    img_argv_free(&a);
    if (rc < 0) {
        r->sup = NULL;
        return rc;
    }
    rc = sup_start(r->sup, err);
    if (rc < 0) {
        sup_free(r->sup);
        r->sup = NULL;
        return err_prefix(err, "starting %s", r->bin);
    }
    return 0;
}

static void remove_workdir(img_runner *r)
{
    if (r->workdir[0] == '\0')
        return;
    genai_error e;
    if (img_workdir_remove(r->workdir, &e) < 0)
        LOG_WARN(MOD, "removing %s: %s", r->workdir, e.detail);
    r->workdir[0] = '\0';
}

static void start_next(img_runner *r)
{
    for (;;) {
        if (r->sup != NULL || r->freeing)
            return;
        img_job *j = img_jobs_start_next(&r->jobs, now_ms());
        if (j == NULL)
            return;
        uint64_t id = j->id;
        r->cur_id = id;
        img_run_info *info = find_info(r, id);
        announce_state(r, id);
        j = img_jobs_get(&r->jobs, id);
        genai_error e;
        genai_error_clear(&e);
        int rc = info != NULL ? launch(r, j, info, &e) : err_set(&e, -ENOMEM, "job record");
        if (rc == 0)
            return;
        /* Nothing ran, or the spawn failed: the job fails with the reason. */
        LOG_INFO(MOD, "job %llu not started: %s", (unsigned long long)id, e.detail);
        remove_workdir(r);
        if (info != NULL) {
            mem_free(info->message);
            info->message = mem_strdup(e.detail);
        }
        r->cur_id = 0;
        img_jobs_fail(&r->jobs, id, rc, e.detail, now_ms());
        announce_state(r, id);
        prune_infos(r);
    }
}

/* ---- the end of a run -------------------------------------------------------- */

static void append_tail(const proc_ring *ring, sbuf *out)
{
    sbuf all = SBUF_INIT;
    proc_ring_join(ring, RUN_REPORT_LINES, &all);
    sbuf_puts(out, sbuf_str(&all));
    sbuf_free(&all);
}

/* One paragraph: what happened to the process, the cause, the evidence, what
 * to try. */
static char *compose_failure(const img_runner *r, const img_run_info *info, img_failure f,
                             sbuf *tail)
{
    sbuf b = SBUF_INIT;
    if (info->exited)
        sbuf_printf(&b, "sd-cli exited with code %d", info->exit_code);
    else
        sbuf_printf(&b, "sd-cli was killed by signal %d (%s)", info->term_signal,
                    strsignal(info->term_signal));
    sbuf_printf(&b, ": %s (%s).", img_cause_message(f.cause), img_cause_name(f.cause));
    if (info->planned)
        sbuf_printf(&b, " Placement: %s%s.", info->placement_str,
                    info->plan == IMG_PLAN_FIXED ? " (fixed by the caller)" : "");
    if (f.cause == IMG_CAUSE_OUT_OF_MEMORY && info->plan == IMG_PLAN_FIXED)
        sbuf_puts(&b, " Let genai choose the placement (drop the fixed plan), or add "
                      "--te-cpu, --vae-tiling or --offload.");
    else if (f.cause == IMG_CAUSE_OUT_OF_MEMORY)
        sbuf_puts(&b, " The estimate was short: try a smaller size or --offload.");
    else if (f.cause == IMG_CAUSE_BAD_ARGUMENT)
        sbuf_printf(&b,
                    " Check the sampler and scheduler names against this build "
                    "(master-%u).",
                    r->version.count);
    else if (f.cause == IMG_CAUSE_CRASH || f.cause == IMG_CAUSE_UNKNOWN)
        sbuf_puts(&b, " Run with GENAI_LOG_LEVEL=debug to see the full command line.");
    if (tail->len > 0) {
        sbuf_puts(&b, " Last lines:\n");
        const char *p = sbuf_str(tail);
        while (*p) {
            size_t n = strcspn(p, "\n");
            sbuf_printf(&b, "  %.*s\n", (int)n, p);
            p += n;
            if (*p)
                p++;
        }
    }
    if (sbuf_error(&b)) {
        sbuf_free(&b);
        return NULL;
    }
    return sbuf_take(&b);
}

static int collect_results(img_runner *r, const img_job *j, img_result **out, uint32_t *n_out,
                           genai_error *err)
{
    uint32_t n = img_request_batch(&j->req);
    img_result *res = mem_calloc(n, sizeof(*res));
    if (res == NULL)
        return err_set(err, -ENOMEM, "image results");
    for (uint32_t i = 0; i < n; i++) {
        char path[PATHS_MAX];
        img_png_info pi;
        int rc = img_output_path(r->workdir, n, i, path, sizeof(path));
        if (rc == 0)
            rc = img_png_read_file(path, 0, &res[i].png, &res[i].png_len, &pi, err);
        if (rc < 0) {
            img_results_free(res, n);
            return err_prefix(err, "image %u of %u", i + 1, n);
        }
        res[i].width = pi.width;
        res[i].height = pi.height;
        res[i].seed = j->req.seed + (int64_t)i;
    }
    *out = res;
    *n_out = n;
    return 0;
}

static void finish_run(img_runner *r)
{
    uint64_t id = r->cur_id;
    sup_free(r->sup);
    r->sup = NULL;
    r->run_done = 0;
    r->cur_id = 0;
    img_job *j = img_jobs_get(&r->jobs, id);
    img_run_info *info = find_info(r, id);
    if (j == NULL || info == NULL) { /* cannot happen: running jobs are never dropped */
        remove_workdir(r);
        return;
    }
    sbuf tail = SBUF_INIT;
    append_tail(r->tail_err.count > 0 ? &r->tail_err : &r->tail_all, &tail);
    mem_free(info->tail);
    info->tail = sbuf_error(&tail) ? NULL : mem_strdup(sbuf_str(&tail));

    int ok = info->ended && info->exited && info->exit_code == 0;
    if (j->cancel_requested) {
        info->cause = IMG_CAUSE_KILLED;
        remove_workdir(r);
        img_jobs_fail(&r->jobs, id, GENAI_ECANCELLED, "job cancelled by client", now_ms());
    } else if (ok) {
        img_result *res = NULL;
        uint32_t n = 0;
        genai_error e;
        int rc = collect_results(r, j, &res, &n, &e);
        remove_workdir(r);
        if (rc == 0) {
            img_jobs_succeed(&r->jobs, id, res, n, now_ms());
        } else {
            info->cause = IMG_CAUSE_OUTPUT;
            sbuf m = SBUF_INIT;
            sbuf_printf(&m, "sd-cli exited with code 0 but its output is not usable: %s", e.detail);
            info->message = sbuf_error(&m) ? NULL : sbuf_take(&m);
            sbuf_free(&m);
            img_jobs_fail(&r->jobs, id, rc, info->message ? info->message : e.detail, now_ms());
        }
    } else {
        const char *lines[RUN_TAIL_ALL];
        size_t lens[RUN_TAIL_ALL], n = 0;
        for (size_t i = 0; i < r->tail_all.count && n < RUN_TAIL_ALL; i++) {
            size_t slot =
                (r->tail_all.next + r->tail_all.cap - r->tail_all.count + i) % r->tail_all.cap;
            lines[n] = r->tail_all.lines[slot];
            lens[n++] = strlen(r->tail_all.lines[slot]);
        }
        img_failure f =
            img_failure_classify(info->exited, info->exit_code, info->term_signal, lines, lens, n);
        if (f.cause == IMG_CAUSE_NONE) /* exit 0 is never a failure; a missing status is */
            f.cause = IMG_CAUSE_UNKNOWN;
        info->cause = f.cause;
        mem_free(info->message);
        info->message = compose_failure(r, info, f, &tail);
        remove_workdir(r);
        LOG_INFO(MOD, "job %llu failed: %s", (unsigned long long)id,
                 info->message ? info->message : img_cause_name(f.cause));
        img_jobs_fail(&r->jobs, id, GENAI_ECHILD_EXITED,
                      info->message ? info->message : img_cause_message(f.cause), now_ms());
    }
    sbuf_free(&tail);
    announce_state(r, id);
    prune_infos(r);
}

static void on_kick(uv_idle_t *h)
{
    img_runner *r = h->data;
    uv_idle_stop(h);
    if (r->sup != NULL && r->run_done)
        finish_run(r);
    start_next(r);
}

static void on_expire(uv_timer_t *t)
{
    img_runner *r = t->data;
    if (img_jobs_expire(&r->jobs, now_ms()) > 0)
        prune_infos(r);
}

/* ---- public --------------------------------------------------------------------- */

const char *img_plan_mode_name(img_plan_mode m)
{
    return m == IMG_PLAN_FIXED ? "fixed" : "auto";
}

int img_runner_new(uv_loop_t *uv, const img_runner_opts *opts, img_runner **out, genai_error *err)
{
    if (uv == NULL || opts == NULL || out == NULL)
        return err_set(err, GENAI_EBAD_ARG, "img_runner_new: missing argument");
    img_runner *r = mem_calloc(1, sizeof(*r));
    if (r == NULL)
        return err_set(err, -ENOMEM, "allocating the image runner");
    r->uv = uv;
    r->o = *opts;
    img_runner_opts *o = &r->o;
    if (o->max_pending == 0)
        o->max_pending = RUN_DEFAULT_PENDING;
    if (o->max_finished == 0)
        o->max_finished = RUN_DEFAULT_FINISHED;
    if (o->keep_ms == 0)
        o->keep_ms = RUN_DEFAULT_KEEP_MS;
    if (o->stop_grace_ms <= 0)
        o->stop_grace_ms = RUN_DEFAULT_GRACE_MS;
    if (o->stop_term2_ms <= 0)
        o->stop_term2_ms = RUN_DEFAULT_TERM2_MS;
    if (o->version_timeout_ms <= 0)
        o->version_timeout_ms = RUN_DEFAULT_VERSION_MS;

    int failed = 0;
    r->sd_cli_cfg = dup_or_null(opts->sd_cli, &failed);
    r->work_parent = dup_or_null(opts->work_parent, &failed);
    r->log_dir = dup_or_null(opts->log_dir, &failed);
    r->envp = copy_strv(opts->envp, &failed);
    if (opts->probe != NULL) {
        r->probe_opts = *opts->probe;
        r->probe_root = dup_or_null(opts->probe->root, &failed);
        r->probe_nvml = dup_or_null(opts->probe->nvml_path, &failed);
        r->probe_fake = dup_or_null(opts->probe->fake_gpu_path, &failed);
        r->probe_opts.root = r->probe_root;
        r->probe_opts.nvml_path = r->probe_nvml;
        r->probe_opts.fake_gpu_path = r->probe_fake;
    }
    o->sd_cli = o->work_parent = o->log_dir = NULL;
    o->envp = NULL;
    o->probe = NULL;
    int rc = -ENOMEM;
    if (failed || proc_ring_init(&r->tail_all, RUN_TAIL_ALL) < 0 ||
        proc_ring_init(&r->tail_err, RUN_TAIL_ERR) < 0)
        goto fail;
    rc = img_jobs_init(&r->jobs, o->max_pending, o->max_finished, o->keep_ms);
    if (rc < 0)
        goto fail;
    uv_idle_init(uv, &r->kick);
    uv_timer_init(uv, &r->expire_timer);
    r->kick.data = r->expire_timer.data = r;
    r->handles = 2;
    uint64_t period = o->keep_ms < RUN_EXPIRE_MAX_MS ? o->keep_ms : RUN_EXPIRE_MAX_MS;
    uv_timer_start(&r->expire_timer, on_expire, period, period);
    uv_unref((uv_handle_t *)&r->expire_timer); /* expiry alone keeps no loop alive */
    *out = r;
    return 0;

fail:
    proc_ring_free(&r->tail_all);
    proc_ring_free(&r->tail_err);
    mem_free(r->sd_cli_cfg);
    mem_free(r->work_parent);
    mem_free(r->log_dir);
    free_strv(r->envp);
    mem_free(r->probe_root);
    mem_free(r->probe_nvml);
    mem_free(r->probe_fake);
    mem_free(r);
    return err_set(err, rc, "allocating the image runner");
}

static void on_handle_closed(uv_handle_t *h)
{
    img_runner *r = h->data;
    if (--r->handles == 0)
        mem_free(r);
}

void img_runner_free(img_runner *r)
{
    if (r == NULL)
        return;
    r->freeing = 1;
    if (r->sup != NULL) {
        sup_free(r->sup); /* SIGKILL and reap, synchronously */
        r->sup = NULL;
    }
    remove_workdir(r);
    img_jobs_free(&r->jobs);
    for (size_t i = 0; i < r->n_infos; i++)
        info_free(r->infos[i]);
    mem_free(r->infos);
    mem_free(r->extras);
    proc_ring_free(&r->tail_all);
    proc_ring_free(&r->tail_err);
    probe_ctx_close(r->probe);
    mem_free(r->sd_cli_cfg);
    mem_free(r->work_parent);
    mem_free(r->log_dir);
    free_strv(r->envp);
    mem_free(r->probe_root);
    mem_free(r->probe_nvml);
    mem_free(r->probe_fake);
    uv_close((uv_handle_t *)&r->kick, on_handle_closed);
    uv_close((uv_handle_t *)&r->expire_timer, on_handle_closed);
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = mem_reallocarray(*arr, ncap, elem);
    if (p == NULL)
        return -ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

int img_runner_submit(img_runner *r, const img_request *req, const img_job_opts *jo,
                      uint64_t *id_out, genai_error *err)
{
    if (r == NULL || req == NULL || id_out == NULL)
        return err_set(err, GENAI_EBAD_ARG, "img_runner_submit: missing argument");
    if (grow((void **)&r->infos, &r->cap_infos, r->n_infos, sizeof(*r->infos)) < 0 ||
        grow((void **)&r->extras, &r->cap_extras, r->n_extras, sizeof(*r->extras)) < 0)
        return err_set(err, -ENOMEM, "queueing an image job");
    img_run_info *info = mem_calloc(1, sizeof(*info));
    if (info == NULL)
        return err_set(err, -ENOMEM, "queueing an image job");
    img_request resolved;
    int rc = img_submit_resolve(req, &resolved, &info->resolution, err);
    if (rc < 0) {
        mem_free(info);
        return rc;
    }
    uint64_t id;
    rc = img_jobs_submit(&r->jobs, info->resolution != NULL ? &resolved : req, now_ms(), &id, err);
    img_request_free(&resolved);
    if (rc < 0) {
        mem_free(info->resolution);
        mem_free(info);
        return rc;
    }
    info->job_id = id;
    info->plan = jo != NULL ? jo->plan : IMG_PLAN_AUTO;
    r->infos[r->n_infos++] = info;
    struct job_extra *x = &r->extras[r->n_extras++];
    memset(x, 0, sizeof(*x));
    x->id = id;
    if (jo != NULL && jo->model != NULL) {
        x->has_model = 1;
        x->model = *jo->model;
    } else if (r->o.size_model == NULL && info->resolution != NULL && info->resolution->known) {
        x->has_model = 1; /* the family's structure, read at submit */
        x->model = info->resolution->plan;
    }
    *id_out = id;
    kick(r);
    return 0;
}

int img_runner_cancel(img_runner *r, uint64_t id)
{
    int rc = img_jobs_cancel(&r->jobs, id, now_ms());
    if (rc == IMG_CANCEL_DONE) {
        announce_state(r, id);
        prune_infos(r);
    } else if (rc == IMG_CANCEL_PENDING && id == r->cur_id && r->sup != NULL) {
        LOG_INFO(MOD, "job %llu: cancel requested; stopping sd-cli", (unsigned long long)id);
        sup_stop(r->sup);
    }
    return rc;
}

const img_job *img_runner_job(img_runner *r, uint64_t id)
{
    return img_jobs_get(&r->jobs, id);
}

const img_run_info *img_runner_info(img_runner *r, uint64_t id)
{
    return find_info(r, id);
}

size_t img_runner_pending(const img_runner *r)
{
    return img_jobs_pending(&r->jobs);
}
