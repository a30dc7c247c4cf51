/*
 * test_budget.c - sharing the machine, end to end with the fake GPU and the
 * doubles as real processes (orch_harness.h):
 *   - another pid grabs 3 GiB of the 8 GiB card while the LLM is resident:
 *     with policy "offload" the LLM is moved aside and comes back when the
 *     memory does (a request made meanwhile waits and is granted); with
 *     policy "warn" it stays, and the watcher only reports;
 *   - a 4 GiB reservation offloads the LLM, is confirmed only after the
 *     memory is observed free (the double holds its GPU memory 400 ms after
 *     exit), and the LLM returns after release; an expired reservation is
 *     released automatically;
 *   - on a CPU-only machine with a host budget smaller than LLM + image job,
 *     the image job makes the LLM offload and reload.
 */
#include "cmocka_all.h"

#include "../proc/proc_test_util.h"
#include "core/config.h"
#include "core/events.h"
#include "core/metrics.h"
#include "orch/reserve.h"
#include "orch/watch.h"
#include "orch_harness.h"
#include "plan/budget.h"
#include "plan/diffusion.h"
#include "sys/fakegpu.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define GIB (1ull << 30)
#define MIB (1ull << 20)

/* ---- recording ----------------------------------------------------------------- */

static orch_watch_event wev[64];
static size_t n_wev;
static char bus_types[256][64];
static size_t n_bus;

static void on_watch(void *arg, const orch_watch_event *ev)
{
    (void)arg;
    if (n_wev < 64)
        wev[n_wev++] = *ev;
}

static size_t count_watch(orch_watch_kind k)
{
    size_t n = 0;
    for (size_t i = 0; i < n_wev; i++)
        n += wev[i].kind == k;
    return n;
}

static void on_bus(void *arg, const event *ev)
{
    (void)arg;
    if (n_bus < 256)
        snprintf(bus_types[n_bus++], sizeof(bus_types[0]), "%s", ev->type);
}

/* Index of the first bus event of that type at or after from, or -1. */
static int bus_find(const char *type, size_t from)
{
    for (size_t i = from; i < n_bus; i++)
        if (strcmp(bus_types[i], type) == 0)
            return (int)i;
    return -1;
}

typedef struct req {
    int answered;
    int code;
    uint64_t ticket;
} req;

static void on_grant(void *arg, const orch_llm_grant *g)
{
    req *r = arg;
    r->answered++;
    r->code = g->code;
}

static void acquire(oh *h, req *r, int deadline_ms)
{
    memset(r, 0, sizeof(*r));
    int ra = 0;
    assert_int_equal(orch_llm_acquire(h->o, orch_now_ms() + (uint64_t)deadline_ms, on_grant, r,
                                      &r->ticket, &ra, NULL),
                     0);
}

static int answered(oh *h, void *arg)
{
    (void)h;
    return ((req *)arg)->answered > 0;
}

static int watch_seen(oh *h, void *arg)
{
    (void)h;
    return count_watch(*(orch_watch_kind *)arg) > 0;
}

/* Runs the loop for ms, whatever happens. */
static int never(oh *h, void *arg)
{
    (void)h;
    (void)arg;
    return 0;
}
static void run_for(oh *h, int ms)
{
    (void)oh_run_until(h, never, NULL, ms);
}

/* ---- set-up ------------------------------------------------------------------------ */

static events *bus;
static metrics *met;

/* hold_ms > 0: the LLM double keeps its GPU memory that long after exit. */
static void start(oh *h, int ngl, int hold_ms)
{
    n_wev = 0;
    n_bus = 0;
    assert_int_equal(events_new(&bus), 0);
    assert_int_equal(metrics_new(&met), 0);
    assert_int_equal(events_subscribe(bus, on_bus, NULL, NULL), 0);
    oh_setup(h);
    if (hold_ms > 0) {
        char v[16];
        snprintf(v, sizeof(v), "%d", hold_ms);
        setenv("FAKE_LLAMA_GPU_HOLD_MS", v, 1);
    }
    oh_fake_gpu(h, 8 * GIB);
    oh_write_llm(h, 12288);
    oh_write_sd(h);
    llm_rt_config cfg;
    oh_llm_config(h, &cfg);
    cfg.ngl = ngl;
    cfg.ctx = 2048;
    orch_opts o;
    oh_opts(h, &o);
    o.llm = &cfg;
    o.bus = bus;
    o.metrics = met;
    oh_start(h, &o);
    assert_int_equal(orch_llm_load(h->o, NULL), 0);
    assert_int_equal(oh_wait_llm(h, ORCH_LLM_READY, 20000), 0);
    oh_note_pid(h, orch_llm_pid(h->o));
}

