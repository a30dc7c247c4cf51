/*
 * routes_models.c - the model routes backed by the store (see native.h):
 * GET /v1/models and /v1/models/{id}, GET /api/models, GET and DELETE
 * /api/models/{id}, and POST /api/models/pull, which streams the download's
 * progress as Server-Sent Events.
 *
 * Every registry access runs on a libuv worker (uv_queue_work): SQLite
 * blocks, and so does the store's download engine. The worker opens the
 * store, does one thing, closes it, and the after-work callback replies on
 * the loop thread.
 *
 * A pull is longer lived. Its body may name a diffusion model's other
 * files, "components": {"vae": "hf://...", ...}, checked here (a role other
 * than clip_l, clip_g, t5xxl, vae or a value that is not a string is a 400
 * naming the key); components imply kind "diffusion".
 *
 * Its worker runs store_pull, whose progress callback (on the worker)
 * formats an SSE event and queues it under the pull's mutex, replacing a
 * queued "progress" event of the same phase and file rather than growing
 * the queue (a slow client sees the latest numbers, not a backlog), and
 * posts one flush message to the loop unless one is already pending. The
 * loop drains the queue into the stream. When the worker finishes, the
 * after-work callback drains what is left, writes "done" or "error" and
 * ends the stream. The pull is freed by whichever of the after-work
 * callback and the last flush message comes last (a count under the
 * mutex). No libuv handle is involved, so a loop that stops
 * while a pull runs has nothing of the pull's to close.
 *
 * Disconnects: a client that goes away does not cancel the pull (the
 * download is worth finishing; a later pull finds it registered) unless the
 * request said ?cancel_on_disconnect=1. A server that stops cancels it
 * (the partial file stays and the next pull resumes it), so a shutdown is
 * never held up by a download.
 */
#include "http/native.h"

#include "api/shapes.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/sbuf.h"
#include "diffusion/model_file.h"
#include "store/digest.h"
#include "store/prune.h"
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MOD "http"
#define MODELS_PREFIX "/api/models/"
#define V1_MODELS_PREFIX "/v1/models/"
/* Most progress events a pull posts per second; the download engine calls
 * back per received block, far more often than a client can use. */
#define PULL_PROGRESS_MIN_MS 100

static void reply_rc(http_request *req, int rc, const genai_error *err, const char *suggestion)
{
    const char *code;
    int status = http_status_for(rc, &code);
    if (rc == GENAI_ENOT_FOUND)
        code = "model_not_found";
    const char *msg = err != NULL && err->detail[0] != '\0' ? err->detail : genai_strerror(rc);
    http_reply_error(req, status, code, msg, suggestion);
}

/* ---- one-shot registry work ------------------------------------------- */

enum mop { MOP_LIST_OPENAI, MOP_LIST, MOP_GET_OPENAI, MOP_GET, MOP_DELETE, MOP_PRUNE };

typedef struct mwork {
    uv_work_t work;
    http_request *req;
    enum mop op;
    char *id;
    store_prune_opts prune; /* MOP_PRUNE */
    int rc;
    json_t *result; /* built on the worker, handed to the loop */
    genai_error err;
} mwork;

static void mwork_run(uv_work_t *w)
{
    mwork *m = w->data;
    store *s = NULL;
    genai_error_clear(&m->err);
    m->rc = store_open(&s, &m->err);
    if (m->rc < 0)
        return;
    store_db *db = store_registry(s);
    store_model model;
    switch (m->op) {
    case MOP_LIST_OPENAI:
    case MOP_LIST:
        m->rc = api_models_json(db, m->op == MOP_LIST_OPENAI, &m->result, &m->err);
        break;
    case MOP_GET_OPENAI:
    case MOP_GET:
        m->rc = store_db_get_model(db, m->id, &model, &m->err);
        if (m->rc == 0 && m->op == MOP_GET) {
            m->rc = api_model_detail_json(db, &model, &m->result, &m->err);
            store_model_free(&model);
        } else if (m->rc == 0) {
            m->result = api_model_openai_json(&model);
            store_model_free(&model);
            if (m->result == NULL)
                m->rc = err_set(&m->err, -ENOMEM, "describing model %s", m->id);
        }
        break;
    case MOP_DELETE:
        m->rc = store_remove(s, m->id, NULL, &m->err);
        break;
    case MOP_PRUNE: {
        store_prune_report r;
        m->rc = store_prune(db, store_data_dir(s), &m->prune, &r, &m->err);
        if (m->rc == 0) {
            if ((m->result = api_prune_json(&r)) == NULL)
                m->rc = err_set(&m->err, -ENOMEM, "describing the prune");
            store_prune_report_free(&r);
        }
        break;
    }
    }
    store_close(s);
}

