/*
 * routes_native.c - the daemon's own routes: GET /api/status, GET /api/logs,
 * POST /api/shutdown, and the error-code table shared by the native
 * handlers (see native.h).
 *
 * Status reads the probe snapshot (host memory) and this process's resident
 * size from /proc on a libuv worker, like GET /v1/system, so the loop never
 * waits on /proc or NVML; the runtimes come from the runtime service back on
 * the loop thread. Shutdown replies first and then runs the hook
 * that `genai serve` installed (by default SIGTERM to this process, which
 * the daemon's uv_signal handler turns into the clean stop described in
 * docs/http.md); the stop gives the reply time to reach the client.
 */
#include "http/logring.h"
#include "http/native.h"

#include "api/service.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/paths.h"
#include "sys/probe.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MOD "http"

/* Set once by http_native_init before the server's threads exist. */
static int native_ready;
static uint64_t native_start_ms;
static http_shutdown_fn native_shutdown;
static void *native_shutdown_arg;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void raise_sigterm(void *arg)
{
    (void)arg;
    kill(getpid(), SIGTERM);
}

void http_native_init(http_shutdown_fn fn, void *arg)
{
    native_start_ms = mono_ms();
    native_shutdown = fn != NULL ? fn : raise_sigterm;
    native_shutdown_arg = arg;
    http_logring_install();
    native_ready = 1;
}

int http_status_for(int rc, const char **code)
{
    switch (rc) {
    case GENAI_ENOT_FOUND:
    case -ENOENT:
        *code = "not_found";
        return 404;
    case GENAI_EBAD_ARG:
    case -EINVAL:
        *code = "bad_request";
        return 400;
    case GENAI_EBUSY:
        *code = "conflict";
        return 409;
    case GENAI_ECHECKSUM:
        *code = "checksum_mismatch";
        return 502;
    case GENAI_EHTTP:
        *code = "upstream_error";
        return 502;
    case GENAI_EUNAVAILABLE:
        *code = "unavailable";
        return 503;
    case GENAI_ECANCELLED:
        *code = "cancelled";
        return 499;
    case GENAI_ETOO_LARGE:
        *code = "too_large";
        return 413;
    case GENAI_ECORRUPT:
        *code = "corrupt";
        return 422;
    case GENAI_EUNSUPPORTED:
        *code = "unsupported";
        return 422;
    case -ENOSPC:
        *code = "no_space";
        return 507;
    default:
        *code = "internal";
        return 500;
    }
}

/* ---- GET /api/status --------------------------------------------------- */

typedef struct status_work {
    uv_work_t work;
    http_request *req;
    probe_snapshot snap;
    int probe_rc;
    uint64_t rss;
    genai_error err;
} status_work;

/* VmRSS of this process in bytes, 0 when /proc does not say. */
static uint64_t self_rss(void)
{
    char *text = NULL;
    uint64_t rss = 0;
    if (paths_read_file("/proc/self/status", 64 * 1024, &text, NULL, NULL) < 0)
        return 0;
    const char *p = strstr(text, "\nVmRSS:");
    if (p != NULL) {
        char *end;
        unsigned long long kb = strtoull(p + 7, &end, 10);
        if (end != p + 7)
            rss = (uint64_t)kb * 1024u;
    }
    mem_free(text);
    return rss;
}

static void status_run(uv_work_t *w)
{
    status_work *sw = w->data;
    sw->probe_rc = probe_take(NULL, &sw->snap, &sw->err);
    sw->rss = self_rss();
}

static void status_done(uv_work_t *w, int status)
{
    status_work *sw = w->data;
    http_request *req = sw->req;
    json_t *memory = NULL;
    if (status == 0 && sw->probe_rc == 0) {
        json_t *snap = probe_snapshot_json(&sw->snap);
        memory = json_incref(json_object_get(snap, "memory"));
        json_decref(snap);
    }
    uint64_t up = native_ready ? (mono_ms() - native_start_ms) / 1000u : 0;
    json_t *body =
        json_pack("{s:I, s:s, s:I, s:I, s:o}", "pid", (json_int_t)getpid(), "version",
                  genai_version(), "uptime_s", (json_int_t)up, "rss_bytes", (json_int_t)sw->rss,
                  "memory", memory != NULL ? memory : json_null());
    /* The runtime service owns the runtimes (this runs on the loop thread,
     * as it must). A server without one, as some tests build, says so
     * rather than listing nothing. */
    svc *s = http_req_svc(req);
    if (body != NULL) {
        json_t *rts = s != NULL ? svc_runtimes(s) : json_null();
        if (rts == NULL || json_object_set_new(body, "runtimes", rts) != 0 ||
            (s == NULL && json_object_set_new(body, "runtimes_note",
                                              json_string("this server runs no models")) != 0)) {
            json_decref(body);
            body = NULL;
        }
    }
    if (body == NULL)
        http_reply_error(req, 500, "internal", "out of memory building the status", NULL);
    else
        http_reply_json(req, 200, body);
    probe_snapshot_free(&sw->snap);
    mem_free(sw);
}

void http_h_api_status(http_request *req)
{
    status_work *sw = mem_calloc(1, sizeof(*sw));
    if (sw == NULL) {
        http_reply_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    sw->req = req;
    sw->work.data = sw;
    int rc = uv_queue_work(loop_uv(http_server_loop(http_req_server(req))), &sw->work, status_run,
                           status_done);
    if (rc != 0) {
        mem_free(sw);
        http_reply_error(req, 500, "internal", uv_strerror(rc), NULL);
    }
}

/* ---- GET /api/logs ------------------------------------------------------ */

void http_h_api_logs(http_request *req)
{
    size_t limit = 200;
    const char *q = http_req_query(req, "limit");
    if (q != NULL) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(q, &end, 10);
        if (*q == '\0' || *q == '-' || *end != '\0' || errno != 0 || v == 0 ||
            v > HTTP_LOGRING_LINES) {
            http_reply_error(req, 400, "bad_request", "limit must be a number from 1 to 1000",
                             NULL);
            return;
        }
        limit = (size_t)v;
    }
    if (!http_logring_installed()) {
        http_reply_error(req, 503, "unavailable", "this server keeps no log lines",
                         "the log ring exists in 'genai serve'");
        return;
    }
    json_t *lines = http_logring_json(limit);
    json_t *body = lines != NULL ? json_pack("{s:o}", "lines", lines) : NULL;
    if (body == NULL)
        http_reply_error(req, 500, "internal", "out of memory", NULL);
    else
        http_reply_json(req, 200, body);
}

/* ---- POST /api/shutdown ------------------------------------------------- */

void http_h_api_shutdown(http_request *req)
{
    if (!http_req_peer_loopback(req)) {
        http_reply_error(req, 403, "forbidden", "shutdown is accepted only from this machine",
                         "run 'genai stop' on the machine where genai serve runs");
        return;
    }
    if (!native_ready) {
        http_reply_error(req, 503, "unavailable", "this server cannot be stopped over HTTP", NULL);
        return;
    }
    LOG_WARN(MOD, "shutdown requested over HTTP");
    json_t *body = json_pack("{s:s, s:I}", "status", "stopping", "pid", (json_int_t)getpid());
    http_reply_json(req, 202, body != NULL ? body : json_object());
    native_shutdown(native_shutdown_arg);
}
