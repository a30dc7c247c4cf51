/*
 * crash.c - the crash-signature table of contracts/llama-server.md §9.
 *
 * Priority: an argument error happens before anything else is logged, and a
 * bind failure happens before the model loads, so either explains the exit on
 * its own. A bad model file is checked before memory because the fit dry run
 * prints "failed to load model" chains that mention neither. Out-of-memory
 * texts come last.
 */
#include "llm/crash.h"

#include "genai.h"

#include <errno.h>
#include <string.h>

const llm_crash_signature llm_crash_signatures[] = {
    /* argv: "error: invalid argument: --bogus-flag", "error while handling argument "-c": stoi" */
    {LLM_CRASH_BAD_ARGUMENT, "error: invalid argument: "},
    {LLM_CRASH_BAD_ARGUMENT, "error while handling argument "},
    /* A configuration llama.cpp refuses at context creation (-ctv q8_0 -fa off). */
    {LLM_CRASH_BAD_ARGUMENT, "quantized V cache requires flash_attn to be enabled"},
    /* "E srv         start: couldn't bind HTTP server socket, hostname: H, port: N" */
    {LLM_CRASH_PORT_IN_USE, "couldn't bind HTTP server socket"},
    {LLM_CRASH_BAD_MODEL, "failed to open GGUF file"},
    {LLM_CRASH_BAD_MODEL, "invalid magic characters"},
    {LLM_CRASH_BAD_MODEL, "not within the file bounds"},
    {LLM_CRASH_OUT_OF_MEMORY, "cudaMalloc failed: out of memory"},
    {LLM_CRASH_OUT_OF_MEMORY, "insufficient memory"},
    {LLM_CRASH_OUT_OF_MEMORY, "unable to allocate"},
    {LLM_CRASH_OUT_OF_MEMORY, "failed to allocate"},
};

const size_t llm_crash_signatures_count =
    sizeof(llm_crash_signatures) / sizeof(llm_crash_signatures[0]);

enum llm_crash_cause llm_crash_classify(const char *const *lines, size_t n, size_t *match)
{
    size_t best = llm_crash_signatures_count, where = n;
    for (size_t i = 0; i < n; i++) {
        if (lines[i] == NULL)
            continue;
        for (size_t s = 0; s < best; s++) {
            if (strstr(lines[i], llm_crash_signatures[s].needle) != NULL) {
                best = s;
                where = i;
                break;
            }
        }
    }
    if (match != NULL)
        *match = where;
    return best < llm_crash_signatures_count ? llm_crash_signatures[best].cause : LLM_CRASH_UNKNOWN;
}

const char *llm_crash_cause_name(enum llm_crash_cause cause)
{
    switch (cause) {
    case LLM_CRASH_OUT_OF_MEMORY:
        return "out of memory";
    case LLM_CRASH_BAD_MODEL:
        return "bad model file";
    case LLM_CRASH_PORT_IN_USE:
        return "port in use";
    case LLM_CRASH_BAD_ARGUMENT:
        return "bad argument";
    case LLM_CRASH_UNKNOWN:
    case LLM_CRASH__COUNT:
        break;
    }
    return "unknown";
}

int llm_crash_cause_code(enum llm_crash_cause cause)
{
    switch (cause) {
    case LLM_CRASH_OUT_OF_MEMORY:
        return GENAI_ENO_FIT;
    case LLM_CRASH_BAD_MODEL:
        return GENAI_ECORRUPT;
    case LLM_CRASH_PORT_IN_USE:
        return -EADDRINUSE;
    case LLM_CRASH_BAD_ARGUMENT:
        return GENAI_EBAD_ARG;
    case LLM_CRASH_UNKNOWN:
    case LLM_CRASH__COUNT:
        break;
    }
    return GENAI_ECHILD_EXITED;
}
