/*
 * sup_harness.h - drives one supervisor on a libuv loop in the test thread
 * and records its events, so a test can wait (with a deadline) for a state
 * and then inspect what happened. Shared by the tests and the benchmark.
 */
#ifndef GENAI_TESTS_PROC_SUP_HARNESS_H
#define GENAI_TESTS_PROC_SUP_HARNESS_H

#include "core/http_client.h"
#include "proc/supervisor.h"

#include <stdint.h>

enum { HX_MAX_EVENTS = 64, HX_TEXT = 2048 };

typedef struct hx_event {
    sup_event ev; /* pointers cleared; copies below */
    char reason[HX_TEXT];
    char tail[HX_TEXT];
    int64_t at_ms;
    int64_t at_ns;
} hx_event;

typedef struct hx {
    uv_loop_t uv;
    http_client *http;
    sup *s;
    hx_event events[HX_MAX_EVENTS];
    int nevents;
    char out_lines[8192]; /* stdout lines joined with '\n' */
    size_t out_len;
    int nlines[3];
} hx;

/* Initialises the loop and the HTTP client. */
void hx_init(hx *h);
/* Creates h->s with opts (on_event/on_line/arg are filled in). */
int hx_new_sup(hx *h, sup_opts *opts);
/* Runs the loop until a recorded event has state st (counting from event
 * index 'from'), or timeout_ms passes. Returns the event index or -1. */
int hx_wait_state(hx *h, sup_state st, int from, int timeout_ms);
/* Runs the loop until pred(h) is true or timeout_ms passes; 1 or 0. */
int hx_wait(hx *h, int (*pred)(hx *h), int timeout_ms);
/* Frees the supervisor and the HTTP client, runs the loop until every handle
 * is closed, closes the loop. */
void hx_done(hx *h);

#endif