static void finish(oh *h)
{
    plan_policy_set(NULL);
    oh_done(h);
    events_free(bus);
    metrics_free(met);
    bus = NULL;
    met = NULL;
}

/* Another program: a child process that holds bytes of the fake GPU. */
static pid_t hog_start(oh *h, uint64_t bytes)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (;;)
            pause();
    }
    uint64_t free_before = 0;
    genai_error e;
    int rc = fakegpu_try_alloc(h->gpu, 0, pid, bytes, &free_before, &e);
    if (rc != 0)
        fail_msg("the hog could not allocate %llu MiB (%llu MiB free): %d",
                 (unsigned long long)(bytes >> 20), (unsigned long long)(free_before >> 20), rc);
    return pid;
}

static void hog_stop(oh *h, pid_t pid)
{
    genai_error e;
    assert_true(fakegpu_release(h->gpu, pid, &e) >= 0);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
}

static orch_watch *watch_start(oh *h, int policy)
{
    orch_watch_opts wo;
    memset(&wo, 0, sizeof(wo));
    wo.interval_ms = 20;
    wo.fast_ms = 10;
    wo.policy = policy;
    wo.on_event = on_watch;
    wo.bus = bus;
    wo.metrics = met;
    orch_watch *w = NULL;
    genai_error e;
    assert_int_equal(orch_watch_new(&h->uv, h->o, &wo, &w, &e), 0);
    return w;
}

/* -ngl 30 puts about 4.4 GiB of the LLM on the card: beside a 3 GiB hog it
 * still fits physically (the hog can allocate), but not with a 1 GiB
 * reserve: 8 - 3 - 1 = 4 GiB usable. */
#define OTHERS_NGL 30

static void others_setup(oh *h, pid_t *llm, uint64_t *held)
{
    start(h, OTHERS_NGL, 0);
    *llm = orch_llm_pid(h->o);
    *held = oh_gpu_bytes_of(h, *llm);
    printf("# LLM -ngl %d holds %.2f GiB of the 8 GiB fake GPU\n", OTHERS_NGL,
           (double)*held / (double)GIB);
    assert_true(*held > 4 * GIB && *held <= 5 * GIB);
    plan_policy p;
    memset(&p, 0, sizeof(p));
    p.reserve_gpu[0] = (config_amount){CONFIG_AMOUNT_BYTES, 1 * GIB, 0};
    plan_policy_set(&p);
}

static void test_others_offload(void **state)
{
    (void)state;
    oh h;
    pid_t llm;
    uint64_t held;
    others_setup(&h, &llm, &held);
    orch_watch *w = watch_start(&h, CONFIG_OTHERS_OFFLOAD);
    /* Alone on the card, nothing to report. */
    run_for(&h, 200);
    assert_true(orch_watch_get_stats(w)->samples >= 3);
    assert_int_equal(n_wev, 0);

    pid_t hog = hog_start(&h, 3 * GIB);
    orch_watch_kind k = ORCH_WATCH_OFFLOAD;
    assert_int_equal(oh_run_until(&h, watch_seen, &k, 5000), 0);
    assert_int_equal(wev[0].kind, ORCH_WATCH_PRESSURE);
    assert_int_equal(wev[0].v.device, 0);
    assert_int_equal(wev[0].v.need, held);
    assert_int_equal(wev[0].v.usable, 4 * GIB);
    assert_true(wev[0].v.others >= 3 * GIB);
    assert_non_null(strstr(wev[0].v.why, "GPU 0"));
    printf("# pressure: %s\n", wev[0].v.why);

    /* The LLM is moved aside through the orchestrator's path. */
    assert_int_equal(oh_wait_llm(&h, ORCH_LLM_AWAY, 10000), 0);
    assert_int_equal(oh_gpu_bytes_of(&h, llm), 0);
    assert_int_equal(oh_count(&h, ORCH_EV_OFFLOAD_STARTED), 1);
    assert_non_null(strstr(oh_nth(&h, ORCH_EV_OFFLOAD_STARTED, 0)->text, "other programs"));

    /* A request made now waits: the memory is not back. */
    req r;
    acquire(&h, &r, 20000);
    run_for(&h, 300);
    assert_int_equal(r.answered, 0);
    assert_int_equal(orch_llm_status(h.o, NULL), ORCH_LLM_AWAY);

    /* The hog leaves: the LLM returns and the request is granted. */
    hog_stop(&h, hog);
    assert_int_equal(oh_run_until(&h, answered, &r, 15000), 0);
    assert_int_equal(r.code, 0);
    assert_int_equal(orch_llm_status(h.o, NULL), ORCH_LLM_READY);
    assert_int_equal(count_watch(ORCH_WATCH_RESTORED), 1);
    assert_int_not_equal(orch_llm_pid(h.o), llm);
    oh_note_pid(&h, orch_llm_pid(h.o));
    assert_int_equal(orch_llm_release(h.o, r.ticket), 0);
    /* The reload happened after the restore, with the pinned -ngl. */
    assert_true(oh_count(&h, ORCH_EV_RELOAD_ATTEMPT) >= 1);
    int p = bus_find("budget.pressure", 0);
    int off = bus_find("budget.offload", 0);
    int rest = bus_find("budget.restored", 0);
    assert_true(p >= 0 && off > p && rest > off);
    assert_true(bus_find("orch.llm_ready", (size_t)rest) > rest);
    assert_int_equal(metrics_value(met, "genai_budget_events_total", "event=\"offload\""), 1);
    run_for(&h, 100); /* a sample with the LLM back */
    assert_true(metrics_value(met, "genai_gpu_own_bytes", "gpu=\"0\"") > 4.0 * (double)GIB);
    assert_int_equal(oh_gpu_bytes_of(&h, orch_llm_pid(h.o)), held);
    orch_watch_free(w);
    finish(&h);
}

