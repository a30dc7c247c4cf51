/*
 * test_sys_probe.c - the whole probe (CPU, memory, cgroup, AMD sysfs) run on
 * fixture trees under tests/data/sys/ that look like real machines, and the
 * JSON it produces. Expected figures are those written in the fixtures
 * (tests/data/sys/<tree>/...), not what the code computes.
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "sys/probe.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIB 1024ull
#define GIB (1024ull * 1024 * 1024)

static void take(const char *tree, probe_snapshot *snap)
{
    const char *data = getenv("GENAI_TEST_DATA");
    assert_non_null(data);
    char root[1024];
    snprintf(root, sizeof(root), "%s/sys/%s", data, tree);
    probe_options o;
    memset(&o, 0, sizeof(o));
    o.root = root;
    o.ignore_env = 1;
    o.nvml_path = "/nonexistent/libnvidia-ml.so.1"; /* never the host's NVML */
    genai_error err;
    assert_int_equal(probe_take(&o, snap, &err), 0);
}

static void test_x86_plain(void **state)
{
    (void)state;
    probe_snapshot s;
    take("x86-plain", &s);
    assert_true(s.cpu.status.ok);
    assert_string_equal(s.cpu.model, "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz");
    assert_int_equal(s.cpu.logical, 12);
    assert_int_equal(s.cpu.physical, 6);
    assert_int_equal(s.cpu.usable, 12); /* cpu.max says "max" */
    assert_true(s.cpu.avx && s.cpu.avx2 && s.cpu.fma && s.cpu.f16c);
    assert_false(s.cpu.avx512f);
    assert_true(s.mem.status.ok);
    assert_int_equal(s.mem.total, 32768000 * KIB);
    assert_int_equal(s.mem.available, 28000000 * KIB);
    assert_int_equal(s.mem.swap_total, 2097148 * KIB);
    assert_true(s.mem.cgroup.ok);
    assert_int_equal(s.mem.cgroup_version, 2);
    assert_true(s.mem.cgroup_limit == UINT64_MAX); /* "max" at every level */
    assert_int_equal(s.mem.cgroup_usage, 734003200);
    assert_int_equal(s.mem.effective_available, 28000000 * KIB);
    assert_int_equal(s.n_gpus, 0);
    assert_int_equal(s.n_providers, 2);
    assert_string_equal(s.providers[0].name, "nvml");
    assert_false(s.providers[0].status.ok);
    assert_non_null(strstr(s.providers[0].status.reason, "/nonexistent/libnvidia-ml.so.1"));
    assert_string_equal(s.providers[1].name, "amd-sysfs");
    assert_false(s.providers[1].status.ok);
    const char *why = NULL;
    assert_string_equal(probe_runtime_variant(&s, &why), "cpu-avx2");
    assert_non_null(strstr(why, "AVX2"));
    probe_snapshot_free(&s);
}

static void test_cgroup_v2_container(void **state)
{
    (void)state;
    probe_snapshot s;
    take("cgv2-container", &s);
    assert_int_equal(s.cpu.logical, 8);
    assert_int_equal(s.cpu.physical, 4);
    assert_int_equal(s.cpu.usable, 2); /* cpu.max 150000/100000, rounded up */
    assert_true(s.cpu.avx512f);
    assert_true(s.mem.cgroup.ok);
    assert_int_equal(s.mem.cgroup_version, 2);
    assert_int_equal(s.mem.cgroup_limit, 4 * GIB);
    assert_int_equal(s.mem.cgroup_usage, 1 * GIB);
    assert_int_equal(s.mem.available, 12 * GIB);
    assert_int_equal(s.mem.effective_available, 3 * GIB); /* limit - usage < MemAvailable */
    assert_string_equal(probe_runtime_variant(&s, NULL), "cpu-avx512");
    probe_snapshot_free(&s);
}

static void test_cgroup_v2_nested(void **state)
{
    (void)state;
    probe_snapshot s;
    take("cgv2-nested", &s);
    /* The leaf says "max"; its parent slice holds 2 GiB with 1.5 GiB used. */
    assert_true(s.mem.cgroup.ok);
    assert_int_equal(s.mem.cgroup_limit, 2 * GIB);
    assert_int_equal(s.mem.cgroup_usage, 1610612736);
    assert_int_equal(s.mem.effective_available, 512ull * 1024 * 1024);
    assert_int_equal(s.cpu.usable, 4);
    assert_string_equal(probe_runtime_variant(&s, NULL), "cpu-avx");
    probe_snapshot_free(&s);
}

