/*
 * proxy.c - a client request passed to llama-server and its reply passed
 * back, on the loop thread (see proxy.h).
 *
 * One proxy per request. The upstream transfer is a streaming
 * http_client_request: curl calls on_data for every piece of the body as it
 * is read from the socket, and on_data decides at the first piece whether
 * the reply is a stream (text/event-stream, status 200: begin the client's
 * stream and write each piece through at once) or a document (collect it,
 * answer it whole in on_done). A copy of the stream goes through the SSE
 * parser of llm/chat.h only to count events and read usage fields; the
 * bytes the client gets are the upstream's, unchanged.
 *
 * Ending: exactly one of on_done (curl finished, failed, or on_data asked it
 * to stop) and on_abort (the client went away or the server stops; curl is
 * cancelled there, outside any curl callback) finishes the request, clears
 * the abort hook, calls done and frees the proxy.
 */
#include "http/proxy.h"

#include "core/alloc.h"
#include "core/log.h"
#include "core/sbuf.h"
#include "llm/chat.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "proxy"

typedef struct proxy {
    http_request *req;
    http_req *up; /* NULL once finished or cancelled */
    http_proxy_done_fn done;
    void *arg;
    http_proxy_result res;
    int decided; /* stream or document, at the first piece */
    int write_rc;
    int saw_done, saw_error;
    int too_large;
    sbuf body; /* a document reply */
    char content_type[128];
    llm_sse sse;
} proxy;

/* Reads usage.prompt_tokens / completion_tokens from a JSON text. */
static void read_usage(proxy *p, const char *text, size_t len)
{
    json_t *j = json_loadb(text, len, 0, NULL);
    json_t *u = json_object_get(j, "usage");
    json_t *pt = json_object_get(u, "prompt_tokens");
    json_t *ct = json_object_get(u, "completion_tokens");
    if (json_is_integer(pt))
        p->res.prompt_tokens = json_integer_value(pt);
    if (json_is_integer(ct))
        p->res.completion_tokens = json_integer_value(ct);
    json_decref(j);
}

static int on_event(void *arg, const char *data, size_t len)
{
    proxy *p = arg;
    p->res.events++;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        p->saw_done = 1;
        return 0;
    }
    /* Cheap tests first: most events are one token and carry neither. */
    if (memmem(data, len, "\"usage\"", 7) != NULL)
        read_usage(p, data, len);
    if (len > 9 && memcmp(data, "{\"error\"", 8) == 0)
        p->saw_error = 1;
    return 0;
}

static int on_data(void *arg, const http_chunk *c)
{
    proxy *p = arg;
    p->res.status = c->status;
    if (!p->decided) {
        p->decided = 1;
        snprintf(p->content_type, sizeof(p->content_type), "%s", c->content_type);
        p->res.streamed =
            c->status == 200 && strncmp(c->content_type, "text/event-stream", 17) == 0;
        if (p->res.streamed) {
            static const char *const hdrs[] = {"Cache-Control", "no-cache", "X-Accel-Buffering",
                                               "no", NULL};
            int rc = http_stream_begin(p->req, 200, "text/event-stream", hdrs);
            if (rc < 0) {
                p->write_rc = rc;
                return 1;
            }
        }
    }
    if (p->res.streamed) {
        int rc = http_stream_write(p->req, c->data, c->len);
        if (rc < 0) {
            p->write_rc = rc; /* gone, or not reading: stop the upstream */
            return 1;
        }
        /* Counting never stops the stream: a parser error only ends it. */
        if (llm_sse_feed(&p->sse, c->data, c->len, on_event, p) < 0)
            llm_sse_free(&p->sse);
        return 0;
    }
    if (p->body.len + c->len > HTTP_PROXY_MAX_BODY) {
        p->too_large = 1;
        return 1;
    }
    if (sbuf_append(&p->body, c->data, c->len) < 0) {
        p->write_rc = -ENOMEM;
        return 1;
    }
    return 0;
}

/* After the request was finished: p->req may be gone. */
static void proxy_end(proxy *p)
{
    if (p->done != NULL)
        p->done(p->arg, &p->res);
    llm_sse_free(&p->sse);
    sbuf_free(&p->body);
    mem_free(p);
}

