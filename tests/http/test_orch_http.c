/*
 * test_orch_http.c - `genai serve` with models behind it, as a process, with
 * the fake GPU, fake-llama-server and fake-sd-cli: the OpenAI inference
 * routes (chat plain and streamed, image generation), the native runtime
 * and image job routes, every request check with its status, a client that
 * disconnects mid-stream (the upstream is aborted: llama-server's only slot
 * is free again at once, not after the 2048 tokens the request would have
 * generated), the LLM child's log lines and its restart after a SIGKILL
 * (counted in /metrics), and a daemon with no configuration and no models.
 *
 * Every test talks to a real daemon over loopback; the group teardown stops
 * it with SIGTERM (exit 0) and checks that every llama-server it started is
 * gone.
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

#define KEY "orch-test-key"
#define AUTH "Authorization: Bearer " KEY
#define JSON_CT "Content-Type: application/json"

static char g_home[64];
static char g_empty[64];
static pid_t g_serve;
static unsigned g_port;
static pid_t g_llm_pids[16];
static size_t g_n_llm_pids;

static void nap(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void run_genai(const char *home, const char *const *args)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *argv[16] = {GENAI_BIN};
        int n = 1;
        for (int i = 0; args[i] != NULL && n < 15; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        setenv("GENAI_HOME", home, 1);
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

static pid_t spawn_serve(const char *home, const char *const *args, unsigned *port)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *argv[16] = {GENAI_BIN, "serve", "--port", "0"};
        int n = 4;
        for (int i = 0; args[i] != NULL && n < 15; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        setenv("GENAI_HOME", home, 1);
        execv(GENAI_BIN, (char *const *)argv);
        _exit(127);
    }
    char state[128];
    snprintf(state, sizeof(state), "%s/run/serve.json", home);
    json_t *j = NULL;
    uint64_t end = t_now_ms() + 15000;
    while (j == NULL && t_now_ms() < end) {
        j = json_load_file(state, 0, NULL);
        if (j == NULL)
            nap(5);
    }
    assert_non_null(j);
    *port = (unsigned)json_integer_value(json_object_get(j, "port"));
    json_decref(j);
    return pid;
}

static int stop_serve(pid_t pid)
{
    kill(pid, SIGTERM);
    uint64_t end = t_now_ms() + 30000;
    int st;
    while (t_now_ms() < end) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        nap(5);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static void url(char *buf, size_t n, unsigned port, const char *path)
{
    snprintf(buf, n, "http://127.0.0.1:%u%s", port, path);
}

/* One request to the main daemon with the key; returns the status. */
static long call(const char *method, const char *path, const char *body, tresp *out)
{
    char u[256];
    url(u, sizeof(u), g_port, path);
    const char *hdrs[] = {AUTH, JSON_CT, NULL};
    assert_int_equal(treq(method, u, hdrs, body, body ? strlen(body) : 0, 0, out), 0);
    return out->status;
}

static json_t *body_json(const tresp *r)
{
    json_t *j = json_loads(sbuf_str(&r->body), 0, NULL);
    if (j == NULL)
        fail_msg("not JSON: %s", sbuf_str(&r->body));
    return j;
}

static void expect_error(const tresp *r, long status, const char *code)
{
    if (r->status != status)
        fail_msg("expected %ld %s, got %ld: %s", status, code, r->status, sbuf_str(&r->body));
    json_t *j = body_json(r);
    const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    if (c == NULL || strcmp(c, code) != 0)
        fail_msg("expected code %s: %s", code, sbuf_str(&r->body));
    json_decref(j);
}