static void test_cgroup_v1(void **state)
{
    (void)state;
    probe_snapshot s;
    take("cgv1-host", &s);
    assert_true(s.mem.cgroup.ok);
    assert_int_equal(s.mem.cgroup_version, 1);
    assert_true(s.mem.cgroup_limit == UINT64_MAX); /* 9223372036854771712 = no limit */
    assert_int_equal(s.mem.cgroup_usage, 3145728000);
    assert_int_equal(s.mem.effective_available, 5000000 * KIB);
    assert_int_equal(s.cpu.usable, 4); /* cfs_quota_us -1 */
    assert_int_equal(s.cpu.physical, 2);
    probe_snapshot_free(&s);

    take("cgv1-limited", &s);
    assert_true(s.mem.cgroup.ok);
    assert_int_equal(s.mem.cgroup_version, 1);
    assert_int_equal(s.mem.cgroup_limit, 2 * GIB);
    assert_int_equal(s.mem.cgroup_usage, 524288000);
    assert_int_equal(s.mem.effective_available, 2 * GIB - 524288000);
    assert_int_equal(s.cpu.usable, 1); /* 50000/100000 rounds up to one CPU */
    probe_snapshot_free(&s);
}

static void test_arm(void **state)
{
    (void)state;
    probe_snapshot s;
    take("arm64", &s);
    assert_true(s.cpu.status.ok);
    assert_string_equal(s.cpu.model, "ARM implementer 0x41 part 0xd08");
    assert_int_equal(s.cpu.logical, 4);
    assert_int_equal(s.cpu.physical, 4); /* from sysfs topology */
    assert_true(s.cpu.neon);
    assert_false(s.cpu.avx);
    assert_true(s.mem.cgroup.ok);
    assert_true(s.mem.cgroup_limit == UINT64_MAX);
    assert_string_equal(probe_runtime_variant(&s, NULL), "arm-neon");
    probe_snapshot_free(&s);
}

static void test_amd(void **state)
{
    (void)state;
    probe_snapshot s;
    take("amd-gpu", &s);
    assert_int_equal(s.n_gpus, 2); /* card0 and card2; card1 is Intel, card0-DP-1 a connector */
    const probe_gpu *g = &s.gpus[0];
    assert_int_equal(g->vendor, PROBE_GPU_AMD);
    assert_string_equal(g->name, "AMD Radeon RX 7900 XTX");
    assert_string_equal(g->pci_bus_id, "0000:03:00.0");
    assert_true(g->memory.ok);
    assert_int_equal(g->total, 25753026560ull);
    assert_int_equal(g->used, 1073741824ull);
    assert_int_equal(g->free, 25753026560ull - 1073741824ull);
    assert_false(g->processes_status.ok);
    g = &s.gpus[1];
    assert_string_equal(g->name, "AMD GPU 0x73bf");
    assert_string_equal(g->pci_bus_id, "0000:0a:00.0");
    assert_false(g->memory.ok);
    assert_non_null(strstr(g->memory.reason, "malformed"));
    assert_true(s.providers[1].status.ok);
    assert_string_equal(s.providers[1].driver_version, "6.3.6");
    assert_string_equal(probe_runtime_variant(&s, NULL), "rocm");
    probe_snapshot_free(&s);
}

