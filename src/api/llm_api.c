/*
 * llm_api.c - the LLM half of the public C API (include/genai.h):
 * genai_llm_start / stop / status, genai_chat and genai_chat_stream, through
 * the context's runtime service (api/service.h) on its loop thread.
 *
 * Start, stop and status are one loop_call_wait each: the loop-side function
 * asks the service and the service's answer completes the call. The
 * caller's genai_error is written on the loop thread while the caller sleeps
 * in loop_call_wait, so it needs no lock.
 *
 * A chat is a chat_op that the caller and the loop share:
 *
 *   caller: parse and rewrite the request ("stream" on or off), post
 *           chat_start, then sleep on op->cv
 *   loop:   svc_llm_request (the gate: queued until the LLM is READY)
 *           -> granted: POST the body to llama-server through the loop's
 *              HTTP client (core/http_client.h)
 *           -> streamed: each SSE event (llm/chat.h's parser) is copied onto
 *              op's chunk queue under op->mu and the caller woken
 *           -> curl done: release the grant, settle the code, mark finished
 *   caller: hands each queued chunk to its callback (outside the lock),
 *           returns once finished and the queue is empty.
 *
 * The loop stops touching op the moment it marks it finished (under the
 * lock); the caller frees op only after seeing that, so op may live on the
 * caller's stack. A callback that asks to stop makes the caller run
 * chat_cancel with loop_call_wait: it leaves the gate or aborts the
 * transfer (curl closes the connection, so llama-server stops generating),
 * releases the grant and marks op finished, all before the caller goes on.
 * The queue holds at most CHAT_QUEUE_MAX bytes: a caller that stops reading
 * ends the stream with GENAI_ETOO_LARGE rather than letting memory grow.
 */
#include "api/context.h"

#include "core/alloc.h"
#include "core/http_client.h"
#include "core/log.h"
#include "core/sbuf.h"
#include "llm/chat.h"
#include "plan/llm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "api"

/* Largest non-streamed reply kept (a long completion is far below). */
#define CHAT_BODY_MAX (64u * 1024u * 1024u)
/* Streamed chunks waiting for the caller. */
#define CHAT_QUEUE_MAX (16u * 1024u * 1024u)
/* An error reply's body kept for its message. */
#define CHAT_ERROR_MAX (64u * 1024u)

#define CHECK_G(g, err, fn)                                                                        \
    do {                                                                                           \
        if ((g) == NULL)                                                                           \
            return err_set((err), GENAI_EBAD_ARG, "%s: the context is NULL", (fn));                \
        int busy_ = api_not_on_loop((g), (fn), (err));                                             \
        if (busy_ < 0)                                                                             \
            return busy_;                                                                          \
    } while (0)

/* ---- start, stop, status -------------------------------------------------- */

typedef struct rt_call {
    genai *g;
    const char *model;
    uint32_t ctx;
    int32_t ngl;
    genai_error *err;
    loop_completion *c;
    char *json; /* status */
} rt_call;

static void rt_answered(void *arg, const svc_reply *r)
{
    rt_call *q = arg;
    int rc = r->code != 0 ? api_reply_error(r, q->err) : 0;
    loop_complete(q->c, rc);
}

static void start_on_loop(loop *l, void *arg, loop_completion *c)
{
    rt_call *q = arg;
    (void)l;
    q->c = c;
    int rc = svc_llm_start(q->g->svc, q->model, q->ctx, q->ngl, rt_answered, q, NULL, q->err);
    if (rc < 0)
        loop_complete(c, rc);
}

/* A non-negative integer option of options_json under either name. */
static int opt_uint(json_t *o, const char *name, const char *alias, int64_t max, int64_t *out,
                    genai_error *err)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL)
        v = json_object_get(o, alias);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
        return err_set(err, GENAI_EBAD_ARG, "\"%s\" must be an integer from 0 to %" PRId64, name,
                       max);
    *out = json_integer_value(v);
    return 1;
}