static void note_llm_pid(void)
{
    tresp r;
    assert_int_equal(call("GET", "/api/llm", NULL, &r), 200);
    json_t *j = body_json(&r);
    json_int_t pid = json_integer_value(json_object_get(j, "pid"));
    if (pid > 0 && g_n_llm_pids < 16)
        g_llm_pids[g_n_llm_pids++] = (pid_t)pid;
    json_decref(j);
    tresp_free(&r);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_home, sizeof(g_home), "/tmp/genai-orchhttp-XXXXXX");
    assert_non_null(mkdtemp(g_home));
    char p[256];
    snprintf(p, sizeof(p), "%s/gpu.json", g_home);
    FILE *f = fopen(p, "we");
    assert_non_null(f);
    fputs("{\"devices\":[{\"name\":\"Fake GPU 8GB\",\"total_bytes\":8589934592}],"
          "\"allocations\":[]}\n",
          f);
    fclose(f);
    setenv("GENAI_FAKE_GPU", p, 1);
    setenv("GENAI_LLAMA_SERVER", FAKE_LLAMA_BIN, 1);
    setenv("GENAI_SD_CLI", FAKE_SD_BIN, 1);
    setenv("FAKE_LLAMA_TOKEN_MS", "20", 1); /* a full context takes 40 s */
    setenv("FAKE_SD_STEP_MS", "20", 1);
    snprintf(p, sizeof(p), "%s/key", g_home);
    f = fopen(p, "we");
    assert_non_null(f);
    fputs(KEY "\n", f);
    fclose(f);

    const char *data = getenv("GENAI_TEST_DATA");
    assert_non_null(data);
    char llm[256], sd[256];
    snprintf(llm, sizeof(llm), "%s/gguf/corpus/valid_tiny_llama.gguf", data);
    snprintf(sd, sizeof(sd), "%s/image/tiny-sd1.fake.safetensors", data);
    const char *add_llm[] = {"add", llm, NULL};
    const char *add_sd[] = {"add", sd, "--kind", "diffusion", "--name", "sd1", NULL};
    run_genai(g_home, add_llm);
    run_genai(g_home, add_sd);

    const char *args[] = {"--api-key-file", p, NULL};
    g_serve = spawn_serve(g_home, args, &g_port);
    return 0;
}

static void rm_tree(const char *dir)
{
    /* Test-made folders only; the path is ours (mkdtemp). */
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "%s", dir);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/rm", "rm", "-rf", cmd, (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
}

static int group_teardown(void **state)
{
    (void)state;
    int st = stop_serve(g_serve);
    assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (size_t i = 0; i < g_n_llm_pids; i++)
        assert_true(kill(g_llm_pids[i], 0) != 0 && errno == ESRCH);
    rm_tree(g_home);
    return 0;
}

/* ---- the tests ----------------------------------------------------------------- */

static const char chat3[] = "{\"model\":\"valid_tiny_llama\",\"max_tokens\":3,"
                            "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

static void test_chat(void **state)
{
    (void)state;
    tresp r;
    assert_int_equal(call("POST", "/v1/chat/completions", chat3, &r), 200);
    json_t *j = body_json(&r);
    const char *content = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"), "content"));
    assert_non_null(content);
    assert_string_equal(content, "0rr="); /* the double's deterministic tokens */
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "usage"), "completion_tokens")), 3);
    json_decref(j);
    tresp_free(&r);
    note_llm_pid();

    /* Streamed: the double's chunks, then [DONE]. */
    const char stream[] = "{\"model\":\"valid_tiny_llama\",\"max_tokens\":4,\"stream\":true,"
                          "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    assert_int_equal(call("POST", "/v1/chat/completions", stream, &r), 200);
    char ct[128];
    assert_non_null(tresp_header(&r, "Content-Type", ct, sizeof(ct)));
    assert_non_null(strstr(ct, "text/event-stream"));
    const char *b = sbuf_str(&r.body);
    size_t events = 0;
    for (const char *p = b; (p = strstr(p, "data: ")) != NULL; p += 6)
        events++;
    assert_true(events >= 6); /* role, 4 tokens, finish, [DONE] */
    assert_non_null(strstr(b, "\"content\":\"rr\""));
    assert_non_null(strstr(b, "data: [DONE]"));
    tresp_free(&r);

    /* /v1/completions goes through the same proxy. */
    assert_int_equal(call("POST", "/v1/completions",
                          "{\"model\":\"valid_tiny_llama\",\"prompt\":\"hi\",\"max_tokens\":2}",
                          &r),
                     200);
    tresp_free(&r);

    /* Tokens from the usage fields reached the metrics. */
    assert_int_equal(call("GET", "/metrics", NULL, &r), 200);
    assert_non_null(strstr(sbuf_str(&r.body), "genai_llm_tokens_total{kind=\"completion\"}"));
    assert_non_null(strstr(sbuf_str(&r.body), "genai_orch_load_seconds_count 1"));
    tresp_free(&r);
}

