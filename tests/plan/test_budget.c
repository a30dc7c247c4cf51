/*
 * test_budget.c - budgets and reserves in the fit function: amounts (bytes
 * and fractions), the configuration keys, resolution against a snapshot,
 * the usable rule's edge cases, the process policy reaching
 * plan_fit_env_init, and the own/others split of device use.
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "core/config.h"
#include "core/paths.h"
#include "plan/autoconf.h"
#include "plan/budget.h"
#include "plan/fit.h"
#include "plan_fixtures.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GIB (1ull << 30)
#define MIB (1ull << 20)

static void test_parse_amount(void **state)
{
    (void)state;
    config_amount a;
    genai_error err;
    struct {
        const char *text;
        enum config_amount_kind kind;
        uint64_t bytes;
        uint32_t ppm;
    } ok[] = {
        {"6GiB", CONFIG_AMOUNT_BYTES, 6 * GIB, 0},
        {"6G", CONFIG_AMOUNT_BYTES, 6 * GIB, 0},
        {" 512 MiB ", CONFIG_AMOUNT_BYTES, 512 * MIB, 0},
        {"8GB", CONFIG_AMOUNT_BYTES, 8000000000ull, 0},
        {"1.5GiB", CONFIG_AMOUNT_BYTES, 3 * GIB / 2, 0},
        {"1073741824", CONFIG_AMOUNT_BYTES, GIB, 0},
        {"0", CONFIG_AMOUNT_BYTES, 0, 0},
        {"75%", CONFIG_AMOUNT_FRACTION, 0, 750000},
        {"12.5%", CONFIG_AMOUNT_FRACTION, 0, 125000},
        {"100%", CONFIG_AMOUNT_FRACTION, 0, 1000000},
        {"0.75", CONFIG_AMOUNT_FRACTION, 0, 750000},
        {"1.0", CONFIG_AMOUNT_FRACTION, 0, 1000000},
        {"0%", CONFIG_AMOUNT_FRACTION, 0, 0},
        {"none", CONFIG_AMOUNT_NONE, 0, 0},
        {"", CONFIG_AMOUNT_NONE, 0, 0},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        memset(&a, 0xa5, sizeof(a));
        assert_int_equal(config_parse_amount(ok[i].text, &a, &err), 0);
        assert_int_equal(a.kind, ok[i].kind);
        if (a.kind == CONFIG_AMOUNT_BYTES)
            assert_int_equal(a.bytes, ok[i].bytes);
        if (a.kind == CONFIG_AMOUNT_FRACTION)
            assert_int_equal(a.ppm, ok[i].ppm);
    }
    const char *bad[] = {"GiB",         "6 parsecs",    "-1GiB",
                         "101%",        "1.5",          "2.0",
                         "75%%",        "1.0000000001", "99999999999999999999",
                         "20000000TiB", "6,5GiB",       "."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        a = (config_amount){CONFIG_AMOUNT_BYTES, 42, 0};
        assert_int_equal(config_parse_amount(bad[i], &a, &err), GENAI_EBAD_ARG);
        assert_int_equal(a.bytes, 42); /* untouched */
        assert_non_null(strstr(err.detail, bad[i]));
    }
    /* Formatting reads back. */
    char buf[32];
    config_amount f = {CONFIG_AMOUNT_FRACTION, 0, 123456};
    config_format_amount(&f, buf, sizeof(buf));
    assert_string_equal(buf, "12.3456%");
    assert_int_equal(config_parse_amount(buf, &a, NULL), 0);
    assert_int_equal(a.ppm, 123456);
    f = (config_amount){CONFIG_AMOUNT_BYTES, 6 * GIB, 0};
    config_format_amount(&f, buf, sizeof(buf));
    assert_string_equal(buf, "6442450944");
}

