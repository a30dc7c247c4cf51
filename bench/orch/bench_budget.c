/*
 * bench_budget.c - how long a reservation takes, against the raw stop and
 * load times of the same runtimes measured in the same run.
 *
 * The scene of docs/budgets.md: an 8 GiB fake GPU, the 12B-like LLM at
 * -ngl 45 -c 2048 on fake-llama-server (7.06 GB of the card), and an app
 * asking for 4 GiB. Medians over N:
 *
 *   raw stop      llm_runtime_stop on a bare READY runtime -> its GPU memory
 *                 observed free (the fake driver lists no allocation of its
 *                 pid), polled on the same 10 ms loop tick
 *   raw load      llm_runtime_start on a bare runtime -> READY
 *   confirm       orch_rsv_request with the LLM READY in the orchestrator
 *                 -> the reservation HELD (drain, stop, reclamation, the
 *                 reservation's own poll)
 *   restore       orch_rsv_release -> the LLM READY again (the hold lifted,
 *                 the orchestrator's reclamation check and pinned reload)
 *
 *   ratios: confirm / raw stop, restore / raw load.
 *
 * Usage: bench_budget [N] [poll_ms] [llm_hold_ms]. poll_ms is the
 * reservation's sampling while pending (watch.fast_interval_ms, 250 by
 * default); llm_hold_ms makes fake-llama-server keep its GPU memory after
 * exit, as a driver that gives memory back late. Needs GENAI_BUILD_DIR.
 */
#include "cmocka_all.h"

#include "bench_util.h"
#include "../../tests/orch/orch_harness.h"
#include "../../tests/proc/proc_test_util.h"
#include "core/alloc.h"
#include "orch/reserve.h"
#include "sys/fakegpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GIB (1ull << 30)

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_u64);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int pid_gone(oh *h, void *arg)
{
    pid_t pid = *(pid_t *)arg;
    fakegpu_state st;
    if (fakegpu_read(h->gpu, &st, NULL) < 0)
        return 0;
    int listed = 0;
    for (uint32_t i = 0; i < st.n_allocs; i++)
        listed |= st.allocs[i].pid == pid;
    int gone = !listed && st.devices[0].used_bytes == 0;
    fakegpu_state_free(&st);
    return gone;
}

static llm_rt_state g_rt;
static void on_rt(void *arg, llm_runtime *rt, const llm_rt_event *ev)
{
    (void)arg;
    (void)rt;
    g_rt = ev->state;
}

static int rt_is(oh *h, void *arg)
{
    (void)h;
    return g_rt == *(llm_rt_state *)arg;
}

/* A bare runtime: start -> READY (*load_us), stop -> memory free (*stop_us). */
static void raw(oh *h, const llm_rt_config *cfg, plan_footprints *fp, uint64_t *load_us,
                uint64_t *stop_us)
{
    llm_runtime *rt = NULL;
    if (llm_runtime_new(&h->uv, cfg, fp, on_rt, NULL, &rt, NULL) < 0)
        abort();
    g_rt = LLM_RT_STOPPED;
    genai_error e;
    uint64_t t0 = uv_hrtime();
    if (llm_runtime_start(rt, &e) < 0) {
        fprintf(stderr, "raw load: %s\n", e.detail);
        abort();
    }
    llm_rt_state want = LLM_RT_READY;
    if (oh_run_until(h, rt_is, &want, 30000))
        abort();
    *load_us = (uv_hrtime() - t0) / 1000;
    pid_t pid = llm_runtime_pid(rt);
    t0 = uv_hrtime();
    llm_runtime_stop(rt);
    want = LLM_RT_STOPPED;
    if (oh_run_until(h, rt_is, &want, 30000) || oh_run_until(h, pid_gone, &pid, 30000))
        abort();
    *stop_us = (uv_hrtime() - t0) / 1000;
    llm_runtime_free(rt);
}

typedef struct rsv_wait {
    orch_rsv *b;
    uint64_t id;
} rsv_wait;

