/*
 * test_reserve_http.c - reservations through `genai serve` (docs/budgets.md,
 * docs/api.md "Reservations"), as a process, with the 8 GiB fake GPU and
 * fake-llama-server holding its GPU memory 400 ms after it exits (a driver
 * that returns memory late):
 *   - a 4 GiB reservation offloads the LLM, is confirmed only once the fake
 *     driver shows the LLM's memory gone, is listed with genai's share, and
 *     the LLM returns (a new pid) after DELETE; metrics count it;
 *   - a reservation made with wait=1 answers when confirmed and expires by
 *     itself at its deadline, and the LLM returns;
 *   - bad requests get their stable error codes; the API key is required.
 * The group teardown stops the daemon with SIGTERM (exit 0) and checks that
 * every llama-server it started is gone.
 */
#include "cmocka_all.h"

#include "../orch/orch_harness.h"
#include "http_test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEY "reserve-test-key"
#define AUTH "Authorization: Bearer " KEY
#define JSON_CT "Content-Type: application/json"
#define GIB (1ull << 30)
#define MODEL "llm-12b"

static oh g_h; /* fixtures only: the directory, the fake GPU file, the model */
static char g_home[400];
static pid_t g_serve;
static unsigned g_port;
static pid_t g_llm_pids[32];
static size_t g_n_llm_pids;

