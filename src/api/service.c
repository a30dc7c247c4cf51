/*
 * service.c - the orchestrator behind the registry (see service.h).
 *
 * Every pending call is a svc_wait on one list. A wait goes through at most
 * three stages: a registry lookup on a libuv worker (the registry is opened
 * per lookup, as the HTTP model routes do, so the daemon and the CLI share
 * it as two processes), then the orchestrator (its gate for an LLM request,
 * an image job, a load or an unload), then one final callback. The
 * orchestrator's events finish the waits that depend on them: llm_ready and
 * llm_failed finish starts, reclaimed finishes unloads, image_done finishes
 * image jobs. A wait is unlinked before its final callback runs, so the
 * callback may start or cancel other waits.
 *
 * A lookup cannot be interrupted: a wait cancelled (or a service freed)
 * meanwhile is only marked, and the after-work callback frees it. The
 * service's memory goes with the last lookup (svc_free).
 */
#include "api/service.h"

#include "api/reserve_api.h"
#include "core/alloc.h"
#include "core/events.h"
#include "core/log.h"
#include "core/metrics.h"
#include "orch/reserve.h"
#include "orch/watch.h"
#include "store/dmodel.h"
#include "store/footprint_db.h"
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MOD "svc"
#define DEF_QUEUE_TIMEOUT_S 300u

enum wait_kind { W_LLM, W_START, W_STOP, W_IMAGE };

struct svc_wait {
    svc_wait *prev, *next;
    svc *s;
    enum wait_kind kind;
    svc_fn fn; /* W_LLM, W_START, W_STOP */
    svc_image_cbs cbs;
    void *arg;
    int in_lookup; /* a worker reads the registry for it */
    int cancelled; /* forgotten during the lookup: freed by lookup_done */
    int in_gate;   /* W_LLM: waiting in the orchestrator's gate */
    uint64_t ticket;
    uint64_t job; /* W_IMAGE, once submitted */
    char *model;  /* NULL: W_IMAGE with no model named */
    uint32_t ctx;
    int32_t ngl;
    img_request req; /* W_IMAGE: owned strings */
};

struct svc {
    uv_loop_t *uv;
    orch *o;
    http_client *http;
    metrics *m;
    unsigned queue_timeout_s;
    svc_wait *waits;
    int n_lookups; /* lookups in flight */
    int freed;
    /* svc_opts.share: sharing the machine (docs/budgets.md). */
    orch_watch *watch;
    orch_rsv *rsv;
    api_rsv_waits *rsv_waits;
    store_fpdb *fpdb; /* learned footprints kept in the registry, or NULL */
};

typedef struct lookup {
    uv_work_t work;
    svc *s;
    svc_wait *w;
    char *id; /* NULL: the only diffusion model */
    int want_diffusion;
    int rc;
    genai_error err;
    store_model m;
    int have_m;
} lookup;

/* ---- waits ---------------------------------------------------------------- */

static void link_wait(svc *s, svc_wait *w)
{
    w->next = s->waits;
    w->prev = NULL;
    if (s->waits != NULL)
        s->waits->prev = w;
    s->waits = w;
}