static void test_request_errors(void **state)
{
    (void)state;
    tresp r;
    char u[256];
    url(u, sizeof(u), g_port, "/v1/chat/completions");

    call("POST", "/v1/chat/completions", "{\"model\": \"valid_tiny_llama\", ", &r);
    expect_error(&r, 400, "invalid_json");
    tresp_free(&r);

    size_t big = 17u * 1024u * 1024u;
    char *huge = malloc(big + 1);
    assert_non_null(huge);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\0';
    call("POST", "/v1/chat/completions", huge, &r);
    assert_int_equal(r.status, 413);
    tresp_free(&r);
    free(huge);

    const char *wrong_host[] = {AUTH, JSON_CT, "Host: evil.example", NULL};
    treq("POST", u, wrong_host, chat3, strlen(chat3), 0, &r);
    expect_error(&r, 403, "host_not_allowed");
    tresp_free(&r);

    const char *no_key[] = {JSON_CT, NULL};
    treq("POST", u, no_key, chat3, strlen(chat3), 0, &r);
    expect_error(&r, 401, "unauthorized");
    tresp_free(&r);

    const char *bad_key[] = {"Authorization: Bearer nope", JSON_CT, NULL};
    treq("POST", u, bad_key, chat3, strlen(chat3), 0, &r);
    expect_error(&r, 401, "unauthorized");
    tresp_free(&r);

    call("POST", "/v1/chat/completions",
         "{\"model\":\"no-such-model\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r);
    expect_error(&r, 404, "model_not_found");
    assert_non_null(strstr(sbuf_str(&r.body), "genai pull"));
    tresp_free(&r);

    call("POST", "/v1/chat/completions", "{\"messages\":[]}", &r);
    expect_error(&r, 400, "bad_request");
    tresp_free(&r);

    call("POST", "/v1/chat/completions",
         "{\"model\":\"sd1\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r);
    expect_error(&r, 400, "wrong_model_kind");
    tresp_free(&r);

    call("POST", "/v1/images/generations",
         "{\"model\":\"sd1\",\"prompt\":\"x\",\"response_format\":\"url\"}", &r);
    expect_error(&r, 400, "bad_request");
    tresp_free(&r);

    call("POST", "/v1/images/generations", "{\"model\":\"sd1\",\"prompt\":\"x\",\"size\":\"big\"}",
         &r);
    expect_error(&r, 400, "bad_request");
    tresp_free(&r);
}

/* Reads from fd until needle was seen or the deadline; 1 when seen. */
static int read_until(int fd, const char *needle, int ms)
{
    char buf[8192];
    size_t got = 0;
    uint64_t end = t_now_ms() + (uint64_t)ms;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    while (t_now_ms() < end) {
        ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (k > 0) {
            got += (size_t)k;
            buf[got] = '\0';
            if (strstr(buf, needle) != NULL)
                return 1;
            if (got > sizeof(buf) / 2) {
                memmove(buf, buf + got / 2, got - got / 2);
                got -= got / 2;
            }
        } else if (k == 0) {
            return 0;
        } else {
            nap(2);
        }
    }
    return 0;
}

static void test_client_disconnect_aborts_upstream(void **state)
{
    (void)state;
    /* No max_tokens: the double generates until the 2048-token context is
     * full, 20 ms a token, on its only slot. */
    const char body[] = "{\"model\":\"valid_tiny_llama\",\"stream\":true,"
                        "\"messages\":[{\"role\":\"user\",\"content\":\"tell a long story\"}]}";
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n" AUTH
                     "\r\n" JSON_CT "\r\nContent-Length: %zu\r\n\r\n%s",
                     g_port, strlen(body), body);
    int fd = t_connect(g_port);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, req, (size_t)n), n);
    assert_true(read_until(fd, "\"content\":\"rr\"", 10000));
    close(fd);

    /* The slot is free again only if genai closed the upstream connection:
     * otherwise this request waits ~40 s behind the abandoned one. */
    uint64_t t0 = t_now_ms();
    tresp r;
    assert_int_equal(call("POST", "/v1/chat/completions", chat3, &r), 200);
    uint64_t took = t_now_ms() - t0;
    tresp_free(&r);
    if (took > 10000)
        fail_msg("the request after the disconnect took %llu ms: upstream not aborted",
                 (unsigned long long)took);

    /* The daemon counted the aborted stream as a finished request. */
    assert_int_equal(call("GET", "/api/llm", NULL, &r), 200);
    json_t *j = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "in_flight")), 0);
    json_decref(j);
    tresp_free(&r);
}