/* Appends the provider's models whose ids the registry does not have. */
static void merge_provider(http_server *srv, json_t *data)
{
    json_t *extra = http_server_models(srv);
    size_t i;
    json_t *v;
    json_array_foreach(extra, i, v)
    {
        const char *id = json_string_value(json_object_get(v, "id"));
        int dup = 0;
        size_t k;
        json_t *have;
        json_array_foreach(data, k, have)
        {
            if (id != NULL && strcmp(id, json_string_value(json_object_get(have, "id"))) == 0)
                dup = 1;
        }
        if (!dup)
            json_array_append(data, v);
    }
    json_decref(extra);
}

static void mwork_done(uv_work_t *w, int status)
{
    mwork *m = w->data;
    http_request *req = m->req;
    if (status != 0) {
        http_reply_error(req, 500, "internal", uv_strerror(status), NULL);
    } else if (m->rc < 0) {
        reply_rc(req, m->rc, &m->err,
                 m->rc == GENAI_ENOT_FOUND ? "list the models with GET /api/models" : NULL);
    } else {
        json_t *body = NULL;
        switch (m->op) {
        case MOP_LIST_OPENAI:
            merge_provider(http_req_server(req), m->result);
            body = json_pack("{s:s, s:O}", "object", "list", "data", m->result);
            break;
        case MOP_LIST:
            body = json_pack("{s:O}", "models", m->result);
            break;
        case MOP_GET_OPENAI:
        case MOP_GET:
        case MOP_PRUNE:
            body = json_incref(m->result);
            break;
        case MOP_DELETE:
            body = json_pack("{s:s}", "deleted", m->id);
            events_publish(http_server_events(http_req_server(req)), "model.removed",
                           json_pack("{s:s}", "id", m->id));
            break;
        }
        if (body == NULL)
            http_reply_error(req, 500, "internal", "out of memory", NULL);
        else
            http_reply_json(req, 200, body);
    }
    json_decref(m->result);
    mem_free(m->id);
    mem_free(m);
}

