/*
 * bench_probe.c - what one probe costs, as a ratio against reading
 * /proc/meminfo once (the cheapest thing a probe does), measured in the same
 * run. Reports per-operation microseconds for: the baseline read, a sample on
 * an open context (what the loop does several times a second), and a
 * one-shot probe_take (context open + sample + close).
 *
 * Usage: bench_sys_probe [ITERATIONS]   (default 2000)
 */
#include "bench_util.h"

#include "core/alloc.h"
#include "core/paths.h"
#include "sys/probe.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long iters = argc > 1 ? strtol(argv[1], NULL, 10) : 2000;
    if (iters <= 0)
        iters = 2000;
    probe_options o = {0};
    probe_ctx *ctx;
    if (probe_ctx_open(&o, &ctx, NULL) != 0)
        return 1;

    int64_t t0 = bench_now_ns();
    for (long i = 0; i < iters; i++) {
        char *text = NULL;
        if (paths_read_file("/proc/meminfo", 1u << 20, &text, NULL, NULL) != 0)
            return 1;
        mem_free(text);
    }
    double base = (double)(bench_now_ns() - t0) / 1e3 / (double)iters;

    t0 = bench_now_ns();
    for (long i = 0; i < iters; i++) {
        probe_snapshot s;
        if (probe_ctx_sample(ctx, &s, NULL) != 0)
            return 1;
        probe_snapshot_free(&s);
    }
    double sample = (double)(bench_now_ns() - t0) / 1e3 / (double)iters;
    probe_ctx_close(ctx);

    long once_iters = iters / 10 > 0 ? iters / 10 : 1;
    t0 = bench_now_ns();
    for (long i = 0; i < once_iters; i++) {
        probe_snapshot s;
        if (probe_take(&o, &s, NULL) != 0)
            return 1;
        probe_snapshot_free(&s);
    }
    double once = (double)(bench_now_ns() - t0) / 1e3 / (double)once_iters;

    printf("baseline  read /proc/meminfo      %9.1f us/op  (%ld ops)\n", base, iters);
    printf("sample    probe_ctx_sample        %9.1f us/op  ratio %.1fx\n", sample, sample / base);
    printf("one-shot  probe_take (open+close) %9.1f us/op  ratio %.1fx  (%ld ops)\n", once,
           once / base, once_iters);
    return 0;
}
