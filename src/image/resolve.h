/*
 * resolve.h - an image request meets its model, before the job is queued.
 *
 * The job flow (docs/image-runner.md, "Model settings"):
 *   1. the request's files are read (headers only) and the family detected
 *      (dm_detect_paths); files the diffusion reader cannot read, or a
 *      family genai does not know, leave the request as it was given, with
 *      a note saying why (sd-cli decides, as before genai knew models);
 *   2. a known family must have every component it needs
 *      (dm_check_components): the job is refused, before sd-cli runs, with
 *      an error that names the missing role and its flag;
 *   3. the model's settings: the built-in row for the family and variant
 *      (dm_settings_for_detection), then the registry's override carried in
 *      img_request.settings_json;
 *   4. dm_resolve: fields the request left out take the model's values;
 *      fields outside the model's range are adjusted with a warning (policy
 *      "adjust", the default) or refused with GENAI_EBAD_ARG naming the
 *      field and the range (policy "strict"), the policy being the
 *      request's or else the model's;
 *   5. the resolved values are written into the request (size, steps, CFG,
 *      distilled guidance, sampler, scheduler; a negative prompt that cannot
 *      have an effect is dropped), and the planner's model description
 *      (dm_plan_model) is kept for the job, so the plan uses the family's
 *      structure and the size actually generated.
 * The runner does this in img_runner_submit for every request not marked
 * settings_applied; a caller that plans before submitting (the
 * orchestrator) calls img_resolve itself first and sets the mark.
 *
 * Ownership: img_resolution is plain data owned by the caller.
 */
#ifndef GENAI_IMAGE_RESOLVE_H
#define GENAI_IMAGE_RESOLVE_H

#include "core/error.h"
#include "diffusion/settings.h"
#include "image/request.h"
#include "plan/diffusion.h"

struct json_t;

#define IMG_NOTE_MAX 400

typedef struct img_resolution {
    int known;               /* the files are a model of a known family: below is valid */
    dm_detection detection;  /* what the files are (also when known = 0, if they were read) */
    dm_settings settings;    /* the model's effective settings */
    dm_resolved resolved;    /* what was applied, and the warnings */
    plan_sd_model plan;      /* the planner's description of the model */
    char note[IMG_NOTE_MAX]; /* known = 0: why the request runs as given */
} img_resolution;

/*
 * Runs the job flow above on req, which must own its strings (a copy from
 * img_request_copy): on success the request holds the resolved values and
 * *out says what happened; on failure req is unchanged. Errors:
 * GENAI_ENOT_FOUND (a component is missing; the detail names its role and
 * flag), GENAI_EUNSUPPORTED (an SD 1.x/2.x set sd.cpp cannot assemble),
 * GENAI_EBAD_ARG (strict policy and a field outside the model's range, or an
 * override that does not fit the model), -ENOMEM.
 */
int img_resolve(img_request *req, img_resolution *out, genai_error *err);

/*
 * For img_runner_submit: when req is valid and not settings_applied, a deep
 * copy of it resolved into *copy (free with img_request_free) and the
 * resolution in *res (mem_free); when settings_applied, *copy is zeroed and
 * *res NULL. Errors as img_request_validate and img_resolve.
 */
int img_submit_resolve(const img_request *req, img_request *copy, img_resolution **res,
                       genai_error *err);

/* The resolution as a JSON object for responses: {"model": {family,
 * family_name, variant, confidence, evidence}, "settings": dm_resolved_to_json,
 * "warnings": [...]} or {"model": null, "note": ..., "warnings": []} when the
 * model is not known. A new reference; NULL when out of memory. */
struct json_t *img_resolution_to_json(const img_resolution *r);

/* "SDXL Lightning", "Flux", ... for a settings row, into buf. */
const char *img_model_label(const dm_settings *s, char *buf, size_t n);

#endif