static void test_others_warn(void **state)
{
    (void)state;
    oh h;
    pid_t llm;
    uint64_t held;
    others_setup(&h, &llm, &held);
    orch_watch *w = watch_start(&h, CONFIG_OTHERS_WARN);
    pid_t hog = hog_start(&h, 3 * GIB);
    orch_watch_kind k = ORCH_WATCH_PRESSURE;
    assert_int_equal(oh_run_until(&h, watch_seen, &k, 5000), 0);
    /* Reported once, and nothing moves. */
    run_for(&h, 400);
    assert_int_equal(count_watch(ORCH_WATCH_PRESSURE), 1);
    assert_int_equal(count_watch(ORCH_WATCH_OFFLOAD), 0);
    assert_int_equal(orch_llm_status(h.o, NULL), ORCH_LLM_READY);
    assert_int_equal(orch_llm_pid(h.o), llm);
    assert_int_equal(oh_count(&h, ORCH_EV_OFFLOAD_STARTED), 0);
    assert_int_equal(oh_gpu_bytes_of(&h, llm), held);
    assert_true(metrics_value(met, "genai_gpu_others_bytes", "gpu=\"0\"") >= 3.0 * (double)GIB);
    /* Requests are still served. */
    req r;
    acquire(&h, &r, 5000);
    assert_int_equal(oh_run_until(&h, answered, &r, 5000), 0);
    assert_int_equal(r.code, 0);
    assert_int_equal(orch_llm_release(h.o, r.ticket), 0);
    hog_stop(&h, hog);
    k = ORCH_WATCH_RESTORED;
    assert_int_equal(oh_run_until(&h, watch_seen, &k, 5000), 0);
    assert_int_equal(orch_llm_pid(h.o), llm);
    assert_true(bus_find("budget.pressure", 0) >= 0);
    assert_int_equal(bus_find("budget.offload", 0), -1);
    orch_watch_free(w);
    finish(&h);
}

/* ---- reservations ---------------------------------------------------------------- */

static orch_reservation rsv_seen[32];
static size_t n_rsv_seen;
static uint64_t free_at_confirm;
static int llm_listed_at_confirm;
static char gpu_path[300];
static pid_t watched_llm;

static void on_rsv(void *arg, const orch_reservation *r)
{
    (void)arg;
    if (n_rsv_seen < 32)
        rsv_seen[n_rsv_seen++] = *r;
    if (r->state == ORCH_RSV_HELD && r->device == 0) {
        /* What the fake driver says at the moment of confirmation. */
        fakegpu_state st;
        assert_int_equal(fakegpu_read(gpu_path, &st, NULL), 0);
        uint64_t used = st.devices[0].used_bytes;
        free_at_confirm = st.devices[0].total_bytes - used;
        llm_listed_at_confirm = 0;
        for (uint32_t i = 0; i < st.n_allocs; i++)
            llm_listed_at_confirm |= st.allocs[i].pid == watched_llm;
        fakegpu_state_free(&st);
    }
}

