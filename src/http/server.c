/*
 * server.c - libmicrohttpd bridged to the loop thread (see server.h).
 *
 * Two threads touch a request: MHD's polling thread and the loop thread.
 * Their shared fields live under the request's mutex; everything else is
 * written by one thread before a loop_post hands it to the other (the post's
 * mutex orders it). The protocol, from DESIGN.md:
 *
 *  1. MHD thread, first call of the access handler: copy method, path,
 *     headers and query into the request; register it with the server.
 *     Upload calls: copy the body, at most max_body_bytes (beyond: discard,
 *     remember too_large). Final call: mark suspended and suspend (under the
 *     lock), then post dispatch() to the loop.
 *  2. Loop thread: dispatch() runs the checks and the handler. A reply sets
 *     head_ready (status, headers, body) and resumes the connection only if
 *     it is marked suspended, under the lock: never twice.
 *  3. MHD thread, access handler called again after the resume: builds the
 *     response outside the lock and queues it. A stream's content reader
 *     drains the output buffer, ends the stream, or marks itself suspended and
 *     suspends, under the lock, and only then returns 0 (returning 0 without
 *     suspending spins a core).
 *
 * Suspend happens only on MHD's thread; resume only where 'suspended' is
 * seen set under the lock, which clears it.
 *
 * References: a request is freed when four counts are all zero: the
 * connection's (access handler to MHD's completion callback), the response's
 * (a streamed response until MHD frees it; the completion callback runs
 * before that), the loop's (dispatch to finish), and one per queued message.
 *
 * Disconnects: a suspended connection gets no timeout and no completion
 * callback from MHD, so from dispatch to finish the loop watches a
 * close-on-exec duplicate of the client socket (uv_poll, UV_DISCONNECT and
 * readable-with-EOF) and runs the request's abort hook when the peer closes.
 *
 * Shutdown (http_server_stop): under the server mutex set 'stopping' (new
 * requests get 503 at once) and take a reference on every live request; then
 * quiesce MHD (no new connections); fail each request (resume it if
 * suspended, so it answers 503 or ends its stream) and run its abort hook;
 * give the replies up to HTTP_STOP_GRACE_MS to drain (a uv_timer polls for
 * connections still open); stop MHD from the loop thread (it must not find a
 * suspended connection, or it aborts the process); then the release of the
 * last request, on the loop thread, completes the stop.
 */
#include "http/server.h"

#include "core/alloc.h"
#include "core/log.h"
#include "core/sbuf.h"
#include "http/guard.h"
#include "http/routes.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MOD "http"

/* Most headers and query arguments copied per request; MHD's per-connection
 * memory limit (32 KiB by default) bounds them before this does. */
#define MAX_FIELDS 128
/* How long a stop waits for failed requests' replies and the ends of
 * streams to reach their clients before MHD closes what is left. */
#define HTTP_STOP_GRACE_MS 2000
/* Size of the blocks MHD asks the content reader for. */
#define STREAM_BLOCK (32u * 1024u)

typedef struct kv {
    char *key;
    char *value;
} kv;

typedef struct watch {
    uv_poll_t poll;
    int fd;
    http_request *req; /* NULL once the request finished */
} watch;

enum ref_kind { REF_CONN, REF_RESP, REF_LOOP, REF_MSG };

struct http_request {
    http_server *srv;
    http_request *prev, *next; /* server list, under srv->mu */
    http_request *stop_next;   /* the shutdown walk, loop thread */
    pthread_mutex_t mu;

    /* Under mu. */
    int ref_conn, ref_resp, ref_loop, ref_msgs;
    struct MHD_Connection *conn; /* NULL after MHD's completion callback */
    int suspended;
    int head_ready;
    int streaming;
    int stream_ended;
    int failed;  /* the server is stopping */
    int aborted; /* the client went away */
    int status;
    const char *content_type; /* static or in hdrs */
    kv *hdrs;                 /* reply headers */
    size_t n_hdrs;
    sbuf out; /* full body, or stream bytes not yet taken */
    size_t out_off;

    /* Written by MHD's thread before dispatch; read-only afterwards. */
    char *method;
    char *path;
    kv *headers;
    size_t n_headers;
    kv *query;
    size_t n_query;
    sbuf body;
    int too_large;
    int dispatched;
    int peer_loopback; /* the client connected from a loopback address */
    int fd_dup;        /* handed to the watch at dispatch */
    uint64_t start_ns;

    /* Loop thread only. */
    const http_route *route;
    json_t *json;
    http_abort_fn abort_fn;
    void *abort_arg;
    int finished;
    int abort_called;
    watch *watch;
};

struct http_server {
    loop *loop;
    genai_config cfg;
    const http_route *routes;
    size_t n_routes;
    metrics *metrics;
    events *events;
    int own_metrics, own_events;
    http_models_fn models;
    void *models_arg;
    void *app;
    struct MHD_Daemon *mhd;
    unsigned port;

    pthread_mutex_t mu; /* guards the fields below */
    http_request *reqs;
    int stopping;
    int mhd_stopped;
    int final_started;

    /* Loop thread only. */
    loop_completion *stop_c;
    uv_timer_t drain;
    uint64_t drain_deadline;
    int listen_fd; /* after MHD_quiesce_daemon */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- request lifetime ------------------------------------------------- */

static void kv_free(kv *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mem_free(v[i].key);
        mem_free(v[i].value);
    }
    mem_free(v);
}