int genai_llm_start(genai *g, const char *model_id, const char *options_json, genai_error *err)
{
    CHECK_G(g, err, "genai_llm_start");
    if (model_id == NULL || model_id[0] == '\0')
        return err_set(err, GENAI_EBAD_ARG, "genai_llm_start: no model id");
    int64_t ctx = 0, ngl = PLAN_NGL_AUTO;
    if (options_json != NULL) {
        json_error_t je;
        json_t *o = json_loads(options_json, 0, &je);
        if (!json_is_object(o)) {
            json_decref(o);
            return err_set(err, GENAI_EBAD_ARG, "options: not a JSON object (%s)", je.text);
        }
        const char *key;
        json_t *v;
        int rc = 0;
        json_object_foreach(o, key, v)
        {
            if (strcmp(key, "ctx") != 0 && strcmp(key, "ctx_size") != 0 &&
                strcmp(key, "ngl") != 0 && strcmp(key, "gpu_layers") != 0) {
                rc = err_set(err, GENAI_EBAD_ARG,
                             "options: unknown key \"%s\" (ctx, ctx_size, ngl, gpu_layers)", key);
                break;
            }
        }
        if (rc == 0)
            rc = opt_uint(o, "ctx", "ctx_size", 1 << 24, &ctx, err);
        if (rc >= 0)
            rc = opt_uint(o, "ngl", "gpu_layers", 100000, &ngl, err);
        json_decref(o);
        if (rc < 0)
            return rc;
    }
    rt_call q = {.g = g, .model = model_id, .ctx = (uint32_t)ctx, .ngl = (int32_t)ngl, .err = err};
    int rc = loop_call_wait(g->l, start_on_loop, &q);
    if (rc < 0 && err != NULL && err->code == 0)
        err_set(err, rc, "genai_llm_start: the context is stopping");
    return rc;
}

static void stop_on_loop(loop *l, void *arg, loop_completion *c)
{
    rt_call *q = arg;
    (void)l;
    q->c = c;
    int rc = svc_llm_stop(q->g->svc, rt_answered, q, NULL, q->err);
    if (rc != 0) /* 1: nothing was loaded */
        loop_complete(c, rc < 0 ? rc : 0);
}

int genai_llm_stop(genai *g, genai_error *err)
{
    CHECK_G(g, err, "genai_llm_stop");
    rt_call q = {.g = g, .err = err};
    int rc = loop_call_wait(g->l, stop_on_loop, &q);
    if (rc < 0 && err != NULL && err->code == 0)
        err_set(err, rc, "genai_llm_stop: the context is stopping");
    return rc;
}

static void status_on_loop(loop *l, void *arg, loop_completion *c)
{
    rt_call *q = arg;
    (void)l;
    loop_complete(c, api_dump_json(svc_llm_status(q->g->svc), &q->json, q->err));
}

int genai_llm_status(genai *g, char **json_out, genai_error *err)
{
    CHECK_G(g, err, "genai_llm_status");
    if (json_out == NULL)
        return err_set(err, GENAI_EBAD_ARG, "genai_llm_status: json_out is NULL");
    rt_call q = {.g = g, .err = err};
    int rc = loop_call_wait(g->l, status_on_loop, &q);
    if (rc < 0)
        return rc;
    *json_out = q.json;
    return 0;
}

/* ---- chat ------------------------------------------------------------------- */

typedef struct chunk {
    struct chunk *next;
    size_t len;
    char text[]; /* NUL-terminated */
} chunk;

typedef struct chat_op {
    genai *g;
    char *body; /* the request as sent (funnel memory) */
    size_t body_len;
    char model[256];
    int stream;

    /* Loop thread only. */
    svc_wait *wait; /* in the gate (or the model lookup) */
    uint64_t ticket;
    int granted;
    http_req *up; /* the transfer to llama-server */
    int decided;  /* the first piece told stream or document */
    int is_sse;
    long status;
    llm_sse sse;
    int saw_done;
    int too_large;
    sbuf doc; /* a document reply, or an error reply's body */
    char upstream_error[512];

    /* Shared, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    chunk *head, *tail;
    size_t queued;
    int finished;
    int rc;
    genai_error err;
    char *reply; /* genai_chat: the whole reply (funnel memory) */
} chat_op;

