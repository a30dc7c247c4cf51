/*
 * test_budget_cli.c - `genai system` shows the budgets and reserves from the
 * configuration (environment here), other programs' use of a fake GPU, and
 * the usable figures the planner's rule gives: min(free - reserve, budget -
 * genai's own use).
 */
#include "cmocka_all.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define GIB (1ull << 30)

extern char **environ;

static char dir[64];
static char gpu_path[128];

/* Runs `genai system --json` and returns its parsed output. */
static json_t *system_json(void)
{
    char path[1024];
    const char *b = getenv("GENAI_BUILD_DIR");
    assert_non_null(b);
    snprintf(path, sizeof(path), "%s/src/cli/genai", b);
    char *argv[] = {path, "system", "--json", NULL};
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    pid_t pid;
    int rc = posix_spawn(&pid, path, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    assert_int_equal(rc, 0);
    static char out[1 << 16];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fds[0], out + len, sizeof(out) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    json_error_t je;
    json_t *j = json_loadb(out, len, 0, &je);
    if (j == NULL)
        fail_msg("bad JSON (%s): %.200s", je.text, out);
    return j;
}

static long long num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("%s is not an integer", key);
    return (long long)json_integer_value(v);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/genai-bcli-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(gpu_path, sizeof(gpu_path), "%s/gpu.json", dir);
    /* An 8 GiB card on which this test process (alive, not genai's) holds
     * 3 GiB: "another program". */
    char json[512];
    snprintf(json, sizeof(json),
             "{\"devices\":[{\"name\":\"Fake 8GB\",\"total_bytes\":%llu}],"
             "\"allocations\":[{\"device\":0,\"pid\":%d,\"bytes\":%llu}]}",
             8 * GIB, (int)getpid(), 3 * GIB);
    FILE *f = fopen(gpu_path, "w");
    if (f == NULL)
        return -1;
    fputs(json, f);
    fclose(f);
    setenv("GENAI_FAKE_GPU", gpu_path, 1);
    /* No daemon can be found under a fresh home. */
    setenv("GENAI_HOME", dir, 1);
    unsetenv("GENAI_CONFIG");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char p[192];
    unlink(gpu_path);
    snprintf(p, sizeof(p), "%s.lock", gpu_path);
    unlink(p);
    /* genai may create its folders under GENAI_HOME. */
    const char *sub[] = {"config", "data", "cache", "run", "state", "models", "logs"};
    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, sub[i]);
        rmdir(p);
    }
    return rmdir(dir) == 0 ? 0 : -1;
}

static void test_gpu_budget_and_reserve(void **state)
{
    (void)state;
    setenv("GENAI_BUDGET_GPU", "75%", 1);
    setenv("GENAI_RESERVE_GPU", "1GiB", 1);
    json_t *j = system_json();
    json_t *share = json_object_get(j, "share");
    assert_non_null(share);
    assert_true(json_is_null(json_object_get(share, "daemon_pid")));
    json_t *g = json_array_get(json_object_get(share, "gpus"), 0);
    assert_non_null(g);
    assert_int_equal(num(g, "budget_bytes"), 6 * GIB);
    assert_int_equal(num(g, "reserve_bytes"), 1 * GIB);
    assert_int_equal(num(g, "own_bytes"), 0);
    assert_int_equal(num(g, "others_bytes"), 3 * GIB);
    /* free 5 GiB - reserve 1 GiB = 4 GiB < budget 6 GiB */
    assert_int_equal(num(g, "usable_bytes"), 4 * GIB);
    json_decref(j);

    /* A budget below that binds. */
    setenv("GENAI_BUDGET_GPU", "2.5GiB", 1);
    j = system_json();
    g = json_array_get(json_object_get(json_object_get(j, "share"), "gpus"), 0);
    assert_int_equal(num(g, "usable_bytes"), 5 * GIB / 2);
    json_decref(j);

    /* No budget: the free side alone, with the default reserve. */
    unsetenv("GENAI_BUDGET_GPU");
    unsetenv("GENAI_RESERVE_GPU");
    j = system_json();
    g = json_array_get(json_object_get(json_object_get(j, "share"), "gpus"), 0);
    assert_true(json_is_null(json_object_get(g, "budget_bytes")));
    assert_int_equal(num(g, "usable_bytes"), 5 * GIB - 256 * (1ull << 20));
    json_decref(j);
}

static void test_host_budget(void **state)
{
    (void)state;
    setenv("GENAI_BUDGET_HOST", "64MiB", 1);
    setenv("GENAI_RESERVE_HOST", "0", 1);
    json_t *j = system_json();
    json_t *h = json_object_get(json_object_get(j, "share"), "host");
    assert_int_equal(num(h, "budget_bytes"), 64ll << 20);
    assert_int_equal(num(h, "reserve_bytes"), 0);
    /* Any machine running this test has 64 MiB available. */
    assert_int_equal(num(h, "usable_bytes"), 64ll << 20);
    json_decref(j);
    /* A fraction of the host total. */
    setenv("GENAI_BUDGET_HOST", "1%", 1);
    j = system_json();
    long long total = num(json_object_get(j, "memory"), "total_bytes");
    json_t *cg = json_object_get(json_object_get(j, "memory"), "cgroup");
    if (json_is_true(json_object_get(cg, "limited")) && num(cg, "limit_bytes") < total)
        total = num(cg, "limit_bytes");
    h = json_object_get(json_object_get(j, "share"), "host");
    assert_int_equal(num(h, "budget_bytes"), total / 100);
    json_decref(j);
    unsetenv("GENAI_BUDGET_HOST");
    unsetenv("GENAI_RESERVE_HOST");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpu_budget_and_reserve),
        cmocka_unit_test(test_host_budget),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
