/*
 * bench_proxy.c - what `genai serve` adds in front of llama-server, measured
 * against fake-llama-server (docs/llama-server-double.md) in the same run.
 *
 * Two doubles run side by side from the same binary with the same flags
 * and the same per-token delay: one started and supervised by `genai
 * serve` (fake GPU, the model registered in a temporary GENAI_HOME), one
 * started here on a free port. The same libcurl client talks to both.
 *
 *   latency: streamed chats of N tokens, alternating between the paths.
 *            Both doubles run with FAKE_LLAMA_TOKEN_TIMES, so each appends
 *            the CLOCK_MONOTONIC instant it handed every SSE event to its
 *            socket; the client stamps each event (same clock, same
 *            machine) when curl hands its bytes over, and finds the
 *            double's lines by the chunks' "id". One event's latency is
 *            client receive time - double send time: the proxy's cost per
 *            event, free of the request's one-time cost and of the
 *            double's token-timing drift. Reported per path as median and
 *            p99 for events k >= 1, and apart for the request: the time
 *            from sending it until the double has read it, and until the
 *            first event arrives.
 *   throughput: C threads send non-streamed chats of one token for D
 *            seconds, each on its own keep-alive connection; requests per
 *            second through genai over direct (skipped when D is 0).
 *
 * The direct double is started with the argv genai gave its own (read
 * from /proc/<pid>/cmdline once genai loaded it), with another port and
 * without the API key, so both emit tokens the same way.
 *
 * Usage: bench_http_proxy [tokens per stream] [rounds] [token ms]
 *                         [concurrency] [seconds per throughput run]
 * Defaults 8 100 1 4 3. Prints medians, p99 and the ratios.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_EVENTS 4096
#define HEAD_MAX 1024 /* the first bytes of a stream, where the chunk id is */

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
    int64_t t0;             /* CLOCK_MONOTONIC ns, just before the request */
    int64_t at[MAX_EVENTS]; /* CLOCK_MONOTONIC ns at which event k arrived */
    int n;
    char prev; /* the last byte of the previous piece, to find "\n\n" across pieces */
    char head[HEAD_MAX + 1];
    size_t head_len;
} stream_rec;

static size_t on_stream(char *p, size_t size, size_t nmemb, void *ud)
{
    stream_rec *r = ud;
    size_t n = size * nmemb;
    int64_t now = bench_now_ns();
    /* Count "\n\n" event ends (the double sends LF only). */
    char prev = r->prev;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' && prev == '\n' && r->n < MAX_EVENTS)
            r->at[r->n++] = now;
        prev = p[i];
    }
    r->prev = prev;
    size_t room = HEAD_MAX - r->head_len;
    size_t take = n < room ? n : room;
    memcpy(r->head + r->head_len, p, take);
    r->head_len += take;
    r->head[r->head_len] = '\0';
    return n;
}

/* The chunk id ("id":"chatcmpl-...") of a recorded stream into id; 0 or -1. */
static int stream_id(const stream_rec *r, char *id, size_t cap)
{
    const char *s = strstr(r->head, "\"id\":\"");
    if (s == NULL)
        return -1;
    s += 6;
    const char *e = strchr(s, '"');
    if (e == NULL || (size_t)(e - s) >= cap)
        return -1;
    memcpy(id, s, (size_t)(e - s));
    id[e - s] = '\0';
    return 0;
}

/* ---- the doubles' send times (FAKE_LLAMA_TOKEN_TIMES) ---------------------------- */

static char g_times[256];
static long g_times_off; /* lines before this offset belong to earlier streams */

typedef struct sent_rec {
    int64_t req;                 /* the double read the request */
    int64_t sent[MAX_EVENTS];    /* it handed event k to its socket */
    int64_t written[MAX_EVENTS]; /* it was back for more: event k was written */
    int n;
} sent_rec;

/* Reads the double's lines for stream id into s, waiting (at most 5 s) until
 * they are there: the double appends them when it frees the stream, which
 * may be just after the client saw the end. 0 or -1. */
