/*
 * test_sys_nvml.c - the NVML provider against the fake NVML library
 * (tests/doubles/nvml): values, per-process lists with the
 * NVML_ERROR_INSUFFICIENT_SIZE retry, every error path, a missing library and
 * a missing symbol, and "dlopen + nvmlInit once per context".
 *
 * FAKE_NVML_LIB and FAKE_NVML_NOINIT_LIB (set by CMake) name the two builds
 * of the double; each test writes the script the double answers from.
 */
#include "cmocka_all.h"

#include "../doubles/nvml/fake_nvml.h"
#include "sys/probe.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GIB (1024ull * 1024 * 1024)

static char script_path[256];
static void *lib_handle; /* keeps the double loaded so its counters survive */

static const fake_nvml_counts *counters(void)
{
    const fake_nvml_counts *(*fn)(void);
    void *sym = dlsym(lib_handle, "fake_nvml_counters");
    assert_non_null(sym);
    memcpy(&fn, &sym, sizeof(fn));
    return fn();
}

static void write_script(const char *json)
{
    FILE *f = fopen(script_path, "w");
    assert_non_null(f);
    fputs(json, f);
    assert_int_equal(fclose(f), 0);
}

static void sample_with(const char *lib, probe_snapshot *s)
{
    probe_options o;
    memset(&o, 0, sizeof(o));
    o.ignore_env = 1;
    o.nvml_path = lib;
    o.providers = PROBE_PROVIDER_NVML;
    assert_int_equal(probe_take(&o, s, NULL), 0);
    assert_int_equal(s->n_providers, 1);
    assert_string_equal(s->providers[0].name, "nvml");
}

static void sample(probe_snapshot *s)
{
    sample_with(getenv("FAKE_NVML_LIB"), s);
}

static const probe_gpu_process *find_pid(const probe_gpu *g, int32_t pid)
{
    for (uint32_t i = 0; i < g->n_processes; i++) {
        if (g->processes[i].pid == pid)
            return &g->processes[i];
    }
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    snprintf(script_path, sizeof(script_path), "/tmp/genai-fake-nvml-%d.json", (int)getpid());
    setenv("FAKE_NVML_SCRIPT", script_path, 1);
    lib_handle = dlopen(getenv("FAKE_NVML_LIB"), RTLD_NOW | RTLD_LOCAL);
    return lib_handle ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    unlink(script_path);
    if (lib_handle != NULL)
        dlclose(lib_handle);
    return 0;
}

static void test_values(void **state)
{
    (void)state;
    write_script(
        "{\"driver_version\":\"550.54.14\",\"cuda_version\":12040,\"devices\":["
        "{\"name\":\"NVIDIA GeForce RTX 4060\",\"uuid\":\"GPU-1234\","
        "\"pci_bus_id\":\"00000000:01:00.0\",\"total\":8589934592,"
        "\"free\":1073741824,\"used\":7516192768,"
        "\"compute\":[{\"pid\":100,\"used\":5368709120},{\"pid\":200,\"used\":1073741824}],"
        "\"graphics\":[{\"pid\":100,\"used\":5368709120},{\"pid\":300,\"used\":-1}]},"
        "{\"name\":\"Old GPU\",\"total\":4294967296,\"free\":4294967296,\"used\":0,"
        "\"memory_v2_rc\":25}]}");
    unsigned v1_before = counters()->memory_v1;
    probe_snapshot s;
    sample(&s);
    assert_true(s.providers[0].status.ok);
    assert_string_equal(s.providers[0].driver_version, "550.54.14");
    assert_string_equal(s.providers[0].runtime_version, "12.4");
    assert_int_equal(s.n_gpus, 2);
    const probe_gpu *g = &s.gpus[0];
    assert_int_equal(g->vendor, PROBE_GPU_NVIDIA);
    assert_string_equal(g->name, "NVIDIA GeForce RTX 4060");
    assert_string_equal(g->uuid, "GPU-1234");
    assert_string_equal(g->pci_bus_id, "00000000:01:00.0");
    assert_true(g->memory.ok);
    assert_int_equal(g->total, 8 * GIB);
    assert_int_equal(g->free, 1 * GIB);
    assert_int_equal(g->used, 7516192768ull);
    assert_true(g->processes_status.ok);
    assert_int_equal(g->n_processes, 3); /* pid 100 is in both lists, once here */
    assert_int_equal(find_pid(g, 100)->used_bytes, 5 * GIB);
    assert_int_equal(find_pid(g, 200)->used_bytes, 1 * GIB);
    assert_true(find_pid(g, 300)->used_bytes == UINT64_MAX); /* NVML_VALUE_NOT_AVAILABLE */
    /* The second device rejects the _v2 version word: v1 answers. */
    g = &s.gpus[1];
    assert_true(g->memory.ok);
    assert_int_equal(g->total, 4 * GIB);
    assert_int_equal(g->n_processes, 0);
    assert_true(counters()->memory_v1 > v1_before);
    assert_string_equal(probe_runtime_variant(&s, NULL), "cuda");
    probe_snapshot_free(&s);
}