static void unlink_wait(svc_wait *w)
{
    svc *s = w->s;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else if (s->waits == w)
        s->waits = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

static void wait_free(svc_wait *w)
{
    if (w == NULL)
        return;
    mem_free(w->model);
    img_request_free(&w->req);
    mem_free(w);
}

static svc_wait *wait_new(svc *s, enum wait_kind kind, const char *model, void *arg)
{
    svc_wait *w = mem_calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->s = s;
    w->kind = kind;
    w->arg = arg;
    if (model != NULL && (w->model = mem_strdup(model)) == NULL) {
        mem_free(w);
        return NULL;
    }
    return w;
}

/* The stable name and HTTP status of an error code (docs/api.md). */
static void classify(int code, svc_reply *r)
{
    r->code = code;
    switch (code) {
    case 0:
        r->error = NULL;
        r->http_status = 200;
        return;
    case GENAI_ENOT_FOUND:
        r->error = "model_not_found";
        r->http_status = 404;
        return;
    case GENAI_EBAD_ARG:
    case GENAI_EUNSUPPORTED:
        r->error = "bad_request";
        r->http_status = 400;
        return;
    case GENAI_EBUSY:
        r->error = "queue_full";
        r->http_status = 503;
        return;
    case GENAI_EUNAVAILABLE:
        r->error = "unavailable";
        r->http_status = 503;
        return;
    case GENAI_ECANCELLED:
        r->error = "cancelled";
        r->http_status = 499;
        return;
    case GENAI_ETIMEOUT:
        r->error = "timeout";
        r->http_status = 504;
        return;
    case GENAI_ENO_FIT:
        r->error = "does_not_fit";
        r->http_status = 507;
        return;
    default:
        r->error = "internal";
        r->http_status = 500;
        return;
    }
}

static void reply_error(svc_fn fn, void *arg, int code, const char *error, int status,
                        const char *detail, const char *suggestion)
{
    svc_reply r;
    memset(&r, 0, sizeof(r));
    classify(code, &r);
    if (error != NULL) {
        r.error = error;
        r.http_status = status;
    }
    r.detail = detail != NULL && detail[0] != '\0' ? detail : genai_strerror(code);
    r.suggestion = suggestion;
    if (fn != NULL)
        fn(arg, &r);
}

/* Finishes w with an error: unlinks, calls its final callback, frees. */
static void finish_error(svc_wait *w, int code, const char *error, int status, const char *detail,
                         const char *suggestion)
{
    unlink_wait(w);
    svc_fn fn = w->kind == W_IMAGE ? w->cbs.submitted : w->fn;
    if (w->kind == W_IMAGE && w->job != 0)
        fn = w->cbs.done;
    reply_error(fn, w->arg, code, error, status, detail, suggestion);
    wait_free(w);
}

static void finish_ok(svc_wait *w)
{
    unlink_wait(w);
    svc_reply r;
    memset(&r, 0, sizeof(r));
    classify(0, &r);
    r.detail = "";
    if (w->fn != NULL)
        w->fn(w->arg, &r);
    wait_free(w);
}

/* ---- registry lookups (worker thread) -------------------------------------- */

static void lookup_run(uv_work_t *wk)
{
    lookup *lk = wk->data;
    store *st = NULL;
    genai_error_clear(&lk->err);
    lk->rc = store_open(&st, &lk->err);
    if (lk->rc < 0)
        return;
    store_db *db = store_registry(st);
    if (lk->id == NULL) {
        /* No model named: the only diffusion model there is. */
        store_model *all = NULL;
        size_t n = 0, found = 0, pick = 0;
        lk->rc = store_db_list_models(db, &all, &n, &lk->err);
        for (size_t i = 0; lk->rc == 0 && i < n; i++)
            if (all[i].kind == STORE_KIND_DIFFUSION) {
                found++;
                pick = i;
            }
        if (lk->rc == 0 && found != 1)
            lk->rc = err_set(&lk->err, found == 0 ? GENAI_ENOT_FOUND : GENAI_EBAD_ARG,
                             found == 0 ? "no image model is registered"
                                        : "several image models are registered; name one in "
                                          "\"model\"");
        if (lk->rc == 0 && (lk->id = mem_strdup(all[pick].id)) == NULL)
            lk->rc = err_set(&lk->err, -ENOMEM, "model id");
        store_model_list_free(all, n);
    }
    if (lk->rc == 0) {
        lk->rc = store_db_get_model(db, lk->id, &lk->m, &lk->err);
        lk->have_m = lk->rc == 0;
        if (lk->rc == GENAI_ENOT_FOUND)
            err_set(&lk->err, GENAI_ENOT_FOUND, "model '%s' is not registered", lk->id);
    }
    store_close(st);
}

static void lookup_free(lookup *lk)
{
    if (lk->have_m)
        store_model_free(&lk->m);
    mem_free(lk->id);
    mem_free(lk);
}

static void lookup_done(uv_work_t *wk, int status);

static int lookup_start(svc *s, svc_wait *w, const char *id, int want_diffusion, genai_error *err)
{
    lookup *lk = mem_calloc(1, sizeof(*lk));
    if (lk == NULL)
        return err_set(err, -ENOMEM, "model lookup");
    if (id != NULL && (lk->id = mem_strdup(id)) == NULL) {
        mem_free(lk);
        return err_set(err, -ENOMEM, "model lookup");
    }
    lk->s = s;
    lk->w = w;
    lk->want_diffusion = want_diffusion;
    lk->work.data = lk;
    int rc = uv_queue_work(s->uv, &lk->work, lookup_run, lookup_done);
    if (rc != 0) {
        lookup_free(lk);
        return err_set(err, GENAI_EINTERNAL, "queueing the model lookup: %s", uv_strerror(rc));
    }
    s->n_lookups++;
    w->in_lookup = 1;
    link_wait(s, w);
    return 0;
}

/* ---- the LLM ------------------------------------------------------------------ */

static void on_grant(void *arg, const orch_llm_grant *g)
{
    svc_wait *w = arg;
    w->in_gate = 0;
    if (g->code != 0) {
        char why[GENAI_ERROR_DETAIL_MAX];
        snprintf(why, sizeof(why), "%s", g->detail ? g->detail : genai_strerror(g->code));
        unlink_wait(w);
        svc_reply r;
        memset(&r, 0, sizeof(r));
        classify(g->code, &r);
        r.detail = why;
        r.retry_after_s = g->retry_after_s;
        r.waited_ms = g->waited_ms;
        if (w->fn != NULL)
            w->fn(w->arg, &r);
        wait_free(w);
        return;
    }
    unlink_wait(w);
    svc_reply r;
    memset(&r, 0, sizeof(r));
    classify(0, &r);
    r.detail = "";
    r.ticket = g->ticket;
    r.endpoint = &g->endpoint;
    r.waited_ms = g->waited_ms;
    if (w->fn != NULL)
        w->fn(w->arg, &r);
    else
        orch_llm_release(w->s->o, g->ticket);
    wait_free(w);
}

static void acquire(svc_wait *w)
{
    svc *s = w->s;
    genai_error e;
    genai_error_clear(&e);
    int ra = 0;
    uint64_t deadline = orch_now_ms() + (uint64_t)s->queue_timeout_s * 1000u;
    int rc = orch_llm_acquire(s->o, deadline, on_grant, w, &w->ticket, &ra, &e);
    if (rc < 0) {
        unlink_wait(w);
        svc_reply r;
        memset(&r, 0, sizeof(r));
        classify(rc, &r);
        r.detail = e.detail;
        r.retry_after_s = ra;
        if (w->fn != NULL)
            w->fn(w->arg, &r);
        wait_free(w);
        return;
    }
    w->in_gate = 1;
}

/* Makes model (registered with file path) the orchestrator's LLM unless it
 * already is. 0, or an error answered to w (then w is gone). */
static int select_llm(svc_wait *w, const char *path, int reconfigure)
{
    svc *s = w->s;
    const char *cur = orch_llm_model_id(s->o);
    if (cur != NULL && strcmp(cur, w->model) == 0 && !reconfigure)
        return 0;
    llm_rt_config cfg;
    llm_rt_config_init(&cfg);
    cfg.model = path;
    cfg.model_id = w->model;
    if (w->kind == W_START) {
        cfg.ctx = w->ctx;
        cfg.ngl = w->ngl;
    }
    genai_error e;
    genai_error_clear(&e);
    int rc = orch_llm_configure(s->o, &cfg, &e);
    if (rc == GENAI_EBUSY) {
        char msg[512];
        snprintf(msg, sizeof(msg), "model %s is not loaded; one LLM at a time (%s is %s)", w->model,
                 cur != NULL ? cur : "another model",
                 orch_llm_state_name(orch_llm_status(s->o, NULL)));
        finish_error(w, rc, "model_not_loaded", 400, msg,
                     "stop the loaded model first (POST /api/llm/stop, genai_llm_stop)");
        return rc;
    }
    if (rc < 0) {
        finish_error(w, rc, NULL, 0, e.detail, NULL);
        return rc;
    }
    LOG_INFO(MOD, "LLM model is now %s (%s)", w->model, path);
    return 0;
}

static void llm_looked_up(svc_wait *w, lookup *lk)
{
    svc *s = w->s;
    if (lk->rc < 0) {
        finish_error(w, lk->rc, NULL, 0, lk->err.detail,
                     lk->rc == GENAI_ENOT_FOUND ? "pull it first: genai pull OWNER/REPO[:QUANT]"
                                                : NULL);
        return;
    }
    if (lk->m.kind != STORE_KIND_LLM || lk->m.n_files == 0) {
        char msg[300];
        snprintf(msg, sizeof(msg), "model %s is a %s model, not an LLM", w->model,
                 store_kind_name(lk->m.kind));
        finish_error(w, GENAI_EBAD_ARG, "wrong_model_kind", 400, msg,
                     "use /v1/images/generations for image models");
        return;
    }
    const char *path = lk->m.files[0].path;
    if (w->kind == W_LLM) {
        if (select_llm(w, path, 0) == 0)
            acquire(w);
        return;
    }
    /* W_START */
    const char *cur = orch_llm_model_id(s->o);
    orch_llm_state st = orch_llm_status(s->o, NULL);
    int same = cur != NULL && strcmp(cur, w->model) == 0;
    if (same && st == ORCH_LLM_READY) {
        finish_ok(w);
        return;
    }
    int idle = st == ORCH_LLM_ABSENT || st == ORCH_LLM_FAILED;
    if (select_llm(w, path, same && idle) < 0)
        return;
    genai_error e;
    genai_error_clear(&e);
    int rc = orch_llm_load(s->o, &e);
    if (rc < 0)
        finish_error(w, rc, NULL, 0, e.detail, NULL);
    /* else: llm_ready or llm_failed finishes it */
}

int svc_llm_request(svc *s, const char *model, svc_fn fn, void *arg, svc_wait **out,
                    genai_error *err)
{
    if (model == NULL || model[0] == '\0')
        return err_set(err, GENAI_EBAD_ARG, "\"model\" is required");
    svc_wait *w = wait_new(s, W_LLM, model, arg);
    if (w == NULL)
        return err_set(err, -ENOMEM, "LLM request");
    w->fn = fn;
    const char *cur = orch_llm_model_id(s->o);
    if (cur != NULL && strcmp(cur, model) == 0) {
        /* The configured model: no registry read on the hot path. */
        link_wait(s, w);
        if (out != NULL)
            *out = w;
        acquire(w); /* answers, if at all, from the loop later */
        return 0;
    }
    int rc = lookup_start(s, w, model, 0, err);
    if (rc < 0) {
        wait_free(w);
        return rc;
    }
    if (out != NULL)
        *out = w;
    return 0;
}

void svc_llm_release(svc *s, uint64_t ticket)
{
    if (s != NULL && !s->freed)
        orch_llm_release(s->o, ticket);
}

int svc_llm_start(svc *s, const char *model, uint32_t ctx, int32_t ngl, svc_fn fn, void *arg,
                  svc_wait **out, genai_error *err)
{
    if (model == NULL || model[0] == '\0')
        return err_set(err, GENAI_EBAD_ARG, "\"model\" is required");
    svc_wait *w = wait_new(s, W_START, model, arg);
    if (w == NULL)
        return err_set(err, -ENOMEM, "LLM start");
    w->fn = fn;
    w->ctx = ctx;
    w->ngl = ngl;
    int rc = lookup_start(s, w, model, 0, err);
    if (rc < 0) {
        wait_free(w);
        return rc;
    }
    if (out != NULL)
        *out = w;
    return 0;
}

int svc_llm_stop(svc *s, svc_fn fn, void *arg, svc_wait **out, genai_error *err)
{
    genai_error e;
    genai_error_clear(&e);
    int rc = orch_llm_unload(s->o, &e);
    if (rc == GENAI_ENOT_FOUND || rc == 1)
        return 1; /* nothing loaded */
    if (rc < 0)
        return err_set(err, rc, "%s", e.detail);
    svc_wait *w = wait_new(s, W_STOP, NULL, arg);
    if (w == NULL)
        return err_set(err, -ENOMEM, "LLM stop");
    w->fn = fn;
    link_wait(s, w);
    if (out != NULL)
        *out = w;
    return 0;
}

json_t *svc_llm_status(svc *s)
{
    const char *reason = "";
    orch_llm_state st = orch_llm_status(s->o, &reason);
    const char *model = orch_llm_model_id(s->o);
    llm_runtime *rt = orch_llm_runtime(s->o);
    const llm_rt_plan *pl = rt != NULL ? llm_runtime_plan(rt) : NULL;
    json_t *plan = json_null();
    if (pl != NULL && st != ORCH_LLM_ABSENT) {
        uint64_t gpu = 0;
        for (uint32_t i = 0; i < pl->demand.n_gpus; i++)
            gpu += pl->demand.gpu[i];
        plan = json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:s}", "gpu_layers",
                         (int)pl->choice.cfg.n_gpu_layers, "layers", (json_int_t)pl->n_layer + 1,
                         "ctx", (json_int_t)pl->choice.shape.n_ctx, "slots",
                         (json_int_t)pl->choice.shape.n_seq, "gpu_bytes", (json_int_t)gpu,
                         "host_bytes", (json_int_t)(pl->demand.host_anon + pl->demand.host_file),
                         "tier", plan_tier_name(pl->demand.tier));
    }
    const orch_stats *os = orch_get_stats(s->o);
    json_t *stats = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I}", "offloads", (json_int_t)os->offloads, "reloads",
        (json_int_t)os->reloads, "last_load_ms", (json_int_t)os->last_load_ms, "last_reclaim_ms",
        (json_int_t)os->last_reclaim_ms, "last_reload_ms", (json_int_t)os->last_reload_ms,
        "requests_granted", (json_int_t)os->requests_granted);
    pid_t pid = orch_llm_pid(s->o);
    return json_pack("{s:s?, s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:o}", "model", model, "state",
                     orch_llm_state_name(st), "reason", reason ? reason : "", "pid",
                     (json_int_t)pid, "waiting", (json_int_t)orch_llm_waiting(s->o), "in_flight",
                     (json_int_t)orch_llm_inflight(s->o), "images_pending",
                     (json_int_t)orch_images_pending(s->o), "plan", plan ? plan : json_null(),
                     "stats", stats ? stats : json_null());
}

