/*
 * test_budget_serve.c - a host budget through `genai serve` on a machine
 * without a GPU (docs/budgets.md): no GENAI_FAKE_GPU, NVML pointed at a
 * library that does not exist. The daemon is a real process; the test reads
 * it only over HTTP.
 *
 * The scenario, with fake-llama-server and fake-sd-cli (always), and with
 * the real llama-server and sd-cli when GENAI_LLAMA_SERVER / GENAI_SD_CLI
 * name them and GENAI_LLAMA_TEST_MODEL / GENAI_SD_MODEL name models (else that
 * variant is skipped with the reason):
 *   1. a first daemon without a budget loads the LLM; its planned host
 *      footprint (GET /api/llm "plan") is what the budget is cut from;
 *   2. a second daemon with GENAI_BUDGET_HOST set so that the LLM fits
 *      alone, the image job fits alone, but not both: a chat works, an image
 *      request moves the LLM aside and it comes back (a new pid), a chat
 *      after it works; /metrics counts one offload and one reload; the
 *      events on /v1/events come in order: offload started, reclaimed, image
 *      done, reload attempt, LLM ready;
 *   3. in that daemon, reservations of host memory: requested, confirmed,
 *      released, and one that expires, on /v1/events in that order.
 * Each daemon stops on SIGTERM with exit 0; every llama-server and sd-cli
 * it started is gone; the test's fd count is back.
 */
#include "cmocka_all.h"

#include "../orch/orch_harness.h"
#include "http_test_util.h"
#include "image/runner.h"
#include "plan/diffusion.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEY "budget-serve-key"
#define AUTH "Authorization: Bearer " KEY
#define JSON_CT "Content-Type: application/json"
#define GIB (1ull << 30)
#define MIB (1ull << 20)

/* Where the real binaries and models are named, read before the harness
 * points the binaries' variables at the doubles. */
static char real_llama[512], real_sd[512], real_llm_model[512], real_sd_model[512];

static oh g_h; /* fixtures only: the directory, the model files */
static char g_home[400];
static char g_key[400];
static char g_sd_pid_file[400];
static pid_t g_pids[64]; /* every llama-server and sd-cli seen */
static size_t g_n_pids;
static int g_fds;
static pid_t g_serve; /* the daemon running now, 0 when none */

static void nap(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void note_pid(pid_t pid)
{
    for (size_t i = 0; i < g_n_pids; i++)
        if (g_pids[i] == pid)
            return;
    if (pid > 0 && g_n_pids < sizeof(g_pids) / sizeof(g_pids[0]))
        g_pids[g_n_pids++] = pid;
}

static void copy_env(char *dst, size_t n, const char *name)
{
    const char *v = getenv(name);
    snprintf(dst, n, "%s", v != NULL ? v : "");
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
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("genai %s %s failed (status %d)", args[0], args[1] ? args[1] : "", st);
}

/* ---- the daemon --------------------------------------------------------------- */

typedef struct srv {
    pid_t pid;
    unsigned port;
} srv;

/* Starts `genai serve` on a free port; budget "" for none. */
static void serve_start(srv *d, const char *budget)
{
    char sj[500];
    snprintf(sj, sizeof(sj), "%s/run/serve.json", g_home);
    unlink(sj);
    d->pid = fork();
    assert_true(d->pid >= 0);
    if (d->pid == 0) {
        const char *argv[] = {GENAI_BIN, "serve", "--port", "0", "--api-key-file", g_key, NULL};
        setenv("GENAI_HOME", g_home, 1);
        if (budget[0] != '\0')
            setenv("GENAI_BUDGET_HOST", budget, 1);
        execv(GENAI_BIN, (char *const *)argv);
        _exit(127);
    }
    g_serve = d->pid;
    json_t *j = NULL;
    uint64_t end = t_now_ms() + 15000;
    while (j == NULL && t_now_ms() < end) {
        j = json_load_file(sj, 0, NULL);
        if (j == NULL)
            nap(5);
    }
    assert_non_null(j);
    d->port = (unsigned)json_integer_value(json_object_get(j, "port"));
    json_decref(j);
}

static void serve_stop(srv *d)
{
    kill(d->pid, SIGTERM);
    int st = 0;
    pid_t w = 0;
    uint64_t end = t_now_ms() + 30000;
    while (t_now_ms() < end && (w = waitpid(d->pid, &st, WNOHANG)) != d->pid)
        nap(5);
    if (w != d->pid) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, &st, 0);
        g_serve = 0;
        fail_msg("genai serve did not stop within 30 s of SIGTERM");
    }
    g_serve = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* Children of the daemon: gone once it has exited (reaped by it). */
    for (size_t i = 0; i < g_n_pids; i++) {
        errno = 0;
        if (kill(g_pids[i], 0) == 0 || errno != ESRCH)
            fail_msg("child %d of genai serve is still there", (int)g_pids[i]);
    }
}

