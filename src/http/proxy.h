/*
 * proxy.h - the streaming proxy from a client's request to llama-server,
 * on the loop thread.
 *
 * The request body goes upstream unchanged (POST with the child's own API
 * key) through the loop's libcurl multi handle (core/http_client.h). An
 * upstream reply of type text/event-stream is passed through to the client
 * piece by piece as curl delivers it, with no buffering beyond the server's
 * output buffer; any other reply is collected (bounded) and answered whole
 * with the upstream status. Usage fields (prompt_tokens, completion_tokens)
 * are read from the reply for the metrics: in a stream only the events
 * that mention "usage" are parsed.
 *
 * Failures: an upstream that cannot be reached, or that fails before the
 * first byte, is a 502 upstream_error; one that dies in the middle of a
 * stream ends the client's stream with an error event
 * (data: {"error":{"code":"upstream_error",...}}), which OpenAI clients
 * raise as an APIError. A client that goes away (or a server that stops)
 * aborts the upstream transfer at once: curl closes the connection, so
 * llama-server sees the hang-up and stops generating. A client that stops
 * reading while HTTP_STREAM_MAX_PENDING bytes wait aborts it too.
 *
 * Once started, the proxy owns the request: it finishes it exactly once and
 * then calls done.
 */
#ifndef GENAI_HTTP_PROXY_H
#define GENAI_HTTP_PROXY_H

#include "core/http_client.h"
#include "http/server.h"

#include <stddef.h>
#include <stdint.h>

/* Largest non-streamed upstream reply passed on (embeddings of a big batch
 * are the largest llama-server sends). */
#define HTTP_PROXY_MAX_BODY (64u * 1024u * 1024u)

typedef struct http_proxy_result {
    int rc;                /* 0: upstream finished normally; else the failure */
    long status;           /* upstream status, 0 when none arrived */
    int streamed;          /* the reply was passed through as a stream */
    int client_gone;       /* the client went away (or the server stops) */
    size_t events;         /* SSE events passed through */
    int64_t prompt_tokens; /* from "usage", -1 when not seen */
    int64_t completion_tokens;
} http_proxy_result;

/* Runs on the loop thread once the request is finished. */
typedef void (*http_proxy_done_fn)(void *arg, const http_proxy_result *r);

typedef struct http_proxy_opts {
    http_client *client; /* the loop's client */
    uint16_t port;       /* llama-server on 127.0.0.1 */
    const char *api_key; /* its key; NULL: none */
    const char *path;    /* "/v1/chat/completions" */
    const char *body;    /* copied */
    size_t body_len;
    http_proxy_done_fn done; /* may be NULL */
    void *arg;
} http_proxy_opts;

/*
 * Starts proxying req upstream. On success the proxy finishes req and calls
 * done once; on failure (nothing sent, the request untouched) the caller
 * still owns req. Loop thread.
 */
int http_proxy_start(http_request *req, const http_proxy_opts *o, genai_error *err);

#endif