static void mwork_start(http_request *req, enum mop op, const char *id,
                        const store_prune_opts *prune)
{
    mwork *m = mem_calloc(1, sizeof(*m));
    if (m == NULL || (id != NULL && (m->id = mem_strdup(id)) == NULL)) {
        mem_free(m);
        http_reply_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    m->req = req;
    m->op = op;
    if (prune != NULL)
        m->prune = *prune;
    m->work.data = m;
    /* No abort hook: a registry call is short and cannot be interrupted;
     * replying after the client left is harmless (server.h). */
    int rc = uv_queue_work(loop_uv(http_server_loop(http_req_server(req))), &m->work, mwork_run,
                           mwork_done);
    if (rc != 0) {
        mem_free(m->id);
        mem_free(m);
        http_reply_error(req, 500, "internal", uv_strerror(rc), NULL);
    }
}

/* The {id} of /api/models/{id} or /v1/models/{id}, or NULL after replying
 * 400. */
static const char *path_id(http_request *req, const char *prefix)
{
    const char *id = http_req_path(req) + strlen(prefix);
    if (!store_id_valid(id)) {
        http_reply_error(req, 400, "bad_request", "not a valid model id",
                         "ids are 1-128 characters of A-Z a-z 0-9 . _ -");
        return NULL;
    }
    return id;
}

void http_h_v1_models(http_request *req)
{
    mwork_start(req, MOP_LIST_OPENAI, NULL, NULL);
}

void http_h_v1_model_get(http_request *req)
{
    const char *id = path_id(req, V1_MODELS_PREFIX);
    if (id != NULL)
        mwork_start(req, MOP_GET_OPENAI, id, NULL);
}

void http_h_api_models(http_request *req)
{
    mwork_start(req, MOP_LIST, NULL, NULL);
}

void http_h_api_model_get(http_request *req)
{
    const char *id = path_id(req, MODELS_PREFIX);
    if (id != NULL)
        mwork_start(req, MOP_GET, id, NULL);
}

void http_h_api_model_delete(http_request *req)
{
    const char *id = path_id(req, MODELS_PREFIX);
    if (id != NULL)
        mwork_start(req, MOP_DELETE, id, NULL);
}

/* ---- POST /api/models/prune -------------------------------------------- */

/* {"dry_run": bool?, "partials": bool?, "partials_older_than_days": number?}:
 * store_prune on a worker, the report (api_prune_json) as the answer. */
void http_h_api_models_prune(http_request *req)
{
    json_t *body = http_req_json(req);
    if (!json_is_object(body)) {
        http_reply_error(req, 400, "bad_request", "the body must be a JSON object",
                         "{\"dry_run\": true}");
        return;
    }
    store_prune_opts o;
    memset(&o, 0, sizeof(o));
    static const char *const flags[] = {"dry_run", "partials"};
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(body, flags[i]);
        if (v != NULL && !json_is_boolean(v)) {
            char msg[96];
            snprintf(msg, sizeof(msg), "\"%s\" must be true or false", flags[i]);
            http_reply_error(req, 400, "bad_request", msg, NULL);
            return;
        }
        if (i == 0)
            o.dry_run = json_is_true(v);
        else
            o.include_partials = json_is_true(v);
    }
    json_t *days = json_object_get(body, "partials_older_than_days");
    if (days != NULL) {
        double d = json_number_value(days);
        if (!json_is_number(days) || !(d > 0 && d <= 36500)) {
            http_reply_error(
                req, 400, "bad_request",
                "\"partials_older_than_days\" must be a number of days, 0 < d <= 36500", NULL);
            return;
        }
        o.partial_min_age_s = (int64_t)(d * 86400.0);
        if (o.partial_min_age_s < 1)
            o.partial_min_age_s = 1;
    }
    mwork_start(req, MOP_PRUNE, NULL, &o);
}

/* ---- POST /api/models/pull --------------------------------------------- */

typedef struct pull_event {
    struct pull_event *next;
    int progress; /* a "progress" event, replaceable by a newer one */
    store_phase phase;
    unsigned file_index;
    sbuf text; /* the whole SSE event */
} pull_event;

typedef struct pull {
    uv_work_t work;
    loop *l;
    http_request *req; /* loop thread; NULL once the stream ended */
    events *bus;       /* the server's bus, valid while req is */
    atomic_int cancel;
    int cancel_on_disconnect;

    /* Set by the handler, read by the worker. */
    char *ref, *id, *name, *sha256;
    store_kind kind;
    int allow_http;
    const char *comp_role[DM_ROLE__COUNT]; /* static: dm_role_name() */
    char *comp_ref[DM_ROLE__COUNT];
    char *comp_sha[DM_ROLE__COUNT]; /* expected digest of a URL component, or NULL */
    size_t n_comp;

    /* Worker only. */
    uint64_t last_post_ms;
    store_phase last_phase;
    int posted_any;

    /* Under mu: events for the loop, and who still holds the pull: the
     * work (until its after-work callback) and a pending flush message. */
    pthread_mutex_t mu;
    pull_event *head, *tail;
    int flush_pending;
    int refs;

    /* Written by the worker, read by the after-work callback. */
    int rc;
    genai_error err;
    store_model model;
    int have_model;
} pull;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pull_event_free(pull_event *e)
{
    if (e == NULL)
        return;
    sbuf_free(&e->text);
    mem_free(e);
}