static long call(const srv *d, const char *method, const char *path, const char *body, tresp *out)
{
    char u[256];
    snprintf(u, sizeof(u), "http://127.0.0.1:%u%s", d->port, path);
    const char *hdrs[] = {AUTH, JSON_CT, NULL};
    assert_int_equal(treq(method, u, hdrs, body, body ? strlen(body) : 0, 0, out), 0);
    return out->status;
}

static json_t *call_json(const srv *d, const char *method, const char *path, const char *body,
                         long want)
{
    tresp r;
    long st = call(d, method, path, body, &r);
    json_t *j = json_loads(sbuf_str(&r.body), 0, NULL);
    if (st != want || j == NULL)
        fail_msg("%s %s: expected %ld, got %ld: %.400s", method, path, want, st, sbuf_str(&r.body));
    tresp_free(&r);
    return j;
}

static const char *str_of(json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s != NULL ? s : "";
}

/* GET /api/llm until ready; its object (json_decref). */
static json_t *wait_llm_ready(const srv *d, int timeout_ms)
{
    uint64_t end = t_now_ms() + (uint64_t)timeout_ms;
    char last[64] = "";
    while (t_now_ms() < end) {
        json_t *j = call_json(d, "GET", "/api/llm", NULL, 200);
        note_pid((pid_t)json_integer_value(json_object_get(j, "pid")));
        snprintf(last, sizeof(last), "%s", str_of(j, "state"));
        if (strcmp(last, "ready") == 0)
            return j;
        json_decref(j);
        nap(20);
    }
    fail_msg("the LLM is not ready after %d ms (state %s)", timeout_ms, last);
    return NULL;
}

/* A metric's value from a line of /metrics starting with name_labels and a
 * space; -1 when absent. */
static double metric(const srv *d, const char *name_labels)
{
    tresp r;
    assert_int_equal(call(d, "GET", "/metrics", NULL, &r), 200);
    char pat[200];
    snprintf(pat, sizeof(pat), "\n%s ", name_labels);
    const char *p = strstr(sbuf_str(&r.body), pat);
    double v = p != NULL ? strtod(p + strlen(pat), NULL) : -1;
    tresp_free(&r);
    return v;
}

/* A chat of three tokens with the LLM model_id; returns the content's length. */
static size_t chat(const srv *d, const char *model_id)
{
    char body[600];
    snprintf(body, sizeof(body),
             "{\"model\":\"%s\",\"max_tokens\":3,\"temperature\":0,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"Say hi.\"}]}",
             model_id);
    json_t *j = call_json(d, "POST", "/v1/chat/completions", body, 200);
    const char *content = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"), "content"));
    assert_non_null(content);
    size_t n = strlen(content);
    json_int_t toks =
        json_integer_value(json_object_get(json_object_get(j, "usage"), "completion_tokens"));
    assert_true(toks >= 1 && toks <= 3);
    json_decref(j);
    return n;
}

