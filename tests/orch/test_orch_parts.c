/*
 * test_orch_parts.c - the orchestrator's pure parts: the LLM request gate,
 * the residency table, the reclamation check on hand-made snapshots, and
 * the reclamation watcher against a scripted sampler (no child processes).
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "orch/gate.h"
#include "orch/reclaim.h"
#include "orch/residency.h"

#include <errno.h>
#include <string.h>

/* ---- gate ------------------------------------------------------------------ */

static int g_calls;
static void noop(void *arg, const orch_llm_grant *g)
{
    (void)arg;
    (void)g;
    g_calls++;
}

static void test_gate_fifo_bound_deadlines(void **state)
{
    (void)state;
    orch_gate g;
    orch_gate_init(&g, 3);
    uint64_t t1, t2, t3, t4 = 0;
    assert_int_equal(orch_gate_push(&g, 100, 500, noop, NULL, &t1), 0);
    assert_int_equal(orch_gate_push(&g, 110, 300, noop, NULL, &t2), 0);
    assert_int_equal(orch_gate_push(&g, 120, 900, noop, NULL, &t3), 0);
    assert_true(t1 < t2 && t2 < t3);
    /* over the bound: refused at once, nothing queued */
    assert_int_equal(orch_gate_push(&g, 130, 900, noop, NULL, &t4), GENAI_EBUSY);
    assert_int_equal(t4, 0);
    assert_int_equal(orch_gate_waiting(&g), 3);
    assert_int_equal(orch_gate_next_deadline(&g), 300);

    orch_gate_waiter w;
    assert_int_equal(orch_gate_pop_expired(&g, 299, &w), 0);
    assert_int_equal(orch_gate_pop_expired(&g, 300, &w), 1);
    assert_int_equal(w.ticket, t2);
    assert_int_equal(w.enqueued_ms, 110);
    assert_int_equal(orch_gate_next_deadline(&g), 500);
    /* cancel the tail, then FIFO order for the rest */
    assert_int_equal(orch_gate_cancel(&g, t3), 0);
    assert_int_equal(orch_gate_cancel(&g, t3), GENAI_ENOT_FOUND);
    assert_int_equal(orch_gate_push(&g, 140, 1000, noop, NULL, &t4), 0);
    assert_int_equal(orch_gate_pop(&g, &w), 1);
    assert_int_equal(w.ticket, t1);
    assert_int_equal(orch_gate_pop(&g, &w), 1);
    assert_int_equal(w.ticket, t4);
    assert_int_equal(orch_gate_pop(&g, &w), 0);
    assert_int_equal(orch_gate_next_deadline(&g), UINT64_MAX);

    /* in flight: held, released once */
    for (uint64_t i = 1; i <= 40; i++)
        assert_int_equal(orch_gate_hold(&g, i), 0);
    assert_int_equal(orch_gate_inflight(&g), 40);
    assert_int_equal(orch_gate_release(&g, 7), 0);
    assert_int_equal(orch_gate_release(&g, 7), GENAI_ENOT_FOUND);
    assert_int_equal(orch_gate_inflight(&g), 39);
    /* a waiter left behind is freed with the gate without being called */
    assert_int_equal(orch_gate_push(&g, 150, 2000, noop, NULL, &t1), 0);
    orch_gate_free(&g);
    orch_gate_free(NULL);
    assert_int_equal(g_calls, 0);
}

static void test_gate_out_of_memory(void **state)
{
    (void)state;
    orch_gate g;
    orch_gate_init(&g, 4);
    uint64_t t = 0;
    mem_fail_after(1, 0);
    assert_int_equal(orch_gate_push(&g, 0, 10, noop, NULL, &t), -ENOMEM);
    assert_int_equal(orch_gate_waiting(&g), 0);
    mem_fail_after(1, 0);
    assert_int_equal(orch_gate_hold(&g, 1), -ENOMEM);
    mem_fail_after(0, 0);
    assert_int_equal(orch_gate_inflight(&g), 0);
    orch_gate_free(&g);
}