static void pull_free(pull *p)
{
    pull_event *e = p->head;
    while (e != NULL) {
        pull_event *next = e->next;
        pull_event_free(e);
        e = next;
    }
    pthread_mutex_destroy(&p->mu);
    if (p->have_model)
        store_model_free(&p->model);
    mem_free(p->ref);
    mem_free(p->id);
    mem_free(p->name);
    mem_free(p->sha256);
    for (size_t i = 0; i < p->n_comp; i++) {
        mem_free(p->comp_ref[i]);
        mem_free(p->comp_sha[i]);
    }
    mem_free(p);
}

/* Drops one reference; the last one frees the pull. Loop thread. */
static void pull_unref(pull *p)
{
    pthread_mutex_lock(&p->mu);
    int last = --p->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (last)
        pull_free(p);
}

/* Formats one SSE event from a JSON value (stolen); NULL when out of memory. */
static pull_event *event_new(const char *type, json_t *data)
{
    pull_event *e = NULL;
    char *text = data != NULL ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    if (text == NULL || (e = mem_calloc(1, sizeof(*e))) == NULL)
        goto out;
    sbuf_printf(&e->text, "event: %s\ndata: %s\n\n", type, text);
    if (sbuf_error(&e->text) < 0) {
        pull_event_free(e);
        e = NULL;
    }
out:
    free(text); /* json_dumps allocates with jansson's allocator (malloc) */
    return e;
}

/* Worker (or loop before the work starts): queues e, coalescing progress. */
static void pull_flush_msg(loop *l, void *arg);

static void pull_queue(pull *p, pull_event *e)
{
    pull_event *drop = NULL;
    pthread_mutex_lock(&p->mu);
    pull_event *t = p->tail;
    if (e->progress && t != NULL && t->progress && t->phase == e->phase &&
        t->file_index == e->file_index) {
        /* Replace the last event's text with the newer numbers. */
        sbuf old = t->text;
        t->text = e->text;
        e->text = old;
        drop = e;
    } else {
        if (t != NULL)
            t->next = e;
        else
            p->head = e;
        p->tail = e;
    }
    int post = !p->flush_pending;
    if (post) {
        p->flush_pending = 1;
        p->refs++;
    }
    pthread_mutex_unlock(&p->mu);
    pull_event_free(drop);
    /* A loop that is stopping refuses the post: the events stay queued and
     * the after-work callback drains them. */
    if (post && loop_post(p->l, pull_flush_msg, p) < 0) {
        pthread_mutex_lock(&p->mu);
        p->flush_pending = 0;
        p->refs--; /* the work's reference is still held: never the last */
        pthread_mutex_unlock(&p->mu);
    }
}

static void on_progress(const store_progress *sp, void *userdata)
{
    pull *p = userdata;
    uint64_t now = mono_ms();
    /* Throttle bytes updates; never drop a phase change. */
    if (p->posted_any && sp->phase == p->last_phase && sp->phase == STORE_PHASE_DOWNLOADING &&
        now - p->last_post_ms < PULL_PROGRESS_MIN_MS && sp->done != sp->total)
        return;
    p->posted_any = 1;
    p->last_phase = sp->phase;
    p->last_post_ms = now;
    json_t *data = json_pack(
        "{s:s, s:s?, s:I, s:I, s:i, s:i, s:i}", "phase", store_phase_name(sp->phase), "file",
        sp->name, "done", (json_int_t)sp->done, "total", (json_int_t)sp->total, "attempt",
        (int)sp->attempt, "file_index", (int)sp->file_index, "file_count", (int)sp->file_count);
    if (data != NULL && sp->reason != NULL)
        json_object_set_new(data, "reason", json_string(sp->reason));
    pull_event *e = event_new("progress", data);
    if (e == NULL)
        return; /* a lost progress line is not worth failing the pull for */
    e->progress = 1;
    e->phase = sp->phase;
    e->file_index = sp->file_index;
    pull_queue(p, e);
}

