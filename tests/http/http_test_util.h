/*
 * http_test_util.h - helpers for the HTTP tests: a libcurl request that
 * collects status, headers and body; fd counting through /proc; deadlines.
 */
#ifndef GENAI_TESTS_HTTP_UTIL_H
#define GENAI_TESTS_HTTP_UTIL_H

#include "core/sbuf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tresp {
    long status; /* 0 when the transfer failed */
    int curl_rc;
    sbuf headers;
    sbuf body;
} tresp;

/* One request. headers: NULL-terminated "Name: value" strings. body may be
 * NULL; with chunked = 1 it is sent without Content-Length. Free with
 * tresp_free. */
int treq(const char *method, const char *url, const char *const *headers, const char *body,
         size_t len, int chunked, tresp *out);
void tresp_free(tresp *r);
/* The value of a response header (case-insensitive name) copied into buf, or
 * NULL when absent. */
const char *tresp_header(const tresp *r, const char *name, char *buf, size_t n);

/* Number of open fds of this process. */
int t_count_fds(void);
/* Remembers the fds open now without close-on-exec (inherited from the test
 * runner), so that t_all_cloexec ignores them. */
void t_cloexec_baseline(void);
/* 1 when every fd above 2 (but the baseline) is close-on-exec; else prints
 * the offenders. */
int t_all_cloexec(void);
/* Monotonic milliseconds. */
uint64_t t_now_ms(void);
/* Connects a close-on-exec TCP socket to 127.0.0.1:port; -1 on failure. */
int t_connect(unsigned port);

#endif