/* ---- /v1/events ---------------------------------------------------------------- */

#define SSE_MAX 256

typedef struct sse {
    int fd;
    sbuf buf;
    size_t off; /* parsed up to here */
    int headers_done;
    size_t n;
    char type[SSE_MAX][48];
    json_t *data[SSE_MAX]; /* the event's "data" member */
} sse;

static void sse_open(sse *s, const srv *d)
{
    memset(s, 0, sizeof(*s));
    s->fd = t_connect(d->port);
    assert_true(s->fd >= 0);
    /* HTTP/1.0: the body is the stream itself, not chunked. */
    const char req[] = "GET /v1/events HTTP/1.0\r\nHost: 127.0.0.1\r\n" AUTH "\r\n\r\n";
    assert_int_equal(write(s->fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
}

static void sse_parse(sse *s)
{
    const char *b = sbuf_str(&s->buf);
    if (!s->headers_done) {
        const char *e = strstr(b, "\r\n\r\n");
        if (e == NULL)
            return;
        if (strncmp(b, "HTTP/1.", 7) != 0 || strncmp(b + 9, "200", 3) != 0)
            fail_msg("GET /v1/events: %.200s", b);
        s->headers_done = 1;
        s->off = (size_t)(e + 4 - b);
    }
    for (;;) {
        const char *start = b + s->off;
        const char *end = strstr(start, "\n\n");
        if (end == NULL)
            return;
        s->off = (size_t)(end + 2 - b);
        const char *ev = strstr(start, "event: ");
        const char *da = strstr(start, "data: ");
        if (ev == NULL || ev > end || da == NULL || da > end || s->n == SSE_MAX)
            continue; /* a ping comment */
        size_t tl = strcspn(ev + 7, "\n");
        snprintf(s->type[s->n], sizeof(s->type[0]), "%.*s", (int)tl, ev + 7);
        json_t *all = json_loadb(da + 6, strcspn(da + 6, "\n"), 0, NULL);
        assert_non_null(all);
        s->data[s->n] = json_incref(json_object_get(all, "data"));
        json_decref(all);
        s->n++;
    }
}

/* Index of the first event of type at or after from, reading the stream
 * until it comes or the deadline passes; -1 then. */
static int sse_find(sse *s, const char *type, size_t from, int timeout_ms)
{
    uint64_t end = t_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        for (size_t i = from; i < s->n; i++)
            if (strcmp(s->type[i], type) == 0)
                return (int)i;
        uint64_t now = t_now_ms();
        if (now >= end)
            return -1;
        struct pollfd p = {s->fd, POLLIN, 0};
        int rc = poll(&p, 1, (int)(end - now));
        if (rc <= 0)
            continue;
        char chunk[4096];
        ssize_t k = read(s->fd, chunk, sizeof(chunk));
        if (k <= 0)
            fail_msg("the event stream ended (%zd) while waiting for %s", k, type);
        assert_int_equal(sbuf_append(&s->buf, chunk, (size_t)k), 0);
        sse_parse(s);
    }
}

static int sse_must(sse *s, const char *type, size_t from, int timeout_ms)
{
    int i = sse_find(s, type, from, timeout_ms);
    if (i < 0) {
        fprintf(stderr, "# events seen:");
        for (size_t k = 0; k < s->n; k++)
            fprintf(stderr, " %s", s->type[k]);
        fprintf(stderr, "\n");
        fail_msg("no %s on /v1/events after event %zu within %d ms", type, from, timeout_ms);
    }
    return i;
}

static void sse_close(sse *s)
{
    for (size_t i = 0; i < s->n; i++)
        json_decref(s->data[i]);
    sbuf_free(&s->buf);
    close(s->fd);
}

/* ---- the scenario ---------------------------------------------------------------- */

typedef struct scenario {
    const char *llm_path;
    const char *sd_path;
    int real; /* the real binaries: longer deadlines */
} scenario;

/* The registry id of the first model of kind in GET /api/models. */
static void model_id(const srv *d, const char *kind, char *out, size_t n)
{
    json_t *j = call_json(d, "GET", "/api/models", NULL, 200);
    json_t *ms = json_object_get(j, "models");
    out[0] = '\0';
    for (size_t i = 0; i < json_array_size(ms); i++) {
        json_t *m = json_array_get(ms, i);
        if (strcmp(str_of(m, "kind"), kind) == 0) {
            snprintf(out, n, "%s", str_of(m, "id"));
            break;
        }
    }
    json_decref(j);
    if (out[0] == '\0')
        fail_msg("no %s model registered", kind);
}

/* The image job's smallest host demand as the runner plans it on a machine
 * without a GPU (the planner's ladder: as asked, + flash attention, + VAE
 * tiling), from the same size reader the daemon uses. */
static uint64_t image_min_host(const char *sd_path, unsigned side)
{
    img_request ir;
    memset(&ir, 0, sizeof(ir));
    ir.model = (char *)sd_path;
    ir.width = ir.height = side;
    plan_sd_model m;
    genai_error e;
    if (img_runner_size_from_files(NULL, &ir, &m, &e) != 0)
        fail_msg("sizing %s: %s", sd_path, e.detail);
    plan_sd_request pr = {side, side, 1};
    uint64_t best = UINT64_MAX;
    for (int step = 0; step < 3; step++) {
        plan_sd_placement pl = {.diffusion_fa = step >= 1, .vae_tiling = step >= 2, .gpu = -1};
        plan_demand d;
        assert_int_equal(plan_sd_estimate(&m, &pr, &pl, &d, NULL), 0);
        uint64_t need = d.host_anon + d.host_file;
        if (need < best)
            best = need;
    }
    return best;
}

/* 1 when the daemon sees no GPU (else the test is not CPU-only). */
static int no_gpu(const srv *d)
{
    json_t *j = call_json(d, "GET", "/v1/system", NULL, 200);
    size_t n = json_array_size(json_object_get(j, "gpus"));
    json_decref(j);
    return n == 0;
}

static void run_scenario(const scenario *sc)
{
    int slow = sc->real ? 20 : 1; /* deadline multiplier */
    const char *add_llm[] = {"add", sc->llm_path, NULL};
    const char *add_sd[] = {"add", sc->sd_path, "--kind", "diffusion", "--name", "sd", NULL};
    run_genai(add_llm);
    run_genai(add_sd);

    /* 1. Without a budget: the LLM's planned host footprint. */
    srv d;
    serve_start(&d, "");
    if (!no_gpu(&d)) {
        serve_stop(&d);
        print_message("# skipped: the probe finds a GPU here (not through NVML), so this is "
                      "not a CPU-only machine\n");
        skip();
    }
    char llm_id[200], body[600];
    model_id(&d, "llm", llm_id, sizeof(llm_id));
    snprintf(body, sizeof(body), "{\"model\":\"%s\"}", llm_id);
    json_decref(call_json(&d, "POST", "/api/llm/start", body, 200));
    json_t *j = wait_llm_ready(&d, 30000 * slow);
    json_t *plan = json_object_get(j, "plan");
    uint64_t llm_host = (uint64_t)json_integer_value(json_object_get(plan, "host_bytes"));
    assert_int_equal(json_integer_value(json_object_get(plan, "gpu_bytes")), 0);
    json_decref(j);
    assert_true(llm_host > 0);
    assert_true(chat(&d, llm_id) > 0 || sc->real);
    j = call_json(&d, "GET", "/api/reservations", NULL, 200);
    uint64_t avail = (uint64_t)json_integer_value(
        json_object_get(json_object_get(json_object_get(j, "share"), "host"), "usable_bytes"));
    json_decref(j);
    serve_stop(&d);

    /* 2. A budget either fits alone, not both. */
    /* With real binaries on a CPU an SD 1.x image of 512x512 in 4 steps
     * takes longer than the client waits for one request: the smallest
     * size SD 1.x takes, one step. */
    unsigned side = sc->real ? 256 : 512;
    unsigned steps = sc->real ? 1 : 4;
    uint64_t img = image_min_host(sc->sd_path, side);
    uint64_t hi = llm_host > img ? llm_host : img, lo = llm_host > img ? img : llm_host;
    uint64_t budget = hi + lo / 2;
    print_message("# CPU only: LLM plans %.0f MiB of host memory, the image job at least %.0f "
                  "MiB; host budget %.0f MiB\n",
                  (double)llm_host / (double)MIB, (double)img / (double)MIB,
                  (double)budget / (double)MIB);
    /* With the LLM loaded, usable was free - reserve - the LLM: only the
     * budget may bind, not the machine. */
    if (avail < budget + GIB) {
        print_message("# skipped: %.1f GiB usable here, the test needs %.1f GiB so that only "
                      "the budget binds\n",
                      (double)avail / (double)GIB, (double)(budget + GIB) / (double)GIB);
        skip();
    }
    char bstr[32];
    snprintf(bstr, sizeof(bstr), "%llu", (unsigned long long)budget);
    serve_start(&d, bstr);
    sse ev;
    sse_open(&ev, &d);
    j = call_json(&d, "GET", "/api/reservations", NULL, 200);
    json_t *host = json_object_get(json_object_get(j, "share"), "host");
    assert_int_equal(json_integer_value(json_object_get(host, "budget_bytes")), (json_int_t)budget);
    json_decref(j);

    json_decref(call_json(&d, "POST", "/api/llm/start", body, 200));
    j = wait_llm_ready(&d, 30000 * slow);
    pid_t llm = (pid_t)json_integer_value(json_object_get(j, "pid"));
    json_decref(j);
    assert_true(chat(&d, llm_id) > 0 || sc->real);
    assert_true(metric(&d, "genai_orch_offloads_total") <= 0);

    snprintf(body, sizeof(body),
             "{\"model\":\"sd\",\"prompt\":\"a lighthouse at dusk\",\"size\":\"%ux%u\","
             "\"steps\":%u,\"seed\":42}",
             side, side, steps);
    j = call_json(&d, "POST", "/v1/images/generations", body, 200);
    json_t *img0 = json_array_get(json_object_get(j, "data"), 0);
    assert_true(strlen(str_of(img0, "b64_json")) > 100);
    assert_true(json_is_true(json_object_get(json_object_get(j, "genai"), "offloaded")));
    json_decref(j);
    if (!sc->real) {
        FILE *f = fopen(g_sd_pid_file, "re");
        assert_non_null(f);
        int sdpid = 0;
        assert_int_equal(fscanf(f, "%d", &sdpid), 1);
        fclose(f);
        note_pid((pid_t)sdpid);
    }

    /* The LLM comes back (a new process) and serves again. */
    j = wait_llm_ready(&d, 30000 * slow);
    pid_t back = (pid_t)json_integer_value(json_object_get(j, "pid"));
    json_t *stats = json_object_get(j, "stats");
    assert_int_equal(json_integer_value(json_object_get(stats, "offloads")), 1);
    assert_int_equal(json_integer_value(json_object_get(stats, "reloads")), 1);
    json_decref(j);
    assert_int_not_equal(back, llm);
    assert_true(chat(&d, llm_id) > 0 || sc->real);
    assert_true(metric(&d, "genai_orch_offloads_total") == 1.0);
    assert_true(metric(&d, "genai_orch_reloads_total") == 1.0);
    assert_true(metric(&d, "genai_orch_images_total{result=\"ok\"}") == 1.0);

    /* In order on the event stream. */
    int off = sse_must(&ev, "orch.offload_started", 0, 10000);
    int rec = sse_must(&ev, "orch.reclaimed", (size_t)off, 10000);
    int done = sse_must(&ev, "orch.image_done", (size_t)rec, 10000);
    int rel = sse_must(&ev, "orch.reload_attempt", (size_t)done, 10000);
    int ready = sse_must(&ev, "orch.llm_ready", (size_t)rel, 10000);
    assert_int_equal(json_integer_value(json_object_get(ev.data[rec], "code")), 0);
    assert_int_equal(json_integer_value(json_object_get(ev.data[done], "code")), 0);
    assert_int_equal(json_integer_value(json_object_get(ev.data[ready], "pid")), back);
    /* Nothing reloaded before the image was done. */
    assert_true(sse_find(&ev, "orch.llm_ready", (size_t)off, 0) == ready);
    print_message("# events: offload_started #%d, reclaimed #%d, image_done #%d, "
                  "reload_attempt #%d, llm_ready #%d\n",
                  off, rec, done, rel, ready);

    /* 3. Reservations of host memory, on the same stream. */
    j = call_json(&d, "POST", "/api/reservations",
                  "{\"device\":\"host\",\"bytes\":16777216,\"deadline_s\":60,"
                  "\"reason\":\"a texture cache\"}",
                  202);
    assert_string_equal(str_of(j, "state"), "confirmed");
    json_int_t id1 = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    char path[64];
    snprintf(path, sizeof(path), "/api/reservations/%lld", (long long)id1);
    j = call_json(&d, "DELETE", path, NULL, 200);
    assert_string_equal(str_of(j, "state"), "released");
    json_decref(j);
    uint64_t t0 = t_now_ms();
    j = call_json(&d, "POST", "/api/reservations",
                  "{\"device\":\"host\",\"bytes\":16777216,\"deadline_s\":1,"
                  "\"reason\":\"a short burst\"}",
                  202);
    json_int_t id2 = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    assert_true(id2 > id1);
    size_t from = (size_t)ready;
    int r1 = sse_must(&ev, "reservation.requested", from, 5000);
    int c1 = sse_must(&ev, "reservation.confirmed", (size_t)r1, 5000);
    int x1 = sse_must(&ev, "reservation.released", (size_t)c1, 5000);
    int r2 = sse_must(&ev, "reservation.requested", (size_t)x1, 5000);
    int c2 = sse_must(&ev, "reservation.confirmed", (size_t)r2, 5000);
    int e2 = sse_must(&ev, "reservation.expired", (size_t)c2, 10000);
    assert_true(t_now_ms() - t0 >= 1000);
    const int one[] = {r1, c1, x1}, two[] = {r2, c2, e2};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(json_integer_value(json_object_get(ev.data[one[i]], "id")), id1);
        assert_int_equal(json_integer_value(json_object_get(ev.data[two[i]], "id")), id2);
    }
    assert_string_equal(str_of(ev.data[x1], "state"), "released");
    assert_string_equal(str_of(ev.data[e2], "state"), "expired");
    assert_string_equal(str_of(ev.data[r1], "reason"), "a texture cache");
    assert_true(metric(&d, "genai_reservations_total{result=\"expired\"}") == 1.0);
    assert_true(metric(&d, "genai_reservations_active") == 0.0);
    /* A host reservation that is free already moves nothing. */
    assert_int_equal(metric(&d, "genai_orch_offloads_total"), 1.0);

    sse_close(&ev);
    serve_stop(&d);
}