/* ---- residency -------------------------------------------------------------- */

static plan_demand demand(uint64_t gpu0, uint64_t anon)
{
    plan_demand d;
    memset(&d, 0, sizeof(d));
    d.n_gpus = 1;
    d.gpu[0] = gpu0;
    d.host_anon = anon;
    return d;
}

static void test_residency_table(void **state)
{
    (void)state;
    orch_residency t;
    orch_res_init(&t);
    plan_demand llm = demand(7 * PLAN_GIB, PLAN_GIB), img = demand(3 * PLAN_GIB, 0);
    uint32_t a, b;
    assert_int_equal(orch_res_add(&t, ORCH_KIND_LLM, "llm", &llm, 10, &a), 0);
    assert_int_equal(orch_res_add(&t, ORCH_KIND_IMAGE, "sd-cli", &img, 20, &b), 0);
    assert_true(a != 0 && b != 0 && a != b);
    assert_int_equal(orch_res_gpu_bytes(&t, 0), 10 * PLAN_GIB);
    assert_int_equal(orch_res_set_state(&t, a, ORCH_RES_LOADING, 1234, 30), 0);
    assert_int_equal(orch_res_set_state(&t, a, ORCH_RES_RESIDENT, 0, 50), 0);
    orch_resident *e = orch_res_get(&t, a);
    assert_non_null(e);
    assert_int_equal(e->pid, 1234);
    assert_int_equal(e->resident_ms, 50);
    assert_ptr_equal(orch_res_find(&t, ORCH_KIND_IMAGE), orch_res_get(&t, b));

    /* The fit view: the LLM is in a snapshot taken after it started; the
     * planned image is not; except_id leaves one out. */
    plan_resident r[ORCH_RES_MAX];
    assert_int_equal(orch_res_residents(&t, 0, 60, r, ORCH_RES_MAX), 2);
    assert_int_equal(r[0].pid, 1234);
    assert_int_equal(r[0].in_snapshot, 1);
    assert_int_equal(r[1].in_snapshot, 0);
    assert_int_equal(r[0].demand->gpu[0], 7 * PLAN_GIB);
    assert_int_equal(orch_res_residents(&t, 0, 40, r, ORCH_RES_MAX), 2);
    assert_int_equal(r[0].in_snapshot, 0); /* snapshot older than RESIDENT */
    assert_int_equal(orch_res_residents(&t, a, 60, r, ORCH_RES_MAX), 1);
    assert_int_equal(r[0].demand->gpu[0], 3 * PLAN_GIB);

    plan_demand m = demand(6 * PLAN_GIB, 0);
    assert_int_equal(orch_res_set_demand(&t, a, &m), 0);
    assert_int_equal(orch_res_gpu_bytes(&t, 0), 9 * PLAN_GIB);
    orch_res_remove(&t, a);
    assert_null(orch_res_get(&t, a));
    assert_int_equal(orch_res_set_state(&t, a, ORCH_RES_LEAVING, 0, 70), GENAI_ENOT_FOUND);
    assert_int_equal(t.n, 1);
    for (int i = 1; i < ORCH_RES_MAX; i++)
        assert_int_equal(orch_res_add(&t, ORCH_KIND_IMAGE, "x", NULL, 80, &a), 0);
    assert_int_equal(orch_res_add(&t, ORCH_KIND_IMAGE, "x", NULL, 80, &a), GENAI_EBUSY);
    assert_string_equal(orch_res_state_name(ORCH_RES_LEAVING), "leaving");
    assert_string_equal(orch_kind_name(ORCH_KIND_LLM), "llm");
}

/* ---- reclamation check -------------------------------------------------------- */

typedef struct fake_snap {
    probe_gpu gpu;
    probe_gpu_process procs[4];
} fake_snap;

/* An 8 GiB GPU with `used` bytes in use, of which pid holds pid_bytes
 * (pid 0: nobody listed), and 16 GiB of host available. */
