/*
 * test_runner_server.c - the fake sd-server's contract
 * (contracts/stable-diffusion-cpp.md §8), run as a real process on a
 * loopback port: "listening on:" before readiness, readiness through
 * /sdcpp/v1/capabilities with model.path and the command line's defaults,
 * sorted keys, the native job API (202 stub, polling to completed with
 * base64 PNGs, seeds per image), submission errors, cancel of a queued job
 * (200) and of a generating one (409), unknown ids, weights loaded on the
 * first job only, SIGTERM -> 143, a bad model -> exit 1, a taken port ->
 * exit 0 without an error line.
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "image/png.h"
#include "sd_spawn.h"
#include "testutil/testutil.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RUN_MS 30000

/* The program under test: the double, or a real sd-server when
 * GENAI_SD_SERVER and GENAI_SD_MODEL name one and an SD 1.x model. */
struct target {
    char bin[PATH_MAX];
    char model[PATH_MAX];
    int real;
};
static struct target fake_target, real_target;
static const char *server_bin;
static const char *model;

/* Points server_bin and model at the test's target; skips a real target
 * that is not configured. */
static void use_target(void **state)
{
    const struct target *t = *state;
    if (t->bin[0] == '\0') {
        print_message("skipped: set GENAI_SD_SERVER (an sd-server) and GENAI_SD_MODEL (an SD "
                      "1.x model) to run this against the real program\n");
        skip();
    }
    server_bin = t->bin;
    model = t->model;
}

static int free_port(int *fd_out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    if (fd_out != NULL) {
        assert_int_equal(listen(fd, 1), 0);
        *fd_out = fd;
    } else {
        close(fd);
    }
    return ntohs(sa.sin_port);
}

struct resp {
    long status;
    char *body;
    size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    char *nb = mem_realloc(r->body, r->len + size * n + 1);
    if (nb == NULL)
        return 0;
    memcpy(nb + r->len, p, size * n);
    r->body = nb;
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

/* One request; status 0 when nothing answered. */
static struct resp http(int port, const char *method, const char *path, const char *body)
{
    struct resp r = {0, NULL, 0};
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    struct curl_slist *h = NULL;
    if (body != NULL) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (r.body == NULL)
        r.body = mem_strdup("");
    return r;
}

static json_t *http_json(int port, const char *method, const char *path, const char *body,
                         long want)
{
    struct resp r = http(port, method, path, body);
    if (r.status != want)
        fail_msg("%s %s: %ld, want %ld: %s", method, path, r.status, want, r.body);
    json_error_t je;
    json_t *o = json_loads(r.body, 0, &je);
    if (o == NULL)
        fail_msg("%s %s: not JSON: %s", method, path, r.body);
    mem_free(r.body);
    return o;
}

static int start_server(sd_child *c, int port, const char *model_path, const char *const *env)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    const char *argv[] = {server_bin, "-m", model_path, "--listen-ip", "127.0.0.1", "--listen-port",
                          p,          "-W", "64",       "-H",          "64",        "--steps",
                          "2",        NULL};
    return sd_child_start(c, argv, env);
}

