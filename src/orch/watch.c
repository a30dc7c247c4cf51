/*
 * watch.c - the memory watcher (see watch.h for what it decides and why).
 *
 * One timer. Each tick: sample, publish the own/others gauges, then one of
 * two questions depending on whether this watcher holds the orchestrator:
 *   - not holding: with the LLM READY and no other hold, do the residents
 *     still fit (orch_watch_assess)? confirm_samples "no" in a row report
 *     pressure and, by policy, take the hold;
 *   - holding: does the LLM's demand (copied when the hold was taken) fit
 *     next to what is resident now? confirm_samples "yes" in a row release
 *     the hold, and the orchestrator reloads the LLM.
 */
#include "orch/watch.h"

#include "core/alloc.h"
#include "core/config.h"
#include "core/events.h"
#include "core/log.h"
#include "core/metrics.h"
#include "plan/budget.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define MOD "watch"

enum { DEF_INTERVAL_MS = 1000, DEF_FAST_MS = 250, DEF_CONFIRM = 2, OWN_MAX = 8 };

struct orch_watch {
    orch *o;
    orch_watch_opts opts;
    probe_options_owned probe_opts;
    probe_ctx *probe;
    uv_timer_t timer;
    int streak;      /* consecutive samples agreeing on the pending change */
    int reported;    /* pressure reported and not yet restored */
    uint32_t hold;   /* our orch_hold id, 0 when none */
    plan_demand llm; /* the LLM's demand when the hold was taken */
    orch_watch_stats stats;
};

static int sample(orch_watch *w, probe_snapshot *out, genai_error *err)
{
    if (w->opts.sample != NULL)
        return w->opts.sample(w->opts.sample_arg, out, err);
    if (w->probe == NULL) {
        int rc = probe_ctx_open(&w->probe_opts.opts, &w->probe, err);
        if (rc < 0)
            return rc;
    }
    return probe_ctx_sample(w->probe, out, err);
}

