/*
 * jobs.c - image job registry (see jobs.h).
 *
 * Jobs live in one array in submission order, so the queue's FIFO order, the
 * queue positions and the "oldest finished first" eviction all come from a
 * walk of that array. The array holds at most max_pending + max_finished
 * entries, a few hundred, so linear walks are cheaper than any index.
 */
#include "image/jobs.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int is_finished(const img_job *j)
{
    return j->state == IMG_JOB_SUCCEEDED || j->state == IMG_JOB_FAILED ||
           j->state == IMG_JOB_CANCELLED;
}

void img_results_free(img_result *results, uint32_t n)
{
    if (results == NULL)
        return;
    for (uint32_t i = 0; i < n; i++)
        mem_free(results[i].png);
    mem_free(results);
}

static void job_free(img_job *j)
{
    if (j == NULL)
        return;
    img_request_free(&j->req);
    img_results_free(j->results, j->n_results);
    mem_free(j);
}

int img_jobs_init(img_jobs *q, size_t max_pending, size_t max_finished, uint64_t keep_ms)
{
    if (max_pending == 0 || max_finished == 0)
        return GENAI_EBAD_ARG;
    memset(q, 0, sizeof(*q));
    q->max_pending = max_pending;
    q->max_finished = max_finished;
    q->keep_ms = keep_ms;
    q->next_id = 1;
    return 0;
}

void img_jobs_free(img_jobs *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->n; i++)
        job_free(q->jobs[i]);
    mem_free(q->jobs);
    memset(q, 0, sizeof(*q));
}

size_t img_jobs_pending(const img_jobs *q)
{
    size_t n = 0;
    for (size_t i = 0; i < q->n; i++)
        n += !is_finished(q->jobs[i]);
    return n;
}

static void remove_at(img_jobs *q, size_t i)
{
    job_free(q->jobs[i]);
    memmove(q->jobs + i, q->jobs + i + 1, (q->n - i - 1) * sizeof(*q->jobs));
    q->n--;
}

/* Keeps at most max_finished finished jobs, dropping the oldest finished. */
static void trim_finished(img_jobs *q)
{
    size_t finished = q->n - img_jobs_pending(q);
    while (finished > q->max_finished) {
        size_t oldest = q->n;
        for (size_t i = 0; i < q->n; i++) {
            if (is_finished(q->jobs[i]) &&
                (oldest == q->n || q->jobs[i]->finished_ms < q->jobs[oldest]->finished_ms))
                oldest = i;
        }
        remove_at(q, oldest);
        finished--;
    }
}

int img_jobs_submit(img_jobs *q, const img_request *req, uint64_t now_ms, uint64_t *id_out,
                    genai_error *err)
{
    int rc = img_request_validate(req, err);
    if (rc < 0)
        return rc;
    if (img_jobs_pending(q) >= q->max_pending)
        return err_set(err, GENAI_EBUSY, "image job queue is full (%zu jobs pending)",
                       q->max_pending);
    if (q->n == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 16;
        img_job **nj = mem_reallocarray(q->jobs, ncap, sizeof(*nj));
        if (nj == NULL)
            return err_set(err, -ENOMEM, "queueing an image job");
        q->jobs = nj;
        q->cap = ncap;
    }
    img_job *j = mem_calloc(1, sizeof(*j));
    if (j == NULL)
        return err_set(err, -ENOMEM, "queueing an image job");
    if (img_request_copy(&j->req, req) < 0) {
        mem_free(j);
        return err_set(err, -ENOMEM, "queueing an image job");
    }
    rc = img_request_resolve_seed(&j->req, err);
    if (rc < 0) {
        job_free(j);
        return rc;
    }
    j->id = q->next_id++;
    j->state = IMG_JOB_QUEUED;
    j->created_ms = now_ms;
    img_progress_init(&j->progress, img_request_batch(req), img_request_steps(req));
    q->jobs[q->n++] = j;
    *id_out = j->id;
    return 0;
}

img_job *img_jobs_get(img_jobs *q, uint64_t id)
{
    for (size_t i = 0; i < q->n; i++) {
        if (q->jobs[i]->id == id)
            return q->jobs[i];
    }
    return NULL;
}

