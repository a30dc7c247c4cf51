/*
 * bench_orch.c - genai's own overhead in an offload cycle, with the doubles.
 *
 * The scenario of docs/orchestrator.md (8 GiB fake GPU, the 12B-like LLM at
 * -ngl 45 -c 2048 on fake-llama-server, an SDXL-like job on fake-sd-cli that
 * does not fit beside it). Measured in the same run, medians over N:
 *
 *   image alone   img_runner submit -> job finished, on an empty GPU
 *   load alone    llm_runtime_start -> READY, on an empty GPU (same pinned
 *                 configuration, a fresh runtime as a reload uses)
 *   cycle         orch_image_submit with the LLM READY -> the job finished
 *                 and the LLM READY again (drain, stop, reclamation, image,
 *                 reclamation, reload)
 *   reclamation   what the cycle's own watchers measured (LLM + image)
 *
 *   overhead = cycle - (image alone + load alone + reclamation)
 *
 * It covers what the orchestrator adds: the drain and stop, admission
 * (a probe sample and the placement ladder, twice), the watchers' polling
 * granularity, the phase hand-offs through the idle handle. The stop of the
 * LLM is part of the overhead (no baseline stops a process).
 *
 * Usage: bench_orch [N] [sd_hold_ms]. Needs GENAI_BUILD_DIR (the build tree
 * with the doubles); sd_hold_ms makes fake-sd-cli keep its GPU memory after
 * exit, so reclamation is really waited for.
 */
#include "cmocka_all.h"

#include "bench_util.h"
#include "../../tests/orch/orch_harness.h"
#include "../../tests/proc/proc_test_util.h"
#include "core/alloc.h"
#include "sys/fakegpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int gpu_empty(oh *h, void *arg)
{
    (void)arg;
    fakegpu_state st;
    if (fakegpu_read(h->gpu, &st, NULL) < 0)
        return 0;
    int empty = st.n_devices > 0 && st.devices[0].used_bytes == 0;
    fakegpu_state_free(&st);
    return empty;
}

/* Between baselines: the previous child's memory is back (not timed). */
static void wait_gpu_empty(oh *h)
{
    if (oh_run_until(h, gpu_empty, NULL, 20000) != 0)
        abort();
}

/* ---- image alone: a bare runner ------------------------------------------------ */

static int g_img_done;
static void on_img_state(void *arg, img_runner *r, const img_job *j)
{
    (void)arg;
    (void)r;
    if (j->state == IMG_JOB_SUCCEEDED || j->state == IMG_JOB_FAILED)
        g_img_done = j->state == IMG_JOB_SUCCEEDED ? 1 : -1;
}

static int img_done(oh *h, void *arg)
{
    (void)h;
    (void)arg;
    return g_img_done != 0;
}

static uint64_t image_alone(oh *h)
{
    img_runner_opts ro;
    memset(&ro, 0, sizeof(ro));
    ro.size_model = oh_size_hook;
    ro.size_arg = h;
    ro.work_parent = h->dir;
    ro.on_state = on_img_state;
    img_runner *r = NULL;
    if (img_runner_new(&h->uv, &ro, &r, NULL) < 0)
        abort();
    /* the first job also finds sd-cli and reads its --version: not timed */
    img_request req;
    oh_image_request(h, &req, OH_SD_NORMAL);
    uint64_t id;
    g_img_done = 0;
    if (img_runner_submit(r, &req, NULL, &id, NULL) < 0 || oh_run_until(h, img_done, NULL, 20000))
        abort();
    wait_gpu_empty(h);
    g_img_done = 0;
    uint64_t t0_ns = uv_hrtime();
    if (img_runner_submit(r, &req, NULL, &id, NULL) < 0 || oh_run_until(h, img_done, NULL, 20000))
        abort();
    uint64_t us = (uv_hrtime() - t0_ns) / 1000;
    if (g_img_done != 1)
        abort();
    img_runner_free(r);
    return us;
}

/* ---- load alone: a bare runtime ------------------------------------------------- */

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

static uint64_t load_alone(oh *h, const llm_rt_config *cfg, plan_footprints *fp)
{
    llm_runtime *rt = NULL;
    if (llm_runtime_new(&h->uv, cfg, fp, on_rt, NULL, &rt, NULL) < 0)
        abort();
    g_rt = LLM_RT_STOPPED;
    uint64_t t0 = uv_hrtime();
    genai_error e;
    if (llm_runtime_start(rt, &e) < 0) {
        fprintf(stderr, "load alone: %s\n", e.detail);
        abort();
    }
    llm_rt_state want = LLM_RT_READY;
    if (oh_run_until(h, rt_is, &want, 20000))
        abort();
    uint64_t us = (uv_hrtime() - t0) / 1000;
    llm_runtime_stop(rt);
    want = LLM_RT_STOPPED;
    if (oh_run_until(h, rt_is, &want, 20000))
        abort();
    llm_runtime_free(rt);
    return us;
}

