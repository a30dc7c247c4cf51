/*
 * classify.h - naming the cause of a child's death from its stderr tail.
 *
 * A driver passes a table of (substring, cause) pairs taken from its
 * program's contract; the first pattern, in table order, that occurs anywhere
 * in the text wins, so a table lists its most specific causes first. Two
 * tables built from the contracts are provided: llama-server
 * (contracts/llama-server.md §9) and stable-diffusion.cpp (sd-cli and
 * sd-server, contracts/stable-diffusion-cpp.md §6).
 */
#ifndef GENAI_PROC_CLASSIFY_H
#define GENAI_PROC_CLASSIFY_H

#include <stddef.h>

typedef enum proc_cause {
    PROC_CAUSE_NONE = 0,  /* no death to explain (a requested stop) */
    PROC_CAUSE_UNKNOWN,   /* died, no pattern matched */
    PROC_CAUSE_OOM,       /* out of host or device memory */
    PROC_CAUSE_BAD_MODEL, /* missing, corrupt or unsupported model file */
    PROC_CAUSE_PORT,      /* could not bind its port */
    PROC_CAUSE_BAD_ARG,   /* rejected its command line */
    PROC_CAUSE_HANG,      /* stopped answering its health check (watchdog) */
    PROC_CAUSE_NOT_READY, /* did not become ready before the deadline */
    PROC_CAUSE_EXEC,      /* could not be executed at all */
} proc_cause;

typedef struct proc_pattern {
    const char *needle; /* NULL ends the table */
    proc_cause cause;
} proc_pattern;

extern const proc_pattern proc_patterns_llama_server[];
extern const proc_pattern proc_patterns_sd[];

/* The cause of the first pattern of table found in text (len bytes), or
 * PROC_CAUSE_UNKNOWN. A NULL table gives PROC_CAUSE_UNKNOWN. */
proc_cause proc_classify(const proc_pattern *table, const char *text, size_t len);

/* "out of memory", "bad model file", ... Static. */
const char *proc_cause_text(proc_cause cause);
/* Short stable name for JSON and logs: "oom", "bad_model", ... Static. */
const char *proc_cause_name(proc_cause cause);

#endif
