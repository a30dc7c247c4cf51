/*
 * runner.h - runs image jobs with sd-cli, one at a time, on the loop thread.
 *
 * The runner owns a job registry (jobs.h) and works through it in FIFO
 * order. For each job it:
 *   1. takes a probe snapshot and asks the planner (plan/autoconf.h, and so
 *      the one fit function) for the cheapest placement that fits: the
 *      request's placement flags are a floor the planner adds to (FA, VAE
 *      tiling, text encoder on CPU, VAE on CPU, offload), or, with
 *      IMG_PLAN_FIXED, exactly what the caller asked for. Nothing fits:
 *      the job fails with GENAI_ENO_FIT and the deficit, sd-cli never runs;
 *   2. finds sd-cli (configured path, GENAI_SD_CLI, PATH) and reads its
 *      --version once (cached for the runner's lifetime), so the argv uses
 *      the flag spellings of that build;
 *   3. makes a private (0700) output directory and runs sd-cli under the
 *      supervisor in one-shot mode (no readiness, no restart);
 *   4. feeds every stdout/stderr fragment to the progress parser and
 *      publishes changes (stage, step k/n, image i/N, percent);
 *   5. on exit 0 reads and validates every PNG of the batch (all or none);
 *      on any other end reports the exit code or signal, the classified
 *      cause and the last error lines, and returns no image;
 *   6. removes the output directory on success, failure and cancel.
 * Cancelling a running job stops sd-cli with the supervisor's escalation
 * (SIGTERM, grace, SIGTERM, SIGKILL, reaped) and marks the job cancelled.
 *
 * Threading: everything, callbacks included, runs on the thread that runs
 * the uv_loop_t given to img_runner_new (DESIGN.md principle 3). Other
 * threads post to that loop (core/loop.h).
 */
#ifndef GENAI_IMAGE_RUNNER_H
#define GENAI_IMAGE_RUNNER_H

#include "core/error.h"
#include "image/failure.h"
#include "image/jobs.h"
#include "image/request.h"
#include "image/resolve.h"
#include "plan/demand.h"
#include "plan/diffusion.h"
#include "sys/probe.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

typedef struct img_runner img_runner;

/* How a job's placement is decided. */
typedef enum img_plan_mode {
    IMG_PLAN_AUTO = 0, /* the request's placement flags plus what the planner adds */
    IMG_PLAN_FIXED,    /* exactly the request's flags; a plan that does not fit is
                          logged and run anyway (to reproduce a user's setup) */
} img_plan_mode;

/* Per-job options given at submit time. */
typedef struct img_job_opts {
    img_plan_mode plan;
    const plan_sd_model *model; /* module sizes; NULL: the runner's size_model hook */
} img_job_opts;

/* What the runner knows about one job beyond the registry's record. */
typedef struct img_run_info {
    uint64_t job_id;
    img_plan_mode plan;
    int planned;                 /* placement and demand below are set */
    plan_sd_placement placement; /* what the argv asked for */
    plan_demand demand;          /* the planner's demand for that placement */
    int fits;                    /* the plan fitted (always 1 for AUTO once planned) */
    uint64_t deficit;            /* bytes missing, summed over places, when it did not */
    char placement_str[96];      /* "gpu,fa,vae-tiling,te=cpu" */
    char *cmdline;               /* the argv joined by spaces, once built; owned */
    pid_t pid;                   /* sd-cli's pid while it runs, else 0 */
    int ended;                   /* sd-cli ran and was reaped: status below valid */
    int exited;                  /* 1: exit_code valid; 0: term_signal valid */
    int exit_code;
    int term_signal;
    enum img_cause cause;       /* failed or cancelled after a run: the classified cause */
    char *tail;                 /* last error lines, '\n'-separated, ANSI stripped; owned */
    char *message;              /* failed: one readable paragraph (cause, status, lines,
                                   suggestion); owned. The job's error[] holds its start. */
    img_resolution *resolution; /* the model's settings as applied at submit
                                   (resolve.h); owned; NULL when the caller
                                   applied them (settings_applied) */
} img_run_info;

/* Callbacks, on the loop thread. The job pointer is valid during the call
 * only; do not submit, cancel or free the runner from inside. */