static void test_config_keys(void **state)
{
    (void)state;
    genai_config c;
    config_init(&c);
    genai_error err;
    /* Defaults: no budget, default reserves, offload, 1 s / 250 ms. */
    assert_int_equal(c.budget_gpu.n, 0);
    assert_int_equal(c.budget_host.kind, CONFIG_AMOUNT_NONE);
    assert_int_equal(c.others_policy, CONFIG_OTHERS_OFFLOAD);
    assert_int_equal(c.watch_interval_ms, 1000);
    assert_int_equal(c.watch_fast_ms, 250);

    assert_int_equal(config_set(&c, "budget.gpu", "6GiB, 50%", "--test", &err), 0);
    assert_int_equal(c.budget_gpu.n, 2);
    assert_int_equal(c.budget_gpu.v[0].bytes, 6 * GIB);
    assert_int_equal(c.budget_gpu.v[1].ppm, 500000);
    assert_int_equal(config_set(&c, "budget.gpu", "none", "--test", &err), 0);
    assert_int_equal(c.budget_gpu.n, 0);
    assert_int_equal(config_set(&c, "budget.host", "8GiB", "--test", &err), 0);
    assert_int_equal(config_set(&c, "reserve.gpu", "1GiB", "--test", &err), 0);
    assert_int_equal(config_set(&c, "reserve.host", "5%", "--test", &err), 0);
    assert_int_equal(config_set(&c, "other_programs.policy", "warn", "--test", &err), 0);
    assert_int_equal(c.others_policy, CONFIG_OTHERS_WARN);
    assert_int_equal(config_set(&c, "other_programs.policy", "panic", "--test", &err),
                     GENAI_EBAD_ARG);
    assert_non_null(strstr(err.detail, "warn"));
    assert_int_equal(config_set(&c, "budget.host", "lots", "GENAI_BUDGET_HOST", &err),
                     GENAI_EBAD_ARG);
    assert_non_null(strstr(err.detail, "GENAI_BUDGET_HOST"));
    assert_int_equal(c.budget_host.bytes, 8 * GIB); /* unchanged */
    assert_int_equal(config_set(&c, "budget.gpu", "1,2,3,4,5,6,7,8,9", "--test", &err),
                     GENAI_EBAD_ARG);
    assert_int_equal(config_set(&c, "watch.interval_ms", "5", "--test", &err), GENAI_EBAD_ARG);
    assert_int_equal(config_set(&c, "watch.fast_interval_ms", "100", "--test", &err), 0);
    assert_int_equal(c.watch_fast_ms, 100);

    /* The same keys from a file: strings, byte integers, 0..1 reals, arrays. */
    char dir[] = "/tmp/genai-budget-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/genai.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"budget.gpu\": [\"6GiB\", 0.5], \"budget.host\": 4294967296,"
          " \"reserve.host\": \"1GiB\", \"other_programs.policy\": \"offload\","
          " \"watch.interval_ms\": 500}",
          f);
    fclose(f);
    assert_int_equal(config_load_file(&c, path, 1, &err), 0);
    assert_int_equal(c.budget_gpu.n, 2);
    assert_int_equal(c.budget_gpu.v[1].kind, CONFIG_AMOUNT_FRACTION);
    assert_int_equal(c.budget_gpu.v[1].ppm, 500000);
    assert_int_equal(c.budget_host.bytes, 4 * GIB);
    assert_int_equal(c.reserve_host.bytes, GIB);
    assert_int_equal(c.others_policy, CONFIG_OTHERS_OFFLOAD);
    assert_int_equal(c.watch_interval_ms, 500);
    /* A wrong JSON type is refused. */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"budget.host\": true}", f);
    fclose(f);
    assert_int_equal(config_load_file(&c, path, 1, &err), GENAI_EBAD_ARG);
    assert_non_null(strstr(err.detail, "budget.host"));
    unlink(path);
    rmdir(dir);

    /* The environment. */
    setenv("GENAI_BUDGET_HOST", "25%", 1);
    assert_int_equal(config_load_env(&c, &err), 0);
    unsetenv("GENAI_BUDGET_HOST");
    assert_int_equal(c.budget_host.kind, CONFIG_AMOUNT_FRACTION);
    assert_int_equal(c.budget_host.ppm, 250000);

    /* Into a policy: one entry for every GPU, or one per GPU. */
    plan_policy p;
    plan_policy_from_config(&c, &p);
    assert_int_equal(p.budget_gpu[0].bytes, 6 * GIB);
    assert_int_equal(p.budget_gpu[1].ppm, 500000);
    assert_int_equal(p.budget_gpu[2].kind, CONFIG_AMOUNT_NONE);
    assert_int_equal(p.reserve_gpu[0].bytes, GIB);
    assert_int_equal(p.reserve_gpu[7].bytes, GIB);
    config_free(&c);
}