static void make_snap(probe_snapshot *s, fake_snap *f, uint64_t used, int32_t pid,
                      uint64_t pid_bytes)
{
    memset(s, 0, sizeof(*s));
    memset(f, 0, sizeof(*f));
    f->gpu.total = 8 * PLAN_GIB;
    f->gpu.used = used;
    f->gpu.free = f->gpu.total - used;
    f->gpu.memory.ok = 1;
    f->gpu.processes_status.ok = 1;
    if (pid > 0) {
        f->procs[0] = (probe_gpu_process){pid, pid_bytes};
        f->gpu.n_processes = 1;
    }
    f->gpu.processes = f->procs;
    s->gpus = &f->gpu;
    s->n_gpus = 1;
    s->mem.known = PROBE_MEM_TOTAL | PROBE_MEM_AVAILABLE;
    s->mem.total = 32 * PLAN_GIB;
    s->mem.available = 16 * PLAN_GIB;
    s->mem.effective_available = 16 * PLAN_GIB;
    s->mem.status.ok = 1;
}

static void test_reclaim_check(void **state)
{
    (void)state;
    probe_snapshot s;
    fake_snap f;
    orch_reclaim_target t;
    memset(&t, 0, sizeof(t));
    t.pids[0] = 4242;
    t.n_pids = 1;
    t.have_need = 1;
    t.need = demand(7 * PLAN_GIB, PLAN_GIB);
    char why[ORCH_RECLAIM_WHY_MAX];

    /* the old pid still listed: not yet, whatever the free memory */
    make_snap(&s, &f, 100 * PLAN_MIB, 4242, 100 * PLAN_MIB);
    assert_int_equal(orch_reclaim_check(&s, &t, why, sizeof(why)), 0);
    assert_string_equal(why, "GPU 0 still lists pid 4242");
    /* gone from the list, but the driver has not given the memory back */
    make_snap(&s, &f, 3 * PLAN_GIB, 0, 0);
    assert_int_equal(orch_reclaim_check(&s, &t, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "more on GPU 0"));
    /* back: 7 GiB + the 256 MiB reserve fit in 8 GiB - 512 MiB */
    make_snap(&s, &f, 512 * PLAN_MIB, 0, 0);
    assert_int_equal(orch_reclaim_check(&s, &t, why, sizeof(why)), 1);
    /* another process's use counts, a staying resident's prediction too */
    make_snap(&s, &f, 512 * PLAN_MIB, 777, 512 * PLAN_MIB);
    t.residents[0] = demand(PLAN_GIB, 0);
    t.resident_pids[0] = 888;
    t.n_residents = 1;
    assert_int_equal(orch_reclaim_check(&s, &t, why, sizeof(why)), 0);
    /* host memory short */
    t.n_residents = 0;
    t.need = demand(PLAN_GIB, 20 * PLAN_GIB);
    make_snap(&s, &f, 0, 0, 0);
    assert_int_equal(orch_reclaim_check(&s, &t, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "host memory"));
    /* without a need only the pid matters */
    t.have_need = 0;
    assert_int_equal(orch_reclaim_check(&s, &t, NULL, 0), 1);
}

static void test_snapshot_without(void **state)
{
    (void)state;
    probe_snapshot s;
    fake_snap f;
    plan_demand llm = demand(7 * PLAN_GIB, 2 * PLAN_GIB);
    /* listed: its listed use comes back, and it leaves the list */
    make_snap(&s, &f, 7 * PLAN_GIB, 55, 6 * PLAN_GIB);
    orch_snapshot_without(&s, 55, &llm);
    assert_int_equal(s.gpus[0].n_processes, 0);
    assert_int_equal(s.gpus[0].free, 7 * PLAN_GIB);
    assert_int_equal(s.gpus[0].used, PLAN_GIB);
    assert_int_equal(s.mem.available, 18 * PLAN_GIB);
    assert_int_equal(s.mem.effective_available, 18 * PLAN_GIB);
    /* not listed: its demand comes back, capped at what is used */
    make_snap(&s, &f, 5 * PLAN_GIB, 0, 0);
    orch_snapshot_without(&s, 55, &llm);
    assert_int_equal(s.gpus[0].free, 8 * PLAN_GIB);
    assert_int_equal(s.gpus[0].used, 0);
}

