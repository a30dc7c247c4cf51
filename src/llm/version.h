/*
 * version.h - which llama-server build genai is talking to.
 *
 * llama-server identifies itself in two places (contracts/llama-server.md §1):
 * `--version` writes "version: 0.1.1-dev (build 10470, commit 34af94cd9)" on
 * stderr, and /props carries build_info "b10470-34af94cd9". Features are gated
 * on the build number, never on the "0.1.1-dev" string, which does not change
 * between builds.
 */
#ifndef GENAI_LLM_VERSION_H
#define GENAI_LLM_VERSION_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

/* The build the contract was verified against. Flags spelled the way this
 * build spells them are used from this build on; older builds get the older
 * (deprecated but still accepted at b10470) spellings. */
#define LLM_BUILD_VERIFIED 10470u

/* Longest input llm_version_parse reads: --version output is two lines, but a
 * shared-library build may log backend loading first. */
#define LLM_VERSION_TEXT_MAX (64u * 1024u)

typedef struct llm_version {
    uint32_t build;   /* "build N" / "bN"; 0 when unknown */
    char commit[41];  /* as printed: a hex hash, or a packager's word ("Debian"); "" when absent */
    char version[32]; /* "0.1.1-dev"; "" when absent (build_info has none) */
} llm_version;

/* Parses `llama-server --version` output (stdout and stderr concatenated are
 * fine): finds the line "version: V (build N, commit H)". GENAI_ECORRUPT when
 * no such line exists or a field is malformed; *out is written only on success. */
int llm_version_parse(const char *text, size_t len, llm_version *out, genai_error *err);

/* Parses /props build_info, "b<N>-<commit>". GENAI_ECORRUPT when malformed. */
int llm_build_info_parse(const char *text, llm_version *out, genai_error *err);

/* Features whose spelling depends on the build. */
enum llm_feature {
    LLM_FEAT_LOAD_MODE, /* -lm auto|none|mmap|...; older: --mmap/--no-mmap/--mlock */
    LLM_FEAT_NO_UI,     /* --no-ui; older: --no-webui */
};

/* 1 when build uses the b10470 spelling of the feature, else 0. A build of 0
 * (unknown) is treated as the verified build. */
int llm_build_has(uint32_t build, enum llm_feature feature);

#endif