static void nap(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void run_genai(const char *const *args)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *argv[16] = {GENAI_BIN};
        int n = 1;
        for (int i = 0; args[i] != NULL && n < 15; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        setenv("GENAI_HOME", g_home, 1);
        int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execv(GENAI_BIN, (char *const *)argv);
        _exit(127);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* `genai status` (human output) against the daemon, into out. */
static void genai_status(char *out, size_t n)
{
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char key[500];
        snprintf(key, sizeof(key), "%s/key", g_h.dir);
        setenv("GENAI_HOME", g_home, 1);
        setenv("GENAI_API_KEY_FILE", key, 1);
        dup2(fds[1], 1);
        execl(GENAI_BIN, GENAI_BIN, "status", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t k;
    while (len + 1 < n && (k = read(fds[0], out + len, n - 1 - len)) > 0)
        len += (size_t)k;
    out[len] = '\0';
    close(fds[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static long call(const char *method, const char *path, const char *body, tresp *out)
{
    char u[256];
    snprintf(u, sizeof(u), "http://127.0.0.1:%u%s", g_port, path);
    const char *hdrs[] = {AUTH, JSON_CT, NULL};
    assert_int_equal(treq(method, u, hdrs, body, body ? strlen(body) : 0, 0, out), 0);
    return out->status;
}

static json_t *call_json(const char *method, const char *path, const char *body, long want)
{
    tresp r;
    long st = call(method, path, body, &r);
    json_t *j = json_loads(sbuf_str(&r.body), 0, NULL);
    if (st != want || j == NULL)
        fail_msg("%s %s: expected %ld, got %ld: %s", method, path, want, st, sbuf_str(&r.body));
    tresp_free(&r);
    return j;
}

static void expect_error(const char *method, const char *path, const char *body, long status,
                         const char *code)
{
    json_t *j = call_json(method, path, body, status);
    const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    if (c == NULL || strcmp(c, code) != 0)
        fail_msg("%s %s: expected code %s", method, path, code);
    json_decref(j);
}

static const char *state_of(json_t *j)
{
    const char *s = json_string_value(json_object_get(j, "state"));
    return s != NULL ? s : "";
}

/* GET /api/llm: its state into buf and its pid. */
static pid_t llm_state(char *buf, size_t n)
{
    json_t *j = call_json("GET", "/api/llm", NULL, 200);
    snprintf(buf, n, "%s", state_of(j));
    pid_t pid = (pid_t)json_integer_value(json_object_get(j, "pid"));
    json_decref(j);
    if (pid > 0 && g_n_llm_pids < 32)
        g_llm_pids[g_n_llm_pids++] = pid;
    return pid;
}

/* Polls GET /api/llm until the LLM is ready; returns its pid. */
static pid_t wait_llm_ready(int timeout_ms)
{
    uint64_t end = t_now_ms() + (uint64_t)timeout_ms;
    char st[32];
    while (t_now_ms() < end) {
        pid_t pid = llm_state(st, sizeof(st));
        if (strcmp(st, "ready") == 0)
            return pid;
        nap(20);
    }
    fail_msg("the LLM is not ready after %d ms (state %s)", timeout_ms, st);
    return 0;
}

/* Polls GET /api/reservations/{id} until its state is want. */
static json_t *wait_rsv(long long id, const char *want, int timeout_ms)
{
    char path[64];
    snprintf(path, sizeof(path), "/api/reservations/%lld", id);
    uint64_t end = t_now_ms() + (uint64_t)timeout_ms;
    while (t_now_ms() < end) {
        json_t *j = call_json("GET", path, NULL, 200);
        if (strcmp(state_of(j), want) == 0)
            return j;
        json_decref(j);
        nap(10);
    }
    fail_msg("reservation %lld not %s after %d ms", id, want, timeout_ms);
    return NULL;
}

static double metric(const char *name_labels)
{
    tresp r;
    assert_int_equal(call("GET", "/metrics", NULL, &r), 200);
    /* The sample line, not the "# HELP name ..." or "# TYPE name ..." lines:
     * the name must start a line. */
    const char *body = sbuf_str(&r.body);
    const char *p = body;
    while ((p = strstr(p, name_labels)) != NULL && p != body && p[-1] != '\n')
        p++;
    double v = -1;
    if (p != NULL)
        v = strtod(p + strlen(name_labels), NULL);
    tresp_free(&r);
    return v;
}

static int group_setup(void **state)
{
    (void)state;
    oh_setup(&g_h);
    oh_fake_gpu(&g_h, 8 * GIB);
    oh_write_llm(&g_h, 12288);
    setenv("FAKE_LLAMA_GPU_HOLD_MS", "400", 1);
    snprintf(g_home, sizeof(g_home), "%s/home", g_h.dir);
    assert_int_equal(mkdir(g_home, 0700), 0);
    char key[500];
    snprintf(key, sizeof(key), "%s/key", g_h.dir);
    FILE *f = fopen(key, "we");
    assert_non_null(f);
    fputs(KEY "\n", f);
    fclose(f);
    const char *add[] = {"add", g_h.llm_model, NULL};
    run_genai(add);

    g_serve = fork();
    assert_true(g_serve >= 0);
    if (g_serve == 0) {
        const char *argv[] = {GENAI_BIN, "serve", "--port", "0", "--api-key-file", key, NULL};
        setenv("GENAI_HOME", g_home, 1);
        execv(GENAI_BIN, (char *const *)argv);
        _exit(127);
    }
    char sj[500];
    snprintf(sj, sizeof(sj), "%s/run/serve.json", g_home);
    json_t *j = NULL;
    uint64_t end = t_now_ms() + 15000;
    while (j == NULL && t_now_ms() < end) {
        j = json_load_file(sj, 0, NULL);
        if (j == NULL)
            nap(5);
    }
    assert_non_null(j);
    g_port = (unsigned)json_integer_value(json_object_get(j, "port"));
    json_decref(j);
    return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    kill(g_serve, SIGTERM);
    int st = 0;
    uint64_t end = t_now_ms() + 30000;
    while (t_now_ms() < end && waitpid(g_serve, &st, WNOHANG) != g_serve)
        nap(5);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (size_t i = 0; i < g_n_llm_pids; i++) {
        errno = 0;
        assert_true(kill(g_llm_pids[i], 0) != 0 && errno == ESRCH);
    }
    nftw(g_h.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    unsetenv("GENAI_FAKE_GPU");
    return 0;
}

static void test_reservation_offloads_and_returns(void **state)
{
    (void)state;
    json_t *j = call_json("POST", "/api/llm/start", "{\"model\":\"" MODEL "\"}", 200);
    json_decref(j);
    pid_t llm = wait_llm_ready(20000);
    uint64_t held = oh_gpu_bytes_of(&g_h, llm);
    printf("# LLM pid %d holds %.2f GiB of the 8 GiB fake GPU\n", (int)llm,
           (double)held / (double)GIB);
    assert_true(held > 4 * GIB);

    j = call_json("POST", "/api/reservations",
                  "{\"device\":0,\"bytes\":4294967296,\"deadline_s\":60,"
                  "\"reason\":\"the game loads a level\"}",
                  202);
    long long id = json_integer_value(json_object_get(j, "id"));
    assert_true(id > 0);
    assert_string_equal(state_of(j), "pending");
    json_decref(j);

    j = wait_rsv(id, "confirmed", 15000);
    /* Confirmed only once observed free: the LLM's allocation is gone from
     * the fake driver (it holds it 400 ms after exit) and 4 GiB are free. */
    assert_int_equal(oh_gpu_bytes_of(&g_h, llm), 0);
    assert_true(json_integer_value(json_object_get(j, "free_bytes")) >= (json_int_t)(4 * GIB));
    assert_true(json_is_true(json_object_get(j, "moved")));
    json_int_t confirm_ms = json_integer_value(json_object_get(j, "confirm_ms"));
    printf("# confirmed in %lld ms\n", (long long)confirm_ms);
    assert_true(confirm_ms >= 400);
    json_decref(j);
    char st[32];
    llm_state(st, sizeof(st));
    assert_string_not_equal(st, "ready");

    /* Listed as active, with the promised bytes in genai's share. */
    j = call_json("GET", "/api/reservations", NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "active")), 1);
    json_t *gpu0 = json_array_get(json_object_get(json_object_get(j, "share"), "gpus"), 0);
    assert_non_null(gpu0);
    assert_int_equal(json_integer_value(json_object_get(gpu0, "promised_bytes")),
                     (json_int_t)(4 * GIB));
    json_decref(j);
    /* `genai status` shows the share and the active reservation. */
    char text[8192];
    genai_status(text, sizeof(text));
    if (strstr(text, "+ 4.00 GiB reserved") == NULL ||
        strstr(text, "reservations: 1 active") == NULL ||
        strstr(text, "confirmed: the game loads a level") == NULL)
        fail_msg("genai status:\n%s", text);

    char path[64];
    snprintf(path, sizeof(path), "/api/reservations/%lld", id);
    j = call_json("DELETE", path, NULL, 200);
    assert_string_equal(state_of(j), "released");
    json_decref(j);
    expect_error("DELETE", path, NULL, 409, "reservation_ended");

    pid_t back = wait_llm_ready(30000);
    assert_int_not_equal(back, llm);
    assert_true(oh_gpu_bytes_of(&g_h, back) > 4 * GIB);
    assert_true(metric("genai_reservations_total{result=\"released\"} ") == 1.0);
    assert_true(metric("genai_reservations_active ") == 0.0);
}

static void test_reservation_waits_and_expires(void **state)
{
    (void)state;
    pid_t llm = wait_llm_ready(30000);
    uint64_t t0 = t_now_ms();
    json_t *j = call_json("POST", "/api/reservations?wait=1",
                          "{\"device\":0,\"bytes\":4294967296,\"deadline_s\":3,"
                          "\"reason\":\"a cutscene\"}",
                          200);
    assert_string_equal(state_of(j), "confirmed");
    long long id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    assert_int_equal(oh_gpu_bytes_of(&g_h, llm), 0);
    j = wait_rsv(id, "expired", 10000);
    json_decref(j);
    assert_true(t_now_ms() - t0 >= 3000);
    pid_t back = wait_llm_ready(30000);
    assert_int_not_equal(back, llm);
    assert_true(metric("genai_reservations_total{result=\"expired\"} ") == 1.0);
}

static void test_reservation_bad_requests(void **state)
{
    (void)state;
    expect_error("POST", "/api/reservations", "{\"device\":0,\"bytes\":0,\"deadline_s\":5}", 400,
                 "bad_request");
    expect_error("POST", "/api/reservations", "{\"device\":0,\"bytes\":1024}", 400, "bad_request");
    expect_error("POST", "/api/reservations",
                 "{\"device\":\"gpu\",\"bytes\":1024,\"deadline_s\":5}", 400, "bad_request");
    expect_error("POST", "/api/reservations", "{\"device\":3,\"bytes\":1024,\"deadline_s\":5}", 400,
                 "bad_request");
    expect_error("POST", "/api/reservations",
                 "{\"device\":0,\"bytes\":9663676416,\"deadline_s\":5}", 422, "does_not_fit");
    expect_error("GET", "/api/reservations/999", NULL, 404, "reservation_not_found");
    expect_error("GET", "/api/reservations/x", NULL, 400, "bad_request");
    expect_error("DELETE", "/api/reservations/999", NULL, 404, "reservation_not_found");
    /* A host reservation that is free already: held at once, nothing moves. */
    json_t *j = call_json("POST", "/api/reservations",
                          "{\"device\":\"host\",\"bytes\":16777216,\"deadline_s\":60}", 202);
    assert_string_equal(state_of(j), "confirmed");
    assert_false(json_is_true(json_object_get(j, "moved")));
    char path[64];
    snprintf(path, sizeof(path), "/api/reservations/%lld",
             (long long)json_integer_value(json_object_get(j, "id")));
    json_decref(j);
    json_decref(call_json("DELETE", path, NULL, 200));
    /* The native routes need the key. */
    char u[128];
    snprintf(u, sizeof(u), "http://127.0.0.1:%u/api/reservations", g_port);
    tresp r;
    assert_int_equal(treq("GET", u, NULL, NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 401);
    tresp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reservation_offloads_and_returns),
        cmocka_unit_test(test_reservation_waits_and_expires),
        cmocka_unit_test(test_reservation_bad_requests),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
