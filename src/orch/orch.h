/*
 * orch.h - the orchestrator: one LLM (llama-server) and image jobs (sd-cli)
 * sharing one GPU.
 *
 * The orchestrator owns the LLM runtime (llm/runtime.h), the image runner
 * (image/runner.h), the residency table (residency.h), the LLM request gate
 * (gate.h) and a reclamation watcher (reclaim.h). When an image job does not
 * fit next to the LLM at the requested placement or any cheaper one (the
 * planner's ladder: flash attention, VAE tiling, text encoder on CPU, VAE
 * on CPU, params offload), it moves the LLM aside:
 *
 *   drain in-flight LLM requests (bounded) -> stop the LLM -> observe
 *   reclamation -> run the job and the image jobs queued behind it (a
 *   burst) -> observe reclamation -> reload the LLM with the configuration
 *   it had (pinned at its first READY: same -ngl, -c, KV type, FA, slots),
 *   retrying with backoff while memory is still coming back.
 *
 * LLM requests that arrive meanwhile wait in the gate and are granted when
 * the LLM is READY again, or answered "temporarily unavailable, retry after
 * N s" at their deadline. A minimum residency time keeps each side on the
 * GPU for a while once it got there, so alternating text and image requests
 * do not thrash. docs/orchestrator.md has the state diagram.
 *
 * Every step is an orch_event: delivered to the callback, logged, published
 * on the event bus (type "orch.<name>") and counted in the metrics registry
 * when those are given.
 *
 * Threading: every function here, and every callback, runs on the thread
 * that runs the uv loop given to orch_new (core/loop.h's thread in genai);
 * other threads post to it.
 */
#ifndef GENAI_ORCH_ORCH_H
#define GENAI_ORCH_ORCH_H

#include "core/error.h"
#include "image/runner.h"
#include "llm/runtime.h"
#include "orch/gate.h"
#include "orch/residency.h"
#include "plan/footprint.h"
#include "sys/probe.h"

#include <stdint.h>
#include <uv.h>

struct events;
struct metrics;

typedef struct orch orch;

/* The LLM as the orchestrator presents it to requests. */
typedef enum orch_llm_state {
    ORCH_LLM_ABSENT = 0, /* not loaded; the next request (or orch_llm_load) loads it */
    ORCH_LLM_LOADING,    /* starting, loading, or restarting after a crash */
    ORCH_LLM_READY,      /* requests are granted */
    ORCH_LLM_DRAINING,   /* an offload waits for in-flight requests */
    ORCH_LLM_STOPPING,   /* an offload is stopping it */
    ORCH_LLM_AWAY,       /* moved aside: reclamation, the image burst */
    ORCH_LLM_RELOADING,  /* waiting for the image's memory, start attempts */
    ORCH_LLM_FAILED,     /* the last (re)load failed; reason kept, next request retries */
} orch_llm_state;

typedef enum orch_event_type {
    ORCH_EV_LLM_LOADING = 0, /* a (re)load started (attempt) */
    ORCH_EV_LLM_READY,       /* ms: load time */
    ORCH_EV_LLM_FAILED,      /* code, reason */
    ORCH_EV_OFFLOAD_STARTED, /* job_id: the image job that needs the GPU */
    ORCH_EV_DRAINED,         /* ms: drain time; code GENAI_ETIMEOUT when it gave up */
    ORCH_EV_LLM_STOPPED,     /* ms: stop time; pid */
    ORCH_EV_RECLAIMED,       /* ms: reclamation time; code GENAI_ETIMEOUT + reason when not */
    ORCH_EV_IMAGE_PLACED,    /* job_id; reason: the placement chosen next to the LLM */
    ORCH_EV_IMAGE_STARTED,   /* job_id */
    ORCH_EV_IMAGE_DONE,      /* job_id, ms: run time; code 0 or the failure + reason */
    ORCH_EV_RELOAD_ATTEMPT,  /* attempt k; code: the attempt's result */
    ORCH_EV_REQUEST_TIMEOUT, /* an LLM request reached its deadline; ms waited */
} orch_event_type;

