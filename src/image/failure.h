/*
 * failure.h - why an sd-cli run (or an sd-server job) failed, from its exit
 * status and the last lines of its output.
 *
 * The rules are data: a table of message fragments taken from
 * contracts/stable-diffusion-cpp.md §6, each with the cause it proves. Memory
 * exhaustion wins over everything else and is recognised whatever the failed
 * status: the same cause gave exit 1 (compute buffer) and SIGABRT (weights).
 * A run that exited 0 succeeded, whatever it printed. [DEBUG] lines and
 * indented lines (the -v parameter dump, which echoes the prompt) are never
 * evidence. Lines are matched on text only, never on file:line (those move between
 * builds), and both streams count: sd-cli puts [ERROR] lines on stderr and the
 * context ([WARN ] file not found, [INFO ] new_sd_ctx_t failed) on stdout.
 */
#ifndef GENAI_IMAGE_FAILURE_H
#define GENAI_IMAGE_FAILURE_H

#include <stddef.h>

enum img_cause {
    IMG_CAUSE_NONE = 0,       /* exit 0 */
    IMG_CAUSE_OUT_OF_MEMORY,  /* a buffer did not fit (host or device) */
    IMG_CAUSE_MODEL_MISSING,  /* the model file does not exist or cannot be opened */
    IMG_CAUSE_MODEL_UNKNOWN,  /* not a model sd.cpp recognises */
    IMG_CAUSE_MODEL_CORRUPT,  /* truncated file: tensor data out of bounds */
    IMG_CAUSE_MISSING_TENSOR, /* a tensor the architecture needs is absent */
    IMG_CAUSE_BAD_ARGUMENT,   /* the command line was refused */
    IMG_CAUSE_OUTPUT,         /* the output file or directory could not be written */
    IMG_CAUSE_KILLED,         /* SIGTERM/SIGKILL from outside (a stop, the OOM killer) */
    IMG_CAUSE_CRASH,          /* another signal (SIGSEGV, SIGABRT without a known cause) */
    IMG_CAUSE_UNKNOWN,        /* non-zero exit, no recognised line */
};

typedef struct img_failure {
    enum img_cause cause;
    const char *evidence; /* the line that proved it (points into the input), or NULL */
    size_t evidence_len;
} img_failure;

/*
 * Classifies a finished run. exited: 1 when the process exited (exit_code
 * valid), 0 when a signal killed it (term_signal valid). lines/lens: the tail
 * of both streams, n lines (not NUL-terminated, lens[i] bytes each). The
 * result points into the caller's lines.
 */
img_failure img_failure_classify(int exited, int exit_code, int term_signal,
                                 const char *const *lines, const size_t *lens, size_t n);

/* Short name ("out_of_memory") and a sentence for the user; static strings. */
const char *img_cause_name(enum img_cause c);
const char *img_cause_message(enum img_cause c);

#endif
