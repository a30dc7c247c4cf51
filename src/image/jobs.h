/*
 * jobs.h - the registry of image jobs: a bounded FIFO queue, the job that is
 * running, and finished jobs kept for a while so clients can fetch results.
 *
 * States: queued -> running -> succeeded | failed | cancelled, and
 * queued -> cancelled. One job runs at a time (one GPU, and sd.cpp itself runs
 * jobs one by one). Pending jobs (queued + running) are capped: a submit
 * beyond the cap fails with GENAI_EBUSY, so callers can answer 429. Finished
 * jobs stay for keep_ms after they finish (sd-server keeps them 600 s) and at
 * most max_finished of them (the oldest go first), because they hold PNG bytes.
 *
 * Time is passed in (milliseconds of any monotonic clock), so the registry is
 * a plain data structure: tests drive it without sleeping, and the event loop
 * that owns it calls img_jobs_expire() from a timer. Not thread-safe: one
 * owner (the loop thread, DESIGN.md principle 3).
 */
#ifndef GENAI_IMAGE_JOBS_H
#define GENAI_IMAGE_JOBS_H

#include "core/error.h"
#include "image/progress.h"
#include "image/request.h"

#include <stddef.h>
#include <stdint.h>

enum img_job_state {
    IMG_JOB_QUEUED = 0,
    IMG_JOB_RUNNING,
    IMG_JOB_SUCCEEDED,
    IMG_JOB_FAILED,
    IMG_JOB_CANCELLED,
};

typedef struct img_result {
    uint8_t *png; /* owned by the job */
    size_t png_len;
    uint32_t width, height;
    int64_t seed;
} img_result;

typedef struct img_job {
    uint64_t id; /* 1, 2, ...; never reused by one registry */
    enum img_job_state state;
    img_request req;       /* deep copy; its seed is always resolved */
    img_progress progress; /* last progress reported by the runner */
    img_result *results;   /* n_results entries once succeeded */
    uint32_t n_results;
    uint64_t created_ms, started_ms, finished_ms; /* 0 = not yet */
    int cancel_requested;                         /* cancel asked while running */
    int error_code;                               /* failed/cancelled: GENAI_E* or -errno */
    char error[512];                              /* failed: the reason, for the client */
} img_job;

typedef struct img_jobs {
    img_job **jobs; /* submission order */
    size_t n, cap;
    size_t max_pending;
    size_t max_finished;
    uint64_t keep_ms;
    uint64_t next_id;
} img_jobs;

enum { IMG_CANCEL_DONE = 0, IMG_CANCEL_PENDING = 1, IMG_CANCEL_FINISHED = 2 };

/* Initialises an empty registry. max_pending and max_finished must be > 0. */
int img_jobs_init(img_jobs *q, size_t max_pending, size_t max_finished, uint64_t keep_ms);

/* Frees every job and its results. Accepts NULL. */
void img_jobs_free(img_jobs *q);

/*
 * Queues a deep copy of req (validated; a missing seed is drawn now so it can
 * be reported from the start). *id_out gets the new id. GENAI_EBUSY when
 * max_pending jobs are pending, GENAI_EBAD_ARG for an invalid request.
 */
int img_jobs_submit(img_jobs *q, const img_request *req, uint64_t now_ms, uint64_t *id_out,
                    genai_error *err);

/* The job with that id, or NULL. The pointer is valid until the next call
 * that adds or removes jobs (submit, expire, free). */
img_job *img_jobs_get(img_jobs *q, uint64_t id);

/* Moves the oldest queued job to running and returns it; NULL when a job is
 * already running or none is queued. */
img_job *img_jobs_start_next(img_jobs *q, uint64_t now_ms);

/* 1-based position among queued jobs; 0 when the job is not queued. */
size_t img_jobs_queue_position(const img_jobs *q, uint64_t id);

/* Number of queued + running jobs. */
size_t img_jobs_pending(const img_jobs *q);

/* Records the runner's latest progress for a running job. */
int img_jobs_set_progress(img_jobs *q, uint64_t id, const img_progress *p);

/* Marks a running job succeeded and takes ownership of results (n entries,
 * an array from mem_alloc whose png buffers are mem_alloc'ed too), also when
 * it fails (then it frees them). GENAI_EBAD_ARG when the job is not running. */
int img_jobs_succeed(img_jobs *q, uint64_t id, img_result *results, uint32_t n, uint64_t now_ms);

/* Marks a running job failed with code and message; code GENAI_ECANCELLED
 * (the runner stopped it after a cancel) makes it cancelled instead. */
int img_jobs_fail(img_jobs *q, uint64_t id, int code, const char *message, uint64_t now_ms);

/* Cancels: a queued job at once (IMG_CANCEL_DONE); a running job is marked
 * cancel_requested for the runner to stop (IMG_CANCEL_PENDING); a finished
 * job is left as it is (IMG_CANCEL_FINISHED). GENAI_ENOT_FOUND otherwise. */
int img_jobs_cancel(img_jobs *q, uint64_t id, uint64_t now_ms);

/* Drops finished jobs whose keep time has passed at now_ms; returns how many. */
size_t img_jobs_expire(img_jobs *q, uint64_t now_ms);

/* Milliseconds the job ran (finished - started), 0 when it never ran. */
uint64_t img_job_duration_ms(const img_job *j);

/* "queued", "running", "succeeded", "failed", "cancelled"; static. */
const char *img_job_state_name(enum img_job_state s);

/* Frees n results and their PNG buffers. Accepts NULL. */
void img_results_free(img_result *results, uint32_t n);

#endif