typedef struct orch_event {
    orch_event_type type;
    uint64_t ms;        /* duration, where the type says so */
    int attempt;        /* RELOAD_ATTEMPT, LLM_LOADING */
    int code;           /* 0 or an error code */
    uint64_t job_id;    /* image events: the orchestrator's job id */
    int32_t pid;        /* the process concerned, 0 when none */
    const char *reason; /* human text ("" when none); valid during the callback */
} orch_event;

typedef void (*orch_event_fn)(void *arg, orch *o, const orch_event *ev);

/* An image job as the orchestrator tracks it. */
typedef enum orch_job_state {
    ORCH_JOB_WAITING = 0, /* admitted, waiting for the GPU (a swap, the residency) */
    ORCH_JOB_SUBMITTED,   /* handed to the runner (queued or running there) */
    ORCH_JOB_DONE,        /* finished: code says how */
} orch_job_state;

typedef struct orch_job {
    uint64_t id; /* the orchestrator's id (1, 2, ...) */
    orch_job_state state;
    uint64_t runner_id; /* the runner's job id once submitted (img_runner_job) */
    int offloaded;      /* it ran with the LLM moved aside */
    int code;           /* DONE: 0, or the error (GENAI_ENO_FIT, GENAI_ECHILD_EXITED, ...) */
    char *message;      /* DONE with code != 0: one paragraph (cause, status, last lines) */
    uint64_t created_ms, started_ms, finished_ms;
    /* The model's settings as applied at submit (image/resolve.h: what was
     * filled in or adjusted, the warnings; img_resolution_to_json for
     * responses). Owned by the orchestrator; NULL when the caller had
     * applied them already (img_request.settings_applied). */
    const img_resolution *resolution;
} orch_job;

/* Counters and last timings, for tests, benchmarks and status pages. */
typedef struct orch_stats {
    uint64_t offloads;         /* LLM moved aside for images */
    uint64_t reloads;          /* reloads that reached READY */
    uint64_t reload_attempts;  /* llm_runtime_start calls for reloads */
    uint64_t reload_failures;  /* reloads given up */
    uint64_t images_beside;    /* image jobs run next to the LLM */
    uint64_t images_offloaded; /* image jobs run with the LLM aside */
    uint64_t requests_granted;
    uint64_t requests_timed_out;
    uint64_t requests_refused; /* queue full */
    uint64_t drain_timeouts;
    uint64_t reclaim_timeouts;
    uint64_t last_drain_ms, last_stop_ms, last_reclaim_ms, last_image_reclaim_ms;
    uint64_t last_reload_ms; /* image memory reclaimed (or reload asked) -> READY */
    uint64_t last_load_ms;   /* llm_runtime_start -> READY of the last load */
    uint64_t last_image_ms;  /* run time of the last image job */
    uint64_t last_cycle_ms;  /* offload started -> LLM READY again */
    uint64_t llm_restarts;   /* restarts of a crashed LLM (runtime RESTARTING) */
} orch_stats;

