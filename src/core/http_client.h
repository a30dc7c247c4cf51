/*
 * http_client.h - asynchronous HTTP requests driven by the loop thread.
 *
 * libcurl's multi-socket API on libuv: curl says which sockets to watch and
 * when to wake it, uv_poll and a uv_timer (and a uv_idle for "now") do the
 * watching, and completions come back as callbacks on the loop thread. Only
 * the loop thread touches curl (DESIGN.md). Used for readiness checks now and
 * by the orchestrator and the proxy later.
 *
 * Every socket is created close-on-exec (CURLOPT_OPENSOCKETFUNCTION): curl
 * 7.88 does not do it itself, and children are forked from this thread; the
 * multi handle's own wake-up socketpair is marked after the fact (see
 * http_client.c).
 * Proxies from the environment are ignored: these requests go to local
 * children.
 */
#ifndef GENAI_CORE_HTTP_CLIENT_H
#define GENAI_CORE_HTTP_CLIENT_H

#include "core/error.h"

#include <stddef.h>
#include <uv.h>

typedef struct http_client http_client;
typedef struct http_req http_req;

typedef struct http_get_opts {
    const char *url;    /* http://127.0.0.1:PORT/path */
    const char *bearer; /* NULL: no Authorization header */
    int timeout_ms;     /* whole request; > 0 */
    size_t max_body;    /* a longer body fails the request with GENAI_ETOO_LARGE */
} http_get_opts;

typedef struct http_result {
    int rc;           /* 0: an HTTP response arrived (any status); else negative */
    long status;      /* HTTP status, 0 when none */
    const char *body; /* NUL-terminated, valid during the callback only */
    size_t body_len;
    const char *error; /* curl's text when rc < 0, else "" */
} http_result;

typedef void (*http_done_fn)(void *arg, const http_result *res);

/* Creates a client on uv (the loop thread's loop). Loop thread only. */
int http_client_new(uv_loop_t *uv, http_client **out, genai_error *err);

/*
 * Cancels every request without calling their callbacks and closes the
 * handles; the memory goes when the loop runs their close callbacks, so call
 * it while the loop still runs. Loop thread only. Accepts NULL.
 */
void http_client_free(http_client *c);

/*
 * Starts a GET. fn(arg, result) runs exactly once, later, on the loop thread,
 * unless the request is cancelled first. *out (optional) receives a handle
 * valid until fn runs or http_req_cancel is called. Loop thread only.
 */
int http_client_get(http_client *c, const http_get_opts *o, http_done_fn fn, void *arg,
                    http_req **out);

/* What a streaming request's data callback gets: the response status and
 * content type (as received so far) and one piece of the body, as curl
 * delivered it. Valid during the call only. */
typedef struct http_chunk {
    long status;
    const char *content_type; /* "" when the server sent none */
    const char *data;
    size_t len;
} http_chunk;

/* Runs on the loop thread, inside curl: it must not start, cancel or free
 * requests. Return 0 to go on; non-zero aborts the transfer, which then
 * completes with GENAI_ECANCELLED. */
typedef int (*http_chunk_fn)(void *arg, const http_chunk *c);

typedef struct http_req_opts {
    const char *method;       /* "GET", "POST", ...; NULL: POST with a body, else GET */
    const char *url;          /* http://127.0.0.1:PORT/path */
    const char *bearer;       /* NULL: no Authorization header */
    const char *content_type; /* of the body; NULL: application/json */
    const char *body;         /* copied; NULL: none */
    size_t body_len;
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated; may be NULL */
    int timeout_ms;             /* whole request; 0: no limit (streams) */
    int connect_timeout_ms;     /* 0: 5000 */
    size_t max_body;            /* without on_data: the body kept (GENAI_ETOO_LARGE beyond) */
    /* Streaming: every piece of the body goes to on_data as it arrives and
     * nothing is kept (http_result.body is ""). NULL: collect the body. */
    http_chunk_fn on_data;
} http_req_opts;

/*
 * Starts a request with any method, a body and headers, collected or
 * streamed. fn(arg, result) runs exactly once, later, on the loop thread,
 * unless the request is cancelled first; on_data (same arg) runs before it
 * for every piece of the body. *out as for http_client_get. Loop thread only.
 */
int http_client_request(http_client *c, const http_req_opts *o, http_done_fn fn, void *arg,
                        http_req **out);

/* Aborts a request; its callback will not run. Not from inside an http_done_fn
 * or http_chunk_fn of the same request. Accepts NULL. */
void http_req_cancel(http_req *r);

#endif