/* The values the real driver reported on an H100 (docs/evidence/nvml-h100.txt),
 * replayed through the fake library: the probe must reproduce them exactly. */
static void test_real_h100_fixture(void **state)
{
    (void)state;
    char fixture[512];
    snprintf(fixture, sizeof(fixture), "%s/sys/nvml/h100-580.159.04.json",
             getenv("GENAI_TEST_DATA"));
    setenv("FAKE_NVML_SCRIPT", fixture, 1);
    probe_snapshot s;
    sample(&s);
    setenv("FAKE_NVML_SCRIPT", script_path, 1);
    assert_true(s.providers[0].status.ok);
    assert_string_equal(s.providers[0].driver_version, "580.159.04");
    assert_string_equal(s.providers[0].runtime_version, "13.0");
    assert_int_equal(s.n_gpus, 1);
    const probe_gpu *g = &s.gpus[0];
    assert_string_equal(g->name, "NVIDIA H100 80GB HBM3");
    assert_string_equal(g->uuid, "GPU-dee4d916-f115-5094-2f2d-ba8d73dd9372");
    assert_string_equal(g->pci_bus_id, "00000000:00:06.0");
    assert_int_equal(g->total, 85520809984ull);
    assert_int_equal(g->free, 83391348736ull);
    assert_int_equal(g->used, 1626144768ull);
    assert_int_equal(g->n_processes, 1);
    assert_int_equal(find_pid(g, 453)->used_bytes, 1616904192ull);
    assert_string_equal(probe_runtime_variant(&s, NULL), "cuda");
    probe_snapshot_free(&s);
}

static void test_insufficient_size_retry(void **state)
{
    (void)state;
    /* 40 processes; the list seems to grow between calls: 3, then 30, then
     * 40, so the provider must retry with the size NVML reports. */
    char json[8192];
    size_t off = 0;
    off += (size_t)snprintf(json + off, sizeof(json) - off,
                            "{\"devices\":[{\"name\":\"G\",\"total\":100000000000,"
                            "\"free\":50000000000,\"used\":50000000000,"
                            "\"compute_sizes\":[3,30,40],\"compute\":[");
    for (int i = 0; i < 40; i++)
        off += (size_t)snprintf(json + off, sizeof(json) - off, "%s{\"pid\":%d,\"used\":%d}",
                                i ? "," : "", 1000 + i, (i + 1) * 1000);
    snprintf(json + off, sizeof(json) - off, "]}]}");
    write_script(json);
    probe_snapshot s;
    sample(&s);
    const probe_gpu *g = &s.gpus[0];
    assert_true(g->processes_status.ok);
    assert_int_equal(g->n_processes, 40);
    assert_int_equal(find_pid(g, 1039)->used_bytes, 40000);
    probe_snapshot_free(&s);

    /* A list that keeps growing past every retry: a reason, no crash. */
    off = 0;
    off += (size_t)snprintf(json + off, sizeof(json) - off,
                            "{\"devices\":[{\"name\":\"G\",\"total\":100000000000,"
                            "\"free\":50000000000,\"used\":50000000000,"
                            "\"compute_sizes\":[1,20,40,60,80,100],\"compute\":[");
    for (int i = 0; i < 100; i++)
        off += (size_t)snprintf(json + off, sizeof(json) - off, "%s{\"pid\":%d,\"used\":1}",
                                i ? "," : "", 1000 + i);
    snprintf(json + off, sizeof(json) - off, "]}]}");
    write_script(json);
    sample(&s);
    assert_false(s.gpus[0].processes_status.ok);
    assert_non_null(strstr(s.gpus[0].processes_status.reason, "Insufficient Size"));
    assert_true(s.gpus[0].memory.ok);
    probe_snapshot_free(&s);
}

