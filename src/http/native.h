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

#endif
