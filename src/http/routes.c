/*
 * routes.c - the built-in route table and the small handlers (see routes.h).
 *
 * GET /v1/system probes on a libuv worker thread (uv_queue_work): probing
 * reads /proc, sysfs and NVML, which can take tens of milliseconds, and
 * neither MHD's thread nor the loop should wait on it.
 */
#include "http/routes.h"

#include "http/native.h"

#include "core/alloc.h"
#include "core/log.h"
#include "core/sbuf.h"
#include "sys/probe.h"

#include <string.h>

const http_route http_routes[] = {
    {"GET", "/health", HTTP_ROUTE_PUBLIC, http_h_health},
    {"GET", "/metrics", 0, http_h_metrics},
    {"GET", "/v1/system", 0, http_h_system},
    {"GET", "/v1/models", 0, http_h_v1_models},
    {"GET", "/v1/models/", HTTP_ROUTE_PREFIX, http_h_v1_model_get},
    {"GET", "/v1/events", 0, http_h_events},
    {"POST", "/v1/chat/completions", HTTP_ROUTE_JSON, http_h_v1_text},
    {"POST", "/v1/completions", HTTP_ROUTE_JSON, http_h_v1_text},
    {"POST", "/v1/embeddings", HTTP_ROUTE_JSON, http_h_v1_text},
    {"POST", "/v1/images/generations", HTTP_ROUTE_JSON, http_h_v1_images},
    /* Native API (native.h, docs/api.md). The exact pull route comes before
     * the /api/models/{id} prefix routes: the first match wins. */
    {"GET", "/api/system", 0, http_h_system},
    {"GET", "/api/status", 0, http_h_api_status},
    {"GET", "/api/logs", 0, http_h_api_logs},
    {"POST", "/api/shutdown", 0, http_h_api_shutdown},
    {"GET", "/api/models", 0, http_h_api_models},
    {"POST", "/api/models/pull", HTTP_ROUTE_JSON, http_h_api_model_pull},
    {"POST", "/api/models/prune", HTTP_ROUTE_JSON, http_h_api_models_prune},
    {"GET", "/api/models/", HTTP_ROUTE_PREFIX, http_h_api_model_get},
    {"DELETE", "/api/models/", HTTP_ROUTE_PREFIX, http_h_api_model_delete},
    {"POST", "/api/llm/start", HTTP_ROUTE_JSON, http_h_api_llm_start},
    {"POST", "/api/llm/stop", 0, http_h_api_llm_stop},
    {"GET", "/api/llm", 0, http_h_api_llm},
    {"GET", "/api/llm/logs", 0, http_h_api_llm_logs},
    {"POST", "/api/images", HTTP_ROUTE_JSON, http_h_api_images_create},
    {"GET", "/api/images/", HTTP_ROUTE_PREFIX, http_h_api_image_get},
    {"DELETE", "/api/images/", HTTP_ROUTE_PREFIX, http_h_api_image_cancel},
    {"POST", "/api/reservations", HTTP_ROUTE_JSON, http_h_api_reservation_create},
    {"GET", "/api/reservations", 0, http_h_api_reservations},
    {"GET", "/api/reservations/", HTTP_ROUTE_PREFIX, http_h_api_reservation_get},
    {"DELETE", "/api/reservations/", HTTP_ROUTE_PREFIX, http_h_api_reservation_delete},
};

const size_t http_n_routes = sizeof(http_routes) / sizeof(http_routes[0]);

void http_h_health(http_request *req)
{
    static const char body[] = "{\"status\":\"ok\"}";
    http_reply(req, 200, "application/json", body, sizeof(body) - 1, NULL);
}

void http_h_metrics(http_request *req)
{
    sbuf out = SBUF_INIT;
    if (metrics_render(http_server_metrics(http_req_server(req)), &out) < 0) {
        sbuf_free(&out);
        http_reply_error(req, 500, "internal", "out of memory rendering metrics", NULL);
        return;
    }
    http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", sbuf_str(&out), out.len, NULL);
    sbuf_free(&out);
}

typedef struct system_work {
    uv_work_t work;
    http_request *req;
    probe_snapshot snap;
    int rc;
    genai_error err;
} system_work;

static void system_probe(uv_work_t *w)
{
    system_work *sw = w->data;
    sw->rc = probe_take(NULL, &sw->snap, &sw->err);
}

static void system_done(uv_work_t *w, int status)
{
    system_work *sw = w->data;
    http_request *req = sw->req;
    if (status != 0 || sw->rc < 0) {
        http_reply_error(req, 500, "probe_failed",
                         status != 0 ? uv_strerror(status) : sw->err.detail, NULL);
    } else {
        json_t *j = probe_snapshot_json(&sw->snap);
        if (j == NULL)
            http_reply_error(req, 500, "internal", "out of memory building the snapshot", NULL);
        else
            http_reply_json(req, 200, j);
    }
    probe_snapshot_free(&sw->snap);
    mem_free(sw);
}

void http_h_system(http_request *req)
{
    system_work *sw = mem_calloc(1, sizeof(*sw));
    if (sw == NULL) {
        http_reply_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    sw->req = req;
    sw->work.data = sw;
    /* No abort hook: the probe cannot be interrupted, and replying after the
     * client left is harmless (server.h). */
    int rc = uv_queue_work(loop_uv(http_server_loop(http_req_server(req))), &sw->work, system_probe,
                           system_done);
    if (rc != 0) {
        mem_free(sw);
        http_reply_error(req, 500, "internal", uv_strerror(rc), NULL);
    }
}