static int held(oh *h, void *arg)
{
    (void)h;
    rsv_wait *w = arg;
    const orch_reservation *r = orch_rsv_get(w->b, w->id);
    return r != NULL && r->state == ORCH_RSV_HELD;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? bench_arg_int("bench_budget", argv[1], 1, 1000) : 10;
    int poll = argc > 2 ? bench_arg_int("bench_budget", argv[2], 1, 10000) : 250;
    int hold = argc > 3 ? bench_arg_int("bench_budget", argv[3], 0, 60000) : 0;
    if (getenv("GENAI_BUILD_DIR") == NULL) {
        fprintf(stderr, "bench_budget: set GENAI_BUILD_DIR to the build tree\n");
        return 2;
    }
    ptu_fd_baseline();
    oh h;
    oh_setup(&h);
    oh_fake_gpu(&h, 8 * GIB);
    oh_write_llm(&h, 12288);
    oh_write_sd(&h);
    char hold_s[32];
    snprintf(hold_s, sizeof(hold_s), "%d", hold);
    if (hold > 0)
        setenv("FAKE_LLAMA_GPU_HOLD_MS", hold_s, 1);
    llm_rt_config cfg;
    oh_llm_config(&h, &cfg);
    cfg.ngl = 45;
    cfg.ctx = 2048;
    orch_opts o;
    oh_opts(&h, &o);
    o.llm = &cfg;
    plan_footprints *fp = plan_footprints_new();
    o.fp = fp;
    oh_start(&h, &o);
    orch_rsv_opts ro;
    memset(&ro, 0, sizeof(ro));
    ro.poll_ms = poll;
    orch_rsv *b = NULL;
    if (orch_rsv_new(&h.uv, h.o, &ro, &b, NULL) < 0)
        return 1;

    uint64_t *load = mem_calloc((size_t)n, sizeof(uint64_t));
    uint64_t *stop = mem_calloc((size_t)n, sizeof(uint64_t));
    uint64_t *conf = mem_calloc((size_t)n, sizeof(uint64_t));
    uint64_t *rest = mem_calloc((size_t)n, sizeof(uint64_t));
    if (load == NULL || stop == NULL || conf == NULL || rest == NULL)
        return 1;
    uint64_t warm_l, warm_s;
    raw(&h, &cfg, fp, &warm_l, &warm_s); /* learns the footprint; not counted */
    for (int i = 0; i < n; i++)
        raw(&h, &cfg, fp, &load[i], &stop[i]);
    if (orch_llm_load(h.o, NULL) < 0 || oh_wait_llm(&h, ORCH_LLM_READY, 30000) != 0)
        return 1;
    for (int i = 0; i < n; i++) {
        rsv_wait w = {b, 0};
        uint64_t t0 = uv_hrtime();
        genai_error e;
        if (orch_rsv_request(b, 0, 4 * GIB, 600, "bench", &w.id, &e) < 0) {
            fprintf(stderr, "request: %s\n", e.detail);
            return 1;
        }
        if (oh_run_until(&h, held, &w, 30000) != 0)
            return 1;
        conf[i] = (uv_hrtime() - t0) / 1000;
        size_t ready = oh_count(&h, ORCH_EV_LLM_READY);
        t0 = uv_hrtime();
        if (orch_rsv_release(b, w.id) < 0 ||
            oh_wait_events(&h, ORCH_EV_LLM_READY, ready + 1, 30000))
            return 1;
        rest[i] = (uv_hrtime() - t0) / 1000;
    }
    uint64_t ml = median(load, n), ms = median(stop, n), mc = median(conf, n), mr = median(rest, n);
    printf("iterations: %d, reservation poll: %d ms, LLM GPU hold after exit: %d ms\n", n, poll,
           hold);
    printf("raw stop         %8.1f ms (stop -> GPU memory observed free)\n", (double)ms / 1000.0);
    printf("raw load         %8.1f ms (start -> READY)\n", (double)ml / 1000.0);
    printf("confirm          %8.1f ms (request -> reservation held)\n", (double)mc / 1000.0);
    printf("restore          %8.1f ms (release -> LLM READY)\n", (double)mr / 1000.0);
    printf("ratio confirm/stop   %6.2f\n", (double)mc / (double)ms);
    printf("ratio restore/load   %6.2f\n", (double)mr / (double)ml);
    mem_free(load);
    mem_free(stop);
    mem_free(conf);
    mem_free(rest);
    orch_rsv_free(b);
    oh_done(&h);
    plan_footprints_free(fp);
    return 0;
}
