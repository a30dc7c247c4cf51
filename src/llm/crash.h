/*
 * crash.h - why did llama-server die? A signature table and a classifier.
 *
 * The table holds the exact stderr texts of contracts/llama-server.md §9 for
 * build b10470, as data: the supervisor (src/proc/) scans a dead child's
 * stderr tail with it, and the planner reacts to the cause (retry with a new
 * port, give up on a bad file, try a smaller plan). The logger of
 * llama-server is asynchronous and sometimes loses its last line, so the
 * classifier looks at every line of the tail, never only at the last one.
 */
#ifndef GENAI_LLM_CRASH_H
#define GENAI_LLM_CRASH_H

#include <stddef.h>

enum llm_crash_cause {
    LLM_CRASH_UNKNOWN = 0,
    LLM_CRASH_OUT_OF_MEMORY, /* host or device allocation failed */
    LLM_CRASH_BAD_MODEL,     /* missing, not GGUF, truncated */
    LLM_CRASH_PORT_IN_USE,   /* bind failed: pick another port and retry */
    LLM_CRASH_BAD_ARGUMENT,  /* argv rejected before logging started */
    LLM_CRASH__COUNT
};

typedef struct llm_crash_signature {
    enum llm_crash_cause cause;
    const char *needle; /* substring of one stderr line */
} llm_crash_signature;

/* The table, in priority order (earlier entries win when several match). */
extern const llm_crash_signature llm_crash_signatures[];
extern const size_t llm_crash_signatures_count;

/* Classifies a stderr tail (lines, oldest first; NULL entries are skipped).
 * Returns the cause of the highest-priority signature found in any line and,
 * when match is not NULL, the index of the first line that carries it (or
 * n when nothing matched). */
enum llm_crash_cause llm_crash_classify(const char *const *lines, size_t n, size_t *match);

/* "out of memory", "bad model file", "port in use", "bad argument",
 * "unknown". Static. */
const char *llm_crash_cause_name(enum llm_crash_cause cause);

/* The error code that stands for the cause: GENAI_ENO_FIT, GENAI_ECORRUPT,
 * -EADDRINUSE, GENAI_EBAD_ARG, GENAI_ECHILD_EXITED. */
int llm_crash_cause_code(enum llm_crash_cause cause);

#endif
