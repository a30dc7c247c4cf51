/*
 * daemon_client.h - how the genai command finds a running `genai serve` and
 * talks to it.
 *
 * The daemon writes <runtime dir>/serve.json ({pid, host, port, url,
 * version}; docs/http.md) while it runs and removes it when it stops. A file
 * whose pid is not a live process (gone, or a zombie nobody reaped) is stale
 * and means "no daemon". Requests are blocking libcurl calls to the file's
 * url with the API key from the configuration (GENAI_API_KEY,
 * GENAI_API_KEY_FILE, or the config file), as `genai serve` would read it.
 */
#ifndef GENAI_CLI_DAEMON_CLIENT_H
#define GENAI_CLI_DAEMON_CLIENT_H

#include "core/paths.h"

#include <jansson.h>
#include <sys/types.h>

typedef struct daemon_info {
    char state_path[PATHS_MAX]; /* the serve.json looked for (always filled) */
    pid_t pid;                  /* 0 when none */
    char url[320];              /* "http://127.0.0.1:11435" */
    char version[32];
} daemon_info;

/*
 * Looks for a running daemon. Returns 1 with *out filled when serve.json
 * names a live process, 0 when there is none (out->state_path says where
 * it looked; out->pid is the stale pid, or 0 when there was no file), or a
 * negative code when the paths cannot be resolved or the file is garbled.
 */
int daemon_find(daemon_info *out, genai_error *err);

/*
 * Sends method path (body: NULL or JSON text) to the daemon and waits up to
 * timeout_s for the whole reply. *status gets the HTTP status and *reply
 * the parsed JSON body (a new reference, NULL when the body is not JSON),
 * both written only on success. Fails with GENAI_EUNAVAILABLE when the
 * daemon does not answer.
 */
int daemon_request(const daemon_info *d, const char *method, const char *path, const char *body,
                   long timeout_s, long *status, json_t **reply, genai_error *err);

/* True while pid names a running process (not a zombie). */
int daemon_pid_alive(pid_t pid);

/* Prints "genai CMD: no genai daemon is running (looked for FILE)" and, for
 * a stale file, its pid. For daemon_find() == 0. */
void daemon_report_none(const char *cmd, const daemon_info *d);

/* Prints the error message of a JSON error reply ({"error":{...}}), or the
 * status alone, as "genai CMD: the daemon answered STATUS: MESSAGE". */
void daemon_report_reply(const char *cmd, long status, json_t *reply);

#endif