static int sent_times(const char *id, int want, sent_rec *s)
{
    size_t idlen = strlen(id);
    int64_t deadline = bench_now_ns() + 5000000000LL;
    for (;;) {
        FILE *f = fopen(g_times, "re");
        s->n = 0;
        s->req = 0;
        if (f != NULL && fseek(f, g_times_off, SEEK_SET) == 0) {
            char line[256];
            while (fgets(line, sizeof(line), f) != NULL) {
                if (strncmp(line, id, idlen) != 0 || line[idlen] != ' ')
                    continue;
                char *p = line + idlen + 1, *end;
                if (strncmp(p, "req ", 4) == 0) {
                    s->req = strtoll(p + 4, NULL, 10);
                    continue;
                }
                long k = strtol(p, &end, 10);
                if (k != s->n || k >= MAX_EVENTS)
                    continue;
                s->sent[k] = strtoll(end, &end, 10);
                s->written[k] = strtoll(end, NULL, 10);
                s->n++;
            }
        }
        if (f != NULL)
            fclose(f);
        if (s->req != 0 && s->n >= want)
            return 0;
        if (bench_now_ns() > deadline) {
            fprintf(stderr, "no send times for %s in %s (%d of %d events)\n", id, g_times, s->n,
                    want);
            return -1;
        }
        usleep(1000);
    }
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

/* A client connection kept alive across streams, as an app's SDK keeps
 * it: a new one per stream would make the direct path pay a TCP connect
 * and the double's new connection thread every time, which genai's pooled
 * upstream connection does not. */
typedef struct conn {
    int port;
    CURL *c;
    struct curl_slist *h;
    char body[256];
    long connects; /* new connections curl made */
} conn;

static void conn_close(conn *k)
{
    curl_easy_cleanup(k->c);
    curl_slist_free_all(k->h);
    k->c = NULL;
    k->h = NULL;
}

/* One streamed chat on k; the event times into r. 0 or -1. */
static int stream_once(conn *k, int tokens, stream_rec *r)
{
    snprintf(k->body, sizeof(k->body),
             "{\"model\":\"valid_tiny_llama\",\"stream\":true,\"max_tokens\":%d,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
             tokens);
    if (k->c == NULL) {
        k->c = client(k->port, NULL, k->body, &k->h);
        curl_easy_setopt(k->c, CURLOPT_WRITEFUNCTION, on_stream);
    }
    curl_easy_setopt(k->c, CURLOPT_POSTFIELDS, k->body);
    curl_easy_setopt(k->c, CURLOPT_WRITEDATA, r);
    memset(r, 0, sizeof(*r));
    r->t0 = bench_now_ns();
    CURLcode rc = curl_easy_perform(k->c);
    long status = 0, connects = 0;
    curl_easy_getinfo(k->c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(k->c, CURLINFO_NUM_CONNECTS, &connects);
    k->connects += connects;
    if (rc != CURLE_OK || status != 200) {
        fprintf(stderr, "stream to port %d: curl %d, status %ld\n", k->port, (int)rc, status);
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

/* What one path's streams measured, in us. */
typedef struct path_stats {
    double *event;   /* receive - send, events k >= 1 */
    double *first;   /* the same for event 0 */
    double *req;     /* the double read the request - the client sent it */
    double *ttfe;    /* the first event arrived - the client sent the request */
    double *written; /* the double's own write: written-by - handed, all events */
    int n_event, n_first, n_written;
} path_stats;

static int stats_init(path_stats *ps, int rounds, int tokens)
{
    size_t per = (size_t)rounds * (size_t)(tokens + 8);
    memset(ps, 0, sizeof(*ps));
    ps->event = calloc(per, sizeof(double));
    ps->written = calloc(per, sizeof(double));
    ps->first = calloc((size_t)rounds, sizeof(double));
    ps->req = calloc((size_t)rounds, sizeof(double));
    ps->ttfe = calloc((size_t)rounds, sizeof(double));
    return ps->event && ps->written && ps->first && ps->req && ps->ttfe ? 0 : -1;
}

static void stats_free(path_stats *ps)
{
    free(ps->event);
    free(ps->written);
    free(ps->first);
    free(ps->req);
    free(ps->ttfe);
}

/* One streamed chat on port, its events matched with the double's send
 * times into ps. 0 or -1. */
static int measure_stream(conn *k, int tokens, stream_rec *r, sent_rec *s, path_stats *ps)
{
    char id[128];
    if (stream_once(k, tokens, r) < 0)
        return -1;
    if (stream_id(r, id, sizeof(id)) < 0) {
        fprintf(stderr, "no chunk id in the stream from port %d\n", k->port);
        return -1;
    }
    if (sent_times(id, r->n, s) < 0)
        return -1;
    int n = r->n < s->n ? r->n : s->n;
    if (n > tokens + 8)
        n = tokens + 8; /* role, tokens, finish, [DONE]: never more */
    if (n < 2) {
        fprintf(stderr, "stream %s: %d events\n", id, n);
        return -1;
    }
    ps->req[ps->n_first] = (double)(s->req - r->t0) / 1000.0;
    ps->ttfe[ps->n_first] = (double)(r->at[0] - r->t0) / 1000.0;
    ps->first[ps->n_first++] = (double)(r->at[0] - s->sent[0]) / 1000.0;
    for (int i = 0; i < n; i++) {
        ps->written[ps->n_written++] = (double)(s->written[i] - s->sent[i]) / 1000.0;
        if (i >= 1)
            ps->event[ps->n_event++] = (double)(r->at[i] - s->sent[i]) / 1000.0;
    }
    return 0;
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
    if (tokens < 2 || tokens >= MAX_EVENTS - 8 || rounds < 1 || conc < 1 || conc > 64 || secs < 0) {
        fprintf(stderr,
                "usage: %s [tokens 2..4000] [rounds] [token ms] [concurrency 1..64] "
                "[seconds, 0: no throughput run]\n",
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
    snprintf(g_times, sizeof(g_times), "%s/token-times.txt", g_home);
    setenv("FAKE_LLAMA_TOKEN_TIMES", g_times, 1);

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
    sent_rec *st = calloc(1, sizeof(*st));
    path_stats pg, pd;
    conn cg = {0}, cd = {0};
    int ok_g = stats_init(&pg, rounds, tokens), ok_d = stats_init(&pd, rounds, tokens);
    if (sp < 0 || gport <= 0 || rg == NULL || rd == NULL || st == NULL || ok_g < 0 || ok_d < 0) {
        fprintf(stderr, "could not start genai serve\n");
        goto out;
    }
    /* Load the LLM behind genai, then start the direct double with the very
     * argv genai gave its own (another port, no key). */
    cg.port = gport;
    if (stream_once(&cg, 4, rg) < 0)
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
    cd.port = dport;
    if (stream_once(&cd, 4, rd) < 0)
        goto out;

    for (int r = 0; r < rounds; r++) {
        /* Alternate which path goes first, so neither always follows the other. */
        int gfirst = r % 2 == 0;
        if (measure_stream(gfirst ? &cg : &cd, tokens, gfirst ? rg : rd, st, gfirst ? &pg : &pd) <
                0 ||
            measure_stream(gfirst ? &cd : &cg, tokens, gfirst ? rd : rg, st, gfirst ? &pd : &pg) <
                0)
            goto out;
        struct stat sb;
        if (stat(g_times, &sb) == 0)
            g_times_off = (long)sb.st_size;
    }
    printf("latency: %d streams x %d tokens at %s ms per token per path, %d + %d events, "
           "keep-alive (connections opened: direct %ld, genai %ld)\n",
           rounds, tokens, token_ms, pd.n_event, pg.n_event, cd.connects, cg.connects);
    printf("  per event k >= 1, client receive - double send (us):\n");
    double dm = pct(pd.event, pd.n_event, 0.5), dp99 = pct(pd.event, pd.n_event, 0.99);
    double gm = pct(pg.event, pg.n_event, 0.5), gp99 = pct(pg.event, pg.n_event, 0.99);
    printf("    direct  median %7.1f  p99 %7.1f\n", dm, dp99);
    printf("    genai   median %7.1f  p99 %7.1f\n", gm, gp99);
    printf("    added   median %+7.1f  p99 %+7.1f  (ratio %.2fx median)\n", gm - dm, gp99 - dp99,
           gm / dm);
    printf("  first event (k = 0), client receive - double send (us):\n");
    printf("    direct  median %7.1f  p99 %7.1f\n", pct(pd.first, pd.n_first, 0.5),
           pct(pd.first, pd.n_first, 0.99));
    printf("    genai   median %7.1f  p99 %7.1f\n", pct(pg.first, pg.n_first, 0.5),
           pct(pg.first, pg.n_first, 0.99));
    double dreq = pct(pd.req, pd.n_first, 0.5), greq = pct(pg.req, pg.n_first, 0.5);
    double dtt = pct(pd.ttfe, pd.n_first, 0.5), gtt = pct(pg.ttfe, pg.n_first, 0.5);
    printf("  request (us): client sent -> double read it: direct median %.1f, genai median "
           "%.1f (added %+.1f)\n",
           dreq, greq, greq - dreq);
    printf("                client sent -> first event:    direct median %.1f, genai median "
           "%.1f (added %+.1f)\n",
           dtt, gtt, gtt - dtt);
    printf("  the double's own write (handed -> written by, us): direct median %.1f, genai "
           "median %.1f\n",
           pct(pd.written, pd.n_written, 0.5), pct(pg.written, pg.n_written, 0.5));
    printf("  target < 200 us median added per event: %s\n", gm - dm < 200.0 ? "met" : "MISSED");
    if (secs == 0) {
        rc = 0;
        goto out;
    }

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
    free(st);
    conn_close(&cg);
    conn_close(&cd);
    stats_free(&pg);
    stats_free(&pd);
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
