/*
 * context.c - the public C API (include/genai.h): configuration, the
 * context, the system probe, the model registry and pulls, events, and the
 * LLM/chat/image entry points that wait for the orchestrator.
 *
 * A context owns a loop thread (core/loop.h) and the event bus, which is
 * loop-thread state: publishing from a caller's thread posts a message, and
 * the event callback is (un)subscribed by a message the caller waits for, so
 * when genai_set_event_callback returns the old callback can no longer run.
 *
 * Registry calls and pulls block, so they run on the caller's thread, not
 * on the loop: the store's registry connection serializes its calls with a
 * mutex, and store_pull keeps no shared state. The pulls in progress are
 * listed under the context's mutex so that genai_model_pull_cancel_all can
 * reach them from any thread.
 *
 * JSON results are dumped by jansson (malloc) and copied into the allocation
 * funnel, so genai_free_string is mem_free like every other release.
 *
 * The runtime service (api/service.h: the orchestrator behind the registry,
 * as in `genai serve`) is created on the loop thread by genai_new and freed
 * there by genai_free; llm_api.c and image_api.c wait on it.
 */
#include "api/context.h"

#include "api/reserve_api.h"
#include "api/shapes.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "plan/budget.h"
#include "sys/probe.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MOD "api"

struct api_pull {
    api_pull *next;
    atomic_int cancel;
    genai_pull_progress_fn fn;
    void *userdata;
};

/* ---- configuration ----------------------------------------------------- */

int genai_config_new(genai_config **out, genai_error *err)
{
    if (out == NULL)
        return err_set(err, GENAI_EBAD_ARG, "genai_config_new: out is NULL");
    genai_config *c = mem_alloc(sizeof(*c));
    if (c == NULL)
        return err_set(err, -ENOMEM, "allocating a configuration");
    config_init(c);
    *out = c;
    return 0;
}

