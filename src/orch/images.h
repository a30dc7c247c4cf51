/*
 * images.h - the orchestrator's image jobs: the records behind orch_job,
 * admission (does a job fit beside the residents, only with the LLM moved
 * aside, or nowhere), dispatch to the runner, and the runner's callbacks.
 *
 * orch.c's phase machine decides when a job is admitted and dispatched;
 * these functions say how. The public calls (orch_image_submit, _cancel,
 * _job, orch_images_pending, orch_runner) are declared in orch.h and
 * defined in images.c. Loop thread only.
 */
#ifndef GENAI_ORCH_IMAGES_H
#define GENAI_ORCH_IMAGES_H

#include "orch/orch_int.h"

typedef enum orch_admit {
    ORCH_ADMIT_BESIDE = 0, /* fits next to what is resident: run now */
    ORCH_ADMIT_OFFLOAD,    /* fits once the LLM is aside */
    ORCH_ADMIT_NO_FIT,     /* fits nowhere: fail the job */
    ORCH_ADMIT_ERROR,
} orch_admit;

/* The job with the orchestrator's id id, or NULL; o owns it. */
orch_job_rec *orch_job_find(const orch *o, uint64_t id);

/* The oldest job still WAITING, or NULL; o owns it. */
orch_job_rec *orch_job_first_waiting(const orch *o);

/* Frees a record and what it owns (request copy, message, resolution).
 * Accepts NULL. */
void orch_job_free(orch_job_rec *j);

/* Frees the oldest finished jobs beyond the number kept for orch_image_job. */
void orch_job_prune(orch *o);

/* Marks j DONE with code and message (copied when code != 0; may be NULL),
 * records its run time and emits image_done. */
void orch_job_finish(orch *o, orch_job_rec *j, int code, const char *message);

/* Decides where j can run now: sizes its model when not known yet, samples
 * the probe and places j beside the residents, else on the same snapshot
 * without the LLM. On ORCH_ADMIT_BESIDE and ORCH_ADMIT_OFFLOAD j's placement and
 * demand are set; on ORCH_ADMIT_NO_FIT and ORCH_ADMIT_ERROR err says why. */
orch_admit orch_job_admit(orch *o, orch_job_rec *j, genai_error *err);

/* Hands j to the runner at its admitted placement (beside: the LLM stays),
 * makes it o->running and starts the image timeout; a submit the runner
 * refuses finishes j with the runner's error. */
void orch_job_dispatch(orch *o, orch_job_rec *j, int beside);

/* The runner's state callback (img_runner_opts.on_state; arg: the orch):
 * records the pid and start, finishes the job when the runner does, and
 * kicks the machine. */
void orch_job_on_state(void *arg, img_runner *r, const img_job *job);

/* The runner's progress callback (arg: the orch): notes the running
 * sd-cli's pid in the residency table, then calls the owner's on_progress. */
void orch_job_on_progress(void *arg, img_runner *r, const img_job *job);

#endif