/* ---- the cycle -------------------------------------------------------------------- */

typedef struct cyc {
    uint64_t job;
    size_t ready_before;
} cyc;

static int cycle_done(oh *h, void *arg)
{
    cyc *c = arg;
    const orch_job *j = orch_image_job(h->o, c->job);
    return j != NULL && j->state == ORCH_JOB_DONE &&
           orch_llm_status(h->o, NULL) == ORCH_LLM_READY &&
           oh_count(h, ORCH_EV_LLM_READY) > c->ready_before;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? bench_arg_int("bench_orch", argv[1], 1, 1000) : 10;
    int hold = argc > 2 ? bench_arg_int("bench_orch", argv[2], 0, 60000) : 0;
    if (getenv("GENAI_BUILD_DIR") == NULL) {
        fprintf(stderr, "bench_orch: set GENAI_BUILD_DIR to the build tree\n");
        return 2;
    }
    ptu_fd_baseline();
    oh h;
    oh_setup(&h);
    oh_fake_gpu(&h, 8ull << 30);
    oh_write_llm(&h, 12288);
    oh_write_sd(&h);
    char hold_s[32];
    snprintf(hold_s, sizeof(hold_s), "%d", hold);
    if (hold > 0)
        setenv("FAKE_SD_GPU_HOLD_MS", hold_s, 1);
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

    uint64_t *img = mem_calloc((size_t)n, sizeof(uint64_t));
    uint64_t *load = mem_calloc((size_t)n, sizeof(uint64_t));
    uint64_t *cycle = mem_calloc((size_t)n, sizeof(uint64_t));
    uint64_t *recl = mem_calloc((size_t)n, sizeof(uint64_t));
    uint64_t *over = mem_calloc((size_t)n, sizeof(uint64_t));
    uint64_t *stop = mem_calloc((size_t)n, sizeof(uint64_t));
    if (img == NULL || load == NULL || cycle == NULL || recl == NULL || over == NULL ||
        stop == NULL)
        return 1;
    /* Baselines first, on the empty GPU; the footprint table learns the
     * LLM at its first READY, as the orchestrator's would. */
    (void)load_alone(&h, &cfg, fp);
    for (int i = 0; i < n; i++) {
        wait_gpu_empty(&h);
        img[i] = image_alone(&h);
        wait_gpu_empty(&h);
        load[i] = load_alone(&h, &cfg, fp);
    }
    wait_gpu_empty(&h);
    if (orch_llm_load(h.o, NULL) < 0 || oh_wait_llm(&h, ORCH_LLM_READY, 20000) != 0)
        return 1;
    for (int i = 0; i < n; i++) {
        img_request req;
        oh_image_request(&h, &req, OH_SD_NORMAL);
        cyc c = {0, oh_count(&h, ORCH_EV_LLM_READY)};
        uint64_t t0 = uv_hrtime();
        if (orch_image_submit(h.o, &req, NULL, &c.job, NULL) < 0 ||
            oh_run_until(&h, cycle_done, &c, 60000) != 0)
            return 1;
        cycle[i] = (uv_hrtime() - t0) / 1000;
        const orch_stats *st = orch_get_stats(h.o);
        recl[i] = (st->last_reclaim_ms + st->last_image_reclaim_ms) * 1000;
        stop[i] = st->last_stop_ms * 1000;
        if (orch_image_job(h.o, c.job)->code != 0 || !orch_image_job(h.o, c.job)->offloaded)
            return 1;
        /* per-iteration overhead against this iteration's baselines */
        uint64_t parts = img[i] + load[i] + recl[i];
        over[i] = cycle[i] > parts ? cycle[i] - parts : 0;
    }
    uint64_t mi = median(img, n), ml = median(load, n), mc = median(cycle, n), mr = median(recl, n),
             mo = median(over, n), ms = median(stop, n);
    printf("iterations: %d, sd GPU hold after exit: %d ms\n", n, hold);
    printf("image alone      %8.1f ms\n", (double)mi / 1000.0);
    printf("load alone       %8.1f ms\n", (double)ml / 1000.0);
    printf("reclamation      %8.1f ms (LLM + image, measured by the cycle)\n", (double)mr / 1000.0);
    printf("cycle            %8.1f ms (offload + image + reload)\n", (double)mc / 1000.0);
    printf("overhead         %8.1f ms median (cycle - image - load - reclamation), target < 100\n",
           (double)mo / 1000.0);
    printf("  of which stop  %8.1f ms (SIGTERM -> reaped; no baseline stops a process)\n",
           (double)ms / 1000.0);
    printf("ratio            %8.2f (cycle / (image + load + reclamation))\n",
           (double)mc / (double)(mi + ml + mr));
    mem_free(img);
    mem_free(load);
    mem_free(cycle);
    mem_free(recl);
    mem_free(over);
    mem_free(stop);
    oh_done(&h);
    plan_footprints_free(fp);
    return 0;
}