json_t *svc_runtimes(svc *s)
{
    json_t *arr = json_array();
    if (arr == NULL)
        return NULL;
    if (orch_llm_status(s->o, NULL) != ORCH_LLM_ABSENT) {
        json_t *llm = svc_llm_status(s);
        if (llm == NULL || json_object_set_new(llm, "kind", json_string("llm")) != 0 ||
            json_array_append_new(arr, llm) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    size_t jobs = orch_images_pending(s->o);
    if (jobs > 0 && json_array_append_new(arr, json_pack("{s:s, s:s, s:I}", "kind", "image",
                                                         "state", "busy", "jobs",
                                                         (json_int_t)jobs)) != 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* ---- images ------------------------------------------------------------------ */

static int parse_image(svc_wait *w, const json_t *body, genai_error *err);

static int get_uint(const json_t *body, const char *key, uint64_t max, int *has, uint64_t *out,
                    genai_error *err)
{
    json_t *v = json_object_get(body, key);
    *has = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return err_set(err, GENAI_EBAD_ARG, "\"%s\" must be an integer from 0 to %" PRIu64, key,
                       max);
    *has = 1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_str(const json_t *body, const char *key, size_t max, char **out, genai_error *err)
{
    json_t *v = json_object_get(body, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) > max)
        return err_set(err, GENAI_EBAD_ARG, "\"%s\" must be a string of at most %zu bytes", key,
                       max);
    if (memchr(json_string_value(v), '\0', json_string_length(v)) != NULL)
        return err_set(err, GENAI_EBAD_ARG, "\"%s\" contains a NUL byte", key);
    *out = mem_strdup(json_string_value(v));
    if (*out == NULL)
        return err_set(err, -ENOMEM, "%s", key);
    return 0;
}

int svc_image_parse(const json_t *body, img_request *out, char **model, genai_error *err)
{
    svc_wait w;
    memset(&w, 0, sizeof(w));
    int rc = parse_image(&w, body, err);
    if (rc < 0) {
        img_request_free(&w.req);
        mem_free(w.model);
        return rc;
    }
    *out = w.req;
    *model = w.model;
    return 0;
}

/* The request fields into w->req (strings owned) and w->model. */
static int parse_image(svc_wait *w, const json_t *body, genai_error *err)
{
    img_request *r = &w->req;
    if (!json_is_object(body))
        return err_set(err, GENAI_EBAD_ARG, "the body must be a JSON object");
    json_t *p = json_object_get(body, "prompt");
    if (!json_is_string(p) || json_string_length(p) == 0)
        return err_set(err, GENAI_EBAD_ARG, "\"prompt\" is required (a non-empty string)");
    int rc;
    if ((rc = get_str(body, "prompt", IMG_PROMPT_MAX, &r->prompt, err)) < 0 ||
        (rc = get_str(body, "negative_prompt", IMG_PROMPT_MAX, &r->negative_prompt, err)) < 0 ||
        (rc = get_str(body, "sampler", 64, &r->sampler, err)) < 0 ||
        (rc = get_str(body, "scheduler", 64, &r->scheduler, err)) < 0 ||
        (rc = get_str(body, "model", 256, &w->model, err)) < 0)
        return rc;
    json_t *fmt = json_object_get(body, "response_format");
    if (fmt != NULL && !json_is_null(fmt) &&
        (!json_is_string(fmt) || strcmp(json_string_value(fmt), "b64_json") != 0))
        return err_set(err, GENAI_EBAD_ARG,
                       "\"response_format\" must be \"b64_json\" (genai keeps no image URLs)");
    json_t *size = json_object_get(body, "size");
    if (size != NULL && !json_is_null(size)) {
        const char *t = json_string_value(size);
        unsigned wd = 0, ht = 0;
        char tail;
        if (t == NULL || sscanf(t, "%ux%u%c", &wd, &ht, &tail) != 2)
            return err_set(err, GENAI_EBAD_ARG,
                           "\"size\" must be \"WIDTHxHEIGHT\", e.g. \"512x512\"");
        r->width = wd;
        r->height = ht;
    }
    int has;
    uint64_t v = 0;
    if ((rc = get_uint(body, "n", IMG_BATCH_MAX, &has, &v, err)) < 0)
        return rc;
    if (has && v == 0)
        return err_set(err, GENAI_EBAD_ARG, "\"n\" must be from 1 to %u", IMG_BATCH_MAX);
    r->batch_count = has ? (uint32_t)v : 1;
    if ((rc = get_uint(body, "steps", IMG_STEPS_MAX, &has, &v, err)) < 0)
        return rc;
    if (has && v == 0)
        return err_set(err, GENAI_EBAD_ARG, "\"steps\" must be from 1 to %u", IMG_STEPS_MAX);
    r->steps = has ? (uint32_t)v : 0;
    if ((rc = get_uint(body, "seed", INT64_MAX, &has, &v, err)) < 0)
        return rc;
    r->has_seed = has;
    r->seed = (int64_t)v;
    json_t *cfg = json_object_get(body, "cfg_scale");
    if (cfg != NULL && !json_is_null(cfg)) {
        if (!json_is_number(cfg))
            return err_set(err, GENAI_EBAD_ARG, "\"cfg_scale\" must be a number");
        r->has_cfg = 1;
        r->cfg_scale = json_number_value(cfg);
    }
    json_t *pol = json_object_get(body, "policy");
    if (pol != NULL && !json_is_null(pol)) {
        const char *t = json_string_value(pol);
        if (t != NULL && strcmp(t, "adjust") == 0)
            r->policy = DM_POLICY_ADJUST;
        else if (t != NULL && strcmp(t, "strict") == 0)
            r->policy = DM_POLICY_STRICT;
        else
            return err_set(err, GENAI_EBAD_ARG, "\"policy\" must be \"adjust\" or \"strict\"");
    }
    return 0;
}

/* Points w->req at the registered model's files (copies) by role. */
static int image_files(svc_wait *w, const store_model *m, genai_error *err)
{
    dm_component comps[DM_ROLE__COUNT];
    size_t n = 0;
    int rc = store_dm_components(m, comps, &n, err);
    if (rc < 0)
        return rc;
    img_request *r = &w->req;
    const char *main_file = NULL;
    int split = 0;
    char **slot;
    for (size_t i = 0; i < n; i++) {
        switch (comps[i].role) {
        case DM_ROLE_MODEL:
            main_file = comps[i].path;
            continue;
        case DM_ROLE_CLIP_L:
            slot = &r->clip_l;
            split = 1;
            break;
        case DM_ROLE_CLIP_G:
            slot = &r->clip_g;
            split = 1;
            break;
        case DM_ROLE_T5XXL:
            slot = &r->t5xxl;
            split = 1;
            break;
        default:
            slot = &r->vae;
            break;
        }
        mem_free(*slot);
        if ((*slot = mem_strdup(comps[i].path)) == NULL)
            return err_set(err, -ENOMEM, "image request");
    }
    if (main_file == NULL)
        return err_set(err, GENAI_ECORRUPT, "model %s has no file with role model", m->id);
    char **main_slot = split ? &r->diffusion_model : &r->model;
    if ((*main_slot = mem_strdup(main_file)) == NULL)
        return err_set(err, -ENOMEM, "image request");
    if (m->settings_json != NULL && (r->settings_json = mem_strdup(m->settings_json)) == NULL)
        return err_set(err, -ENOMEM, "image request");
    return 0;
}

static void image_looked_up(svc_wait *w, lookup *lk)
{
    svc *s = w->s;
    if (lk->rc < 0) {
        finish_error(w, lk->rc, NULL, 0, lk->err.detail,
                     lk->rc == GENAI_ENOT_FOUND ? "add one first: genai pull / genai add" : NULL);
        return;
    }
    if (lk->m.kind != STORE_KIND_DIFFUSION) {
        char msg[300];
        snprintf(msg, sizeof(msg), "model %s is an LLM, not an image model", lk->m.id);
        finish_error(w, GENAI_EBAD_ARG, "wrong_model_kind", 400, msg,
                     "use /v1/chat/completions for LLMs");
        return;
    }
    genai_error e;
    genai_error_clear(&e);
    int rc = image_files(w, &lk->m, &e);
    uint64_t id = 0;
    if (rc == 0)
        rc = orch_image_submit(s->o, &w->req, NULL, &id, &e);
    if (rc < 0) {
        /* The resolver names the missing role or the field out of range. */
        const char *code = rc == GENAI_ENOT_FOUND ? "missing_component" : NULL;
        int status = rc == GENAI_ENOT_FOUND ? 400 : 0;
        if (rc == GENAI_EBUSY) {
            code = "too_many_jobs";
            status = 429;
        }
        finish_error(w, rc, code, status, e.detail, NULL);
        return;
    }
    w->job = id;
    svc_reply r;
    memset(&r, 0, sizeof(r));
    classify(0, &r);
    r.detail = "";
    r.job = id;
    if (w->cbs.submitted != NULL)
        w->cbs.submitted(w->arg, &r); /* the job cannot finish before the loop runs again */
    if (w->cbs.done == NULL && w->cbs.progress == NULL) {
        unlink_wait(w); /* nothing more to tell: poll with svc_image_job_json */
        wait_free(w);
    }
}

int svc_image_submit(svc *s, const json_t *body, const svc_image_cbs *cb, void *arg, svc_wait **out,
                     genai_error *err)
{
    svc_wait *w = wait_new(s, W_IMAGE, NULL, arg);
    if (w == NULL)
        return err_set(err, -ENOMEM, "image request");
    if (cb != NULL)
        w->cbs = *cb;
    int rc = parse_image(w, body, err);
    if (rc == 0)
        rc = lookup_start(s, w, w->model, 1, err);
    if (rc < 0) {
        wait_free(w);
        return rc;
    }
    if (out != NULL)
        *out = w;
    return 0;
}

int svc_image_cancel(svc *s, uint64_t job)
{
    return orch_image_cancel(s->o, job);
}

static json_t *b64_string(const uint8_t *p, size_t n)
{
    if (n > (size_t)INT_MAX / 2)
        return NULL;
    size_t cap = 4 * ((n + 2) / 3) + 1;
    unsigned char *out = mem_alloc(cap);
    if (out == NULL)
        return NULL;
    int len = EVP_EncodeBlock(out, p, (int)n);
    json_t *s = len >= 0 ? json_stringn((const char *)out, (size_t)len) : NULL;
    mem_free(out);
    return s;
}

json_t *svc_image_result(svc *s, uint64_t job, int *code, const char **detail)
{
    const orch_job *oj = orch_image_job(s->o, job);
    *detail = "";
    if (oj == NULL) {
        *code = GENAI_ENOT_FOUND;
        *detail = "no such image job";
        return NULL;
    }
    if (oj->state != ORCH_JOB_DONE) {
        *code = GENAI_EBUSY;
        *detail = "the job has not finished";
        return NULL;
    }
    if (oj->code != 0) {
        *code = oj->code;
        *detail = oj->message != NULL ? oj->message : genai_strerror(oj->code);
        return NULL;
    }
    const img_job *rj = img_runner_job(orch_runner(s->o), oj->runner_id);
    if (rj == NULL) {
        *code = GENAI_ENOT_FOUND;
        *detail = "the job's images are no longer kept";
        return NULL;
    }
    json_t *data = json_array();
    json_t *seeds = json_array();
    int bad = data == NULL || seeds == NULL;
    for (uint32_t i = 0; !bad && i < rj->n_results; i++) {
        json_t *b = b64_string(rj->results[i].png, rj->results[i].png_len);
        json_t *item = b != NULL ? json_pack("{s:o, s:s}", "b64_json", b, "revised_prompt",
                                             rj->req.prompt ? rj->req.prompt : "")
                                 : NULL;
        bad |= item == NULL || json_array_append_new(data, item) != 0;
        bad |= json_array_append_new(seeds, json_integer(rj->results[i].seed)) != 0;
    }
    json_t *settings = oj->resolution != NULL ? img_resolution_to_json(oj->resolution) : NULL;
    uint32_t w = rj->n_results > 0 ? rj->results[0].width : 0;
    uint32_t h = rj->n_results > 0 ? rj->results[0].height : 0;
    json_t *g =
        bad ? NULL
            : json_pack("{s:I, s:o, s:I, s:I, s:b, s:o}", "job", (json_int_t)job, "seeds", seeds,
                        "width", (json_int_t)w, "height", (json_int_t)h, "offloaded", oj->offloaded,
                        "model_settings", settings != NULL ? settings : json_null());
    if (g == NULL) {
        if (bad) { /* else json_pack released what it was given */
            json_decref(data);
            json_decref(seeds);
            json_decref(settings);
        }
        *code = -ENOMEM;
        *detail = "out of memory building the response";
        return NULL;
    }
    json_t *res =
        json_pack("{s:I, s:o, s:o}", "created", (json_int_t)time(NULL), "data", data, "genai", g);
    if (res == NULL) {
        *code = -ENOMEM;
        *detail = "out of memory building the response";
        return NULL;
    }
    *code = 0;
    return res;
}

json_t *svc_image_job_json(svc *s, uint64_t job, int with_result)
{
    const orch_job *oj = orch_image_job(s->o, job);
    if (oj == NULL)
        return NULL;
    const img_job *rj =
        oj->state != ORCH_JOB_WAITING ? img_runner_job(orch_runner(s->o), oj->runner_id) : NULL;
    const char *state = "waiting";
    if (oj->state == ORCH_JOB_SUBMITTED)
        state = rj != NULL ? img_job_state_name(rj->state) : "queued";
    else if (oj->state == ORCH_JOB_DONE)
        state =
            oj->code == 0 ? "succeeded" : (oj->code == GENAI_ECANCELLED ? "cancelled" : "failed");
    json_t *prog = json_null();
    if (rj != NULL) {
        const img_progress *p = &rj->progress;
        prog = json_pack("{s:s, s:I, s:I, s:I, s:I, s:i}", "stage", img_stage_name(p->stage),
                         "step", (json_int_t)p->step, "steps", (json_int_t)p->steps, "image",
                         (json_int_t)p->image, "images", (json_int_t)p->images, "percent",
                         oj->state == ORCH_JOB_DONE && oj->code == 0 ? 100 : p->percent);
    }
    json_t *o = json_pack("{s:I, s:s, s:b, s:o}", "id", (json_int_t)job, "state", state,
                          "offloaded", oj->offloaded, "progress", prog ? prog : json_null());
    if (o == NULL)
        return NULL;
    if (oj->state == ORCH_JOB_DONE && oj->code != 0) {
        svc_reply r;
        memset(&r, 0, sizeof(r));
        classify(oj->code, &r);
        json_object_set_new(o, "error",
                            json_pack("{s:s, s:s}", "code", r.error, "message",
                                      oj->message ? oj->message : genai_strerror(oj->code)));
    } else if (oj->state == ORCH_JOB_DONE && with_result) {
        int code;
        const char *detail;
        json_t *res = svc_image_result(s, job, &code, &detail);
        json_object_set_new(o, "result", res != NULL ? res : json_null());
    }
    return o;
}

void svc_wait_cancel(svc_wait *w, int cancel_job)
{
    if (w == NULL)
        return;
    svc *s = w->s;
    unlink_wait(w);
    if (w->in_lookup) {
        w->cancelled = 1; /* lookup_done frees it */
        return;
    }
    if (w->in_gate)
        orch_llm_cancel(s->o, w->ticket);
    if (w->kind == W_IMAGE && w->job != 0 && cancel_job)
        orch_image_cancel(s->o, w->job); /* its image_done finds no wait */
    wait_free(w);
}

/* ---- after a lookup ----------------------------------------------------------- */

static void lookup_done(uv_work_t *wk, int status)
{
    lookup *lk = wk->data;
    svc *s = lk->s;
    svc_wait *w = lk->w;
    s->n_lookups--;
    w->in_lookup = 0;
    if (status != 0 && lk->rc == 0)
        lk->rc = err_set(&lk->err, GENAI_ECANCELLED, "the lookup was cancelled");
    if (w->cancelled || s->freed) {
        wait_free(w);
    } else if (w->kind == W_IMAGE) {
        image_looked_up(w, lk);
    } else {
        llm_looked_up(w, lk);
    }
    lookup_free(lk);
    if (s->freed && s->n_lookups == 0)
        mem_free(s);
}

/* ---- orchestrator events -------------------------------------------------------- */

static svc_wait *find_kind(svc *s, enum wait_kind kind)
{
    for (svc_wait *w = s->waits; w != NULL; w = w->next)
        if (w->kind == kind && !w->in_lookup)
            return w;
    return NULL;
}

static svc_wait *find_job(svc *s, uint64_t job)
{
    for (svc_wait *w = s->waits; w != NULL; w = w->next)
        if (w->kind == W_IMAGE && w->job == job)
            return w;
    return NULL;
}

static void on_orch_event(void *arg, orch *o, const orch_event *ev)
{
    svc *s = arg;
    svc_wait *w;
    (void)o;
    if (s->freed)
        return;
    switch (ev->type) {
    case ORCH_EV_LLM_READY:
        while ((w = find_kind(s, W_START)) != NULL)
            finish_ok(w);
        break;
    case ORCH_EV_LLM_FAILED:
        while ((w = find_kind(s, W_START)) != NULL)
            finish_error(w, ev->code ? ev->code : GENAI_ECHILD_EXITED, "llm_failed", 502,
                         ev->reason, "see GET /api/llm for the state and genai logs for details");
        break;
    case ORCH_EV_RECLAIMED:
        /* An unload starts only before an LLM reclamation (orch.h), so the
         * next reclaimed event is its end. */
        while ((w = find_kind(s, W_STOP)) != NULL)
            finish_ok(w);
        break;
    case ORCH_EV_IMAGE_DONE:
        if ((w = find_job(s, ev->job_id)) != NULL) {
            unlink_wait(w);
            svc_reply r;
            memset(&r, 0, sizeof(r));
            classify(ev->code, &r);
            r.detail = ev->reason != NULL && ev->reason[0] ? ev->reason : "";
            r.job = ev->job_id;
            if (w->cbs.done != NULL)
                w->cbs.done(w->arg, &r);
            wait_free(w);
        }
        break;
    default:
        break;
    }
}

static void on_img_progress(void *arg, img_runner *r, const img_job *job)
{
    svc *s = arg;
    (void)r;
    if (s->freed || s->o == NULL)
        return;
    for (svc_wait *w = s->waits; w != NULL; w = w->next) {
        if (w->kind != W_IMAGE || w->job == 0 || w->cbs.progress == NULL)
            continue;
        const orch_job *oj = orch_image_job(s->o, w->job);
        if (oj != NULL && oj->state == ORCH_JOB_SUBMITTED && oj->runner_id == job->id) {
            w->cbs.progress(w->arg, w->job, &job->progress);
            return;
        }
    }
}

/* ---- sharing the machine ----------------------------------------------------------- */

/* The watcher, the reservation book and its waits; they borrow the
 * orchestrator, so they go before it. Each free accepts NULL. */
static void share_free(svc *s)
{
    api_rsv_waits_free(s->rsv_waits);
    s->rsv_waits = NULL;
    orch_rsv_free(s->rsv);
    s->rsv = NULL;
    orch_watch_free(s->watch);
    s->watch = NULL;
}

static int share_new(svc *s, const svc_opts *so, genai_error *err)
{
    const probe_options *probe = so->tune != NULL ? so->tune->probe : NULL;
    int rc = api_rsv_waits_new(s->uv, &s->rsv_waits, err);
    if (rc < 0)
        return rc;
    orch_rsv_opts ro = {.probe = probe,
                        .poll_ms = (int)so->watch_fast_ms,
                        .on_change = api_rsv_waits_changed,
                        .arg = s->rsv_waits,
                        .bus = so->bus,
                        .metrics = so->metrics};
    if ((rc = orch_rsv_new(s->uv, s->o, &ro, &s->rsv, err)) < 0)
        return rc;
    orch_watch_opts wo = {.probe = probe,
                          .interval_ms = (int)so->watch_interval_ms,
                          .fast_ms = (int)so->watch_fast_ms,
                          .policy = so->others_policy,
                          .bus = so->bus,
                          .metrics = so->metrics};
    return orch_watch_new(s->uv, s->o, &wo, &s->watch, err);
}

struct orch_rsv *svc_reservations(svc *s)
{
    return s->rsv;
}

struct orch_watch *svc_watcher(svc *s)
{
    return s->watch;
}

int svc_rsv_wait(svc *s, uint64_t id, uint64_t timeout_ms,
                 void (*fn)(void *arg, int code, const struct orch_reservation *r), void *arg,
                 genai_error *err)
{
    if (s->rsv == NULL)
        return err_set(err, GENAI_EUNAVAILABLE, "this runtime service keeps no reservations");
    return api_rsv_wait(s->rsv_waits, s->rsv, id, timeout_ms, fn, arg, err);
}

/* ---- lifetime -------------------------------------------------------------------- */

int svc_new(uv_loop_t *uv, const svc_opts *so, svc **out, genai_error *err)
{
    svc *s = mem_calloc(1, sizeof(*s));
    if (s == NULL)
        return err_set(err, -ENOMEM, "runtime service");
    s->uv = uv;
    s->m = so->metrics;
    s->queue_timeout_s = so->queue_timeout_s ? so->queue_timeout_s : DEF_QUEUE_TIMEOUT_S;
    orch_opts oo;
    if (so->tune != NULL)
        oo = *so->tune;
    else
        memset(&oo, 0, sizeof(oo));
    oo.llm = NULL;
    oo.bus = so->bus;
    oo.metrics = so->metrics;
    oo.on_event = on_orch_event;
    oo.arg = s;
    oo.image.on_progress = on_img_progress;
    oo.image.on_state = NULL;
    oo.image.arg = s;
    if (so->queue_limit != 0)
        oo.max_waiters = (int)so->queue_limit;
    /* Learned footprints persist in the registry (docs/planner.md, Tiers). */
    genai_error fe;
    if (oo.fp == NULL && store_fpdb_open(NULL, NULL, &s->fpdb, &fe) < 0)
        LOG_WARN(MOD, "learned footprints kept in memory only: %s", fe.detail);
    if (s->fpdb != NULL)
        oo.fp = store_fpdb_table(s->fpdb);
    int rc = http_client_new(uv, &s->http, err);
    if (rc < 0)
        goto fail;
    rc = orch_new(uv, &oo, &s->o, err);
    if (rc < 0)
        goto fail_http;
    if (so->share && (rc = share_new(s, so, err)) < 0)
        goto fail_orch;
    *out = s;
    return 0;

fail_orch:
    share_free(s);
    orch_free(s->o);
fail_http:
    http_client_free(s->http);
fail:
    store_fpdb_close(s->fpdb);
    mem_free(s);
    return rc;
}

void svc_free(svc *s)
{
    if (s == NULL)
        return;
    svc_wait *w;
    while ((w = s->waits) != NULL) {
        unlink_wait(w);
        if (w->in_gate)
            orch_llm_cancel(s->o, w->ticket);
        svc_fn fn = w->kind == W_IMAGE ? (w->job ? w->cbs.done : w->cbs.submitted) : w->fn;
        reply_error(fn, w->arg, GENAI_ECANCELLED, NULL, 0, "genai is shutting down", NULL);
        if (w->in_lookup)
            w->cancelled = 1; /* lookup_done frees it */
        else
            wait_free(w);
    }
    s->freed = 1;
    share_free(s);
    orch_free(s->o);
    s->o = NULL;
    store_fpdb_close(s->fpdb);
    s->fpdb = NULL;
    http_client_free(s->http);
    s->http = NULL;
    if (s->n_lookups == 0)
        mem_free(s);
}

orch *svc_orch(svc *s)
{
    return s->o;
}

http_client *svc_http(svc *s)
{
    return s->http;
}

struct metrics *svc_metrics(svc *s)
{
    return s->m;
}

void svc_count_tokens(svc *s, int64_t prompt, int64_t completion)
{
    if (s == NULL || s->m == NULL)
        return;
    static const char help[] = "Tokens counted from the usage fields of proxied LLM responses.";
    if (prompt > 0)
        metrics_counter_add(s->m, "genai_llm_tokens_total", help, "kind=\"prompt\"",
                            (double)prompt);
    if (completion > 0)
        metrics_counter_add(s->m, "genai_llm_tokens_total", help, "kind=\"completion\"",
                            (double)completion);
}
