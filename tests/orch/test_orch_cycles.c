/*
 * test_orch_cycles.c - 100 randomized cycles of the scenario (8 GiB
 * fake GPU, the 12B LLM at -ngl 45) mixing LLM requests, image jobs and
 * injected failures, with real child processes:
 *   - requests with random deadlines, some held long enough to outlast the
 *     drain; each granted one really calls the endpoint (GET /v1/models
 *     with the key) before it releases;
 *   - image jobs that need the offload, that fit beside the LLM with the
 *     text encoder on the CPU, that die on a real out-of-memory, crash by
 *     signal or exit code, hang (stopped at the image timeout), or keep
 *     their GPU memory after exit (slow reclamation);
 *   - an LLM that ignores the first SIGTERM, or keeps its memory after
 *     exit, and now and then a GPU hog that makes the reload fail.
 * At the end of every cycle: the LLM is READY or has a reported reason,
 * every request got an answer (a grant whose endpoint answered 200, or
 * "temporarily unavailable, retry after N s"), every job finished with a
 * result or an error text, no child of an earlier cycle is alive, and the
 * non-socket fd count is where it was.
 *
 * The seed is fixed and printed (ORCH_SEED overrides it); the doubles run
 * with zero step time and short hold times, so the 100 cycles take seconds.
 */
#include "cmocka_all.h"

#include "../proc/proc_test_util.h"
#include "core/alloc.h"
#include "core/http_client.h"
#include "orch_harness.h"
#include "sys/fakegpu.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { CYCLES = 100, MAX_REQ = 4, MAX_JOBS = 3 };

enum job_kind { K_OFFLOAD, K_BESIDE, K_OOM, K_CRASH_SIG, K_CRASH_EXIT, K_HANG, K_SLOW, K_COUNT };
static const char *const kind_names[] = {"offload",    "beside", "oom",         "crash-signal",
                                         "crash-exit", "hang",   "slow-reclaim"};

typedef struct creq {
    oh *h;
    uint64_t ticket;
    int answered;
    int code;
    char detail[512];
    int hold_ms;
    int get_done;
    long status;
    int released;
    uv_timer_t hold;
    int timer_open;
} creq;

typedef struct cjob {
    uint64_t id;
    enum job_kind kind;
} cjob;

typedef struct cycle {
    creq req[MAX_REQ];
    int n_req;
    cjob job[MAX_JOBS];
    int n_jobs;
    int hog; /* 1: allocate a GPU hog when the first image starts */
    int hog_held;
} cycle;

static uint64_t g_rng;
static http_client *g_http;
static cycle *g_cur;
static char g_gpu[300];

static uint32_t rnd(uint32_t n)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng % n);
}

/* ---- requests ---------------------------------------------------------------- */

static void hold_closed(uv_handle_t *hd)
{
    creq *r = hd->data;
    r->timer_open = 0;
}

static void release(creq *r)
{
    assert_int_equal(orch_llm_release(r->h->o, r->ticket), 0);
    r->released = 1;
    uv_close((uv_handle_t *)&r->hold, hold_closed);
}

static void on_hold(uv_timer_t *t)
{
    release(t->data);
}

static void on_get(void *arg, const http_result *res)
{
    creq *r = arg;
    r->get_done = 1;
    r->status = res->rc == 0 ? res->status : res->rc;
    /* keep it a while: long holds outlast the drain */
    uv_timer_start(&r->hold, on_hold, (uint64_t)r->hold_ms, 0);
}

static void on_grant(void *arg, const orch_llm_grant *g)
{
    creq *r = arg;
    r->answered++;
    r->code = g->code;
    snprintf(r->detail, sizeof(r->detail), "%s", g->detail ? g->detail : "");
    if (g->code != 0) {
        uv_close((uv_handle_t *)&r->hold, hold_closed);
        return;
    }
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/models", g->endpoint.port);
    http_get_opts go = {url, g->endpoint.api_key, 3000, 1 << 16};
    http_req *hr;
    if (http_client_get(g_http, &go, on_get, r, &hr) < 0) {
        r->get_done = 1;
        r->status = -1;
        uv_timer_start(&r->hold, on_hold, 0, 0);
    }
}