typedef struct orch_opts {
    /* The LLM; NULL: images only. Deep-copied by the runtime. */
    const llm_rt_config *llm;
    plan_footprints *fp; /* learned footprints, borrowed; NULL: the orchestrator's own */
    /* The image runner's options (copied); on_state is the orchestrator's,
     * on_progress is passed through. */
    img_runner_opts image;
    /* Machine view for the orchestrator's own decisions; NULL: the real
     * machine (GENAI_FAKE_GPU honoured). Borrowed for the call. */
    const probe_options *probe;
    int min_residency_ms;      /* each side keeps the GPU at least this long; 0: 10000; < 0: none */
    int drain_timeout_ms;      /* wait for in-flight requests before a stop; 0: 30000 */
    int reclaim_timeout_ms;    /* 0: 10000 */
    int reclaim_first_ms;      /* 0: 50 */
    int reclaim_max_ms;        /* 0: 250 */
    int reload_timeout_ms;     /* start attempts stop after this; 0: 30000 */
    int reload_backoff_ms;     /* first delay between attempts (doubling to 2000); 0: 100 */
    int image_timeout_ms;      /* a job running longer is stopped; 0: 1800000 */
    int max_waiters;           /* LLM requests waiting; 0: 64 */
    int max_burst;             /* image jobs per offload; 0: 8 */
    int retry_after_default_s; /* Retry-After when nothing better is known; 0: 5 */
    orch_event_fn on_event;
    void *arg;
    struct events *bus;      /* borrowed; NULL: none */
    struct metrics *metrics; /* borrowed; NULL: none */
} orch_opts;

/* Creates the orchestrator on uv (loop thread). The LLM is not started:
 * see orch_llm_load and orch_llm_acquire. Free with orch_free. */
int orch_new(uv_loop_t *uv, const orch_opts *opts, orch **out, genai_error *err);

/*
 * Frees everything: waiters are answered GENAI_ECANCELLED, the LLM and a
 * running sd-cli are SIGKILLed and reaped (their runtimes' free), handles
 * close asynchronously (the loop must run afterwards). No callback runs
 * after this. Accepts NULL.
 */
void orch_free(orch *o);

/* Asks for the LLM to be loaded (now, or after the image burst in
 * progress). GENAI_ENOT_FOUND when no LLM is configured. */
int orch_llm_load(orch *o, genai_error *err);

/*
 * Replaces the LLM configuration (cfg deep-copied; NULL: no LLM) so that
 * the next load starts another model. Only while nothing depends on the
 * current one: no LLM configured, or the LLM ABSENT or FAILED with no
 * request waiting or in flight and no swap in progress; otherwise
 * GENAI_EBUSY (unload it first). The pinned configuration is dropped.
 */
int orch_llm_configure(orch *o, const llm_rt_config *cfg, genai_error *err);

/*
 * Unloads the LLM and keeps it unloaded: waiting requests are answered
 * GENAI_EUNAVAILABLE, in-flight ones are drained (bounded by
 * drain_timeout_ms), the process is stopped and its memory watched as for
 * an offload (events offload_started with the reason "unload", drained,
 * llm_stopped, reclaimed), then the state is ABSENT until a request or
 * orch_llm_load asks for it again. Returns 1 when the LLM was already
 * ABSENT or FAILED (nothing to wait for; FAILED becomes ABSENT), 0 when an
 * unload started (its last event is reclaimed), GENAI_EBUSY while the LLM
 * is away for images or reloading (retry after the swap), GENAI_ENOT_FOUND
 * when no LLM is configured.
 */
int orch_llm_unload(orch *o, genai_error *err);

/* The configured LLM's model id (alias), or NULL when none is configured;
 * valid until the next orch_llm_configure. */
const char *orch_llm_model_id(const orch *o);
/* The configured LLM's configuration, or NULL; same lifetime. */
const llm_rt_config *orch_llm_config(const orch *o);

/*
 * An LLM request: fn is called from the loop (never inside this call) with
 * the endpoint once the LLM is READY (loading it when needed), or with
 * GENAI_EUNAVAILABLE and a retry-after at deadline_ms (orch_now_ms() clock).
 * *ticket identifies the request for orch_llm_release (after a grant) or
 * orch_llm_cancel (before). When the queue is full the call fails at once
 * with GENAI_EBUSY, *retry_after_s set and the reason in err; fn is not
 * called. GENAI_ENOT_FOUND when no LLM is configured.
 */
int orch_llm_acquire(orch *o, uint64_t deadline_ms, orch_llm_fn fn, void *arg, uint64_t *ticket,
                     int *retry_after_s, genai_error *err);