static void test_resolve(void **state)
{
    (void)state;
    probe_snapshot snap;
    assert_int_equal(fixture_snapshot(&snap, 2, 8 * GIB, 16 * GIB), 0);
    snap.mem.known = PROBE_MEM_TOTAL | PROBE_MEM_AVAILABLE; /* total 32 GiB */
    plan_policy p;
    memset(&p, 0, sizeof(p));
    plan_reserve rs;
    plan_budget b;
    /* Nothing set: defaults, no budgets. */
    plan_policy_resolve(&p, &snap, &rs, &b);
    assert_int_equal(rs.gpu[0], PLAN_DEFAULT_GPU_RESERVE);
    assert_int_equal(rs.host, PLAN_DEFAULT_HOST_RESERVE);
    assert_int_equal(b.gpu[1], PLAN_NO_BUDGET);
    assert_int_equal(b.host, PLAN_NO_BUDGET);

    p.budget_gpu[0] = (config_amount){CONFIG_AMOUNT_FRACTION, 0, 750000};
    p.budget_gpu[1] = (config_amount){CONFIG_AMOUNT_BYTES, 3 * GIB, 0};
    p.budget_gpu[2] = (config_amount){CONFIG_AMOUNT_FRACTION, 0, 500000}; /* no such GPU */
    p.budget_host = (config_amount){CONFIG_AMOUNT_FRACTION, 0, 250000};
    p.reserve_gpu[0] = (config_amount){CONFIG_AMOUNT_FRACTION, 0, 100000};
    p.reserve_host = (config_amount){CONFIG_AMOUNT_BYTES, 0, 0};
    plan_policy_resolve(&p, &snap, &rs, &b);
    assert_int_equal(b.gpu[0], 6 * GIB);
    assert_int_equal(b.gpu[1], 3 * GIB);
    assert_int_equal(b.gpu[2], 0); /* a fraction of an unknown total: nothing */
    assert_int_equal(b.host, 8 * GIB);
    assert_int_equal(rs.gpu[0], 8 * GIB / 10);
    assert_int_equal(rs.gpu[1], PLAN_DEFAULT_GPU_RESERVE);
    assert_int_equal(rs.host, 0);

    /* The cgroup limit is the host total when it is lower. */
    snap.mem.cgroup.ok = 1;
    snap.mem.cgroup_limit = 4 * GIB;
    plan_policy_resolve(&p, &snap, &rs, &b);
    assert_int_equal(b.host, 1 * GIB);
    /* No total at all: a fractional host budget allows nothing. */
    snap.mem.cgroup.ok = 0;
    snap.mem.known = PROBE_MEM_AVAILABLE;
    plan_policy_resolve(&p, &snap, &rs, &b);
    assert_int_equal(b.host, 0);
    plan_policy_resolve(&p, NULL, &rs, &b);
    assert_int_equal(b.gpu[0], 0);
    assert_int_equal(b.gpu[1], 3 * GIB);
    assert_int_equal(rs.gpu[0], PLAN_DEFAULT_GPU_RESERVE);

    /* Exact fractions of odd totals do not overflow. */
    config_amount big = {CONFIG_AMOUNT_FRACTION, 0, 999999};
    assert_int_equal(plan_amount_bytes(&big, UINT64_MAX / 2, 1, 0, 0),
                     (UINT64_MAX / 2) / 1000000 * 999999 +
                         (UINT64_MAX / 2) % 1000000 * 999999 / 1000000);
    fixture_snapshot_free(&snap);
}

static plan_demand demand(uint64_t gpu, uint64_t anon, uint64_t file)
{
    plan_demand d;
    memset(&d, 0, sizeof(d));
    d.n_gpus = gpu > 0 ? 1 : 0;
    d.gpu[0] = gpu;
    d.host_anon = anon;
    d.host_file = file;
    return d;
}

static void add_process(probe_gpu *g, int32_t pid, uint64_t bytes)
{
    probe_gpu_process *p = mem_reallocarray(g->processes, g->n_processes + 1, sizeof(*p));
    assert_non_null(p);
    g->processes = p;
    g->processes[g->n_processes++] = (probe_gpu_process){pid, bytes};
    if (bytes != UINT64_MAX) {
        g->used += bytes;
        g->free = g->total > g->used ? g->total - g->used : 0;
    }
}