static void acquire_at(oh *h, creq *r, int deadline)
{
    r->h = h;
    assert_int_equal(uv_timer_init(&h->uv, &r->hold), 0);
    r->hold.data = r;
    r->timer_open = 1;
    r->hold_ms = rnd(5) == 0 ? 60 + (int)rnd(100) : (int)rnd(10); /* long ones outlast the drain */
    genai_error e;
    int ra = 0;
    int rc = orch_llm_acquire(h->o, orch_now_ms() + (uint64_t)deadline, on_grant, r, &r->ticket,
                              &ra, &e);
    if (rc == GENAI_EBUSY) { /* the queue is full: a clear error at once */
        assert_true(ra >= 1);
        assert_non_null(strstr(e.detail, "retry after"));
        r->answered = 1;
        r->code = rc;
        uv_close((uv_handle_t *)&r->hold, hold_closed);
        return;
    }
    assert_int_equal(rc, 0);
}

static void acquire(oh *h, creq *r)
{
    uint32_t x = rnd(3);
    int deadline = x == 0   ? 15000              /* patient: brings a failed LLM back */
                   : x == 1 ? 20 + (int)rnd(200) /* impatient */
                            : 300 + (int)rnd(2700);
    acquire_at(h, r, deadline);
}

/* A request made while the LLM is away: a short deadline meets the "retry
 * after" answer, a long one waits for the reload. */
static void acquire_late(oh *h, creq *r)
{
    acquire_at(h, r, rnd(2) == 0 ? 5 + (int)rnd(40) : 15000);
}

/* ---- image jobs and injected failures ------------------------------------------- */

static void set_sd_env(enum job_kind k)
{
    unsetenv("FAKE_SD_CRASH_AT_STEP");
    unsetenv("FAKE_SD_CRASH_SIGNAL");
    unsetenv("FAKE_SD_CRASH_EXIT");
    unsetenv("FAKE_SD_HANG_AT_STEP");
    unsetenv("FAKE_SD_GPU_HOLD_MS");
    switch (k) {
    case K_CRASH_SIG:
        setenv("FAKE_SD_CRASH_AT_STEP", "2", 1);
        break;
    case K_CRASH_EXIT:
        setenv("FAKE_SD_CRASH_AT_STEP", "1", 1);
        setenv("FAKE_SD_CRASH_EXIT", "1", 1);
        break;
    case K_HANG:
        setenv("FAKE_SD_HANG_AT_STEP", "2", 1);
        break;
    case K_SLOW:
        setenv("FAKE_SD_GPU_HOLD_MS", "200", 1);
        break;
    default:
        break;
    }
}

/* Runs on the loop thread right before sd-cli is spawned for a job: the
 * job's switches reach exactly that child. */
static void hook(oh *h, const orch_event *ev)
{
    cycle *c = g_cur;
    if (c == NULL || ev->type != ORCH_EV_IMAGE_STARTED)
        return;
    for (int i = 0; i < c->n_jobs; i++)
        if (c->job[i].id == ev->job_id)
            set_sd_env(c->job[i].kind);
    if (orch_llm_status(h->o, NULL) == ORCH_LLM_AWAY && c->n_req < MAX_REQ && rnd(2) == 0)
        acquire_late(h, &c->req[c->n_req++]);
    if (c->hog && !c->hog_held && orch_llm_status(h->o, NULL) == ORCH_LLM_AWAY) {
        /* Another GPU user appears while the LLM is away: the reload cannot
         * fit and must end FAILED with the reason. */
        assert_int_equal(fakegpu_try_alloc(g_gpu, 0, getpid(), 3ull << 30, NULL, NULL), 0);
        c->hog_held = 1;
    }
}

static void submit(oh *h, cjob *j)
{
    uint32_t x = rnd(100);
    j->kind = x < 35   ? K_OFFLOAD
              : x < 55 ? K_BESIDE
              : x < 65 ? K_OOM
              : x < 73 ? K_CRASH_SIG
              : x < 81 ? K_CRASH_EXIT
              : x < 85 ? K_HANG
                       : K_SLOW;
    img_request r;
    oh_image_request(h, &r,
                     j->kind == K_OOM      ? OH_SD_BAD
                     : j->kind == K_BESIDE ? OH_SD_SMALL
                                           : OH_SD_NORMAL);
    r.seed = rnd(1000);
    genai_error e;
    assert_int_equal(orch_image_submit(h->o, &r, NULL, &j->id, &e), 0);
}

/* ---- the end of a cycle -------------------------------------------------------------- */