/* Polls the readiness endpoint until 200 or the child exits. */
static void wait_ready(sd_child *c, int port)
{
    char want[64];
    snprintf(want, sizeof(want), "listening on: http://127.0.0.1:%d", port);
    assert_int_equal(sd_child_read_until(c, want, RUN_MS), 1);
    int64_t deadline = tu_now_ms() + RUN_MS;
    for (int delay = 5;; delay = delay < 200 ? delay * 2 : 200) {
        struct resp r = http(port, "GET", "/sdcpp/v1/capabilities", NULL);
        mem_free(r.body);
        if (r.status == 200)
            return;
        assert_true(tu_now_ms() < deadline);
        struct timespec ts = {0, delay * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static size_t b64_decode(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (; *s && *s != '='; s++) {
        const char *tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *p = strchr(tbl, *s);
        assert_non_null(p);
        acc = acc << 6 | (uint32_t)(p - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            assert_true(n < cap);
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return n;
}

static json_t *wait_job(int port, const char *id, const char *until)
{
    char path[128];
    snprintf(path, sizeof(path), "/sdcpp/v1/jobs/%s", id);
    int64_t deadline = tu_now_ms() + RUN_MS;
    for (;;) {
        json_t *o = http_json(port, "GET", path, NULL, 200);
        const char *st = json_string_value(json_object_get(o, "status"));
        if (strcmp(st, until) == 0)
            return o;
        json_decref(o);
        assert_true(tu_now_ms() < deadline);
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
}

static void test_server_contract(void **state)
{
    use_target(state);
    int port = free_port(NULL);
    const char *env[] = {"FAKE_SD_STEP_MS=150", NULL};
    sd_child c;
    assert_int_equal(start_server(&c, port, model, env), 0);
    wait_ready(&c, port);

    /* Readiness reply: model.path is ours, defaults come from the command
     * line, keys are sorted. */
    struct resp r = http(port, "GET", "/sdcpp/v1/capabilities", NULL);
    assert_int_equal(r.status, 200);
    assert_true(strncmp(r.body, "{\"current_mode\":", 16) == 0);
    json_error_t je;
    json_t *cap = json_loads(r.body, 0, &je);
    mem_free(r.body);
    assert_non_null(cap);
    assert_string_equal(json_string_value(json_object_get(json_object_get(cap, "model"), "path")),
                        model);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(cap, "defaults"), "width")),
                     64);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(cap, "limits"), "max_queue_size")), 64);
    json_decref(cap);
    r = http(port, "GET", "/", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "Stable Diffusion Server is running");
    mem_free(r.body);

    /* A job: 202 stub, then completed with one PNG per image. */
    json_t *stub = http_json(port, "POST", "/sdcpp/v1/img_gen",
                             "{\"prompt\":\"a cat\",\"seed\":7,\"batch_count\":2}", 202);
    const char *id = json_string_value(json_object_get(stub, "id"));
    assert_int_equal(strlen(id), 21);
    assert_true(strncmp(id, "job_", 4) == 0 && id[12] == '_');
    assert_string_equal(json_string_value(json_object_get(stub, "kind")), "img_gen");
    char poll[96];
    snprintf(poll, sizeof(poll), "/sdcpp/v1/jobs/%s", id);
    assert_string_equal(json_string_value(json_object_get(stub, "poll_url")), poll);

    /* While it runs: a second job waits in the queue and can be cancelled;
     * the running one cannot. */
    json_t *stub2 = http_json(port, "POST", "/sdcpp/v1/img_gen", "{\"prompt\":\"a dog\"}", 202);
    char cancel2[128];
    snprintf(cancel2, sizeof(cancel2), "/sdcpp/v1/jobs/%s/cancel",
             json_string_value(json_object_get(stub2, "id")));
    json_t *gen = wait_job(port, id, "generating");
    json_decref(gen);
    char cancel1[128];
    snprintf(cancel1, sizeof(cancel1), "%s/cancel", poll);
    r = http(port, "POST", cancel1, "");
    assert_int_equal(r.status, 409);
    mem_free(r.body);
    json_t *cj = http_json(port, "POST", cancel2, "", 200);
    assert_string_equal(json_string_value(json_object_get(cj, "status")), "cancelled");
    assert_string_equal(json_string_value(json_object_get(json_object_get(cj, "error"), "code")),
                        "cancelled");
    json_decref(cj);
    cj = http_json(port, "POST", cancel2, "", 200); /* the same 200 again */
    json_decref(cj);
    json_decref(stub2);

    json_t *done = wait_job(port, id, "completed");
    json_t *imgs = json_object_get(json_object_get(done, "result"), "images");
    assert_int_equal(json_array_size(imgs), 2);
    uint8_t *png = mem_alloc(1 << 20);
    assert_non_null(png);
    for (size_t i = 0; i < 2; i++) {
        size_t n = b64_decode(
            json_string_value(json_object_get(json_array_get(imgs, i), "b64_json")), png, 1 << 20);
        img_png_info pi;
        genai_error e;
        assert_int_equal(img_png_parse(png, n, &pi, &e), 0);
        assert_int_equal(pi.width, 64);
    }
    mem_free(png);
    assert_true(json_is_integer(json_object_get(done, "completed")));
    json_decref(done);
    json_decref(stub);

    /* Submission errors and unknown ids. */
    r = http(port, "POST", "/sdcpp/v1/img_gen", "");
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "{\"error\":\"empty body\"}");
    mem_free(r.body);
    r = http(port, "POST", "/sdcpp/v1/img_gen", "{nope");
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"error\":\"invalid json\""));
    mem_free(r.body);
    r = http(port, "GET", "/sdcpp/v1/jobs/job_00000000_00000099", NULL);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"error\":\"job not found\"}");
    mem_free(r.body);

    /* A second job loads no weights: three '#' loads in all, from the first. */
    stub = http_json(port, "POST", "/sdcpp/v1/img_gen", "{\"prompt\":\"again\",\"seed\":1}", 202);
    done = wait_job(port, json_string_value(json_object_get(stub, "id")), "completed");
    json_decref(done);
    json_decref(stub);
    assert_int_equal(sd_child_read_until(&c, "generating image: 1/1 - seed 1", RUN_MS), 1);
    assert_non_null(strstr(c.out, "generating image: 2/2 - seed 8"));
    int loads = 0;
    for (const char *p = strstr(c.out, "loading tensors completed"); p != NULL;
         p = strstr(p + 1, "loading tensors completed"))
        loads++;
    assert_int_equal(loads, 3);
    assert_non_null(strstr(c.out, "| 2/2 - "));

    /* No signal handler: SIGTERM ends it at once. */
    assert_int_equal(kill(c.pid, SIGTERM), 0);
    assert_int_equal(sd_child_wait(&c, RUN_MS), 0);
    assert_false(c.exited);
    assert_int_equal(c.term_signal, SIGTERM);
    sd_child_free(&c);
}