static void req_free(http_request *r)
{
    if (r->fd_dup >= 0)
        close(r->fd_dup);
    kv_free(r->headers, r->n_headers);
    kv_free(r->query, r->n_query);
    kv_free(r->hdrs, r->n_hdrs);
    sbuf_free(&r->body);
    sbuf_free(&r->out);
    mem_free(r->method);
    mem_free(r->path);
    json_decref(r->json);
    pthread_mutex_destroy(&r->mu);
    mem_free(r);
}

static void server_final(http_server *s)
{
    /* The last touch of s on this thread: the stopping thread frees it. */
    loop_complete(s->stop_c, 0);
}

static void req_ref(http_request *r, enum ref_kind k)
{
    pthread_mutex_lock(&r->mu);
    switch (k) {
    case REF_CONN:
        r->ref_conn++;
        break;
    case REF_RESP:
        r->ref_resp++;
        break;
    case REF_LOOP:
        r->ref_loop++;
        break;
    case REF_MSG:
        r->ref_msgs++;
        break;
    }
    pthread_mutex_unlock(&r->mu);
}

static void req_release(http_request *r, enum ref_kind k)
{
    pthread_mutex_lock(&r->mu);
    switch (k) {
    case REF_CONN:
        assert(r->ref_conn > 0);
        r->ref_conn--;
        break;
    case REF_RESP:
        assert(r->ref_resp > 0);
        r->ref_resp--;
        break;
    case REF_LOOP:
        assert(r->ref_loop > 0);
        r->ref_loop--;
        break;
    case REF_MSG:
        assert(r->ref_msgs > 0);
        r->ref_msgs--;
        break;
    }
    int dead = r->ref_conn == 0 && r->ref_resp == 0 && r->ref_loop == 0 && r->ref_msgs == 0;
    pthread_mutex_unlock(&r->mu);
    if (!dead)
        return;

    http_server *s = r->srv;
    pthread_mutex_lock(&s->mu);
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        s->reqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    /* mhd_stopped is only set once MHD's thread is gone, so a final step
     * found here runs on the loop thread. */
    int final = s->reqs == NULL && s->mhd_stopped && !s->final_started;
    if (final)
        s->final_started = 1;
    pthread_mutex_unlock(&s->mu);
    req_free(r);
    if (final)
        server_final(s);
}

/* Resumes the connection if it is suspended. Caller holds r->mu. */
static void resume_locked(http_request *r)
{
    if (r->suspended) {
        r->suspended = 0;
        MHD_resume_connection(r->conn);
    }
}

/* Suspends the connection. MHD's thread only; caller holds r->mu. */
static void suspend_locked(http_request *r)
{
    assert(!r->suspended);
    r->suspended = 1;
    MHD_suspend_connection(r->conn);
}

/* ---- the disconnect watch (loop thread) ------------------------------- */

static void req_abort(http_request *r);

static void watch_closed(uv_handle_t *h)
{
    watch *w = h->data;
    close(w->fd);
    mem_free(w);
}

static void watch_stop(http_request *r)
{
    watch *w = r->watch;
    if (w == NULL)
        return;
    r->watch = NULL;
    w->req = NULL;
    uv_close((uv_handle_t *)&w->poll, watch_closed);
}

static void on_watch(uv_poll_t *p, int status, int revents)
{
    watch *w = p->data;
    http_request *r = w->req;
    if (r == NULL)
        return;
    int gone = status < 0 || (revents & UV_DISCONNECT);
    if (!gone && (revents & UV_READABLE)) {
        char c;
        ssize_t n = recv(w->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            gone = 1;
        } else if (n > 0) {
            /* A pipelined request, not a close: watch for the hang-up only,
             * or level-triggered readiness would spin. */
            uv_poll_start(p, UV_DISCONNECT, on_watch);
        }
    }
    if (!gone)
        return;
    LOG_DEBUG(MOD, "%s %s: client went away", r->method, r->path);
    pthread_mutex_lock(&r->mu);
    r->aborted = 1;
    if (r->conn != NULL)
        resume_locked(r);
    pthread_mutex_unlock(&r->mu);
    req_abort(r);
}

static void watch_start(http_request *r)
{
    if (r->fd_dup < 0)
        return;
    watch *w = mem_alloc(sizeof(*w));
    if (w == NULL) {
        LOG_WARN(MOD, "no memory for a disconnect watch; %s %s will not see a hang-up", r->method,
                 r->path);
        return;
    }
    w->fd = r->fd_dup;
    w->req = r;
    int rc = uv_poll_init_socket(loop_uv(r->srv->loop), &w->poll, w->fd);
    if (rc != 0) {
        LOG_WARN(MOD, "disconnect watch: %s", uv_strerror(rc));
        mem_free(w);
        return;
    }
    r->fd_dup = -1;
    w->poll.data = w;
    r->watch = w;
    uv_poll_start(&w->poll, UV_READABLE | UV_DISCONNECT, on_watch);
}

/* Runs the abort hook once, unless the handler already finished. */
static void req_abort(http_request *r)
{
    if (r->finished || r->abort_called || !r->dispatched)
        return;
    r->abort_called = 1;
    watch_stop(r);
    if (r->abort_fn != NULL)
        r->abort_fn(r, r->abort_arg);
}

