/*
 * test_server.c - the real HTTP server over loopback, driven by libcurl
 * clients: routes, limits, security checks, SSE, disconnects, concurrency,
 * shutdown with requests in flight, and fd hygiene.
 *
 * The server runs the built-in route table plus a few test routes:
 *   POST /test/echo    JSON route: replies with the parsed body
 *   GET  /test/hold    never replies; its abort hook counts and replies
 *   GET  /test/stream  writes "first\n" and keeps the stream open
 *   GET  /test/gate    held until g_gate_want requests wait, then all answered
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "core/config.h"
#include "core/events.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "http/routes.h"
#include "http/server.h"
#include "http_test_util.h"
#include "sys/probe.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- shared state between the loop-side routes and the test thread ---- */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_holds;  /* /test/hold and /test/stream requests started */
static int g_aborts; /* abort hooks run */

/* Loop thread only. */
#define GATE_MAX 256
static http_request *g_gate[GATE_MAX];
static int g_gate_n, g_gate_want;

static void bump(int *v)
{
    pthread_mutex_lock(&g_mu);
    (*v)++;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static int get(const int *v)
{
    pthread_mutex_lock(&g_mu);
    int x = *v;
    pthread_mutex_unlock(&g_mu);
    return x;
}

/* Waits until *v >= target or ms pass; returns the final value. */
static int wait_for(const int *v, int target, int ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g_mu);
    while (*v < target && pthread_cond_timedwait(&g_cv, &g_mu, &dl) != ETIMEDOUT)
        ;
    int x = *v;
    pthread_mutex_unlock(&g_mu);
    return x;
}

static void reset_counters(void)
{
    pthread_mutex_lock(&g_mu);
    g_holds = 0;
    g_aborts = 0;
    pthread_mutex_unlock(&g_mu);
}

static void h_echo(http_request *req)
{
    http_reply_json(req, 200, json_incref(http_req_json(req)));
}

static void hold_abort(http_request *req, void *arg)
{
    (void)arg;
    bump(&g_aborts);
    http_reply_error(req, 503, "aborted", "aborted", NULL);
}

static void h_hold(http_request *req)
{
    http_req_on_abort(req, hold_abort, NULL);
    bump(&g_holds);
}

static void stream_abort(http_request *req, void *arg)
{
    (void)arg;
    bump(&g_aborts);
    http_stream_end(req);
}

static void h_stream(http_request *req)
{
    assert_int_equal(http_stream_begin(req, 200, "text/plain", NULL), 0);
    assert_int_equal(http_stream_write(req, "first\n", 6), 0);
    http_req_on_abort(req, stream_abort, NULL);
    bump(&g_holds);
}

static void gate_abort(http_request *req, void *arg)
{
    (void)arg;
    for (int i = 0; i < g_gate_n; i++) {
        if (g_gate[i] == req) {
            g_gate[i] = g_gate[--g_gate_n];
            break;
        }
    }
    http_reply_error(req, 503, "aborted", "aborted", NULL);
}

static void h_gate(http_request *req)
{
    assert_true(g_gate_n < GATE_MAX);
    http_req_on_abort(req, gate_abort, NULL);
    g_gate[g_gate_n++] = req;
    if (g_gate_n < g_gate_want)
        return;
    char body[32];
    int n = snprintf(body, sizeof(body), "%d", g_gate_n);
    for (int i = 0; i < g_gate_n; i++)
        http_reply(g_gate[i], 200, "text/plain", body, (size_t)n, NULL);
    g_gate_n = 0;
}

static const http_route test_routes[] = {
    {"POST", "/test/echo", HTTP_ROUTE_JSON, h_echo},
    {"GET", "/test/hold", 0, h_hold},
    {"GET", "/test/stream", 0, h_stream},
    {"GET", "/test/gate", 0, h_gate},
};

/* ---- harness ---------------------------------------------------------- */

typedef struct srv {
    loop *l;
    http_server *s;
    unsigned port;
    char base[64];
    http_route *routes;
} srv;