static void pull_run(uv_work_t *w)
{
    pull *p = w->data;
    store *s = NULL;
    genai_error_clear(&p->err);
    p->rc = store_open(&s, &p->err);
    if (p->rc < 0)
        return;
    store_net net;
    store_net_defaults(&net);
    net.allow_http = p->allow_http || strncmp(net.hf_endpoint, "http://", 7) == 0;
    net.cancel = &p->cancel;
    net.progress = on_progress;
    net.userdata = p;
    store_pull_component comps[DM_ROLE__COUNT];
    for (size_t i = 0; i < p->n_comp; i++)
        comps[i] = (store_pull_component){p->comp_role[i], p->comp_ref[i], p->comp_sha[i]};
    store_pull_opts o = {.ref = p->ref,
                         .id = p->id,
                         .name = p->name,
                         .kind = p->kind,
                         .sha256 = p->sha256,
                         .components = comps,
                         .n_components = p->n_comp};
    p->rc = store_pull(s, &net, &o, &p->model, &p->err);
    p->have_model = p->rc >= 0;
    store_close(s);
}

/* Ends the stream (once) and forgets the request. */
static void pull_detach(pull *p)
{
    if (p->req == NULL)
        return;
    http_request *req = p->req;
    p->req = NULL;
    p->bus = NULL;
    http_req_on_abort(req, NULL, NULL);
    http_stream_end(req);
}

/* Loop thread: moves queued events to the client. */
static void pull_flush(pull *p)
{
    pthread_mutex_lock(&p->mu);
    pull_event *e = p->head;
    p->head = p->tail = NULL;
    p->flush_pending = 0;
    pthread_mutex_unlock(&p->mu);
    while (e != NULL) {
        pull_event *next = e->next;
        if (p->req != NULL) {
            int rc = http_stream_write(p->req, e->text.data, e->text.len);
            if (rc < 0) {
                if (rc == GENAI_ETOO_LARGE)
                    LOG_WARN(MOD, "pull progress: the client does not read; ending its stream");
                pull_detach(p);
            }
        }
        pull_event_free(e);
        e = next;
    }
}

static void pull_flush_msg(loop *l, void *arg)
{
    (void)l;
    pull_flush(arg);
    pull_unref(arg);
}

static void pull_done(uv_work_t *w, int status)
{
    pull *p = w->data;
    pull_flush(p);
    if (status != 0 && p->rc >= 0)
        p->rc = err_set(&p->err, GENAI_EINTERNAL, "pull worker: %s", uv_strerror(status));
    if (p->rc < 0)
        LOG_WARN(MOD, "pull %s failed: %s", p->ref, p->err.detail);
    else
        LOG_INFO(MOD, "pull %s: %s", p->ref, p->rc == 1 ? "already present" : "downloaded");
    if (p->req != NULL) {
        pull_event *e;
        if (p->rc < 0) {
            const char *code;
            int st = http_status_for(p->rc, &code);
            if (p->rc == GENAI_ENOT_FOUND)
                code = "model_not_found";
            e = event_new("error",
                          json_pack("{s:{s:s, s:s, s:i}}", "error", "code", code, "message",
                                    p->err.detail[0] ? p->err.detail : genai_strerror(p->rc),
                                    "status", st));
            events_publish(p->bus, "model.pull.failed",
                           json_pack("{s:s, s:s}", "ref", p->ref, "code", code));
        } else {
            json_t *model = api_model_json(&p->model);
            e = event_new("done", json_pack("{s:s, s:o}", "status",
                                            p->rc == 1 ? "already_present" : "downloaded", "model",
                                            model != NULL ? model : json_null()));
            events_publish(p->bus, "model.pulled",
                           json_pack("{s:s, s:s}", "ref", p->ref, "id", p->model.id));
        }
        if (e != NULL) {
            http_stream_write(p->req, e->text.data, e->text.len);
            pull_event_free(e);
        }
        pull_detach(p);
    }
    pull_unref(p);
}