int genai_config_load(genai_config **out, const char *path, genai_error *err)
{
    if (out == NULL)
        return err_set(err, GENAI_EBAD_ARG, "genai_config_load: out is NULL");
    genai_config *c = mem_alloc(sizeof(*c));
    if (c == NULL)
        return err_set(err, -ENOMEM, "allocating a configuration");
    int rc = config_load(c, path, err);
    if (rc < 0) {
        mem_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int genai_config_set(genai_config *cfg, const char *key, const char *value, genai_error *err)
{
    if (cfg == NULL || key == NULL || value == NULL)
        return err_set(err, GENAI_EBAD_ARG, "genai_config_set: NULL argument");
    return config_set(cfg, key, value, "genai_config_set", err);
}

void genai_config_free(genai_config *cfg)
{
    if (cfg == NULL)
        return;
    config_free(cfg);
    mem_free(cfg);
}

/* ---- helpers ------------------------------------------------------------ */

int api_dump_json(json_t *v, char **out, genai_error *err)
{
    char *text = v != NULL ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(v);
    char *copy = text != NULL ? mem_strdup(text) : NULL;
    free(text); /* json_dumps allocates with jansson's allocator (malloc) */
    if (copy == NULL)
        return err_set(err, -ENOMEM, "building a JSON result");
    *out = copy;
    return 0;
}

void genai_free_string(char *s)
{
    mem_free(s);
}

int api_reply_error(const svc_reply *r, genai_error *err)
{
    const char *detail = r->detail != NULL && r->detail[0] ? r->detail : genai_strerror(r->code);
    if (r->suggestion != NULL)
        return err_set(err, r->code, "%s (%s)", detail, r->suggestion);
    return err_set(err, r->code, "%s", detail);
}

int api_not_on_loop(genai *g, const char *fn, genai_error *err)
{
    if (loop_on_thread(g->l))
        return err_set(err, GENAI_EBUSY,
                       "%s: called from a genai callback (the loop thread), where waiting for "
                       "the loop would deadlock",
                       fn);
    return 0;
}

typedef struct pub_msg {
    genai *g;
    char *type;
    json_t *data;
} pub_msg;

static void publish_on_loop(loop *l, void *arg)
{
    pub_msg *m = arg;
    (void)l;
    events_publish(m->g->bus, m->type, m->data); /* steals data */
    mem_free(m->type);
    mem_free(m);
}

/* Publishes an event from any thread (data stolen). Best effort: an event
 * that cannot be queued is logged and dropped, never an API failure. */
static void publish(genai *g, const char *type, json_t *data)
{
    pub_msg *m = mem_calloc(1, sizeof(*m));
    if (m != NULL)
        m->type = mem_strdup(type);
    if (m == NULL || m->type == NULL) {
        mem_free(m);
        json_decref(data);
        LOG_WARN(MOD, "dropping event %s: out of memory", type);
        return;
    }
    m->g = g;
    m->data = data;
    if (loop_post(g->l, publish_on_loop, m) < 0) {
        json_decref(data);
        mem_free(m->type);
        mem_free(m);
        LOG_WARN(MOD, "dropping event %s: the loop is stopping", type);
    }
}

#define CHECK_G(g, err, fn)                                                                        \
    do {                                                                                           \
        if ((g) == NULL)                                                                           \
            return err_set((err), GENAI_EBAD_ARG, "%s: the context is NULL", (fn));                \
    } while (0)

/* ---- context ------------------------------------------------------------ */

typedef struct svc_make {
    genai *g;
    genai_error *err;
} svc_make;

static void make_svc_on_loop(loop *l, void *arg, loop_completion *c)
{
    svc_make *mk = arg;
    genai *g = mk->g;
    svc_opts o = {.queue_timeout_s = g->cfg.queue_timeout_s,
                  .queue_limit = g->cfg.queue_limit,
                  .bus = g->bus,
                  .metrics = g->m,
                  .share = 1,
                  .others_policy = (int)g->cfg.others_policy,
                  .watch_interval_ms = g->cfg.watch_interval_ms,
                  .watch_fast_ms = g->cfg.watch_fast_ms};
    loop_complete(c, svc_new(loop_uv(l), &o, &g->svc, mk->err));
}

static void free_svc_on_loop(loop *l, void *arg, loop_completion *c)
{
    genai *g = arg;
    (void)l;
    svc_free(g->svc); /* children killed and reaped; handles close as the loop runs */
    g->svc = NULL;
    loop_complete(c, 0);
}

int genai_new(const genai_config *cfg, genai **out, genai_error *err)
{
    if (out == NULL)
        return err_set(err, GENAI_EBAD_ARG, "genai_new: out is NULL");
    genai *g = mem_calloc(1, sizeof(*g));
    if (g == NULL)
        return err_set(err, -ENOMEM, "allocating a context");
    int rc;
    config_init(&g->cfg);
    if (cfg != NULL && (rc = config_copy(&g->cfg, cfg)) < 0) {
        err_set(err, rc, "copying the configuration");
        goto fail_cfg;
    }
    if ((rc = store_open(&g->st, err)) < 0)
        goto fail_cfg;
    /* Budgets and reserves bind every plan in the process, as in `genai
     * serve` (docs/budgets.md: the policy is process-wide; the last context
     * created sets it). */
    plan_policy policy;
    plan_policy_from_config(&g->cfg, &policy);
    plan_policy_set(&policy);
    if ((rc = events_new(&g->bus)) < 0) {
        err_set(err, rc, "creating the event bus");
        goto fail_store;
    }
    if ((rc = metrics_new(&g->m)) < 0) {
        err_set(err, rc, "creating the metrics registry");
        goto fail_bus;
    }
    if ((rc = loop_start(&g->l, err)) < 0)
        goto fail_metrics;
    svc_make mk = {g, err};
    if ((rc = loop_call_wait(g->l, make_svc_on_loop, &mk)) < 0) {
        if (err != NULL && err->code == 0)
            err_set(err, rc, "creating the runtime service");
        goto fail_loop;
    }
    pthread_mutex_init(&g->mu, NULL);
    *out = g;
    return 0;

fail_loop:
    loop_stop(g->l);
fail_metrics:
    metrics_free(g->m);
fail_bus:
    events_free(g->bus);
fail_store:
    store_close(g->st);
fail_cfg:
    config_free(&g->cfg);
    mem_free(g);
    return rc;
}

typedef struct cb_set {
    genai *g;
    genai_event_fn fn;
    void *ud;
} cb_set;

static void on_event(void *arg, const event *ev)
{
    genai *g = arg;
    if (g->event_fn != NULL)
        g->event_fn(ev->type, ev->json, g->event_ud);
}

static void set_cb_on_loop(loop *l, void *arg, loop_completion *c)
{
    cb_set *s = arg;
    genai *g = s->g;
    (void)l;
    events_unsubscribe(g->sub);
    g->sub = NULL;
    g->event_fn = NULL;
    g->event_ud = NULL;
    int rc = 0;
    if (s->fn != NULL) {
        rc = events_subscribe(g->bus, on_event, g, &g->sub);
        if (rc == 0) {
            g->event_fn = s->fn;
            g->event_ud = s->ud;
        }
    }
    loop_complete(c, rc);
}

int genai_set_event_callback(genai *g, genai_event_fn fn, void *userdata, genai_error *err)
{
    CHECK_G(g, err, "genai_set_event_callback");
    cb_set s = {g, fn, userdata};
    int rc = loop_call_wait(g->l, set_cb_on_loop, &s);
    if (rc < 0)
        return err_set(err, rc, "setting the event callback");
    return 0;
}

void genai_free(genai *g)
{
    if (g == NULL)
        return;
    cb_set s = {g, NULL, NULL};
    loop_call_wait(g->l, set_cb_on_loop, &s);
    loop_call_wait(g->l, free_svc_on_loop, g);
    loop_stop(g->l); /* runs the events still queued and the closes, then joins */
    events_free(g->bus);
    metrics_free(g->m);
    store_close(g->st);
    config_free(&g->cfg);
    pthread_mutex_destroy(&g->mu);
    mem_free(g);
}

/* ---- system and models -------------------------------------------------- */

int genai_system(genai *g, char **json_out, genai_error *err)
{
    CHECK_G(g, err, "genai_system");
    if (json_out == NULL)
        return err_set(err, GENAI_EBAD_ARG, "genai_system: json_out is NULL");
    probe_snapshot snap;
    int rc = probe_take(NULL, &snap, err);
    if (rc < 0)
        return rc;
    json_t *j = probe_snapshot_json(&snap);
    probe_snapshot_free(&snap);
    return api_dump_json(j, json_out, err);
}

int genai_models_list(genai *g, char **json_out, genai_error *err)
{
    CHECK_G(g, err, "genai_models_list");
    if (json_out == NULL)
        return err_set(err, GENAI_EBAD_ARG, "genai_models_list: json_out is NULL");
    json_t *arr;
    int rc = api_models_json(store_registry(g->st), 0, &arr, err);
    if (rc < 0)
        return rc;
    return api_dump_json(arr, json_out, err);
}

int genai_model_show(genai *g, const char *id, char **json_out, genai_error *err)
{
    CHECK_G(g, err, "genai_model_show");
    if (id == NULL || json_out == NULL)
        return err_set(err, GENAI_EBAD_ARG, "genai_model_show: NULL argument");
    store_model m;
    int rc = store_db_get_model(store_registry(g->st), id, &m, err);
    if (rc < 0)
        return rc;
    json_t *j = api_model_json(&m);
    store_model_free(&m);
    return api_dump_json(j, json_out, err);
}

int genai_model_remove(genai *g, const char *id, genai_error *err)
{
    CHECK_G(g, err, "genai_model_remove");
    if (id == NULL)
        return err_set(err, GENAI_EBAD_ARG, "genai_model_remove: id is NULL");
    int rc = store_remove(g->st, id, NULL, err);
    if (rc < 0)
        return rc;
    publish(g, "model.removed", json_pack("{s:s}", "id", id));
    return 0;
}

int genai_models_prune(genai *g, const genai_prune_options *opts, char **json_out, genai_error *err)
{
    CHECK_G(g, err, "genai_models_prune");
    store_prune_opts o;
    memset(&o, 0, sizeof(o));
    if (opts != NULL) {
        double days = opts->partials_older_than_days;
        if (!(days >= 0 && days <= 36500)) /* also refuses NaN */
            return err_set(err, GENAI_EBAD_ARG,
                           "genai_models_prune: partials_older_than_days must be 0 to 36500");
        o.dry_run = opts->dry_run != 0;
        o.include_partials = opts->partials != 0;
        if (days > 0) {
            o.partial_min_age_s = (int64_t)(days * 86400.0);
            if (o.partial_min_age_s < 1)
                o.partial_min_age_s = 1;
        }
    }
    store_prune_report r;
    int rc = store_prune(store_registry(g->st), store_data_dir(g->st), &o, &r, err);
    if (rc < 0)
        return rc;
    if (json_out != NULL)
        rc = api_dump_json(api_prune_json(&r), json_out, err);
    store_prune_report_free(&r);
    return rc;
}

static void pull_progress(const store_progress *sp, void *userdata)
{
    api_pull *p = userdata;
    if (p->fn == NULL)
        return;
    genai_pull_progress gp = {
        .phase = store_phase_name(sp->phase),
        .file = sp->name,
        .done = sp->done,
        .total = sp->total,
        .attempt = sp->attempt,
        .file_index = sp->file_index,
        .file_count = sp->file_count,
        .reason = sp->reason,
    };
    if (p->fn(&gp, p->userdata) != 0)
        atomic_store(&p->cancel, 1);
}

static void pulls_remove(genai *g, api_pull *p)
{
    pthread_mutex_lock(&g->mu);
    for (api_pull **pp = &g->pulls; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    pthread_mutex_unlock(&g->mu);
}

/* One component per role: clip_l, clip_g, t5xxl, vae. */
#define API_PULL_MAX_COMPONENTS 4

/* Splits the NULL-terminated "role=REF" strings of genai_pull_options into
 * comps (room for API_PULL_MAX_COMPONENTS; roles copied into roles[i], refs
 * pointing into the caller's strings); *n gets how many. The store checks
 * the roles and references themselves. */
static int pull_components(const char *const *list, store_pull_component *comps, char roles[][16],
                           size_t *n, genai_error *err)
{
    size_t k = 0;
    for (; list != NULL && list[k] != NULL; k++) {
        const char *eq = strchr(list[k], '=');
        size_t rl = eq != NULL ? (size_t)(eq - list[k]) : 0;
        if (k == API_PULL_MAX_COMPONENTS)
            return err_set(err, GENAI_EBAD_ARG,
                           "genai_model_pull: more than %d components (one each of clip_l, "
                           "clip_g, t5xxl, vae)",
                           API_PULL_MAX_COMPONENTS);
        if (eq == NULL || rl == 0 || rl >= sizeof(roles[k]))
            return err_set(err, GENAI_EBAD_ARG,
                           "genai_model_pull: component '%.80s' is not \"role=REF\"", list[k]);
        memcpy(roles[k], list[k], rl);
        roles[k][rl] = '\0';
        comps[k] = (store_pull_component){roles[k], eq + 1, NULL};
    }
    *n = k;
    return 0;
}

int genai_model_pull(genai *g, const genai_pull_options *opts, char **json_out, genai_error *err)
{
    CHECK_G(g, err, "genai_model_pull");
    if (opts == NULL || opts->ref == NULL || opts->ref[0] == '\0')
        return err_set(err, GENAI_EBAD_ARG, "genai_model_pull: no reference given");
    store_pull_opts o = {.ref = opts->ref,
                         .id = opts->id,
                         .name = opts->name,
                         .kind = STORE_KIND_LLM,
                         .sha256 = opts->sha256};
    store_pull_component comps[API_PULL_MAX_COMPONENTS];
    char roles[API_PULL_MAX_COMPONENTS][16];
    int rc;
    if (opts->kind != NULL && (rc = store_kind_parse(opts->kind, &o.kind)) < 0)
        return err_set(err, rc, "kind '%s' is neither 'llm' nor 'diffusion'", opts->kind);
    if ((rc = pull_components(opts->components, comps, roles, &o.n_components, err)) < 0)
        return rc;
    if (o.n_components > 0) {
        o.components = comps;
        if (opts->kind == NULL) /* components imply diffusion; "llm" is refused by the store */
            o.kind = STORE_KIND_DIFFUSION;
    }

    api_pull p = {.fn = opts->progress, .userdata = opts->userdata};
    atomic_init(&p.cancel, 0);
    pthread_mutex_lock(&g->mu);
    p.next = g->pulls;
    g->pulls = &p;
    pthread_mutex_unlock(&g->mu);

    store_net net;
    store_net_defaults(&net);
    net.allow_http = opts->allow_http || strncmp(net.hf_endpoint, "http://", 7) == 0;
    net.cancel = &p.cancel;
    net.progress = pull_progress;
    net.userdata = &p;
    store_model m;
    rc = store_pull(g->st, &net, &o, &m, err);
    pulls_remove(g, &p);
    if (rc < 0) {
        publish(g, "model.pull.failed",
                json_pack("{s:s, s:s}", "ref", opts->ref, "error", genai_err_name(rc)));
        return rc;
    }
    publish(g, "model.pulled", json_pack("{s:s, s:s}", "ref", opts->ref, "id", m.id));
    if (json_out != NULL) {
        int drc = api_dump_json(api_model_json(&m), json_out, err);
        if (drc < 0)
            rc = drc;
    }
    store_model_free(&m);
    return rc;
}

int genai_model_pull_cancel_all(genai *g)
{
    if (g == NULL)
        return 0;
    int n = 0;
    pthread_mutex_lock(&g->mu);
    for (api_pull *p = g->pulls; p != NULL; p = p->next, n++)
        atomic_store(&p->cancel, 1);
    pthread_mutex_unlock(&g->mu);
    return n;
}

/* reserve_api.h: the context's loop and runtime service. */
int api_ctx_runtime(genai *g, loop **l, struct svc **s, genai_error *err)
{
    if (g == NULL)
        return err_set(err, GENAI_EBAD_ARG, "the context is NULL");
    if (g->svc == NULL)
        return err_set(err, GENAI_EUNAVAILABLE, "this context runs no runtime service");
    *l = g->l;
    *s = g->svc;
    return 0;
}
