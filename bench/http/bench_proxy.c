/*
 * bench_proxy.c - what `genai serve` adds in front of llama-server, measured
 * against fake-llama-server (docs/llama-server-double.md) in the same run.
 *
 * Two doubles run side by side from the same binary with the same flags
 * and the same per-token delay: one started and
 * supervised by `genai serve` (fake GPU, the model registered in a
 * temporary GENAI_HOME), one started here on a free port. The same libcurl
 * client talks to both:
 *
 *   latency: a streamed chat of N tokens; every SSE event is stamped when
 *            curl hands its bytes over; event k's time since the request
 *            was sent, through genai minus direct (same k, rounds
 *            alternated), is what genai added to that event. This includes
 *            the request's one-time cost (the gate, the upstream
 *            connection), so it is an upper bound on the per-event cost;
 *            the first event's difference is printed apart.
 *   throughput: C threads send non-streamed chats of one token for D
 *            seconds, each on its own keep-alive connection; requests per
 *            second through genai over direct.
 *
 * The direct double is started with the argv genai gave its own (read
 * from /proc/<pid>/cmdline once genai loaded it), with another port and
 * without the API key, so both emit tokens the same way.
 *
 * Usage: bench_http_proxy [tokens per stream] [rounds] [token ms]
 *                         [concurrency] [seconds per throughput run]
 * Defaults 8 100 1 4 3. Prints medians, p99 and the ratios.
 *
 * Short streams, many of them: event k of two separate streams is compared,
 * so the double's own timing drift (its per-token sleep overshoots by a
 * varying 0.1-0.2 ms on a busy machine) adds up along a long stream and
 * would be counted as genai's; over 8 tokens it stays within tens of us.
 */
#include "bench_util.h"
#include "testutil/testutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_EVENTS 4096

static char g_home[] = "/tmp/genai-bench-proxy-XXXXXX";

/* ---- processes ---------------------------------------------------------------- */

static int run_wait(const char *const *argv)
{
    pid_t pid = bench_spawn(argv, 1);
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* The port genai serve wrote into serve.json, waiting for it (bounded). */
static int serve_port(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/run/serve.json", g_home);
    for (int i = 0; i < 3000; i++) {
        json_t *j = json_load_file(path, 0, NULL);
        if (j != NULL) {
            int port = (int)json_integer_value(json_object_get(j, "port"));
            json_decref(j);
            return port;
        }
        usleep(5000);
    }
    return -1;
}

/* GET /api/llm's pid from genai serve (no key set). */
static long llm_pid(int port)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/llm", port);
    CURL *c = curl_easy_init();
    char buf[4096];
    size_t len = 0;
    FILE *mem = fmemopen(buf, sizeof(buf) - 1, "w");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    len = (size_t)ftell(mem);
    fclose(mem);
    if (rc != CURLE_OK)
        return -1;
    json_t *j = json_loadb(buf, len, 0, NULL);
    long pid = (long)json_integer_value(json_object_get(j, "pid"));
    json_decref(j);
    return pid;
}

/* The argv of process pid with the --port value replaced and the API key
 * flags dropped, into argv_out (strings in buf). Returns argc or -1. */
static int clone_argv(long pid, const char *port, char *buf, size_t cap, const char **argv_out,
                      int max)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    int argc = 0;
    for (char *p = buf; p < buf + n && argc < max - 1; p += strlen(p) + 1) {
        if (argc > 0 && (strcmp(argv_out[argc - 1], "--api-key-file") == 0 ||
                         strcmp(argv_out[argc - 1], "--api-key") == 0)) {
            argc--; /* drop the flag and its value */
            continue;
        }
        if (argc > 0 && strcmp(argv_out[argc - 1], "--port") == 0) {
            argv_out[argc++] = port;
            continue;
        }
        argv_out[argc++] = p;
    }
    argv_out[argc] = NULL;
    return argc;
}

/* ---- the client ------------------------------------------------------------------ */

typedef struct stream_rec {
    int64_t t0;
    int64_t at[MAX_EVENTS]; /* ns since t0 */
    int n;
    char partial[8]; /* the tail of the last piece, to find "data: " across pieces */
    size_t plen;
} stream_rec;

