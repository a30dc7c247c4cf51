/*
 * autoconf.h - choose a launch configuration that fits, using plan_fit().
 *
 * LLM (plan_llm_autoconfig), for every field the base configuration leaves
 * open, in this order:
 *   1. KV cache type: f16; only when nothing fits with f16, q8_0 for K and V
 *      with flash attention on (needs FA not forced off and head dims % 32);
 *   2. GPU layers: the most -ngl units that fit at the floor context;
 *   3. context: the largest multiple of 256 up to n_ctx_train that still fits
 *      with those layers, never below the floor (default 4096, or
 *      n_ctx_train when smaller);
 *   4. threads: the probe's physical cores (else usable, else logical CPUs);
 *   5. GPUs: every GPU of the snapshot, layers split in proportion to their
 *      usable memory (what llama.cpp does by default with free memory), passed
 *      explicitly as -ts.
 * The search is exhaustive over layers and binary over context: demand grows
 * monotonically with both.
 *
 * Diffusion (plan_sd_autoconfig): the cheapest placement that fits, adding
 * one step at a time in the order of memory.md §13.4: flash attention, VAE
 * tiling, text encoder on CPU, VAE on CPU, --offload-to-cpu.
 */
#ifndef GENAI_PLAN_AUTOCONF_H
#define GENAI_PLAN_AUTOCONF_H

#include "core/error.h"
#include "gguf/profile.h"
#include "plan/diffusion.h"
#include "plan/fit.h"
#include "plan/llm.h"

#define PLAN_DEFAULT_CTX_FLOOR 4096

typedef struct plan_llm_choice {
    plan_llm_config cfg; /* every auto field resolved */
    plan_llm_shape shape;
    plan_demand demand;
    plan_fit_result fit;
} plan_llm_choice;

typedef struct plan_sd_choice {
    plan_sd_placement placement;
    plan_demand demand;
    plan_fit_result fit;
} plan_sd_choice;

/*
 * Resolves the open fields of base (n_gpu_layers PLAN_NGL_AUTO, n_ctx 0, KV
 * types PLAN_CACHE_DEFAULT, threads 0, n_gpus and tensor_split) for model p
 * against env. ctx_floor 0 means PLAN_DEFAULT_CTX_FLOOR. Fields base fixes
 * are kept. Returns 0 with *out filled; GENAI_ENO_FIT when no configuration
 * fits, with *out describing the attempt closest to fitting (smallest total
 * deficit) so the caller can say how much memory is missing; the errors of
 * plan_llm_estimate otherwise (then *out is untouched).
 */
int plan_llm_autoconfig(const gguf_profile *p, const plan_llm_config *base, const plan_fit_env *env,
                        uint32_t ctx_floor, plan_llm_choice *out, genai_error *err);

/*
 * Picks the cheapest placement for req on model m: starts from base (flags it
 * sets stay set; base->gpu is the GPU to use, -1 or a GPU the snapshot lacks
 * means CPU only) and adds the steps above until plan_fit() succeeds.
 * Returns 0 with *out filled, or GENAI_ENO_FIT with *out holding the last
 * (most frugal) placement and its deficit.
 */
int plan_sd_autoconfig(const plan_sd_model *m, const plan_sd_request *req,
                       const plan_sd_placement *base, const plan_fit_env *env, plan_sd_choice *out,
                       genai_error *err);

#endif
