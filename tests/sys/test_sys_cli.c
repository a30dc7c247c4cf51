/*
 * test_sys_cli.c - `genai system` as a user runs it: the built binary
 * ($GENAI_BUILD_DIR/src/cli/genai) on THIS machine must agree with
 * /proc/meminfo (MemTotal exactly, MemAvailable within a tolerance since it
 * moves) and with `nproc`; with GENAI_FAKE_GPU or the fake NVML it must show
 * those GPUs; --help works and a bad flag is a usage error (exit 2).
 */
#include "cmocka_all.h"
#include "testutil/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct run_result {
    int status; /* exit code, or -1 when killed */
    char out[1 << 16];
    size_t len;
} run_result;

/* Runs argv (argv[0] a path, or a name looked up in PATH) with stdout piped. */
static void run(char *const argv[], run_result *r)
{
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    assert_int_equal(rc, 0);
    r->len = 0;
    for (;;) {
        ssize_t n = read(fds[0], r->out + r->len, sizeof(r->out) - 1 - r->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        r->len += (size_t)n;
    }
    r->out[r->len] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static json_t *system_json(void)
{
    static run_result r;
    char *argv[] = {(char *)tu_genai_bin(), "system", "--json", NULL};
    run(argv, &r);
    assert_int_equal(r.status, 0);
    json_error_t je;
    json_t *j = json_loadb(r.out, r.len, 0, &je);
    if (j == NULL)
        fail_msg("genai system --json: bad JSON (%s): %.200s", je.text, r.out);
    return j;
}

static unsigned long long meminfo_kb(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    assert_non_null(f);
    char line[256];
    unsigned long long v = 0;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtoull(line + kl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    assert_true(v > 0);
    return v;
}

static void test_agrees_with_proc(void **state)
{
    (void)state;
    unsetenv("GENAI_FAKE_GPU");
    unsigned long long avail_before = meminfo_kb("MemAvailable") * 1024;
    json_t *j = system_json();
    unsigned long long avail_after = meminfo_kb("MemAvailable") * 1024;
    json_t *mem = json_object_get(j, "memory");
    assert_int_equal(json_integer_value(json_object_get(mem, "total_bytes")),
                     meminfo_kb("MemTotal") * 1024);
    /* MemAvailable moves while we look; allow 2 % of RAM (at least 64 MiB)
     * around the range seen before and after the run. */
    unsigned long long total = meminfo_kb("MemTotal") * 1024;
    unsigned long long tol = total / 50 > (64ull << 20) ? total / 50 : (64ull << 20);
    unsigned long long lo = avail_before < avail_after ? avail_before : avail_after;
    unsigned long long hi = avail_before < avail_after ? avail_after : avail_before;
    json_int_t avail = json_integer_value(json_object_get(mem, "available_bytes"));
    assert_true((unsigned long long)avail + tol >= lo);
    assert_true((unsigned long long)avail <= hi + tol);
    json_int_t eff = json_integer_value(json_object_get(mem, "effective_available_bytes"));
    assert_true(eff > 0 && eff <= avail);

    /* nproc prints the CPUs this process may use (affinity). */
    run_result r;
    char *argv[] = {"nproc", NULL};
    run(argv, &r);
    assert_int_equal(r.status, 0);
    long nproc = strtol(r.out, NULL, 10);
    assert_true(nproc >= 1);
    json_t *cpu = json_object_get(j, "cpu");
    json_int_t usable = json_integer_value(json_object_get(cpu, "usable"));
    json_int_t logical = json_integer_value(json_object_get(cpu, "logical"));
    /* usable = affinity, lowered further only by a cgroup CPU quota. */
    assert_true(usable >= 1 && usable <= nproc);
    assert_int_equal(logical, sysconf(_SC_NPROCESSORS_ONLN));
    assert_true(logical >= nproc);
    assert_non_null(json_string_value(json_object_get(json_object_get(j, "runtime"), "variant")));
    json_decref(j);
}

static void test_with_fake_gpu(void **state)
{
    (void)state;
    char path[] = "/tmp/genai-cli-fakegpu-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "{\"driver_version\":\"fake-1.0\",\"cuda_version\":\"12.4\","
                        "\"devices\":[{\"name\":\"Fake GPU 8GB\",\"uuid\":\"GPU-fake-0\","
                        "\"total_bytes\":8589934592,\"base_used_bytes\":1073741824}]}";
    assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
    close(fd);
    setenv("GENAI_FAKE_GPU", path, 1);
    json_t *j = system_json();
    json_t *gpus = json_object_get(j, "gpus");
    assert_int_equal(json_array_size(gpus), 1);
    json_t *g = json_array_get(gpus, 0);
    assert_string_equal(json_string_value(json_object_get(g, "vendor")), "fake");
    assert_int_equal(json_integer_value(json_object_get(g, "total_bytes")), 8589934592ll);
    assert_int_equal(json_integer_value(json_object_get(g, "free_bytes")), 7516192768ll);
    json_t *prov = json_object_get(j, "providers");
    assert_int_equal(json_array_size(prov), 1); /* instead of NVML and AMD */
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "runtime"), "variant")), "cuda");
    json_decref(j);

    /* The readable form names the GPU and the provider. */
    run_result r;
    char *argv[] = {(char *)tu_genai_bin(), "system", NULL};
    run(argv, &r);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Fake GPU 8GB"));
    assert_non_null(strstr(r.out, "7.00 GiB free"));
    assert_non_null(strstr(r.out, "Runtime build: cuda"));
    unsetenv("GENAI_FAKE_GPU");
    char lock[64];
    snprintf(lock, sizeof(lock), "%s.lock", path);
    unlink(lock);
    unlink(path);
}

static void test_with_fake_nvml(void **state)
{
    (void)state;
    char path[] = "/tmp/genai-cli-nvml-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "{\"driver_version\":\"550.54.14\",\"cuda_version\":12040,\"devices\":"
                        "[{\"name\":\"NVIDIA Test\",\"total\":8589934592,\"free\":4294967296,"
                        "\"used\":4294967296,\"compute\":[{\"pid\":4242,\"used\":4000000000}]}]}";
    assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
    close(fd);
    setenv("FAKE_NVML_SCRIPT", path, 1);
    setenv("GENAI_NVML_LIBRARY", getenv("FAKE_NVML_LIB"), 1);
    run_result r;
    char *argv[] = {(char *)tu_genai_bin(), "system", NULL};
    run(argv, &r);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "NVIDIA NVIDIA Test"));
    assert_non_null(strstr(r.out, "pid 4242"));
    assert_non_null(strstr(r.out, "driver 550.54.14, CUDA 12.4"));
    unsetenv("GENAI_NVML_LIBRARY");
    unsetenv("FAKE_NVML_SCRIPT");
    unlink(path);
}

static void test_flags(void **state)
{
    (void)state;
    run_result r;
    char *help[] = {(char *)tu_genai_bin(), "system", "--help", NULL};
    run(help, &r);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Usage: genai system"));
    char *bad[] = {(char *)tu_genai_bin(), "system", "--bogus", NULL};
    run(bad, &r);
    assert_int_equal(r.status, 2);
    assert_int_equal(r.len, 0); /* the complaint goes to stderr */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agrees_with_proc),
        cmocka_unit_test(test_with_fake_gpu),
        cmocka_unit_test(test_with_fake_nvml),
        cmocka_unit_test(test_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
