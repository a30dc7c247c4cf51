/*
 * status.h - parse llama-server's readiness and property endpoints.
 *
 * GET /health answers 503 with the "Loading model" body while the model
 * loads and 200 {"status":"ok"} once ready (contracts/llama-server.md §4).
 * GET /props tells genai what actually started: the per-slot context, the
 * slot count, the alias and model path (to catch a wrong -m or an inherited
 * configuration), the build and whether the server sleeps (§6.3, §10).
 * Bodies come from a child process and are parsed as untrusted JSON with a
 * size cap.
 */
#ifndef GENAI_LLM_STATUS_H
#define GENAI_LLM_STATUS_H

#include "core/error.h"
#include "llm/version.h"

#include <stddef.h>
#include <stdint.h>

/* /props embeds the chat template, which can be tens of KiB; 4 MiB is far
 * above any seen and still bounded. */
#define LLM_STATUS_BODY_MAX (4u << 20)

enum llm_health {
    LLM_HEALTH_OK = 0,      /* 200 {"status":"ok"} */
    LLM_HEALTH_LOADING = 1, /* 503 with error.type "unavailable_error" */
};

/* Classifies a /health reply. GENAI_EHTTP for any other status or a 503 that
 * is not the loading body, GENAI_ECORRUPT for a 200 whose body is not
 * {"status":"ok"}. *out written only on success. */
int llm_health_parse(long http_status, const char *body, size_t len, enum llm_health *out,
                     genai_error *err);

typedef struct llm_props {
    uint32_t n_ctx_slot;  /* default_generation_settings.n_ctx (per slot) */
    uint32_t total_slots; /* total_slots */
    char *model_alias;    /* "" when absent */
    char *model_path;     /* "" when absent */
    char *build_info;     /* "b10470-34af94cd9"; "" when absent */
    llm_version build;    /* parsed build_info; build 0 when unparsable */
    int is_sleeping;      /* is_sleeping, 0 when absent */
} llm_props;

/* Parses a GET /props body. On success *out owns its strings (release with
 * llm_props_free). GENAI_ECORRUPT when the body is not a JSON object or lacks
 * total_slots or default_generation_settings.n_ctx; GENAI_ETOO_LARGE above
 * LLM_STATUS_BODY_MAX. */
int llm_props_parse(const char *body, size_t len, llm_props *out, genai_error *err);

/* Frees the strings of p (not p itself) and zeroes it. Accepts NULL. */
void llm_props_free(llm_props *p);

#endif
