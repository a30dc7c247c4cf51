/*
 * http_client.c - curl multi-socket on libuv (see http_client.h).
 *
 * The wiring, after curl's documented multi-socket contract:
 *   - CURLMOPT_SOCKETFUNCTION: curl names a socket and what to wait for; we
 *     keep one uv_poll per socket (attached with curl_multi_assign) and
 *     (re)start it with those events, or close it on CURL_POLL_REMOVE.
 *   - CURLMOPT_TIMERFUNCTION: curl asks to be called after N ms; N = -1 stops
 *     the timer, N = 0 means "as soon as possible" and uses a uv_idle handle,
 *     because re-arming a 0 ms timer from its own callback livelocks libuv
 *     before 1.48. curl forbids calling back into it from this function, and
 *     neither handle does.
 *   - Readiness and timeouts call curl_multi_socket_action, then
 *     curl_multi_info_read collects finished transfers and runs their
 *     callbacks (outside any curl callback, so they may start or cancel
 *     requests).
 */
#include "core/http_client.h"

#include "core/alloc.h"
#include "core/log.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct http_req {
    http_req *prev, *next;
    http_client *c;
    CURL *easy;
    struct curl_slist *headers;
    http_done_fn fn;
    void *arg;
    http_chunk_fn on_data;
    int data_stopped; /* on_data asked to stop */
    char *req_body;   /* what is sent */
    char *body;
    size_t len, cap, max;
    int too_large;
    char errbuf[CURL_ERROR_SIZE];
};

struct http_client {
    uv_loop_t *uv;
    CURLM *multi;
    uv_timer_t timer;
    uv_idle_t now;
    int open_handles; /* timer + idle, while closing */
    http_req *reqs;
};

typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    http_client *c;
} sock_ctx;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void init_curl(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void detach(http_req *r)
{
    http_client *c = r->c;
    curl_multi_remove_handle(c->multi, r->easy);
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void free_req(http_req *r)
{
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    mem_free(r->req_body);
    mem_free(r->body);
    mem_free(r);
}

static void collect_done(http_client *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        http_req *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode cc = msg->data.result;
        http_result res = {.rc = 0, .status = 0, .body = r->body ? r->body : "", .error = ""};
        res.body_len = r->len;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
        if (r->too_large) {
            res.rc = GENAI_ETOO_LARGE;
            res.error = "response body too large";
        } else if (r->data_stopped) {
            res.rc = GENAI_ECANCELLED;
            res.error = "stopped by the receiver";
        } else if (cc == CURLE_OPERATION_TIMEDOUT) {
            res.rc = GENAI_ETIMEOUT;
            res.error = r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc);
        } else if (cc == CURLE_COULDNT_CONNECT) {
            res.rc = -ECONNREFUSED;
            res.error = r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc);
        } else if (cc != CURLE_OK) {
            res.rc = GENAI_EHTTP;
            res.error = r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc);
        }
        /* Detach before the callback, which may start requests, cancel
         * others or free the client; the result strings live in r until the
         * callback returns. */
        detach(r);
        r->fn(r->arg, &res);
        free_req(r);
        if (c->multi == NULL)
            return; /* the callback freed the client */
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_ctx *ctx = h->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    http_client *c = ctx->c;
    int running;
    curl_multi_socket_action(c->multi, ctx->fd, flags, &running);
    collect_done(c);
}

static void on_poll_closed(uv_handle_t *h)
{
    mem_free(h->data);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    http_client *c = userp;
    sock_ctx *ctx = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (ctx != NULL) {
            uv_poll_stop(&ctx->poll);
            uv_close((uv_handle_t *)&ctx->poll, on_poll_closed);
            curl_multi_assign(c->multi, s, NULL);
        }
        return 0;
    }
    if (ctx == NULL) {
        ctx = mem_calloc(1, sizeof(*ctx));
        if (ctx == NULL)
            return -1;
        ctx->fd = s;
        ctx->c = c;
        if (uv_poll_init_socket(c->uv, &ctx->poll, s) != 0) {
            mem_free(ctx);
            return -1;
        }
        ctx->poll.data = ctx;
        curl_multi_assign(c->multi, s, ctx);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&ctx->poll, events, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    http_client *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect_done(c);
}