typedef struct rsv_wait {
    orch_rsv *b;
    uint64_t id;
    orch_rsv_state st;
} rsv_wait;

static int rsv_is(oh *h, void *arg)
{
    (void)h;
    rsv_wait *w = arg;
    const orch_reservation *r = orch_rsv_get(w->b, w->id);
    return r != NULL && r->state == w->st;
}

static orch_rsv *rsv_start(oh *h)
{
    n_rsv_seen = 0;
    snprintf(gpu_path, sizeof(gpu_path), "%s", h->gpu);
    orch_rsv_opts ro;
    memset(&ro, 0, sizeof(ro));
    ro.poll_ms = 20;
    ro.on_change = on_rsv;
    ro.bus = bus;
    ro.metrics = met;
    orch_rsv *b = NULL;
    genai_error e;
    assert_int_equal(orch_rsv_new(&h->uv, h->o, &ro, &b, &e), 0);
    return b;
}

static void test_reservation_offloads_and_returns(void **state)
{
    (void)state;
    oh h;
    /* The LLM: 7.06 GB of the 8 GiB card; its GPU memory comes back
     * 400 ms after it exits. */
    start(&h, 45, 400);
    watched_llm = orch_llm_pid(h.o);
    orch_rsv *b = rsv_start(&h);

    uint64_t id = 0;
    genai_error e;
    uint64_t t0 = orch_now_ms();
    assert_int_equal(orch_rsv_request(b, 0, 4 * GIB, 30, "the game loads a level", &id, &e), 0);
    const orch_reservation *r = orch_rsv_get(b, id);
    assert_non_null(r);
    assert_int_equal(r->state, ORCH_RSV_PENDING);
    assert_true(r->moved);
    assert_string_equal(r->reason, "the game loads a level");

    /* A request made now waits in the queue. */
    req q;
    acquire(&h, &q, 30000);

    rsv_wait wt = {b, id, ORCH_RSV_HELD};
    assert_int_equal(oh_run_until(&h, rsv_is, &wt, 15000), 0);
    uint64_t confirm_ms = orch_now_ms() - t0;
    r = orch_rsv_get(b, id);
    printf("# reservation confirmed in %llu ms; free then %.2f GiB\n",
           (unsigned long long)(r->confirmed_ms - r->created_ms),
           (double)free_at_confirm / (double)GIB);
    /* Confirmed only once the memory was observed free: the LLM had stopped,
     * its pid was no longer listed and 4 GiB were free. */
    assert_true(free_at_confirm >= 4 * GIB);
    assert_false(llm_listed_at_confirm);
    assert_int_equal(oh_count(&h, ORCH_EV_LLM_STOPPED), 1);
    assert_true(confirm_ms >= oh_nth(&h, ORCH_EV_LLM_STOPPED, 0)->ev.ms);
    assert_int_equal(q.answered, 0);
    /* Held: nothing comes back while it lasts. */
    run_for(&h, 300);
    assert_int_equal(orch_rsv_get(b, id)->state, ORCH_RSV_HELD);
    assert_int_equal(q.answered, 0);
    assert_int_equal(orch_llm_status(h.o, NULL), ORCH_LLM_AWAY);
    /* While held, genai plans as if the 4 GiB were gone. */
    plan_reserve promised;
    plan_promised_get(&promised);
    assert_int_equal(promised.gpu[0], 4 * GIB);

    /* Release: the LLM returns and the queued request is granted. */
    assert_int_equal(orch_rsv_release(b, id), 0);
    assert_int_equal(orch_rsv_release(b, id), GENAI_ENOT_FOUND);
    plan_promised_get(&promised);
    assert_int_equal(promised.gpu[0], 0);
    assert_int_equal(oh_run_until(&h, answered, &q, 20000), 0);
    assert_int_equal(q.code, 0);
    assert_int_equal(orch_llm_status(h.o, NULL), ORCH_LLM_READY);
    oh_note_pid(&h, orch_llm_pid(h.o));
    assert_int_equal(orch_llm_release(h.o, q.ticket), 0);
    int req_i = bus_find("reservation.requested", 0);
    int conf_i = bus_find("reservation.confirmed", 0);
    int rel_i = bus_find("reservation.released", 0);
    assert_true(req_i >= 0 && conf_i > req_i && rel_i > conf_i);
    assert_true(bus_find("orch.llm_stopped", (size_t)req_i) < conf_i);
    assert_true(bus_find("orch.llm_ready", (size_t)rel_i) > rel_i);
    assert_int_equal(metrics_value(met, "genai_reservations_total", "result=\"released\""), 1);
    assert_int_equal(metrics_value(met, "genai_reservation_confirm_seconds", NULL), 1);
    orch_rsv_free(b);
    finish(&h);
}

