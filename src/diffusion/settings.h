/*
 * settings.h - the generation settings each diffusion model is made for, and
 * how a request is resolved against them.
 *
 * A built-in table gives, per family and distilled variant, the native size
 * and the allowed size range, the default and allowed steps, CFG scale and
 * (Flux dev) distilled guidance, the default sampler and scheduler, whether a
 * negative prompt has any effect, and the components the model needs. Every
 * value and its source is in docs/diffusion-models.md.
 *
 * A model's row in the registry may override any of these with a JSON object
 * of the same shape as dm_settings_to_json() prints, partial objects allowed
 * (e.g. {"steps": {"default": 6}}); the keys family, family_name, variant and
 * requires are accepted and ignored, so that printed settings can be edited
 * and stored back.
 *
 * Resolving a request: a field the request leaves out takes the model's
 * value; a field outside what the model supports is adjusted to the nearest
 * supported value with a warning (policy "adjust", the default: apps that
 * send one fixed set of fields for every model still get an image, and are
 * told what changed), or refused with GENAI_EBAD_ARG naming the field and the
 * supported range (policy "strict").
 *
 * Ownership: all structs are plain data owned by the caller; JSON results are
 * new references the caller releases with json_decref().
 */
#ifndef GENAI_DIFFUSION_SETTINGS_H
#define GENAI_DIFFUSION_SETTINGS_H

#include "diffusion/family.h"

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

struct json_t;

#define DM_NAME_MAX 32 /* sampler / scheduler names */

/* Hard limits whatever the table or an override says: sd-server's advertised
 * limits (min/max width and height 64..4096, steps clamped to 1..100) and
 * the image driver's CFG bound (image/request.h). */
#define DM_SIDE_HARD_MIN 64u
#define DM_SIDE_HARD_MAX 4096u
#define DM_STEPS_HARD_MAX 100u
#define DM_CFG_HARD_MAX 30.0

enum dm_policy {
    DM_POLICY_DEFAULT, /* in a request: the model's policy */
    DM_POLICY_ADJUST,
    DM_POLICY_STRICT,
};

typedef struct dm_settings {
    enum dm_family family;
    enum dm_variant variant;
    uint32_t width, height;                     /* native size */
    uint32_t side_min, side_max, side_multiple; /* allowed width and height */
    uint32_t steps, steps_min, steps_max;
    double cfg, cfg_min, cfg_max;                /* sd.cpp --cfg-scale; 1 = no unconditional pass */
    double guidance, guidance_min, guidance_max; /* --guidance; all 0: not used */
    char sampler[DM_NAME_MAX];
    char scheduler[DM_NAME_MAX];
    int negative_prompt;   /* 1 when a negative prompt has an effect */
    uint32_t requires;     /* components, 1u << DM_COMP_x */
    enum dm_policy policy; /* ADJUST or STRICT */
} dm_settings;

/* "default", "adjust", "strict"; static. */
const char *dm_policy_name(enum dm_policy p);
/* Parses "adjust"/"strict"; GENAI_EBAD_ARG otherwise. */
int dm_policy_parse(const char *text, enum dm_policy *out, genai_error *err);

/* The built-in row for (family, variant). GENAI_ENOT_FOUND for an unknown
 * family or a variant the family does not have. */
int dm_settings_builtin(enum dm_family family, enum dm_variant variant, dm_settings *out,
                        genai_error *err);

/* The built-in row for a detection, with a step count seen in the name
 * (e.g. "4step" for SDXL-Lightning) as the default steps when it is within
 * the allowed range. GENAI_ENOT_FOUND for an unknown family (the detail
 * carries the detection's evidence). */
int dm_settings_for_detection(const dm_detection *d, dm_settings *out, genai_error *err);

/*
 * Merges an override object (see the top of this file) over *s. Every value
 * is checked, and so is the merged result (min <= default <= max, sizes
 * multiples of side_multiple and within the hard limits); on any failure
 * GENAI_EBAD_ARG names the key, and *s is left as it was.
 */
int dm_settings_override(dm_settings *s, const struct json_t *override, genai_error *err);
/* The same from JSON text (e.g. a registry column); NULL or "" is no override. */
int dm_settings_override_text(dm_settings *s, const char *json_text, genai_error *err);

/* The settings as a JSON object; NULL when out of memory. */
struct json_t *dm_settings_to_json(const dm_settings *s);

/* A request's generation fields; 0 / has_x = 0 / NULL means "not given". */
typedef struct dm_request {
    uint32_t width, height;
    uint32_t steps;
    int has_cfg;
    double cfg;
    int has_guidance;
    double guidance;
    const char *sampler, *scheduler;
    const char *negative_prompt; /* NULL or "" = none */
    enum dm_policy policy;       /* DM_POLICY_DEFAULT = the model's */
} dm_request;

/* Fields, as bits in dm_resolved's masks. */
enum {
    DM_FIELD_WIDTH = 1u << 0,
    DM_FIELD_HEIGHT = 1u << 1,
    DM_FIELD_STEPS = 1u << 2,
    DM_FIELD_CFG = 1u << 3,
    DM_FIELD_GUIDANCE = 1u << 4,
    DM_FIELD_SAMPLER = 1u << 5,
    DM_FIELD_SCHEDULER = 1u << 6,
    DM_FIELD_NEGATIVE = 1u << 7,
};

#define DM_WARN_MAX 8
#define DM_WARN_LEN 240

typedef struct dm_warning {
    const char *field; /* static: "width", "steps", "cfg_scale", ... */
    char message[DM_WARN_LEN];
} dm_warning;

typedef struct dm_resolved {
    uint32_t width, height, steps;
    double cfg;
    int use_guidance; /* pass --guidance */
    double guidance;
    char sampler[DM_NAME_MAX];
    char scheduler[DM_NAME_MAX];
    int use_negative;      /* pass the negative prompt on */
    unsigned defaulted;    /* DM_FIELD_* taken from the model */
    unsigned adjusted;     /* DM_FIELD_* changed from what the request asked */
    enum dm_policy policy; /* the policy applied */
    size_t n_warnings;
    dm_warning warnings[DM_WARN_MAX];
} dm_resolved;

/*
 * Resolves req against the model settings s into *out (written only on
 * success). Under "strict", the first field outside the supported range
 * fails with GENAI_EBAD_ARG and a detail such as "steps 30: SDXL Lightning
 * supports 1..8 (default 4)". Notes that hold under both policies (a negative
 * prompt at CFG 1 has no effect) are warnings, never errors.
 */
int dm_resolve(const dm_settings *s, const dm_request *req, dm_resolved *out, genai_error *err);

/* The resolved settings and warnings as a JSON object, for the API response;
 * NULL when out of memory. */
struct json_t *dm_resolved_to_json(const dm_resolved *r);

#endif