typedef void (*img_runner_fn)(void *arg, img_runner *r, const img_job *job);

/* Fills *out with the module sizes of req's model. 0 or a negative code. */
typedef int (*img_size_fn)(void *arg, const img_request *req, plan_sd_model *out, genai_error *err);

typedef struct img_runner_opts {
    const char *sd_cli;         /* configured sd-cli path; NULL or "": GENAI_SD_CLI, PATH */
    const char *work_parent;    /* parent of the private output dirs; NULL: $TMPDIR, /tmp */
    const char *log_dir;        /* sd-cli log files; NULL: none */
    const char *const *envp;    /* sd-cli's environment; NULL: inherit */
    size_t max_pending;         /* queued + running; 0: 16 */
    size_t max_finished;        /* finished jobs kept; 0: 32 */
    uint64_t keep_ms;           /* how long finished jobs are kept; 0: 600000 */
    int stop_grace_ms;          /* after the first SIGTERM; 0: 2000 */
    int stop_term2_ms;          /* after the second; 0: 1000 */
    int version_timeout_ms;     /* sd-cli --version; 0: 10000 */
    const probe_options *probe; /* NULL: the real machine (GENAI_FAKE_GPU honoured) */
    img_size_fn size_model;     /* NULL: img_runner_size_from_files */
    void *size_arg;
    img_runner_fn on_progress; /* a running job's progress changed */
    img_runner_fn on_state;    /* a job started or finished */
    void *arg;
} img_runner_opts;

/* Creates a runner on uv (loop thread only). Free with img_runner_free. */
int img_runner_new(uv_loop_t *uv, const img_runner_opts *opts, img_runner **out, genai_error *err);

/*
 * Frees the runner: a running sd-cli is SIGKILLed and reaped, its output
 * directory removed, every job dropped. Handles close asynchronously, so the
 * loop must run afterwards. No callbacks run after this. Accepts NULL.
 */
void img_runner_free(img_runner *r);

/*
 * Queues a job (a deep copy of req; a missing seed is drawn now). Unless
 * req->settings_applied, the model's settings are applied first
 * (img_resolve: the copy gets the model's defaults and adjustments, and the
 * job's img_run_info.resolution the warnings). *id_out gets its id.
 * GENAI_EBUSY when max_pending jobs are pending (HTTP 429), GENAI_EBAD_ARG
 * for an invalid request or, under the strict policy, a field outside the
 * model's range, GENAI_ENOT_FOUND when the model lacks a component (the
 * detail names it). The job starts from the loop, never inside this call.
 */
int img_runner_submit(img_runner *r, const img_request *req, const img_job_opts *jo,
                      uint64_t *id_out, genai_error *err);

/*
 * Cancels a job: a queued one at once (IMG_CANCEL_DONE); a running one is
 * stopped, and becomes cancelled once sd-cli is reaped (IMG_CANCEL_PENDING);
 * IMG_CANCEL_FINISHED when it had already ended. GENAI_ENOT_FOUND otherwise.
 */
int img_runner_cancel(img_runner *r, uint64_t id);

/* The job with that id, or NULL; valid until the loop runs again. */
const img_job *img_runner_job(img_runner *r, uint64_t id);

/* The runner's record of the job, or NULL; same lifetime as the job. */
const img_run_info *img_runner_info(img_runner *r, uint64_t id);

/* Number of queued + running jobs. */
size_t img_runner_pending(const img_runner *r);

/*
 * The default size_model: module sizes and structure from the files' tensor
 * tables (src/diffusion: dm_detect_paths + dm_plan_model). When the files are
 * not a model that reader knows, from file sizes: components
 * (--diffusion-model, --clip_l, --clip_g, --t5xxl, --vae) are their file
 * sizes, and a single checkpoint is split by the typical shares of SD
 * 1.x/SDXL checkpoints (text encoders 20 %, VAE 5 %, the rest the diffusion
 * model; INF, docs/image-runner.md) with the planner's default coefficients.
 * -errno when a file cannot be stat'ed.
 */
int img_runner_size_from_files(void *arg, const img_request *req, plan_sd_model *out,
                               genai_error *err);

/* "auto" / "fixed"; static. */
const char *img_plan_mode_name(img_plan_mode m);

#endif