static void test_reservation_expires(void **state)
{
    (void)state;
    oh h;
    start(&h, 45, 0);
    watched_llm = orch_llm_pid(h.o);
    orch_rsv *b = rsv_start(&h);
    genai_error e;
    uint64_t id = 0;

    /* Requests that cannot be: nothing to reserve, a GPU that is not there,
     * more than the card has. */
    assert_int_equal(orch_rsv_request(b, 0, 0, 10, "x", &id, &e), GENAI_EBAD_ARG);
    assert_int_equal(orch_rsv_request(b, 3, GIB, 10, "x", &id, &e), GENAI_EBAD_ARG);
    assert_int_equal(orch_rsv_request(b, 0, 9 * GIB, 10, "x", &id, &e), GENAI_ENO_FIT);
    assert_int_equal(orch_rsv_request(b, 0, GIB, 0, "x", &id, &e), GENAI_EBAD_ARG);
    assert_int_equal(orch_llm_status(h.o, NULL), ORCH_LLM_READY);

    /* A small host reservation is free at once: nothing moves. */
    uint64_t small = 0;
    assert_int_equal(orch_rsv_request(b, ORCH_RSV_HOST, 16 * MIB, 60, "a texture", &small, &e), 0);
    assert_int_equal(orch_rsv_get(b, small)->state, ORCH_RSV_HELD);
    assert_false(orch_rsv_get(b, small)->moved);
    run_for(&h, 100);
    assert_int_equal(orch_llm_status(h.o, NULL), ORCH_LLM_READY);
    assert_int_equal(orch_rsv_release(b, small), 0);

    /* 4 GiB for three seconds: offload, confirm, expire, reload. */
    assert_int_equal(orch_rsv_request(b, 0, 4 * GIB, 3, "a cutscene", &id, &e), 0);
    rsv_wait wt = {b, id, ORCH_RSV_HELD};
    assert_int_equal(oh_run_until(&h, rsv_is, &wt, 15000), 0);
    wt.st = ORCH_RSV_EXPIRED;
    assert_int_equal(oh_run_until(&h, rsv_is, &wt, 5000), 0);
    const orch_reservation *r = orch_rsv_get(b, id);
    assert_true(r->ended_ms >= r->deadline_ms);
    assert_int_equal(oh_wait_llm(&h, ORCH_LLM_READY, 20000), 0);
    oh_note_pid(&h, orch_llm_pid(h.o));
    assert_int_equal(orch_rsv_active(b), 0);
    assert_true(bus_find("reservation.expired", 0) >= 0);
    assert_int_equal(metrics_value(met, "genai_reservations_total", "result=\"expired\""), 1);
    /* The JSON form. */
    json_t *j = orch_rsv_json(r);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "expired");
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")), (json_int_t)(4 * GIB));
    json_decref(j);
    orch_rsv_free(b);
    finish(&h);
}

/* ---- CPU only, host budget ------------------------------------------------------------ */

static int job_done(oh *h, void *arg)
{
    const orch_job *j = orch_image_job(h->o, *(uint64_t *)arg);
    return j != NULL && j->state == ORCH_JOB_DONE;
}