static int b64_is_png(const char *b64)
{
    /* "\x89PNG" base64-encodes to "iVBORw" */
    return b64 != NULL && strncmp(b64, "iVBORw0KGgo", 11) == 0;
}

static void test_images(void **state)
{
    (void)state;
    tresp r;
    assert_int_equal(call("POST", "/v1/images/generations",
                          "{\"model\":\"sd1\",\"prompt\":\"a red cube\",\"size\":\"64x64\",\"n\":2,"
                          "\"steps\":2,\"seed\":42,\"response_format\":\"b64_json\"}",
                          &r),
                     200);
    json_t *j = body_json(&r);
    json_t *data = json_object_get(j, "data");
    assert_int_equal(json_array_size(data), 2);
    assert_true(
        b64_is_png(json_string_value(json_object_get(json_array_get(data, 0), "b64_json"))));
    json_t *g = json_object_get(j, "genai");
    assert_int_equal(json_integer_value(json_object_get(g, "width")), 64);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(g, "seeds"), 0)), 42);
    assert_non_null(json_object_get(g, "model_settings"));
    json_decref(j);
    tresp_free(&r);

    /* Native: 202 and a job to poll. */
    assert_int_equal(call("POST", "/api/images",
                          "{\"model\":\"sd1\",\"prompt\":\"a blue sphere\",\"size\":\"64x64\","
                          "\"steps\":3}",
                          &r),
                     202);
    j = body_json(&r);
    json_int_t id = json_integer_value(json_object_get(j, "id"));
    assert_true(id > 0);
    json_decref(j);
    tresp_free(&r);
    char path[64];
    snprintf(path, sizeof(path), "/api/images/%lld", (long long)id);
    const char *st = NULL;
    uint64_t end = t_now_ms() + 30000;
    j = NULL;
    while (t_now_ms() < end) {
        assert_int_equal(call("GET", path, NULL, &r), 200);
        json_decref(j);
        j = body_json(&r);
        tresp_free(&r);
        st = json_string_value(json_object_get(j, "state"));
        if (st != NULL && strcmp(st, "succeeded") == 0)
            break;
        nap(20);
    }
    assert_non_null(st);
    assert_string_equal(st, "succeeded");
    json_t *res = json_object_get(j, "result");
    assert_true(b64_is_png(json_string_value(
        json_object_get(json_array_get(json_object_get(res, "data"), 0), "b64_json"))));
    json_decref(j);

    /* Cancelling a finished job is a 404; an unknown one too. */
    call("DELETE", path, NULL, &r);
    expect_error(&r, 404, "not_found");
    tresp_free(&r);
    call("GET", "/api/images/999999", NULL, &r);
    expect_error(&r, 404, "not_found");
    tresp_free(&r);

    /* A long job cancelled while it runs or waits. */
    assert_int_equal(
        call("POST", "/api/images",
             "{\"model\":\"sd1\",\"prompt\":\"slow\",\"size\":\"64x64\",\"steps\":100}", &r),
        202);
    j = body_json(&r);
    id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    tresp_free(&r);
    snprintf(path, sizeof(path), "/api/images/%lld", (long long)id);
    assert_int_equal(call("DELETE", path, NULL, &r), 200);
    tresp_free(&r);
    end = t_now_ms() + 20000;
    j = NULL;
    while (t_now_ms() < end) {
        assert_int_equal(call("GET", path, NULL, &r), 200);
        json_decref(j);
        j = body_json(&r);
        tresp_free(&r);
        st = json_string_value(json_object_get(j, "state"));
        if (st != NULL && strcmp(st, "cancelled") == 0)
            break;
        nap(20);
    }
    assert_string_equal(st, "cancelled");
    json_decref(j);
}

