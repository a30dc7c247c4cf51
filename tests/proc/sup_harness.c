/*
 * sup_harness.c - see sup_harness.h.
 */
#include "sup_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_event(void *arg, sup *s, const sup_event *ev)
{
    (void)s;
    hx *h = arg;
    if (h->nevents == HX_MAX_EVENTS)
        return;
    hx_event *e = &h->events[h->nevents++];
    e->ev = *ev;
    e->ev.reason = NULL;
    e->ev.stderr_tail = NULL;
    snprintf(e->reason, sizeof(e->reason), "%s", ev->reason);
    snprintf(e->tail, sizeof(e->tail), "%s", ev->stderr_tail);
    e->at_ns = mono_ns();
    e->at_ms = e->at_ns / 1000000;
}

static void on_line(void *arg, sup *s, int stream, const char *line, size_t len)
{
    (void)s;
    hx *h = arg;
    h->nlines[stream]++;
    if (stream != 1)
        return;
    if (h->out_len + len + 2 < sizeof(h->out_lines)) {
        memcpy(h->out_lines + h->out_len, line, len);
        h->out_len += len;
        h->out_lines[h->out_len++] = '\n';
        h->out_lines[h->out_len] = '\0';
    }
}

void hx_init(hx *h)
{
    memset(h, 0, sizeof(*h));
    if (uv_loop_init(&h->uv) != 0 || http_client_new(&h->uv, &h->http, NULL) != 0) {
        fprintf(stderr, "hx_init failed\n");
        abort();
    }
}

int hx_new_sup(hx *h, sup_opts *opts)
{
    opts->on_event = on_event;
    opts->on_line = on_line;
    opts->arg = h;
    return sup_new(&h->uv, opts, &h->s, NULL);
}

static void on_guard(uv_timer_t *t)
{
    (void)t; /* only wakes uv_run up */
}

int hx_wait(hx *h, int (*pred)(hx *h), int timeout_ms)
{
    uv_timer_t guard;
    uv_timer_init(&h->uv, &guard);
    uv_timer_start(&guard, on_guard, (uint64_t)timeout_ms, 0);
    int64_t deadline = mono_ns() / 1000000 + timeout_ms;
    int ok;
    while (!(ok = pred(h)) && mono_ns() / 1000000 < deadline)
        uv_run(&h->uv, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&h->uv, UV_RUN_NOWAIT); /* runs the guard's close */
    return ok;
}

static sup_state g_want;
static int g_from;
static int g_found;

static int has_state(hx *h)
{
    for (int i = g_from; i < h->nevents; i++) {
        if (h->events[i].ev.state == g_want) {
            g_found = i;
            return 1;
        }
    }
    return 0;
}

int hx_wait_state(hx *h, sup_state st, int from, int timeout_ms)
{
    g_want = st;
    g_from = from;
    g_found = -1;
    return hx_wait(h, has_state, timeout_ms) ? g_found : -1;
}

void hx_done(hx *h)
{
    sup_free(h->s);
    h->s = NULL;
    http_client_free(h->http);
    h->http = NULL;
    while (uv_run(&h->uv, UV_RUN_NOWAIT) != 0) {
    }
    if (uv_loop_close(&h->uv) != 0) {
        fprintf(stderr, "hx_done: loop still has handles\n");
        abort();
    }
}