/* ---- finishing (loop thread) ------------------------------------------ */

static const char *route_label(const http_request *r)
{
    return r->route != NULL ? r->route->path : "unmatched";
}

static void count(http_server *s, const char *route, const char *method, int status, double seconds)
{
    char labels[256];
    snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\",status=\"%d\"", route, method,
             status);
    metrics_counter_add(s->metrics, "genai_http_requests_total",
                        "HTTP requests answered, by route, method and status.", labels, 1);
    snprintf(labels, sizeof(labels), "route=\"%s\"", route);
    metrics_observe(s->metrics, "genai_http_request_duration_seconds",
                    "Time from the end of the request to the end of the reply, by route.", labels,
                    seconds);
}

static const char *known_method(const char *m)
{
    static const char *const methods[] = {"GET",   "POST", "PUT",    "DELETE",
                                          "PATCH", "HEAD", "OPTIONS"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(m, methods[i]) == 0)
            return methods[i];
    return "other";
}

static void finish(http_request *r)
{
    assert(!r->finished);
    r->finished = 1;
    watch_stop(r);
    http_server *s = r->srv;
    metrics_gauge_add(s->metrics, "genai_http_requests_in_flight",
                      "Requests handed to a handler and not finished.", NULL, -1);
    pthread_mutex_lock(&r->mu);
    int status = r->status;
    pthread_mutex_unlock(&r->mu);
    count(s, route_label(r), known_method(r->method), status,
          (double)(now_ns() - r->start_ns) / 1e9);
    req_release(r, REF_LOOP);
}

/* ---- replies (loop thread) -------------------------------------------- */

static int add_hdr(kv **v, size_t *n, const char *key, const char *value)
{
    kv *nv = mem_reallocarray(*v, *n + 1, sizeof(kv));
    if (nv == NULL)
        return -ENOMEM;
    *v = nv;
    nv[*n].key = mem_strdup(key);
    nv[*n].value = mem_strdup(value);
    if (nv[*n].key == NULL || nv[*n].value == NULL) {
        mem_free(nv[*n].key);
        mem_free(nv[*n].value);
        return -ENOMEM;
    }
    (*n)++;
    return 0;
}

/* CORS headers for an allowed Origin (the check itself ran in dispatch). */
static int add_cors(http_request *r, kv **v, size_t *n)
{
    const char *origin = http_req_header(r, "Origin");
    if (origin == NULL || r->srv->cfg.cors_origins.n == 0)
        return 0;
    if (add_hdr(v, n, "Access-Control-Allow-Origin", origin) < 0 ||
        add_hdr(v, n, "Vary", "Origin") < 0)
        return -ENOMEM;
    return 0;
}