static void test_server_start_failures(void **state)
{
    use_target(state);
    sd_child c;
    /* A model that is not one: new_sd_ctx_t failed, exit 1. */
    int port = free_port(NULL);
    assert_int_equal(start_server(&c, port, "/nonexistent.safetensors", NULL), 0);
    assert_int_equal(sd_child_wait(&c, RUN_MS), 0);
    assert_true(c.exited);
    assert_int_equal(c.exit_code, 1);
    assert_non_null(strstr(c.err, "new_sd_ctx_t failed"));
    sd_child_free(&c);

    /* A port held by a socket without SO_REUSEPORT: "listening on:", then
     * exit 0 and no error line. */
    int fd;
    port = free_port(&fd);
    assert_int_equal(start_server(&c, port, model, NULL), 0);
    assert_int_equal(sd_child_wait(&c, RUN_MS), 0);
    close(fd);
    assert_true(c.exited);
    assert_int_equal(c.exit_code, 0);
    assert_non_null(strstr(c.out, "listening on:"));
    assert_int_equal(c.err_len, 0);
    sd_child_free(&c);
}

static int setup(void **state)
{
    (void)state;
    const char *build = getenv("GENAI_BUILD_DIR");
    const char *data = getenv("GENAI_TEST_DATA");
    if (build == NULL || data == NULL)
        return -1;
    snprintf(fake_target.bin, sizeof(fake_target.bin), "%s/tests/doubles/sd/fake-sd-server",
             build);
    snprintf(fake_target.model, sizeof(fake_target.model), "%s/image/tiny-sd1.fake.safetensors",
             data);
    const char *rb = getenv("GENAI_SD_SERVER"), *rm = getenv("GENAI_SD_MODEL");
    if (rb != NULL && rb[0] != '\0' && rm != NULL && rm[0] != '\0' &&
        strstr(rb, "fake-sd-server") == NULL) {
        snprintf(real_target.bin, sizeof(real_target.bin), "%s", rb);
        snprintf(real_target.model, sizeof(real_target.model), "%s", rm);
        real_target.real = 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_server_contract, &fake_target),
        cmocka_unit_test_prestate(test_server_start_failures, &fake_target),
        cmocka_unit_test_prestate(test_server_contract, &real_target),
        cmocka_unit_test_prestate(test_server_start_failures, &real_target),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
