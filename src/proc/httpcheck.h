/*
 * httpcheck.h - the HTTP readiness check for supervised servers.
 *
 * GET http://127.0.0.1:PORT/PATH, optionally with "Authorization: Bearer KEY";
 * ready when the status equals the expected one and, if a JSON predicate is
 * given, the body is a JSON object whose member KEY is the string VALUE.
 * llama-server: /health, 200, status == "ok", and 503 while loading
 * (contracts/llama-server.md §4); sd-server: /sdcpp/v1/capabilities, 200
 * (contracts/stable-diffusion-cpp.md §8.1). Any other HTTP answer counts as
 * "not ready" (alive and answering); no answer counts as "no answer".
 */
#ifndef GENAI_PROC_HTTPCHECK_H
#define GENAI_PROC_HTTPCHECK_H

#include "core/http_client.h"
#include "proc/supervisor.h"

typedef struct proc_httpcheck_opts {
    int port;               /* 1..65535 */
    const char *path;       /* "/health" */
    const char *bearer;     /* NULL: none */
    long expect_status;     /* 0: 200 */
    const char *json_key;   /* NULL: no body predicate */
    const char *json_value; /* the string json_key must have */
} proc_httpcheck_opts;

/*
 * Creates a check that issues its requests through client (which must outlive
 * it). The strings are copied. Release with check->destroy(check).
 */
int proc_httpcheck_new(http_client *client, const proc_httpcheck_opts *o, sup_check **out,
                       genai_error *err);

#endif