/* The client's stream ends with an error event OpenAI clients raise. */
static void stream_error(proxy *p, const char *message)
{
    json_t *e = json_pack("{s:{s:s, s:s, s:s}}", "error", "code", "upstream_error", "type",
                          "server_error", "message", message);
    char *text = e != NULL ? json_dumps(e, JSON_COMPACT) : NULL;
    json_decref(e);
    if (text != NULL) {
        http_stream_write(p->req, "data: ", 6);
        http_stream_write(p->req, text, strlen(text));
        http_stream_write(p->req, "\n\n", 2);
    }
    free(text); /* json_dumps allocates with malloc */
}

static void on_done(void *arg, const http_result *r)
{
    proxy *p = arg;
    p->up = NULL;
    http_req_on_abort(p->req, NULL, NULL); /* before finishing: then it may be freed */
    p->res.rc = r->rc;
    if (r->status != 0)
        p->res.status = r->status;
    if (p->write_rc != 0) {
        /* The client is gone or stopped reading: the upstream was stopped. */
        p->res.client_gone = p->write_rc == GENAI_ECANCELLED;
        p->res.rc = p->write_rc;
        if (p->res.streamed)
            http_stream_end(p->req);
        else
            http_reply_error(p->req, 500, "internal", "the reply could not be written", NULL);
        proxy_end(p);
        return;
    }
    if (p->res.streamed) {
        if (r->rc != 0 || (!p->saw_done && !p->saw_error)) {
            char msg[512];
            snprintf(msg, sizeof(msg), "the LLM server ended the stream early (%s)",
                     r->rc != 0 ? r->error : "no [DONE]");
            LOG_WARN(MOD, "%s", msg);
            if (p->res.rc == 0)
                p->res.rc = GENAI_EUNAVAILABLE;
            stream_error(p, msg);
        }
        http_stream_end(p->req);
        proxy_end(p);
        return;
    }
    if (p->too_large) {
        p->res.rc = GENAI_ETOO_LARGE;
        http_reply_error(p->req, 502, "upstream_error",
                         "the LLM server's reply is larger than genai passes on", NULL);
    } else if (r->rc != 0) {
        char msg[512];
        snprintf(msg, sizeof(msg), "the LLM server did not answer: %s", r->error);
        http_reply_error(p->req, 502, "upstream_error", msg,
                         "see GET /api/llm for its state and genai logs for details");
    } else {
        if (p->res.status == 200)
            read_usage(p, sbuf_str(&p->body), p->body.len);
        http_reply(p->req, (int)p->res.status,
                   p->content_type[0] ? p->content_type : "application/json", sbuf_str(&p->body),
                   p->body.len, NULL);
    }
    proxy_end(p);
}

static void on_abort(http_request *req, void *arg)
{
    proxy *p = arg;
    http_req_on_abort(req, NULL, NULL);
    http_req_cancel(p->up); /* curl closes the connection: llama-server sees it */
    p->up = NULL;
    p->res.client_gone = 1;
    p->res.rc = GENAI_ECANCELLED;
    if (p->res.streamed)
        http_stream_end(p->req);
    else
        http_reply_error(p->req, 499, "cancelled", "the client went away", NULL);
    proxy_end(p);
}

int http_proxy_start(http_request *req, const http_proxy_opts *o, genai_error *err)
{
    if (o->client == NULL || o->path == NULL || o->path[0] != '/')
        return err_set(err, GENAI_EBAD_ARG, "proxy: no client or path");
    char url[300];
    if ((size_t)snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)o->port, o->path) >=
        sizeof(url))
        return err_set(err, GENAI_EBAD_ARG, "proxy: path too long");
    proxy *p = mem_calloc(1, sizeof(*p));
    if (p == NULL)
        return err_set(err, -ENOMEM, "proxy");
    p->req = req;
    p->done = o->done;
    p->arg = o->arg;
    p->res.prompt_tokens = p->res.completion_tokens = -1;
    llm_sse_init(&p->sse);
    http_req_opts ro = {.method = "POST",
                        .url = url,
                        .bearer = o->api_key,
                        .content_type = "application/json",
                        .body = o->body,
                        .body_len = o->body_len,
                        .on_data = on_data};
    int rc = http_client_request(o->client, &ro, on_done, p, &p->up);
    if (rc < 0) {
        llm_sse_free(&p->sse);
        mem_free(p);
        return err_set(err, rc, "proxy: starting the upstream request");
    }
    http_req_on_abort(req, on_abort, p);
    return 0;
}
