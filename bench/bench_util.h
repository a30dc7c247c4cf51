/*
 * bench_util.h - what the benchmarks share: the monotonic clock, the median
 * of a set of timings, and the raw baselines (a fork/exec with output
 * discarded, one blocking GET /health) that the process benchmarks compare
 * genai against in the same run.
 */
#ifndef GENAI_BENCH_UTIL_H
#define GENAI_BENCH_UTIL_H

#include <stdint.h>
#include <sys/types.h>

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t bench_now_ns(void);
/* CLOCK_MONOTONIC in milliseconds, with the fraction. */
double bench_now_ms(void);
/* The integer in text when it is one and within lo..hi; otherwise prints
 * "PROG: 'TEXT' is not a number in LO..HI" and exits with status 2 (a usage
 * error of the benchmark). */
int bench_arg_int(const char *prog, const char *text, int lo, int hi);
/* qsort comparator for doubles, ascending. */
int bench_cmp_double(const void *a, const void *b);
/* Sorts v[0..n) in place and returns its median (the mean of the middle two
 * for even n); n >= 1. */
double bench_median(double *v, int n);
/* fork + execv(argv[0]) with stdin and stdout on /dev/null, and stderr too
 * when quiet_stderr; the child's pid, or -1. The caller reaps it. */
pid_t bench_spawn(const char *const *argv, int quiet_stderr);
/* One blocking GET /health to 127.0.0.1:port; 1 when it answered 200. */
int bench_health(int port);
/* Blocking bench_health() polls on the supervisor's schedule (50 ms, doubling
 * to 500 ms) until one answers 200. Waits for as long as that takes. */
void bench_wait_health(int port);

#endif
