/*
 * test_fit.c - the fit function: exact fit, one byte over, several devices,
 * reserves, residents (predicted vs reported), other processes, host rules.
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "plan/fit.h"
#include "plan_fixtures.h"

#include <string.h>

#define GIB (1ull << 30)
#define MIB (1ull << 20)

static void zero_reserve(plan_fit_env *env)
{
    memset(&env->reserve, 0, sizeof(env->reserve));
}

static plan_demand gpu_demand(uint32_t n, const uint64_t *bytes, uint64_t anon, uint64_t file)
{
    plan_demand d;
    memset(&d, 0, sizeof(d));
    d.n_gpus = n;
    for (uint32_t i = 0; i < n; i++)
        d.gpu[i] = bytes[i];
    d.host_anon = anon;
    d.host_file = file;
    return d;
}

static void test_exact_and_one_over(void **state)
{
    (void)state;
    probe_snapshot snap;
    assert_int_equal(fixture_snapshot(&snap, 1, 8 * GIB, 16 * GIB), 0);
    plan_fit_env env;
    plan_fit_env_init(&env, &snap);
    zero_reserve(&env);
    plan_fit_result r;
    genai_error err;

    uint64_t b = 8 * GIB;
    plan_demand d = gpu_demand(1, &b, 10 * GIB, 6 * GIB);
    assert_int_equal(plan_fit(&env, &d, &r, &err), 0);
    assert_true(r.fits);
    assert_int_equal(r.gpu_margin[0], 0);
    assert_int_equal(r.gpu_deficit[0], 0);
    assert_int_equal(r.host_margin, 0);

    d.gpu[0] = 8 * GIB + 1;
    assert_int_equal(plan_fit(&env, &d, &r, &err), GENAI_ENO_FIT);
    assert_false(r.fits);
    assert_int_equal(r.gpu_margin[0], -1);
    assert_int_equal(r.gpu_deficit[0], 1);
    assert_int_equal(r.host_deficit, 0);
    assert_non_null(strstr(err.detail, "GPU 0"));

    d.gpu[0] = 1;
    d.host_file += 1;
    assert_int_equal(plan_fit(&env, &d, &r, &err), GENAI_ENO_FIT);
    assert_int_equal(r.host_deficit, 1);
    assert_int_equal(r.host_margin, -1);
    assert_non_null(strstr(err.detail, "host"));
    fixture_snapshot_free(&snap);
}

static void test_several_devices_and_reserve(void **state)
{
    (void)state;
    probe_snapshot snap;
    assert_int_equal(fixture_snapshot(&snap, 3, 24 * GIB, 64 * GIB), 0);
    snap.gpus[1].free = 10 * GIB; /* someone else holds 14 GiB */
    plan_fit_env env;
    plan_fit_env_init(&env, &snap);
    plan_fit_result r;

    /* The default reserves apply per device and to the host. */
    assert_int_equal(plan_gpu_usable(&env, 0), 24 * GIB - PLAN_DEFAULT_GPU_RESERVE);
    assert_int_equal(plan_host_usable(&env), 64 * GIB - PLAN_DEFAULT_HOST_RESERVE);

    env.reserve.gpu[1] = 1 * GIB;
    uint64_t need[3] = {20 * GIB, 9 * GIB + 1, 0};
    plan_demand d = gpu_demand(3, need, 0, 0);
    assert_int_equal(plan_fit(&env, &d, &r, NULL), GENAI_ENO_FIT);
    assert_int_equal(r.n_gpus, 3);
    assert_int_equal(r.gpu_deficit[0], 0);
    assert_int_equal(r.gpu_deficit[1], 1);
    assert_int_equal(r.gpu_deficit[2], 0);
    assert_int_equal(r.gpu_usable[1], 9 * GIB);
    d.gpu[1] = 9 * GIB;
    assert_int_equal(plan_fit(&env, &d, &r, NULL), 0);

    /* A demand on a GPU the machine lacks does not fit there. */
    uint64_t four[4] = {0, 0, 0, 1};
    d = gpu_demand(4, four, 0, 0);
    assert_int_equal(plan_fit(&env, &d, &r, NULL), GENAI_ENO_FIT);
    assert_int_equal(r.gpu_deficit[3], 1);

    /* Unknown GPU memory gives nothing usable. */
    snap.gpus[2].memory.ok = 0;
    assert_int_equal(plan_gpu_usable(&env, 2), 0);
    fixture_snapshot_free(&snap);
}