static void test_cpu_only_host_budget(void **state)
{
    (void)state;
    n_bus = 0;
    assert_int_equal(events_new(&bus), 0);
    assert_int_equal(metrics_new(&met), 0);
    oh h;
    oh_setup(&h);
    /* A narrow model (about 2 GiB) that the double loads in full, so that
     * the footprint measured at READY (admission) and the estimate the
     * reload plans with agree, as they do with the real llama-server. */
    setenv("FAKE_LLAMA_MEM_SCALE", "1", 1);
    oh_write_llm(&h, 256);
    oh_write_sd(&h);
    unsetenv("GENAI_FAKE_GPU");
    /* No GPU providers that could find one: NVML from a path that does not
     * exist, and nothing else. */
    probe_options po;
    memset(&po, 0, sizeof(po));
    po.fake_gpu_path = "";
    po.nvml_path = "/nonexistent/libnvidia-ml.so.1";
    po.providers = PROBE_PROVIDER_NVML;
    llm_rt_config cfg;
    oh_llm_config(&h, &cfg);
    cfg.ngl = 0;
    cfg.ctx = 2048;
    orch_opts o;
    oh_opts(&h, &o);
    o.llm = &cfg;
    o.probe = &po;
    o.bus = bus;
    o.metrics = met;
    oh_start(&h, &o);
    assert_int_equal(orch_llm_load(h.o, NULL), 0);
    if (oh_wait_llm(&h, ORCH_LLM_READY, 20000) != 0) {
        const char *why = "";
        orch_llm_status(h.o, &why);
        fail_msg("the LLM did not load on the CPU: %s", why);
    }
    pid_t llm = orch_llm_pid(h.o);
    oh_note_pid(&h, llm);
    const orch_resident *res = &orch_get_residency(h.o)->e[0];
    uint64_t llm_host = res->demand.host_anon + res->demand.host_file;
    assert_int_equal(res->demand.n_gpus, 0);

    probe_snapshot snap;
    assert_int_equal(probe_take(&po, &snap, NULL), 0);
    assert_int_equal(snap.n_gpus, 0);
    uint64_t avail = snap.mem.effective_available;
    probe_snapshot_free(&snap);
    img_request ir;
    oh_image_request(&h, &ir, OH_SD_NORMAL);
    /* The job's smallest CPU demand (the planner's ladder without a GPU:
     * as asked, + flash attention, + VAE tiling). */
    plan_sd_request pr = {img_request_width(&ir), img_request_height(&ir), 1};
    uint64_t img_min = UINT64_MAX;
    for (int step = 0; step < 3; step++) {
        plan_sd_placement pl = {.diffusion_fa = step >= 1, .vae_tiling = step >= 2, .gpu = -1};
        plan_demand d;
        assert_int_equal(plan_sd_estimate(&h.sd_sizes, &pr, &pl, &d, NULL), 0);
        uint64_t need = d.host_anon + d.host_file;
        if (need < img_min)
            img_min = need;
    }
    /* A host budget the job fits alone but not beside the LLM. */
    uint64_t budget = img_min + llm_host / 2;
    if (budget < llm_host + 256 * MIB)
        budget = llm_host + 256 * MIB;
    if (avail < budget + 2 * GIB) {
        finish(&h);
        printf("# skipped: %.1f GiB available, the test needs %.1f GiB so that only the budget "
               "binds\n",
               (double)avail / (double)GIB, (double)(budget + 2 * GIB) / (double)GIB);
        skip();
    }
    plan_policy p;
    memset(&p, 0, sizeof(p));
    p.budget_host = (config_amount){CONFIG_AMOUNT_BYTES, budget, 0};
    plan_policy_set(&p);
    printf("# CPU only: LLM %.0f MiB of host memory, image job at least %.0f MiB, host budget "
           "%.0f MiB\n",
           (double)llm_host / (double)MIB, (double)img_min / (double)MIB,
           (double)budget / (double)MIB);
    uint64_t id = 0;
    genai_error e;
    assert_int_equal(orch_image_submit(h.o, &ir, NULL, &id, &e), 0);
    assert_int_equal(oh_run_until(&h, job_done, &id, 60000), 0);
    const orch_job *j = orch_image_job(h.o, id);
    if (j->code != 0)
        fail_msg("image job: %d %s", j->code, j->message ? j->message : "");
    assert_true(j->offloaded);
    assert_int_equal(oh_count(&h, ORCH_EV_OFFLOAD_STARTED), 1);
    assert_int_equal(oh_wait_llm(&h, ORCH_LLM_READY, 30000), 0);
    assert_int_not_equal(orch_llm_pid(h.o), llm);
    oh_note_pid(&h, orch_llm_pid(h.o));
    assert_true(oh_count(&h, ORCH_EV_RELOAD_ATTEMPT) >= 1);
    finish(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_others_offload),
        cmocka_unit_test(test_others_warn),
        cmocka_unit_test(test_reservation_offloads_and_returns),
        cmocka_unit_test(test_reservation_expires),
        cmocka_unit_test(test_cpu_only_host_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
