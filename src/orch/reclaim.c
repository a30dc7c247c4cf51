/*
 * reclaim.c - the reclamation check and its polling watcher (see
 * reclaim.h).
 *
 * The watcher is one uv_timer. Each tick samples the machine through the
 * caller's function, applies orch_reclaim_check(), and either reports or
 * re-arms with the next delay (doubled, capped, and never past the
 * deadline). The first tick is a 0 ms timer started from orch_reclaim_start
 * (not from a timer callback, so it cannot livelock libuv < 1.48).
 */
#include "orch/reclaim.h"

#include "core/alloc.h"
#include "core/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define MOD "orch"

struct orch_reclaim {
    uv_timer_t timer;
    int active;
    orch_reclaim_target target;
    orch_sample_fn sample;
    void *sample_arg;
    orch_reclaim_fn fn;
    void *arg;
    uint64_t start_ms;
    uint64_t deadline_ms;
    uint64_t next_delay_ms;
    uint64_t max_ms;
    uint32_t polls;
    char last_why[ORCH_RECLAIM_WHY_MAX];
};

static uint64_t mono_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static void gib(char *buf, size_t n, uint64_t bytes)
{
    snprintf(buf, n, "%.2f GiB", (double)bytes / (double)PLAN_GIB);
}

int orch_reclaim_check(const probe_snapshot *snap, const orch_reclaim_target *t, char *why,
                       size_t whylen)
{
    char dummy[8];
    if (why == NULL) {
        why = dummy;
        whylen = sizeof(dummy);
    }
    why[0] = '\0';
    for (uint32_t g = 0; g < snap->n_gpus; g++) {
        const probe_gpu *gpu = &snap->gpus[g];
        for (uint32_t k = 0; k < gpu->n_processes; k++)
            for (uint32_t p = 0; p < t->n_pids; p++)
                if (t->pids[p] > 0 && gpu->processes[k].pid == t->pids[p]) {
                    snprintf(why, whylen, "GPU %u still lists pid %ld", g, (long)t->pids[p]);
                    return 0;
                }
    }
    if (!t->have_need)
        return 1;
    plan_resident res[ORCH_RECLAIM_MAX_RESIDENTS];
    uint32_t n =
        t->n_residents < ORCH_RECLAIM_MAX_RESIDENTS ? t->n_residents : ORCH_RECLAIM_MAX_RESIDENTS;
    for (uint32_t i = 0; i < n; i++)
        res[i] = (plan_resident){&t->residents[i], t->resident_pids[i], 1};
    plan_fit_env env;
    plan_fit_env_init(&env, snap);
    env.residents = res;
    env.n_residents = n;
    plan_fit_result r;
    if (plan_fit(&env, &t->need, &r, NULL) == 0)
        return 1;
    char a[32];
    for (uint32_t g = 0; g < r.n_gpus && g < PLAN_MAX_GPUS; g++) {
        if (r.gpu_deficit[g] > 0) {
            gib(a, sizeof(a), r.gpu_deficit[g]);
            snprintf(why, whylen, "needs %s more on GPU %u", a, g);
            return 0;
        }
    }
    gib(a, sizeof(a), r.host_deficit);
    snprintf(why, whylen, "needs %s more host memory", a);
    return 0;
}

void orch_snapshot_without(probe_snapshot *snap, int32_t pid, const plan_demand *d)
{
    for (uint32_t g = 0; g < snap->n_gpus; g++) {
        probe_gpu *gpu = &snap->gpus[g];
        uint64_t freed = 0;
        int listed = 0;
        for (uint32_t k = 0; k < gpu->n_processes;) {
            if (pid > 0 && gpu->processes[k].pid == pid) {
                if (gpu->processes[k].used_bytes != UINT64_MAX)
                    freed += gpu->processes[k].used_bytes;
                listed = 1;
                gpu->processes[k] = gpu->processes[--gpu->n_processes];
            } else {
                k++;
            }
        }
        if (!listed && d != NULL && g < d->n_gpus && g < PLAN_MAX_GPUS)
            freed = d->gpu[g];
        if (!gpu->memory.ok)
            continue;
        if (freed > gpu->used)
            freed = gpu->used;
        gpu->used -= freed;
        gpu->free = gpu->free + freed > gpu->total ? gpu->total : gpu->free + freed;
    }
    if (d == NULL)
        return;
    uint64_t anon = 0;
    plan_demand_resident(d, &anon, NULL);
    probe_host_memory *m = &snap->mem;
    if (m->known & PROBE_MEM_AVAILABLE) {
        m->available += anon;
        if ((m->known & PROBE_MEM_TOTAL) && m->available > m->total)
            m->available = m->total;
    }
    m->effective_available += anon;
    if (m->effective_available > m->available && (m->known & PROBE_MEM_AVAILABLE))
        m->effective_available = m->available;
}