static void test_llm_routes(void **state)
{
    (void)state;
    tresp r;
    /* Make sure it is loaded, then stop it. */
    assert_int_equal(call("POST", "/api/llm/start", "{\"model\":\"valid_tiny_llama\"}", &r), 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "ready");
    assert_null(json_object_get(j, "port")); /* the endpoint stays private */
    pid_t pid = (pid_t)json_integer_value(json_object_get(j, "pid"));
    assert_true(pid > 0);
    json_decref(j);
    tresp_free(&r);
    g_llm_pids[g_n_llm_pids++] = pid;

    /* /api/status lists it among the runtimes. */
    assert_int_equal(call("GET", "/api/status", NULL, &r), 200);
    j = body_json(&r);
    json_t *rts = json_object_get(j, "runtimes");
    assert_int_equal(json_array_size(rts), 1);
    json_t *rt0 = json_array_get(rts, 0);
    assert_string_equal(json_string_value(json_object_get(rt0, "kind")), "llm");
    assert_string_equal(json_string_value(json_object_get(rt0, "model")), "valid_tiny_llama");
    assert_string_equal(json_string_value(json_object_get(rt0, "state")), "ready");
    assert_int_equal(json_integer_value(json_object_get(rt0, "pid")), pid);
    assert_null(json_object_get(j, "runtimes_note"));
    json_decref(j);
    tresp_free(&r);

    assert_int_equal(call("POST", "/api/llm/stop", NULL, &r), 200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "absent");
    json_decref(j);
    tresp_free(&r);
    /* Stopped: nothing runs. */
    assert_int_equal(call("GET", "/api/status", NULL, &r), 200);
    j = body_json(&r);
    assert_true(json_is_array(json_object_get(j, "runtimes")));
    assert_int_equal(json_array_size(json_object_get(j, "runtimes")), 0);
    json_decref(j);
    tresp_free(&r);
    /* Stopped means reaped. */
    assert_true(kill(pid, 0) != 0 && errno == ESRCH);

    /* An image model cannot be the LLM. */
    call("POST", "/api/llm/start", "{\"model\":\"sd1\"}", &r);
    expect_error(&r, 400, "wrong_model_kind");
    tresp_free(&r);

    /* A request loads it again on demand. */
    assert_int_equal(call("POST", "/v1/chat/completions", chat3, &r), 200);
    tresp_free(&r);
    note_llm_pid();

    /* The orchestrator's events are on the bus: counted in the metrics. */
    assert_int_equal(call("GET", "/metrics", NULL, &r), 200);
    assert_non_null(strstr(sbuf_str(&r.body), "genai_orch_offloads_total"));
    tresp_free(&r);
}

/* Whether /metrics has the line exactly (a series and its value). */
static int metrics_has(const char *line)
{
    tresp r;
    assert_int_equal(call("GET", "/metrics", NULL, &r), 200);
    const char *body = sbuf_str(&r.body);
    size_t n = strlen(line);
    int found = 0;
    for (const char *p = strstr(body, line); p != NULL && !found; p = strstr(p + 1, line))
        found = (p == body || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0');
    tresp_free(&r);
    return found;
}

/* The LLM's state and pid from GET /api/llm. */
static pid_t llm_state(char *state, size_t n)
{
    tresp r;
    assert_int_equal(call("GET", "/api/llm", NULL, &r), 200);
    json_t *j = body_json(&r);
    snprintf(state, n, "%s", json_string_value(json_object_get(j, "state")));
    pid_t pid = (pid_t)json_integer_value(json_object_get(j, "pid"));
    json_decref(j);
    tresp_free(&r);
    return pid;
}

static int array_has(json_t *arr, const char *needle)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && strstr(json_string_value(v), needle) != NULL)
            return 1;
    }
    return 0;
}

/* GET /api/llm/logs has the child's own lines; a killed llama-server is
 * restarted by the supervisor and counted in genai_llm_restarts_total. */
