/*
 * dmodel.h - diffusion models in the registry: their files as the diffusion
 * module's components (src/diffusion), the family detection made when they
 * are registered, and their effective generation settings.
 *
 * When a diffusion model is registered (store_add, store_pull), its files
 * are read (headers only) and the family detected; a model of a known family
 * must hold every component the family needs (dm_check_components), else it
 * is refused with the missing role named. Files that are not a diffusion
 * model genai can read, or a family genai does not know, are registered all
 * the same with an "unknown" detection: sd-cli may still run them, genai
 * just has no settings for them.
 *
 * Effective settings = the built-in row for the stored detection's family
 * and variant (diffusion/settings.h), then the model's override from the
 * registry. An override is validated against that row before it is stored
 * (store_set_settings), so a stored override always applies.
 *
 * Ownership: plain data owned by the caller; component paths point into the
 * store_model they came from.
 */
#ifndef GENAI_STORE_DMODEL_H
#define GENAI_STORE_DMODEL_H

#include "core/error.h"
#include "diffusion/settings.h"
#include "store/registry.h"

#include <stddef.h>

struct store;

/* The model's files as components for dm_detect_paths: comps must have room
 * for DM_ROLE__COUNT entries; *n gets how many. GENAI_EBAD_ARG naming the
 * role for a role the diffusion module does not know (an old registry's
 * "text_encoder") or a role given twice. */
int store_dm_components(const store_model *m, dm_component *comps, size_t *n, genai_error *err);

/*
 * Reads the files of a model being registered and decides what to store:
 * *detection_json (caller frees with mem_free) is the detection as JSON
 * text, "unknown" with the reason when the files cannot be read as a
 * diffusion model. With check set, fails for a known family missing a
 * component (GENAI_ENOT_FOUND naming the role and its flag, from
 * dm_check_components) or an SD 1.x/2.x set that sd.cpp cannot assemble
 * (GENAI_EUNSUPPORTED); without it (a pull, whose bytes are already here)
 * that is a warning. Otherwise fails only for a bad role or out of memory.
 */
int store_dm_inspect(const dm_component *comps, size_t n, int check, char **detection_json,
                     genai_error *err);

/* The model's stored detection; when none is stored (a model registered
 * before schema version 3), detected from its files now. */
int store_dm_detection(const store_model *m, dm_detection *out, genai_error *err);

/* The effective settings of a model with detection d: the built-in row with
 * the model's override merged. GENAI_ENOT_FOUND for an unknown family;
 * GENAI_EBAD_ARG (naming the key) when the stored override no longer fits. */
int store_dm_settings(const store_model *m, const dm_detection *d, dm_settings *out,
                      genai_error *err);

/*
 * Validates an override (JSON text of a dm_settings_override object, or
 * NULL to remove it) against model id's built-in settings and stores it,
 * compacted. GENAI_ENOT_FOUND for an unknown id, GENAI_EBAD_ARG for a model
 * that is not a diffusion model or an override that does not fit (the detail
 * names the key and the allowed range; nothing is stored),
 * GENAI_EUNSUPPORTED for a model whose family genai does not know.
 */
int store_set_settings(struct store *s, const char *id, const char *override_json,
                       genai_error *err);

#endif