/* ---- set-up ----------------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    oh_setup(&g_h); /* points GENAI_LLAMA_SERVER / GENAI_SD_CLI at the doubles */
    unsetenv("GENAI_FAKE_GPU");
    g_fds = t_count_fds(); /* after the harness's one-time set-up */
    /* No GPU: NVML from a library that does not exist. */
    setenv("GENAI_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1", 1);
    snprintf(g_home, sizeof(g_home), "%s/home", g_h.dir);
    assert_int_equal(mkdir(g_home, 0700), 0);
    snprintf(g_key, sizeof(g_key), "%s/key", g_h.dir);
    FILE *f = fopen(g_key, "we");
    assert_non_null(f);
    fputs(KEY "\n", f);
    fclose(f);
    snprintf(g_sd_pid_file, sizeof(g_sd_pid_file), "%s/sd.pid", g_h.dir);
    g_n_pids = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g_serve > 0) { /* a test failed with its daemon up: its children die with it */
        kill(g_serve, SIGKILL);
        waitpid(g_serve, NULL, 0);
        g_serve = 0;
    }
    nftw(g_h.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    unsetenv("GENAI_NVML_LIBRARY");
    unsetenv("FAKE_SD_PID_FILE");
    assert_int_equal(t_count_fds(), g_fds);
    return 0;
}