static uint64_t sat_sub(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

/* ---- the judgement ---------------------------------------------------------- */

static void place_name(char *buf, size_t n, int device)
{
    if (device < 0)
        snprintf(buf, n, "host memory");
    else
        snprintf(buf, n, "GPU %d", device);
}

static void gib(char *buf, size_t n, uint64_t b)
{
    snprintf(buf, n, "%.2f GiB", (double)b / (double)PLAN_GIB);
}

/* Fills v->device / need / usable / others / why from a failed fit on the
 * "without genai" view. */
static void describe(const probe_snapshot *snap, const plan_fit_result *r, const plan_demand *sum,
                     orch_watch_verdict *v)
{
    v->device = -1;
    for (uint32_t g = 0; g < r->n_gpus; g++) {
        if (r->gpu_deficit[g] > 0) {
            v->device = (int)g;
            break;
        }
    }
    if (v->device >= 0) {
        const probe_gpu *g = &snap->gpus[v->device];
        v->need = sum->gpu[v->device];
        v->usable = r->gpu_usable[v->device];
        /* In the view without genai, whatever is used is someone else's. */
        v->others = g->memory.ok ? sat_sub(g->total, g->free) : 0;
    } else {
        v->need = sum->host_anon + sum->host_file;
        v->usable = r->host_usable;
        int known = 0;
        uint64_t total = plan_host_total(snap, &known);
        v->others = known ? sat_sub(total, snap->mem.effective_available) : 0;
    }
    char place[32], a[32], b[32], c[32];
    place_name(place, sizeof(place), v->device);
    gib(a, sizeof(a), v->need);
    gib(b, sizeof(b), v->usable);
    gib(c, sizeof(c), v->others);
    int bound = v->device >= 0 ? r->gpu_budget_bound[v->device] : r->host_budget_bound;
    snprintf(v->why, sizeof(v->why), "%s: genai's runtimes need %s, %s usable%s; others hold %s",
             place, a, b, bound ? " within the budget" : " after the reserve", c);
}

int orch_watch_assess(probe_snapshot *snap, const orch_residency *res, orch_watch_verdict *out)
{
    memset(out, 0, sizeof(*out));
    out->fits = 1;
    out->device = -1;
    plan_resident rs[ORCH_RES_MAX];
    uint32_t n = orch_res_residents(res, 0, snap->taken_at_ms, rs, ORCH_RES_MAX);
    plan_demand sum;
    memset(&sum, 0, sizeof(sum));
    for (uint32_t i = 0; i < res->n; i++) {
        const orch_resident *e = &res->e[i];
        if (e->state != ORCH_RES_LOADING && e->state != ORCH_RES_RESIDENT)
            continue;
        const plan_demand *d = &e->demand;
        if (d->n_gpus > sum.n_gpus)
            sum.n_gpus = d->n_gpus;
        for (uint32_t g = 0; g < d->n_gpus && g < PLAN_MAX_GPUS; g++)
            sum.gpu[g] += d->gpu[g];
        sum.host_anon += d->host_anon;
        sum.host_file += d->host_file;
        sum.host_growth += d->host_growth;
    }
    for (uint32_t i = 0; i < n; i++)
        orch_snapshot_without(snap, rs[i].pid, rs[i].demand);
    plan_fit_env env;
    plan_fit_env_init(&env, snap);
    plan_fit_result r;
    if (plan_fit(&env, &sum, &r, NULL) == 0)
        return 1;
    out->fits = 0;
    describe(snap, &r, &sum, out);
    return 0;
}

/* ---- reports ------------------------------------------------------------------ */

const char *orch_watch_kind_name(orch_watch_kind k)
{
    static const char *const names[] = {"pressure", "offload", "restored"};
    return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "unknown";
}

static void report(orch_watch *w, orch_watch_kind kind, const orch_watch_verdict *v)
{
    const char *name = orch_watch_kind_name(kind);
    if (kind == ORCH_WATCH_RESTORED)
        LOG_INFO(MOD, "%s: %s", name, v->why);
    else
        LOG_WARN(MOD, "%s: %s", name, v->why);
    if (w->opts.bus != NULL) {
        json_t *d = json_object();
        char type[64];
        snprintf(type, sizeof(type), "budget.%s", name);
        if (d != NULL &&
            (json_object_set_new(
                 d, "place", v->device < 0 ? json_string("host") : json_integer(v->device)) < 0 ||
             json_object_set_new(d, "need_bytes", json_integer((json_int_t)v->need)) < 0 ||
             json_object_set_new(d, "usable_bytes", json_integer((json_int_t)v->usable)) < 0 ||
             json_object_set_new(d, "others_bytes", json_integer((json_int_t)v->others)) < 0 ||
             json_object_set_new(
                 d, "policy",
                 json_string(w->opts.policy == CONFIG_OTHERS_WARN ? "warn" : "offload")) < 0 ||
             json_object_set_new(d, "reason", json_string(v->why)) < 0)) {
            json_decref(d);
            d = NULL;
        }
        if (d != NULL && events_publish(w->opts.bus, type, d) < 0)
            LOG_DEBUG(MOD, "event %s not published", type);
    }
    if (w->opts.metrics != NULL) {
        char labels[32];
        snprintf(labels, sizeof(labels), "event=\"%s\"", name);
        metrics_counter_add(w->opts.metrics, "genai_budget_events_total",
                            "Memory watcher reports: pressure, offload, restored", labels, 1);
    }
    if (w->opts.on_event != NULL) {
        orch_watch_event ev = {kind, *v};
        w->opts.on_event(w->opts.arg, &ev);
    }
}

static void gauges(orch_watch *w, const probe_snapshot *snap)
{
    if (w->opts.metrics == NULL)
        return;
    int32_t own[OWN_MAX];
    size_t n = orch_child_pids(w->o, own, OWN_MAX);
    plan_usage u;
    plan_usage_split(snap, own, n, &u);
    for (uint32_t g = 0; g < u.n_gpus; g++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "gpu=\"%u\"", g);
        metrics_gauge_set(w->opts.metrics, "genai_gpu_own_bytes",
                          "GPU memory held by genai's processes", labels, (double)u.gpu[g].own);
        metrics_gauge_set(w->opts.metrics, "genai_gpu_others_bytes",
                          "GPU memory held by everyone else (listed and unlisted)", labels,
                          (double)(u.gpu[g].others + u.gpu[g].unlisted));
    }
}

/* ---- the tick ------------------------------------------------------------------ */

static void judge_resident(orch_watch *w, probe_snapshot *snap)
{
    orch_watch_verdict v;
    int fits = orch_watch_assess(snap, orch_get_residency(w->o), &v);
    if (fits) {
        w->streak = 0;
        if (w->reported) {
            w->reported = 0;
            w->stats.restores++;
            snprintf(v.why, sizeof(v.why), "genai's runtimes fit their budget and reserve again");
            report(w, ORCH_WATCH_RESTORED, &v);
        }
        return;
    }
    if (w->reported || ++w->streak < w->opts.confirm_samples)
        return;
    w->streak = 0;
    w->reported = 1;
    w->stats.pressures++;
    w->stats.last_pressure_ms = orch_now_ms();
    report(w, ORCH_WATCH_PRESSURE, &v);
    if (w->opts.policy != CONFIG_OTHERS_OFFLOAD)
        return;
    const orch_resident *llm = NULL;
    const orch_residency *res = orch_get_residency(w->o);
    for (uint32_t i = 0; i < res->n; i++)
        if (res->e[i].kind == ORCH_KIND_LLM)
            llm = &res->e[i];
    if (llm == NULL)
        return;
    w->llm = llm->demand;
    char why[ORCH_WATCH_WHY_MAX + 32];
    snprintf(why, sizeof(why), "other programs: %s", v.why);
    genai_error e;
    if (orch_hold(w->o, why, &w->hold, &e) < 0) {
        LOG_WARN(MOD, "cannot move the LLM aside: %s", e.detail);
        w->hold = 0;
        return;
    }
    w->stats.offloads++;
    report(w, ORCH_WATCH_OFFLOAD, &v);
}