static void pull_abort(http_request *req, void *arg)
{
    pull *p = arg;
    if (p->cancel_on_disconnect || http_req_stopping(req)) {
        atomic_store(&p->cancel, 1);
        LOG_INFO(MOD, "pull %s: cancelled (%s)", p->ref,
                 http_req_stopping(req) ? "server stopping" : "client went away");
    } else {
        LOG_INFO(MOD, "pull %s: client went away; the download goes on", p->ref);
    }
    pull_detach(p);
}

/* Copies an optional string member; 0, or -1 after replying 400. */
static int opt_string(http_request *req, json_t *body, const char *key, char **out)
{
    json_t *v = json_object_get(body, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        char msg[96];
        snprintf(msg, sizeof(msg), "\"%s\" must be a string", key);
        http_reply_error(req, 400, "bad_request", msg, NULL);
        return -1;
    }
    if ((*out = mem_strdup(json_string_value(v))) == NULL) {
        http_reply_error(req, 500, "internal", "out of memory", NULL);
        return -1;
    }
    return 0;
}

/* Copies the optional "components" object, {"vae": "hf://...", ...}, where a
 * value may also be {"ref": "https://...", "sha256": "64 hex"} (the digest a
 * URL component is verified against); 0, or -1 after replying 400 naming the
 * key at fault. */
static int opt_components(http_request *req, json_t *body, pull *p)
{
    json_t *v = json_object_get(body, "components");
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_object(v)) {
        http_reply_error(req, 400, "bad_request", "\"components\" must be an object",
                         "{\"components\": {\"vae\": \"hf://owner/repo/ae.safetensors\"}}");
        return -1;
    }
    const char *key;
    json_t *ref;
    json_object_foreach(v, key, ref)
    {
        char msg[160];
        enum dm_role role;
        if (dm_role_parse(key, &role, NULL) < 0 || role == DM_ROLE_MODEL) {
            snprintf(msg, sizeof(msg), "\"components\": unknown role \"%.64s\"", key);
            http_reply_error(req, 400, "bad_request", msg, "clip_l, clip_g, t5xxl or vae");
            return -1;
        }
        json_t *sha = NULL;
        if (json_is_object(ref)) {
            sha = json_object_get(ref, "sha256");
            ref = json_object_get(ref, "ref");
            if (sha != NULL &&
                (!json_is_string(sha) || !store_sha256_is_hex(json_string_value(sha)))) {
                snprintf(msg, sizeof(msg), "\"components\": \"%s\": \"sha256\" needs 64 hex digits",
                         key);
                http_reply_error(req, 400, "bad_request", msg, NULL);
                return -1;
            }
        }
        if (!json_is_string(ref) || json_string_length(ref) == 0) {
            snprintf(msg, sizeof(msg),
                     "\"components\": \"%s\" must be a reference (a string, or an object with "
                     "\"ref\")",
                     key);
            http_reply_error(req, 400, "bad_request", msg, "hf://owner/repo/path/file or a URL");
            return -1;
        }
        /* An object holds each key once, and there are DM_ROLE__COUNT - 1
         * component roles, so this never runs out of room. */
        size_t k = p->n_comp;
        p->comp_role[k] = dm_role_name(role);
        p->comp_ref[k] = mem_strdup(json_string_value(ref));
        p->comp_sha[k] = sha != NULL ? mem_strdup(json_string_value(sha)) : NULL;
        p->n_comp++; /* counted now, so pull_free frees what was copied */
        if (p->comp_ref[k] == NULL || (sha != NULL && p->comp_sha[k] == NULL)) {
            http_reply_error(req, 500, "internal", "out of memory", NULL);
            return -1;
        }
    }
    return 0;
}