/* ---- the watcher ---------------------------------------------------------- */

int orch_reclaim_new(uv_loop_t *uv, orch_reclaim **out, genai_error *err)
{
    orch_reclaim *w = mem_calloc(1, sizeof(*w));
    if (w == NULL)
        return err_set(err, -ENOMEM, "reclamation watcher");
    int rc = uv_timer_init(uv, &w->timer);
    if (rc < 0) {
        mem_free(w);
        return err_set(err, rc, "reclamation timer: %s", uv_strerror(rc));
    }
    w->timer.data = w;
    *out = w;
    return 0;
}

static void finish(orch_reclaim *w, int ok, uint64_t now)
{
    orch_reclaim_result r;
    memset(&r, 0, sizeof(r));
    r.ok = ok;
    r.elapsed_ms = now - w->start_ms;
    r.polls = w->polls;
    if (!ok)
        snprintf(r.why, sizeof(r.why), "%s", w->last_why[0] ? w->last_why : "no sample");
    w->active = 0;
    uv_timer_stop(&w->timer);
    w->fn(w->arg, &r);
}

static void on_tick(uv_timer_t *t)
{
    orch_reclaim *w = t->data;
    if (!w->active)
        return;
    probe_snapshot snap;
    genai_error e;
    genai_error_clear(&e);
    int done = 0;
    w->polls++;
    if (w->sample(w->sample_arg, &snap, &e) == 0) {
        done = orch_reclaim_check(&snap, &w->target, w->last_why, sizeof(w->last_why));
        probe_snapshot_free(&snap);
    } else {
        snprintf(w->last_why, sizeof(w->last_why), "probe failed: %.150s", e.detail);
    }
    uint64_t now = mono_ms();
    if (done) {
        finish(w, 1, now);
        return;
    }
    if (now >= w->deadline_ms) {
        LOG_WARN(MOD, "memory not reclaimed after %" PRIu64 " ms: %s", now - w->start_ms,
                 w->last_why);
        finish(w, 0, now);
        return;
    }
    uint64_t delay = w->next_delay_ms;
    if (now + delay > w->deadline_ms)
        delay = w->deadline_ms - now;
    w->next_delay_ms = w->next_delay_ms * 2 > w->max_ms ? w->max_ms : w->next_delay_ms * 2;
    uv_timer_start(&w->timer, on_tick, delay, 0);
}

int orch_reclaim_start(orch_reclaim *w, const orch_reclaim_target *t, orch_sample_fn sample,
                       void *sample_arg, int first_ms, int max_ms, int timeout_ms,
                       orch_reclaim_fn fn, void *arg)
{
    if (t == NULL || sample == NULL || fn == NULL || first_ms <= 0 || max_ms < first_ms ||
        timeout_ms < 0 || t->n_pids > ORCH_RECLAIM_MAX_PIDS ||
        t->n_residents > ORCH_RECLAIM_MAX_RESIDENTS)
        return GENAI_EBAD_ARG;
    orch_reclaim_cancel(w);
    w->target = *t;
    w->sample = sample;
    w->sample_arg = sample_arg;
    w->fn = fn;
    w->arg = arg;
    w->start_ms = mono_ms();
    w->deadline_ms = w->start_ms + (uint64_t)timeout_ms;
    w->next_delay_ms = (uint64_t)first_ms;
    w->max_ms = (uint64_t)max_ms;
    w->polls = 0;
    w->last_why[0] = '\0';
    w->active = 1;
    uv_timer_start(&w->timer, on_tick, 0, 0);
    return 0;
}

void orch_reclaim_cancel(orch_reclaim *w)
{
    if (w == NULL || !w->active)
        return;
    w->active = 0;
    uv_timer_stop(&w->timer);
}

int orch_reclaim_active(const orch_reclaim *w)
{
    return w != NULL && w->active;
}

static void on_closed(uv_handle_t *h)
{
    mem_free(h->data);
}

void orch_reclaim_free(orch_reclaim *w)
{
    if (w == NULL)
        return;
    orch_reclaim_cancel(w);
    uv_close((uv_handle_t *)&w->timer, on_closed);
}
