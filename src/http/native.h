/*
 * native.h - genai's native HTTP API (/api/...) and the registry-backed
 * OpenAI model list: models (list, show, pull with progress as Server-Sent
 * Events, delete), daemon status, the daemon's recent log lines, shutdown.
 * Routes are listed in routes.c; the shapes are documented in docs/api.md.
 *
 * Handlers follow server.h's contract (loop thread, finish exactly once).
 * Anything that blocks (SQLite, downloads, /proc) runs on a libuv worker
 * thread: the registry is opened per request on that worker (store_open,
 * from GENAI_HOME or XDG), so a handler never holds the database between
 * requests and the daemon and the CLI share it as two processes do.
 */
#ifndef GENAI_HTTP_NATIVE_H
#define GENAI_HTTP_NATIVE_H

#include "api/service.h"
#include "http/server.h"

/* Asks the process to stop (POST /api/shutdown); runs on the loop thread
 * after the reply was queued. */
typedef void (*http_shutdown_fn)(void *arg);

/*
 * Daemon start-up hook, called once by `genai serve` before its server
 * starts: records the start time (GET /api/status uptime), installs the log
 * ring behind GET /api/logs (http_logring_install) and sets what POST
 * /api/shutdown does (fn NULL: raise SIGTERM in this process, which `genai
 * serve` handles as a clean stop). A server whose process never called it
 * answers /api/shutdown with 503. Not thread-safe: call before other threads
 * log.
 */
void http_native_init(http_shutdown_fn fn, void *arg);

/* GET /v1/models: the registry in the OpenAI shape, plus any model the
 * server's models provider lists that the registry does not. */
void http_h_v1_models(http_request *req);
/* GET /v1/models/{id}: one model in the OpenAI shape; 404 model_not_found. */
void http_h_v1_model_get(http_request *req);
/* GET /api/models: {"models":[native model objects]}. */
void http_h_api_models(http_request *req);
/* GET /api/models/{id}: one native model object; 404 model_not_found. */
void http_h_api_model_get(http_request *req);
/* DELETE /api/models/{id}: removes rows and owned files; {"deleted": id}. */
void http_h_api_model_delete(http_request *req);
/* POST /api/models/pull {"ref", "sha256"?, "id"?, "name"?, "kind"?,
 * "allow_http"?}: Server-Sent Events "progress"..., then "done" or "error". */
void http_h_api_model_pull(http_request *req);
/* POST /api/models/prune: delete the files no model lists (docs/api.md). */
void http_h_api_models_prune(http_request *req);
/* GET /api/status: pid, version, uptime, memory, runtimes. */
void http_h_api_status(http_request *req);
/* GET /api/logs[?limit=N]: the daemon's recent log lines, oldest first. */
void http_h_api_logs(http_request *req);
/* POST /api/shutdown: loopback clients only (and the API key when one is
 * set); 202, then the shutdown hook. */
void http_h_api_shutdown(http_request *req);

/*
 * Maps an error code to the HTTP status and stable error code of the JSON
 * error body (docs/api.md): GENAI_ENOT_FOUND -> 404 "not_found", ... The
 * returned code string is static.
 */
int http_status_for(int rc, const char **code);

/* ---- models at work (routes_openai.c, routes_runtime.c) ------------------
 * These need the runtime service as the server's app (http_server_opts.app,
 * set by `genai serve`); without one they answer 503. */

/* The server's runtime service, or NULL. Loop thread. */
svc *http_req_svc(http_request *req);
/* The same, or NULL after replying 503 "this server runs no models". */
svc *http_need_svc(http_request *req);
/* Replies a service answer as a JSON error (with Retry-After when set). */
void http_reply_svc(http_request *req, const svc_reply *r);
/* Replies an error code (http_status_for) with err's detail. */
void http_reply_rc(http_request *req, int rc, const genai_error *err);

/* POST /v1/chat/completions, /v1/completions, /v1/embeddings: routed by
 * "model" to the LLM (loaded on demand) and proxied, streams as they come. */
void http_h_v1_text(http_request *req);
/* POST /v1/images/generations: one image job, answered with b64_json PNGs. */
void http_h_v1_images(http_request *req);
/* POST /api/llm/start {"model","ctx"?,"ngl"?}: answers when READY. */
void http_h_api_llm_start(http_request *req);
/* POST /api/llm/stop: answers when stopped and its memory reclaimed. */
void http_h_api_llm_stop(http_request *req);
/* GET /api/llm: state, model, plan (never the endpoint). */
void http_h_api_llm(http_request *req);
/* GET /api/llm/logs[?limit=N]: the LLM child's recent stdout and stderr lines (a ring per
 * stream) and its last failure. */
void http_h_api_llm_logs(http_request *req);
/* POST /api/images (the body of /v1/images/generations): 202 and the job. */
void http_h_api_images_create(http_request *req);
/* GET /api/images/{id}: state, progress, and the result once succeeded. */
void http_h_api_image_get(http_request *req);
/* DELETE /api/images/{id}: cancels a waiting or running job. */
void http_h_api_image_cancel(http_request *req);

/* Reservations (routes_reserve.c): POST /api/reservations {"device",
 * "bytes","deadline_s","reason"?,"wait"?}: 202 (200 with wait when
 * confirmed); GET /api/reservations: all, with genai's share of the
 * machine; GET and DELETE /api/reservations/{id}: one, release. */
void http_h_api_reservation_create(http_request *req);
void http_h_api_reservations(http_request *req);
void http_h_api_reservation_get(http_request *req);
void http_h_api_reservation_delete(http_request *req);

#endif