static void srv_start(srv *h, const genai_config *cfg)
{
    size_t nt = sizeof(test_routes) / sizeof(test_routes[0]);
    h->routes = calloc(http_n_routes + nt, sizeof(http_route));
    memcpy(h->routes, http_routes, http_n_routes * sizeof(http_route));
    memcpy(h->routes + http_n_routes, test_routes, nt * sizeof(http_route));
    assert_int_equal(loop_start(&h->l, NULL), 0);
    http_server_opts o = {
        .loop = h->l, .config = cfg, .routes = h->routes, .n_routes = http_n_routes + nt};
    genai_error e;
    int rc = http_server_start(&o, &h->s, &e);
    if (rc < 0)
        fail_msg("server start: %s", e.detail);
    h->port = http_server_port(h->s);
    snprintf(h->base, sizeof(h->base), "http://127.0.0.1:%u", h->port);
    reset_counters();
}

static void srv_stop(srv *h)
{
    http_server_stop(h->s);
    loop_stop(h->l);
    free(h->routes);
}

static void default_cfg(genai_config *c)
{
    config_init(c);
    c->port = 0;
}

static void url(char *buf, size_t n, const srv *h, const char *path)
{
    snprintf(buf, n, "%s%s", h->base, path);
}

static json_t *body_json(const tresp *r)
{
    json_t *j = json_loads(sbuf_str(&r->body), 0, NULL);
    assert_non_null(j);
    return j;
}

static void assert_error_code(const tresp *r, const char *code)
{
    json_t *j = body_json(r);
    json_t *e = json_object_get(j, "error");
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "code")), code);
    assert_non_null(json_string_value(json_object_get(e, "message")));
    assert_non_null(json_string_value(json_object_get(e, "type")));
    json_decref(j);
}

/* ---- tests ------------------------------------------------------------ */