static size_t on_stream(char *p, size_t size, size_t nmemb, void *ud)
{
    stream_rec *r = ud;
    size_t n = size * nmemb;
    int64_t now = bench_now_ns() - r->t0;
    /* Count "\n\n" event ends (the double sends LF only). */
    char prev = r->plen > 0 ? r->partial[r->plen - 1] : 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' && prev == '\n' && r->n < MAX_EVENTS)
            r->at[r->n++] = now;
        prev = p[i];
    }
    r->partial[0] = prev;
    r->plen = 1;
    return n;
}

static size_t on_discard(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p;
    (void)ud;
    return size * nmemb;
}

static CURL *client(int port, const char *key, const char *body, struct curl_slist **hdrs)
{
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions", port);
    *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (key != NULL) {
        char auth[128];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
        *hdrs = curl_slist_append(*hdrs, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    return c;
}

/* One streamed chat; the event times into r. 0 or -1. */
static int stream_once(int port, int tokens, stream_rec *r)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"model\":\"valid_tiny_llama\",\"stream\":true,\"max_tokens\":%d,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
             tokens);
    struct curl_slist *h;
    CURL *c = client(port, NULL, body, &h);
    memset(r, 0, sizeof(*r));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    r->t0 = bench_now_ns();
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    if (rc != CURLE_OK || status != 200) {
        fprintf(stderr, "stream to port %d: curl %d, status %ld\n", port, (int)rc, status);
        return -1;
    }
    return 0;
}

typedef struct tp_worker {
    int port;
    int64_t until;
    long done;
    long failed;
} tp_worker;

