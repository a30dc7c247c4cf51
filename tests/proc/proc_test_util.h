/*
 * proc_test_util.h - helpers shared by the proc tests: where the child double
 * is, the fds inherited from the test runner and whether ours are all
 * close-on-exec, and warming up libuv and curl before fd counts. The generic
 * helpers (fd counts, monotonic time, free ports, waiting for a pid to
 * disappear) are in tests/testutil/testutil.h; the ptu_ names below forward
 * there for the tests outside proc that still use them.
 */
#ifndef GENAI_TESTS_PROC_TEST_UTIL_H
#define GENAI_TESTS_PROC_TEST_UTIL_H

#include <stdint.h>
#include <sys/types.h>

/* Absolute path of the proc_child test double. */
const char *ptu_child_path(void);
/* tu_fd_count(), tu_now_ms(), tu_free_port() and tu_wait_pid_gone() under
 * their former names (see tests/testutil/testutil.h). */
int ptu_count_fds(void);
int64_t ptu_now_ms(void);
int ptu_free_port(void);
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
