/*
 * testutil.h - helpers shared by the test suites of every module: temporary
 * folders and whole files, counting this process's open fds, the monotonic
 * clock, waiting on a condition or for a pid to disappear with a deadline
 * (never a fixed sleep), a free loopback port, and where the built genai
 * binary is.
 *
 * Two families: functions returning int report failure to the caller (0 or
 * -1, as the test wants to assert on it); the tu_tmpdir/tu_rmdir/tu_path
 * family fails the running cmocka test itself, so it is for use inside test
 * bodies, outside mem_fail_after() windows.
 */
#ifndef GENAI_TESTS_TESTUTIL_H
#define GENAI_TESTS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Creates /tmp/genai-<tag>-XXXXXX into out (size >= 64); 0 or -1. */
int tu_mkdtemp(char *out, size_t outsz, const char *tag);
/* Removes a folder tree, not following links; 0 or -1. */
int tu_rm_rf(const char *path);
/* Writes len bytes to path (created 0644 or truncated); 0 or -1. */
int tu_write(const char *path, const void *data, size_t len);
/* Reads a whole file, NUL-terminated past *len (caller frees with mem_free);
 * NULL on failure, *len written only on success. */
unsigned char *tu_read(const char *path, size_t *len);
/* File size, or -1 when absent. */
long long tu_size(const char *path);
/* Fills buf with bytes from a fixed seed (xorshift), different per seed. */
void tu_fill(unsigned char *buf, size_t len, uint32_t seed);
/* Polls cond(arg) every 5 ms until it is true (1) or ms elapse (0). */
int tu_wait(int (*cond)(void *arg), void *arg, unsigned ms);
/* Number of open fds of this process (from /proc/self/fd, not counting the
 * one used to list it); -1 when /proc is unreadable. */
int tu_fd_count(void);
/* Number of entries in a folder, "." and ".." aside; -1 when unreadable. */
int tu_dir_entries(const char *path);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t tu_now_ms(void);
/* A loopback TCP port that was free a moment ago (bound and released); -1. */
int tu_free_port(void);
/* 1 when pid no longer runs (gone, or a zombie) within timeout_ms, else 0. */
int tu_wait_pid_gone(pid_t pid, int timeout_ms);

/* A new folder $TMPDIR/genai-<tag>-XXXXXX (or under /tmp); the caller
 * mem_frees the string. Fails the test when it cannot. */
char *tu_tmpdir(const char *tag);
/* Removes the files in dir (one level) and dir itself, asserting that each
 * removal succeeds. */
void tu_rmdir(const char *dir);
/* dir + "/" + name; the caller mem_frees it. */
char *tu_path(const char *dir, const char *name);
/* $GENAI_BUILD_DIR/src/cli/genai, the genai binary under test (a static
 * buffer). Fails the test when GENAI_BUILD_DIR is unset. */
const char *tu_genai_bin(void);

#endif