static int cycle_over(oh *h, void *arg)
{
    cycle *c = arg;
    for (int i = 0; i < c->n_req; i++) {
        const creq *r = &c->req[i];
        if (!r->answered || r->timer_open || (r->code == 0 && !r->released))
            return 0;
    }
    for (int i = 0; i < c->n_jobs; i++) {
        const orch_job *j = orch_image_job(h->o, c->job[i].id);
        if (j == NULL || j->state != ORCH_JOB_DONE)
            return 0;
    }
    orch_llm_state st = orch_llm_status(h->o, NULL);
    return orch_images_pending(h->o) == 0 && orch_llm_waiting(h->o) == 0 &&
           (st == ORCH_LLM_READY || st == ORCH_LLM_FAILED);
}

/* Open fds that are not sockets (curl may keep a connection cached). */
static int count_nonsock_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    char p[300], t[300];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || (int)strtol(e->d_name, NULL, 10) == dirfd(d))
            continue;
        snprintf(p, sizeof(p), "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(p, t, sizeof(t) - 1);
        if (k <= 0)
            continue;
        t[k] = '\0';
        if (strncmp(t, "socket:", 7) != 0)
            n++;
    }
    closedir(d);
    return n;
}

static void check_cycle(oh *h, cycle *c, int n, size_t pids_before)
{
    for (int i = 0; i < c->n_req; i++) {
        const creq *r = &c->req[i];
        assert_int_equal(r->answered, 1);
        if (r->code == 0) {
            if (r->status != 200)
                fail_msg("cycle %d: granted request %d: GET /v1/models gave %ld", n, i, r->status);
        } else {
            assert_true(r->code == GENAI_EUNAVAILABLE || r->code == GENAI_EBUSY);
            if (r->code == GENAI_EUNAVAILABLE && strstr(r->detail, "retry after") == NULL)
                fail_msg("cycle %d: unclear error: %s", n, r->detail);
        }
    }
    for (int i = 0; i < c->n_jobs; i++) {
        const orch_job *j = orch_image_job(h->o, c->job[i].id);
        enum job_kind k = c->job[i].kind;
        if (j->code == 0) {
            /* the injected failures never succeed */
            assert_true(k == K_OFFLOAD || k == K_BESIDE || k == K_SLOW);
        } else {
            assert_non_null(j->message);
            assert_true(strlen(j->message) > 10);
            if (k == K_HANG)
                assert_int_equal(j->code, GENAI_ETIMEOUT);
        }
    }
    const char *why = NULL;
    orch_llm_state st = orch_llm_status(h->o, &why);
    if (st == ORCH_LLM_FAILED && (why == NULL || why[0] == '\0'))
        fail_msg("cycle %d: LLM failed without a reason", n);
    /* every child of this and earlier cycles is gone, but the LLM */
    pid_t llm = orch_llm_pid(h->o);
    for (size_t i = 0; i < h->n_pids; i++) {
        if (h->pids[i] == llm)
            continue;
        if (!ptu_wait_pid_gone(h->pids[i], 2000))
            fail_msg("cycle %d: child %ld still runs", n, (long)h->pids[i]);
    }
    (void)pids_before;
}

