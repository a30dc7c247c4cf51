/*
 * shapes.h - the JSON shapes of genai's public objects (a registered model,
 * the model list), shared by the C library (include/genai.h), the HTTP API
 * (src/http/routes_models.c) and the CLI's --json output, so that they can
 * never describe a model differently. The shapes are documented in docs/api.md.
 */
#ifndef GENAI_API_SHAPES_H
#define GENAI_API_SHAPES_H

#include "store/prune.h"
#include "store/registry.h"

#include <jansson.h>

/*
 * The native shape of one model: {id, name, kind, size, sha256, source,
 * hf_repo, hf_revision, added_at, profile, files:[{role, path, sha256, size,
 * managed, url?}]}, and for a diffusion model also detection, settings (the
 * effective generation settings) and settings_override. Used by the CLI's
 * --json output too. A new reference the caller owns; NULL when out of memory.
 */
json_t *api_model_json(const store_model *m);

/*
 * api_model_json plus "footprints": what the planner learned running the
 * model, newest first, one object per launch configuration: {config,
 * measured_at (Unix seconds), runtime_build (null when unknown),
 * host_anon_bytes, host_file_bytes, gpu_bytes:[per GPU]}, or {config,
 * measured_at, refused: reason} for a row the planner would not use.
 * GET /api/models/{id} and `genai show --json`. Blocking (SQLite). *out is a
 * new reference, written only on success.
 */
int api_model_detail_json(store_db *db, const store_model *m, json_t **out, genai_error *err);

/* The OpenAI shape: {id, object:"model", created, owned_by:"genai"}. A new
 * reference; NULL when out of memory. */
json_t *api_model_openai_json(const store_model *m);

/*
 * Lists the registry into a new JSON array of api_model_json objects
 * (openai = 0) or api_model_openai_json objects (openai = 1). *out is a new
 * reference owned by the caller, written only on success. Blocking (SQLite):
 * never on the loop thread.
 */
int api_models_json(store_db *db, int openai, json_t **out, genai_error *err);

/* A prune report as the JSON object `genai prune --json`, POST
 * /api/models/prune and genai_models_prune give (docs/store.md, "Prune"):
 * totals, then "files" with path, size, partial, action (and error). New
 * reference; NULL when out of memory. */
json_t *api_prune_json(const store_prune_report *r);

#endif