static void test_health_404_405(void **state)
{
    (void)state;
    int fds = t_count_fds();
    genai_config c;
    default_cfg(&c);
    srv h;
    srv_start(&h, &c);
    char u[128], hv[128];
    tresp r;

    url(u, sizeof(u), &h, "/health");
    treq("GET", u, NULL, NULL, 0, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(sbuf_str(&r.body), "{\"status\":\"ok\"}");
    assert_string_equal(tresp_header(&r, "Content-Type", hv, sizeof(hv)), "application/json");
    tresp_free(&r);

    url(u, sizeof(u), &h, "/nope");
    treq("GET", u, NULL, NULL, 0, 0, &r);
    assert_int_equal(r.status, 404);
    assert_error_code(&r, "not_found");
    tresp_free(&r);

    url(u, sizeof(u), &h, "/health");
    treq("DELETE", u, NULL, NULL, 0, 0, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(tresp_header(&r, "Allow", hv, sizeof(hv)), "GET");
    assert_error_code(&r, "method_not_allowed");
    tresp_free(&r);

    url(u, sizeof(u), &h, "/v1/models");
    treq("GET", u, NULL, NULL, 0, 0, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "list");
    assert_true(json_is_array(json_object_get(j, "data")));
    json_decref(j);
    tresp_free(&r);

    url(u, sizeof(u), &h, "/metrics");
    treq("GET", u, NULL, NULL, 0, 0, &r);
    assert_int_equal(r.status, 200);
    const char *m = sbuf_str(&r.body);
    assert_non_null(strstr(m, "# TYPE genai_http_requests_total counter\n"));
    assert_non_null(strstr(
        m, "genai_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} 1\n"));
    assert_non_null(strstr(
        m, "genai_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1\n"));
    /* The /metrics request itself is in flight while rendering. */
    assert_non_null(strstr(m, "genai_http_requests_in_flight 1\n"));
    tresp_free(&r);

    srv_stop(&h);
    config_free(&c);
    assert_int_equal(t_count_fds(), fds);
}

static void test_system_matches_probe(void **state)
{
    (void)state;
    genai_config c;
    default_cfg(&c);
    srv h;
    srv_start(&h, &c);
    char u[128];
    tresp r;
    url(u, sizeof(u), &h, "/v1/system");
    treq("GET", u, NULL, NULL, 0, 0, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    probe_snapshot snap;
    assert_int_equal(probe_take(NULL, &snap, NULL), 0);
    json_t *cpu = json_object_get(j, "cpu");
    assert_int_equal(json_integer_value(json_object_get(cpu, "logical")), snap.cpu.logical);
    assert_string_equal(json_string_value(json_object_get(cpu, "model")), snap.cpu.model);
    json_t *mem = json_object_get(j, "memory");
    assert_true((uint64_t)json_integer_value(json_object_get(mem, "total_bytes")) ==
                snap.mem.total);
    assert_int_equal(json_array_size(json_object_get(j, "gpus")), snap.n_gpus);
    assert_non_null(json_object_get(json_object_get(j, "runtime"), "variant"));
    probe_snapshot_free(&snap);
    json_decref(j);
    tresp_free(&r);
    srv_stop(&h);
    config_free(&c);
}

static void test_body_limits_and_json(void **state)
{
    (void)state;
    genai_config c;
    default_cfg(&c);
    srv h;
    srv_start(&h, &c);
    char u[128];
    tresp r;
    const char *json_hdr[] = {"Content-Type: application/json", NULL};
    url(u, sizeof(u), &h, "/test/echo");

    const char *doc = "{\"a\":[1,2,{\"b\":\"]]]\"}]}";
    treq("POST", u, json_hdr, doc, strlen(doc), 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(sbuf_str(&r.body), "{\"a\":[1,2,{\"b\":\"]]]\"}]}");
    tresp_free(&r);

    /* 17 MiB against the 16 MiB default: refused before the body. */
    size_t big = 17u * 1024u * 1024u;
    char *buf = malloc(big);
    memset(buf, ' ', big);
    treq("POST", u, json_hdr, buf, big, 0, &r);
    assert_int_equal(r.status, 413);
    assert_error_code(&r, "body_too_large");
    tresp_free(&r);
    /* The same without Content-Length (chunked): counted while reading. */
    treq("POST", u, json_hdr, buf, big, 1, &r);
    assert_int_equal(r.status, 413);
    assert_error_code(&r, "body_too_large");
    tresp_free(&r);
    free(buf);

    treq("POST", u, json_hdr, "{\"a\":", 5, 0, &r);
    assert_int_equal(r.status, 400);
    assert_error_code(&r, "invalid_json");
    tresp_free(&r);

    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    treq("POST", u, json_hdr, deep, sizeof(deep), 0, &r);
    assert_int_equal(r.status, 400);
    assert_error_code(&r, "json_too_deep");
    tresp_free(&r);
    /* 64 levels is the default limit, and allowed. */
    treq("POST", u, json_hdr, deep + 36, 128, 0, &r);
    assert_int_equal(r.status, 200);
    tresp_free(&r);

    const char *text_hdr[] = {"Content-Type: text/plain", NULL};
    treq("POST", u, text_hdr, "{}", 2, 0, &r);
    assert_int_equal(r.status, 415);
    tresp_free(&r);

    srv_stop(&h);
    config_free(&c);
}

static void test_host_check(void **state)
{
    (void)state;
    genai_config c;
    default_cfg(&c);
    assert_int_equal(config_set(&c, "allowed_hosts", "genai.lan", "test", NULL), 0);
    srv h;
    srv_start(&h, &c);
    char u[128], host[64];
    tresp r;
    url(u, sizeof(u), &h, "/health");

    const char *evil[] = {"Host: evil.example", NULL};
    treq("GET", u, evil, NULL, 0, 0, &r);
    assert_int_equal(r.status, 403);
    assert_error_code(&r, "host_not_allowed");
    tresp_free(&r);

    snprintf(host, sizeof(host), "Host: localhost:%u", h.port + 1);
    const char *wrong_port[] = {host, NULL};
    treq("GET", u, wrong_port, NULL, 0, 0, &r);
    assert_int_equal(r.status, 403);
    tresp_free(&r);

    snprintf(host, sizeof(host), "Host: localhost:%u", h.port);
    const char *local[] = {host, NULL};
    treq("GET", u, local, NULL, 0, 0, &r);
    assert_int_equal(r.status, 200);
    tresp_free(&r);

    const char *lan[] = {"Host: GENAI.lan", NULL};
    treq("GET", u, lan, NULL, 0, 0, &r);
    assert_int_equal(r.status, 200);
    tresp_free(&r);

    srv_stop(&h);
    config_free(&c);
}

static void test_api_key(void **state)
{
    (void)state;
    genai_config c;
    default_cfg(&c);
    assert_int_equal(config_set(&c, "api_key", "s3cret-key", "test", NULL), 0);
    srv h;
    srv_start(&h, &c);
    char u[128], hv[64];
    tresp r;
    url(u, sizeof(u), &h, "/v1/models");

    treq("GET", u, NULL, NULL, 0, 0, &r);
    assert_int_equal(r.status, 401);
    assert_error_code(&r, "unauthorized");
    assert_string_equal(tresp_header(&r, "WWW-Authenticate", hv, sizeof(hv)), "Bearer");
    tresp_free(&r);

    const char *wrong[] = {"Authorization: Bearer s3cret-kex", NULL};
    treq("GET", u, wrong, NULL, 0, 0, &r);
    assert_int_equal(r.status, 401);
    tresp_free(&r);

    const char *right[] = {"Authorization: Bearer s3cret-key", NULL};
    treq("GET", u, right, NULL, 0, 0, &r);
    assert_int_equal(r.status, 200);
    tresp_free(&r);

    url(u, sizeof(u), &h, "/health"); /* public */
    treq("GET", u, NULL, NULL, 0, 0, &r);
    assert_int_equal(r.status, 200);
    tresp_free(&r);

    srv_stop(&h);
    config_free(&c);
}

static void test_non_loopback_needs_key(void **state)
{
    (void)state;
    loop *l;
    assert_int_equal(loop_start(&l, NULL), 0);
    genai_config c;
    default_cfg(&c);
    assert_int_equal(config_set(&c, "host", "0.0.0.0", "test", NULL), 0);
    http_server_opts o = {.loop = l, .config = &c};
    http_server *s = NULL;
    genai_error e;
    assert_int_equal(http_server_start(&o, &s, &e), GENAI_EBAD_ARG);
    assert_null(s);
    assert_non_null(strstr(e.detail, "without an API key"));
    assert_int_equal(config_set(&c, "api_key", "k", "test", NULL), 0);
    assert_int_equal(http_server_start(&o, &s, &e), 0);
    http_server_stop(s);
    loop_stop(l);
    config_free(&c);
}

static void test_cors(void **state)
{
    (void)state;
    char u[128], hv[128];
    tresp r;
    const char *pre[] = {"Origin: http://app.example", "Access-Control-Request-Method: GET",
                         "Access-Control-Request-Headers: authorization", NULL};
    const char *get_origin[] = {"Origin: http://app.example", NULL};

    /* Not configured: no CORS headers at all, and foreign origins refused. */
    genai_config c;
    default_cfg(&c);
    srv h;
    srv_start(&h, &c);
    url(u, sizeof(u), &h, "/v1/models");
    treq("OPTIONS", u, pre, NULL, 0, 0, &r);
    assert_int_equal(r.status, 403);
    assert_null(tresp_header(&r, "Access-Control-Allow-Origin", hv, sizeof(hv)));
    tresp_free(&r);
    treq("GET", u, get_origin, NULL, 0, 0, &r);
    assert_int_equal(r.status, 403);
    assert_error_code(&r, "origin_not_allowed");
    assert_null(tresp_header(&r, "Access-Control-Allow-Origin", hv, sizeof(hv)));
    tresp_free(&r);
    srv_stop(&h);
    config_free(&c);

    /* Configured: a proper preflight, and the header on the real request. */
    default_cfg(&c);
    assert_int_equal(config_set(&c, "cors_origins", "http://app.example", "test", NULL), 0);
    srv_start(&h, &c);
    url(u, sizeof(u), &h, "/v1/models");
    treq("OPTIONS", u, pre, NULL, 0, 0, &r);
    assert_int_equal(r.status, 204);
    assert_string_equal(tresp_header(&r, "Access-Control-Allow-Origin", hv, sizeof(hv)),
                        "http://app.example");
    assert_string_equal(tresp_header(&r, "Access-Control-Allow-Methods", hv, sizeof(hv)), "GET");
    assert_string_equal(tresp_header(&r, "Access-Control-Allow-Headers", hv, sizeof(hv)),
                        "authorization");
    assert_non_null(tresp_header(&r, "Access-Control-Max-Age", hv, sizeof(hv)));
    tresp_free(&r);
    treq("GET", u, get_origin, NULL, 0, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(tresp_header(&r, "Access-Control-Allow-Origin", hv, sizeof(hv)),
                        "http://app.example");
    tresp_free(&r);
    const char *other[] = {"Origin: http://evil.example", NULL};
    treq("GET", u, other, NULL, 0, 0, &r);
    assert_int_equal(r.status, 403);
    tresp_free(&r);
    srv_stop(&h);
    config_free(&c);
}

/* ---- SSE -------------------------------------------------------------- */

#define N_EVENTS 50

typedef struct sse_client {
    char url[128];
    sbuf text;
    int ids_seen;
    int curl_rc;
} sse_client;

static size_t sse_data(char *p, size_t size, size_t n, void *arg)
{
    sse_client *c = arg;
    sbuf_append(&c->text, p, size * n);
    int ids = 0;
    for (const char *s = sbuf_str(&c->text); (s = strstr(s, "\nid: ")) != NULL; s++)
        ids++;
    pthread_mutex_lock(&g_mu);
    c->ids_seen = ids;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    /* Returning short makes curl abort: the client hangs up mid-stream. */
    return ids >= N_EVENTS ? 0 : size * n;
}

static void *sse_thread(void *arg)
{
    sse_client *c = arg;
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sse_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    c->curl_rc = (int)curl_easy_perform(e);
    curl_easy_cleanup(e);
    return NULL;
}

typedef struct bus_op {
    http_server *s;
    int n;
} bus_op;

static void subscribers(loop *l, void *arg, loop_completion *c)
{
    bus_op *op = arg;
    (void)l;
    loop_complete(c, (int)events_subscribers(http_server_events(op->s)));
}

static void publish(loop *l, void *arg, loop_completion *c)
{
    bus_op *op = arg;
    (void)l;
    for (int i = 0; i < op->n; i++)
        events_publish(http_server_events(op->s), i % 2 ? "test.odd" : "test.even",
                       json_pack("{s:i}", "seq", i));
    loop_complete(c, 0);
}

static int wait_subscribers(srv *h, int want, int ms)
{
    bus_op op = {h->s, 0};
    uint64_t end = t_now_ms() + (uint64_t)ms;
    int n;
    while ((n = loop_call_wait(h->l, subscribers, &op)) != want && t_now_ms() < end) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL); /* poll the loop-owned count with a deadline */
    }
    return n;
}

static void test_sse_events_in_order(void **state)
{
    (void)state;
    genai_config c;
    default_cfg(&c);
    srv h;
    srv_start(&h, &c);
    sse_client cl;
    memset(&cl, 0, sizeof(cl));
    url(cl.url, sizeof(cl.url), &h, "/v1/events");
    pthread_t t;
    pthread_create(&t, NULL, sse_thread, &cl);
    assert_int_equal(wait_subscribers(&h, 1, 10000), 1);

    bus_op op = {h.s, N_EVENTS};
    assert_int_equal(loop_call_wait(h.l, publish, &op), 0);
    pthread_join(t, NULL);
    assert_int_equal(cl.ids_seen, N_EVENTS);

    /* Events arrive whole, in order, with ids 1..N. */
    const char *p = sbuf_str(&cl.text);
    assert_non_null(strstr(p, ": genai events\n"));
    for (int i = 0; i < N_EVENTS; i++) {
        char want[160];
        snprintf(want, sizeof(want), "id: %d\nevent: %s\ndata: {\"id\":%d,", i + 1,
                 i % 2 ? "test.odd" : "test.even", i + 1);
        const char *at = strstr(p, want);
        assert_non_null(at);
        char seq[32];
        snprintf(seq, sizeof(seq), "\"data\":{\"seq\":%d}}\n\n", i);
        assert_non_null(strstr(at, seq));
        p = at + 1;
    }
    /* The client hung up: the stream's abort hook unsubscribed it. */
    assert_int_equal(wait_subscribers(&h, 0, 10000), 0);
    sbuf_free(&cl.text);
    srv_stop(&h);
    config_free(&c);
}

static void test_disconnect_mid_stream_aborts(void **state)
{
    (void)state;
    genai_config c;
    default_cfg(&c);
    srv h;
    srv_start(&h, &c);

    int fd = t_connect(h.port);
    assert_true(fd >= 0);
    char req[128];
    int n = snprintf(req, sizeof(req), "GET /test/stream HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n\r\n",
                     h.port);
    assert_int_equal(write(fd, req, (size_t)n), n);
    char buf[1024];
    size_t got = 0;
    while (got < sizeof(buf) - 1) {
        ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
        assert_true(k > 0);
        got += (size_t)k;
        buf[got] = '\0';
        if (strstr(buf, "first\n") != NULL)
            break;
    }
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strstr(buf, "first\n"));
    /* The stream is suspended (nothing more to send); every fd the server
     * made for it, the socket duplicate included, is close-on-exec. */
    assert_true(t_all_cloexec());
    assert_int_equal(get(&g_aborts), 0);

    uint64_t t0 = t_now_ms();
    close(fd);
    assert_int_equal(wait_for(&g_aborts, 1, 5000), 1);
    uint64_t took = t_now_ms() - t0;
    printf("abort hook ran %llu ms after the client closed\n", (unsigned long long)took);

    /* A request still waiting for its reply is aborted the same way. */
    fd = t_connect(h.port);
    n = snprintf(req, sizeof(req), "GET /test/hold HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n\r\n", h.port);
    assert_int_equal(write(fd, req, (size_t)n), n);
    assert_true(wait_for(&g_holds, 2, 5000) >= 2);
    close(fd);
    assert_int_equal(wait_for(&g_aborts, 2, 5000), 2);

    srv_stop(&h);
    config_free(&c);
}

/* ---- concurrency ------------------------------------------------------ */

#define N_THREADS 4
#define PER_THREAD 50

typedef struct gate_client {
    char url[128];
    int ok;
} gate_client;

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static void *gate_thread(void *arg)
{
    gate_client *g = arg;
    CURLM *m = curl_multi_init();
    CURL *e[PER_THREAD];
    sbuf bodies[PER_THREAD];
    for (int i = 0; i < PER_THREAD; i++) {
        bodies[i] = (sbuf)SBUF_INIT;
        e[i] = curl_easy_init();
        curl_easy_setopt(e[i], CURLOPT_URL, g->url);
        curl_easy_setopt(e[i], CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e[i], CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(e[i], CURLOPT_FORBID_REUSE, 1L);
        curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, discard);
        curl_multi_add_handle(m, e[i]);
    }
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)PER_THREAD);
    int running = 1;
    while (running > 0) {
        curl_multi_perform(m, &running);
        if (running > 0)
            curl_multi_poll(m, NULL, 0, 1000, NULL);
    }
    for (int i = 0; i < PER_THREAD; i++) {
        long status = 0;
        curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &status);
        if (status == 200)
            g->ok++;
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
        sbuf_free(&bodies[i]);
    }
    curl_multi_cleanup(m);
    return NULL;
}

