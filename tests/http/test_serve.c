/*
 * test_serve.c - `genai serve` as a process: it writes serve.json with its
 * port, answers, stops with exit status 0 on SIGTERM and removes serve.json;
 * a bad configuration file stops it at startup with the key in the message.
 */
#include "cmocka_all.h"

#include "http_test_util.h"

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

static char g_home[64];

static void nap(void)
{
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
}

/* Starts genai serve with extra args; stderr goes to *err_fd. */
static pid_t spawn_serve(const char *const *args, int *err_fd)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        const char *argv[16] = {GENAI_BIN, "serve"};
        int n = 2;
        for (int i = 0; args[i] != NULL && n < 15; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        setenv("GENAI_HOME", g_home, 1);
        execv(GENAI_BIN, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    *err_fd = p[0];
    return pid;
}

/* Waits for the child to exit within ms; returns its wait status or -1. */
static int wait_exit(pid_t pid, int ms)
{
    uint64_t end = t_now_ms() + (uint64_t)ms;
    int st;
    while (t_now_ms() < end) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        nap();
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static void read_all(int fd, char *buf, size_t n)
{
    size_t got = 0;
    ssize_t k;
    while (got < n - 1 && (k = read(fd, buf + got, n - 1 - got)) > 0)
        got += (size_t)k;
    buf[got] = '\0';
    close(fd);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_home, sizeof(g_home), "/tmp/genai-serve-XXXXXX");
    assert_non_null(mkdtemp(g_home));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char p[128];
    /* Children first, the home folder last (""). */
    const char *const sub[] = {"run/serve.json", "run",  "cache", "config/bad.json",
                               "config",         "data", ""};
    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", g_home, sub[i]);
        if (unlink(p) != 0)
            rmdir(p);
    }
    return 0;
}

static void test_serve_lifecycle(void **state)
{
    (void)state;
    const char *args[] = {"--port", "0", NULL};
    int err_fd;
    pid_t pid = spawn_serve(args, &err_fd);
    char state_path[128];
    snprintf(state_path, sizeof(state_path), "%s/run/serve.json", g_home);

    json_t *j = NULL;
    uint64_t end = t_now_ms() + 10000;
    while (j == NULL && t_now_ms() < end) {
        j = json_load_file(state_path, 0, NULL); /* written atomically: whole or absent */
        if (j == NULL)
            nap();
    }
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "pid")), pid);
    json_int_t port = json_integer_value(json_object_get(j, "port"));
    assert_true(port > 0 && port < 65536);
    char url[128];
    snprintf(url, sizeof(url), "%s/health", json_string_value(json_object_get(j, "url")));
    json_decref(j);

    tresp r;
    treq("GET", url, NULL, NULL, 0, 0, &r);
    assert_int_equal(r.status, 200);
    tresp_free(&r);

    assert_int_equal(kill(pid, SIGTERM), 0);
    int st = wait_exit(pid, 10000);
    assert_true(st != -1);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    struct stat sb;
    assert_int_equal(stat(state_path, &sb), -1);
    char err[4096];
    read_all(err_fd, err, sizeof(err));
    assert_non_null(strstr(err, "listening on http://127.0.0.1:"));
}

static void test_serve_bad_config(void **state)
{
    (void)state;
    char dir[128], path[160];
    snprintf(dir, sizeof(dir), "%s/config", g_home);
    mkdir(dir, 0700);
    snprintf(path, sizeof(path), "%s/bad.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"prot\": 1}", f);
    fclose(f);
    const char *args[] = {"--config", path, NULL};
    int err_fd;
    pid_t pid = spawn_serve(args, &err_fd);
    int st = wait_exit(pid, 10000);
    assert_true(st != -1 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    char err[4096];
    read_all(err_fd, err, sizeof(err));
    assert_non_null(strstr(err, "\"prot\""));
    assert_non_null(strstr(err, path));

    /* Non-loopback without a key: refused at startup. */
    const char *args2[] = {"--host", "0.0.0.0", "--port", "0", NULL};
    pid = spawn_serve(args2, &err_fd);
    st = wait_exit(pid, 10000);
    assert_true(st != -1 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    read_all(err_fd, err, sizeof(err));
    assert_non_null(strstr(err, "without an API key"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_serve_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serve_bad_config, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