static void test_random_cycles(void **state)
{
    (void)state;
    const char *s = getenv("ORCH_SEED");
    unsigned long seed = s != NULL ? strtoul(s, NULL, 0) : 20261127ul;
    printf("# seed %lu (set ORCH_SEED to replay)\n", seed);
    g_rng = seed * 2654435761ull + 1;

    oh h;
    oh_setup(&h);
    oh_fake_gpu(&h, 8ull << 30);
    snprintf(g_gpu, sizeof(g_gpu), "%s", h.gpu);
    oh_write_llm(&h, 12288);
    oh_write_sd(&h);
    llm_rt_config cfg;
    oh_llm_config(&h, &cfg);
    cfg.ngl = 45;
    cfg.ctx = 2048;
    cfg.stop_grace_ms = 200;
    cfg.stop_term2_ms = 200;
    orch_opts o;
    oh_opts(&h, &o);
    o.llm = &cfg;
    o.drain_timeout_ms = 50;
    o.reclaim_timeout_ms = 1000;
    o.reclaim_first_ms = 20; /* finer polls than the default: shorter cycles */
    o.reclaim_max_ms = 50;
    o.reload_timeout_ms = 600;
    o.image_timeout_ms = 400;
    o.max_waiters = 3;
    h.hook = hook;
    oh_start(&h, &o);
    assert_int_equal(http_client_new(&h.uv, &g_http, NULL), 0);
    assert_int_equal(orch_llm_load(h.o, NULL), 0);
    assert_int_equal(oh_wait_llm(&h, ORCH_LLM_READY, 20000), 0);

    int ref_fds = -1;
    int64_t t0 = ptu_now_ms();
    int kinds[K_COUNT] = {0};
    int ready = 0, failed = 0, granted = 0, refused = 0;
    for (int n = 0; n < CYCLES; n++) {
        cycle *c = mem_calloc(1, sizeof(*c));
        assert_non_null(c);
        g_cur = c;
        /* the LLM's switches for the reload of this cycle */
        if (rnd(8) == 0)
            setenv("FAKE_LLAMA_HANG_ON_SIGTERM", "1", 1);
        else
            unsetenv("FAKE_LLAMA_HANG_ON_SIGTERM");
        if (rnd(5) == 0)
            setenv("FAKE_LLAMA_GPU_HOLD_MS", "100", 1);
        else
            unsetenv("FAKE_LLAMA_GPU_HOLD_MS");
        c->hog = rnd(25) == 0;
        size_t pids_before = h.n_pids;
        c->n_req = (int)rnd(MAX_REQ + 1);
        c->n_jobs = (int)rnd(MAX_JOBS) + (rnd(4) != 0);
        if (c->n_jobs > MAX_JOBS)
            c->n_jobs = MAX_JOBS;
        int before = c->n_req > 0 ? (int)rnd((uint32_t)c->n_req + 1) : 0;
        for (int i = 0; i < before; i++)
            acquire(&h, &c->req[i]);
        for (int i = 0; i < c->n_jobs; i++) {
            submit(&h, &c->job[i]);
            kinds[c->job[i].kind]++;
        }
        for (int i = before; i < c->n_req; i++)
            acquire(&h, &c->req[i]);
        if (oh_run_until(&h, cycle_over, c, 30000) != 0)
            fail_msg("cycle %d did not settle: LLM %s, %zu waiting, %zu images pending", n,
                     orch_llm_state_name(orch_llm_status(h.o, NULL)), orch_llm_waiting(h.o),
                     orch_images_pending(h.o));
        check_cycle(&h, c, n, pids_before);
        if (c->hog_held)
            assert_true(fakegpu_release(g_gpu, getpid(), NULL) >= 1);
        orch_llm_state st = orch_llm_status(h.o, NULL);
        ready += st == ORCH_LLM_READY;
        failed += st == ORCH_LLM_FAILED;
        for (int i = 0; i < c->n_req; i++) {
            granted += c->req[i].code == 0;
            refused += c->req[i].code == GENAI_EBUSY;
        }
        int fds = count_nonsock_fds();
        if (st == ORCH_LLM_READY) {
            if (ref_fds < 0)
                ref_fds = fds;
            else if (fds != ref_fds)
                fail_msg("cycle %d: %d non-socket fds, %d at the first READY cycle", n, fds,
                         ref_fds);
        }
        g_cur = NULL;
        mem_free(c);
    }
    const orch_stats *st = orch_get_stats(h.o);
    printf("# %d cycles in %lld ms: LLM ready at %d ends, failed (with a reason) at %d; "
           "requests granted %d, timed out %llu, refused %d\n",
           CYCLES, (long long)(ptu_now_ms() - t0), ready, failed, granted,
           (unsigned long long)st->requests_timed_out, refused);
    printf("# offloads %llu, reloads %llu (attempts %llu, given up %llu), images beside %llu, "
           "drain timeouts %llu, reclaim timeouts %llu\n",
           (unsigned long long)st->offloads, (unsigned long long)st->reloads,
           (unsigned long long)st->reload_attempts, (unsigned long long)st->reload_failures,
           (unsigned long long)st->images_beside, (unsigned long long)st->drain_timeouts,
           (unsigned long long)st->reclaim_timeouts);
    printf("# jobs:");
    for (int k = 0; k < K_COUNT; k++)
        printf(" %s %d", kind_names[k], kinds[k]);
    printf("\n");
    assert_true(st->offloads > 10);
    assert_true(st->images_beside > 0);
    assert_true(st->requests_timed_out > 0);
    assert_true(st->drain_timeouts > 0);
    /* beside the LLM the small job needed the cheaper placement */
    int te_cpu = 0;
    for (size_t i = 0; i < oh_count(&h, ORCH_EV_IMAGE_PLACED); i++)
        te_cpu += strstr(oh_nth(&h, ORCH_EV_IMAGE_PLACED, i)->text, "te=cpu") != NULL;
    assert_true(te_cpu > 0);
    http_client_free(g_http);
    g_http = NULL;
    oh_done(&h);
}

int main(void)
{
    ptu_fd_baseline();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_cycles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