static void set_gate(loop *l, void *arg, loop_completion *c)
{
    (void)l;
    g_gate_want = *(int *)arg;
    g_gate_n = 0;
    loop_complete(c, 0);
}

static void test_200_concurrent(void **state)
{
    (void)state;
    int fds = t_count_fds();
    genai_config c;
    default_cfg(&c);
    srv h;
    srv_start(&h, &c);
    /* Every request is held until all 200 are in flight at once. */
    int want = N_THREADS * PER_THREAD;
    assert_int_equal(loop_call_wait(h.l, set_gate, &want), 0);
    pthread_t t[N_THREADS];
    gate_client g[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        memset(&g[i], 0, sizeof(g[i]));
        url(g[i].url, sizeof(g[i].url), &h, "/test/gate");
        pthread_create(&t[i], NULL, gate_thread, &g[i]);
    }
    int ok = 0;
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(t[i], NULL);
        ok += g[i].ok;
    }
    assert_int_equal(ok, want);
    srv_stop(&h);
    config_free(&c);
    assert_int_equal(t_count_fds(), fds);
}

/* ---- shutdown --------------------------------------------------------- */

typedef struct hold_client {
    char url[128];
    tresp r;
} hold_client;

static void *hold_thread(void *arg)
{
    hold_client *hc = arg;
    treq("GET", hc->url, NULL, NULL, 0, 0, &hc->r);
    return NULL;
}