/* Loop thread: the op's end. Touches nothing of op after the unlock. */
static void chat_finish(chat_op *op, int rc, const char *fmt, ...) GX_PRINTF(3, 4);

static void chat_finish(chat_op *op, int rc, const char *fmt, ...)
{
    if (op->granted) {
        svc_llm_release(op->g->svc, op->ticket);
        op->granted = 0;
    }
    op->wait = NULL;
    op->up = NULL;
    pthread_mutex_lock(&op->mu);
    op->rc = rc;
    if (rc < 0 && fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        op->err.code = rc;
        vsnprintf(op->err.detail, sizeof(op->err.detail), fmt, ap);
        va_end(ap);
    }
    op->finished = 1;
    pthread_cond_broadcast(&op->cv);
    pthread_mutex_unlock(&op->mu);
}

/* The "error.message" of an OpenAI-style error body, into buf. */
static void error_message(const char *text, size_t len, char *buf, size_t n)
{
    json_t *j = json_loadb(text, len, 0, NULL);
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    if (m != NULL)
        snprintf(buf, n, "%s", m);
    else
        snprintf(buf, n, "%.*s", (int)(len < 300 ? len : 300), text);
    json_decref(j);
}

/* Queues one event's data for the caller. Loop thread, inside curl. */
static int on_sse_event(void *arg, const char *data, size_t len)
{
    chat_op *op = arg;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        op->saw_done = 1;
        return 0;
    }
    if (len > 9 && memcmp(data, "{\"error\"", 8) == 0) {
        error_message(data, len, op->upstream_error, sizeof(op->upstream_error));
        return 0;
    }
    if (len > LLM_SSE_LINE_MAX) /* an event joins its lines: cap it as one line */
        return GENAI_ETOO_LARGE;
    chunk *c = mem_alloc(sizeof(*c) + len + 1);
    if (c == NULL)
        return -ENOMEM;
    c->next = NULL;
    c->len = len;
    memcpy(c->text, data, len);
    c->text[len] = '\0';
    pthread_mutex_lock(&op->mu);
    int full = op->queued + len > CHAT_QUEUE_MAX;
    if (!full) {
        if (op->tail != NULL)
            op->tail->next = c;
        else
            op->head = c;
        op->tail = c;
        op->queued += len;
        pthread_cond_broadcast(&op->cv);
    }
    pthread_mutex_unlock(&op->mu);
    if (full) {
        mem_free(c);
        op->too_large = 1;
        return 1;
    }
    return 0;
}

static int on_data(void *arg, const http_chunk *c)
{
    chat_op *op = arg;
    if (!op->decided) {
        op->decided = 1;
        op->status = c->status;
        op->is_sse = c->status == 200 && strncmp(c->content_type, "text/event-stream", 17) == 0;
    }
    if (op->is_sse) {
        int rc = llm_sse_feed(&op->sse, c->data, c->len, on_sse_event, op);
        if (rc == GENAI_ETOO_LARGE)
            op->too_large = 1;
        return rc != 0;
    }
    size_t cap = op->status == 200 ? CHAT_BODY_MAX : CHAT_ERROR_MAX;
    if (op->doc.len + c->len > cap) {
        if (op->status == 200) {
            op->too_large = 1;
            return 1;
        }
        return 0; /* an error body: its start says enough */
    }
    return sbuf_append(&op->doc, c->data, c->len) < 0;
}

