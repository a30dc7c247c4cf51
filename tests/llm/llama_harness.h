/*
 * llama_harness.h - run a llama-server (the fake one or the real one) as a
 * child process from a test: spawn with posix_spawn, stdout and stderr to
 * files, readiness by polling /health with libcurl against a deadline, HTTP
 * helpers, and a stop that always ends with the child reaped.
 */
#ifndef GENAI_TESTS_LLAMA_HARNESS_H
#define GENAI_TESTS_LLAMA_HARNESS_H

#include "core/sbuf.h"

#include <stddef.h>
#include <sys/types.h>

typedef struct lh_child {
    pid_t pid;     /* 0 once reaped */
    int status;    /* waitpid status once reaped */
    char dir[256]; /* private temp directory */
    char err_path[300], out_path[300];
} lh_child;

typedef struct lh_reply {
    long status; /* HTTP status, 0 on transport failure */
    int curl_rc; /* CURLcode */
    sbuf body;
    sbuf headers;
} lh_reply;

/* Creates a temp directory for one test into c->dir. */
void lh_init(lh_child *c);
/* Spawns argv (argv[0] is the path) with envp (NULL: inherit) and stdin
 * /dev/null; stdout/stderr go to files in c->dir. 0 or -errno. */
int lh_spawn(lh_child *c, char *const *argv, char *const *envp);
/* Waits up to ms for the child to exit; 1 when it has (status in c->status). */
int lh_wait_exit(lh_child *c, long ms);
/* Polls GET http://127.0.0.1:port/health every 20 ms until 200, the child
 * exits or ms pass. Returns the last HTTP status (200 on success), -1 when
 * the child exited, 0 on timeout. first_status (optional) gets the first
 * status seen (0 when nothing answered). */
long lh_wait_ready(lh_child *c, unsigned port, long ms, long *first_status);
/* One HTTP request. method "GET"/"POST"; body may be NULL; key adds
 * "Authorization: Bearer key" when not NULL; timeout_ms bounds it. */
void lh_http(lh_reply *r, const char *method, unsigned port, const char *path, const char *body,
             const char *key, long timeout_ms);
void lh_reply_free(lh_reply *r);
/* The poll interval of deadline loops (waits ms milliseconds). */
void lh_nap_ms(long ms);
/* Reads the child's stderr file (caller frees with mem_free). */
char *lh_stderr(const lh_child *c);
/* Kills (SIGKILL) and reaps a child still running, removes the files. */
void lh_cleanup(lh_child *c);
/* A failed assertion leaves its test at once, so the test's lh_cleanup does
 * not run: children and folders are also tracked here (by pid and path, not
 * by the lh_child, which lived on the abandoned stack). Kills and reaps every
 * child not reaped yet and removes every folder not removed yet; for a
 * cmocka teardown, after every test. Returns the number of children it had
 * to kill. */
int lh_cleanup_leftovers(void);
/* Writes a minimal file with the GGUF magic (version 3, no tensors, no
 * metadata, padded to size bytes) at path. */
void lh_write_gguf(const char *path, size_t size);

#endif