static int set_head(http_request *r, int status, const char *content_type,
                    const char *const *headers, int streaming, const void *body, size_t len)
{
    if (r->finished || r->head_ready)
        return GENAI_EBAD_ARG;
    kv *v = NULL;
    size_t n = 0;
    int rc = 0;
    if (content_type != NULL)
        rc = add_hdr(&v, &n, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (size_t i = 0; rc == 0 && headers != NULL && headers[i] != NULL; i += 2)
        rc = headers[i + 1] != NULL ? add_hdr(&v, &n, headers[i], headers[i + 1]) : 0;
    if (rc == 0)
        rc = add_cors(r, &v, &n);
    sbuf b = SBUF_INIT;
    if (rc == 0 && len > 0 && sbuf_append(&b, body, len) < 0)
        rc = -ENOMEM;
    if (rc < 0) {
        kv_free(v, n);
        sbuf_free(&b);
        return rc;
    }
    pthread_mutex_lock(&r->mu);
    r->status = status;
    r->hdrs = v;
    r->n_hdrs = n;
    r->streaming = streaming;
    if (!streaming) {
        sbuf_free(&r->out);
        r->out = b;
    }
    r->head_ready = 1;
    if (r->conn != NULL)
        resume_locked(r);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

int http_reply(http_request *r, int status, const char *content_type, const void *body, size_t len,
               const char *const *headers)
{
    assert(loop_on_thread(r->srv->loop));
    if (r->finished || r->head_ready)
        return GENAI_EBAD_ARG;
    int rc = set_head(r, status, content_type, headers, 0, body, len);
    if (rc < 0) {
        /* Out of memory for the reply: answer a bare 500 rather than hang. */
        LOG_ERROR(MOD, "%s %s: cannot build the reply: %s", r->method, r->path, genai_strerror(rc));
        if (set_head(r, 500, NULL, NULL, 0, NULL, 0) < 0) {
            /* Not even that: fail the request; MHD answers 503 itself. */
            pthread_mutex_lock(&r->mu);
            r->failed = 1;
            if (r->conn != NULL)
                resume_locked(r);
            pthread_mutex_unlock(&r->mu);
        }
    }
    finish(r);
    return 0;
}

int http_reply_json(http_request *r, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (text == NULL)
        return http_reply_error(r, 500, "internal", "could not serialize the reply", NULL);
    int rc = http_reply(r, status, "application/json", text, strlen(text), NULL);
    free(text); /* json_dumps allocates with jansson's allocator */
    return rc;
}

static const char *error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
    case 421:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

char *http_error_body(int status, const char *code, const char *message, const char *suggestion)
{
    json_t *e = json_pack("{s:{s:s, s:s, s:s, s:s*}}", "error", "code", code, "type",
                          error_type(status), "message", message, "suggestion", suggestion);
    if (e == NULL)
        return NULL;
    char *text = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(e);
    if (text == NULL)
        return NULL;
    char *copy = mem_strdup(text);
    free(text);
    return copy;
}

static int reply_error_h(http_request *r, int status, const char *code, const char *message,
                         const char *suggestion, const char *const *headers)
{
    char *text = http_error_body(status, code, message, suggestion);
    static const char fallback[] = "{\"error\":{\"code\":\"internal\",\"type\":\"server_error\","
                                   "\"message\":\"out of memory\"}}";
    int rc;
    if (text == NULL)
        rc = http_reply(r, 500, "application/json", fallback, sizeof(fallback) - 1, NULL);
    else
        rc = http_reply(r, status, "application/json", text, strlen(text), headers);
    mem_free(text);
    return rc;
}

int http_reply_error(http_request *r, int status, const char *code, const char *message,
                     const char *suggestion)
{
    return reply_error_h(r, status, code, message, suggestion, NULL);
}

int http_stream_begin(http_request *r, int status, const char *content_type,
                      const char *const *headers)
{
    assert(loop_on_thread(r->srv->loop));
    return set_head(r, status, content_type, headers, 1, NULL, 0);
}

int http_stream_write(http_request *r, const void *data, size_t len)
{
    assert(loop_on_thread(r->srv->loop));
    if (r->finished || !r->head_ready || !r->streaming)
        return GENAI_EBAD_ARG;
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    if (r->aborted || r->failed || r->conn == NULL) {
        rc = GENAI_ECANCELLED;
    } else if (r->out.len - r->out_off + len > HTTP_STREAM_MAX_PENDING) {
        rc = GENAI_ETOO_LARGE;
    } else if (sbuf_append(&r->out, data, len) < 0) {
        rc = -ENOMEM;
    } else {
        resume_locked(r);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int http_stream_end(http_request *r)
{
    assert(loop_on_thread(r->srv->loop));
    if (r->finished || !r->head_ready || !r->streaming)
        return GENAI_EBAD_ARG;
    pthread_mutex_lock(&r->mu);
    r->stream_ended = 1;
    if (r->conn != NULL)
        resume_locked(r);
    pthread_mutex_unlock(&r->mu);
    finish(r);
    return 0;
}

size_t http_stream_pending(http_request *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->out.len - r->out_off;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* ---- accessors -------------------------------------------------------- */

http_server *http_req_server(const http_request *r)
{
    return r->srv;
}

const char *http_req_method(const http_request *r)
{
    return r->method;
}

const char *http_req_path(const http_request *r)
{
    return r->path;
}

static const char *kv_find(const kv *v, size_t n, const char *key, int nocase)
{
    for (size_t i = 0; i < n; i++)
        if ((nocase ? strcasecmp(v[i].key, key) : strcmp(v[i].key, key)) == 0)
            return v[i].value;
    return NULL;
}

const char *http_req_query(const http_request *r, const char *key)
{
    return kv_find(r->query, r->n_query, key, 0);
}

const char *http_req_header(const http_request *r, const char *name)
{
    return kv_find(r->headers, r->n_headers, name, 1);
}

const char *http_req_body(const http_request *r, size_t *len)
{
    if (len != NULL)
        *len = r->body.len;
    return sbuf_str(&r->body);
}

json_t *http_req_json(const http_request *r)
{
    return r->json;
}

int http_req_aborted(const http_request *r)
{
    http_request *m = (http_request *)r;
    pthread_mutex_lock(&m->mu);
    int a = m->aborted || m->failed;
    pthread_mutex_unlock(&m->mu);
    return a;
}

int http_req_stopping(http_request *r)
{
    pthread_mutex_lock(&r->mu);
    int failed = r->failed;
    pthread_mutex_unlock(&r->mu);
    return failed;
}

int http_req_peer_loopback(const http_request *r)
{
    return r->peer_loopback;
}

void http_req_on_abort(http_request *r, http_abort_fn fn, void *arg)
{
    r->abort_fn = fn;
    r->abort_arg = arg;
}

unsigned http_server_port(const http_server *s)
{
    return s->port;
}

const char *http_server_host(const http_server *s)
{
    return s->cfg.host;
}

loop *http_server_loop(const http_server *s)
{
    return s->loop;
}

metrics *http_server_metrics(const http_server *s)
{
    return s->metrics;
}

events *http_server_events(const http_server *s)
{
    return s->events;
}

const genai_config *http_server_config(const http_server *s)
{
    return &s->cfg;
}

void *http_server_app(const http_server *s)
{
    return s->app;
}

json_t *http_server_models(const http_server *s)
{
    json_t *list = s->models != NULL ? s->models(s->models_arg) : NULL;
    if (list != NULL && !json_is_array(list)) {
        LOG_WARN(MOD, "the models provider returned a non-array; listing nothing");
        json_decref(list);
        list = NULL;
    }
    return list != NULL ? list : json_array();
}

/* ---- routing and checks (loop thread) --------------------------------- */

static int path_matches(const http_route *rt, const char *path)
{
    if (rt->flags & HTTP_ROUTE_PREFIX)
        return strncmp(path, rt->path, strlen(rt->path)) == 0;
    return strcmp(path, rt->path) == 0;
}

/* The route for method+path; NULL with *allow filled ("GET, POST") when the
 * path exists under other methods, or with *allow empty when it does not. */
static const http_route *route_find(const http_server *s, const char *method, const char *path,
                                    sbuf *allow)
{
    for (size_t i = 0; i < s->n_routes; i++) {
        const http_route *rt = &s->routes[i];
        if (!path_matches(rt, path))
            continue;
        if (strcmp(rt->method, method) == 0)
            return rt;
        if (allow != NULL && strstr(sbuf_str(allow), rt->method) == NULL)
            sbuf_printf(allow, "%s%s", allow->len ? ", " : "", rt->method);
    }
    return NULL;
}

static void preflight(http_request *r)
{
    http_server *s = r->srv;
    sbuf allow = SBUF_INIT;
    const char *want = http_req_header(r, "Access-Control-Request-Method");
    const http_route *rt = route_find(s, want, r->path, &allow);
    if (rt != NULL) {
        sbuf_reset(&allow);
        route_find(s, "", r->path, &allow); /* every method of the path */
    }
    if (allow.len == 0) {
        sbuf_free(&allow);
        http_reply_error(r, 404, "not_found", "no such endpoint", NULL);
        return;
    }
    const char *req_hdrs = http_req_header(r, "Access-Control-Request-Headers");
    const char *const headers[] = {"Access-Control-Allow-Methods",
                                   sbuf_str(&allow),
                                   "Access-Control-Allow-Headers",
                                   req_hdrs != NULL ? req_hdrs : "Authorization, Content-Type",
                                   "Access-Control-Max-Age",
                                   "600",
                                   NULL};
    http_reply(r, 204, NULL, NULL, 0, headers);
    sbuf_free(&allow);
}

static int is_json_type(const char *ct)
{
    if (ct == NULL)
        return 0;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static void route_and_run(http_request *r)
{
    http_server *s = r->srv;
    const genai_config *c = &s->cfg;

    if (!guard_host_ok(http_req_header(r, "Host"), s->port, &c->allowed_hosts)) {
        http_reply_error(r, 403, "host_not_allowed",
                         "the Host header names a host this server does not serve",
                         "use http://127.0.0.1:PORT, or add the name to allowed_hosts");
        return;
    }
    const char *origin = http_req_header(r, "Origin");
    if (origin != NULL && !guard_origin_ok(origin, &c->cors_origins)) {
        http_reply_error(r, 403, "origin_not_allowed",
                         "requests from this web origin are not allowed",
                         "add the origin to cors_origins in the configuration");
        return;
    }
    if (origin != NULL && strcmp(r->method, "OPTIONS") == 0 &&
        http_req_header(r, "Access-Control-Request-Method") != NULL) {
        preflight(r);
        return;
    }

    sbuf allow = SBUF_INIT;
    const http_route *rt = route_find(s, r->method, r->path, &allow);
    if (rt == NULL) {
        if (allow.len > 0) {
            const char *const headers[] = {"Allow", sbuf_str(&allow), NULL};
            reply_error_h(r, 405, "method_not_allowed", "this endpoint does not take that method",
                          NULL, headers);
        } else {
            http_reply_error(r, 404, "not_found", "no such endpoint", NULL);
        }
        sbuf_free(&allow);
        return;
    }
    sbuf_free(&allow);
    r->route = rt;

    if (c->api_key != NULL && !(rt->flags & HTTP_ROUTE_PUBLIC) &&
        !guard_bearer_ok(http_req_header(r, "Authorization"), c->api_key)) {
        const char *const headers[] = {"WWW-Authenticate", "Bearer", NULL};
        reply_error_h(r, 401, "unauthorized", "missing or wrong API key",
                      "send the key as 'Authorization: Bearer KEY'", headers);
        return;
    }
    if (r->too_large) {
        http_reply_error(r, 413, "body_too_large", "the request body exceeds max_body_bytes", NULL);
        return;
    }
    if (rt->flags & HTTP_ROUTE_JSON) {
        if (!is_json_type(http_req_header(r, "Content-Type"))) {
            http_reply_error(r, 415, "unsupported_media_type",
                             "the body must be JSON (Content-Type: application/json)", NULL);
            return;
        }
        genai_error e;
        int rc = guard_json_parse(r->body.data ? r->body.data : "", r->body.len, c->max_json_depth,
                                  &r->json, &e);
        if (rc < 0) {
            http_reply_error(r, 400, rc == GENAI_ETOO_LARGE ? "json_too_deep" : "invalid_json",
                             e.detail, NULL);
            return;
        }
    }
    rt->fn(r);
}

static void dispatch(loop *l, void *arg)
{
    http_request *r = arg;
    http_server *s = r->srv;
    (void)l;
    pthread_mutex_lock(&r->mu);
    int skip = r->failed || r->aborted;
    if (!skip)
        r->ref_loop++;
    pthread_mutex_unlock(&r->mu);
    if (!skip) {
        metrics_gauge_add(s->metrics, "genai_http_requests_in_flight",
                          "Requests handed to a handler and not finished.", NULL, 1);
        watch_start(r);
        route_and_run(r);
    }
    req_release(r, REF_MSG);
}

/* Runs the abort hook of a request MHD closed while a handler had it. */
static void abort_msg(loop *l, void *arg)
{
    http_request *r = arg;
    (void)l;
    req_abort(r);
    req_release(r, REF_MSG);
}

/* Counts a reply MHD's thread gave without the loop (413, 503). */
static void count_early(loop *l, void *arg)
{
    http_request *r = arg;
    (void)l;
    pthread_mutex_lock(&r->mu);
    int status = r->status;
    pthread_mutex_unlock(&r->mu);
    count(r->srv, "unmatched", known_method(r->method), status,
          (double)(now_ns() - r->start_ns) / 1e9);
    req_release(r, REF_MSG);
}

/* ---- MHD's thread ----------------------------------------------------- */

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    http_request *r = cls;
    (void)pos;
    pthread_mutex_lock(&r->mu);
    size_t avail = r->out.len - r->out_off;
    if (avail > 0) {
        size_t n = avail < max ? avail : max;
        memcpy(buf, r->out.data + r->out_off, n);
        r->out_off += n;
        if (r->out_off == r->out.len) {
            r->out.len = 0;
            r->out_off = 0;
            r->out.data[0] = '\0';
        }
        pthread_mutex_unlock(&r->mu);
        return (ssize_t)n;
    }
    if (r->aborted) {
        pthread_mutex_unlock(&r->mu);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (r->stream_ended || r->failed) {
        pthread_mutex_unlock(&r->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    suspend_locked(r);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static void reader_free(void *cls)
{
    req_release(cls, REF_RESP);
}

/* Builds and queues the reply the loop prepared. Called without r->mu; the
 * head fields are immutable once head_ready was seen set. */
static enum MHD_Result queue_reply(http_request *r, struct MHD_Connection *conn)
{
    struct MHD_Response *resp;
    if (r->streaming) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, reader, r,
                                                 reader_free);
        if (resp == NULL)
            return MHD_NO;
        req_ref(r, REF_RESP);
    } else {
        resp = MHD_create_response_from_buffer(r->out.len, r->out.data, MHD_RESPMEM_MUST_COPY);
        if (resp == NULL)
            return MHD_NO;
    }
    for (size_t i = 0; i < r->n_hdrs; i++)
        MHD_add_response_header(resp, r->hdrs[i].key, r->hdrs[i].value);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* A reply from MHD's thread, before (or instead of) the loop: 413 on a
 * declared oversized body, 503 while stopping. */
static enum MHD_Result queue_now(http_request *r, struct MHD_Connection *conn, int status,
                                 const char *code, const char *message)
{
    char *text = http_error_body(status, code, message, NULL);
    if (text == NULL)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
    mem_free(text);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (status == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    pthread_mutex_lock(&r->mu);
    r->status = status;
    r->ref_msgs++;
    pthread_mutex_unlock(&r->mu);
    if (loop_post(r->srv->loop, count_early, r) < 0)
        req_release(r, REF_MSG);
    return ret;
}

typedef struct collect {
    kv *v;
    size_t n;
    int failed;
} collect;

static enum MHD_Result collect_kv(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    collect *c = cls;
    (void)kind;
    if (c->n >= MAX_FIELDS)
        return MHD_YES;
    if (add_hdr(&c->v, &c->n, key, value ? value : "") < 0) {
        c->failed = 1;
        return MHD_NO;
    }
    return MHD_YES;
}

/* Whether the client's address is 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104. */
static int peer_is_loopback(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL)
        return 0;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
    }
    return 0;
}

static http_request *req_new(http_server *s, struct MHD_Connection *conn, const char *url,
                             const char *method)
{
    http_request *r = mem_calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    pthread_mutex_init(&r->mu, NULL);
    r->srv = s;
    r->conn = conn;
    r->fd_dup = -1;
    r->ref_conn = 1;
    r->start_ns = now_ns();
    r->method = mem_strdup(method);
    r->path = mem_strdup(url);
    collect h = {NULL, 0, 0}, q = {NULL, 0, 0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_kv, &h);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_kv, &q);
    r->headers = h.v;
    r->n_headers = h.n;
    r->query = q.v;
    r->n_query = q.n;
    r->peer_loopback = peer_is_loopback(conn);
    if (r->method == NULL || r->path == NULL || h.failed || q.failed) {
        req_free(r);
        return NULL;
    }
    pthread_mutex_lock(&s->mu);
    r->next = s->reqs;
    if (s->reqs != NULL)
        s->reqs->prev = r;
    s->reqs = r;
    r->failed = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return r;
}

/* The access handler's last call (and every call after a resume). */
static enum MHD_Result on_final(http_request *r, struct MHD_Connection *conn)
{
    pthread_mutex_lock(&r->mu);
    if (r->head_ready) {
        pthread_mutex_unlock(&r->mu);
        return queue_reply(r, conn);
    }
    if (r->aborted) {
        pthread_mutex_unlock(&r->mu);
        return MHD_NO;
    }
    if (r->failed) {
        pthread_mutex_unlock(&r->mu);
        return queue_now(r, conn, 503, "shutting_down", "the server is shutting down");
    }
    if (r->dispatched) {
        /* Resumed without a reply (should not happen): wait again. */
        suspend_locked(r);
        pthread_mutex_unlock(&r->mu);
        return MHD_YES;
    }
    r->dispatched = 1;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci != NULL)
        r->fd_dup = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 3);
    r->ref_msgs++;
    suspend_locked(r);
    pthread_mutex_unlock(&r->mu);
    if (loop_post(r->srv->loop, dispatch, r) < 0) {
        /* The loop is stopping: fail the request; the resume brings MHD
         * back here to answer 503. */
        pthread_mutex_lock(&r->mu);
        r->failed = 1;
        resume_locked(r);
        pthread_mutex_unlock(&r->mu);
        req_release(r, REF_MSG);
    }
    return MHD_YES;
}

static uint64_t content_length(const http_request *r, int *present)
{
    const char *v = kv_find(r->headers, r->n_headers, MHD_HTTP_HEADER_CONTENT_LENGTH, 1);
    *present = 0;
    if (v == NULL)
        return 0;
    uint64_t n = 0;
    for (; *v >= '0' && *v <= '9'; v++) {
        if (n > UINT64_MAX / 10 - 1)
            return UINT64_MAX;
        n = n * 10 + (uint64_t)(*v - '0');
    }
    *present = 1;
    return n;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_size, void **con_cls)
{
    http_server *s = cls;
    http_request *r = *con_cls;
    (void)version;
    if (r == NULL) {
        r = req_new(s, conn, url, method);
        if (r == NULL)
            return MHD_NO;
        *con_cls = r;
        int stopping = r->failed;
        if (stopping)
            return queue_now(r, conn, 503, "shutting_down", "the server is shutting down");
        int has_len;
        uint64_t len = content_length(r, &has_len);
        if (has_len && len > s->cfg.max_body_bytes) {
            r->too_large = 1;
            /* Answer before the body: with "Expect: 100-continue" the client
             * never sends it. */
            return queue_now(r, conn, 413, "body_too_large",
                             "the request body exceeds max_body_bytes");
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!r->too_large) {
            if (r->body.len + *upload_size > s->cfg.max_body_bytes) {
                r->too_large = 1;
                sbuf_free(&r->body);
            } else if (sbuf_append(&r->body, upload_data, *upload_size) < 0) {
                return MHD_NO;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    return on_final(r, conn);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_request *r = *con_cls;
    (void)cls;
    (void)conn;
    if (r == NULL)
        return;
    *con_cls = NULL;
    pthread_mutex_lock(&r->mu);
    assert(!r->suspended);
    r->conn = NULL;
    int abort = toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && !r->aborted && r->ref_loop > 0;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        r->aborted = 1;
    if (abort)
        r->ref_msgs++;
    pthread_mutex_unlock(&r->mu);
    if (abort && loop_post(r->srv->loop, abort_msg, r) < 0)
        req_release(r, REF_MSG);
    req_release(r, REF_CONN);
}

/* ---- start and stop --------------------------------------------------- */

static void mhd_log(void *cls, const char *fmt, va_list ap) GX_PRINTF(2, 0);

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    (void)cls;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    /* MHD reports client misbehaviour here too ("Closing connection"), which
     * is routine for a server: keep it out of the default (warn) level. */
    LOG_INFO(MOD, "libmicrohttpd: %s", buf);
}

/* Opens the close-on-exec listening socket; *port_out gets the bound port. */
static int listen_on(const char *host, unsigned port, int *fd_out, unsigned *port_out,
                     genai_error *err)
{
    const char *h = strcasecmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    int gai = getaddrinfo(h, ps, &hints, &ai);
    if (gai != 0)
        return err_set(err, GENAI_EBAD_ARG, "bind address \"%s\" is not an IP address: %s", host,
                       gai_strerror(gai));
    int rc = 0;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = err_errno(err, errno, "socket for %s", host);
        goto out;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int e = errno;
        if (e == EADDRINUSE)
            rc = err_set(err, -e, "port %u on %s is in use (is another genai serve running?)", port,
                         host);
        else
            rc = err_errno(err, e, "binding %s port %u", host, port);
        goto out_close;
    }
    /* 128: the kernel's default somaxconn on older systems; bursts beyond
     * it retry at the TCP level. */
    if (listen(fd, 128) != 0) {
        rc = err_errno(err, errno, "listening on %s port %u", host, port);
        goto out_close;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        rc = err_errno(err, errno, "getsockname");
        goto out_close;
    }
    *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    goto out;
out_close:
    close(fd);
out:
    freeaddrinfo(ai);
    return rc;
}

static void server_free(http_server *s)
{
    if (s->own_metrics)
        metrics_free(s->metrics);
    if (s->own_events)
        events_free(s->events);
    config_free(&s->cfg);
    pthread_mutex_destroy(&s->mu);
    mem_free(s);
}

int http_server_start(const http_server_opts *o, http_server **out, genai_error *err)
{
    if (o == NULL || o->loop == NULL || o->config == NULL)
        return err_set(err, GENAI_EBAD_ARG, "http_server_start: loop and config are required");
    assert(!loop_on_thread(o->loop));
    int rc = config_validate(o->config, err);
    if (rc < 0)
        return rc;
    http_server *s = mem_calloc(1, sizeof(*s));
    if (s == NULL)
        return err_set(err, -ENOMEM, "allocating the HTTP server");
    pthread_mutex_init(&s->mu, NULL);
    if (config_copy(&s->cfg, o->config) < 0) {
        pthread_mutex_destroy(&s->mu);
        mem_free(s);
        return err_set(err, -ENOMEM, "copying the configuration");
    }
    s->loop = o->loop;
    s->listen_fd = -1;
    s->routes = o->routes != NULL ? o->routes : http_routes;
    s->n_routes = o->routes != NULL ? o->n_routes : http_n_routes;
    s->models = o->models;
    s->models_arg = o->models_arg;
    s->app = o->app;
    s->metrics = o->metrics;
    s->events = o->events;
    if (s->metrics == NULL) {
        if (metrics_new(&s->metrics) < 0)
            goto nomem;
        s->own_metrics = 1;
    }
    if (s->events == NULL) {
        if (events_new(&s->events) < 0)
            goto nomem;
        s->own_events = 1;
    }

    int fd = -1;
    rc = listen_on(s->cfg.host, s->cfg.port, &fd, &s->port, err);
    if (rc < 0)
        goto fail;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_access, s, MHD_OPTION_EXTERNAL_LOGGER,
                              mhd_log, s, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED,
                              on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
                              (unsigned)s->cfg.idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
                              (unsigned)s->cfg.max_connections, MHD_OPTION_END);
    if (s->mhd == NULL) {
        /* MHD may or may not have closed the socket it was given. */
        if (fcntl(fd, F_GETFD) >= 0)
            close(fd);
        rc = err_set(err, GENAI_EINTERNAL, "libmicrohttpd did not start on %s port %u", s->cfg.host,
                     s->port);
        goto fail;
    }
    LOG_INFO(MOD, "listening on %s port %u", s->cfg.host, s->port);
    *out = s;
    return 0;

nomem:
    rc = err_set(err, -ENOMEM, "allocating the HTTP server");
fail:
    server_free(s);
    return rc;
}

/* Runs once the drain is over: stops MHD (from the loop thread, with no
 * connection suspended) and completes the stop if nothing is left. */
static void drain_closed(uv_handle_t *h)
{
    http_server *s = h->data;
    MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    if (s->listen_fd >= 0)
        close(s->listen_fd); /* quiesced: MHD no longer owns it */
    s->listen_fd = -1;

    pthread_mutex_lock(&s->mu);
    s->mhd_stopped = 1;
    int final = s->reqs == NULL && !s->final_started;
    if (final)
        s->final_started = 1;
    pthread_mutex_unlock(&s->mu);
    if (final)
        server_final(s);
}

/* Polls until every failed request's reply has left (its connection
 * completed) or the grace period is over. */
static void drain_tick(uv_timer_t *t)
{
    http_server *s = t->data;
    int busy = 0;
    pthread_mutex_lock(&s->mu);
    for (http_request *r = s->reqs; r != NULL && !busy; r = r->next) {
        pthread_mutex_lock(&r->mu);
        busy = r->conn != NULL;
        pthread_mutex_unlock(&r->mu);
    }
    pthread_mutex_unlock(&s->mu);
    if (busy && uv_now(t->loop) < s->drain_deadline)
        return;
    if (busy)
        LOG_WARN(MOD, "stopping: closing connections whose replies did not drain in %d ms",
                 HTTP_STOP_GRACE_MS);
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, drain_closed);
}

static void stop_begin(loop *l, void *arg, loop_completion *c)
{
    http_server *s = arg;
    s->stop_c = c;

    /* Take a reference on every live request (not on one being freed). */
    http_request *walk = NULL;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    for (http_request *r = s->reqs; r != NULL; r = r->next) {
        pthread_mutex_lock(&r->mu);
        int alive = r->ref_conn || r->ref_resp || r->ref_loop || r->ref_msgs;
        if (alive) {
            r->ref_msgs++;
            r->stop_next = walk;
            walk = r;
        }
        pthread_mutex_unlock(&r->mu);
    }
    pthread_mutex_unlock(&s->mu);

    /* No new connections; the listening socket is ours to close now. */
    MHD_socket lfd = MHD_quiesce_daemon(s->mhd);
    s->listen_fd = lfd == MHD_INVALID_SOCKET ? -1 : lfd;

    while (walk != NULL) {
        http_request *r = walk;
        walk = r->stop_next;
        pthread_mutex_lock(&r->mu);
        r->failed = 1;
        if (r->conn != NULL)
            resume_locked(r);
        int owned = r->ref_loop > 0;
        pthread_mutex_unlock(&r->mu);
        if (owned)
            req_abort(r);
        req_release(r, REF_MSG);
    }

    /* No connection is suspended now, and none can suspend again: every
     * path that suspends checks 'failed' first. Let the 503s and the ends
     * of streams reach their clients, then stop MHD (drain_closed). */
    uv_timer_init(loop_uv(l), &s->drain);
    s->drain.data = s;
    s->drain_deadline = uv_now(loop_uv(l)) + HTTP_STOP_GRACE_MS;
    uv_timer_start(&s->drain, drain_tick, 0, 5);
}

void http_server_stop(http_server *s)
{
    if (s == NULL)
        return;
    assert(!loop_on_thread(s->loop));
    int rc = loop_call_wait(s->loop, stop_begin, s);
    if (rc < 0) {
        /* The loop is gone; nothing can be released safely. */
        LOG_ERROR(MOD, "stopping the HTTP server: %s", genai_strerror(rc));
        return;
    }
    LOG_INFO(MOD, "stopped");
    server_free(s);
}
