/*
 * proc_test_util.h - helpers shared by the proc tests: where the child double
 * is, counting our open fds, monotonic time, a free loopback port, and waiting
 * (with a deadline) for a pid to disappear.
 */
#ifndef GENAI_TESTS_PROC_TEST_UTIL_H
#define GENAI_TESTS_PROC_TEST_UTIL_H

#include <stdint.h>
#include <sys/types.h>

/* Absolute path of the proc_child test double. */
const char *ptu_child_path(void);
/* Number of entries in /proc/self/fd (not counting the one used to list it). */
int ptu_count_fds(void);
/* CLOCK_MONOTONIC in milliseconds. */
int64_t ptu_now_ms(void);
/* A loopback TCP port that was free a moment ago (bound and released). */
int ptu_free_port(void);
/* 1 when pid no longer runs (gone, or a zombie) within timeout_ms, else 0. */
int ptu_wait_pid_gone(pid_t pid, int timeout_ms);
/* Remembers the fds this process inherited (from ctest, the shell), which
 * ptu_all_fds_cloexec does not judge. Call first thing in main. */
void ptu_fd_baseline(void);
/* Makes libuv and curl create their process-wide fds (libuv's signal pipe)
 * now, so that per-test fd counts compare like with like. */
void ptu_warm_up(void);
/* 1 when every open fd above 2, except inherited ones, is close-on-exec;
 * prints each offender. */
int ptu_all_fds_cloexec(void);

#endif
