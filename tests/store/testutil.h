/*
 * testutil.h - helpers shared by the store tests: temporary folders, whole
 * files, deterministic bodies, and waiting on a condition with a deadline.
 */
#ifndef GENAI_TESTS_STORE_TESTUTIL_H
#define GENAI_TESTS_STORE_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Creates /tmp/genai-<tag>-XXXXXX into out (size >= 64); 0 or -1. */
int tu_mkdtemp(char *out, size_t outsz, const char *tag);
/* Removes a folder tree; 0 or -1. */
int tu_rm_rf(const char *path);
/* Writes len bytes to path (truncating); 0 or -1. */
int tu_write(const char *path, const void *data, size_t len);
/* Reads a whole file (malloc'ed, caller frees); NULL on failure. */
unsigned char *tu_read(const char *path, size_t *len);
/* File size, or -1 when absent. */
long long tu_size(const char *path);
/* Fills buf with bytes from a fixed seed (xorshift), different per seed. */
void tu_fill(unsigned char *buf, size_t len, uint32_t seed);
/* Polls cond(arg) every 5 ms until it is true (1) or ms elapse (0). */
int tu_wait(int (*cond)(void *arg), void *arg, unsigned ms);
/* Number of open fds of this process (from /proc/self/fd). */
int tu_fd_count(void);

#endif