static void test_garbage(void **state)
{
    (void)state;
    probe_snapshot s;
    take("garbage", &s);
    assert_false(s.cpu.status.ok);
    assert_int_equal(s.cpu.logical, 0);
    assert_non_null(strstr(s.cpu.status.reason, "no processor"));
    assert_false(s.mem.status.ok);
    assert_int_equal(s.mem.known, PROBE_MEM_TOTAL);
    assert_int_equal(s.mem.total, 16384000 * KIB);
    assert_non_null(strstr(s.mem.status.reason, "malformed MemAvailable"));
    assert_false(s.mem.cgroup.ok);
    assert_non_null(strstr(s.mem.cgroup.reason, "malformed"));
    assert_string_equal(probe_runtime_variant(&s, NULL), "cpu");

    json_t *j = probe_snapshot_json(&s);
    assert_non_null(j);
    json_t *mem = json_object_get(j, "memory");
    assert_true(json_is_null(json_object_get(mem, "available_bytes")));
    assert_true(json_is_null(json_object_get(mem, "effective_available_bytes")));
    assert_int_equal(json_integer_value(json_object_get(mem, "total_bytes")), 16384000 * KIB);
    assert_true(json_is_string(json_object_get(mem, "reason")));
    assert_true(json_is_null(json_object_get(json_object_get(j, "cpu"), "logical")));
    json_decref(j);
    probe_snapshot_free(&s);

    take("truncated", &s);
    assert_int_equal(s.mem.known, PROBE_MEM_TOTAL);
    assert_non_null(strstr(s.mem.status.reason, "missing MemAvailable"));
    assert_false(s.mem.cgroup.ok); /* memory.max "12x34" */
    probe_snapshot_free(&s);
}

static void test_missing_root(void **state)
{
    (void)state;
    probe_snapshot s;
    take("does-not-exist", &s);
    assert_false(s.cpu.status.ok);
    assert_false(s.mem.status.ok);
    assert_false(s.mem.cgroup.ok);
    assert_int_equal(s.mem.known, 0);
    assert_int_equal(s.n_gpus, 0);
    assert_non_null(strstr(s.mem.status.reason, "meminfo"));
    probe_snapshot_free(&s);
}

static void test_json_schema(void **state)
{
    (void)state;
    probe_snapshot s;
    take("cgv2-container", &s);
    json_t *j = probe_snapshot_json(&s);
    assert_non_null(j);
    json_t *cpu = json_object_get(j, "cpu");
    assert_int_equal(json_integer_value(json_object_get(cpu, "logical")), 8);
    assert_int_equal(json_integer_value(json_object_get(cpu, "usable")), 2);
    assert_true(json_is_true(json_object_get(json_object_get(cpu, "flags"), "avx512f")));
    assert_true(json_is_null(json_object_get(cpu, "reason")));
    json_t *mem = json_object_get(j, "memory");
    assert_int_equal(json_integer_value(json_object_get(mem, "effective_available_bytes")),
                     3 * GIB);
    json_t *cg = json_object_get(mem, "cgroup");
    assert_int_equal(json_integer_value(json_object_get(cg, "version")), 2);
    assert_true(json_is_true(json_object_get(cg, "limited")));
    assert_int_equal(json_integer_value(json_object_get(cg, "limit_bytes")), 4 * GIB);
    assert_int_equal(json_integer_value(json_object_get(cg, "usage_bytes")), 1 * GIB);
    json_t *providers = json_object_get(j, "providers");
    assert_int_equal(json_array_size(providers), 2);
    json_t *nvml = json_array_get(providers, 0);
    assert_string_equal(json_string_value(json_object_get(nvml, "name")), "nvml");
    assert_true(json_is_false(json_object_get(nvml, "ok")));
    assert_true(json_is_string(json_object_get(nvml, "reason")));
    assert_int_equal(json_array_size(json_object_get(j, "gpus")), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "runtime"), "variant")), "cpu-avx512");
    json_decref(j);
    probe_snapshot_free(&s);

    /* Unlimited cgroup: limit null, "limited" false, no reason. */
    take("cgv1-host", &s);
    j = probe_snapshot_json(&s);
    cg = json_object_get(json_object_get(j, "memory"), "cgroup");
    assert_true(json_is_null(json_object_get(cg, "limit_bytes")));
    assert_true(json_is_false(json_object_get(cg, "limited")));
    assert_true(json_is_null(json_object_get(cg, "reason")));
    json_decref(j);
    probe_snapshot_free(&s);

    /* GPUs with unknown memory carry a memory_reason. */
    take("amd-gpu", &s);
    j = probe_snapshot_json(&s);
    json_t *g1 = json_array_get(json_object_get(j, "gpus"), 1);
    assert_true(json_is_null(json_object_get(g1, "total_bytes")));
    assert_true(json_is_string(json_object_get(g1, "memory_reason")));
    json_t *g0 = json_array_get(json_object_get(j, "gpus"), 0);
    assert_string_equal(json_string_value(json_object_get(g0, "vendor")), "amd");
    assert_int_equal(json_integer_value(json_object_get(g0, "total_bytes")), 25753026560ll);
    json_decref(j);
    probe_snapshot_free(&s);
}

