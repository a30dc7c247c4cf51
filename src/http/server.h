/*
 * server.h - genai's HTTP server: libmicrohttpd bridged to the loop thread,
 * a route table, and the reply API that handlers use.
 *
 * Threads (DESIGN.md "the recipe that worked"): MHD runs its own polling
 * thread, which only parses requests, copies bytes and suspends connections.
 * Every handler runs on the loop thread, posted there with loop_post, and
 * replies from the loop, now or later: a full response (http_reply*) or a
 * stream (http_stream_begin, then http_stream_write as data arrives, then
 * http_stream_end). The server checks the Host header, the Origin (CORS), the
 * API key, the body limit and, for JSON routes, the JSON syntax and depth
 * before a handler sees the request.
 *
 * Handler contract: a handler must finish every request it is given, exactly
 * once, with http_reply* or http_stream_end, synchronously or later from the
 * loop thread. The request stays valid until it is finished. If the client
 * goes away (or the server shuts down) first, the abort hook set with
 * http_req_on_abort runs on the loop thread; the handler should stop
 * producing and finish the request (finishing calls then do nothing but
 * release it). Replies after an abort are harmless.
 *
 * Routes: a table of {method, path, flags, handler}; the built-in table is
 * http_routes (routes.h), one line per route.
 */
#ifndef GENAI_HTTP_SERVER_H
#define GENAI_HTTP_SERVER_H

#include "core/config.h"
#include "core/error.h"
#include "core/events.h"
#include "core/loop.h"
#include "core/metrics.h"

#include <jansson.h>
#include <stddef.h>

typedef struct http_server http_server;
typedef struct http_request http_request;

/* Runs on the loop thread; must eventually finish req (see above). */
typedef void (*http_handler_fn)(http_request *req);
/* Runs on the loop thread when the client went away or the server stops. */
typedef void (*http_abort_fn)(http_request *req, void *arg);

/* Route flags. */
#define HTTP_ROUTE_PREFIX 1u /* path is a prefix ("/v1/models/" matches "/v1/models/x") */
#define HTTP_ROUTE_PUBLIC 2u /* no API key needed (health checks) */
#define HTTP_ROUTE_JSON 4u   /* body must be application/json within the depth limit */

typedef struct http_route {
    const char *method; /* "GET", "POST", "DELETE" */
    const char *path;   /* also the "route" label in metrics */
    unsigned flags;
    http_handler_fn fn;
} http_route;

/* Lists the models for GET /v1/models: a new reference to a JSON array of
 * OpenAI model objects, or NULL. Loop thread. */
typedef json_t *(*http_models_fn)(void *arg);

typedef struct http_server_opts {
    loop *loop;                 /* required; outlives the server */
    const genai_config *config; /* required; copied */
    const http_route *routes;   /* NULL: the built-in http_routes */
    size_t n_routes;
    metrics *metrics;      /* borrowed; NULL: the server keeps its own */
    events *events;        /* borrowed; NULL: the server keeps its own */
    http_models_fn models; /* NULL: GET /v1/models lists nothing */
    void *models_arg;
    void *app; /* for handlers, http_server_app() */
} http_server_opts;

/*
 * Binds config->host:port (close-on-exec socket) and starts MHD's thread.
 * Refuses a non-loopback bind without an API key (GENAI_EBAD_ARG). Any
 * thread but the loop's. Stop and free with http_server_stop().
 */
int http_server_start(const http_server_opts *o, http_server **out, genai_error *err);

/*
 * Stops the server: new requests get 503, every request in flight is failed
 * (503, or the end of its stream) and its abort hook runs, MHD is stopped from
 * the loop thread, and the call returns when the last request is released;
 * then s is freed. Blocks; never from the loop thread. Accepts NULL.
 */
void http_server_stop(http_server *s);

/* The port actually bound (useful with port 0). Any thread. */
unsigned http_server_port(const http_server *s);
/* The bind address as given in the config. Any thread. */
const char *http_server_host(const http_server *s);

/* Loop-thread accessors for handlers. */
loop *http_server_loop(const http_server *s);
metrics *http_server_metrics(const http_server *s);
events *http_server_events(const http_server *s);
const genai_config *http_server_config(const http_server *s);
void *http_server_app(const http_server *s);
/* Calls the models provider; a new reference to an array (empty without one). */
json_t *http_server_models(const http_server *s);

/* Request accessors: loop thread, until the request is finished. Strings
 * belong to the request. */
http_server *http_req_server(const http_request *r);
const char *http_req_method(const http_request *r);
/* The decoded path, without the query string. */
const char *http_req_path(const http_request *r);
/* A decoded query argument ("?limit=5"), or NULL. */
const char *http_req_query(const http_request *r, const char *key);
/* A request header (case-insensitive name), or NULL. */
const char *http_req_header(const http_request *r, const char *name);
/* The body (NUL-terminated for convenience); *len gets its size. */
const char *http_req_body(const http_request *r, size_t *len);
/* The parsed body of an HTTP_ROUTE_JSON route (borrowed), else NULL. */
json_t *http_req_json(const http_request *r);
/* True once the client went away or the server began stopping. */
int http_req_aborted(const http_request *r);
/* True once the server began stopping (not for a client that went away):
 * lets an abort hook tell a shutdown from a hang-up. */
int http_req_stopping(http_request *r);
/* True when the client connected from a loopback address. */
int http_req_peer_loopback(const http_request *r);
/* Sets (or clears, fn NULL) the abort hook. */
void http_req_on_abort(http_request *r, http_abort_fn fn, void *arg);

/*
 * Full replies. headers: NULL or a NULL-terminated list of name, value
 * pairs. The body is copied. Each finishes the request and returns 0, or
 * GENAI_EBAD_ARG when it was already finished or a stream was begun.
 */
int http_reply(http_request *r, int status, const char *content_type, const void *body, size_t len,
               const char *const *headers);
/* body is stolen (decref'd). */
int http_reply_json(http_request *r, int status, json_t *body);
/* {"error":{"code","type","message","suggestion"}}; suggestion may be NULL. */
int http_reply_error(http_request *r, int status, const char *code, const char *message,
                     const char *suggestion);

/* Most bytes a stream buffers for a slow client before writes fail. */
#define HTTP_STREAM_MAX_PENDING (8u * 1024u * 1024u)

/* Starts a streamed reply (chunked); then write, then end. */
int http_stream_begin(http_request *r, int status, const char *content_type,
                      const char *const *headers);
/*
 * Appends bytes for the client. Returns 0; GENAI_ECANCELLED when the client
 * went away or the server stops (end the stream); GENAI_ETOO_LARGE when more
 * than HTTP_STREAM_MAX_PENDING bytes would wait (the client does not read).
 */
int http_stream_write(http_request *r, const void *data, size_t len);
/* Ends the stream after the buffered bytes and finishes the request. */
int http_stream_end(http_request *r);
/* Bytes written and not yet taken by MHD (for back-pressure). */
size_t http_stream_pending(http_request *r);

/* The JSON error body used by http_reply_error, as a compact string the
 * caller frees with mem_free; NULL when out of memory. Any thread. */
char *http_error_body(int status, const char *code, const char *message, const char *suggestion);

#endif