/* usable = min(free-side rule - reserve, budget - own use), per place. */
static void test_usable_rule(void **state)
{
    (void)state;
    probe_snapshot snap;
    assert_int_equal(fixture_snapshot(&snap, 1, 8 * GIB, 16 * GIB), 0);
    plan_fit_env env;
    plan_fit_env_init(&env, &snap);
    memset(&env.reserve, 0, sizeof(env.reserve));
    plan_fit_result r;
    genai_error err;

    /* No budget: unchanged. */
    assert_int_equal(plan_gpu_usable(&env, 0), 8 * GIB);

    /* A budget below free memory binds. */
    env.budget.gpu[0] = 5 * GIB;
    assert_int_equal(plan_gpu_usable(&env, 0), 5 * GIB);
    plan_demand d = demand(5 * GIB, 0, 0);
    assert_int_equal(plan_fit(&env, &d, &r, &err), 0);
    assert_true(r.gpu_budget_bound[0]);
    d.gpu[0] += 1;
    assert_int_equal(plan_fit(&env, &d, &r, &err), GENAI_ENO_FIT);
    assert_int_equal(r.gpu_deficit[0], 1);
    assert_non_null(strstr(err.detail, "budget"));

    /* A budget above the card: the card binds, the reserve still applies. */
    env.budget.gpu[0] = 100 * GIB;
    env.reserve.gpu[0] = 256 * MIB;
    assert_int_equal(plan_gpu_usable(&env, 0), 8 * GIB - 256 * MIB);
    assert_int_equal(plan_fit(&env, &d, &r, &err), 0);
    assert_false(r.gpu_budget_bound[0]);

    /* A resident holds 3 GiB (predicted 3, listed 3.5: the larger counts
     * against the budget) and another program 2 GiB. */
    env.reserve.gpu[0] = 0;
    env.budget.gpu[0] = 6 * GIB;
    plan_demand llm = demand(3 * GIB, 0, 0);
    plan_resident res = {.demand = &llm, .pid = 100, .in_snapshot = 1};
    env.residents = &res;
    env.n_residents = 1;
    add_process(&snap.gpus[0], 100, 3 * GIB + 512 * MIB);
    add_process(&snap.gpus[0], 200, 2 * GIB);
    assert_int_equal(plan_gpu_own(&env, 0), 3 * GIB + 512 * MIB);
    /* free side: free 2.5 GiB; budget side: 6 - 3.5 = 2.5 GiB. */
    assert_int_equal(plan_gpu_usable(&env, 0), 2 * GIB + 512 * MIB);
    /* The other program leaves: free 4.5 GiB, the budget still caps at 2.5. */
    snap.gpus[0].n_processes = 1;
    snap.gpus[0].free += 2 * GIB;
    assert_int_equal(plan_gpu_usable(&env, 0), 2 * GIB + 512 * MIB);
    /* A budget below what genai already holds: 0, never negative. */
    env.budget.gpu[0] = 1 * GIB;
    assert_int_equal(plan_gpu_usable(&env, 0), 0);
    d = demand(1, 0, 0);
    assert_int_equal(plan_fit(&env, &d, &r, &err), GENAI_ENO_FIT);
    /* A zero budget allows nothing, even with no residents. */
    env.n_residents = 0;
    env.budget.gpu[0] = 0;
    assert_int_equal(plan_gpu_usable(&env, 0), 0);
    d = demand(0, 0, 0);
    assert_int_equal(plan_fit(&env, &d, &r, &err), 0); /* nothing asked: fits */
    fixture_snapshot_free(&snap);
}

/* Host budgets work the same on a machine with no GPU. */
static void test_host_budget_cpu_only(void **state)
{
    (void)state;
    probe_snapshot snap;
    assert_int_equal(fixture_snapshot(&snap, 0, 0, 12 * GIB), 0);
    snap.mem.known = PROBE_MEM_TOTAL | PROBE_MEM_AVAILABLE;
    plan_fit_env env;
    plan_fit_env_init(&env, &snap);
    env.reserve.host = 512 * MIB;
    env.budget.host = 6 * GIB;
    plan_fit_result r;
    genai_error err;

    /* Free side 11.5 GiB, budget 6 GiB. */
    assert_int_equal(plan_host_usable(&env), 6 * GIB);
    /* An LLM of 4 GiB (1 anon, 3 file) is resident: own 4 GiB, room 2 GiB. */
    plan_demand llm = demand(0, 1 * GIB, 3 * GIB);
    plan_resident res = {.demand = &llm, .pid = 100, .in_snapshot = 1};
    env.residents = &res;
    env.n_residents = 1;
    assert_int_equal(plan_host_own(&env), 4 * GIB);
    assert_int_equal(plan_host_usable(&env), 2 * GIB);
    /* A 3 GiB image job does not fit beside it, within the budget... */
    plan_demand img = demand(0, 3 * GIB, 0);
    assert_int_equal(plan_fit(&env, &img, &r, &err), GENAI_ENO_FIT);
    assert_true(r.host_budget_bound);
    assert_int_equal(r.host_deficit, 1 * GIB);
    assert_non_null(strstr(err.detail, "host memory"));
    assert_non_null(strstr(err.detail, "budget"));
    /* ... but does alone. */
    env.n_residents = 0;
    assert_int_equal(plan_fit(&env, &img, &r, &err), 0);
    /* The free side still binds when it is lower. */
    snap.mem.effective_available = 2 * GIB;
    assert_int_equal(plan_host_usable(&env), 2 * GIB - 512 * MIB);
    fixture_snapshot_free(&snap);
}