static void test_shutdown_with_requests_in_flight(void **state)
{
    (void)state;
    int fds = t_count_fds();
    genai_config c;
    default_cfg(&c);
    srv h;
    srv_start(&h, &c);
    enum { N = 6 };
    pthread_t t[N];
    hold_client hc[N];
    for (int i = 0; i < N; i++) {
        memset(&hc[i], 0, sizeof(hc[i]));
        url(hc[i].url, sizeof(hc[i].url), &h, i % 2 ? "/test/hold" : "/test/stream");
        pthread_create(&t[i], NULL, hold_thread, &hc[i]);
    }
    /* All six are suspended in MHD: waiting for a reply or for stream data. */
    assert_int_equal(wait_for(&g_holds, N, 10000), N);
    srv_stop(&h); /* MHD_stop_daemon aborts the process if one stays suspended */
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        if (i % 2) {
            assert_int_equal(hc[i].r.status, 503); /* failed by the shutdown */
        } else {
            assert_int_equal(hc[i].r.status, 200); /* the stream ended cleanly */
            assert_string_equal(sbuf_str(&hc[i].r.body), "first\n");
            assert_int_equal(hc[i].r.curl_rc, CURLE_OK);
        }
        tresp_free(&hc[i].r);
    }
    assert_int_equal(get(&g_aborts), N);
    config_free(&c);
    assert_int_equal(t_count_fds(), fds);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* libuv keeps a process-wide pipe from the first loop on; open it now so
     * that the fd counts of the tests compare like with like. */
    loop *warm;
    if (loop_start(&warm, NULL) == 0)
        loop_stop(warm);
    t_cloexec_baseline();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_404_405),
        cmocka_unit_test(test_system_matches_probe),
        cmocka_unit_test(test_body_limits_and_json),
        cmocka_unit_test(test_host_check),
        cmocka_unit_test(test_api_key),
        cmocka_unit_test(test_non_loopback_needs_key),
        cmocka_unit_test(test_cors),
        cmocka_unit_test(test_sse_events_in_order),
        cmocka_unit_test(test_disconnect_mid_stream_aborts),
        cmocka_unit_test(test_200_concurrent),
        cmocka_unit_test(test_shutdown_with_requests_in_flight),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