static void test_restart_and_logs(void **state)
{
    (void)state;
    tresp r;
    assert_int_equal(call("POST", "/api/llm/start", "{\"model\":\"valid_tiny_llama\"}", &r), 200);
    tresp_free(&r);
    char st[32];
    pid_t pid = llm_state(st, sizeof(st));
    assert_string_equal(st, "ready");
    assert_true(pid > 0);
    g_llm_pids[g_n_llm_pids++] = pid;

    assert_int_equal(call("GET", "/api/llm/logs?limit=1000", NULL, &r), 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "ready");
    assert_int_equal(json_integer_value(json_object_get(j, "pid")), pid);
    /* The double logs these on stderr while loading (contracts/llama-server.md). */
    assert_true(array_has(json_object_get(j, "stderr"), "model loaded"));
    assert_true(array_has(json_object_get(j, "stderr"), "listening on"));
    assert_true(json_is_array(json_object_get(j, "stdout")));
    assert_true(json_is_null(json_object_get(j, "last_failure")));
    json_decref(j);
    tresp_free(&r);
    assert_int_equal(call("GET", "/api/llm/logs?limit=2", NULL, &r), 200);
    j = body_json(&r);
    assert_true(json_array_size(json_object_get(j, "stderr")) == 2);
    json_decref(j);
    tresp_free(&r);
    call("GET", "/api/llm/logs?limit=0", NULL, &r);
    expect_error(&r, 400, "bad_request");
    tresp_free(&r);

    assert_false(metrics_has("genai_llm_restarts_total 1"));
    assert_int_equal(kill(pid, SIGKILL), 0);
    /* The supervisor restarts it after its backoff (1 s) with a new pid. */
    uint64_t end = t_now_ms() + 30000;
    pid_t now = pid;
    while (t_now_ms() < end) {
        now = llm_state(st, sizeof(st));
        if (now > 0 && now != pid && strcmp(st, "ready") == 0)
            break;
        nap(20);
    }
    assert_string_equal(st, "ready");
    assert_true(now > 0 && now != pid);
    g_llm_pids[g_n_llm_pids++] = now;
    assert_true(metrics_has("genai_llm_restarts_total 1"));

    /* The crash is the runtime's last failure; the new child's lines are there. */
    assert_int_equal(call("GET", "/api/llm/logs", NULL, &r), 200);
    j = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "pid")), now);
    assert_true(json_is_object(json_object_get(j, "last_failure")));
    assert_true(array_has(json_object_get(j, "stderr"), "listening on"));
    json_decref(j);
    tresp_free(&r);

    /* A chat works on the restarted server. */
    assert_int_equal(call("POST", "/v1/chat/completions", chat3, &r), 200);
    tresp_free(&r);
}

/* A daemon with no configuration file and no models. */
static void test_empty_daemon(void **state)
{
    (void)state;
    snprintf(g_empty, sizeof(g_empty), "/tmp/genai-empty-XXXXXX");
    assert_non_null(mkdtemp(g_empty));
    const char *args[] = {NULL};
    unsigned port;
    pid_t pid = spawn_serve(g_empty, args, &port);
    char u[256];
    tresp r;
    url(u, sizeof(u), port, "/health");
    treq("GET", u, NULL, NULL, 0, 0, &r);
    assert_int_equal(r.status, 200);
    tresp_free(&r);
    url(u, sizeof(u), port, "/v1/models");
    treq("GET", u, NULL, NULL, 0, 0, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 0);
    json_decref(j);
    tresp_free(&r);
    url(u, sizeof(u), port, "/v1/chat/completions");
    const char *hdrs[] = {JSON_CT, NULL};
    treq("POST", u, hdrs, chat3, strlen(chat3), 0, &r);
    expect_error(&r, 404, "model_not_found");
    tresp_free(&r);
    url(u, sizeof(u), port, "/api/llm");
    treq("GET", u, NULL, NULL, 0, 0, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "absent");
    json_decref(j);
    tresp_free(&r);
    int st = stop_serve(pid);
    assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    rm_tree(g_empty);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat),
        cmocka_unit_test(test_request_errors),
        cmocka_unit_test(test_client_disconnect_aborts_upstream),
        cmocka_unit_test(test_images),
        cmocka_unit_test(test_llm_routes),
        cmocka_unit_test(test_restart_and_logs),
        cmocka_unit_test(test_empty_daemon),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