void http_h_api_model_pull(http_request *req)
{
    json_t *body = http_req_json(req);
    if (!json_is_object(body)) {
        http_reply_error(req, 400, "bad_request", "the body must be a JSON object",
                         "{\"ref\": \"owner/repo:Q4_K_M\"}");
        return;
    }
    pull *p = mem_calloc(1, sizeof(*p));
    if (p == NULL) {
        http_reply_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    pthread_mutex_init(&p->mu, NULL);
    char *kind = NULL;
    if (opt_string(req, body, "ref", &p->ref) < 0 || opt_string(req, body, "id", &p->id) < 0 ||
        opt_string(req, body, "name", &p->name) < 0 ||
        opt_string(req, body, "sha256", &p->sha256) < 0 ||
        opt_string(req, body, "kind", &kind) < 0 || opt_components(req, body, p) < 0)
        goto fail_replied;
    if (p->ref == NULL || p->ref[0] == '\0') {
        http_reply_error(req, 400, "bad_request", "\"ref\" is required",
                         "a Hugging Face reference (owner/repo:QUANT) or an https URL");
        goto fail_replied;
    }
    if (kind != NULL && store_kind_parse(kind, &p->kind) < 0) {
        http_reply_error(req, 400, "bad_request", "\"kind\" must be \"llm\" or \"diffusion\"",
                         NULL);
        goto fail_replied;
    }
    if (p->n_comp > 0) {
        /* Components imply a diffusion model; an LLM has none. */
        if (kind == NULL) {
            p->kind = STORE_KIND_DIFFUSION;
        } else if (p->kind != STORE_KIND_DIFFUSION) {
            http_reply_error(req, 400, "bad_request",
                             "\"components\" belong to a model of kind \"diffusion\"", NULL);
            goto fail_replied;
        }
    }
    if (p->sha256 != NULL && !store_sha256_is_hex(p->sha256)) {
        http_reply_error(req, 400, "bad_request", "\"sha256\" must be 64 hex digits", NULL);
        goto fail_replied;
    }
    if (p->id != NULL && !store_id_valid(p->id)) {
        http_reply_error(req, 400, "bad_request", "\"id\" is not a valid model id", NULL);
        goto fail_replied;
    }
    json_t *ah = json_object_get(body, "allow_http");
    if (ah != NULL && !json_is_boolean(ah)) {
        http_reply_error(req, 400, "bad_request", "\"allow_http\" must be true or false", NULL);
        goto fail_replied;
    }
    p->allow_http = json_is_true(ah);
    const char *cod = http_req_query(req, "cancel_on_disconnect");
    p->cancel_on_disconnect = cod != NULL && strcmp(cod, "1") == 0;
    mem_free(kind);
    kind = NULL;

    http_server *srv = http_req_server(req);
    p->l = http_server_loop(srv);
    static const char *const headers[] = {"Cache-Control", "no-store", "X-Accel-Buffering", "no",
                                          NULL};
    if (http_stream_begin(req, 200, "text/event-stream", headers) < 0) {
        http_reply_error(req, 500, "internal", "out of memory", NULL);
        pull_free(p);
        return;
    }
    p->req = req;
    p->bus = http_server_events(srv);
    http_req_on_abort(req, pull_abort, p);
    p->work.data = p;
    p->refs = 1; /* the work's */
    int rc = uv_queue_work(loop_uv(p->l), &p->work, pull_run, pull_done);
    if (rc != 0) {
        LOG_ERROR(MOD, "cannot queue a pull: %s", uv_strerror(rc));
        pull_detach(p);
        pull_free(p);
        return;
    }
    LOG_INFO(MOD, "pull %s: started", p->ref);
    events_publish(p->bus, "model.pull.started", json_pack("{s:s}", "ref", p->ref));
    /* The first bytes flush the headers, so the client sees the stream begin
     * before the first progress event. */
    static const char hello[] = ": genai pull\n\n";
    http_stream_write(req, hello, sizeof(hello) - 1);
    return;

fail_replied:
    mem_free(kind);
    pull_free(p);
}
