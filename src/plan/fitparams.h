/*
 * fitparams.h - the DRY_RUN tier: llama.cpp's llama-fit-params with
 * --fit-print on (contracts/llama-server.md §11.2, memory.md §7).
 *
 * Three pure steps, so each can be tested without the binary:
 *   1. plan_fitparams_argv(): the command line, with every flag that changes
 *      the projection explicit (-c, -np, -kvu/-no-kvu, -fa, -ctk, -ctv, -ub,
 *      -b, -ngl, -ts, -nkvo, --swa-full, -dev none for CPU only). -np auto is
 *      written as "-np 4 -kvu", because llama-server rewrites it inside
 *      server.cpp and llama-fit-params does not (§11.2);
 *   2. plan_fitparams_parse(): its stdout, one line per GPU
 *      "<dev> <model> <context> <compute> " then "Host <model> <context>
 *      <compute> ", integer MiB, truncated;
 *   3. plan_fitparams_demand(): those rows plus what the dry run does not
 *      cover (§13.2): the output buffer, the --cache-ram budget, the mmproj,
 *      the process runtime and the driver context per GPU.
 * GPU row i is taken to be snapshot GPU i; the driver should start llama.cpp
 * with CUDA_DEVICE_ORDER=PCI_BUS_ID so both enumerate devices alike.
 */
#ifndef GENAI_PLAN_FITPARAMS_H
#define GENAI_PLAN_FITPARAMS_H

#include "core/error.h"
#include "gguf/profile.h"
#include "plan/demand.h"
#include "plan/llm.h"

#include <stddef.h>
#include <stdint.h>

#define PLAN_FITPARAMS_OUTPUT_MAX (64 * 1024) /* stdout larger than this is not ours */
#define PLAN_FITPARAMS_NAME_MAX 64

/* A NULL-terminated argument vector; every string is owned by it. */
typedef struct plan_argv {
    char **argv; /* argc + 1 entries, argv[argc] == NULL */
    size_t argc;
} plan_argv;

/* Releases every string and the vector; resets a. Accepts NULL. */
void plan_argv_free(plan_argv *a);

typedef struct plan_fitparams_row {
    char name[PLAN_FITPARAMS_NAME_MAX]; /* "CUDA0", "Host", ... */
    uint64_t model_mib, context_mib, compute_mib;
} plan_fitparams_row;

typedef struct plan_fitparams_result {
    uint32_t n_gpus;
    plan_fitparams_row gpu[PLAN_MAX_GPUS];
    plan_fitparams_row host;
} plan_fitparams_result;

/*
 * Builds "binary -m model_path ... --fit-print on" for cfg into *out (free
 * with plan_argv_free). GENAI_EBAD_ARG for a NULL/empty path, -ENOMEM.
 */
int plan_fitparams_argv(const char *binary, const char *model_path, const plan_llm_config *cfg,
                        plan_argv *out, genai_error *err);

/*
 * Parses --fit-print output (text, len bytes, need not be NUL-terminated).
 * GENAI_ECORRUPT with the offending line number for anything else,
 * including the default-mode "-c N -ngl N" line; GENAI_ETOO_LARGE past
 * PLAN_FITPARAMS_OUTPUT_MAX or PLAN_MAX_GPUS rows.
 */
int plan_fitparams_parse(const char *text, size_t len, plan_fitparams_result *out,
                         genai_error *err);

/*
 * The DRY_RUN demand from parsed rows plus the extras. Each printed value is
 * floored, so each field is charged as value + 1 MiB on any place with a
 * non-zero row (an upper bound). Host model bytes are file-backed with mmap.
 */
int plan_fitparams_demand(const plan_fitparams_result *r, const gguf_profile *p,
                          const plan_llm_config *cfg, plan_demand *out, genai_error *err);

/*
 * Runs binary (llama-fit-params) on model_path with cfg's flags through
 * proc_run_capture, waiting at most timeout_ms, and fills *out with the
 * DRY_RUN demand. Errors: those of proc_run_capture (-ENOENT, GENAI_ETIMEOUT,
 * ...), GENAI_ECHILD_EXITED with the last stderr line when it exits non-zero
 * or dies, and those of the parser.
 */
int plan_fitparams_run(const char *binary, const char *model_path, const gguf_profile *p,
                       const plan_llm_config *cfg, int timeout_ms, plan_demand *out,
                       genai_error *err);

#endif