static void chat_done(void *arg, const http_result *r)
{
    chat_op *op = arg;
    op->up = NULL;
    if (op->too_large) {
        chat_finish(op, GENAI_ETOO_LARGE, "the LLM server's reply is larger than genai keeps");
    } else if (r->rc < 0 && !op->decided) {
        chat_finish(op, GENAI_EUNAVAILABLE, "the LLM server did not answer: %s", r->error);
    } else if (op->status != 200) {
        char msg[512];
        error_message(sbuf_str(&op->doc), op->doc.len, msg, sizeof(msg));
        chat_finish(op, GENAI_EHTTP, "the LLM server answered %ld: %s", op->status, msg);
    } else if (op->upstream_error[0] != '\0') {
        chat_finish(op, GENAI_EHTTP, "the LLM server failed the request: %s", op->upstream_error);
    } else if (r->rc < 0) {
        chat_finish(op, GENAI_EUNAVAILABLE, "the LLM server ended the reply early: %s", r->error);
    } else if (op->is_sse && !op->saw_done) {
        chat_finish(op, GENAI_EUNAVAILABLE, "the LLM server ended the stream early (no [DONE])");
    } else if (!op->stream && !op->is_sse) {
        op->reply = sbuf_take(&op->doc); /* read by the caller once finished */
        if (op->reply == NULL)
            chat_finish(op, GENAI_EHTTP, "the LLM server sent an empty reply");
        else
            chat_finish(op, 0, NULL);
    } else if (!op->stream) {
        chat_finish(op, GENAI_EHTTP, "the LLM server streamed a reply that was asked whole");
    } else {
        chat_finish(op, 0, NULL);
    }
}

static void chat_granted(void *arg, const svc_reply *r)
{
    chat_op *op = arg;
    op->wait = NULL;
    if (r->code != 0) {
        genai_error e;
        api_reply_error(r, &e);
        chat_finish(op, r->code, "%s", e.detail);
        return;
    }
    op->granted = 1;
    op->ticket = r->ticket;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/chat/completions",
             (unsigned)r->endpoint->port);
    http_req_opts ro = {.method = "POST",
                        .url = url,
                        .bearer = r->endpoint->api_key,
                        .content_type = "application/json",
                        .body = op->body,
                        .body_len = op->body_len,
                        .on_data = on_data};
    int rc = http_client_request(svc_http(op->g->svc), &ro, chat_done, op, &op->up);
    if (rc < 0)
        chat_finish(op, rc, "starting the request to the LLM server");
}

static void chat_start(loop *l, void *arg)
{
    chat_op *op = arg;
    (void)l;
    genai_error e;
    genai_error_clear(&e);
    int rc = svc_llm_request(op->g->svc, op->model, chat_granted, op, &op->wait, &e);
    if (rc < 0)
        chat_finish(op, rc, "%s", e.detail);
}

/* The caller's callback asked to stop: end op now, whatever stage it is in. */
static void chat_cancel(loop *l, void *arg, loop_completion *c)
{
    chat_op *op = arg;
    (void)l;
    pthread_mutex_lock(&op->mu);
    int finished = op->finished;
    pthread_mutex_unlock(&op->mu);
    if (!finished) {
        svc_wait_cancel(op->wait, 0);
        http_req_cancel(op->up); /* curl closes the connection: llama-server stops */
        chat_finish(op, GENAI_ECANCELLED, "stopped by the chunk callback");
    }
    loop_complete(c, 0);
}

static void chunks_free(chunk *c)
{
    while (c != NULL) {
        chunk *next = c->next;
        mem_free(c);
        c = next;
    }
}

/* The request with "stream" set, as text in the funnel's memory; the model
 * into op->model. */