/* Holding: may the LLM come back? Its demand must fit next to what is
 * resident now, for confirm_samples samples in a row. */
static void judge_return(orch_watch *w, probe_snapshot *snap)
{
    orch_llm_state st = orch_llm_status(w->o, NULL);
    if (st != ORCH_LLM_AWAY && st != ORCH_LLM_ABSENT && st != ORCH_LLM_FAILED)
        return; /* still draining or stopping */
    plan_resident rs[ORCH_RES_MAX];
    uint32_t n =
        orch_res_residents(orch_get_residency(w->o), 0, snap->taken_at_ms, rs, ORCH_RES_MAX);
    plan_fit_env env;
    plan_fit_env_init(&env, snap);
    env.residents = rs;
    env.n_residents = n;
    plan_fit_result r;
    if (plan_fit(&env, &w->llm, &r, NULL) != 0) {
        w->streak = 0;
        return;
    }
    if (++w->streak < w->opts.confirm_samples)
        return;
    w->streak = 0;
    orch_watch_verdict v;
    memset(&v, 0, sizeof(v));
    v.fits = 1;
    v.device = w->llm.n_gpus > 0 ? 0 : -1;
    v.need = v.device >= 0 ? w->llm.gpu[0] : w->llm.host_anon + w->llm.host_file;
    v.usable = v.device >= 0 ? r.gpu_usable[0] : r.host_usable;
    snprintf(v.why, sizeof(v.why), "the memory is back: the LLM fits again and reloads");
    orch_unhold(w->o, w->hold);
    w->hold = 0;
    w->reported = 0;
    w->stats.restores++;
    report(w, ORCH_WATCH_RESTORED, &v);
}

static void on_tick(uv_timer_t *t)
{
    orch_watch *w = t->data;
    probe_snapshot snap;
    genai_error e;
    genai_error_clear(&e);
    if (sample(w, &snap, &e) == 0) {
        w->stats.samples++;
        gauges(w, &snap);
        orch_llm_state st = orch_llm_status(w->o, NULL);
        if (w->hold != 0)
            judge_return(w, &snap);
        else if (st == ORCH_LLM_READY && orch_holds(w->o) == 0)
            judge_resident(w, &snap);
        else
            w->streak = 0;
        probe_snapshot_free(&snap);
    } else {
        LOG_WARN(MOD, "sampling memory: %s", e.detail);
    }
    /* Faster while genai moves memory itself (a swap, a reservation). */
    orch_llm_state st = orch_llm_status(w->o, NULL);
    int busy = st == ORCH_LLM_LOADING || st == ORCH_LLM_DRAINING || st == ORCH_LLM_STOPPING ||
               st == ORCH_LLM_RELOADING || orch_holds(w->o) > (w->hold != 0 ? 1u : 0u);
    uv_timer_start(&w->timer, on_tick, (uint64_t)(busy ? w->opts.fast_ms : w->opts.interval_ms), 0);
}

/* ---- API ------------------------------------------------------------------------- */

int orch_watch_new(uv_loop_t *uv, orch *o, const orch_watch_opts *opts, orch_watch **out,
                   genai_error *err)
{
    orch_watch *w = mem_calloc(1, sizeof(*w));
    if (w == NULL)
        return err_set(err, -ENOMEM, "memory watcher");
    w->o = o;
    w->opts = *opts;
    w->opts.probe = NULL;
    if (w->opts.interval_ms <= 0)
        w->opts.interval_ms = DEF_INTERVAL_MS;
    if (w->opts.fast_ms <= 0)
        w->opts.fast_ms = DEF_FAST_MS;
    if (w->opts.confirm_samples <= 0)
        w->opts.confirm_samples = DEF_CONFIRM;
    if (probe_options_own(&w->probe_opts, opts->probe) < 0) {
        mem_free(w);
        return err_set(err, -ENOMEM, "memory watcher options");
    }
    uv_timer_init(uv, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, on_tick, 0, 0);
    *out = w;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    mem_free(h->data);
}

void orch_watch_free(orch_watch *w)
{
    if (w == NULL)
        return;
    uv_timer_stop(&w->timer);
    if (w->hold != 0)
        orch_unhold(w->o, w->hold);
    probe_ctx_close(w->probe);
    probe_options_owned_free(&w->probe_opts);
    uv_close((uv_handle_t *)&w->timer, on_closed);
}

const orch_watch_stats *orch_watch_get_stats(const orch_watch *w)
{
    return &w->stats;
}
