/*
 * bench_runtime.c - how much the LLM runtime adds to llama-server's own
 * start and stop, measured with fake-llama-server.
 *
 *   ready: from the instant the double can answer /health 200 (it writes
 *          CLOCK_MONOTONIC to FAKE_LLAMA_READY_FILE) to the runtime's READY
 *          event, which also includes GET /props, the probe snapshot and the
 *          footprint; baseline: fork/exec of the same double, blocking GET
 *          /health polls on the supervisor's schedule (50 ms doubling to
 *          500 ms), 200 seen.
 *   stop:  from llm_runtime_stop() to the STOPPED event (reaped, pipes
 *          closed); baseline: kill(SIGTERM) + waitpid.
 *
 * Usage: bench_llm_runtime [ITERATIONS] [LOAD_MS]. Prints medians in ms and
 * the ratios runtime / baseline.
 */
#include "core/alloc.h"
#include "gguf/writer.h"
#include "llm/runtime.h"
#include "tiny_llama.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct bx {
    llm_rt_state want;
    int64_t at_ns;
    int seen;
    int failed;
} bx;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int64_t read_stamp(const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    long long s;
    long ns;
    int64_t v = fscanf(f, "%lld.%ld", &s, &ns) == 2 ? (int64_t)s * 1000000000 + ns : -1;
    fclose(f);
    unlink(path);
    return v;
}

static void on_event(void *arg, llm_runtime *rt, const llm_rt_event *ev)
{
    (void)rt;
    bx *b = arg;
    if (ev->state == b->want && !b->seen) {
        b->seen = 1;
        b->at_ns = now_ns();
    }
    if (ev->state == LLM_RT_FAILED)
        b->failed = 1;
}

static int run_until(uv_loop_t *uv, bx *b, int timeout_ms)
{
    int64_t end = now_ns() + (int64_t)timeout_ms * 1000000;
    while (!b->seen && !b->failed && now_ns() < end)
        uv_run(uv, UV_RUN_ONCE);
    return b->seen ? 0 : -1;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    int port = -1;
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(s);
    return port;
}

static int raw_health(int port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = 0;
    if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0) {
        const char req[] = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        if (write(s, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1) {
            char buf[512];
            ssize_t n = read(s, buf, sizeof(buf) - 1);
            ok = n > 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0;
        }
    }
    close(s);
    return ok;
}

static pid_t raw_spawn(const char *const *argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        int dn = open("/dev/null", O_RDWR);
        dup2(dn, 0);
        dup2(dn, 1);
        dup2(dn, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 20;
    const char *load_ms = argc > 2 ? argv[2] : "200";
    if (iters < 1 || iters > 1000)
        iters = 20;
    char dir[] = "/tmp/genai-bench-llm-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    char model[128], stamp[128], home[128];
    snprintf(model, sizeof(model), "%s/tiny.gguf", dir);
    snprintf(stamp, sizeof(stamp), "%s/ready-at", dir);
    snprintf(home, sizeof(home), "%s/home", dir);
    struct mkmodel_opts mo;
    mkmodel_defaults(&mo);
    gguf_writer *w = NULL;
    if (mkmodel_build(&mo, &w, NULL) != 0 || gguf_writer_write(w, model, NULL) != 0)
        return 1;
    gguf_writer_free(w);
    setenv("GENAI_HOME", home, 1);
    setenv("GENAI_LLAMA_SERVER", FAKE_LLAMA_PATH, 1);
    setenv("FAKE_LLAMA_READY_FILE", stamp, 1);
    setenv("FAKE_LLAMA_LOAD_MS", load_ms, 1);

    double *rt_ready = mem_calloc((size_t)iters, sizeof(double));
    double *raw_ready = mem_calloc((size_t)iters, sizeof(double));
    double *rt_stop = mem_calloc((size_t)iters, sizeof(double));
    double *raw_stop = mem_calloc((size_t)iters, sizeof(double));
    if (!rt_ready || !raw_ready || !rt_stop || !raw_stop)
        return 1;
    for (int i = 0; i < iters; i++) {
        /* the runtime */
        uv_loop_t uv;
        uv_loop_init(&uv);
        llm_rt_config cfg;
        llm_rt_config_init(&cfg);
        cfg.model = model;
        cfg.ctx = 512;
        bx b = {.want = LLM_RT_READY};
        llm_runtime *rt = NULL;
        genai_error e;
        if (llm_runtime_new(&uv, &cfg, NULL, on_event, &b, &rt, &e) != 0 ||
            llm_runtime_start(rt, &e) != 0) {
            fprintf(stderr, "start: %s\n", e.detail);
            return 1;
        }
        if (run_until(&uv, &b, 10000) < 0)
            return 1;
        int64_t st = read_stamp(stamp);
        if (st < 0)
            return 1;
        rt_ready[i] = (double)(b.at_ns - st) / 1e6;
        b = (bx){.want = LLM_RT_STOPPED};
        int64_t t0 = now_ns();
        llm_runtime_stop(rt);
        if (run_until(&uv, &b, 10000) < 0)
            return 1;
        rt_stop[i] = (double)(b.at_ns - t0) / 1e6;
        llm_runtime_free(rt);
        uv_run(&uv, UV_RUN_DEFAULT);
        uv_loop_close(&uv);

        /* baseline */
        int port = free_port();
        char ps[16];
        snprintf(ps, sizeof(ps), "%d", port);
        const char *cargv[] = {FAKE_LLAMA_PATH, "-m",  model, "--host", "127.0.0.1",
                               "--port",        ps,    "-a",  "tiny",   "-c",
                               "512",           "-np", "1",   "-kvu",   "--fit",
                               "off",           "-lv", "4",   NULL};
        pid_t pid = raw_spawn(cargv);
        int delay = 50;
        for (;;) {
            poll(NULL, 0, delay);
            if (raw_health(port))
                break;
            delay = delay * 2 > 500 ? 500 : delay * 2;
        }
        int64_t seen = now_ns();
        st = read_stamp(stamp);
        if (st < 0)
            return 1;
        raw_ready[i] = (double)(seen - st) / 1e6;
        t0 = now_ns();
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        raw_stop[i] = (double)(now_ns() - t0) / 1e6;
    }
    double rr = median(rt_ready, iters), br = median(raw_ready, iters);
    double rs = median(rt_stop, iters), bs = median(raw_stop, iters);
    printf("iterations: %d, load %s ms\n", iters, load_ms);
    printf("ready (server answers 200 -> READY): runtime %.3f ms, baseline %.3f ms, ratio %.2f\n",
           rr, br, br > 0 ? rr / br : 0);
    printf("stop  (request -> reaped):           runtime %.3f ms, baseline %.3f ms, ratio %.2f\n",
           rs, bs, bs > 0 ? rs / bs : 0);
    mem_free(rt_ready);
    mem_free(raw_ready);
    mem_free(rt_stop);
    mem_free(raw_stop);
    unlink(model);
    rmdir(dir);
    return 0;
}