static int chat_prepare(chat_op *op, const char *request_json, int stream, genai_error *err)
{
    if (request_json == NULL)
        return err_set(err, GENAI_EBAD_ARG, "the request is NULL");
    json_error_t je;
    json_t *req = json_loads(request_json, 0, &je);
    if (!json_is_object(req)) {
        json_decref(req);
        return err_set(err, GENAI_EBAD_ARG, "the request is not a JSON object (%s)", je.text);
    }
    const char *model = json_string_value(json_object_get(req, "model"));
    int rc = 0;
    if (model == NULL || model[0] == '\0' || strlen(model) >= sizeof(op->model))
        rc = err_set(err, GENAI_EBAD_ARG, "\"model\" is required (a registered LLM id)");
    else if (!json_is_array(json_object_get(req, "messages")))
        rc = err_set(err, GENAI_EBAD_ARG, "\"messages\" is required (an array)");
    if (rc == 0) {
        snprintf(op->model, sizeof(op->model), "%s", model);
        if (json_object_set_new(req, "stream", json_boolean(stream)) < 0)
            rc = err_set(err, -ENOMEM, "the request");
    }
    char *text = rc == 0 ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (rc < 0)
        return rc;
    op->body = text != NULL ? mem_strdup(text) : NULL;
    free(text); /* json_dumps allocates with malloc */
    if (op->body == NULL)
        return err_set(err, -ENOMEM, "the request");
    op->body_len = strlen(op->body);
    op->stream = stream;
    return 0;
}

static void chat_op_init(chat_op *op, genai *g)
{
    memset(op, 0, sizeof(*op));
    op->g = g;
    pthread_mutex_init(&op->mu, NULL);
    pthread_cond_init(&op->cv, NULL);
    llm_sse_init(&op->sse);
}

static void chat_op_free(chat_op *op)
{
    chunks_free(op->head);
    llm_sse_free(&op->sse);
    sbuf_free(&op->doc);
    mem_free(op->body);
    mem_free(op->reply);
    pthread_cond_destroy(&op->cv);
    pthread_mutex_destroy(&op->mu);
}

/* Posts op and runs the caller's side until op is finished: fn (may be
 * NULL) gets each chunk. Returns op's code with its detail in err. */
static int chat_run(chat_op *op, genai_chat_chunk_fn fn, void *userdata, genai_error *err)
{
    int rc = loop_post(op->g->l, chat_start, op);
    if (rc < 0)
        return err_set(err, rc, "the context is stopping");
    int stopped = 0;
    pthread_mutex_lock(&op->mu);
    for (;;) {
        while (op->head == NULL && !op->finished)
            pthread_cond_wait(&op->cv, &op->mu);
        chunk *c = op->head;
        if (c == NULL)
            break; /* finished and drained */
        op->head = c->next;
        if (op->head == NULL)
            op->tail = NULL;
        op->queued -= c->len;
        pthread_mutex_unlock(&op->mu);
        int stop = fn != NULL && !stopped ? fn(c->text, userdata) : 0;
        mem_free(c);
        if (stop != 0 && !stopped) {
            stopped = 1;
            loop_call_wait(op->g->l, chat_cancel, op); /* op is finished after it */
        }
        pthread_mutex_lock(&op->mu);
    }
    rc = op->rc;
    pthread_mutex_unlock(&op->mu);
    if (stopped)
        rc = err_set(err, GENAI_ECANCELLED, "the chunk callback stopped the stream");
    else if (rc < 0)
        err_set(err, rc, "%s", op->err.detail);
    return rc;
}

int genai_chat(genai *g, const char *request_json, char **response_json, genai_error *err)
{
    CHECK_G(g, err, "genai_chat");
    if (response_json == NULL)
        return err_set(err, GENAI_EBAD_ARG, "genai_chat: response_json is NULL");
    chat_op op;
    chat_op_init(&op, g);
    int rc = chat_prepare(&op, request_json, 0, err);
    if (rc == 0)
        rc = chat_run(&op, NULL, NULL, err);
    if (rc == 0) {
        *response_json = op.reply;
        op.reply = NULL;
    }
    chat_op_free(&op);
    return rc;
}

int genai_chat_stream(genai *g, const char *request_json, genai_chat_chunk_fn fn, void *userdata,
                      genai_error *err)
{
    CHECK_G(g, err, "genai_chat_stream");
    if (fn == NULL)
        return err_set(err, GENAI_EBAD_ARG, "genai_chat_stream: fn is NULL");
    chat_op op;
    chat_op_init(&op, g);
    int rc = chat_prepare(&op, request_json, 1, err);
    if (rc == 0)
        rc = chat_run(&op, fn, userdata, err);
    chat_op_free(&op);
    return rc;
}
