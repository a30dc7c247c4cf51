/*
 * discover.h - find the llama-server and llama-fit-params executables.
 *
 * Order for llama-server: the path from genai's configuration, then the
 * environment variable GENAI_LLAMA_SERVER, then the directories of PATH.
 * Order for llama-fit-params: the configured path, GENAI_LLAMA_FIT_PARAMS,
 * the directory that holds llama-server (a shared-library build ships both
 * side by side, contracts/llama-server.md §1), then PATH.
 *
 * A candidate must be a regular file executable by this process. An explicit
 * path or variable that names something unusable is an error, not a reason to
 * fall through to PATH: the user asked for that binary.
 */
#ifndef GENAI_LLM_DISCOVER_H
#define GENAI_LLM_DISCOVER_H

#include "core/error.h"

#define LLM_SERVER_ENV "GENAI_LLAMA_SERVER"
#define LLM_FIT_PARAMS_ENV "GENAI_LLAMA_FIT_PARAMS"

/* Finds llama-server. explicit_path may be NULL or "". On success *out is a
 * newly allocated path (caller frees with mem_free). GENAI_ENOT_FOUND when
 * nothing is found; GENAI_EBAD_ARG when an explicit path or the variable names
 * a file that is missing or not executable. */
int llm_find_server(const char *explicit_path, char **out, genai_error *err);

/* Finds llama-fit-params. server_path (may be NULL) is the llama-server
 * already found; its directory is searched before PATH. Same ownership and
 * errors as llm_find_server. */
int llm_find_fit_params(const char *explicit_path, const char *server_path, char **out,
                        genai_error *err);

#endif