/* The process policy reaches every plan_fit_env_init caller, here
 * auto-configuration: a GPU budget lowers the layers it picks. */
static void test_policy_reaches_autoconf(void **state)
{
    (void)state;
    gguf_profile p;
    assert_int_equal(fixture_12b(&p), 0);
    probe_snapshot snap;
    assert_int_equal(fixture_snapshot(&snap, 1, 24 * GIB, 64 * GIB), 0);
    snap.mem.known = PROBE_MEM_TOTAL | PROBE_MEM_AVAILABLE;
    plan_llm_config base;
    plan_llm_config_init(&base);
    base.n_ctx = 4096;
    genai_error err;

    plan_fit_env env;
    plan_policy_set(NULL);
    plan_fit_env_init(&env, &snap);
    plan_llm_choice free_choice;
    assert_int_equal(plan_llm_autoconfig(&p, &base, &env, 0, &free_choice, &err), 0);

    plan_policy pol;
    memset(&pol, 0, sizeof(pol));
    pol.budget_gpu[0] = (config_amount){CONFIG_AMOUNT_BYTES, 4 * GIB, 0};
    plan_policy_set(&pol);
    plan_fit_env_init(&env, &snap);
    assert_int_equal(env.budget.gpu[0], 4 * GIB);
    plan_llm_choice budget_choice;
    assert_int_equal(plan_llm_autoconfig(&p, &base, &env, 0, &budget_choice, &err), 0);
    assert_true(budget_choice.cfg.n_gpu_layers < free_choice.cfg.n_gpu_layers);
    assert_true(budget_choice.demand.gpu[0] <= 4 * GIB);
    assert_true(free_choice.demand.gpu[0] > 4 * GIB);

    plan_policy got;
    plan_policy_get(&got);
    assert_int_equal(got.budget_gpu[0].bytes, 4 * GIB);
    plan_policy_set(NULL);
    plan_fit_env_init(&env, &snap);
    assert_int_equal(env.budget.gpu[0], PLAN_NO_BUDGET);
    fixture_snapshot_free(&snap);
    fixture_profile_free(&p);
}

static void test_usage_split(void **state)
{
    (void)state;
    probe_snapshot snap;
    assert_int_equal(fixture_snapshot(&snap, 2, 8 * GIB, 16 * GIB), 0);
    snap.gpus[0].used = 300 * MIB; /* a desktop nobody lists */
    snap.gpus[0].free -= 300 * MIB;
    add_process(&snap.gpus[0], 100, 4 * GIB);
    add_process(&snap.gpus[0], 200, 3 * GIB);
    add_process(&snap.gpus[0], 300, UINT64_MAX); /* listed, no figure */
    add_process(&snap.gpus[1], 101, 1 * GIB);
    snap.gpus[1].processes_status.ok = 0; /* the list is not trusted */
    int32_t own[] = {100, 101, 0};
    plan_usage u;
    plan_usage_split(&snap, own, 3, &u);
    assert_int_equal(u.n_gpus, 2);
    assert_int_equal(u.gpu[0].own, 4 * GIB);
    assert_int_equal(u.gpu[0].others, 3 * GIB);
    assert_int_equal(u.gpu[0].used, 7 * GIB + 300 * MIB);
    assert_int_equal(u.gpu[0].unlisted, 300 * MIB);
    assert_int_equal(u.gpu[1].own, 0);
    assert_false(u.gpu[1].listed);
    assert_int_equal(u.gpu[1].unlisted, 1 * GIB);
    /* No own pids: everything is others'. */
    plan_usage_split(&snap, NULL, 0, &u);
    assert_int_equal(u.gpu[0].others, 7 * GIB);
    plan_usage_split(NULL, NULL, 0, &u);
    assert_int_equal(u.n_gpus, 0);
    fixture_snapshot_free(&snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_amount),
        cmocka_unit_test(test_config_keys),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_usable_rule),
        cmocka_unit_test(test_host_budget_cpu_only),
        cmocka_unit_test(test_policy_reaches_autoconf),
        cmocka_unit_test(test_usage_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
