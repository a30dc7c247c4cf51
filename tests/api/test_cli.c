/*
 * test_cli.c - `genai status`, `genai logs` and `genai stop` as processes,
 * against a real `genai serve` on a free port in a temporary GENAI_HOME:
 * with no daemon (and with a stale serve.json) each says so and exits 1; with
 * one they report it, show its log lines and stop it (exit 0, serve.json
 * gone); a daemon with an API key refuses a stop without the key.
 */
#include "cmocka_all.h"

#include "testutil/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char g_home[96];
static char g_state[160];

typedef struct run_result {
    int status; /* exit status, or -1 when killed */
    char out[8192];
    char err[4096];
} run_result;

/* Reads fd to EOF into buf (NUL-terminated, truncated to n - 1). */
static void slurp(int fd, char *buf, size_t n)
{
    size_t got = 0;
    ssize_t k;
    char sink[512];
    while ((k = read(fd, got < n - 1 ? buf + got : sink,
                     got < n - 1 ? n - 1 - got : sizeof(sink))) > 0) {
        if (got < n - 1)
            got += (size_t)k;
    }
    buf[got] = '\0';
    close(fd);
}

/* Runs genai with args (NULL-terminated) and the extra environment entry
 * env ("NAME=value" or NULL); collects stdout and stderr. */
static void run_genai(const char *const *args, const char *env, run_result *r)
{
    int po[2], pe[2];
    assert_int_equal(pipe2(po, O_CLOEXEC), 0);
    assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        const char *argv[16] = {GENAI_BIN};
        int n = 1;
        for (int i = 0; args[i] != NULL && n < 15; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        if (env != NULL)
            putenv((char *)env);
        execv(GENAI_BIN, (char *const *)argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    /* stderr is small; read stdout first, the child cannot block on it. */
    slurp(po[0], r->out, sizeof(r->out));
    slurp(pe[0], r->err, sizeof(r->err));
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static pid_t g_serve;

static int state_ready(void *arg)
{
    (void)arg;
    json_t *j = json_load_file(g_state, 0, NULL); /* written atomically */
    int ok = j != NULL && json_integer_value(json_object_get(j, "pid")) == g_serve;
    json_decref(j);
    return ok;
}

/* Starts genai serve --port 0 [extra...] and waits for its serve.json. */
static void serve_start(const char *extra1, const char *extra2)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        dup2(devnull, 2);
        execl(GENAI_BIN, GENAI_BIN, "serve", "--port", "0", extra1, extra2, (char *)NULL);
        _exit(127);
    }
    g_serve = pid;
    assert_true(tu_wait(state_ready, NULL, 10000));
}

/* Waits for the daemon to exit (deadline 15 s); returns its exit status,
 * or -1 after killing it. */
static int serve_wait(void)
{
    for (int i = 0; i < 3000; i++) {
        int st;
        pid_t r = waitpid(g_serve, &st, WNOHANG);
        if (r == g_serve)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        struct timespec nap = {0, 5000000};
        nanosleep(&nap, NULL);
    }
    kill(g_serve, SIGKILL);
    waitpid(g_serve, NULL, 0);
    return -1;
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(tu_mkdtemp(g_home, sizeof(g_home), "cli"), 0);
    setenv("GENAI_HOME", g_home, 1);
    unsetenv("GENAI_API_KEY");
    snprintf(g_state, sizeof(g_state), "%s/run/serve.json", g_home);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rm_rf(g_home);
    return 0;
}

static void assert_none_running(const char *cmd)
{
    const char *args[] = {cmd, NULL};
    run_result r;
    run_genai(args, NULL, &r);
    assert_int_equal(r.status, 1);
    char want[256];
    snprintf(want, sizeof(want), "genai %s: no genai daemon is running (looked for %s", cmd,
             g_state);
    if (strstr(r.err, want) == NULL)
        fail_msg("stderr: %s", r.err);
}

static void test_no_daemon(void **state)
{
    (void)state;
    assert_none_running("status");
    assert_none_running("logs");
    assert_none_running("stop");

    /* A stale file: its pid was a process that is gone (reaped). */
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    char dir[160], text[256];
    snprintf(dir, sizeof(dir), "%s/run", g_home);
    mkdir(dir, 0700);
    int n = snprintf(text, sizeof(text),
                     "{\"pid\": %d, \"host\": \"127.0.0.1\", \"port\": 1, "
                     "\"url\": \"http://127.0.0.1:1\", \"version\": \"0.1.0\"}\n",
                     (int)dead);
    assert_int_equal(tu_write(g_state, text, (size_t)n), 0);
    const char *args[] = {"status", NULL};
    run_result r;
    run_genai(args, NULL, &r);
    assert_int_equal(r.status, 1);
    char want[64];
    snprintf(want, sizeof(want), "it names pid %d, which is not running", (int)dead);
    assert_non_null(strstr(r.err, want));

    /* A garbled file is reported as such, not as "no daemon". */
    assert_int_equal(tu_write(g_state, "{\"pid\": \"x\"}", 12), 0);
    run_genai(args, NULL, &r);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "is not a genai serve state file"));
}