static void on_now(uv_idle_t *h)
{
    http_client *c = h->data;
    uv_idle_stop(h);
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect_done(c);
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    http_client *c = userp;
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
        uv_idle_stop(&c->now);
    } else if (timeout_ms == 0) {
        uv_timer_stop(&c->timer);
        uv_idle_start(&c->now, on_now);
    } else {
        uv_idle_stop(&c->now);
        uv_timer_start(&c->timer, on_timeout, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

/* Sockets are born close-on-exec: no window in which a fork can leak them. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)clientp;
    (void)purpose;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    http_req *r = userp;
    size_t n = size * nmemb; /* curl guarantees size == 1 */
    if (r->on_data != NULL) {
        http_chunk ch = {.status = 0, .content_type = "", .data = data, .len = n};
        char *ct = NULL;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &ch.status);
        if (curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != NULL)
            ch.content_type = ct;
        if (r->on_data(r->arg, &ch) != 0) {
            r->data_stopped = 1;
            return 0; /* aborts the transfer */
        }
        return n;
    }
    if (n > r->max - r->len) {
        r->too_large = 1;
        return 0; /* aborts the transfer */
    }
    if (r->len + n + 1 > r->cap) {
        size_t want = r->cap ? r->cap * 2 : 1024;
        while (want < r->len + n + 1)
            want *= 2;
        char *p = mem_realloc(r->body, want);
        if (p == NULL)
            return 0;
        r->body = p;
        r->cap = want;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

/*
 * curl 7.88 gives every multi handle a wake-up socketpair made without
 * SOCK_CLOEXEC, and has no option to avoid it. On Linux, list the fds before
 * and after curl_multi_init and mark the new ones close-on-exec. The window
 * in between is covered by proc_spawn, which marks every fd above 2
 * close-on-exec in the child before exec.
 */
enum { FDSET_MAX = 1024 };

static size_t list_fds(int *fds, size_t max)
{
    size_t n = 0;
#ifdef __linux__
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end == '\0' && end != e->d_name && fd != dirfd(d))
            fds[n++] = (int)fd;
    }
    closedir(d);
#else
    (void)fds;
    (void)max;
#endif
    return n;
}

static void cloexec_new_fds(const int *before, size_t nbefore)
{
    int after[FDSET_MAX];
    size_t nafter = list_fds(after, FDSET_MAX);
    for (size_t i = 0; i < nafter; i++) {
        int seen = 0;
        for (size_t k = 0; k < nbefore && !seen; k++)
            seen = before[k] == after[i];
        if (seen)
            continue;
        int fl = fcntl(after[i], F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC))
            fcntl(after[i], F_SETFD, fl | FD_CLOEXEC);
    }
}