/* ---- the watcher with a scripted sampler ---------------------------------------- */

typedef struct script {
    int calls;
    int ok_at; /* the sample number from which the memory is back */
    int done;
    orch_reclaim_result res;
} script;

static int scripted(void *arg, probe_snapshot *out, genai_error *err)
{
    (void)err;
    script *sc = arg;
    sc->calls++;
    /* probe_snapshot_free must be able to free what we return */
    memset(out, 0, sizeof(*out));
    out->gpus = mem_calloc(1, sizeof(probe_gpu));
    if (out->gpus == NULL)
        return -ENOMEM;
    out->n_gpus = 1;
    probe_gpu *g = &out->gpus[0];
    g->total = 8 * PLAN_GIB;
    g->memory.ok = 1;
    g->used = sc->calls >= sc->ok_at ? 0 : 6 * PLAN_GIB;
    g->free = g->total - g->used;
    out->mem.known = PROBE_MEM_TOTAL | PROBE_MEM_AVAILABLE;
    out->mem.total = out->mem.available = out->mem.effective_available = 16 * PLAN_GIB;
    return 0;
}

static void on_result(void *arg, const orch_reclaim_result *r)
{
    script *sc = arg;
    sc->done++;
    sc->res = *r;
}

static void run_watch(script *sc, int timeout_ms)
{
    uv_loop_t uv;
    assert_int_equal(uv_loop_init(&uv), 0);
    orch_reclaim *w = NULL;
    assert_int_equal(orch_reclaim_new(&uv, &w, NULL), 0);
    orch_reclaim_target t;
    memset(&t, 0, sizeof(t));
    t.have_need = 1;
    t.need = demand(4 * PLAN_GIB, 0);
    assert_int_equal(orch_reclaim_start(w, &t, scripted, sc, 0, 250, timeout_ms, on_result, sc),
                     GENAI_EBAD_ARG);
    assert_int_equal(orch_reclaim_start(w, &t, scripted, sc, 10, 40, timeout_ms, on_result, sc), 0);
    assert_int_equal(sc->calls, 0); /* never inside start */
    assert_true(orch_reclaim_active(w));
    while (sc->done == 0)
        uv_run(&uv, UV_RUN_ONCE);
    assert_false(orch_reclaim_active(w));
    orch_reclaim_free(w);
    uv_run(&uv, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&uv), 0);
}

static void test_watcher(void **state)
{
    (void)state;
    /* memory back at the 4th sample: polls at 0, 10, 30, 70 ms */
    script a = {.ok_at = 4};
    run_watch(&a, 5000);
    assert_int_equal(a.done, 1);
    assert_int_equal(a.res.ok, 1);
    assert_int_equal(a.res.polls, 4);
    assert_true(a.res.elapsed_ms >= 70);
    assert_true(a.res.elapsed_ms < 2000);
    /* never back: the deadline ends it, saying why */
    script b = {.ok_at = 1000000};
    run_watch(&b, 200);
    assert_int_equal(b.done, 1);
    assert_int_equal(b.res.ok, 0);
    assert_true(b.res.elapsed_ms >= 200);
    assert_non_null(strstr(b.res.why, "more on GPU 0"));
    /* 0, 10, 30, 70, 110, 150, 190, 200: the backoff caps at 40 ms */
    assert_true(b.res.polls >= 6 && b.res.polls <= 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gate_fifo_bound_deadlines), cmocka_unit_test(test_gate_out_of_memory),
        cmocka_unit_test(test_residency_table),           cmocka_unit_test(test_reclaim_check),
        cmocka_unit_test(test_snapshot_without),          cmocka_unit_test(test_watcher),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