static void test_status_logs_stop(void **state)
{
    (void)state;
    serve_start(NULL, NULL);
    run_result r;

    const char *st[] = {"status", NULL};
    run_genai(st, NULL, &r);
    assert_int_equal(r.status, 0);
    char want[64];
    snprintf(want, sizeof(want), "genai daemon: running (pid %d, version ", (int)g_serve);
    if (strstr(r.out, want) == NULL)
        fail_msg("status output: %s", r.out);
    assert_non_null(strstr(r.out, "address:      http://127.0.0.1:"));
    assert_non_null(strstr(r.out, "uptime:"));
    assert_non_null(strstr(r.out, "memory:       daemon "));
    assert_non_null(strstr(r.out, "runtimes:     0\n")); /* nothing loaded yet */

    const char *stj[] = {"status", "--json", NULL};
    run_genai(stj, NULL, &r);
    assert_int_equal(r.status, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "pid")), g_serve);
    assert_true(json_integer_value(json_object_get(j, "rss_bytes")) > 0);
    assert_string_equal(json_string_value(json_object_get(j, "state_file")), g_state);
    json_decref(j);

    /* The daemon logs its listening address at info: it is in the ring. */
    const char *lg[] = {"logs", "-n", "50", NULL};
    run_genai(lg, NULL, &r);
    assert_int_equal(r.status, 0);
    if (strstr(r.out, " info  http: listening on 127.0.0.1 port ") == NULL)
        fail_msg("logs output: %s", r.out);
    const char *lgbad[] = {"logs", "-n", "0", NULL};
    run_genai(lgbad, NULL, &r);
    assert_int_equal(r.status, 2);

    const char *sp[] = {"stop", NULL};
    run_genai(sp, NULL, &r);
    assert_int_equal(r.status, 0);
    snprintf(want, sizeof(want), "genai daemon (pid %d) stopped", (int)g_serve);
    assert_non_null(strstr(r.out, want));
    assert_int_equal(serve_wait(), 0);
    assert_int_equal(tu_size(g_state), -1);
    assert_none_running("status");
}

static void test_stop_needs_key(void **state)
{
    (void)state;
    char key_file[160];
    snprintf(key_file, sizeof(key_file), "%s/key", g_home);
    assert_int_equal(tu_write(key_file, "k3y-for-test\n", 13), 0);
    serve_start("--api-key-file", key_file);
    run_result r;

    const char *sp[] = {"stop", NULL};
    run_genai(sp, NULL, &r);
    assert_int_equal(r.status, 1);
    if (strstr(r.err, "the daemon answered 401") == NULL)
        fail_msg("stop without key: %s", r.err);
    run_genai(sp, "GENAI_API_KEY=wrong", &r);
    assert_int_equal(r.status, 1);
    assert_true(state_ready(NULL)); /* still running */

    run_genai(sp, "GENAI_API_KEY=k3y-for-test", &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(serve_wait(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_daemon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_logs_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_needs_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