static void test_host_budget_doubles(void **state)
{
    (void)state;
#if defined(__SANITIZE_THREAD__)
    /* The doubles are built with ThreadSanitizer too, whose shadow memory
     * makes the footprint measured at READY several times what the
     * scenario's budget is cut from. */
    print_message("# skipped: ThreadSanitizer build (measured footprints include its shadow "
                  "memory)\n");
    skip();
#endif
    /* The narrow 12B-like LLM (about 2.4 GiB) and the SDXL-like image model,
     * grown to 1.5 GiB with a hole: the daemon sizes a file it cannot read
     * the tensors of by its size, and the double reads only its text. */
    oh_write_llm(&g_h, 256);
    /* The double loads the model in full: genai admits with the footprint
     * measured at READY, which a scaled-down double would make tiny. */
    setenv("FAKE_LLAMA_MEM_SCALE", "1", 1);
    oh_write_sd(&g_h);
    assert_int_equal(truncate(g_h.sd_model, (off_t)(1536 * MIB)), 0);
    setenv("FAKE_SD_PID_FILE", g_sd_pid_file, 1);
    scenario sc = {g_h.llm_model, g_h.sd_model, 0};
    run_scenario(&sc);
}

static int is_double(const char *path)
{
    return strstr(path, "fake-llama-server") != NULL || strstr(path, "fake-sd-cli") != NULL;
}