/* Ollama's rule: min(reported free, total - predicted residents - others). */
static void test_residents_gpu(void **state)
{
    (void)state;
    probe_snapshot snap;
    assert_int_equal(fixture_snapshot(&snap, 1, 8 * GIB, 32 * GIB), 0);
    plan_fit_env env;
    plan_fit_env_init(&env, &snap);
    zero_reserve(&env);

    /* An LLM predicted at 6 GiB has just started: the driver still reports
     * only 2 GiB used (lagging). The prediction wins. */
    uint64_t six = 6 * GIB;
    plan_demand llm = gpu_demand(1, &six, 1 * GIB, 2 * GIB);
    plan_resident res = {.demand = &llm, .pid = 4242, .in_snapshot = 1};
    env.residents = &res;
    env.n_residents = 1;
    snap.gpus[0].free = 6 * GIB;
    snap.gpus[0].processes = mem_calloc(2, sizeof(probe_gpu_process));
    assert_non_null(snap.gpus[0].processes);
    snap.gpus[0].n_processes = 1;
    snap.gpus[0].processes[0] = (probe_gpu_process){.pid = 4242, .used_bytes = 2 * GIB};
    assert_int_equal(plan_gpu_usable(&env, 0), 2 * GIB);

    /* Reported free is lower than the prediction says (it uses more than
     * predicted): the report wins. */
    snap.gpus[0].free = 1 * GIB;
    assert_int_equal(plan_gpu_usable(&env, 0), 1 * GIB);

    /* Another program's listed use counts; the resident's own pid does not
     * count twice. */
    snap.gpus[0].free = 8 * GIB;
    snap.gpus[0].n_processes = 2;
    snap.gpus[0].processes[1] = (probe_gpu_process){.pid = 777, .used_bytes = 512 * MIB};
    assert_int_equal(plan_gpu_usable(&env, 0), 2 * GIB - 512 * MIB);
    /* ... unless the driver cannot list processes. */
    snap.gpus[0].processes_status.ok = 0;
    assert_int_equal(plan_gpu_usable(&env, 0), 2 * GIB);

    /* Fit a 2 GiB image job next to the LLM: exact fit. */
    uint64_t two = 2 * GIB;
    plan_demand img = gpu_demand(1, &two, 0, 0);
    plan_fit_result r;
    assert_int_equal(plan_fit(&env, &img, &r, NULL), 0);
    img.gpu[0] += 1;
    assert_int_equal(plan_fit(&env, &img, &r, NULL), GENAI_ENO_FIT);
    assert_int_equal(r.gpu_deficit[0], 1);
    fixture_snapshot_free(&snap);
}

static void test_residents_host(void **state)
{
    (void)state;
    probe_snapshot snap;
    assert_int_equal(fixture_snapshot(&snap, 0, 0, 10 * GIB), 0);
    plan_fit_env env;
    plan_fit_env_init(&env, &snap);
    zero_reserve(&env);

    plan_demand llm;
    memset(&llm, 0, sizeof(llm));
    llm.host_anon = 3 * GIB;
    llm.host_growth = 1 * GIB; /* compute + prompt cache not touched yet */
    llm.host_file = 4 * GIB;   /* mmap-ed weights: in MemAvailable as page cache */
    plan_resident res = {.demand = &llm, .pid = 1, .in_snapshot = 1};
    env.residents = &res;
    env.n_residents = 1;
    /* In the snapshot: its growth and its file pages are charged again. */
    assert_int_equal(plan_host_usable(&env), 10 * GIB - 5 * GIB);
    /* Not yet in the snapshot: everything is charged. */
    res.in_snapshot = 0;
    assert_int_equal(plan_host_usable(&env), 10 * GIB - 7 * GIB);
    /* Never below zero, and the cgroup's view is the one used. */
    snap.mem.effective_available = 2 * GIB;
    assert_int_equal(plan_host_usable(&env), 0);
    snap.mem.status.ok = 0;
    assert_int_equal(plan_host_usable(&env), 0);
    fixture_snapshot_free(&snap);
}

static void test_bad_args(void **state)
{
    (void)state;
    plan_fit_env env;
    plan_fit_env_init(&env, NULL);
    plan_demand d;
    memset(&d, 0, sizeof(d));
    plan_fit_result r;
    assert_int_equal(plan_fit(&env, &d, &r, NULL), GENAI_EBAD_ARG);
    assert_int_equal(plan_fit(NULL, &d, &r, NULL), GENAI_EBAD_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_and_one_over),
        cmocka_unit_test(test_several_devices_and_reserve),
        cmocka_unit_test(test_residents_gpu),
        cmocka_unit_test(test_residents_host),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