img_job *img_jobs_start_next(img_jobs *q, uint64_t now_ms)
{
    img_job *first = NULL;
    for (size_t i = 0; i < q->n; i++) {
        if (q->jobs[i]->state == IMG_JOB_RUNNING)
            return NULL;
        if (first == NULL && q->jobs[i]->state == IMG_JOB_QUEUED)
            first = q->jobs[i];
    }
    if (first != NULL) {
        first->state = IMG_JOB_RUNNING;
        first->started_ms = now_ms;
    }
    return first;
}

size_t img_jobs_queue_position(const img_jobs *q, uint64_t id)
{
    size_t pos = 0;
    for (size_t i = 0; i < q->n; i++) {
        if (q->jobs[i]->state != IMG_JOB_QUEUED)
            continue;
        pos++;
        if (q->jobs[i]->id == id)
            return pos;
    }
    return 0;
}

static img_job *running_job(img_jobs *q, uint64_t id)
{
    img_job *j = img_jobs_get(q, id);
    return j != NULL && j->state == IMG_JOB_RUNNING ? j : NULL;
}

int img_jobs_set_progress(img_jobs *q, uint64_t id, const img_progress *p)
{
    img_job *j = running_job(q, id);
    if (j == NULL)
        return GENAI_EBAD_ARG;
    j->progress = *p;
    return 0;
}

int img_jobs_succeed(img_jobs *q, uint64_t id, img_result *results, uint32_t n, uint64_t now_ms)
{
    img_job *j = running_job(q, id);
    if (j == NULL) {
        img_results_free(results, n);
        return GENAI_EBAD_ARG;
    }
    j->results = results;
    j->n_results = n;
    j->state = IMG_JOB_SUCCEEDED;
    j->finished_ms = now_ms;
    j->progress.percent = 100;
    j->progress.stage = IMG_STAGE_DONE;
    trim_finished(q);
    return 0;
}

int img_jobs_fail(img_jobs *q, uint64_t id, int code, const char *message, uint64_t now_ms)
{
    img_job *j = running_job(q, id);
    if (j == NULL)
        return GENAI_EBAD_ARG;
    j->state = code == GENAI_ECANCELLED ? IMG_JOB_CANCELLED : IMG_JOB_FAILED;
    j->error_code = code;
    snprintf(j->error, sizeof(j->error), "%s",
             message ? message : (code == GENAI_ECANCELLED ? "job cancelled by client" : ""));
    j->finished_ms = now_ms;
    trim_finished(q);
    return 0;
}

int img_jobs_cancel(img_jobs *q, uint64_t id, uint64_t now_ms)
{
    img_job *j = img_jobs_get(q, id);
    if (j == NULL)
        return GENAI_ENOT_FOUND;
    if (j->state == IMG_JOB_QUEUED) {
        j->state = IMG_JOB_CANCELLED;
        j->error_code = GENAI_ECANCELLED;
        snprintf(j->error, sizeof(j->error), "job cancelled by client");
        j->finished_ms = now_ms;
        trim_finished(q);
        return IMG_CANCEL_DONE;
    }
    if (j->state == IMG_JOB_RUNNING) {
        j->cancel_requested = 1;
        return IMG_CANCEL_PENDING;
    }
    return IMG_CANCEL_FINISHED;
}

size_t img_jobs_expire(img_jobs *q, uint64_t now_ms)
{
    size_t dropped = 0;
    for (size_t i = 0; i < q->n;) {
        img_job *j = q->jobs[i];
        if (is_finished(j) && now_ms >= j->finished_ms && now_ms - j->finished_ms >= q->keep_ms) {
            remove_at(q, i);
            dropped++;
        } else {
            i++;
        }
    }
    return dropped;
}

uint64_t img_job_duration_ms(const img_job *j)
{
    if (j->started_ms == 0 || j->finished_ms < j->started_ms)
        return 0;
    return j->finished_ms - j->started_ms;
}

const char *img_job_state_name(enum img_job_state s)
{
    switch (s) {
    case IMG_JOB_QUEUED:
        return "queued";
    case IMG_JOB_RUNNING:
        return "running";
    case IMG_JOB_SUCCEEDED:
        return "succeeded";
    case IMG_JOB_FAILED:
        return "failed";
    case IMG_JOB_CANCELLED:
        return "cancelled";
    }
    return "unknown";
}