/* A granted request is done. GENAI_ENOT_FOUND for an unknown ticket. */
int orch_llm_release(orch *o, uint64_t ticket);

/* A waiting request went away; its callback will not run.
 * GENAI_ENOT_FOUND when it is not waiting (granted or answered). */
int orch_llm_cancel(orch *o, uint64_t ticket);

/*
 * Holds, for sharing the machine (orch/watch.h, orch/reserve.h): while at
 * least one is held, the LLM is moved aside through the usual drain -> stop
 * -> reclaim path as soon as it is READY (no minimum residency), nothing new
 * is loaded or dispatched, and LLM requests and image jobs wait in their
 * queues with their deadlines. When the last hold goes, the LLM reloads
 * (pinned) if it was wanted and queued work resumes. why is copied into the
 * offload event. GENAI_EBUSY when ORCH_MAX_HOLDS are held.
 */
#define ORCH_MAX_HOLDS 32
int orch_hold(orch *o, const char *why, uint32_t *id, genai_error *err);
/* Releases a hold. GENAI_ENOT_FOUND for an unknown id. */
int orch_unhold(orch *o, uint32_t id);
/* Holds now held. */
size_t orch_holds(const orch *o);
/* genai's children that may hold memory now (the LLM, the running sd-cli):
 * up to cap pids into out; returns how many. */
size_t orch_child_pids(const orch *o, int32_t *out, size_t cap);

/*
 * Admits an image job (a deep copy of req; jo may be NULL). Unless
 * req->settings_applied, the model's settings are applied to the copy first
 * (img_resolve), so admission plans the size, steps and structure that will
 * really run; the resolution stays with the job (orch_job.resolution).
 * *id gets the orchestrator's job id. GENAI_EBAD_ARG for an invalid request
 * or, under the strict policy, a field outside the model's range (the
 * detail names it), GENAI_ENOT_FOUND when the model lacks a component (the
 * detail names the role), GENAI_EUNSUPPORTED for a set sd.cpp cannot
 * assemble, GENAI_EBUSY when too many jobs are pending (the runner's
 * max_pending).
 */
int orch_image_submit(orch *o, const img_request *req, const img_job_opts *jo, uint64_t *id,
                      genai_error *err);

/* Cancels a job: a waiting one at once, a running one through the runner.
 * GENAI_ENOT_FOUND for an unknown or finished job. */
int orch_image_cancel(orch *o, uint64_t id);

/* The job, or NULL (finished jobs are kept as long as the runner keeps
 * theirs). Valid until the loop runs again. */
const orch_job *orch_image_job(const orch *o, uint64_t id);

/* The runner, to read a job's results (img_runner_job(runner, job->runner_id)). */
img_runner *orch_runner(orch *o);

/* The LLM's state; *reason (optional) gets the last failure ("" when none),
 * valid until the loop runs again. */
orch_llm_state orch_llm_status(const orch *o, const char **reason);

/* The LLM child's pid, 0 when none. */
pid_t orch_llm_pid(const orch *o);

/* The LLM runtime (NULL when none exists right now: a reload creates a new
 * one from the pinned configuration). */
llm_runtime *orch_llm_runtime(orch *o);

/* Number of LLM requests waiting / in flight. */
size_t orch_llm_waiting(const orch *o);
size_t orch_llm_inflight(const orch *o);

/* Image jobs admitted and not finished. */
size_t orch_images_pending(const orch *o);

const orch_stats *orch_get_stats(const orch *o);
const orch_residency *orch_get_residency(const orch *o);

/* The clock of deadlines: CLOCK_MONOTONIC milliseconds. */
uint64_t orch_now_ms(void);

/* "absent", "loading", ...; "llm_ready", "offload_started", ... Static. */
const char *orch_llm_state_name(orch_llm_state st);
const char *orch_event_name(orch_event_type t);

#endif
