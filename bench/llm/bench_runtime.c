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
 * With GENAI_LLAMA_SERVER naming a real llama-server, the same runs use it
 * with the tiny model genai-mkmodel writes. The real server writes no ready
 * stamp, so "ready" is then measured from the start request (runtime) or the
 * spawn (baseline) to READY / the first /health 200: both include the
 * server's own load, and the difference is what genai adds.
 *
 * Usage: bench_llm_runtime [ITERATIONS] [LOAD_MS]. Prints medians in ms and
 * the ratios runtime / baseline.
 */
#include "bench_util.h"

#include "core/alloc.h"
#include "gguf/writer.h"
#include "llm/runtime.h"
#include "testutil/testutil.h"
#include "tiny_llama.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct bx {
    llm_rt_state want;
    int64_t at_ns;
    int seen;
    int failed;
} bx;

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
        b->at_ns = bench_now_ns();
    }
    if (ev->state == LLM_RT_FAILED)
        b->failed = 1;
}

static int run_until(uv_loop_t *uv, bx *b, int timeout_ms)
{
    int64_t end = bench_now_ns() + (int64_t)timeout_ms * 1000000;
    while (!b->seen && !b->failed && bench_now_ns() < end)
        uv_run(uv, UV_RUN_ONCE);
    return b->seen ? 0 : -1;
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
    const char *server = getenv("GENAI_LLAMA_SERVER");
    int real = server != NULL && server[0] != '\0' && strcmp(server, FAKE_LLAMA_PATH) != 0;
    if (!real) {
        server = FAKE_LLAMA_PATH;
        setenv("GENAI_LLAMA_SERVER", server, 1);
        setenv("FAKE_LLAMA_READY_FILE", stamp, 1);
        setenv("FAKE_LLAMA_LOAD_MS", load_ms, 1);
    }

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
        int64_t t_start = bench_now_ns();
        if (llm_runtime_new(&uv, &cfg, NULL, on_event, &b, &rt, &e) != 0 ||
            llm_runtime_start(rt, &e) != 0) {
            fprintf(stderr, "start: %s\n", e.detail);
            return 1;
        }
        if (run_until(&uv, &b, 10000) < 0)
            return 1;
        int64_t st = real ? t_start : read_stamp(stamp);
        if (st < 0)
            return 1;
        rt_ready[i] = (double)(b.at_ns - st) / 1e6;
        b = (bx){.want = LLM_RT_STOPPED};
        int64_t t0 = bench_now_ns();
        llm_runtime_stop(rt);
        if (run_until(&uv, &b, 10000) < 0)
            return 1;
        rt_stop[i] = (double)(b.at_ns - t0) / 1e6;
        llm_runtime_free(rt);
        uv_run(&uv, UV_RUN_DEFAULT);
        uv_loop_close(&uv);

        /* baseline */
        int port = tu_free_port();
        char ps[16];
        snprintf(ps, sizeof(ps), "%d", port);
        const char *cargv[] = {server,          "-m",  model, "--host", "127.0.0.1",
                               "--port",        ps,    "-a",  "tiny",   "-c",
                               "512",           "-np", "1",   "-kvu",   "--fit",
                               "off",           "-lv", "4",   NULL};
        int64_t t_spawn = bench_now_ns();
        pid_t pid = bench_spawn(cargv, 1);
        bench_wait_health(port);
        int64_t seen = bench_now_ns();
        st = real ? t_spawn : read_stamp(stamp);
        if (st < 0)
            return 1;
        raw_ready[i] = (double)(seen - st) / 1e6;
        t0 = bench_now_ns();
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        raw_stop[i] = (double)(bench_now_ns() - t0) / 1e6;
    }
    double rr = bench_median(rt_ready, iters), br = bench_median(raw_ready, iters);
    double rs = bench_median(rt_stop, iters), bs = bench_median(raw_stop, iters);
    if (real)
        printf("iterations: %d, real llama-server %s\n", iters, server);
    else
        printf("iterations: %d, fake-llama-server, load %s ms\n", iters, load_ms);
    printf("ready (%s -> READY): runtime %.3f ms, baseline %.3f ms, ratio %.2f\n",
           real ? "start request" : "server answers 200", rr, br, br > 0 ? rr / br : 0);
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