int http_client_new(uv_loop_t *uv, http_client **out, genai_error *err)
{
    pthread_once(&curl_once, init_curl);
    if (curl_init_rc != CURLE_OK)
        return err_set(err, GENAI_EINTERNAL, "curl_global_init: %s",
                       curl_easy_strerror(curl_init_rc));
    http_client *c = mem_calloc(1, sizeof(*c));
    if (c == NULL)
        return err_set(err, -ENOMEM, "allocating the HTTP client");
    c->uv = uv;
    int before[FDSET_MAX];
    size_t nbefore = list_fds(before, FDSET_MAX);
    c->multi = curl_multi_init();
    cloexec_new_fds(before, nbefore);
    if (c->multi == NULL) {
        mem_free(c);
        return err_set(err, -ENOMEM, "curl_multi_init failed");
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    uv_timer_init(uv, &c->timer);
    uv_idle_init(uv, &c->now);
    c->timer.data = c;
    c->now.data = c;
    *out = c;
    return 0;
}

static void on_client_handle_closed(uv_handle_t *h)
{
    http_client *c = h->data;
    if (--c->open_handles == 0)
        mem_free(c);
}

void http_client_free(http_client *c)
{
    if (c == NULL)
        return;
    while (c->reqs != NULL)
        http_req_cancel(c->reqs);
    curl_multi_cleanup(c->multi); /* may close cached connections via on_socket */
    c->multi = NULL;
    c->open_handles = 2;
    uv_close((uv_handle_t *)&c->timer, on_client_handle_closed);
    uv_close((uv_handle_t *)&c->now, on_client_handle_closed);
}

int http_client_get(http_client *c, const http_get_opts *o, http_done_fn fn, void *arg,
                    http_req **out)
{
    if (o == NULL || o->timeout_ms <= 0)
        return GENAI_EBAD_ARG;
    http_req_opts ro = {.method = "GET",
                        .url = o->url,
                        .bearer = o->bearer,
                        .timeout_ms = o->timeout_ms,
                        .max_body = o->max_body};
    return http_client_request(c, &ro, fn, arg, out);
}

/* Appends the header line a + b to r's list; 0 or -1. */
static int add_header(http_req *r, const char *a, const char *b)
{
    char hdr[1024];
    int n = snprintf(hdr, sizeof(hdr), "%s%s", a, b);
    if (n < 0 || (size_t)n >= sizeof(hdr))
        return -1;
    struct curl_slist *l = curl_slist_append(r->headers, hdr);
    if (l == NULL)
        return -1;
    r->headers = l;
    return 0;
}

int http_client_request(http_client *c, const http_req_opts *o, http_done_fn fn, void *arg,
                        http_req **out)
{
    if (c == NULL || o == NULL || o->url == NULL || fn == NULL || o->timeout_ms < 0 ||
        o->connect_timeout_ms < 0)
        return GENAI_EBAD_ARG;
    http_req *r = mem_calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->c = c;
    r->fn = fn;
    r->arg = arg;
    r->on_data = o->on_data;
    r->max = o->max_body;
    r->easy = curl_easy_init();
    if (r->easy == NULL)
        goto nomem;
    CURL *e = r->easy;
    if (o->bearer != NULL && add_header(r, "Authorization: Bearer ", o->bearer) < 0)
        goto bad;
    if (o->body != NULL) {
        /* A copy: the caller's buffer may go before curl sends it. */
        r->req_body = mem_alloc(o->body_len + 1);
        if (r->req_body == NULL)
            goto nomem;
        memcpy(r->req_body, o->body, o->body_len);
        r->req_body[o->body_len] = '\0';
        if (add_header(
                r, "Content-Type: ", o->content_type ? o->content_type : "application/json") < 0)
            goto bad;
        /* No "Expect: 100-continue" round trip for larger bodies. */
        if (add_header(r, "Expect:", "") < 0)
            goto bad;
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->req_body);
    }
    for (size_t i = 0; o->headers != NULL && o->headers[i] != NULL; i++)
        if (add_header(r, o->headers[i], "") < 0)
            goto bad;
    if (r->headers != NULL)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    const char *method = o->method != NULL ? o->method : (o->body != NULL ? "POST" : "GET");
    if (strcmp(method, "GET") == 0 && o->body == NULL)
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    else if (strcmp(method, "POST") != 0 || o->body == NULL)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000));
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    /* Streamed events must not wait for Nagle's algorithm on either side. */
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    /* A new connection per request: this client talks to the children on
     * loopback, where connecting costs about 0.1 ms, while a kept-alive
     * idle connection held llama-server b11669's exit on SIGTERM for about
     * 110 ms (its HTTP threads wait for open connections): the LLM's stop,
     * on the path of every image that moves it aside. */
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK)
        goto nomem;
    r->next = c->reqs;
    if (c->reqs != NULL)
        c->reqs->prev = r;
    c->reqs = r;
    if (out != NULL)
        *out = r;
    return 0;

bad:
    curl_slist_free_all(r->headers);
    curl_easy_cleanup(r->easy);
    mem_free(r->req_body);
    mem_free(r);
    return GENAI_EBAD_ARG;
nomem:
    curl_slist_free_all(r->headers);
    if (r->easy != NULL)
        curl_easy_cleanup(r->easy);
    mem_free(r->req_body);
    mem_free(r);
    return -ENOMEM;
}

void http_req_cancel(http_req *r)
{
    if (r == NULL)
        return;
    detach(r);
    free_req(r);
}