static void test_error_paths(void **state)
{
    (void)state;
    probe_snapshot s;
    write_script("{\"init_rc\":9,\"devices\":[]}");
    sample(&s);
    assert_false(s.providers[0].status.ok);
    assert_non_null(strstr(s.providers[0].status.reason, "Driver Not Loaded"));
    assert_int_equal(s.n_gpus, 0);
    probe_snapshot_free(&s);

    write_script("{\"count_rc\":15,\"devices\":[]}");
    sample(&s);
    assert_false(s.providers[0].status.ok);
    assert_non_null(strstr(s.providers[0].status.reason, "GPU is lost"));
    probe_snapshot_free(&s);

    write_script("{\"devices\":[{\"handle_rc\":4},"
                 "{\"total\":10,\"free\":5,\"used\":5,\"memory_rc\":4,\"memory_v2_rc\":4},"
                 "{\"total\":10,\"free\":5,\"used\":5,\"compute_rc\":3},"
                 "{\"total\":10,\"free\":5,\"used\":5,\"graphics_rc\":3},"
                 "{\"total\":10,\"free\":50,\"used\":5},"
                 "{\"total\":0,\"free\":0,\"used\":0}]}");
    sample(&s);
    assert_true(s.providers[0].status.ok);
    assert_int_equal(s.n_gpus, 6);
    assert_false(s.gpus[0].memory.ok);
    assert_non_null(strstr(s.gpus[0].memory.reason, "Insufficient Permissions"));
    assert_false(s.gpus[1].memory.ok);
    assert_non_null(strstr(s.gpus[1].memory.reason, "Insufficient Permissions"));
    assert_true(s.gpus[2].memory.ok);
    assert_false(s.gpus[2].processes_status.ok);
    assert_non_null(strstr(s.gpus[2].processes_status.reason, "Not Supported"));
    assert_true(s.gpus[3].processes_status.ok); /* only the graphics list failed */
    assert_false(s.gpus[4].memory.ok);          /* free > total */
    assert_non_null(strstr(s.gpus[4].memory.reason, "absurd"));
    assert_false(s.gpus[5].memory.ok); /* total 0 */
    probe_snapshot_free(&s);

    write_script("{\"count\":1000,\"devices\":[]}");
    sample(&s);
    assert_false(s.providers[0].status.ok);
    assert_int_equal(s.n_gpus, 0);
    probe_snapshot_free(&s);
}

static void test_missing_library_and_symbol(void **state)
{
    (void)state;
    probe_snapshot s;
    sample_with("/nonexistent/libnvidia-ml.so.1", &s);
    assert_false(s.providers[0].status.ok);
    assert_non_null(strstr(s.providers[0].status.reason, "cannot load"));
    assert_int_equal(s.n_gpus, 0);
    probe_snapshot_free(&s);

    write_script("{\"devices\":[{\"total\":10,\"free\":5,\"used\":5}]}");
    sample_with(getenv("FAKE_NVML_NOINIT_LIB"), &s);
    assert_false(s.providers[0].status.ok);
    assert_non_null(strstr(s.providers[0].status.reason, "lacks nvmlInit_v2"));
    assert_int_equal(s.n_gpus, 0);
    probe_snapshot_free(&s);
}

static void test_init_once_per_context(void **state)
{
    (void)state;
    write_script("{\"devices\":[{\"total\":1000,\"free\":600,\"used\":400}]}");
    unsigned init0 = counters()->init, count0 = counters()->count;
    unsigned shut0 = counters()->shutdown;
    probe_options o;
    memset(&o, 0, sizeof(o));
    o.ignore_env = 1;
    o.nvml_path = getenv("FAKE_NVML_LIB");
    o.providers = PROBE_PROVIDER_NVML;
    probe_ctx *ctx;
    assert_int_equal(probe_ctx_open(&o, &ctx, NULL), 0);
    for (int i = 0; i < 5; i++) {
        probe_snapshot s;
        if (i == 3) /* memory moves between samples: each sample sees it */
            write_script("{\"devices\":[{\"total\":1000,\"free\":100,\"used\":900}]}");
        assert_int_equal(probe_ctx_sample(ctx, &s, NULL), 0);
        assert_int_equal(s.n_gpus, 1);
        assert_int_equal(s.gpus[0].free, i < 3 ? 600 : 100);
        probe_snapshot_free(&s);
    }
    assert_int_equal(counters()->init - init0, 1);
    assert_int_equal(counters()->count - count0, 5);
    probe_ctx_close(ctx);
    assert_int_equal(counters()->shutdown - shut0, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_real_h100_fixture),
        cmocka_unit_test(test_insufficient_size_retry),
        cmocka_unit_test(test_error_paths),
        cmocka_unit_test(test_missing_library_and_symbol),
        cmocka_unit_test(test_init_once_per_context),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
