/*
 * bench_supervisor.c - what the supervisor adds to "ready" and to "stopped".
 *
 * Ready: the proc_child double writes CLOCK_MONOTONIC to a file once its
 * /health answers 200; we measure from that instant to the supervisor's READY
 * event, and compare with a baseline in the same run: a plain fork/exec of
 * the same child polled by blocking GETs on the same schedule (50 ms doubling
 * to 500 ms). Stop: from sup_stop to the STOPPED event (reaped, pipes
 * closed), against kill(SIGTERM) + waitpid of the same child.
 *
 * Usage: bench_supervisor [ITERATIONS]   (default 20)
 * Prints medians in ms and the ratios supervisor / baseline.
 */
#include "bench_util.h"

#include "../../tests/proc/proc_test_util.h"
#include "../../tests/proc/sup_harness.h"

#include "core/alloc.h"
#include "proc/httpcheck.h"
#include "testutil/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int64_t read_stamp(const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    long long v = -1;
    if (fscanf(f, "%lld", &v) != 1)
        v = -1;
    fclose(f);
    unlink(path);
    return v;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 20;
    if (iters < 1 || iters > 1000)
        iters = 20;
    double *sup_ready = mem_calloc((size_t)iters, sizeof(double));
    double *raw_ready = mem_calloc((size_t)iters, sizeof(double));
    double *sup_stop_ms = mem_calloc((size_t)iters, sizeof(double));
    double *raw_stop_ms = mem_calloc((size_t)iters, sizeof(double));
    if (!sup_ready || !raw_ready || !sup_stop_ms || !raw_stop_ms)
        return 1;
    char stamp[256];
    snprintf(stamp, sizeof(stamp), "/tmp/genai-bench-stamp-%ld", (long)getpid());

    for (int i = 0; i < iters; i++) {
        int port = tu_free_port();
        char ps[16];
        snprintf(ps, sizeof(ps), "%d", port);
        const char *cargv[] = {ptu_child_path(), "--stamp", stamp, "--serve", ps, NULL};

        /* supervisor */
        hx h;
        hx_init(&h);
        proc_httpcheck_opts co = {
            .port = port, .path = "/health", .json_key = "status", .json_value = "ok"};
        sup_check *chk = NULL;
        sup_opts o = {.name = "bench", .argv = cargv};
        if (proc_httpcheck_new(h.http, &co, &chk, NULL) != 0)
            return 1;
        o.check = chk;
        if (hx_new_sup(&h, &o) != 0 || sup_start(h.s, NULL) != 0)
            return 1;
        int r = hx_wait_state(&h, SUP_READY, 0, 10000);
        int64_t st = read_stamp(stamp);
        if (r < 0 || st < 0)
            return 1;
        sup_ready[i] = (double)(h.events[r].at_ns - st) / 1e6;
        int64_t t0 = bench_now_ns();
        sup_stop(h.s);
        int s = hx_wait_state(&h, SUP_STOPPED, r, 10000);
        if (s < 0)
            return 1;
        sup_stop_ms[i] = (double)(h.events[s].at_ns - t0) / 1e6;
        hx_done(&h);
        chk->destroy(chk);

        /* baseline: fork/exec, blocking polls on the same schedule, kill+waitpid */
        port = tu_free_port();
        snprintf(ps, sizeof(ps), "%d", port);
        pid_t pid = bench_spawn(cargv, 0);
        bench_wait_health(port);
        int64_t seen = bench_now_ns();
        st = read_stamp(stamp);
        raw_ready[i] = (double)(seen - st) / 1e6;
        t0 = bench_now_ns();
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        raw_stop_ms[i] = (double)(bench_now_ns() - t0) / 1e6;
    }
    double sr = bench_median(sup_ready, iters), rr = bench_median(raw_ready, iters);
    double ss = bench_median(sup_stop_ms, iters), rs = bench_median(raw_stop_ms, iters);
    printf("iterations: %d\n", iters);
    printf("ready  (child answers 200 -> event): supervisor %.3f ms, baseline %.3f ms, "
           "ratio %.2f\n",
           sr, rr, rr > 0 ? sr / rr : 0);
    printf("stop   (request -> reaped):          supervisor %.3f ms, baseline %.3f ms, "
           "ratio %.2f\n",
           ss, rs, rs > 0 ? ss / rs : 0);
    mem_free(sup_ready);
    mem_free(raw_ready);
    mem_free(sup_stop_ms);
    mem_free(raw_stop_ms);
    return 0;
}
