/*
 * sd_spawn.h - test helper: run an sd-cli (real or fake) as a child process,
 * with extra environment variables, and capture stdout and stderr separately
 * with a deadline (never a fixed sleep).
 */
#ifndef GENAI_TESTS_SD_SPAWN_H
#define GENAI_TESTS_SD_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

typedef struct sd_child {
    pid_t pid;
    int out_fd, err_fd; /* -1 once at EOF */
    char *out;          /* captured so far, NUL-terminated (mem_alloc'ed) */
    size_t out_len;
    char *err;
    size_t err_len;
    int exited, exit_code, term_signal; /* valid after sd_child_wait() */
    int reaped;
} sd_child;

/* Starts argv with the current environment plus env ("NAME=value" strings,
 * NULL-terminated; may be NULL), stdin from /dev/null. 0 or -errno. */
int sd_child_start(sd_child *c, const char *const *argv, const char *const *env);

/* Reads output until stdout contains needle (1), the streams end (0), or
 * timeout_ms passes (-ETIMEDOUT). */
int sd_child_read_until(sd_child *c, const char *needle, int timeout_ms);

/* Reads both streams to EOF and reaps the child, within timeout_ms (then the
 * child is SIGKILLed and -ETIMEDOUT returned). */
int sd_child_wait(sd_child *c, int timeout_ms);

/* Kills (SIGKILL) and reaps a child still running, closes fds, frees buffers. */
void sd_child_free(sd_child *c);

/* Runs argv to completion (sd_child_start + sd_child_wait). */
int sd_child_run(sd_child *c, const char *const *argv, const char *const *env, int timeout_ms);

#endif
