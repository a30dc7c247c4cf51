/*
 * run.h - run a short-lived program to completion and capture its output.
 *
 * For `llama-server --version`, `llama-fit-params`, `sd-cli --version`:
 * synchronous, callable from any thread, bounded in time and memory. The
 * child is started by proc_spawn() (argv, /dev/null stdin, every other fd
 * closed, dies with the calling thread), its stdout and stderr are captured
 * separately, and at the deadline it is SIGKILLed and reaped.
 */
#ifndef GENAI_PROC_RUN_H
#define GENAI_PROC_RUN_H

#include "core/error.h"

#include <stddef.h>

typedef struct proc_capture {
    int exited;      /* 1: normal exit, exit_code valid; 0: killed by term_signal */
    int exit_code;   /* -1 when killed by a signal */
    int term_signal; /* 0 when exited */
    char *out;       /* stdout, NUL-terminated (may hold NUL bytes); never NULL on success */
    size_t out_len;
    char *err; /* stderr, NUL-terminated; never NULL on success */
    size_t err_len;
    int truncated; /* 1 when either stream passed max_output; the rest was dropped */
} proc_capture;

/*
 * Runs argv (argv[0] a path or a name found in PATH; no shell) and waits for
 * it to exit, at most timeout_ms milliseconds (> 0). Each stream keeps at most
 * max_output bytes; the rest is read and dropped, with truncated = 1.
 * On success (the program ran, whatever its exit status) fills *out, which the
 * caller releases with proc_capture_free(). Fails with -ENOENT/-EACCES when
 * the program cannot be executed, GENAI_ETIMEOUT when the deadline passed (the
 * child was SIGKILLed and reaped; *out untouched), -ENOMEM, or GENAI_EBAD_ARG.
 */
int proc_run_capture(const char *const argv[], int timeout_ms, size_t max_output, proc_capture *out,
                     genai_error *err);

/* Frees the buffers of c and zeroes it. Accepts NULL. */
void proc_capture_free(proc_capture *c);

#endif