static void test_host_budget_real(void **state)
{
    (void)state;
    const char *why = NULL;
    if (real_llama[0] == '\0' || is_double(real_llama))
        why = "GENAI_LLAMA_SERVER does not name a real llama-server";
    else if (real_sd[0] == '\0' || is_double(real_sd))
        why = "GENAI_SD_CLI does not name a real sd-cli";
    else if (real_llm_model[0] == '\0')
        why = "GENAI_LLAMA_TEST_MODEL does not name a GGUF LLM";
    else if (real_sd_model[0] == '\0')
        why = "GENAI_SD_MODEL does not name an image model";
    if (why != NULL) {
        print_message("# skipped (real binaries): %s\n", why);
        skip();
    }
    setenv("GENAI_LLAMA_SERVER", real_llama, 1);
    setenv("GENAI_SD_CLI", real_sd, 1);
    scenario sc = {real_llm_model, real_sd_model, 1};
    run_scenario(&sc);
}

int main(void)
{
    /* Read once, before the first setup points the variables at the doubles
     * (a second setup would read those). */
    copy_env(real_llama, sizeof(real_llama), "GENAI_LLAMA_SERVER");
    copy_env(real_sd, sizeof(real_sd), "GENAI_SD_CLI");
    copy_env(real_llm_model, sizeof(real_llm_model), "GENAI_LLAMA_TEST_MODEL");
    copy_env(real_sd_model, sizeof(real_sd_model), "GENAI_SD_MODEL");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_host_budget_doubles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_budget_real, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