static void *tp_run(void *arg)
{
    tp_worker *w = arg;
    static const char body[] = "{\"model\":\"valid_tiny_llama\",\"max_tokens\":1,"
                               "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    struct curl_slist *h;
    CURL *c = client(w->port, NULL, body, &h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_discard);
    while (bench_now_ns() < w->until) {
        long status = 0;
        if (curl_easy_perform(c) == CURLE_OK &&
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200)
            w->done++;
        else
            w->failed++;
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    return NULL;
}

/* Requests per second at concurrency conc for secs seconds. */
static double throughput(int port, int conc, int secs, long *failed)
{
    pthread_t t[64];
    tp_worker w[64];
    int64_t start = bench_now_ns();
    for (int i = 0; i < conc; i++) {
        w[i] = (tp_worker){port, start + (int64_t)secs * 1000000000, 0, 0};
        pthread_create(&t[i], NULL, tp_run, &w[i]);
    }
    long done = 0;
    *failed = 0;
    for (int i = 0; i < conc; i++) {
        pthread_join(t[i], NULL);
        done += w[i].done;
        *failed += w[i].failed;
    }
    double took = (double)(bench_now_ns() - start) / 1e9;
    return (double)done / took;
}

/* A decimal argument; -1 when it is not one. */
static int arg_int(const char *t)
{
    char *end;
    errno = 0;
    long v = strtol(t, &end, 10);
    return errno == 0 && *end == '\0' && end != t && v >= 0 && v < 1000000 ? (int)v : -1;
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

int main(int argc, char **argv)
{
    int tokens = argc > 1 ? arg_int(argv[1]) : 8;
    int rounds = argc > 2 ? arg_int(argv[2]) : 100;
    const char *token_ms = argc > 3 ? argv[3] : "1";
    int conc = argc > 4 ? arg_int(argv[4]) : 4;
    int secs = argc > 5 ? arg_int(argv[5]) : 3;
    if (tokens < 2 || tokens >= MAX_EVENTS - 8 || rounds < 1 || conc < 1 || conc > 64 || secs < 1) {
        fprintf(stderr,
                "usage: %s [tokens 2..4000] [rounds] [token ms] [concurrency 1..64] "
                "[seconds]\n",
                argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (mkdtemp(g_home) == NULL)
        return 1;
    const char *data = getenv("GENAI_TEST_DATA");
    char model[512], gpu[128];
    snprintf(model, sizeof(model), "%s/gguf/corpus/valid_tiny_llama.gguf",
             data != NULL ? data : GENAI_SOURCE_DIR "/tests/data");
    snprintf(gpu, sizeof(gpu), "%s/gpu.json", g_home);
    FILE *f = fopen(gpu, "we");
    if (f == NULL)
        return 1;
    fputs("{\"devices\":[{\"name\":\"Fake GPU 8GB\",\"total_bytes\":8589934592}]}\n", f);
    fclose(f);
    setenv("GENAI_HOME", g_home, 1);
    setenv("GENAI_FAKE_GPU", gpu, 1);
    setenv("GENAI_LLAMA_SERVER", FAKE_LLAMA_BIN, 1);
    setenv("FAKE_LLAMA_TOKEN_MS", token_ms, 1);
    setenv("FAKE_LLAMA_MEM_SCALE", "0", 1);

    const char *add[] = {GENAI_BIN, "add", model, NULL};
    if (run_wait(add) < 0) {
        fprintf(stderr, "genai add failed\n");
        return 1;
    }
    const char *serve[] = {GENAI_BIN, "serve", "--port", "0", NULL};
    pid_t sp = bench_spawn(serve, 1);
    int gport = serve_port();
    int rc = 1;
    pid_t dp = -1;
    stream_rec *rg = calloc(1, sizeof(*rg)), *rd = calloc(1, sizeof(*rd));
    double *added = calloc((size_t)rounds * (size_t)(tokens + 8), sizeof(double));
    double *first = calloc((size_t)rounds + 1, sizeof(double));
    if (sp < 0 || gport <= 0 || rg == NULL || rd == NULL || added == NULL || first == NULL) {
        fprintf(stderr, "could not start genai serve\n");
        goto out;
    }
    /* Load the LLM behind genai, then start the direct double with the very
     * argv genai gave its own (another port, no key). */
    if (stream_once(gport, 4, rg) < 0)
        goto out;
    char dport_s[16], args[8192];
    const char *dargv[128];
    int dport = tu_free_port();
    snprintf(dport_s, sizeof(dport_s), "%d", dport);
    long gpid = llm_pid(gport);
    if (gpid <= 0 || clone_argv(gpid, dport_s, args, sizeof(args), dargv, 128) < 2) {
        fprintf(stderr, "could not read the LLM's command line\n");
        goto out;
    }
    dargv[0] = FAKE_LLAMA_BIN;
    dp = bench_spawn(dargv, 1);
    if (dp < 0)
        goto out;
    bench_wait_health(dport);
    if (stream_once(dport, 4, rd) < 0)
        goto out;

    int n_added = 0;
    for (int r = 0; r < rounds; r++) {
        if (stream_once(gport, tokens, rg) < 0 || stream_once(dport, tokens, rd) < 0)
            goto out;
        int n = rg->n < rd->n ? rg->n : rd->n;
        if (n > tokens + 8)
            n = tokens + 8; /* role, tokens, finish, [DONE]: never more */
        first[r] = (double)(rg->at[0] - rd->at[0]) / 1000.0;
        for (int k = 1; k < n; k++)
            added[n_added++] = (double)(rg->at[k] - rd->at[k]) / 1000.0;
    }
    double first_med = bench_median(first, rounds);
    double med = pct(added, n_added, 0.5);
    double p99 = pct(added, n_added, 0.99);
    printf("latency: %d streams x %d tokens at %s ms per token, %d events compared\n", rounds,
           tokens, token_ms, n_added);
    printf("  first event: genai - direct median %.1f us (includes the request's one-time "
           "cost)\n",
           first_med);
    printf("  event k >= 1: genai - direct median %.1f us, p99 %.1f us per event "
           "(upper bound: includes the one-time cost)\n",
           med, p99);
    printf("  target < 200 us median: %s\n", med < 200.0 ? "met" : "MISSED");

    long fg = 0, fd = 0;
    double tg = throughput(gport, conc, secs, &fg);
    double td = throughput(dport, conc, secs, &fd);
    printf("throughput: %d clients x %d s, 1-token chats: genai %.1f req/s, direct %.1f req/s "
           "(failures %ld / %ld)\n",
           conc, secs, tg, td, fg, fd);
    printf("  ratio genai/direct %.3f (target >= 0.9: %s)\n", tg / td,
           tg / td >= 0.9 ? "met" : "MISSED");
    rc = 0;

out:
    free(rg);
    free(rd);
    free(added);
    free(first);
    if (dp > 0) {
        kill(dp, SIGTERM);
        waitpid(dp, NULL, 0);
    }
    if (sp > 0) {
        kill(sp, SIGTERM);
        waitpid(sp, NULL, 0);
    }
    const char *rm[] = {"/bin/rm", "-rf", g_home, NULL};
    run_wait(rm);
    curl_global_cleanup();
    return rc;
}