static void test_this_machine(void **state)
{
    (void)state;
    /* The real probe must always work, with or without GPUs. */
    probe_options o;
    memset(&o, 0, sizeof(o));
    o.ignore_env = 1;
    probe_ctx *ctx;
    assert_int_equal(probe_ctx_open(&o, &ctx, NULL), 0);
    for (int i = 0; i < 3; i++) {
        probe_snapshot s;
        assert_int_equal(probe_ctx_sample(ctx, &s, NULL), 0);
        assert_true(s.mem.known & PROBE_MEM_TOTAL);
        assert_true(s.cpu.logical >= 1);
        assert_true(s.cpu.usable >= 1 && s.cpu.usable <= s.cpu.logical);
        assert_true(s.mem.effective_available <= s.mem.total);
        probe_snapshot_free(&s);
    }
    probe_ctx_close(ctx);
    probe_ctx_close(NULL);
    probe_snapshot_free(NULL);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    /* Every allocation of a probe fails in turn: -ENOMEM and no leak (ASan),
     * until the run needs no more failures. */
    const char *data = getenv("GENAI_TEST_DATA");
    char root[1024];
    snprintf(root, sizeof(root), "%s/sys/amd-gpu", data);
    probe_options o;
    memset(&o, 0, sizeof(o));
    o.root = root;
    o.ignore_env = 1;
    o.nvml_path = "/nonexistent/libnvidia-ml.so.1";
    int failures = 0;
    for (unsigned long n = 1; n < 10000; n++) {
        probe_snapshot s;
        mem_fail_after(n, 0);
        int rc = probe_take(&o, &s, NULL);
        mem_fail_after(0, 0);
        if (rc == 0) {
            /* A run that got past every allocation must be complete. */
            if (s.n_gpus == 2) {
                probe_snapshot_free(&s);
                break;
            }
            probe_snapshot_free(&s);
            continue; /* a failed file read degraded a field: still valid */
        }
        assert_int_equal(rc, -ENOMEM);
        failures++;
    }
    assert_true(failures > 0);
}

/* Owned options survive the caller's strings, and every allocation failure
 * leaves nothing behind. */
static void test_options_own(void **state)
{
    (void)state;
    char root[] = "/fixture/root", nvml[] = "/lib/libnv.so";
    probe_options src = {.root = root, .nvml_path = nvml, .fake_gpu_path = NULL,
                         .providers = PROBE_PROVIDER_NVML, .ignore_env = 1};
    probe_options_owned o;
    assert_int_equal(probe_options_own(&o, &src), 0);
    memset(root, 'x', sizeof(root) - 1);
    memset(nvml, 'x', sizeof(nvml) - 1);
    assert_string_equal(o.opts.root, "/fixture/root");
    assert_string_equal(o.opts.nvml_path, "/lib/libnv.so");
    assert_null(o.opts.fake_gpu_path);
    assert_int_equal(o.opts.providers, PROBE_PROVIDER_NVML);
    assert_int_equal(o.opts.ignore_env, 1);
    probe_options_owned_free(&o);
    assert_null(o.root);
    probe_options_owned_free(NULL);
    assert_int_equal(probe_options_own(&o, NULL), 0);
    assert_null(o.opts.root);
    for (unsigned long n = 1; n <= 2; n++) {
        mem_fail_after(n, 0);
        assert_int_equal(probe_options_own(&o, &src), -ENOMEM);
        mem_fail_after(0, 0);
        assert_null(o.root);
        assert_null(o.nvml_path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_own),
        cmocka_unit_test(test_x86_plain),
        cmocka_unit_test(test_cgroup_v2_container),
        cmocka_unit_test(test_cgroup_v2_nested),
        cmocka_unit_test(test_cgroup_v1),
        cmocka_unit_test(test_arm),
        cmocka_unit_test(test_amd),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_missing_root),
        cmocka_unit_test(test_json_schema),
        cmocka_unit_test(test_this_machine),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
