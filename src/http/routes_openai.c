/*
 * routes_openai.c - the OpenAI-compatible inference routes: POST
 * /v1/chat/completions, /v1/completions and /v1/embeddings proxied to the
 * LLM, and POST /v1/images/generations run as an image job (native.h,
 * docs/api.md).
 *
 * A text request names its model; the runtime service (api/service.h)
 * selects that LLM in the orchestrator and queues the request in its gate
 * until the LLM is READY, loading it on demand (or answers 503 with
 * Retry-After at the queue deadline, 404 for an unknown model, 400 for
 * another LLM while one is in use). Once granted, the body goes to
 * llama-server through the streaming proxy (proxy.h) and the grant is
 * released when the proxy finishes. A client that leaves while queued
 * leaves the queue; one that leaves while streaming aborts the upstream
 * transfer.
 *
 * An image request waits for its job and answers the PNGs as b64_json, with
 * genai's own details (seeds, size, whether the LLM was moved aside, the
 * model's settings as applied with their warnings) in a "genai" field that
 * OpenAI clients ignore. A client that leaves cancels its job.
 */
#include "http/native.h"

#include "api/service.h"
#include "core/alloc.h"
#include "core/log.h"
#include "http/proxy.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MOD "http"

svc *http_req_svc(http_request *req)
{
    return http_server_app(http_req_server(req));
}

svc *http_need_svc(http_request *req)
{
    svc *s = http_req_svc(req);
    if (s == NULL)
        http_reply_error(req, 503, "unavailable", "this server runs no models",
                         "start the daemon with 'genai serve'");
    return s;
}

void http_reply_svc(http_request *req, const svc_reply *r)
{
    char ra[16];
    const char *hdrs[] = {"Retry-After", ra, NULL};
    snprintf(ra, sizeof(ra), "%d", r->retry_after_s);
    const char *msg = r->detail != NULL && r->detail[0] ? r->detail : genai_strerror(r->code);
    char *body =
        http_error_body(r->http_status, r->error ? r->error : "internal", msg, r->suggestion);
    if (body == NULL) {
        http_reply_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    http_reply(req, r->http_status, "application/json", body, strlen(body),
               r->retry_after_s > 0 ? hdrs : NULL);
    mem_free(body);
}

void http_reply_rc(http_request *req, int rc, const genai_error *err)
{
    const char *code;
    int status = http_status_for(rc, &code);
    const char *msg = err != NULL && err->detail[0] ? err->detail : genai_strerror(rc);
    http_reply_error(req, status, code, msg, NULL);
}

/* No service in this server (tests of the bare server). */
/* ---- text: chat, completions, embeddings ------------------------------------ */

typedef struct text_req {
    http_request *req;
    svc *s;
    svc_wait *wait; /* while queued */
    uint64_t ticket;
} text_req;

static void text_proxied(void *arg, const http_proxy_result *r)
{
    text_req *t = arg;
    svc_llm_release(t->s, t->ticket);
    svc_count_tokens(t->s, r->prompt_tokens, r->completion_tokens);
    if (r->rc != 0 && !r->client_gone)
        LOG_INFO(MOD, "proxied request ended with %s", genai_err_name(r->rc));
    mem_free(t);
}

static void text_granted(void *arg, const svc_reply *r)
{
    text_req *t = arg;
    t->wait = NULL;
    http_req_on_abort(t->req, NULL, NULL);
    if (r->code != 0) {
        http_reply_svc(t->req, r);
        mem_free(t);
        return;
    }
    t->ticket = r->ticket;
    size_t len;
    const char *body = http_req_body(t->req, &len);
    http_proxy_opts po = {.client = svc_http(t->s),
                          .port = r->endpoint->port,
                          .api_key = r->endpoint->api_key,
                          .path = http_req_path(t->req),
                          .body = body,
                          .body_len = len,
                          .done = text_proxied,
                          .arg = t};
    genai_error e;
    genai_error_clear(&e);
    if (http_proxy_start(t->req, &po, &e) < 0) {
        svc_llm_release(t->s, t->ticket);
        http_reply_error(t->req, 502, "upstream_error", e.detail, NULL);
        mem_free(t);
    }
}

static void text_abort(http_request *req, void *arg)
{
    text_req *t = arg;
    http_req_on_abort(req, NULL, NULL);
    svc_wait_cancel(t->wait, 0);
    http_reply_error(req, 499, "cancelled", "the client went away", NULL);
    mem_free(t);
}

/* The three text routes: only the upstream path differs. */
void http_h_v1_text(http_request *req)
{
    svc *s = http_need_svc(req);
    if (s == NULL)
        return;
    json_t *body = http_req_json(req);
    json_t *model = json_object_get(body, "model");
    if (!json_is_object(body) || !json_is_string(model) || json_string_length(model) == 0) {
        http_reply_error(req, 400, "bad_request", "\"model\" is required (a registered LLM id)",
                         "list the models with GET /v1/models");
        return;
    }
    text_req *t = mem_calloc(1, sizeof(*t));
    if (t == NULL) {
        http_reply_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    t->req = req;
    t->s = s;
    genai_error e;
    genai_error_clear(&e);
    int rc = svc_llm_request(s, json_string_value(model), text_granted, t, &t->wait, &e);
    if (rc < 0) {
        mem_free(t);
        http_reply_rc(req, rc, &e);
        return;
    }
    http_req_on_abort(req, text_abort, t);
}

/* ---- images ------------------------------------------------------------------- */

typedef struct image_req {
    http_request *req;
    svc *s;
    svc_wait *wait;
    uint64_t job;
} image_req;

static void image_submitted(void *arg, const svc_reply *r)
{
    image_req *m = arg;
    if (r->code == 0) {
        m->job = r->job;
        return; /* done follows */
    }
    http_req_on_abort(m->req, NULL, NULL);
    http_reply_svc(m->req, r);
    mem_free(m);
}

static void image_done(void *arg, const svc_reply *r)
{
    image_req *m = arg;
    http_req_on_abort(m->req, NULL, NULL);
    if (r->code != 0) {
        http_reply_svc(m->req, r);
        mem_free(m);
        return;
    }
    int code;
    const char *detail;
    json_t *res = svc_image_result(m->s, m->job, &code, &detail);
    if (res == NULL) {
        svc_reply e = *r;
        e.code = code;
        e.error = "internal";
        e.http_status = 500;
        e.detail = detail;
        http_reply_svc(m->req, &e);
    } else {
        http_reply_json(m->req, 200, res);
    }
    mem_free(m);
}

static void image_abort(http_request *req, void *arg)
{
    image_req *m = arg;
    http_req_on_abort(req, NULL, NULL);
    svc_wait_cancel(m->wait, 1); /* nobody will fetch the image */
    http_reply_error(req, 499, "cancelled", "the client went away", NULL);
    mem_free(m);
}

void http_h_v1_images(http_request *req)
{
    svc *s = http_need_svc(req);
    if (s == NULL)
        return;
    image_req *m = mem_calloc(1, sizeof(*m));
    if (m == NULL) {
        http_reply_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    m->req = req;
    m->s = s;
    svc_image_cbs cb = {.submitted = image_submitted, .done = image_done};
    genai_error e;
    genai_error_clear(&e);
    int rc = svc_image_submit(s, http_req_json(req), &cb, m, &m->wait, &e);
    if (rc < 0) {
        mem_free(m);
        http_reply_rc(req, rc, &e);
        return;
    }
    http_req_on_abort(req, image_abort, m);
}
